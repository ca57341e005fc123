"""``python -m benchmarks.batches [--quick] [--out out]``: thousands of tiny problems, equal-sized and ragged.

Minibatch OT in a training loop solves thousands of small problems at once. Each case is a batch of ``B``
problems (``B = 4096`` in the full mode) of two Gaussian clouds, solved to an L1 marginal error of 1e-3 (every
final plan is rescored with the same formula) at one absolute epsilon, ``0.05 x`` the batch's mean squared
Euclidean cost, given identically to every solver:

- ``ott_fast vmap``: one ``jax.jit(jax.vmap(...))`` of :func:`ott_fast.sinkhorn` (``batching="parallel"``:
  batched loops in which only the problems still going run a block, over cache-sized chunks of the batch on
  CPU);
- ``ott_fast loop (eager)``: a Python loop of ``otf.sinkhorn(otf.PointCloud(x_i, y_i, ...), a_i, b_i)`` calls
  on host arrays, as a user writes it without ``vmap``; ``ott_fast loop (jitted)``: the same loop over one
  jitted solve;
- ``ott-jax vmap``: OTT-JAX's ``Sinkhorn`` under ``jax.jit(jax.vmap(...))`` (threshold 1e-3);
- ``pot batch``: POT's ``ot.batch.solve_batch(method="log_sinkhorn")`` on NumPy float64 (equal sizes only:
  it has no ragged batches), timed on the first 512 problems (its ms per problem is what compares).

Ragged cases draw each problem's sizes uniformly in ``[n_min, n_max]`` and pad them with :func:`ott_fast.pad`
to ``n_max``: every JAX solver gets the padded problems with zero weights on the padding (OTT-JAX too: its
log-domain iterations accept zero weights; the loops too, so that they compile one shape, not one per
distinct ``(n_i, m_i)``). JAX solvers run in
float32; seconds exclude compilation (best of ``repeats``; the eager loop is timed once after a warm-up
call). The last column, for our ``vmap``, is the time per mean iteration against one problem of the batch's
total size (``n = m = sqrt(B) n_max``) per iteration: the batched loop's target.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli
from benchmarks.problems import l1_marginal_error
from benchmarks.runners import best_time

TOL = 1e-3
EPS_REL = 0.05
MAX_ITERS = 2000
POT_PROBLEMS = 512  # POT's NumPy loop is timed on the first 512 problems of a batch (minutes for 4096)


def make_batch(batch: int, sizes: tuple[int, int], d: int, seed: int) -> tuple[list, list]:
    """``batch`` pairs of clouds ``x[n_i, d]``, ``y[m_i, d]`` (float32), sizes uniform in ``sizes``."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(batch):
        n, m = rng.integers(sizes[0], sizes[1] + 1, size=2)
        xs.append(rng.normal(size=(n, d)).astype(np.float32))
        ys.append((0.8 * rng.normal(size=(m, d)) + 0.5).astype(np.float32))
    return xs, ys


def _mean_cost(xs: list, ys: list) -> float:
    return float(np.mean([np.mean(((x[:, None] - y[None]) ** 2).sum(-1)) for x, y in zip(xs, ys)]))


def _row(name: str, secs: float, its: Any, conv: Any, errs: list[float], batch: int) -> dict[str, Any]:
    its = np.asarray(its)
    return {
        "solver": name,
        "seconds": float(secs),
        "ms_per_problem": 1e3 * secs / batch,
        "iterations_mean": float(its.mean()),
        "iterations_max": int(its.max()),
        "converged": int(np.sum(conv)),
        "final_error_max": float(np.max(errs)),
    }


def run_case(batch: int, sizes: tuple[int, int], d: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Every solver on one batch; returns the case's JSON record."""
    xs, ys = make_batch(batch, sizes, d, seed)
    ragged = sizes[0] != sizes[1]
    eps = EPS_REL * _mean_cost(xs, ys)
    px, py = otf.pad(xs, size=sizes[1]), otf.pad(ys, size=sizes[1])
    X, Y, A, Bw = (jnp.asarray(v) for v in (px.points, py.points, px.weights, py.weights))

    def errors(plans: Any) -> list[float]:
        plans = np.asarray(plans)
        return [
            l1_marginal_error(p[: x.shape[0], : y.shape[0]], np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)))
            for p, x, y in zip(plans, xs, ys)
        ]

    def ours(x: jax.Array, y: jax.Array, a: jax.Array, b: jax.Array) -> tuple:
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b, tol=TOL, max_iters=MAX_ITERS, batching="parallel")
        return out.n_iters, out.matrix, out.converged

    rows = []
    secs, (its, plans, conv) = best_time(jax.jit(jax.vmap(ours)), X, Y, A, Bw, repeats=repeats)
    rows.append(_row("ott_fast vmap", secs, its, conv, errors(plans), batch))

    # Eager calls on the padded problems: one shape, one compilation (unpadded ragged clouds would compile
    # once per distinct (n_i, m_i), thousands of times here).
    hx, hy, ha, hb = (np.asarray(v) for v in (X, Y, A, Bw))

    def eager_loop() -> list:
        outs = [
            otf.sinkhorn(otf.PointCloud(hx[i], hy[i], epsilon=eps), ha[i], hb[i], tol=TOL, max_iters=MAX_ITERS)
            for i in range(batch)
        ]
        return [(o.n_iters, o.matrix, o.converged) for o in jax.block_until_ready(outs)]

    eager_loop()  # compiles once
    t0 = time.perf_counter()
    res = eager_loop()
    secs = time.perf_counter() - t0
    plans = [r[1] for r in res]
    rows.append(_row("ott_fast loop (eager)", secs, [r[0] for r in res], [r[2] for r in res], errors(plans), batch))

    single = jax.jit(ours)

    def jitted_loop(x: jax.Array, y: jax.Array, a: jax.Array, b: jax.Array) -> tuple:
        return tuple(jnp.stack(z) for z in zip(*[single(x[i], y[i], a[i], b[i]) for i in range(batch)]))

    secs, (its, plans, conv) = best_time(jitted_loop, X, Y, A, Bw, repeats=1)
    rows.append(_row("ott_fast loop (jitted)", secs, its, conv, errors(plans), batch))

    rows.append(_ott_jax(X, Y, A, Bw, eps, repeats, batch, errors))
    if not ragged:
        k = min(batch, POT_PROBLEMS)
        rows.append(_pot(np.stack(xs[:k]), np.stack(ys[:k]), eps, k, errors))
    ours_row = rows[0]
    for r in rows:  # per problem: POT runs on the first POT_PROBLEMS only
        r["ott_fast_vmap_speedup"] = r["ms_per_problem"] / ours_row["ms_per_problem"]
    ours_row["ms_per_mean_iteration"] = 1e3 * ours_row["seconds"] / ours_row["iterations_mean"]
    ours_row["total_size_ms_per_iteration"] = _total_size_ms_per_iter(batch, sizes[1], d, eps)
    label = f"{sizes[0]}..{sizes[1]}" if ragged else f"{sizes[0]}"
    return {
        "case": f"{batch} problems, n, m = {label}, d = {d}" + (" (padded)" if ragged else ""),
        "batch": batch,
        "sizes": list(sizes),
        "d": d,
        "epsilon": eps,
        "results": rows,
    }


def _ott_jax(X: Any, Y: Any, A: Any, Bw: Any, eps: float, repeats: int, batch: int, errors: Any) -> dict[str, Any]:
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    solver = ott_sinkhorn.Sinkhorn(threshold=TOL, max_iterations=MAX_ITERS)

    def theirs(x: jax.Array, y: jax.Array, a: jax.Array, b: jax.Array) -> tuple:
        out = solver(linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=eps), a, b))
        return out.n_iters, out.matrix, out.converged

    secs, (its, plans, conv) = best_time(jax.jit(jax.vmap(theirs)), X, Y, A, Bw, repeats=repeats)
    return _row("ott-jax vmap", secs, its, conv, errors(plans), batch)


def _pot(xs: np.ndarray, ys: np.ndarray, eps: float, batch: int, errors: Any) -> dict[str, Any]:
    """POT's batched log-domain Sinkhorn (the loop of ``solve_batch(method="log_sinkhorn")``, called directly
    for its iteration count). Its stopping rule is the largest L2 row-marginal error of the batch, checked
    every 10 iterations; ``tol / sqrt(n)`` there guarantees our L1 ``tol`` (its columns are exact)."""
    from ot.batch import bregman_log_projection_batch, dist_batch

    x64, y64 = xs.astype(np.float64), ys.astype(np.float64)
    n, m = xs.shape[1], ys.shape[1]
    a, b = np.full((batch, n), 1.0 / n), np.full((batch, m), 1.0 / m)
    t0 = time.perf_counter()
    res = bregman_log_projection_batch(
        -dist_batch(x64, y64) / eps, a, b, max_iter=MAX_ITERS, tol=TOL / np.sqrt(n), grad="detach"
    )
    secs = time.perf_counter() - t0
    errs = errors(res["T"])
    its = np.full(batch, int(res["n_iters"]) + 1)  # one count for the whole batch
    return _row(f"pot batch (float64, {batch} problems)", secs, its, np.asarray(errs) <= TOL, errs, batch)


def _total_size_ms_per_iter(batch: int, n: int, d: int, eps: float) -> float:
    """ms per iteration of one problem with as many cost entries as the batch (a fixed 30-iteration run)."""
    size = int(round(np.sqrt(batch) * n))
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(size, d)), jnp.float32)
    y = jnp.asarray(0.8 * rng.normal(size=(size, d)) + 0.5, jnp.float32)
    solve = jax.jit(lambda x, y: otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), tol=0.0, max_iters=30).f)
    secs, _ = best_time(solve, x, y, repeats=2)
    return 1e3 * secs / 31  # the first iteration, then 30


def print_case(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}  (epsilon = {EPS_REL} x mean cost = {case['epsilon']:.4g}, tol = {TOL:g})")
    print(f"{'solver':<24}{'time [s]':>10}{'ms/problem':>12}{'iters mean':>11}{'max':>6}{'conv':>7}{'max err':>10}")
    for r in case["results"]:
        print(
            f"{r['solver']:<24}{r['seconds']:>10.3f}{r['ms_per_problem']:>12.3f}{r['iterations_mean']:>11.1f}"
            f"{r['iterations_max']:>6}{r['converged']:>7}{r['final_error_max']:>10.1e}"
        )
    ours = case["results"][0]
    others = ", ".join(f"{r['solver']} {r['ott_fast_vmap_speedup']:.1f}x" for r in case["results"][1:])
    print(f"ott_fast vmap is faster than: {others}")
    print(
        f"ott_fast vmap: {ours['ms_per_mean_iteration']:.1f} ms per mean iteration; one problem of the batch's "
        f"total size: {ours['total_size_ms_per_iteration']:.1f} ms per iteration"
    )


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("python -m benchmarks.batches", __doc__, "256 problems, two cases (smoke test, < 1 minute)")
    args = args.parse_args(argv)
    t0 = time.time()
    if args.quick:
        batch, repeats, cases = 256, 1, [((32, 32), 2), ((16, 48), 4)]
    else:
        batch, repeats = 4096, 3
        cases = [((32, 32), 2), ((64, 64), 2), ((64, 64), 16), ((128, 128), 2), ((32, 128), 8)]
    results = []
    for sizes, d in cases:
        results.append(run_case(batch, sizes, d, repeats))
        print_case(results[-1])
    path = cli.write_record(args.out, "batches.json", {"meta": cli.run_meta(args.quick, t0, tol=TOL), "cases": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
