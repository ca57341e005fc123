"""SNS benchmark: Table 1 of Tang et al. (ICLR 2024) with convergence curves, against our Sinkhorn, OTT-JAX and regot.

    python -m benchmarks.sns [--quick] [--out out]

Problems (float64, eta = 1 / epsilon = 1200, costs scaled to [0, 1] as in the random assignment problem):

- random assignment: ``C ~ U[0, 1]``, ``n = 500`` and ``n = 2000``, uniform weights;
- W2 and W1 between two 28 x 28 images: scikit-learn's 8 x 8 digits (a 0 and a 1) upsampled bilinearly,
  plus 1e-3 of the maximum intensity (zero pixels would make rows of the Hessian vanish), normalised;
  the cost is the squared (W2) or plain (W1) distance between pixel centres on [0, 1]^2, divided by its
  maximum. W1 is the degenerate case: the paper's warm-up is N1 = 700 Sinkhorn iterations. Ours is the
  default 20 over-relaxed ones, then SNS's measured handover (Newton probes between over-relaxed Sinkhorn
  blocks until Newton is the faster); a second SNS row runs the paper's setting.

Solvers, each run to an L1 marginal error of 1e-10 (our definition, rescored from each final plan):
ott_fast's ``sns`` and ``sinkhorn`` (adaptive over-relaxation, and plain: the paper's baseline), OTT-JAX's
``Sinkhorn`` and regot's ``sinkhorn_ssns`` (C++, safe and sparse Newton). Times are best of ``repeats``
(Sinkhorns: one run), compilation excluded.

Curves: error and optimality gap ``D* - D`` against iterations and seconds. Our solvers record the error and
the dual at every check; SNS's seconds come from timing the compiled solve at every Newton budget
(``newton_budget`` is traced: no recompilation), Sinkhorn's from the run's mean cost per iteration. regot
reports its own gradient norm and objective per iteration, with timestamps. OTT-JAX's trace holds its own
error only: its curve is that error; its gap is measured at the final point.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli
from benchmarks.problems import l1_marginal_error
from ott_fast._progress import progress_bar

PAPER = {  # Table 1 of Tang et al. (ICLR 2024), CPU, both run to machine accuracy
    "random assignment n=500": {"sns_iters": "29 (20 + 9)", "sns_s": 0.34, "sinkhorn_iters": 56199, "sinkhorn_s": 233},
    "W2 images": {"sns_iters": "53", "sns_s": 2.3, "sinkhorn_iters": 2041, "sinkhorn_s": 18.8},
    "W1 images": {"sns_iters": "777 (700 + 77)", "sns_s": 12.2, "sinkhorn_iters": 5748, "sinkhorn_s": 45.8},
}
ETA = 1200.0
TOL = 1e-10


# ------------------------------------------------------------------------------------------------ problems


def random_assignment(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cost = np.random.default_rng(seed).uniform(size=(n, n))
    return cost, np.full(n, 1.0 / n), np.full(n, 1.0 / n)


def digit_images(side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Two scikit-learn digits (a 0 and a 1), upsampled to ``side x side``, as positive histograms."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    imgs = []
    for label in (0, 1):
        img = digits.images[np.flatnonzero(digits.target == label)[0]]
        img = np.clip(zoom(img, side / 8, order=1), 0, None)
        img = img + 1e-3 * img.max()
        imgs.append((img / img.sum()).ravel())
    return imgs[0], imgs[1]


def image_problem(p: int, side: int = 28) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = (np.arange(side) + 0.5) / side
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dist = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    cost = dist**p
    a, b = digit_images(side)
    return cost / cost.max(), a, b


# ------------------------------------------------------------------------------------------------- runners


def _dual(cost: np.ndarray, f: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """Our dual ``<a, f> + <b, g> - eps (sum P - 1)``, in float64 NumPy, from any potentials."""
    plan = _plan(cost, f, g, a, b, eps)
    return float(a @ f + b @ g - eps * (plan.sum() - 1.0))


def _plan(cost: np.ndarray, f: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    return a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - cost) / eps)


def _time(fn: Any, repeats: int) -> tuple[float, Any]:
    out = jax.block_until_ready(fn())
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_sns(
    cost: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    warmup: int,
    repeats: int,
    acceleration: str = "adaptive",
    label: str = "ott_fast sns",
) -> dict[str, Any]:
    args = (jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b))  # arguments, not constants folded by XLA

    @jax.jit
    def solve(c: jax.Array, a: jax.Array, b: jax.Array, budget: jax.Array) -> otf.SNSOutput:
        geom = otf.Geometry(c, epsilon=1.0 / ETA)
        check = warmup // 4 or 1
        return otf.sns(
            geom,
            a,
            b,
            tol=TOL,
            sinkhorn_iters=warmup,
            check_every=check,
            max_newton_iters=100,
            newton_budget=budget,
            acceleration=acceleration,
        )

    secs, out = _time(lambda: solve(*args, 100), repeats)
    n_newton = int(out.newton.n_newton)
    # Honest seconds: the compiled solve timed at every Newton budget (0 = warm-up only).
    budget_secs = [_time(lambda k=k: solve(*args, k).f, repeats)[0] for k in range(n_newton + 1)]
    errs, duals, its = (np.asarray(v) for v in (out.errors, out.duals, out.trace_iters))
    keep = np.isfinite(errs)
    k_w = int(np.sum(np.isfinite(errs[: len(errs) - 100])))
    warm_sec = budget_secs[0] * its[:k_w] / max(its[k_w - 1], 1) if k_w else np.array([])
    seconds = np.concatenate([warm_sec, np.asarray(budget_secs[1:])])
    f, g = np.asarray(out.f), np.asarray(out.g)
    plan = _plan(cost, f, g, a, b, 1.0 / ETA)
    d = out.newton
    return {
        "solver": label,
        "warmup": warmup,
        "warmup_acceleration": acceleration,
        "iterations": int(out.n_iters),
        "newton_steps": n_newton,
        "fallback_iters": int(d.n_fallback),
        "cg_iters": [int(c) for c in np.asarray(d.cg_iters)[:n_newton]],
        "step_sizes": [float(s) for s in np.asarray(d.step_sizes)[:n_newton]],
        "seconds": secs,
        "converged": bool(out.converged),
        "final_error": l1_marginal_error(plan, a, b),
        "dual": _dual(cost, f, g, a, b, 1.0 / ETA),
        "curve_iters": its[keep].tolist(),
        "curve_errors": errs[keep].tolist(),
        "curve_duals": duals[keep].tolist(),
        "curve_seconds": seconds[: int(keep.sum())].tolist(),
    }


def run_sinkhorn(
    cost: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    max_iters: int,
    repeats: int,
    acceleration: str = "adaptive",
    label: str = "ott_fast sinkhorn",
) -> dict[str, Any]:
    args = (jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b))
    check = 50

    @jax.jit
    def solve(c: jax.Array, a: jax.Array, b: jax.Array) -> otf.SinkhornOutput:
        geom = otf.Geometry(c, epsilon=1.0 / ETA)
        return otf.sinkhorn(geom, a, b, tol=TOL, max_iters=max_iters, check_every=check, acceleration=acceleration)

    secs, out = _time(lambda: solve(*args), repeats)
    errs, duals = np.asarray(out.errors), np.asarray(out.duals)
    keep = np.isfinite(errs)
    its = (1 + check * (1 + np.arange(len(errs))))[keep]
    f, g = np.asarray(out.f), np.asarray(out.g)
    plan = _plan(cost, f, g, a, b, 1.0 / ETA)
    per_iter = secs / int(out.n_iters)
    return {
        "solver": label,
        "iterations": int(out.n_iters),
        "seconds": secs,
        "converged": bool(out.converged),
        "final_error": l1_marginal_error(plan, a, b),
        "dual": _dual(cost, f, g, a, b, 1.0 / ETA),
        "curve_iters": its.tolist(),
        "curve_errors": errs[keep].tolist(),
        "curve_duals": duals[keep].tolist(),
        "curve_seconds": (its * per_iter).tolist(),
    }


def run_ott_jax(cost: np.ndarray, a: np.ndarray, b: np.ndarray, max_iters: int, repeats: int) -> dict[str, Any]:
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    inner = 50
    solver = ott_sinkhorn.Sinkhorn(threshold=TOL, max_iterations=max_iters, inner_iterations=inner)
    args = (jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b))

    @jax.jit
    def solve(c: jax.Array, a: jax.Array, b: jax.Array) -> tuple:
        out = solver(linear_problem.LinearProblem(geometry.Geometry(c, epsilon=1.0 / ETA), a, b))
        return out.f, out.g, out.errors, out.n_iters, out.converged

    secs, (f, g, errs, it, conv) = _time(lambda: solve(*args), repeats)
    errs = np.asarray(errs).reshape(-1)
    keep = errs >= 0  # OTT-JAX marks unused trace slots with -1
    its = (inner * (1 + np.arange(len(errs))))[keep]
    f, g = np.asarray(f), np.asarray(g)
    # OTT-JAX's plan is exp((f + g - C) / eps) (no a b factor): shift to our convention for the dual.
    f_ours, g_ours = f - np.log(a) / ETA, g - np.log(b) / ETA
    plan = _plan(cost, f_ours, g_ours, a, b, 1.0 / ETA)
    per_iter = secs / max(int(it), 1)
    return {
        "solver": "ott-jax sinkhorn",
        "iterations": int(it),
        "seconds": secs,
        "converged": bool(conv),
        "final_error": l1_marginal_error(plan, a, b),
        "dual": _dual(cost, f_ours, g_ours, a, b, 1.0 / ETA),
        "curve_iters": its.tolist(),
        "curve_errors": errs[keep].tolist(),  # OTT-JAX's own error (L1 of the column marginal)
        "curve_seconds": (its * per_iter).tolist(),
    }


def run_regot(cost: np.ndarray, a: np.ndarray, b: np.ndarray, repeats: int) -> dict[str, Any]:
    import regot

    m = np.asfortranarray(cost)
    best, res = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = regot.sinkhorn_ssns(m, a, b, 1.0 / ETA, tol=TOL / 10, max_iter=1000)
        el = time.perf_counter() - t0
        if el < best:
            best, res = el, r
    plan = np.asarray(res.plan)
    obj = np.asarray(res.obj_vals)
    return {
        "solver": "regot ssns",
        "iterations": int(res.niter),
        "seconds": best,
        "converged": bool(l1_marginal_error(plan, a, b) <= TOL),
        "final_error": l1_marginal_error(plan, a, b),
        "curve_iters": list(range(len(obj))),
        "curve_errors": np.asarray(res.mar_errs).tolist(),  # regot's own marginal-error norm
        "curve_gaps": np.maximum(obj - obj.min(), 0.0).tolist(),  # its objective (minimised) against its best
        "curve_seconds": (np.asarray(res.run_times) / 1e3).tolist(),
    }


# ----------------------------------------------------------------------------------------------------- cases


def run_case(
    name: str,
    cost: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    warmup: int,
    cfg: dict,
    sinkhorn_max: int | None = None,
    paper_warmup: int | None = None,
) -> dict[str, Any]:
    """All solvers on one problem; the Sinkhorns stop at ``sinkhorn_max`` iterations (then a lower bound).
    ``paper_warmup`` adds a row for SNS with the paper's setting: that many plain Sinkhorn iterations."""
    print(f"[{name}] n={len(a)}", flush=True)
    cap = sinkhorn_max or cfg["sinkhorn_max"]
    res = [run_sns(cost, a, b, warmup, cfg["repeats"])]
    res.append(run_sinkhorn(cost, a, b, cap, cfg["repeats_slow"]))
    if cfg["ott_jax"]:
        res.append(run_ott_jax(cost, a, b, cap, cfg["repeats_slow"]))
    if cfg["regot"]:
        res.append(run_regot(cost, a, b, cfg["repeats_regot"]))
    if paper_warmup:
        label = f"ott_fast sns, paper's N1 = {paper_warmup} plain"
        res.append(run_sns(cost, a, b, paper_warmup, cfg["repeats"], acceleration="none", label=label))
    if cfg.get("plain_sinkhorn"):  # the paper's baseline: Sinkhorn without over-relaxation
        label = "ott_fast sinkhorn, plain"
        res.append(run_sinkhorn(cost, a, b, cap, cfg["repeats_slow"], acceleration="none", label=label))
    best = max(r["dual"] for r in res if "dual" in r)
    for r in res:
        if "curve_duals" in r:
            r["curve_gaps"] = [max(best - d, 0.0) for d in r["curve_duals"]]
        if "dual" in r:
            r["final_gap"] = max(best - r["dual"], 0.0)
    case = {"case": name, "n": len(a), "results": res, "paper": PAPER.get(name)}
    sns, sk = res[0], res[1]
    case["sinkhorn_converged"] = sk["converged"]  # if not, the ratios below are lower bounds
    case["sinkhorn_over_sns_iters"] = sk["iterations"] / sns["iterations"]
    case["sinkhorn_over_sns_seconds"] = sk["seconds"] / sns["seconds"]
    plain = next((r for r in res if r["solver"] == "ott_fast sinkhorn, plain"), None)
    if plain is not None:
        case["plain_sinkhorn_converged"] = plain["converged"]
        case["plain_sinkhorn_over_sns_iters"] = plain["iterations"] / sns["iterations"]
        case["plain_sinkhorn_over_sns_seconds"] = plain["seconds"] / sns["seconds"]
    reg = next((r for r in res if r["solver"] == "regot ssns"), None)
    if reg is not None:
        case["sns_over_regot_seconds"] = sns["seconds"] / reg["seconds"]
    print_case(case)
    return case


def print_case(case: dict[str, Any]) -> None:
    print(f"  {'solver':<40} {'iters':>8} {'seconds':>9} {'L1 error':>10} {'gap':>9} converged")
    for r in case["results"]:
        gap = f"{r['final_gap']:.1e}" if "final_gap" in r else "-"
        print(
            f"  {r['solver']:<40} {r['iterations']:>8} {r['seconds']:>9.3f} {r['final_error']:>10.1e} {gap:>9}"
            f" {r['converged']}"
        )
    s = case["results"][0]
    print(f"  SNS: {s['newton_steps']} Newton steps, {s['fallback_iters']} fallback iterations, CG {s['cg_iters']}")
    more = "" if case["sinkhorn_converged"] else ">"  # Sinkhorn hit its cap: a lower bound
    line = (
        f"  Sinkhorn / SNS: {more}{case['sinkhorn_over_sns_iters']:.0f}x iterations, "
        f"{more}{case['sinkhorn_over_sns_seconds']:.1f}x seconds"
    )
    if "sns_over_regot_seconds" in case:
        line += f"; SNS / regot ssns seconds: {case['sns_over_regot_seconds']:.2f}"
    if "plain_sinkhorn_over_sns_seconds" in case:
        more = "" if case["plain_sinkhorn_converged"] else ">"
        line += (
            f"; plain Sinkhorn / SNS: {more}{case['plain_sinkhorn_over_sns_iters']:.0f}x iterations, "
            f"{more}{case['plain_sinkhorn_over_sns_seconds']:.1f}x seconds"
        )
    print(line)
    if case.get("paper"):
        p = case["paper"]
        print(
            f"  paper (CPU): SNS {p['sns_iters']} iterations, {p['sns_s']} s; "
            f"Sinkhorn {p['sinkhorn_iters']} iterations, {p['sinkhorn_s']} s"
        )


def plot(cases: list[dict[str, Any]], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for case in cases:
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        for i, r in enumerate(case["results"]):  # one colour per solver on all four panels
            for row, key in enumerate(("curve_errors", "curve_gaps")):
                if key not in r:
                    continue
                ys = np.maximum(np.asarray(r[key], float), 1e-17)
                for col, xkey in enumerate(("curve_iters", "curve_seconds")):
                    xs = np.asarray(r[xkey], float)[: len(ys)]
                    axes[row, col].plot(xs, ys[: len(xs)], marker=".", color=f"C{i}", label=r["solver"])
        for ax in axes.ravel():
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        for ax in axes[:, 0]:
            ax.set_xscale("log")
        axes[0, 0].set_ylabel("marginal error (L1; OTT-JAX: its own, regot: its own norm)")
        axes[1, 0].set_ylabel("optimality gap D* - D")
        axes[1, 0].set_xlabel("iterations")
        axes[1, 1].set_xlabel("seconds (compilation excluded)")
        axes[0, 0].legend()
        fig.suptitle(f"{case['case']} (n = {case['n']}, eta = {ETA:g}, float64)")
        fig.tight_layout()
        path = os.path.join(out, f"sns_{case['case'].replace(' ', '_').replace('=', '')}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("python -m benchmarks.sns", __doc__, "one small problem, no references (smoke test)")
    parser.add_argument("--no-ott-jax", action="store_true")
    parser.add_argument("--no-regot", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.time()
    cfg = {
        "repeats": 3,
        "repeats_slow": 1,
        "repeats_regot": 3,
        "sinkhorn_max": 60_000,
        "plain_sinkhorn": True,
        "ott_jax": not args.no_ott_jax,
        "regot": not args.no_regot,
    }
    with jax.enable_x64(True):  # machine accuracy needs float64 (scoped: importers keep their setting)
        cases = _run_all(args, cfg)
    record = {"meta": cli.run_meta(args.quick, t0), "eta": ETA, "tol": TOL, "cases": cases}
    cli.write_record(args.out, "sns.json", record)
    for p in plot(cases, args.out):
        print("wrote", p)
    return 0


def _run_all(args: argparse.Namespace, cfg: dict) -> list[dict[str, Any]]:
    if args.quick:
        cfg.update(repeats=1, repeats_regot=1, sinkhorn_max=5_000, ott_jax=False, plain_sinkhorn=False)
        try:
            import regot  # noqa: F401
        except ImportError:
            cfg["regot"] = False
        todo = [("random assignment n=100", lambda: random_assignment(100), 20, {})]
    else:
        todo = [
            ("random assignment n=500", lambda: random_assignment(500), 20, {}),
            ("random assignment n=2000", lambda: random_assignment(2000), 20, {"sinkhorn_max": 20_000}),
            ("W2 images", lambda: image_problem(2), 20, {"sinkhorn_max": 50_000}),
            # W1 is degenerate: the paper warms up with N1 = 700 plain iterations; the measured handover decides.
            ("W1 images", lambda: image_problem(1), 20, {"sinkhorn_max": 50_000, "paper_warmup": 700}),
        ]
    cases = []
    # one bar step per problem, advanced after its solvers have finished (never inside a timed run)
    for name, problem, warmup, kw in progress_bar(todo, desc="sns", unit="problem", progress=args.progress):
        cases.append(run_case(name, *problem(), warmup, cfg, **kw))
    return cases


if __name__ == "__main__":
    raise SystemExit(main())
