"""``python -m benchmarks --suites device [--quick]``: ott_fast vs OTT-JAX on one accelerator, and as a fraction
of that device's roofline.

Cases (full mode, sized to finish in minutes on one large GPU; ``--quick`` runs small versions on a CPU):

- online Sinkhorn (costs recomputed in chunks, ``chunk_size="auto"`` for ott_fast and the same rows per
  batch for OTT-JAX's ``PointCloud(batch_size=...)``) at n = m = 10,000 and 100,000, d = 3 and 64:
  iterations per second from two fixed iteration budgets (compilation excluded);
- a ``vmap`` batch of 4096 problems of n = m = 256 (d = 3, stored cost matrices): problem-iterations per
  second, again from two fixed budgets;
- sliced Wasserstein (n = m = 100,000, d = 3, 256 directions): projected points per second;
- a flow-matching coupling (ott_fast alone) at n = m = 65,536, 262,144 and 1,048,576, d = 64, noise against a
  mixture of 8 Gaussians (``benchmarks.couplings.clouds``): an online Sinkhorn solve (``chunk_size="auto"``,
  tol 1e-3, at most ``--coupling-max-iters``, 100 by default) then :func:`ott_fast.sample_conditional` (one target
  per source point): seconds of each (compilation excluded, one timed call after an untimed one), the
  compiled temporaries of each program (XLA's memory analysis) and the mean cost of the drawn pairs.

Every case uses float32, the squared Euclidean cost, uniform weights and epsilon = 0.01 x the mean cost.
The roofline is a lower bound on the time per unit of work from three figures of the device: memory
bandwidth, exp throughput and float32 matrix-product rate. They are looked up by the device's name
(``ROOFLINES``: vendor spec sheets, and 16 exp2 per clock per SM from the CUDA guide's throughput table) or
given with ``--bandwidth-gbs``, ``--exp-gops``, ``--matmul-tflops``; the suite prints the figures it
assumes, and reports no fraction for a device it knows no figures for. Work per unit:

- a Sinkhorn iteration (two sweeps over the ``n x m`` plan): ``2 n m`` exps and, online, ``4 n m d`` flops of
  the cross term; stored matrices are also read twice, ``8 n m`` bytes;
- a sliced estimate: ``2 L (n + m) d`` flops of projections and ``8 L (n + m)`` bytes to write and read them
  (sorting not counted: a loose bound);
- a conditional draw (one inverse-CDF sweep over the plan): ``n m`` exps of the row weights and ``2 n m d``
  flops of the cross term (the running sums and one random number per row not counted: a loose bound).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli
from benchmarks.couplings import clouds
from benchmarks.problems import gaussian_clouds
from ott_fast.trace import best_time

# device name substring -> (memory bandwidth GB/s, exp Gop/s, float32 matmul TFLOP/s, without tensor cores)
ROOFLINES: dict[str, tuple[float, float, float]] = {
    "H200": (4800.0, 132 * 16 * 1.98, 67.0),
    "H100": (3350.0, 132 * 16 * 1.98, 67.0),
    "A100": (2039.0, 108 * 16 * 1.41, 19.5),
}
COUPLING_TOL = 1e-3
COUPLING_MAX_ITERS = 100  # a cap (``--coupling-max-iters``): the largest coupling takes minutes, converged or not


def roofline(kind: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """``{bandwidth, exp, matmul}`` in bytes/s, exps/s, flop/s for ``kind`` (flags first), or None."""
    figures = next((v for k, v in ROOFLINES.items() if k.lower() in kind.lower()), None)
    given = (args.bandwidth_gbs, args.exp_gops, args.matmul_tflops)
    if all(g is not None for g in given):
        figures = given
    elif figures is not None:
        figures = tuple(g if g is not None else f for g, f in zip(given, figures, strict=True))
    if figures is None:
        return None
    return {"bandwidth": figures[0] * 1e9, "exp": figures[1] * 1e9, "matmul": figures[2] * 1e12}


def _bound(roof: dict[str, Any] | None, exps: float = 0.0, flops: float = 0.0, nbytes: float = 0.0) -> float | None:
    if roof is None:
        return None
    return max(exps / roof["exp"], flops / roof["matmul"], nbytes / roof["bandwidth"])


def _rate(make: Any, budgets: tuple[int, int], repeats: int, work: float = 1.0) -> dict[str, Any]:
    """Units of ``work`` per second from the timing difference of two budgets; an error is recorded, not raised."""
    try:
        t1, t2 = (best_time(make(k), repeats)[0] for k in budgets)
    except Exception as err:  # noqa: BLE001  (a peer library failing on this JAX is a result, not a crash)
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    if t2 <= t1:
        return {"error": f"no timing difference between {budgets[0]} and {budgets[1]} iterations (too small)"}
    per = (t2 - t1) / (budgets[1] - budgets[0])
    return {"seconds_per_unit": per, "per_second": work / per}


def _eps(x: np.ndarray, y: np.ndarray) -> float:
    mean = (x * x).sum(1).mean() + (y * y).sum(1).mean() - 2 * x.mean(0) @ y.mean(0)
    return float(0.01 * mean)


def online_case(n: int, d: int, budgets: tuple[int, int], repeats: int, roof: dict | None) -> dict[str, Any]:
    """Online Sinkhorn iterations/s, ott_fast vs OTT-JAX (same points, epsilon and rows per chunk)."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    x, y = (jnp.asarray(z) for z in gaussian_clouds(n, d, seed=d))
    eps = _eps(np.asarray(x), np.asarray(y))
    chunk = otf.PointCloud(x, y, epsilon=eps, chunk_size="auto").chunk_size
    every = budgets[0]

    def ours(k: int) -> Any:
        geom = lambda x, y: otf.PointCloud(x, y, epsilon=eps, chunk_size=chunk)  # noqa: E731
        fn = jax.jit(lambda x, y: otf.sinkhorn(geom(x, y), tol=0.0, max_iters=k, check_every=every).f)
        return lambda: fn(x, y)

    def theirs(k: int, batch_size: int | None = chunk) -> Any:
        solver = sinkhorn.Sinkhorn(threshold=-1.0, min_iterations=k, max_iterations=k, inner_iterations=every)
        geom = lambda x, y: pointcloud.PointCloud(x, y, epsilon=eps, batch_size=batch_size)  # noqa: E731
        fn = jax.jit(lambda x, y: solver(linear_problem.LinearProblem(geom(x, y))).f)
        return lambda: fn(x, y)

    bound = _bound(roof, exps=2.0 * n * n, flops=4.0 * n * n * d)
    rows = {"ott_fast": _rate(ours, budgets, repeats), "ott-jax": _rate(theirs, budgets, repeats)}
    if "error" in rows["ott-jax"] and n * n * 4 <= 1 << 31:  # its online mode failed: its stored matrix, if it fits
        rows["ott-jax dense"] = _rate(lambda k: theirs(k, None), budgets, repeats)
    return {"case": f"online Sinkhorn, n=m={n}, d={d}", "unit": "iterations", "chunk": chunk, "bound_s": bound, **rows}


def batch_case(batch: int, n: int, budgets: tuple[int, int], repeats: int, roof: dict | None) -> dict[str, Any]:
    """A vmapped batch of ``batch`` dense problems: problem-iterations/s, ott_fast vs OTT-JAX."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    rng = np.random.default_rng(1)
    xs = rng.normal(size=(batch, n, 3)).astype(np.float32)
    ys = (rng.normal(size=(batch, n, 3)) + 1.0).astype(np.float32)
    eps = jnp.asarray([_eps(x, y) for x, y in zip(xs, ys)], jnp.float32)
    xj, yj = jnp.asarray(xs), jnp.asarray(ys)
    every = budgets[0]

    def ours(k: int) -> Any:
        def one(x: Any, y: Any, e: Any) -> Any:
            geom = otf.PointCloud(x, y, epsilon=e)
            return otf.sinkhorn(geom, tol=0.0, max_iters=k, check_every=every, batching="parallel").f

        fn = jax.jit(jax.vmap(one))
        return lambda: fn(xj, yj, eps)

    def theirs(k: int) -> Any:
        solver = sinkhorn.Sinkhorn(threshold=-1.0, min_iterations=k, max_iterations=k, inner_iterations=every)
        one = lambda x, y, e: solver(linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=e))).f  # noqa: E731
        fn = jax.jit(jax.vmap(one))
        return lambda: fn(xj, yj, eps)

    bound = _bound(roof, exps=2.0 * n * n, nbytes=8.0 * n * n)  # per problem-iteration
    rows = {"ott_fast": _rate(ours, budgets, repeats, batch), "ott-jax": _rate(theirs, budgets, repeats, batch)}
    return {"case": f"vmap batch of {batch}, n=m={n}, d=3", "unit": "problem-iterations", "bound_s": bound, **rows}


def sliced_case(n: int, n_dirs: int, repeats: int, roof: dict | None) -> dict[str, Any]:
    """Sliced Wasserstein: projected points per second, ott_fast vs OTT-JAX (same number of directions)."""
    from ott.tools import sliced

    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(n, 3)) * 0.8 + 0.5, jnp.float32)
    key = jax.random.PRNGKey(0)
    work = float(n_dirs * 2 * n)
    ours = jax.jit(lambda k, x, y: otf.sliced_wasserstein(k, x, y, n_projections=n_dirs))
    theirs = jax.jit(lambda k, x, y: sliced.sliced_wasserstein(x, y, n_proj=n_dirs, rng=k)[0])
    rows = {}
    for name, fn in (("ott_fast", ours), ("ott-jax", theirs)):
        try:
            secs = best_time(lambda fn=fn: fn(key, x, y), repeats)[0]
            rows[name] = {"seconds_per_unit": secs / work, "per_second": work / secs}
        except Exception as err:  # noqa: BLE001
            rows[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    bound = _bound(roof, flops=2.0 * work * 3, nbytes=8.0 * work)
    return {
        "case": f"sliced Wasserstein, n=m={n}, d=3, L={n_dirs}",
        "unit": "projected points",
        "bound_s": bound,
        "bound_per_unit": None if bound is None else bound / work,
        **rows,
    }


def _temp_bytes(compiled: Any) -> int | None:
    """The temporaries XLA allocates for a compiled program (besides its arguments and outputs), or None."""
    try:
        return int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # noqa: BLE001 -- a backend without memory analysis: no number, not a failure
        return None


def coupling_case(n: int, d: int, max_iters: int, repeats: int, roof: dict | None) -> dict[str, Any]:
    """Online Sinkhorn at epsilon = 0.01 x the mean cost, then one conditional draw per source point: the
    seconds and compiled temporaries of each step, as a flow-matching training step would run them."""
    x0, x1 = clouds(n, d, seed=d)
    eps = _eps(x0, x1)
    x, y = jnp.asarray(x0), jnp.asarray(x1)
    key = jax.random.PRNGKey(0)
    chunk = otf.PointCloud(x, y, epsilon=eps, chunk_size="auto").chunk_size

    def solve(x: Any, y: Any) -> Any:
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps, chunk_size=chunk), tol=COUPLING_TOL, max_iters=max_iters)

    case: dict[str, Any] = {"case": f"coupling, n=m={n}, d={d}", "n": n, "d": d, "epsilon": eps, "chunk": chunk}
    try:
        solver = jax.jit(solve).lower(x, y).compile()
        solve_s, out = best_time(lambda: solver(x, y), repeats)
        draw = jax.jit(otf.sample_conditional).lower(key, out).compile()
        draw_s, pairs = best_time(lambda: draw(key, out), repeats)
    except Exception as err:  # noqa: BLE001  (out of memory at the largest size is a result, not a crash)
        return case | {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    iters = int(out.n_iters)
    cols = np.asarray(pairs.cols)
    pair_cost = float(np.mean(np.sum((x0.astype(np.float64) - x1[cols].astype(np.float64)) ** 2, axis=1)))
    per_iter = _bound(roof, exps=2.0 * n * n, flops=4.0 * n * n * d)
    draw_bound = _bound(roof, exps=1.0 * n * n, flops=2.0 * n * n * d)
    return case | {
        "iterations": iters,
        "converged": bool(out.converged),
        "error_l1": float(out.error),
        "solve_s": solve_s,
        "solve_temp_bytes": _temp_bytes(solver),
        "sample_s": draw_s,
        "sample_temp_bytes": _temp_bytes(draw),
        "valid": bool(pairs.valid),
        "pair_cost": pair_cost,
        "mean_cost": eps / 0.01,  # of all n x m pairs: what an independent coupling's pairs cost on average
        "dense_plan_bytes": 4 * n * n,
        "solve_fraction_of_roofline": None if per_iter is None else per_iter * iters / solve_s,
        "sample_fraction_of_roofline": None if draw_bound is None else draw_bound / draw_s,
    }


def _fraction(case: dict[str, Any], row: dict[str, Any]) -> float | None:
    bound = case.get("bound_per_unit", case.get("bound_s"))
    if bound is None or "seconds_per_unit" not in row:
        return None
    return bound / row["seconds_per_unit"]


def print_case(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}")
    for name in ("ott_fast", "ott-jax", "ott-jax dense"):
        if name not in case:
            continue
        r = case[name]
        if "error" in r:
            print(f"  {name:<9} failed: {r['error']}")
            continue
        frac = _fraction(case, r)
        share = "" if frac is None else f"  ({100 * frac:.1f}% of roofline)"
        print(f"  {name:<9} {r['per_second']:.4g} {case['unit']}/s{share}")


def _mb(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 1e6:.1f} MB"


def _share(frac: float | None) -> str:
    return "" if frac is None else f" ({100 * frac:.1f}% of roofline)"


def print_coupling(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}  (epsilon {case['epsilon']:.4g} = 0.01 x mean cost, {case['chunk']}-row chunks)")
    if "error" in case:
        print(f"  failed: {case['error']}")
        return
    state = "converged" if case["converged"] else "not converged"
    print(
        f"  solve   {case['solve_s']:.4g} s, {case['iterations']} iterations ({state}, L1 error "
        f"{case['error_l1']:.1e}), temporaries {_mb(case['solve_temp_bytes'])}"
        f"{_share(case['solve_fraction_of_roofline'])}"
    )
    print(
        f"  sample  {case['sample_s']:.4g} s, temporaries {_mb(case['sample_temp_bytes'])}"
        f"{_share(case['sample_fraction_of_roofline'])}; pairs cost {case['pair_cost']:.4g} (independent pairs: "
        f"{case['mean_cost']:.4g}; a dense plan would take {_mb(case['dense_plan_bytes'])})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("python -m benchmarks --suites device", __doc__, "small sizes (CPU smoke test)", progress=False)
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="device memory bandwidth, GB/s")
    parser.add_argument("--exp-gops", type=float, default=None, help="device exp throughput, Gop/s")
    parser.add_argument("--matmul-tflops", type=float, default=None, help="device float32 matmul rate, TFLOP/s")
    parser.add_argument(
        "--coupling-max-iters",
        type=int,
        default=COUPLING_MAX_ITERS,
        help="iteration cap of the coupling cases' solves (full mode; a multiple of 5)",
    )
    args = parser.parse_args(argv)
    if args.coupling_max_iters < 5 or args.coupling_max_iters % 5:  # sinkhorn checks every 5 iterations
        parser.error(f"--coupling-max-iters: expected a positive multiple of 5, got {args.coupling_max_iters}")
    dev = jax.devices()[0]
    kind = f"{dev.platform}: {dev.device_kind}"
    roof = roofline(dev.device_kind, args)
    print(f"device: {kind}")
    if roof is None:
        print("roofline: no figures known for this device (pass --bandwidth-gbs, --exp-gops, --matmul-tflops)")
    else:
        print(
            f"roofline assumed: bandwidth {roof['bandwidth'] / 1e9:.0f} GB/s, exp {roof['exp'] / 1e9:.0f} Gop/s, "
            f"float32 matmul {roof['matmul'] / 1e12:.1f} TFLOP/s"
        )
    if args.quick:
        online_sizes, dims, budgets, repeats = (512,), (3, 64), (5, 25), 2
        batch, sliced_n, sliced_l = (8, 32), 1024, 16
        coupling_sizes, coupling_d, coupling_iters = (256,), 64, 50
    else:
        online_sizes, dims, budgets, repeats = (10_000, 100_000), (3, 64), (10, 30), 2
        batch, sliced_n, sliced_l = (4096, 256), 100_000, 256
        coupling_sizes, coupling_d, coupling_iters = (65_536, 262_144, 1_048_576), 64, args.coupling_max_iters
    t0 = time.time()
    cases = []
    for n in online_sizes:
        for d in dims:
            cases.append(online_case(n, d, budgets, repeats, roof))
            print_case(cases[-1])
    cases.append(batch_case(batch[0], batch[1], budgets, repeats, roof))
    print_case(cases[-1])
    cases.append(sliced_case(sliced_n, sliced_l, repeats, roof))
    print_case(cases[-1])
    couplings = []
    for n in coupling_sizes:
        couplings.append(coupling_case(n, coupling_d, coupling_iters, 1, roof))
        print_coupling(couplings[-1])
    for case in cases:
        for name in ("ott_fast", "ott-jax", "ott-jax dense"):
            if name in case:
                case[name]["fraction_of_roofline"] = _fraction(case, case[name])
    meta = cli.run_meta(args.quick, t0, device=kind, roofline=roof)
    path = cli.write_record(args.out, "device.json", {"meta": meta, "cases": cases, "couplings": couplings})
    print(f"\nwrote {path} ({meta['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
