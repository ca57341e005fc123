"""Convergence curves of the peer libraries (OTT-JAX, POT) on our problems, in :class:`ott_fast.trace.Curve`
form so that ``trace.with_gaps`` and ``trace.plot`` put them beside ours.

They are benchmark runners, not part of the package: they import the peers, and time them. Their duals are
evaluated by ott_fast's one dual implementation (``ott_fast.entropic.dual``) in float64 on the peer's
potentials converted to our convention, and POT's errors by ``problems.l1_marginal_error`` on its plan.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks.problems import l1_marginal_error
from ott_fast import _validation as val
from ott_fast.entropic import dual
from ott_fast.trace import Curve, best_time

Geom = otf.Geometry | otf.PointCloud


def _dual(cost: Any, f: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """``D(f, g)`` of the balanced problem on ``cost``, by ott_fast's dual, in float64."""
    with jax.enable_x64(True):
        geom = otf.Geometry(np.asarray(cost, np.float64), epsilon=float(eps))
        return float(dual.dual_objective(f, g, geom, jnp.asarray(a), jnp.asarray(b), 1.0, 1.0))


def pot_chunks(a: np.ndarray, b: np.ndarray, cost: np.ndarray, eps: float, max_iters: int, chunk: int) -> Any:
    """POT's log-domain ``ot.sinkhorn`` in chunks of ``chunk`` iterations with warm starts: yields
    ``(iterations, plan, log_u, log_v, seconds)`` after each chunk, seconds summed over the timed calls only.
    POT stops on the L2 norm of one marginal; chunking lets the caller score it with any error."""
    import ot

    u, v = np.zeros(len(a)), np.zeros(len(b))
    total, it = 0.0, 0
    while it < max_iters:
        t0 = time.perf_counter()
        plan, log = ot.sinkhorn(
            a, b, cost, eps, method="sinkhorn_log", numItermax=chunk, stopThr=0.0, log=True, warn=False,
            warmstart=(u, v),
        )  # fmt: skip
        total += time.perf_counter() - t0
        u, v, it = log["log_u"], log["log_v"], it + chunk
        yield it, plan, u, v, total


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
        >>> curve = ott_jax_curve(geom, tol=1e-4, repeats=1)
        >>> bool(curve.errors[-1] <= 1e-4)
        True
    """
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    a, b = val.check_weights("a", a, geom.shape[0], geom.dtype), val.check_weights("b", b, geom.shape[1], geom.dtype)
    solver = ott_sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iters, inner_iterations=inner_iterations)

    @jax.jit
    def solve(c: jax.Array, eps: jax.Array, a: jax.Array, b: jax.Array) -> tuple:
        out = solver(linear_problem.LinearProblem(geometry.Geometry(c, epsilon=eps), a, b))
        return out.f, out.g, out.errors, out.n_iters

    c = jnp.asarray(geom.cost_matrix)
    secs, (f, g, errs, it) = best_time(lambda: solve(c, geom.epsilon, a, b), repeats)
    errs = np.asarray(errs).reshape(-1)
    keep = errs >= 0  # OTT-JAX marks unused slots with -1
    its = (inner_iterations * (1 + np.arange(errs.shape[0])))[keep].astype(float)
    eps = float(geom.epsilon)
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    # OTT-JAX's plan is exp((f + g - C) / eps): in our convention the potentials shift by eps log(a), eps log(b).
    fo, go = np.asarray(f, np.float64) - eps * np.log(an), np.asarray(g, np.float64) - eps * np.log(bn)
    duals = np.full(its.shape, np.nan)
    duals[-1] = _dual(c, fo, go, an, bn, eps)
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
        >>> curve = pot_curve(geom, tol=1e-4)
        >>> bool(curve.errors[-1] <= 1e-4)
        True
    """
    a, b = val.check_weights("a", a, geom.shape[0], geom.dtype), val.check_weights("b", b, geom.shape[1], geom.dtype)
    an, bn, cost = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(geom.cost_matrix, np.float64)
    eps = float(geom.epsilon)
    its, errs, duals, secs = [], [], [], []
    total = 0.0
    for it, plan, u, v, total in pot_chunks(an, bn, cost, eps, max_iters, chunk):
        # POT's plan is a_i b_j exp(log_u_i + log_v_j - C / eps) with our a b factored out: f = eps (log_u - log a).
        its.append(it)
        errs.append(l1_marginal_error(plan, an, bn))
        duals.append(_dual(cost, eps * (u - np.log(an)), eps * (v - np.log(bn)), an, bn, eps))
        secs.append(total)
        if errs[-1] <= tol:
            break
    arr = lambda z: np.asarray(z, float)  # noqa: E731
    return Curve(label, arr(its), arr(errs), arr(secs), arr(duals), None, "sum of the timed chunks", total)
