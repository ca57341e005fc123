"""The release artifacts: ``python -m build`` makes an sdist and a wheel that ``twine check`` accepts, and the
wheel holds the package (every module, ``py.typed``), one version, the runtime dependencies, and nothing else."""

import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP = {".git", "out", "build", "dist", "_build", "tutorials", "generated", "__pycache__", ".pytest_cache",
        ".ruff_cache", ".hypothesis", ".ipynb_checkpoints"}


def _ignore(folder, names):
    return [n for n in names if n in SKIP or n.startswith(".venv") or n.endswith(".egg-info")]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("release")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)  # the source tree stays untouched (no egg-info, no build/)
    dist = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,), (sdist,) = dist.glob("*.whl"), dist.glob("*.tar.gz")
    return wheel, sdist


def _version():
    text = (ROOT / "ott_fast" / "_version.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"$', text, re.M).group(1)


def test_wheel_holds_the_package_and_nothing_else(artifacts):
    wheel, _ = artifacts
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ott_fast").rglob("*.py")}
    assert modules <= names, f"missing modules: {sorted(modules - names)}"
    assert "ott_fast/py.typed" in names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ott_fast", f"ott_fast-{_version()}.dist-info"}, tops  # no tests/, benchmarks/, examples/
    assert not [n for n in names if n.endswith((".ipynb", ".pyc")) or "/tests/" in n]


def test_wheel_metadata_has_one_version_and_only_runtime_requirements(artifacts):
    wheel, _ = artifacts
    meta = zipfile.ZipFile(wheel).read(f"ott_fast-{_version()}.dist-info/METADATA").decode()
    assert re.search(rf"^Version: {re.escape(_version())}$", meta, re.M)
    runtime = sorted(re.split(r"[<>=!~ ;]", r)[0] for r in re.findall(r"^Requires-Dist: (.+)$", meta, re.M)
                     if "extra ==" not in r)
    assert runtime == ["jax", "jaxlib", "optax", "tqdm"]  # chex comes with optax; ott_fast never imports it
    assert re.search(r"^Classifier: Typing :: Typed$", meta, re.M)
    assert re.search(r"^License-Expression: Apache-2.0$", meta, re.M)
    assert "Description-Content-Type: text/markdown" in meta


def test_sdist_builds_and_twine_accepts_both(artifacts):
    wheel, sdist = artifacts
    names = tarfile.open(sdist).getnames()
    root = f"ott_fast-{_version()}"
    for needed in ("pyproject.toml", "README.md", "ott_fast/__init__.py", "ott_fast/py.typed"):
        assert f"{root}/{needed}" in names, needed
    pytest.importorskip("twine")
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_version_lives_in_one_place():
    import ott_fast

    assert ott_fast.__version__ == _version()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "ott_fast._version.__version__" in pyproject
    assert not re.search(r'^version = "', pyproject, re.M)
    assert "__version__ = " not in (ROOT / "ott_fast" / "__init__.py").read_text()
