"""One progress bar for long work: ``tqdm`` on the host, or a silent no-op when ``progress=False``.

Compiled code never calls it: callers run a compiled chunk (a ``lax.scan`` of steps, one timed benchmark
case), wait for its result, and only then advance the bar, so no host callback enters a jitted or timed loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    progress: bool = True,
    **tqdm_kwargs: Any,
) -> tqdm:
    """A ``tqdm`` bar over ``iterable`` (or of ``total`` units, advanced with ``.update(k)``).

    With ``progress=False`` it is a disabled ``tqdm``: it prints nothing, but iterating, ``update``,
    ``set_postfix`` and ``close`` (and use as a context manager) still work, so callers need no branches.
    The plain text bar (``tqdm.tqdm``, to stderr) is used everywhere, notebooks included, so it needs no
    widget library and renders in executed notebooks and the docs.

    Args:
        iterable: what to iterate over, or ``None`` for a manually updated bar.
        total: the number of units (default ``len(iterable)`` where it has one).
        desc: a short label in front of the bar.
        unit: the unit's name (``"step"``, ``"case"``, ...).
        progress: show the bar (``True``) or be silent (``False``).
        **tqdm_kwargs: passed to ``tqdm.tqdm`` (e.g. ``leave``, ``file``, ``mininterval``).

    Returns:
        a ``tqdm.tqdm`` instance (disabled when ``progress=False``).

    Example:
        >>> from ott_fast._progress import progress_bar
        >>> with progress_bar(total=10, unit="step", progress=False) as bar:
        ...     for _ in range(2):
        ...         bar.update(5)  # after each compiled chunk of 5 steps
        >>> [i for i in progress_bar(range(3), progress=False)]
        [0, 1, 2]
    """
    tqdm_kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress, **tqdm_kwargs)
