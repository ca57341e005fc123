"""Every public name has a docstring with a runnable example (pytest runs them with --doctest-modules)."""

import inspect
import re
import types

import ott_fast as otf


def _public():
    seen = set()
    for mod in [otf] + [getattr(otf, n) for n in otf.__all__ if isinstance(getattr(otf, n), types.ModuleType)]:
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{mod.__name__}.{name}", obj


def test_every_public_name_has_a_docstring_with_an_example():
    missing = [name for name, obj in _public() if ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"no docstring example: {missing}"


def test_every_public_function_documents_each_of_its_arguments():
    """Each parameter of each public function is named in its docstring's text (an ``Args:`` entry, or the
    prose for a function whose description names its arguments), not only in its example."""
    undocumented = []
    for name, obj in _public():
        if not inspect.isfunction(obj):
            continue
        prose = re.split(r"^Examples?:", inspect.getdoc(obj) or "", flags=re.M)[0]
        for param in inspect.signature(obj).parameters:
            if not re.search(rf"(?<![\w.]){re.escape(param)}(?!\w)", prose):
                undocumented.append(f"{name}({param})")
    assert not undocumented, f"arguments their docstring does not name: {undocumented}"


# ---------------------------------------------------------------------------------------------- the docs site
import pathlib  # noqa: E402
import sys  # noqa: E402

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def _apigen():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import apigen
    finally:
        sys.path.pop(0)
    return apigen


def test_api_reference_documents_every_public_name_once():
    apigen = _apigen()
    home = apigen.documented_paths()
    pages = {m: apigen.page(m, home) for m in apigen.MODULES}
    missing, twice = [], []
    for name, obj in _public():
        path = home.get(id(obj))
        if path is None:
            missing.append(name)
            continue
        module, short = path.rsplit(".", 1)
        hits = sum(len(re.findall(rf"^\.\. auto(function|class):: {re.escape(m)}\.{short}$", text, re.M))
                   for m, text in pages.items())
        if hits != 1:
            (missing if hits == 0 else twice).append(name)
    assert not missing and not twice, f"undocumented: {missing}; documented twice: {twice}"
    for mod in [otf] + [getattr(otf, n) for n in otf.__all__ if isinstance(getattr(otf, n), types.ModuleType)]:
        assert mod.__name__ in apigen.MODULES, f"{mod.__name__} has no API page"


def test_every_top_level_name_has_an_api_entry_under_the_name_users_call():
    """``otf.X`` for every X of ``ott_fast.__all__``: an entry whose name ends in X (the documented object, or
    for a re-export under another name, ``ott_fast.X`` pointing to it), so the index and the search find it."""
    apigen = _apigen()
    home = apigen.documented_paths()
    pages = "\n".join(apigen.page(m, home) for m in apigen.MODULES)
    entries = re.findall(r"^\.\. (?:auto(?:function|class|module)|py:(?:function|class)):: ([\w.]+)", pages, re.M)
    missing = []
    for name in otf.__all__:
        obj = getattr(otf, name)
        wanted = {obj.__name__} if isinstance(obj, types.ModuleType) else {home.get(id(obj)), f"ott_fast.{name}"}
        if not any(e in wanted and e.rsplit(".", 1)[-1] == name for e in entries):
            missing.append(name)
    assert not missing, f"no API entry named as users call it: {missing}"
    for name, _, target in apigen.renamed(home):  # each such entry links to the full documentation
        entry = pages.split(f":: ott_fast.{name}", 1)[1].split("\n.. ", 1)[0]
        assert f"`{target}`" in entry, entry


def test_every_notebook_is_a_tutorial_page():
    toc = (DOCS / "tutorials.md").read_text()
    listed = set(re.findall(r"^tutorials/(\w+)$", toc, re.M))
    notebooks = {p.stem for p in (DOCS.parent / "examples").glob("*.ipynb")}
    assert listed == notebooks, f"add each notebook to docs/tutorials.md's toctree: {sorted(notebooks ^ listed)}"


def test_the_repository_stands_alone():
    """Docs, docstrings and scripts cite the design notes in docs/design.md, never a file outside the repository."""
    root = DOCS.parent
    outside = ["DESIGN" + ".md", "../" + "shared", "shared " + "folder"]
    files = [root / "README.md", root / "CHANGELOG.md", *root.glob("docs/**/*.md"), *root.glob("docs/*.py"),
             *root.glob("ott_fast/**/*.py"), *root.glob("benchmarks/*.py"), *root.glob("examples/*"),
             *root.glob("tests/*.py"), *root.glob(".ci/*")]
    hits = [f"{f.relative_to(root)}: {word}" for f in files if f.is_file() and "_build" not in f.parts
            for word in outside if word in f.read_text(errors="ignore")]
    assert not hits, hits
    assert (DOCS / "design.md").exists() and re.search(r"^design$", (DOCS / "index.md").read_text(), re.M)


def test_the_browser_check_fails_under_ci_when_chromium_is_missing(monkeypatch, capsys):
    sys.path.insert(0, str(DOCS))
    try:
        import check_site
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(check_site, "find_chromium", lambda: None)
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("CI", "true")
    assert check_site.main([]) == 1  # a failure, not a skip
    assert "cannot be skipped under CI" in capsys.readouterr().err
    monkeypatch.delenv("CI")
    assert check_site.main([]) == 2  # a local run without a browser skips
    assert "SKIPPED" in capsys.readouterr().out
