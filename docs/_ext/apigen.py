"""The API reference, generated from ``__all__``: one page per public module, every public name on it once.

Each object is documented (autodoc, its docstring and example) on the page of the first module in
:data:`MODULES` whose ``__all__`` lists it; every other module that lists it links there. A new public
module (in an ``__all__``) gets its page by itself. The top-level ``ott_fast`` page lists every name of
``ott_fast.__all__`` with its summary and a link, documents the names no family module lists
(``Geometry``, ``PointCloud``), and gives each name that ``ott_fast`` exports under another short name
(``otf.sliced_directions`` is ``ott_fast.sliced.directions``) an entry of its own that points to its
documentation, so the index and the search find every name as users call it. :func:`aliases` maps each
other public path of an object (``ott_fast.sinkhorn``) to the documented one (``ott_fast.entropic.sinkhorn``)
so that cross-references written either way resolve. Nothing here imports Sphinx: ``tests/test_docs.py``
checks the coverage without building the site.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import types
from typing import Any

TOP = "ott_fast"
# Family modules first: an object is documented where its family lists it, the top level links to it.
FAMILIES = ["ott_fast.entropic", "ott_fast.sliced", "ott_fast.maps", "ott_fast.maps.fitting", "ott_fast.costs"]


def _modules() -> list[str]:
    """:data:`FAMILIES`, then every other public module (listed in an ``__all__``), then ``ott_fast``."""
    found = list(FAMILIES)
    queue = [TOP, *FAMILIES]
    while queue:
        module = importlib.import_module(queue.pop(0))
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType) and obj.__name__ not in found and obj.__name__ != TOP:
                found.append(obj.__name__)
                queue.append(obj.__name__)
    return [*found, TOP]


MODULES = _modules()


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _public(module: types.ModuleType) -> list[tuple[str, Any]]:
    return [(name, getattr(module, name)) for name in module.__all__]


def documented_paths() -> dict[int, str]:
    """``id(obj) -> "module.name"``: where each public non-module object is documented."""
    home: dict[int, str] = {}
    for modname in MODULES:
        for name, obj in _public(importlib.import_module(modname)):
            if not isinstance(obj, types.ModuleType):
                home.setdefault(id(obj), f"{modname}.{name}")
    return home


def aliases() -> dict[str, str]:
    """Every public path of an object that is not where it is documented -> the documented path."""
    home = documented_paths()
    out = {}
    for modname in MODULES:
        for name, obj in _public(importlib.import_module(modname)):
            if not isinstance(obj, types.ModuleType) and home[id(obj)] != f"{modname}.{name}":
                out[f"{modname}.{name}"] = home[id(obj)]
    return out


def _directive(path: str, obj: Any) -> str:
    if inspect.isclass(obj):
        return f".. autoclass:: {path}\n   :members:\n   :show-inheritance:\n"
    return f".. autofunction:: {path}\n"


def _signature(obj: Any) -> str:
    """``(a, b=None, *, c=1)``: the call signature without annotations ("" where it has none)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    empty = inspect.Parameter.empty
    params = [p.replace(annotation=empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=empty))


def renamed(home: dict[int, str]) -> list[tuple[str, Any, str]]:
    """``(name, obj, documented path)`` for each non-module name of ``ott_fast.__all__`` whose documented path
    ends in another name (``sliced_directions`` -> ``ott_fast.sliced.directions``)."""
    out = []
    for name, obj in _public(importlib.import_module(TOP)):
        if not isinstance(obj, types.ModuleType) and home[id(obj)].rsplit(".", 1)[1] != name:
            out.append((name, obj, home[id(obj)]))
    return out


def _alias_entry(name: str, obj: Any, target: str) -> str:
    """An index entry ``ott_fast.<name>`` for a re-export under another name, pointing to its documentation."""
    kind, role = ("class", "class") if inspect.isclass(obj) else ("function", "func")
    return (
        f".. py:{kind}:: {TOP}.{name}{_signature(obj) if kind == 'function' else ''}\n\n"
        f"   ``otf.{name}`` is :{role}:`{target}`, documented there: {_summary(obj)}\n"
    )


def page(modname: str, home: dict[int, str]) -> str:
    """The reStructuredText page of one module."""
    module = importlib.import_module(modname)
    title = f"``{modname}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {modname}", "   :no-members:", ""]
    here, elsewhere, submodules = [], [], []
    for name, obj in _public(module):
        if isinstance(obj, types.ModuleType):
            submodules.append((name, obj))
        elif home[id(obj)] == f"{modname}.{name}":
            here.append((name, obj))
        else:
            elsewhere.append((name, obj))
    if modname == TOP:
        lines += ["Every public name", "-----------------", "", ".. list-table::", "   :header-rows: 1", ""]
        lines += ["   * - name", "     - what it is"]
        for name, obj in _public(module):
            target = obj.__name__ if isinstance(obj, types.ModuleType) else home[id(obj)]
            role = "mod" if isinstance(obj, types.ModuleType) else "obj"
            lines += [f"   * - :{role}:`{name} <{target}>`", f"     - {_summary(obj)}"]
        lines.append("")
    else:
        if elsewhere or submodules:
            lines += ["Also listed here", "----------------", ""]
            for name, obj in submodules:
                lines.append(f"- ``{name}``: the module :mod:`{obj.__name__}`.")
            for name, obj in elsewhere:
                lines.append(f"- ``{name}``: documented as :obj:`{home[id(obj)]}`.")
            lines.append("")
    if here:
        lines += ["Reference", "---------", ""]
        for name, obj in here:
            lines += [_directive(f"{modname}.{name}", obj)]
    if modname == TOP and renamed(home):
        lines += ["Exported under another name", "---------------------------", ""]
        lines += [_alias_entry(name, obj, target) for name, obj, target in renamed(home)]
    return "\n".join(lines) + "\n"


def write(out_dir: str | pathlib.Path) -> list[str]:
    """Writes ``<out_dir>/<module>.rst`` for every module of :data:`MODULES`, rewriting only changed pages
    (so Sphinx rereads only those); returns the page names."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    home = documented_paths()
    names = []
    for modname in MODULES:
        path = out / f"{modname}.rst"
        text = page(modname, home)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        names.append(modname)
    return names
