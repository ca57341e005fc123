"""Every public name has a docstring with a runnable example (pytest runs them with --doctest-modules)."""

import inspect
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


def test_every_public_function_documents_its_arguments_or_shapes():
    vague = []
    for name, obj in _public():
        doc = inspect.getdoc(obj) or ""
        if inspect.isfunction(obj) and inspect.signature(obj).parameters and not ("Args:" in doc or "[" in doc):
            vague.append(name)
    assert not vague, f"no Args section or shapes: {vague}"
