"""Convergence curves: run several solvers on one problem, get error and optimality gap against iterations and
seconds, and plot them on one figure.

Every curve uses the same error, the L1 marginal violation ``|P 1 - a|_1 + |P^T 1 - b|_1`` (OTT-JAX's own
trace is the exception, and its label says so), and the same optimality gap ``D* - D(f, g)`` of the dual
``D(f, g) = <a, f> + <b, g> - eps (sum P - |a| |b|)``, with ``D*`` the best dual any curve reached.

Seconds are honest: nothing runs on the host inside a timed loop, and compilation is excluded (each compiled
solve runs once before it is timed). Sinkhorn's iterations all cost the same, so its curve's seconds are the
iteration counts times the measured cost per iteration of the whole run. SNS's Newton steps do not, so its
solve is timed again at every Newton budget (``newton_budget`` is traced: no recompilation). POT runs in
chunks with warm starts and only the chunks are timed. Each curve's ``timing`` says which.

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

from ott_fast.entropic.sinkhorn import sinkhorn
from ott_fast.entropic.sns import sns
from ott_fast.geometry import Geometry, PointCloud

Geom = Geometry | PointCloud

__all__ = ["Curve", "sinkhorn_curve", "sns_curve", "ott_jax_curve", "pot_curve", "with_gaps", "plot"]


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


def _best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
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
    secs, out = _best_time(lambda: solve(geom, a, b), repeats)
    errs, duals = np.asarray(out.errors), np.asarray(out.duals)
    keep = np.isfinite(errs)
    its = (1 + check * (1 + np.arange(errs.shape[0])))[keep].astype(float)
    its[-1] = float(out.n_iters)
    per_iter = secs / float(out.n_iters)
    timing = "iterations x measured seconds per iteration"
    duals = duals[keep]
    schedule = kwargs.get("schedule")
    if schedule is not None:  # duals at a larger epsilon do not compare with D*: no gap until eps is reached
        eps = float(geom.epsilon)
        init = float(geom.prepared().max_cost() if schedule.init is None else schedule.init)
        eps_at = np.maximum(eps, init * float(schedule.decay) ** (its - 1))
        duals = np.where(eps_at > eps * (1 + 1e-9), np.nan, duals)
    return Curve(label, its, errs[keep], its * per_iter, duals, None, timing, secs)


def sns_curve(
    geom: Geom, a: Any = None, b: Any = None, *, label: str = "sns", repeats: int = 3, **kwargs: Any
) -> Curve:
    """The curve of :func:`~ott_fast.sns` on ``geom`` with ``kwargs``. Seconds: the solve timed at every
    Newton budget (the warm-up's share in proportion to its iterations).

    Example:
        >>> import jax, ott_fast as otf
        >>> geom = otf.Geometry(jax.random.uniform(jax.random.PRNGKey(0), (30, 30)), epsilon=0.02)
        >>> curve = otf.trace.sns_curve(geom, tol=1e-5, repeats=1)
        >>> bool(curve.errors[-1] <= 1e-5), bool(all(curve.seconds[1:] >= curve.seconds[:-1]))
        (True, True)
    """
    a, b = _weights(geom, a, b)
    kwargs.pop("newton_budget", None)
    cap = kwargs.setdefault("max_newton_iters", 50)
    solve = jax.jit(lambda g, a, b, k: sns(g, a, b, newton_budget=k, **kwargs))
    secs, out = _best_time(lambda: solve(geom, a, b, cap), repeats)
    n_newton = int(out.newton.n_newton)
    budget_secs = np.array([_best_time(lambda k=k: solve(geom, a, b, k).f, repeats)[0] for k in range(n_newton + 1)])
    errs, duals, its = (np.asarray(v) for v in (out.errors, out.duals, out.trace_iters))
    keep = np.isfinite(errs)
    k_w = int(np.sum(keep[: errs.shape[0] - cap]))
    warm = budget_secs[0] * its[:k_w] / max(its[k_w - 1], 1.0) if k_w else np.zeros(0)
    seconds = np.maximum.accumulate(np.concatenate([warm, budget_secs[1:]]))
    timing = "compiled solve timed at every Newton budget"
    return Curve(label, its[keep], errs[keep], seconds[: int(keep.sum())], duals[keep], None, timing, secs)


def _dense(geom: Geom) -> np.ndarray:
    return np.asarray(geom.cost_matrix, np.float64)


def _np_dual(cost: np.ndarray, f: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> float:
    plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - cost) / eps)
    return float(a @ f + b @ g - eps * (plan.sum() - a.sum() * b.sum()))


def _np_error(plan: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum())


def ott_jax_curve(
    geom: Geom,
    a: Any = None,
    b: Any = None,
    *,
    tol: float = 1e-3,
    max_iters: int = 2000,
    inner_iterations: int = 10,
    label: str = "ott-jax (its own error)",
    repeats: int = 3,
) -> Curve:
    """OTT-JAX's ``Sinkhorn`` (needs ``ott-jax``) on the same cost matrix and epsilon. Its trace holds its own
    error (the L1 violation of one marginal), so the curve plots that; the dual is known at the end only.

    Example:
        >>> import jax, ott_fast as otf
        >>> geom = otf.Geometry(jax.random.uniform(jax.random.PRNGKey(0), (30, 40)), epsilon=0.05)
        >>> curve = otf.trace.ott_jax_curve(geom, tol=1e-4, repeats=1)
        >>> bool(curve.errors[-1] <= 1e-4)
        True
    """
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    a, b = _weights(geom, a, b)
    solver = ott_sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iters, inner_iterations=inner_iterations)

    @jax.jit
    def solve(c: jax.Array, eps: jax.Array, a: jax.Array, b: jax.Array) -> tuple:
        out = solver(linear_problem.LinearProblem(geometry.Geometry(c, epsilon=eps), a, b))
        return out.f, out.g, out.errors, out.n_iters

    c = jnp.asarray(geom.cost_matrix)
    secs, (f, g, errs, it) = _best_time(lambda: solve(c, geom.epsilon, a, b), repeats)
    errs = np.asarray(errs).reshape(-1)
    keep = errs >= 0  # OTT-JAX marks unused slots with -1
    its = (inner_iterations * (1 + np.arange(errs.shape[0])))[keep].astype(float)
    eps = float(geom.epsilon)
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    # OTT-JAX's plan is exp((f + g - C) / eps): in our convention the potentials shift by eps log(a), eps log(b).
    fo, go = np.asarray(f, np.float64) - eps * np.log(an), np.asarray(g, np.float64) - eps * np.log(bn)
    duals = np.full(its.shape, np.nan)
    duals[-1] = _np_dual(_dense(geom), fo, go, an, bn, eps)
    per_iter = secs / max(int(it), 1)
    timing = "iterations x measured seconds per iteration"
    return Curve(label, its, errs[keep], its * per_iter, duals, None, timing, secs)


def pot_curve(
    geom: Geom,
    a: Any = None,
    b: Any = None,
    *,
    tol: float = 1e-3,
    max_iters: int = 2000,
    chunk: int = 20,
    label: str = "pot",
) -> Curve:
    """POT's log-domain ``ot.sinkhorn`` (needs ``pot``) in float64, run in chunks of ``chunk`` iterations with
    warm starts; the error and dual of each chunk's plan are computed outside the timed calls.

    Example:
        >>> import jax, ott_fast as otf
        >>> geom = otf.Geometry(jax.random.uniform(jax.random.PRNGKey(0), (30, 40)), epsilon=0.05)
        >>> curve = otf.trace.pot_curve(geom, tol=1e-4)
        >>> bool(curve.errors[-1] <= 1e-4)
        True
    """
    import ot

    a, b = _weights(geom, a, b)
    an, bn, cost = np.asarray(a, np.float64), np.asarray(b, np.float64), _dense(geom)
    eps = float(geom.epsilon)
    u, v = np.zeros(len(an)), np.zeros(len(bn))
    its, errs, duals, secs = [], [], [], []
    total, it = 0.0, 0
    while it < max_iters:
        t0 = time.perf_counter()
        plan, log = ot.sinkhorn(
            an,
            bn,
            cost,
            eps,
            method="sinkhorn_log",
            numItermax=chunk,
            stopThr=0.0,
            log=True,
            warn=False,
            warmstart=(u, v),
        )
        total += time.perf_counter() - t0
        u, v, it = log["log_u"], log["log_v"], it + chunk
        # POT's plan is a_i b_j exp(log_u_i + log_v_j - C / eps) with our a b factored out: f = eps (log_u - log a).
        its.append(it)
        errs.append(_np_error(plan, an, bn))
        duals.append(_np_dual(cost, eps * (u - np.log(an)), eps * (v - np.log(bn)), an, bn, eps))
        secs.append(total)
        if errs[-1] <= tol:
            break
    arr = lambda z: np.asarray(z, float)  # noqa: E731
    return Curve(label, arr(its), arr(errs), arr(secs), arr(duals), None, "sum of the timed chunks", total)


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
