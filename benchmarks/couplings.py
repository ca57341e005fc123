"""``python -m benchmarks.couplings [--quick] [--out out]``: time to a minibatch coupling, and its cost.

The coupling of flow matching pairs ``n`` noise points with ``n`` data points. Each case draws
``x0 ~ N(0, I_d)`` and ``x1`` from a mixture of 8 Gaussians (centres of norm ~3, spread 0.3), squared
Euclidean cost, ``n`` from 256 to 16384 and ``d`` in 2, 64, 784, and times the whole path from points to
``n`` index pairs:

- ``ott_fast exact``: :func:`ott_fast.flow_matching_pairs` ``method="exact"`` (cost matrix, optax's Hungarian);
- ``optax hungarian``: ``optax.assignment.hungarian_algorithm`` alone on the precomputed cost matrix;
- ``ott_fast sinkhorn eps=r``: :func:`ott_fast.flow_matching_pairs` ``method="sinkhorn"`` at
  ``epsilon = r x`` the mean cost (tol 1e-3, and 1e-2 at the middle epsilon): Sinkhorn, then one
  conditional draw per row; online
  (``chunk_size="auto"``, and 128-row chunks at the middle epsilon) from n = 16384, where the dense matrix
  would take 1 GiB;
- ``ott_fast near-exact``: :func:`ott_fast.sinkhorn_matching` (epsilon ``5e-3 x`` the mean cost, then a
  permutation read off the plan);
- ``pot emd``: what torchcfm's ``OTPlanSampler`` runs: ``ot.dist``, ``ot.emd`` (float64, one thread), then
  ``n`` pairs by ``np.random.choice`` over the flattened plan;
- ``ott-jax``: OTT-JAX's ``match_linear`` (dense Sinkhorn plan) then ``sample_joint`` (flattened plan), at the
  same absolute epsilon as our middle one.

Columns: seconds (compilation excluded, best of ``repeats``), the coupling's cost (for a permutation its mean
pair cost; for an entropic plan ``<P, C>``) relative to the exact one where the exact one ran, the mean cost
of the ``n`` pairs drawn, and memory: for the JAX paths XLA's compiled buffer sizes (arguments, outputs and
temporaries of the jitted function), for POT the float64 cost matrix and plan it allocates (``16 n^2`` bytes).
Exact solvers run up to ``--exact-max`` points (Hungarian and the network simplex are cubic-ish). The numbers
compare only within one run on one machine. ``--sizes 65536,262144,1048576 --dims 64`` runs the large online
couplings of Zhang et al. (2025) on an accelerator (not run on a CPU).
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
from benchmarks.runners import best_time
from ott_fast._progress import progress_bar

TOL = 1e-3
LOOSE_TOL = 1e-2  # the extra row at the middle epsilon
SMALL_CHUNK = 128


def clouds(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x0[n, d] ~ N(0, I)`` and ``x1[n, d]`` from 8 Gaussians of spread 0.3 around centres of norm ~3.

    Example:
        >>> x0, x1 = clouds(16, 3)
        >>> x0.shape, x1.shape, x0.dtype
        ((16, 3), (16, 3), dtype('float32'))
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, d))
    centres *= 3.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    x1 = centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, d))
    return rng.normal(size=(n, d)).astype(np.float32), x1.astype(np.float32)


def _sq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x.astype(np.float64), y.astype(np.float64)
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0.0)


def _jax_bytes(fn: Any, *args: Any) -> int | None:
    """Arguments + outputs + temporaries of ``jax.jit(fn)`` compiled for ``args`` (XLA's memory analysis)."""
    try:
        mem = jax.jit(fn).lower(*args).compile().memory_analysis()
        return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)
    except Exception:  # noqa: BLE001 -- a backend without memory analysis: no number, not a failure
        return None


def _row(solver: str, seconds: float, cost: float, pair_cost: float, memory: int | None, **extra: Any) -> dict:
    return {"solver": solver, "seconds": seconds, "cost": cost, "pair_cost": pair_cost, "bytes": memory, **extra}


def run_case(n: int, d: int, epsilons: tuple[float, ...], exact_max: int, repeats: int) -> dict[str, Any]:
    """Every coupling of one case ``(n, d)``; the rows of :func:`print_case`."""
    x0, x1 = clouds(n, d, seed=d)
    key = jax.random.PRNGKey(0)
    x64, y64 = x0.astype(np.float64), x1.astype(np.float64)
    mean_cost = float((x64 * x64).sum(1).mean() + (y64 * y64).sum(1).mean() - 2 * x64.mean(0) @ y64.mean(0))
    rows = []
    exact_cost = None
    chunk = "auto" if n >= 16384 else None  # online from 16384 points (the dense matrix: 1 GiB and more)
    if n <= exact_max:
        ex = jax.jit(lambda k, a, b: otf.flow_matching_pairs(k, a, b, method="exact"))
        secs, out = best_time(lambda: ex(key, x0, x1), repeats=repeats)
        exact_cost = float(out.pair_cost)
        rows.append(_row("ott_fast exact", secs, exact_cost, exact_cost, _jax_bytes(ex, key, x0, x1)))
        from optax.assignment import hungarian_algorithm

        c = jnp.asarray(_sq(x0, x1), jnp.float32)
        hung = jax.jit(hungarian_algorithm)
        secs, (r, cols) = best_time(lambda: hung(c), repeats=repeats)
        value = float(np.asarray(c)[np.asarray(r), np.asarray(cols)].mean())
        rows.append(_row("optax hungarian", secs, value, value, _jax_bytes(hung, c)))
    middle = epsilons[len(epsilons) // 2]
    runs = [(rel, chunk, TOL) for rel in epsilons]
    # A coupling is a sample: marginals to 1% (L1) move its cost by at most 0.02 percentage points here.
    runs.append((middle, chunk, LOOSE_TOL))
    if chunk:  # 128-row chunks: a quarter of the automatic chunk's memory at n = 16384 (36.7 against 61.3 MB)
        runs.append((middle, SMALL_CHUNK, TOL))
    for rel, ch, tol in runs:
        fn = jax.jit(
            lambda k, a, b, e, ch=ch, tol=tol: otf.flow_matching_pairs(
                k, a, b, "sinkhorn", epsilon=e, chunk_size=ch, tol=tol
            )
        )
        secs, out = best_time(lambda fn=fn, rel=rel: fn(key, x0, x1, rel), repeats=repeats)
        name = f"ott_fast sinkhorn eps={rel:g}" + ("" if tol == TOL else f" tol={tol:g}")
        name += "" if ch is None else f" (online, {ch} rows)"
        rows.append(
            _row(
                name,
                secs,
                float(out.plan_cost),
                float(out.pair_cost),
                _jax_bytes(fn, key, x0, x1, rel),
                converged=bool(out.converged),
                entropy_ratio=float(out.entropy_ratio),
            )
        )
    near = jax.jit(lambda a, b: otf.sinkhorn_matching(a, b, epsilon=5e-3, chunk_size=chunk, tol=TOL))
    secs, out = best_time(lambda: near(x0, x1), repeats=repeats)
    rows.append(_row("ott_fast near-exact", secs, float(out.cost), float(out.cost), _jax_bytes(near, x0, x1)))
    if n <= exact_max:
        rows.append(_pot_emd(x0, x1))
        if exact_cost is None:
            exact_cost = rows[-1]["cost"]
    if n <= 16384:  # beyond, its dense plan's program is not even worth compiling (4 n^2 bytes)
        rows.append(_ott_jax(x0, x1, epsilons[len(epsilons) // 2] * mean_cost, repeats, run=n <= max(exact_max, 4096)))
    for r in rows:
        r["cost_vs_exact"] = None if exact_cost is None or r["cost"] is None else r["cost"] / exact_cost - 1.0
    return {"case": f"n={n}, d={d}", "n": n, "d": d, "mean_cost": mean_cost, "results": rows}


def _pot_emd(x0: np.ndarray, x1: np.ndarray) -> dict[str, Any]:
    import ot

    n = x0.shape[0]
    t0 = time.perf_counter()
    m = ot.dist(x0.astype(np.float64), x1.astype(np.float64))
    p = ot.emd(np.full(n, 1.0 / n), np.full(n, 1.0 / n), m, numItermax=10_000_000)
    flat = p.ravel() / p.sum()
    choice = np.random.default_rng(0).choice(flat.size, size=n, p=flat)
    secs = time.perf_counter() - t0
    i, j = np.divmod(choice, n)
    return _row("pot emd", secs, float((p * m).sum()), float(m[i, j].mean()), 16 * n * n)


def _ott_jax(x0: np.ndarray, x1: np.ndarray, eps: float, repeats: int, run: bool = True) -> dict[str, Any]:
    """OTT-JAX's ``match_linear`` + ``sample_joint``, jitted; with ``run=False`` only compiled, for its memory."""
    try:
        from ott.solvers.utils import match_linear, sample_joint
    except ImportError as err:  # an OTT-JAX without these helpers
        return _row("ott-jax match_linear+sample_joint", float("nan"), None, None, None, error=repr(err))

    def fn(k: jax.Array, a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        p = match_linear(a, b, epsilon=eps, threshold=TOL)
        i, j = sample_joint(k, p)
        return p, i, j

    jf = jax.jit(fn)
    key = jax.random.PRNGKey(0)
    if not run:  # its dense plan alone is 4 n^2 bytes: compiled for the memory it would take, not run
        return _row(
            "ott-jax match_linear+sample_joint",
            float("nan"),
            None,
            None,
            _jax_bytes(fn, key, x0, x1),
            error=None,
            note="compiled only",
        )
    try:
        secs, (p, i, j) = best_time(lambda: jf(key, x0, x1), repeats=repeats)
    except Exception as err:  # noqa: BLE001 -- out of memory at large n: recorded, not fatal
        return _row("ott-jax match_linear+sample_joint", float("nan"), None, None, None, error=repr(err)[:200])
    c = _sq(x0, x1)
    return _row(
        "ott-jax match_linear+sample_joint",
        secs,
        float((np.asarray(p, np.float64) * c).sum()),
        float(c[np.asarray(i), np.asarray(j)].mean()),
        _jax_bytes(fn, key, x0, x1),
    )


def print_case(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}  (mean cost {case['mean_cost']:.4g}; epsilons relative to it)")
    print(f"{'coupling':<40}{'time [s]':>10}{'cost':>11}{'vs exact':>10}{'pairs cost':>12}{'memory [MB]':>13}")
    for r in case["results"]:
        if r.get("error"):
            print(f"{r['solver']:<40} failed: {r['error']}")
            continue
        rel = "" if r["cost_vs_exact"] is None else f"{100 * r['cost_vs_exact']:+.2f}%"
        mem = "" if r["bytes"] is None else f"{r['bytes'] / 1e6:.1f}"
        if r["cost"] is None:
            print(f"{r['solver']:<40}{'not run':>10}{'':>11}{'':>10}{'':>12}{mem:>13}")
            continue
        print(f"{r['solver']:<40}{r['seconds']:>10.3f}{r['cost']:>11.4f}{rel:>10}{r['pair_cost']:>12.4f}{mem:>13}")


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("python -m benchmarks.couplings", __doc__, "two small cases (smoke test, about a minute)")
    p.add_argument("--exact-max", type=int, default=4096, help="largest n for the exact solvers (full mode)")
    p.add_argument(
        "--sizes",
        default=None,
        help="comma-separated n to run instead of the mode's (e.g. 65536,262144,1048576 on an accelerator: "
        "online from 16384, no exact solver beyond --exact-max)",
    )
    p.add_argument("--dims", default=None, help="comma-separated d to run with --sizes (default 2,64,784)")
    args = p.parse_args(argv)
    t0 = time.time()
    if args.quick:
        cases, epsilons, exact_max, repeats = [(256, 2), (1024, 64)], (0.05, 0.005), 1024, 1
    else:
        cases = [(n, d) for n in (256, 1024, 4096, 16384) for d in (2, 64, 784)]
        epsilons, exact_max, repeats = (0.1, 0.01, 0.001), args.exact_max, 3
    if args.sizes:
        dims = [int(d) for d in (args.dims or "2,64,784").split(",")]
        cases = [(int(n), d) for n in args.sizes.split(",") for d in dims]
    results = []
    with progress_bar(total=len(cases), desc="couplings", unit="case", progress=args.progress) as bar:
        for n, d in cases:
            results.append(run_case(n, d, epsilons, exact_max, 1 if n >= 4096 else repeats))
            print_case(results[-1])
            bar.update()
    command = " ".join(["python -m benchmarks.couplings", *(sys.argv[1:] if argv is None else argv)])
    meta = cli.run_meta(
        args.quick, t0, tol=TOL, loose_tol=LOOSE_TOL, epsilons_relative_to_mean_cost=list(epsilons), command=command
    )
    path = cli.write_record(args.out, "couplings.json", {"meta": meta, "cases": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
