"""Every example notebook runs top to bottom the way a reader opens it, so none of them rots: its kernel starts
in the notebook's own folder (``examples/``, as Jupyter starts it), it imports only ott_fast and the packages
of the ``examples`` extra (``pip install -e ".[examples]"``), never the repository's other code (the
``benchmarks`` package is not installed), and it runs its small sizes (``OTT_FAST_SMALL=1``).

Each notebook runs once per CI run, in the docs build (``sphinx-build -W -b html docs docs/_build/html``
executes them in ``docs/tutorials/`` and fails on an error), so under ``CI=true`` the execution tests here are
skipped; the import checks always run. Locally the notebooks run by default; ``OTT_FAST_RUN_NOTEBOOKS=0``
skips them and ``OTT_FAST_RUN_NOTEBOOKS=1`` runs them even in CI.
"""

import ast
import importlib.metadata
import os
import pathlib
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# The repository's own top-level modules and packages (and the scripts beside the notebooks): none is installed
# with ott_fast, so a notebook that imports one runs from the repository root only.
REPOSITORY_MODULES = {
    p.stem
    for p in [*ROOT.iterdir(), *EXAMPLES.glob("*.py")]
    if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py")
} - {"ott_fast"}
# Import names whose distribution is named otherwise, for when the distribution is not installed here.
DISTRIBUTIONS = {"ot": "pot", "ott": "ott-jax", "sklearn": "scikit-learn", "mpl_toolkits": "matplotlib"}
WITH_JAX = {"numpy"}  # a requirement of jax: the notebooks import it as the package itself does


def _imports(path: pathlib.Path) -> set[str]:
    """The top-level module of every import in the notebook's code cells ("." for a relative import)."""
    nb = nbformat.read(path, as_version=4)
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines()]
        for node in ast.walk(ast.parse("\n".join(lines), filename=f"{path.name}")):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add("." if node.level else node.module.split(".")[0])
    return names


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_there_are_notebooks_and_they_are_stored_without_outputs():
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_imports_nothing_from_the_repository_but_ott_fast(path):
    assert "benchmarks" in REPOSITORY_MODULES and "tests" in REPOSITORY_MODULES
    found = _imports(path) & (REPOSITORY_MODULES | {"."})
    assert not found, (
        f"{path.name} imports {sorted(found)} from the repository: a reader who installed ott_fast has no such "
        "module. Call the peers (POT, OTT-JAX) directly in the notebook, or use what ott_fast exports."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_examples_extra_declares_what_the_notebook_imports(path):
    project = _project()
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["examples"]} | WITH_JAX
    installed = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(_imports(path) - set(sys.stdlib_module_names) - REPOSITORY_MODULES - {"ott_fast", "."}):
        dists = {_name(d) for d in installed.get(module, [])} or {_name(DISTRIBUTIONS.get(module, module))}
        if not dists & declared:
            missing.append(f"{module} ({', '.join(sorted(dists))})")
    assert not missing, f"{path.name} imports {missing}: add them to the examples extra in pyproject.toml"


def test_the_test_and_docs_extras_hold_the_examples_extra():
    extras = _project()["optional-dependencies"]
    examples = {_name(r) for r in extras["examples"]}
    for extra in ("test", "docs"):  # both run the notebooks: the tests here, the docs build in CI
        lacking = examples - {_name(r) for r in extras[extra]}
        assert not lacking, f"the {extra} extra lacks {sorted(lacking)} of the examples extra"


def _run_here() -> tuple[bool, str]:
    flag = os.environ.get("OTT_FAST_RUN_NOTEBOOKS")
    if flag is not None:
        return flag == "1", f"OTT_FAST_RUN_NOTEBOOKS={flag}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False, "CI: the docs build executes every notebook; OTT_FAST_RUN_NOTEBOOKS=1 runs them here too"
    return True, ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    run, why = _run_here()
    if not run:
        pytest.skip(f"notebook not executed by pytest ({why})")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("OTT_FAST_SMALL", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter: figures as images
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # a reader's kernel sees the installed packages only
    nb = nbformat.read(path, as_version=4)
    # The working directory of the kernel is the notebook's folder, as Jupyter starts it.
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if "matplotlib" in _imports(path):  # a notebook that draws shows its figures (inline, or plt.show())
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} draws but shows no figure"
