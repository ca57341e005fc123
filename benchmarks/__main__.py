"""``python -m benchmarks [--quick] [--out out] [--suites ...]``: ott_fast vs OTT-JAX, POT and regot.

Writes only under ``<out>``; ``--update-docs`` (full mode) also rewrites the tables and plots of
``docs/benchmarks.md`` from the run. Runs every suite by default: ``sinkhorn`` (this module), ``sns``
(``benchmarks/sns.py``), ``sliced`` (``benchmarks/sliced.py``), ``monge_gap`` (``benchmarks/monge_gap.py``),
``batches`` (thousands of tiny problems, ``benchmarks/batches.py``) and ``couplings`` (minibatch couplings for
flow matching, exact and entropic, ``benchmarks/couplings.py``); ``--suites device``
(``benchmarks/device.py``, for one accelerator, against its roofline) runs only when named (its own
flags, such as ``--matmul-tflops``, are passed on to it) and ``--suites divergence`` (the Sinkhorn divergence
as a loss against GeomLoss, ``benchmarks/divergence.py``) too. Each prints its tables and writes its JSON and plots
under ``<out>``. The Sinkhorn suite writes ``<out>/benchmarks.json`` and convergence plots
``<out>/sinkhorn_*.png``. Its full mode runs the recorded cases (n = m = 4000 in d = 3 and d = 64, and a
batch of 64 problems of n = m = 256 in d = 3);
``--quick`` runs small versions of the same cases in well under a minute.

Every case uses epsilon = 0.01 x the mean of its cost matrix (converted to an absolute epsilon given
identically to every library), the squared Euclidean cost, float32 for the JAX libraries and float64 for POT,
uniform weights and the tolerance 1e-3 on the L1 marginal error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from typing import Any

import jax
import numpy as np

from benchmarks import online, problems, report, runners
from ott_fast._progress import progress_bar

# The physical limit on a 2-core CPU (docs/design.md, "Speed"): 10-25 iterations/s at n = m = 10,000 (exp and
# memory bound), i.e. 0.4-1.0 ns per matrix entry per iteration; it scales with n * m.
_LIMIT_NS_PER_ENTRY = (0.4, 1.0)


def _physical_limit_ms(n: int, m: int) -> tuple[float, float]:
    return tuple(ns * n * m * 1e-6 for ns in _LIMIT_NS_PER_ENTRY)


def single_case(n: int, d: int, tol: float, repeats: int, with_pot: bool) -> dict[str, Any]:
    x, y = problems.gaussian_clouds(n, d, seed=d)
    eps = 0.01 * float(problems.sq_euclidean(x, y).mean())
    rows = [runners.run_ott_fast(x, y, eps, tol, repeats), runners.run_ott_jax(x, y, eps, tol, repeats)]
    if with_pot:
        rows.append(runners.run_pot(x, y, eps, tol))
    lo, hi = _physical_limit_ms(n, n)
    for r in rows:
        r["fraction_of_physical_limit"] = [lo / r["ms_per_iter"], hi / r["ms_per_iter"]]
    ref = rows[0]["transport_cost"]
    for r in rows:
        r["cost_rel_diff_vs_ott_fast"] = abs(r["transport_cost"] - ref) / abs(ref)
    return {"case": f"n=m={n}, d={d}", "n": n, "d": d, "epsilon": eps, "tol": tol, "results": rows}


def batch_case(batch: int, n: int, d: int, tol: float, repeats: int) -> dict[str, Any]:
    clouds = [problems.gaussian_clouds(n, d, seed=100 + i) for i in range(batch)]
    xs, ys = np.stack([c[0] for c in clouds]), np.stack([c[1] for c in clouds])
    eps = np.array([0.01 * problems.sq_euclidean(x, y).mean() for x, y in clouds])
    rows = runners.run_batch(xs, ys, eps, tol, repeats)
    return {"case": f"batch of {batch}, n=m={n}, d={d}", "batch": batch, "n": n, "d": d, "tol": tol, "results": rows}


def print_single(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}  (epsilon = 0.01 x mean cost = {case['epsilon']:.4g}, tol = {case['tol']:g})")
    head = f"{'solver':<10}{'iters':>7}{'time [s]':>10}{'ms/iter':>9}{'final err':>11}{'cost':>12}{'rel diff':>10}"
    print(head + f"{'% of limit':>14}")
    for r in case["results"]:
        lim = r["fraction_of_physical_limit"]
        print(
            f"{r['solver']:<10}{r['iterations']:>7}{r['seconds']:>10.3f}{r['ms_per_iter']:>9.2f}"
            f"{r['final_error']:>11.2e}{r['transport_cost']:>12.6f}{r['cost_rel_diff_vs_ott_fast']:>10.1e}"
            f"{100 * lim[0]:>7.0f}-{100 * lim[1]:.0f}"
        )
    ours, ott = case["results"][0], case["results"][1]
    print(f"time to tolerance: ott_fast / ott-jax = {ours['seconds'] / ott['seconds']:.2f}")


def print_batch(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}  (tol = {case['tol']:g})")
    print(f"{'solver':<24}{'time [s]':>10}{'ms/problem':>12}{'iters max':>11}{'converged':>11}{'max err':>10}")
    for r in case["results"]:
        print(
            f"{r['solver']:<24}{r['seconds']:>10.3f}{r['ms_per_problem']:>12.2f}{r['iterations_max']:>11}"
            f"{r['converged']:>8}/{r['problems']:<3}{r['final_error_max']:>9.1e}"
        )
    vm, _, lp, ott = case["results"]
    print(
        f"vmap: ott_fast / ott-jax = {vm['seconds'] / ott['seconds']:.2f}; "
        f"ott_fast vmap / loop = {vm['seconds'] / lp['seconds']:.2f}"
    )


def plot(cases: list[dict[str, Any]], out: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]').")
        return []
    paths = []
    for case in cases:
        if "batch" in case:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        styles = {"ott_fast": ("o-", 4), "ott-jax": ("s--", 6), "pot": ("^:", 4)}  # OTT-JAX and POT overlap
        for r in case["results"]:
            style, ms = styles.get(r["solver"], ("o-", 4))
            axes[0].semilogy(r["curve_iters"], r["curve_errors"], style, ms=ms, mfc="none", label=r["solver"])
            axes[1].loglog(r["curve_seconds"], r["curve_errors"], style, ms=ms, mfc="none", label=r["solver"])
        for ax, xl in zip(axes, ("iterations", "seconds (compilation excluded)")):
            ax.axhline(case["tol"], color="gray", lw=0.8, ls="--")
            ax.set_xlabel(xl)
            ax.set_ylabel("L1 marginal error")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(f"Sinkhorn convergence, {case['case']}, eps = 0.01 x mean cost")
        fig.tight_layout()
        path = os.path.join(out, f"sinkhorn_n{case['n']}_d{case['d']}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# Each suite after the first is a module with its own ``main(argv)`` taking ``--quick`` and ``--out``.
SUITES = {
    "sinkhorn": "benchmarks.__main__",
    "sns": "benchmarks.sns",
    "sliced": "benchmarks.sliced",
    "monge_gap": "benchmarks.monge_gap",
    "batches": "benchmarks.batches",
    "couplings": "benchmarks.couplings",
    "device": "benchmarks.device",
    "divergence": "benchmarks.divergence",
}
# The device suite is for an accelerator (its full sizes take hours on a CPU) and the divergence suite needs
# the geomloss extra (torch) and hours at full size: they run only when named.
DEFAULT_SUITES = [s for s in SUITES if s not in ("device", "divergence")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test, < 1 minute)")
    parser.add_argument("--out", default="out", help="output folder for benchmarks.json and plots")
    parser.add_argument("--no-pot", action="store_true", help="skip POT (slow at large n)")
    parser.add_argument("--no-online", action="store_true", help="skip the online (low-memory) cases")
    parser.add_argument(
        "--no-ott-online",
        action="store_true",
        help="run the online cases for ott_fast only (no OTT-JAX 0.8.1 environment)",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="full mode only: also rewrite the tables and plots of docs/benchmarks.md from this run "
        "(by default a run writes to <out> only)",
    )
    parser.add_argument(
        "--suites",
        default=",".join(DEFAULT_SUITES),
        help=f"comma-separated suites to run, of {','.join(SUITES)} (default: {','.join(DEFAULT_SUITES)})",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args, extra = parser.parse_known_args(argv)
    os.makedirs(args.out, exist_ok=True)
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"--suites: unknown {unknown}; choose from {list(SUITES)}")
    if extra and "device" not in suites:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.update_docs and args.quick:
        parser.error("--update-docs: the docs' tables come from full runs, not --quick")
    if "sinkhorn" in suites:
        sinkhorn_suite(args)
    for name in suites:
        if name != "sinkhorn":
            print(f"\n===== {name} =====", flush=True)
            module = importlib.import_module(SUITES[name])
            own = extra if name == "device" else ([] if args.progress else ["--no-progress"])
            code = module.main((["--quick"] if args.quick else []) + ["--out", args.out] + own)
            if code:
                return code
    tables = report.render(args.out, suites)
    with open(os.path.join(args.out, "benchmarks.md"), "w") as fh:
        fh.write("".join(f"## {name}\n\n{table}\n\n" for name, table in tables.items()))
    print(f"\nwrote {os.path.join(args.out, 'benchmarks.md')}")
    if args.update_docs:  # only when asked: a full run's tables and plots replace the docs' ones
        print(f"updated {report.PAGE}: tables {report.update_tables(report.PAGE, tables)}, ", end="")
        print(f"plots {report.update_plots(report.PAGE, args.out, suites, static_dir=report.PLOTS)}")
    else:
        print(f"{report.PAGE} left as it is (--update-docs rewrites its tables from a full run)")
    return 0


def sinkhorn_suite(args: argparse.Namespace) -> None:
    """Dense Sinkhorn, batch and online cases against OTT-JAX and POT (``out/benchmarks.json``)."""
    tol = 1e-3
    if args.quick:
        sizes, batch, repeats = (500,), (8, 64), 1
    else:
        sizes, batch, repeats = (4000,), (64, 256), 3
    t0 = time.time()
    cases = []
    online_cases: list[dict[str, Any]] = []
    online_sizes = [] if args.quick or args.no_online else [(n, d) for n in (10_000, 50_000) for d in (3, 64)]
    total = 2 * len(sizes) + 1 + len(online_sizes) + bool(online_sizes)
    # one bar step per case, advanced between cases (never inside a timed run)
    with progress_bar(total=total, desc="sinkhorn", unit="case", progress=args.progress) as bar:
        for n in sizes:
            for d in (3, 64):
                cases.append(single_case(n, d, tol, repeats, with_pot=not args.no_pot))
                print_single(cases[-1])
                bar.update()
        cases.append(batch_case(batch[0], batch[1], 3, tol, repeats))
        print_batch(cases[-1])
        bar.update()
        if online_sizes:
            ott_py = None if args.no_ott_online else online.ott_python(args.out)
            for n, d in online_sizes:
                online_cases.append(online.online_case(n, d, ott_py, with_ott=True))
                online.print_online(online_cases[-1:])
                bar.update()
            big = online.solve_and_gradient()
            online_cases.append(big)
            bar.update()
            print(
                f"\n{big['case']}: "
                + (
                    big.get("error")
                    or f"{big['iterations']} iterations, converged={big['converged']}, "
                    f"gradient finite={big['grad_finite']}, "
                    f"{big['seconds']:.0f} s with compilation, peak RSS {big['peak_rss'] / 1e9:.2f} GB "
                    f"(a dense float32 cost matrix alone: {big['dense_matrix_bytes'] / 1e9:.0f} GB)"
                )
            )
    import ot
    import ott

    meta = {
        "mode": "quick" if args.quick else "full",
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "versions": {
            "jax": jax.__version__,
            "ott-jax": ott.__version__,
            "pot": ot.__version__,
            "python": sys.version.split()[0],
        },
        "physical_limit_ns_per_entry_per_iter": _LIMIT_NS_PER_ENTRY,
        "wall_seconds": time.time() - t0,
    }
    with open(os.path.join(args.out, "benchmarks.json"), "w") as fh:
        json.dump({"meta": meta, "cases": cases, "online": online_cases}, fh, indent=1)
    paths = plot(cases, args.out)
    print(f"\nwrote {os.path.join(args.out, 'benchmarks.json')}" + "".join(f", {p}" for p in paths))


if __name__ == "__main__":
    sys.exit(main())
