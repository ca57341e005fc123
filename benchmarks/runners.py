"""One runner per library, with the same contract: solve to the same L1 marginal tolerance and report
iterations, time to tolerance (compilation excluded: every jitted solve runs once before it is timed),
the error curve against iterations and seconds, the final error and the transport cost ``<P, C>``.

Errors and costs are recomputed here in float64 from each library's plan (``problems.l1_marginal_error``),
so no library is scored by its own definition.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks.problems import l1_marginal_error, sq_euclidean
from ott_fast import trace


def best_time(fn: Any, *args: Any, repeats: int) -> tuple[float, Any]:
    """``(seconds, fn(*args))``: the fastest of ``repeats`` timed calls after a compiling one."""
    return trace.best_time(lambda: fn(*args), repeats)


def _result(
    name: str,
    secs: float,
    iters: int,
    curve_it: np.ndarray,
    curve_err: np.ndarray,
    plan: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    **extra: Any,
) -> dict[str, Any]:
    per_iter = secs / max(iters, 1)
    return {
        "solver": name,
        "iterations": int(iters),
        "seconds": float(secs),
        "ms_per_iter": 1e3 * per_iter,
        "final_error": l1_marginal_error(plan, a, b),
        "transport_cost": float((np.asarray(plan, np.float64) * cost).sum()),
        "curve_iters": [int(i) for i in curve_it],
        "curve_errors": [float(e) for e in curve_err],
        # Seconds at each check from this run's average cost per iteration (no host callback in the loop).
        "curve_seconds": [float(i * per_iter) for i in curve_it],
        **extra,
    }


def run_ott_fast(
    x: np.ndarray, y: np.ndarray, eps: float, tol: float, repeats: int = 3, max_iters: int = 2000, **kwargs: Any
) -> dict[str, Any]:
    """ott_fast's ``sinkhorn`` on ``PointCloud(x, y, epsilon=eps)`` (absolute epsilon), jitted."""
    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)

    @jax.jit
    def solve(x: jax.Array, y: jax.Array) -> tuple:
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), tol=tol, max_iters=max_iters, **kwargs)
        return out.n_iters, out.errors, out.matrix, out.converged

    secs, (it, errs, plan, conv) = best_time(solve, jnp.asarray(x), jnp.asarray(y), repeats=repeats)
    errs = np.asarray(errs)
    k = np.isfinite(errs)
    check = (len(errs) and max_iters // len(errs)) or 1
    curve_it = 1 + check * (1 + np.arange(len(errs)))[k]
    return _result(
        "ott_fast", secs, int(it), curve_it, errs[k], np.asarray(plan), a, b, sq_euclidean(x, y), converged=bool(conv)
    )


def run_ott_jax(
    x: np.ndarray, y: np.ndarray, eps: float, tol: float, repeats: int = 3, max_iters: int = 2000
) -> dict[str, Any]:
    """OTT-JAX's ``Sinkhorn`` (defaults: lse_mode, inner_iterations=10) with ``threshold=tol``, jitted."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    solver = ott_sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iters)

    @jax.jit
    def solve(x: jax.Array, y: jax.Array) -> tuple:
        out = solver(linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=eps)))
        return out.n_iters, out.errors, out.matrix, out.converged

    secs, (it, errs, plan, conv) = best_time(solve, jnp.asarray(x), jnp.asarray(y), repeats=repeats)
    errs = np.asarray(errs).reshape(-1)
    k = errs >= 0  # OTT-JAX marks unused trace slots with -1
    curve_it = (10 * (1 + np.arange(len(errs))))[k]
    return _result(
        "ott-jax", secs, int(it), curve_it, errs[k], np.asarray(plan), a, b, sq_euclidean(x, y), converged=bool(conv)
    )


def run_pot(
    x: np.ndarray, y: np.ndarray, eps: float, tol: float, max_iters: int = 2000, chunk: int = 10
) -> dict[str, Any]:
    """POT's log-domain ``ot.sinkhorn(method="sinkhorn_log")`` in float64 (NumPy backend).

    POT stops on the L2 norm of one marginal; to score it with the same L1 error it runs in chunks of
    ``chunk`` iterations with warm starts, the error of each chunk's plan computed outside the timing.
    """
    from benchmarks.curves import pot_chunks

    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    cost = sq_euclidean(x, y)
    secs, it, curve_it, curve_err, plan = 0.0, 0, [], [], None
    for it, plan, _, _, total in pot_chunks(a, b, cost, eps, max_iters, chunk):
        secs = total
        curve_it.append(it)
        curve_err.append(l1_marginal_error(plan, a, b))
        if curve_err[-1] <= tol:
            break
    res = _result("pot", secs, it, np.array(curve_it), np.array(curve_err), plan, a, b, cost)
    res["curve_seconds"] = [float(s) for s in np.cumsum([secs / len(curve_it)] * len(curve_it))]
    res["converged"] = bool(curve_err[-1] <= tol)
    return res


def run_batch(
    xs: np.ndarray, ys: np.ndarray, eps: np.ndarray, tol: float, repeats: int = 3, max_iters: int = 2000
) -> list[dict[str, Any]]:
    """A batch of problems ``xs[B, n, d]``, ``ys[B, m, d]`` with per-problem absolute ``eps[B]``:
    ott_fast under ``vmap``, ott_fast as a Python loop of jitted single solves, OTT-JAX under ``vmap``."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    B, n, _ = xs.shape
    m = ys.shape[1]
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    costs = [sq_euclidean(x, y) for x, y in zip(xs, ys)]
    jx, jy, je = jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(eps, dtype=xs.dtype)

    def ours(x: jax.Array, y: jax.Array, e: jax.Array, batching: str = "auto") -> tuple:
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=e), tol=tol, max_iters=max_iters, batching=batching)
        return out.n_iters, out.matrix, out.converged

    ott_solver = ott_sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iters)

    def theirs(x: jax.Array, y: jax.Array, e: jax.Array) -> tuple:
        out = ott_solver(linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=e)))
        return out.n_iters, out.matrix, out.converged

    single = jax.jit(ours)

    def loop(x: jax.Array, y: jax.Array, e: jax.Array) -> tuple:
        outs = [single(x[i], y[i], e[i]) for i in range(B)]
        return tuple(jnp.stack(z) for z in zip(*outs))

    results = []
    parallel = functools.partial(ours, batching="parallel")
    variants = (
        ("ott_fast vmap", jax.jit(jax.vmap(ours))),
        ("ott_fast vmap parallel", jax.jit(jax.vmap(parallel))),
        ("ott_fast loop", loop),
        ("ott-jax vmap", jax.jit(jax.vmap(theirs))),
    )
    for name, fn in variants:
        secs, (its, plans, conv) = best_time(fn, jx, jy, je, repeats=repeats)
        plans = np.asarray(plans)
        errs = [l1_marginal_error(p, a, b) for p in plans]
        results.append(
            {
                "solver": name,
                "problems": B,
                "seconds": float(secs),
                "ms_per_problem": 1e3 * secs / B,
                "iterations_max": int(np.max(its)),
                "iterations_mean": float(np.mean(its)),
                "converged": int(np.sum(conv)),
                "final_error_max": float(np.max(errs)),
                "transport_cost_mean": float(np.mean([(p * c).sum() for p, c in zip(plans, costs)])),
            }
        )
    return results
