"""Anderson acceleration against over-relaxation and plain Sinkhorn: iterations and time to tolerance.

    python -m benchmarks.anderson [--quick] [--out out]

ott_fast's ``sinkhorn`` with ``acceleration="none"``, ``"adaptive"`` and ``"anderson"`` on

- the Sinkhorn suite's problems (``benchmarks/__main__.py``): Gaussian clouds n = m = 4000 in d = 3 and
  d = 64, epsilon = 0.01 x the mean cost (absolute, as given to every solver), float32, tol 1e-3;
- the SNS suite's problems (``benchmarks/sns.py``): random assignment n = 500 and 2000, W2 and W1 between
  two 28 x 28 images, eta = 1 / epsilon = 1200 on costs scaled to [0, 1], float64, tol 1e-10;
- a vmapped batch of 4096 problems n = m = 64 in d = 2, epsilon = 0.05 relative "mean", float32, tol 1e-3.

``--quick`` runs small versions (n = 300 clouds, random assignment n = 100, a batch of 256) in about a
minute. Times are best of ``repeats``, compilation excluded; iteration counts are the robust evidence
(timings move with the machine's load).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli, problems, sns
from benchmarks.runners import best_time

ACCELERATIONS = ("none", "adaptive", "anderson")


def _row(problem: str, acc: str, secs: float, iters: Any, converged: Any, error: Any) -> dict[str, Any]:
    its = np.asarray(iters)
    return {
        "problem": problem,
        "acceleration": acc,
        "iterations": int(its.max()),
        "iterations_mean": float(its.mean()),
        "seconds": float(secs),
        "converged": int(np.sum(np.asarray(converged))),
        "problems": int(its.size),
        "max_error": float(np.max(np.asarray(error))),
    }


def solve_rows(problem: str, make_geom: Any, args: tuple, tol: float, max_iters: int, check: int, repeats: int) -> list:
    """One row per acceleration for ``sinkhorn(make_geom(*args))`` (uniform weights unless ``args`` has them)."""
    rows = []
    for acc in ACCELERATIONS:

        @jax.jit
        def solve(*xs: jax.Array, acc: str = acc) -> tuple:
            geom, w = make_geom(*xs)
            out = otf.sinkhorn(geom, *w, tol=tol, max_iters=max_iters, check_every=check, acceleration=acc)
            return out.n_iters, out.converged, out.error

        secs, (it, conv, err) = best_time(solve, *args, repeats=repeats)
        rows.append(_row(problem, acc, secs, it, conv, err))
    return rows


def clouds_rows(n: int, d: int, repeats: int) -> list:
    x, y = problems.gaussian_clouds(n, d, seed=d)
    eps = 0.01 * float(problems.sq_euclidean(x, y).mean())
    make = lambda x, y: (otf.PointCloud(x, y, epsilon=eps), ())  # noqa: E731
    return solve_rows(f"clouds n=m={n}, d={d}", make, (jnp.asarray(x), jnp.asarray(y)), 1e-3, 2000, 5, repeats)


def sns_rows(name: str, cost: np.ndarray, a: np.ndarray, b: np.ndarray, max_iters: int, repeats: int) -> list:
    make = lambda c, a, b: (otf.Geometry(c, epsilon=1.0 / sns.ETA), (a, b))  # noqa: E731
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(v, jnp.float64) for v in (cost, a, b))
        return solve_rows(name, make, args, sns.TOL, max_iters, 50, repeats)


def batch_rows(batch: int, repeats: int, n: int = 64, d: int = 2) -> list:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(batch, n, d)).astype(np.float32)
    ys = (rng.normal(size=(batch, n, d)) * 0.8 + 0.5).astype(np.float32)
    rows = []
    for acc in ACCELERATIONS:

        def one(x: jax.Array, y: jax.Array, acc: str = acc) -> tuple:
            geom = otf.PointCloud(x, y, epsilon=0.05, relative_epsilon="mean")
            out = otf.sinkhorn(geom, tol=1e-3, acceleration=acc)
            return out.n_iters, out.converged, out.error

        secs, (it, conv, err) = best_time(jax.jit(jax.vmap(one)), jnp.asarray(xs), jnp.asarray(ys), repeats=repeats)
        rows.append(_row(f"vmap batch {batch}, n=m={n}, d={d}", acc, secs, it, conv, err))
    return rows


def print_rows(rows: list, header: bool = False) -> None:
    if header:
        print(
            f"{'problem':<34}{'acceleration':>13}{'iters':>8}{'mean':>9}{'seconds':>10}{'converged':>12}{'max err':>10}"
        )
    for r in rows:
        conv = f"{r['converged']}/{r['problems']}"
        print(
            f"{r['problem']:<34}{r['acceleration']:>13}{r['iterations']:>8}{r['iterations_mean']:>9.1f}"
            f"{r['seconds']:>10.3f}{conv:>12}{r['max_error']:>10.1e}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("python -m benchmarks.anderson", __doc__, "small sizes (about a minute)", progress=False)
    args = args.parse_args(argv)
    t0 = time.time()
    if args.quick:
        sizes, assignment, images, batch, repeats, sns_cap = (300,), (100,), False, 256, 1, 5000
    else:
        sizes, assignment, images, batch, repeats, sns_cap = (4000,), (500, 2000), True, 4096, 3, 50_000
    rows: list = []
    print_rows([], header=True)
    for n in sizes:
        for d in (3, 64):
            rows += clouds_rows(n, d, repeats)
            print_rows(rows[-3:])
    todo = [(f"random assignment n={n}", sns.random_assignment(n)) for n in assignment]
    if images:
        todo += [("W2 images", sns.image_problem(2)), ("W1 images", sns.image_problem(1))]
    for name, problem in todo:
        rows += sns_rows(name, *problem, sns_cap, repeats)
        print_rows(rows[-3:])
    rows += batch_rows(batch, repeats)
    print_rows(rows[-3:])
    print("wrote", cli.write_record(args.out, "anderson.json", {"meta": cli.run_meta(args.quick, t0), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
