"""``python -m benchmarks.sns_preconditioner``: CG iterations of SNS's Schur system, Jacobi against two-level.

A trial for the preconditioner of the Newton step's Schur complement ``M = diag(dr) - S diag(1 / dc) S^T``
(``ott_fast/entropic/sns.py``), on the SNS suite's problems (float64, eta = 1200). The plan is Sinkhorn's at
an L1 error of 1e-3 and 1e-6; ``S`` keeps the entries the masked Hessian keeps (at least ``1e-7 / m`` of their
row's mass); the right-hand side is the Newton step's. Conjugate gradient runs in NumPy to a relative residual
of 1e-8 with:

- ``jacobi``: ``diag(M)`` (what ``sns`` uses);
- ``two-level k``: Jacobi plus an additive coarse correction ``R^T (R M R^T)^{-1} R`` on ``k`` aggregates
  of rows, grouped by the column where their plan row peaks (rows that send mass to nearby columns share
  a group), so the smooth, near-Laplacian modes that Jacobi leaves to CG are solved exactly.

It counts iterations only. Wired into ``sns`` and timed, the correction did not pay: see the ``sns`` module
docstring (fewer CG iterations, more seconds at these sizes).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli
from benchmarks.sns import ETA, image_problem, random_assignment


def cg_iterations(m: np.ndarray, rhs: np.ndarray, prec: Any, rtol: float = 1e-8, maxiter: int = 2000) -> int:
    """Preconditioned CG iterations on ``m x = rhs`` from 0 until ``|r| <= rtol |rhs|``: the package's CG, in
    float64 under ``main`` (``prec`` must accept JAX arrays)."""
    mat = jnp.asarray(m)
    out = otf.entropic.dual.cg_solve(lambda v: mat @ v, jnp.asarray(rhs), prec, rtol=rtol, maxiter=maxiter)
    return int(out.iterations)


def schur_system(cost: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float) -> tuple:
    """``(M, rhs, diag, plan)`` of SNS's Newton step at Sinkhorn's plan of L1 error ``tol``."""
    with jax.enable_x64(True):
        geom = otf.Geometry(jnp.asarray(cost, jnp.float64), epsilon=1.0 / ETA)
        plan = np.asarray(otf.sinkhorn(geom, jnp.asarray(a), jnp.asarray(b), tol=tol, max_iters=50_000).matrix)
    n, m = plan.shape
    r, c = plan.sum(1), plan.sum(0)
    lam = 1e-2 * min((np.abs(r - a).sum() + np.abs(c - b).sum()) / a.sum(), 1.0)
    s = np.where(plan / r[:, None] >= 1e-7 / m, plan, 0.0)
    dr, dc = r * (1 + lam), c * (1 + lam)
    mat = np.diag(dr) - (s / dc) @ s.T
    rhs = (a - r) - s @ ((b - c) / dc)
    return mat, rhs, np.maximum(np.diag(mat), lam * r), plan


def two_level(mat: np.ndarray, diag: np.ndarray, plan: np.ndarray, k: int) -> Any:
    """Jacobi plus the coarse correction on ``k`` aggregates of rows ordered by their plan's peak column."""
    n = plan.shape[0]
    groups = np.empty(n, int)
    groups[np.argsort(np.argmax(plan, axis=1), kind="stable")] = np.arange(n) * k // n
    agg = np.zeros((k, n))
    agg[groups, np.arange(n)] = 1.0
    coarse = np.linalg.inv(agg @ mat @ agg.T)
    agg, coarse = jnp.asarray(agg), jnp.asarray(coarse)  # applied to traced vectors inside the CG loop
    return lambda v: v / diag + agg.T @ (coarse @ (agg @ v))


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("python -m benchmarks.sns_preconditioner", __doc__, "W2 images only", progress=False)
    args = args.parse_args(argv)
    problems = {"W2 images": lambda: image_problem(2)}
    if not args.quick:
        problems = {"W1 images": lambda: image_problem(1), **problems}
        problems["random assignment n=500"] = lambda: random_assignment(500)
    ks = (16, 49, 98)
    print(f"{'problem':<26}{'plan error':>11}{'jacobi':>8}" + "".join(f"{'k=' + str(k):>8}" for k in ks))
    with jax.enable_x64(True):
        for name, make in problems.items():
            cost, a, b = make()
            for tol in (1e-3, 1e-6):
                mat, rhs, diag, plan = schur_system(cost, a, b, tol)
                counts = [cg_iterations(mat, rhs, lambda v, d=diag: v / d)]
                counts += [cg_iterations(mat, rhs, two_level(mat, diag, plan, k)) for k in ks]
                print(f"{name:<26}{tol:>11g}" + "".join(f"{c:>8}" for c in counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
