"""Sphinx configuration of the ott_fast documentation site (Sphinx, myst-nb, furo).

Build it with ``pip install -e ".[docs]"`` then ``sphinx-build -W -b html docs docs/_build/html``.
The example notebooks in ``examples/`` are copied to ``docs/tutorials/`` and executed during the build with
their small sizes (``OTT_FAST_SMALL=1``, the default here); ``OTT_FAST_SMALL=0`` executes them with their
full sizes, for a release build. Executed notebooks are cached per size under ``docs/_build/.jupyter_cache``.
"""

from __future__ import annotations

import copy
import os
import pathlib
import shutil
import sys
from typing import Any

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

import apigen  # noqa: E402

# ------------------------------------------------------------------------------------------ the notebooks
# Small sizes unless the caller asks for the full ones (OTT_FAST_SMALL=0); the kernels inherit the variable.
os.environ.setdefault("OTT_FAST_SMALL", "1")
SIZES = "small" if os.environ["OTT_FAST_SMALL"] == "1" else "full"
os.environ.pop("XLA_FLAGS", None)  # scaling.ipynb asks for 4 simulated devices itself
os.environ.pop("MPLBACKEND", None)  # the kernels' inline backend turns figures into the page's images
# The kernels run in docs/tutorials/ and import the installed packages only, as a reader's kernel does (the
# notebooks import ott_fast and the examples extra, never the repository's benchmarks).


def _copy_notebooks() -> None:
    """examples/*.ipynb -> docs/tutorials/ (generated, not committed); unchanged files keep their mtime."""
    dest = DOCS / "tutorials"
    dest.mkdir(exist_ok=True)
    wanted = {p.name for p in (ROOT / "examples").glob("*.ipynb")}
    for stale in dest.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        src, dst = ROOT / "examples" / name, dest / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copy2(src, dst)


_copy_notebooks()
apigen.write(DOCS / "api" / "generated")

# ------------------------------------------------------------------------------------------------ project
from ott_fast import __version__  # noqa: E402

project = "ott_fast"
author = "The ott_fast developers"
copyright = "the ott_fast developers"  # noqa: A001
release = __version__
version = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "README.md"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# ----------------------------------------------------------------------------------------------- myst-nb
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache" / SIZES)
nb_execution_timeout = 900  # seconds per cell
nb_execution_raise_on_error = True  # a failing notebook fails the build
nb_execution_show_tb = True
nb_merge_streams = True  # with _merge_streams below


def _merge_streams(outputs: list[Any]) -> list[Any]:
    """A cell's consecutive outputs of one stream joined, then carriage returns applied line by line as a
    terminal would, so a tqdm bar shows its final state once. (myst-nb's own merge ends every chunk with a
    newline first, which turns each redraw of a bar into a line of its own, and moves stdout before stderr.)"""
    merged: list[Any] = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if out["output_type"] == "stream" and prev is not None and prev["output_type"] == "stream":
            if prev["name"] == out["name"]:
                prev["text"] += out["text"]
                continue
        merged.append(copy.deepcopy(out))
    for out in merged:
        if out["output_type"] == "stream":
            lines = out["text"].split("\n")
            out["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)
    return [o for o in merged if o["output_type"] != "stream" or o["text"].strip()]


def _use_our_stream_merge() -> None:
    import myst_nb.core.render

    if hasattr(myst_nb.core.render, "coalesce_streams"):  # the name myst-nb 1.x renders stream outputs with
        myst_nb.core.render.coalesce_streams = _merge_streams


_use_our_stream_merge()

# ------------------------------------------------------------------------------------- autodoc, napoleon
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
python_use_unqualified_type_names = True
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # Attributes: as a field list, so :members: does not describe a field twice
napoleon_use_rtype = False

# ----------------------------------------------------------------------------------------------- the look
html_theme = "furo"
html_title = f"ott_fast {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_favicon = "_static/favicon.svg"
html_theme_options = {"source_repository": "", "navigation_with_keys": True}

# ------------------------------------------------------------------------------------- cross-references
ALIASES = apigen.aliases()


def _resolve_alias(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """``ott_fast.sinkhorn`` (how users call it) resolves to ``ott_fast.entropic.sinkhorn`` (where it is
    documented), and likewise for every re-exported public name."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    real = ALIASES.get(target) or ALIASES.get(f"ott_fast.{target}")
    if real is None:
        return None
    py = env.get_domain("py")
    return py.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)


def _skip_namedtuple_fields(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """NamedTuple fields are documented in their class's Attributes section, not as "Alias for field N"."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app: Any) -> None:
    app.connect("missing-reference", _resolve_alias)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
