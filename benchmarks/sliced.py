"""Sliced Wasserstein benchmark: estimator accuracy, gradient flows, and throughput against POT and OTT-JAX.

    python -m benchmarks.sliced [--quick] [--out out]      (or python -m benchmarks --suites sliced)

(a) Error and variance of each estimator of ``SW_2^2`` against the number of projections ``L`` (10 to 1000),
    over ``K`` = 64 independent keys (one ``vmap``-ed call): MC, QMC (rotated spiral, d = 3 only), orthogonal
    blocks, and the lower/upper control variates (Nguyen & Ho, ICLR 2024), on (i) two 3-D point clouds
    (a Gaussian and a noisy torus, n = 1000) and (ii) images: scikit-learn's 8 x 8 digits as 64-d vectors
    (all 0s against all 1s, ~180 points each). The true value is the mean of 8 estimates with 50,000
    directions each in float64 (rotated spirals in 3-D, orthogonal blocks in 64-d). Variance reduction factor
    = var(MC) / var(estimator) at the same ``L`` (independent of the reference).
(b) Gradient flow ``x <- x - lr n grad_x SW_2^2(x, y)`` from a Gaussian to a torus (n = 500, L = 10 directions
    per step, one fresh key per step), for MC, QMC and both CVs; the error is the exact ``W_2^2`` to the target
    (``ot.emd2``, float64) over steps.
(c) Throughput of ``SW_2^2`` (uniform weights, float32, L = 1000 fresh directions per call) at n = m = 10,000,
    d = 3, and for a batch of 64 problems of n = m = 2,048 (``vmap``, one key per problem), against POT's
    ``ot.sliced_wasserstein_distance`` (NumPy backend, float32 inputs, a Python loop for the batch) and OTT-JAX
    0.6's ``ott.tools.sliced.sliced_wasserstein`` (jitted; ``vmap``-ed for the batch). Compilation excluded,
    best of 3 (OTT-JAX's batch and POT's loop: one timed run, they take 30-40 s). Also value-and-gradient
    in ``x`` for the two JAX libraries.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli
from ott_fast._progress import progress_bar
from ott_fast.trace import best_time

ESTIMATORS = {  # name -> (directions, estimator)
    "mc": ("mc", "mc"),
    "qmc": ("qmc", "mc"),
    "orthogonal": ("orthogonal", "mc"),
    "cv_lower": ("mc", "cv_lower"),
    "cv_upper": ("mc", "cv_upper"),
    "qmc+cv_upper": ("qmc", "cv_upper"),
}


# ------------------------------------------------------------------------------------------------ problems


def torus(n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    r, big = 0.4, 1.0
    pts = np.stack([(big + r * np.cos(v)) * np.cos(u), (big + r * np.cos(v)) * np.sin(u), r * np.sin(v)], 1)
    return (pts + noise * rng.normal(size=pts.shape)).astype(np.float32)


def point_clouds(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(n, 3)) * np.array([0.5, 0.3, 0.8])).astype(np.float32)
    return x, torus(n, 1) + np.array([0.3, 0.0, 0.2], np.float32)


def digit_vectors() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data[digits.target == 0] / 16.0
    y = digits.data[digits.target == 1] / 16.0
    return x.astype(np.float32), y.astype(np.float32)


# --------------------------------------------------------------------------------------------- (a) accuracy


def reference(x: np.ndarray, y: np.ndarray, n_dirs: int) -> float:
    with jax.enable_x64(True):
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        keys = jax.random.split(jax.random.PRNGKey(12345), 8)
        dirs = "qmc" if x.shape[1] == 3 else "orthogonal"  # the most accurate set available in each dimension
        f = jax.jit(lambda k: otf.sliced_wasserstein(k, x64, y64, n_projections=n_dirs // 8, directions=dirs))
        return float(np.mean([float(f(k)) for k in keys]))


def accuracy_case(name: str, x: np.ndarray, y: np.ndarray, ls: list[int], k: int, n_ref: int) -> dict[str, Any]:
    t0 = time.time()
    ref = reference(x, y, n_ref)
    d = x.shape[1]
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    keys = jax.random.split(jax.random.PRNGKey(7), k)
    rows: dict[str, Any] = {}
    for est, (dirs, kind) in ESTIMATORS.items():
        if dirs == "qmc" and d != 3:
            continue
        rmse, var, bias = [], [], []
        for L in ls:
            f = jax.jit(
                jax.vmap(
                    lambda kk, L=L, dirs=dirs, kind=kind: otf.sliced_wasserstein(
                        kk, xj, yj, n_projections=L, directions=dirs, estimator=kind
                    )
                )
            )
            vals = np.asarray(f(keys), np.float64)
            rmse.append(float(np.sqrt(np.mean((vals - ref) ** 2))))
            var.append(float(vals.var()))
            bias.append(float(vals.mean() - ref))
        rows[est] = {"rmse": rmse, "variance": var, "bias": bias}
    for r in rows.values():
        r["variance_reduction_vs_mc"] = [
            m / v if v > 0 else float("inf") for m, v in zip(rows["mc"]["variance"], r["variance"])
        ]
    return {
        "case": name,
        "n": x.shape[0],
        "m": y.shape[0],
        "d": d,
        "true_sw2": ref,
        "reference_directions": n_ref,
        "keys": k,
        "n_projections": ls,
        "results": rows,
        "seconds": time.time() - t0,
    }


def print_accuracy(case: dict[str, Any]) -> None:
    print(
        f"\n(a) {case['case']}: n={case['n']}, m={case['m']}, d={case['d']}, true SW_2^2 = {case['true_sw2']:.6g} "
        f"({case['reference_directions']} directions), {case['keys']} keys per point"
    )
    ls = case["n_projections"]
    head = "".join(f"{'L=' + str(L):>10}" for L in ls)
    print(f"{'relative RMSE':<15}{head}   | {'variance reduction vs MC':<24}{head}")
    for est, r in case["results"].items():
        errs = "".join(f"{e / case['true_sw2']:>10.2e}" for e in r["rmse"])
        reds = "".join(f"{v:>10.1f}" for v in r["variance_reduction_vs_mc"])
        print(f"{est:<15}{errs}   | {'':<24}{reds}")


# ------------------------------------------------------------------------------------------ (b) gradient flow


def gradient_flow(n: int, steps: int, every: int, n_dirs: int, lr: float) -> dict[str, Any]:
    import ot

    rng = np.random.default_rng(3)
    x0 = (rng.normal(size=(n, 3)) * 0.3 + np.array([2.0, 0.0, 0.0])).astype(np.float32)
    y = torus(n, 4)
    yj = jnp.asarray(y)
    curves = {}
    t0 = time.time()
    for est in ("mc", "qmc", "cv_lower", "cv_upper"):
        dirs, kind = ESTIMATORS[est]

        @jax.jit
        def run(x: jax.Array, key: jax.Array, dirs: str = dirs, kind: str = kind) -> jax.Array:
            def step(x: jax.Array, k: jax.Array) -> tuple[jax.Array, None]:
                g = jax.grad(
                    lambda z: otf.sliced_wasserstein(k, z, yj, n_projections=n_dirs, directions=dirs, estimator=kind)
                )(x)
                return x - lr * n * g, None

            return jax.lax.scan(step, x, jax.random.split(key, every))[0]

        x = jnp.asarray(x0)
        errs, its = [], []
        key = jax.random.PRNGKey(11)
        for it in range(0, steps + 1, every):
            xn = np.asarray(x, np.float64)
            errs.append(float(ot.emd2([], [], ot.dist(xn, y.astype(np.float64)))))
            its.append(it)
            if it < steps:
                key, sub = jax.random.split(key)
                x = run(x, sub)
        curves[est] = {"steps": its, "w2_squared": errs}
    return {
        "case": f"gradient flow Gaussian -> torus, n={n}, L={n_dirs}, lr={lr}",
        "n": n,
        "n_projections": n_dirs,
        "lr": lr,
        "results": curves,
        "seconds": time.time() - t0,
    }


def print_flow(case: dict[str, Any]) -> None:
    print(f"\n(b) {case['case']}: exact W_2^2 (ot.emd2) to the target")
    steps = case["results"]["mc"]["steps"]
    show = sorted({len(steps) // 4, len(steps) // 2, len(steps) - 1})
    print(f"{'estimator':<12}" + "".join(f"{'step ' + str(steps[i]):>12}" for i in show))
    for est, r in case["results"].items():
        print(f"{est:<12}" + "".join(f"{r['w2_squared'][i]:>12.3e}" for i in show))


# ------------------------------------------------------------------------------------------- (c) throughput


def _best(fn: Any, repeats: int, warmup: bool = True) -> float:
    """Best wall time of ``repeats`` calls after an untimed one (compilation excluded); without ``warmup``, the
    time of one call (POT's slow NumPy loop, which compiles nothing)."""
    if warmup:
        return best_time(fn, repeats)[0]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def throughput_single(n: int, n_dirs: int, repeats: int) -> dict[str, Any]:
    import ot
    from ott.tools import sliced as ott_sliced

    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (rng.normal(size=(n, 3)) * 0.8 + 0.5).astype(np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    key = jax.random.PRNGKey(0)
    ours = jax.jit(lambda k, x, y: otf.sliced_wasserstein(k, x, y, n_projections=n_dirs))
    ott = jax.jit(lambda k, x, y: ott_sliced.sliced_wasserstein(x, y, n_proj=n_dirs, rng=k)[0])
    ours_g = jax.jit(jax.value_and_grad(lambda x, k, y: otf.sliced_wasserstein(k, x, y, n_projections=n_dirs)))
    ott_g = jax.jit(jax.value_and_grad(lambda x, k, y: ott_sliced.sliced_wasserstein(x, y, n_proj=n_dirs, rng=k)[0]))
    rows = [
        {"solver": "ott_fast", "seconds": _best(lambda: ours(key, xj, yj), repeats), "value": float(ours(key, xj, yj))},
        {"solver": "ott-jax", "seconds": _best(lambda: ott(key, xj, yj), repeats), "value": float(ott(key, xj, yj))},
        {
            "solver": "pot",
            "seconds": _best(
                lambda: ot.sliced_wasserstein_distance(x, y, n_projections=n_dirs, seed=0), repeats, warmup=False
            ),
            "value": float(ot.sliced_wasserstein_distance(x, y, n_projections=n_dirs, seed=0)) ** 2,
        },
        {"solver": "ott_fast value+grad", "seconds": _best(lambda: ours_g(xj, key, yj), repeats)},
        {"solver": "ott-jax value+grad", "seconds": _best(lambda: ott_g(xj, key, yj), repeats)},
    ]
    return {"case": f"n=m={n}, d=3, L={n_dirs}", "n": n, "n_projections": n_dirs, "results": rows}


def throughput_batch(batch: int, n: int, n_dirs: int, repeats: int) -> dict[str, Any]:
    import ot
    from ott.tools import sliced as ott_sliced

    rng = np.random.default_rng(6)
    xs = rng.normal(size=(batch, n, 3)).astype(np.float32)
    ys = (rng.normal(size=(batch, n, 3)) * 0.8 + 0.5).astype(np.float32)
    xj, yj = jnp.asarray(xs), jnp.asarray(ys)
    keys = jax.random.split(jax.random.PRNGKey(1), batch)
    ours = jax.jit(jax.vmap(lambda k, x, y: otf.sliced_wasserstein(k, x, y, n_projections=n_dirs)))
    ott = jax.jit(jax.vmap(lambda k, x, y: ott_sliced.sliced_wasserstein(x, y, n_proj=n_dirs, rng=k)[0]))

    def pot_loop() -> list[float]:
        return [ot.sliced_wasserstein_distance(xs[i], ys[i], n_projections=n_dirs, seed=i) for i in range(batch)]

    rows = [
        {"solver": "ott_fast vmap", "seconds": _best(lambda: ours(keys, xj, yj), repeats)},
        {"solver": "ott-jax vmap", "seconds": _best(lambda: ott(keys, xj, yj), max(1, repeats - 2))},
        {"solver": "pot loop", "seconds": _best(pot_loop, 1, False)},
    ]
    return {
        "case": f"batch of {batch}, n=m={n}, d=3, L={n_dirs}",
        "batch": batch,
        "n": n,
        "n_projections": n_dirs,
        "results": rows,
    }


def print_throughput(case: dict[str, Any]) -> None:
    print(f"\n(c) throughput, {case['case']} (compilation excluded, best of repeats)")
    res = {r["solver"]: r for r in case["results"]}
    ours = case["results"][0]["seconds"]
    for r in case["results"]:
        extra = f"   value {r['value']:.5f}" if "value" in r else ""
        print(f"{r['solver']:<22}{r['seconds']:>10.4f} s{extra}")
    others = [r["seconds"] for r in case["results"][1:3]]
    case["speedup_vs_fastest_other"] = min(others) / ours
    line = f"speed-up of ott_fast over the faster of OTT-JAX / POT: {case['speedup_vs_fastest_other']:.1f}x"
    if "ott_fast value+grad" in res:
        case["grad_speedup_vs_ott"] = res["ott-jax value+grad"]["seconds"] / res["ott_fast value+grad"]["seconds"]
        line += f"; value+grad vs OTT-JAX: {case['grad_speedup_vs_ott']:.1f}x"
    print(line)


# --------------------------------------------------------------------------------------------------- plots


def plot(acc: list[dict[str, Any]], flow: dict[str, Any], out: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]').")
        return []
    paths = []
    fig, axes = plt.subplots(1, len(acc), figsize=(5.5 * len(acc), 4.2))
    for ax, case in zip(np.atleast_1d(axes), acc):
        for est, r in case["results"].items():
            style = "s--" if "+" in est else "o-"  # QMC + CV overlaps QMC
            ax.loglog(case["n_projections"], np.array(r["rmse"]) / case["true_sw2"], style, ms=4, mfc="none", label=est)
        ax.set_xlabel("number of projections L")
        ax.set_ylabel("relative RMSE of SW_2^2")
        ax.set_title(f"{case['case']} (d={case['d']})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(os.path.join(out, "sliced_estimators.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for est, r in flow["results"].items():
        ax.semilogy(r["steps"], r["w2_squared"], "o-", ms=3, label=est)
    ax.set_xlabel("gradient step")
    ax.set_ylabel("exact W_2^2 to the target (ot.emd2)")
    ax.set_title(flow["case"], fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(out, "sliced_flow.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("python -m benchmarks.sliced", __doc__, "small sizes (smoke test, < 1 minute)").parse_args(argv)
    t0 = time.time()
    if args.quick:
        ls, k, n_ref, n_pts = [10, 100], 16, 20_000, 200
        flow_args = dict(n=200, steps=20, every=10, n_dirs=10, lr=0.5)
        single, batch, repeats = (2000, 200), (8, 512, 200), 1
    else:
        ls, k, n_ref, n_pts = [10, 30, 100, 300, 1000], 64, 400_000, 1000
        flow_args = dict(n=500, steps=200, every=10, n_dirs=10, lr=0.5)
        single, batch, repeats = (10_000, 1000), (64, 2048, 1000), 3
    x, y = point_clouds(n_pts)
    digits = digit_vectors()
    if args.quick:
        digits = (digits[0][:60], digits[1][:60])
    # one bar step per case, advanced between cases (never inside a timed run)
    with progress_bar(total=5, desc="sliced", unit="case", progress=args.progress) as bar:
        acc = []
        clouds = {"3-D point clouds (Gaussian vs torus)": (x, y), "digits 0 vs 1 as 64-d vectors": digits}
        for name, (xa, ya) in clouds.items():
            acc.append(accuracy_case(name, xa, ya, ls, k, n_ref))
            print_accuracy(acc[-1])
            bar.update()
        flow = gradient_flow(**flow_args)
        print_flow(flow)
        bar.update()
        thr = []
        for run, args_ in ((throughput_single, single), (throughput_batch, batch)):
            thr.append(run(*args_, repeats))
            print_throughput(thr[-1])
            bar.update()
    record = {"meta": cli.run_meta(args.quick, t0), "accuracy": acc, "flow": flow, "throughput": thr}
    path = cli.write_record(args.out, "sliced.json", record)
    paths = plot(acc, flow, args.out)
    print(
        f"\nwrote {path}"
        + "".join(f", {p}" for p in paths)
        + f" ({time.time() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
