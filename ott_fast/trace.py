"""Convergence curves: run several solvers on one problem, get error and optimality gap against iterations and
seconds, and plot them on one figure.

Every curve uses the same error, the L1 marginal violation ``|P 1 - a|_1 + |P^T 1 - b|_1``, and the same
optimality gap ``D* - D(f, g)`` of the dual ``D(f, g) = <a, f> + <b, g> - eps (sum P - |a| |b|)``, with ``D*``
the best dual any curve reached. This module holds our own solvers' curves and the plotting; the runners
that time POT and OTT-JAX on the same problems live in the benchmarks (``benchmarks/curves.py``).

Seconds are honest: nothing runs on the host inside a timed loop, and compilation is excluded (each compiled
solve runs once before it is timed). Sinkhorn's iterations all cost the same, so its curve's seconds are the
iteration counts times the measured cost per iteration of the whole run. SNS's Newton steps do not, so its
solve is timed again at every Newton budget (``newton_budget`` is traced: no recompilation). Each curve's
``timing`` says which.

Example:
    >>> import jax, ott_fast as otf
    >>> from ott_fast import trace
    >>> c = jax.random.uniform(jax.random.PRNGKey(0), (60, 60))
    >>> geom = otf.Geometry(c, epsilon=0.02)
    >>> curves = trace.with_gaps([trace.sinkhorn_curve(geom, tol=1e-5), trace.sns_curve(geom, tol=1e-5)])
    >>> [c.label for c in curves], bool(curves[1].errors[-1] <= 1e-5)
    (['sinkhorn', 'sns'], True)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast._progress import progress_bar
from ott_fast.entropic.sinkhorn import sinkhorn
from ott_fast.entropic.sns import sns
from ott_fast.geometry import Geometry, PointCloud

Geom = Geometry | PointCloud

__all__ = ["Curve", "sinkhorn_curve", "sns_curve", "with_gaps", "plot", "best_time"]


class Curve(NamedTuple):
    """One solver's convergence curve; arrays are NumPy ``[k]`` (one entry per recorded check).

    Attributes:
        label: the legend entry.
        iterations: iterations done at each entry.
        errors: L1 marginal error at each entry.
        seconds: wall-clock seconds at each entry (compilation excluded; see ``timing``).
        duals: dual objective at each entry, or ``None`` where the solver does not expose it.
        gaps: ``D* - D`` at each entry once :func:`with_gaps` has run, else ``None``.
        timing: how ``seconds`` was measured.
        total_seconds: the measured time of the whole solve.

    Example:
        >>> import numpy as np
        >>> c = Curve("mine", np.array([1.0, 2.0]), np.array([1e-2, 1e-4]), np.array([0.1, 0.2]), None, None, "", 0.2)
        >>> c.label, c.errors[-1]
        ('mine', np.float64(0.0001))
    """

    label: str
    iterations: np.ndarray
    errors: np.ndarray
    seconds: np.ndarray
    duals: np.ndarray | None
    gaps: np.ndarray | None
    timing: str
    total_seconds: float


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """``(seconds, output)``: the fastest of ``repeats`` calls of ``fn()``, after one untimed call.

    The untimed call compiles (and warms caches), so the seconds are those of a solve, never of its
    compilation; every call is waited on with ``jax.block_until_ready`` (JAX dispatches asynchronously).

    Args:
        fn: a function of no arguments returning a pytree of arrays (e.g. a jitted solve's outputs).
        repeats: the number of timed calls (at least 1).

    Returns:
        ``(seconds, output)``: the best wall time in seconds (a float) and the last call's output.

    Example:
        >>> import jax.numpy as jnp
        >>> from ott_fast.trace import best_time
        >>> secs, out = best_time(lambda: jnp.ones(3).sum(), repeats=2)
        >>> float(out), secs >= 0
        (3.0, True)
    """
    out = jax.block_until_ready(fn())  # compiles: never timed
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best, out


def _weights(geom: Geom, a: Any, b: Any) -> tuple[jax.Array, jax.Array]:
    n, m = geom.shape
    a = jnp.full((n,), 1.0 / n, geom.dtype) if a is None else jnp.asarray(a, geom.dtype)
    b = jnp.full((m,), 1.0 / m, geom.dtype) if b is None else jnp.asarray(b, geom.dtype)
    return a, b


def sinkhorn_curve(
    geom: Geom, a: Any = None, b: Any = None, *, label: str = "sinkhorn", repeats: int = 3, **kwargs: Any
) -> Curve:
    """The curve of :func:`~ott_fast.sinkhorn` on ``geom`` with ``kwargs`` (``tol``, ``schedule``,
    ``acceleration``, ...). Seconds: iterations times the run's measured cost per iteration. With a
    ``schedule``, the duals (hence gaps) of checks made before epsilon reached its target are NaN: they are
    duals of another problem.

    Args:
        geom: the problem's geometry.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        label: the curve's name in plots and tables.
        repeats: timed runs after a compiling one; the fastest counts (:func:`best_time`).
        **kwargs: passed to :func:`~ott_fast.sinkhorn`.

    Example:
        >>> import jax, ott_fast as otf
        >>> geom = otf.Geometry(jax.random.uniform(jax.random.PRNGKey(0), (30, 40)), epsilon=0.05)
        >>> curve = otf.trace.sinkhorn_curve(geom, tol=1e-4, acceleration="none", repeats=1)
        >>> curve.errors.shape == curve.seconds.shape, bool(curve.errors[-1] <= 1e-4)
        (True, True)
    """
    a, b = _weights(geom, a, b)
    check = kwargs.get("check_every", 5)
    solve = jax.jit(lambda g, a, b: sinkhorn(g, a, b, **kwargs))
    secs, out = best_time(lambda: solve(geom, a, b), repeats)
    errs, duals = np.asarray(out.errors), np.asarray(out.duals)
    keep = np.isfinite(errs)
    its = (1 + check * (1 + np.arange(errs.shape[0])))[keep].astype(float)
    its[-1] = float(out.n_iters)
    per_iter = secs / float(out.n_iters)
    timing = "iterations x measured seconds per iteration"
    duals = duals[keep]
    schedule = kwargs.get("schedule")
    if schedule is not None:  # duals at a larger epsilon do not compare with D*: no gap until eps is reached
        eps = float(out.geom.epsilon)  # the solve's: its relative epsilon is under a, b
        init = float(out.geom.kernel().max_cost(a, b) if schedule.init is None else schedule.init)
        eps_at = np.maximum(eps, init * float(schedule.decay) ** (its - 1))
        duals = np.where(eps_at > eps * (1 + 1e-9), np.nan, duals)
    return Curve(label, its, errs[keep], its * per_iter, duals, None, timing, secs)


def sns_curve(
    geom: Geom,
    a: Any = None,
    b: Any = None,
    *,
    label: str = "sns",
    repeats: int = 3,
    progress: bool = True,
    **kwargs: Any,
) -> Curve:
    """The curve of :func:`~ott_fast.sns` on ``geom`` with ``kwargs``. Seconds: the solve timed at every
    Newton budget (the warm-up's share in proportion to its iterations), with a progress bar over the
    budgets (``progress=False``: silent; the bar advances between timed solves, never inside one).

    Args:
        geom: the problem's geometry.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        label: the curve's name in plots and tables.
        repeats: timed runs per budget after a compiling one; the fastest counts (:func:`best_time`).
        progress: show the progress bar over the budgets.
        **kwargs: passed to :func:`~ott_fast.sns`.

    Example:
        >>> import jax, ott_fast as otf
        >>> geom = otf.Geometry(jax.random.uniform(jax.random.PRNGKey(0), (30, 30)), epsilon=0.02)
        >>> curve = otf.trace.sns_curve(geom, tol=1e-5, repeats=1, progress=False)
        >>> bool(curve.errors[-1] <= 1e-5), curve.iterations.shape == curve.seconds.shape
        (True, True)
    """
    a, b = _weights(geom, a, b)
    kwargs.pop("newton_budget", None)
    cap = kwargs.setdefault("max_newton_iters", 50)
    solve = jax.jit(lambda g, a, b, k: sns(g, a, b, newton_budget=k, **kwargs))
    secs, out = best_time(lambda: solve(geom, a, b, cap), repeats)
    n_newton = int(out.newton.n_newton)
    budgets = progress_bar(range(n_newton + 1), desc=label, unit="budget", progress=progress, leave=False)
    budget_secs = np.array([best_time(lambda k=k: solve(geom, a, b, k).f, repeats)[0] for k in budgets])
    errs, duals, its = (np.asarray(v) for v in (out.errors, out.duals, out.trace_iters))
    keep = np.isfinite(errs)
    k_w = int(np.sum(keep[: errs.shape[0] - cap]))
    warm = budget_secs[0] * its[:k_w] / max(its[k_w - 1], 1.0) if k_w else np.zeros(0)
    # Each budget is timed separately, so timing noise can put budget k below budget k - 1: the curve shows
    # the running maximum, the time by which that error had certainly been reached.
    seconds = np.maximum.accumulate(np.concatenate([warm, budget_secs[1:]]))
    timing = "compiled solve timed at every Newton budget"
    return Curve(label, its[keep], errs[keep], seconds[: int(keep.sum())], duals[keep], None, timing, secs)


def with_gaps(curves: Sequence[Curve]) -> list[Curve]:
    """The curves with ``gaps = D* - duals`` filled in, ``D*`` the best dual over all of them (clipped at 0).

    Example:
        >>> import numpy as np
        >>> c = Curve("x", np.ones(2), np.ones(2), np.ones(2), np.array([0.5, 1.0]), None, "", 1.0)
        >>> with_gaps([c])[0].gaps.tolist()
        [0.5, 0.0]
    """
    best = max((np.nanmax(c.duals) for c in curves if c.duals is not None and np.isfinite(c.duals).any()), default=None)
    out = []
    for c in curves:
        gaps = None if c.duals is None or best is None else np.maximum(best - c.duals, 0.0)
        out.append(c._replace(gaps=gaps))
    return out


def plot(curves: Sequence[Curve], *, axes: Any = None, title: str | None = None) -> Any:
    """Error (top) and optimality gap (bottom) against iterations (left) and seconds (right), log scales, on
    one matplotlib figure (needs ``matplotlib``). Returns the figure.

    Args:
        curves: the curves to draw (with gaps from :func:`with_gaps` for the bottom row).
        axes: a ``2 x 2`` array of matplotlib axes to draw on, or ``None`` for a new figure.
        title: the figure's title.

    Example:
        >>> import numpy as np
        >>> c = Curve("x", np.arange(1.0, 4), np.array([1e-1, 1e-3, 1e-6]), np.arange(3.0), None, None, "", 1.0)
        >>> fig = plot([c])
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    else:
        fig = np.asarray(axes).ravel()[0].figure
    axes = np.asarray(axes).reshape(2, 2)
    for i, c in enumerate(curves):
        color = f"C{i}"
        for row, ys in enumerate((c.errors, c.gaps)):
            if ys is None:
                continue
            ys = np.maximum(np.asarray(ys, float), 1e-17)
            fin = np.isfinite(ys)
            axes[row, 0].plot(c.iterations[fin], ys[fin], ".-", color=color, label=c.label)
            axes[row, 1].plot(c.seconds[fin], ys[fin], ".-", color=color, label=c.label)
    for ax in axes.ravel():
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].set_xscale("log")
    axes[1, 0].set_xscale("log")
    axes[0, 0].set_ylabel("L1 marginal error")
    axes[1, 0].set_ylabel("optimality gap D* - D")
    axes[1, 0].set_xlabel("iterations")
    axes[1, 1].set_xlabel("seconds (compilation excluded)")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
