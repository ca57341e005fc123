"""The README's and the user guide's Python examples run as written, and the README's links resolve."""

import pathlib
import re

import jax.numpy as jnp
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"


def _run_blocks(path):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    assert blocks, f"{path.name} has no python example"
    scope: dict = {}
    for code in blocks:  # one page's blocks share one scope, top to bottom
        exec(compile(code, str(path), "exec"), scope)
    return scope


def _check_first_solve(scope):
    assert bool(scope["out"].converged)
    assert scope["costs"].shape == (16,) and bool(jnp.all(jnp.isfinite(scope["costs"])))
    assert scope["grad_x"].shape == (500, 3) and bool(jnp.all(jnp.isfinite(scope["grad_x"])))


def _check_scaling(scope):
    assert bool(jnp.all(jnp.isfinite(scope["f"])))  # one device here
    assert bool(jnp.all(jnp.isfinite(scope["batch_costs"])))


def _check_sns(scope):
    assert bool(scope["sns_out"].converged) and int(scope["sns_out"].n_iters) < 100


def _check_curves(scope):
    assert [c.label for c in scope["curves"]][:3] == ["sinkhorn", "sinkhorn, over-relaxed", "sns"]
    assert all(c.errors[-1] <= 1e-5 for c in scope["curves"])


def _check_sliced(scope):
    assert float(scope["sw"]) > 0 and bool(jnp.all(jnp.isfinite(scope["grad"]))) and scope["batch"].shape == (8,)
    assert float(scope["sw"]) <= 1.01 * float(scope["msw"])  # SW_2^2 <= Max-SW_2^2 (both p-th powers)


def _check_meshes(scope):
    assert float(scope["mesh_sw"]) > 0 and bool(jnp.all(jnp.isfinite(scope["mesh_grad"])))
    assert float(scope["mesh_ebsw"]) > 0 and float(scope["mesh_rpsw"]) > 0


def _check_monge_gap(scope):
    assert bool(scope["gap"].converged) and float(scope["gap"].gap) >= float(scope["gap"].floor) - 1e-4


GUIDE_CHECKS = {
    "sinkhorn": _check_first_solve,
    "scaling": _check_scaling,
    "sns": _check_sns,
    "curves": _check_curves,
    "sliced": _check_sliced,
    "monge_gap": _check_monge_gap,
    "meshes": _check_meshes,
}


def test_readme_python_blocks_run():
    _check_first_solve(_run_blocks(README))


@pytest.mark.parametrize("page", sorted(GUIDE_CHECKS))
def test_guide_python_blocks_run(page):
    GUIDE_CHECKS[page](_run_blocks(GUIDE / f"{page}.md"))


def test_every_guide_page_with_code_is_checked():
    with_code = {p.stem for p in GUIDE.glob("*.md") if "```python" in p.read_text()}
    assert with_code == set(GUIDE_CHECKS)


def test_readme_starts_with_the_two_commands_ci_runs():
    lines = README.read_text().splitlines()
    start = lines.index("```bash")
    cmds = lines[start + 1 : start + 3]
    assert cmds[0].endswith('pip install -e ".[bench]" && python -m benchmarks --quick')
    assert cmds[1].endswith('pip install -e ".[test]" && pytest')
    ci = (README.parent / ".ci" / "run").read_text()
    assert cmds[1] in ci


def test_readme_links_point_to_files_that_exist():
    links = re.findall(r"\]\(([^)#]+)\)", README.read_text())
    assert links
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, missing
