"""``python -m benchmarks --suites monge_gap [--quick] [--out out]``: Monge-gap map fitting vs known maps.

Every problem is generated in code with its optimal map ``T*`` known in closed form:

- ``gaussian``: ``N(0, S1) -> N(m, S2)``, ``T*(x) = m + A x``, ``A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2``;
- ``brenier``: ``mu = N(0, I)``, ``T* = grad phi``, ``phi(x) = s LSE((W x + b) / s) + alpha/2 |x|^2`` (a smooth max
  of affine functions, convex), which makes a multi-modal target, in d = 2, 8, 16, 64;
- ``elastic``: cost ``h(z) = |z|^2/2 + gamma |z|_1``, ``T*(x) = x - S_gamma(grad g(x))`` for the concave
  ``g(x) = -LSE(W x + b) - alpha/2 |x|^2`` (Gangbo-McCann form; POT's exact OT confirms the pairing is optimal
  in ``tests/test_monge_gap.py``); its displacements are sparse, which the squared-Euclidean map is not;
- ``mahalanobis``: Gaussians under ``c(x, y) = (x - y)^T M (x - y) / 2`` (M anisotropic): the optimal map is
  linear and known in closed form but not symmetric, so the squared-Euclidean OT map (reported as a row,
  exact) is provably wrong.

Scored by L2-UVP ``= 100 E|T_hat(x) - T*(x)|^2 / sum_i Var(nu_i)`` on held-out samples. Rows: identity, the
best linear map (least squares fit to ``T*`` itself: an oracle), the entropic map (2048 samples per side),
OTT-JAX's ``MongeGapEstimator`` and ours (``ott_fast.fit``) without and with the gap, all three with the same
residual MLP (same initial parameters), Adam(1e-3), batch 256, the same number of steps, the Sinkhorn
divergence as fitting loss and ``lambda = 1``. Every entropic problem uses epsilon = 0.01 x the mean of its
cost matrix (``relative_epsilon="mean"`` in both libraries), float32. Training speed is steps per second
with compilation excluded (the first chunk / first step is not timed).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg as sl

import ott_fast as otf
from benchmarks import cli
from ott_fast import costs
from ott_fast._progress import progress_bar

EPS_REL = 0.01
LR = 1e-3
BATCH = 256


# ----------------------------------------------------------------------------------------------- problems


def _cov(d: int, rng: np.random.Generator) -> np.ndarray:
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return q @ np.diag(rng.uniform(0.3, 2.0, d)) @ q.T


def _gauss_map(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """``A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2``: the squared-Euclidean OT map between centred Gaussians."""
    r = sl.sqrtm(s1).real
    ri = np.linalg.inv(r)
    return ri @ sl.sqrtm(r @ s2 @ r).real @ ri


def gaussian_problem(d: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    s1, s2, m = _cov(d, rng), _cov(d, rng), rng.normal(size=d)
    amat = _gauss_map(s1, s2).astype(np.float32)
    l1 = np.linalg.cholesky(s1).astype(np.float32)
    m = m.astype(np.float32)
    return {
        "name": f"gaussian d={d}",
        "d": d,
        "cost": None,
        "source": lambda k: jax.random.normal(k, (BATCH, d)) @ l1.T,
        "draw": lambda k, n: jax.random.normal(k, (n, d)) @ l1.T,
        "tmap": lambda x: x @ amat.T + m,
    }


def brenier_problem(d: int, seed: int = 0, k: int = 4, s: float = 0.5, alpha: float = 0.5) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 10)
    w = rng.normal(size=(k, d))
    w = (3.0 * w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)  # |w_k| = 3: separated modes
    b = rng.normal(size=k).astype(np.float32)

    def tmap(x: jax.Array) -> jax.Array:  # grad of s LSE((W x + b) / s) + alpha/2 |x|^2
        return jax.nn.softmax((x @ w.T + b) / s, axis=-1) @ w + alpha * x

    return {
        "name": f"brenier d={d}",
        "d": d,
        "cost": None,
        "source": lambda kk: jax.random.normal(kk, (BATCH, d)),
        "draw": lambda kk, n: jax.random.normal(kk, (n, d)),
        "tmap": tmap,
    }


def elastic_problem(d: int, seed: int = 0, gamma: float = 0.5, alpha: float = 0.5) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 20)
    w = (1.5 * rng.normal(size=(6, d))).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    cost = costs.ElasticL1(gamma)

    def g(z: jax.Array) -> jax.Array:  # concave
        return -jax.nn.logsumexp(w @ z + b) - 0.5 * alpha * jnp.sum(z * z)

    def tmap(x: jax.Array) -> jax.Array:
        return jax.vmap(lambda z: z - cost.grad_h_star(jax.grad(g)(z)))(x)

    return {
        "name": f"elastic d={d}",
        "d": d,
        "cost": cost,
        "gamma": gamma,
        "source": lambda kk: jax.random.normal(kk, (BATCH, d)),
        "draw": lambda kk, n: jax.random.normal(kk, (n, d)),
        "tmap": tmap,
    }


def mahalanobis_problem(d: int, seed: int = 0) -> dict[str, Any]:
    """Gaussians under ``c(x, y) = (x - y)^T M (x - y) / 2``: with ``R = M^1/2``, ``u = R x`` is a squared-Euclidean
    problem, so ``T*(x) = m + R^-1 A_u R x`` (``A_u`` the Gaussian map between ``R S1 R`` and ``R S2 R``): not
    symmetric, so not the squared-Euclidean optimal map ``A`` between the same Gaussians."""
    rng = np.random.default_rng(seed + 30)
    s1, s2, m = _cov(d, rng), _cov(d, rng), rng.normal(size=d)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    mmat = q @ np.diag(np.geomspace(0.1, 10.0, d)) @ q.T
    r = sl.sqrtm(mmat).real
    au = _gauss_map(r @ s1 @ r, r @ s2 @ r)
    tmat = (np.linalg.inv(r) @ au @ r).astype(np.float32)
    m_inv = np.linalg.inv(mmat).astype(np.float32)
    mm = mmat.astype(np.float32)
    cost = costs.TranslationInvariant(lambda z: 0.5 * z @ (mm @ z), lambda w: m_inv @ w)
    l1 = np.linalg.cholesky(s1).astype(np.float32)
    m = m.astype(np.float32)
    return {
        "name": f"mahalanobis d={d}",
        "d": d,
        "cost": cost,
        "ott_h": lambda z: 0.5 * z @ (mm @ z),
        "source": lambda k: jax.random.normal(k, (BATCH, d)) @ l1.T,
        "draw": lambda k, n: jax.random.normal(k, (n, d)) @ l1.T,
        "tmap": lambda x: x @ tmat.T + m,
        "sq_euclidean_map": lambda x: x @ _gauss_map(s1, s2).astype(np.float32).T + m,
    }


def _target_sampler(prob: dict[str, Any]) -> Any:
    # nu = T* # mu: fresh source draws pushed by T*, independent of the source batch of the same step
    return lambda k: prob["tmap"](prob["draw"](jax.random.fold_in(k, 1), BATCH))


def l2_uvp(pred: np.ndarray, true: np.ndarray, var_nu: float) -> float:
    return float(100.0 * np.mean(np.sum((np.asarray(pred) - np.asarray(true)) ** 2, axis=1)) / var_nu)


# ------------------------------------------------------------------------------------------------ OTT-JAX


def _ott_cost(prob: dict[str, Any]) -> Any:
    from ott.geometry import costs as ott_costs

    if prob["cost"] is None:
        return ott_costs.SqEuclidean()
    if "ott_h" in prob:
        h = prob["ott_h"]
    else:
        gamma = float(prob["gamma"])
        h = lambda z: 0.5 * jnp.sum(z * z) + gamma * jnp.sum(jnp.abs(z))  # noqa: E731

    @jax.tree_util.register_pytree_node_class
    class Custom(ott_costs.TICost):
        def h(self, z: jax.Array) -> jax.Array:
            return h(z)

    return Custom()


def _to_flax(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"Dense_{i}": {"kernel": p["w"], "bias": p["b"]} for i, p in enumerate(params)}


def run_ott(prob: dict[str, Any], params0: list, hidden: tuple, n_steps: int, key: jax.Array) -> dict[str, Any]:
    """OTT-JAX's MongeGapEstimator, same network and initial parameters; returns the map and steps/s."""
    from ott.neural.methods.monge_gap import MongeGapEstimator, monge_gap_from_samples
    from ott.neural.networks.potentials import PotentialMLP
    from ott.tools.sinkhorn_divergence import sinkdiv

    cost_fn = _ott_cost(prob)

    def fitting_loss(x: jax.Array, y: jax.Array) -> tuple[jax.Array, None]:
        return sinkdiv(x, y, epsilon=EPS_REL, relative_epsilon="mean")[0], None

    def regularizer(x: jax.Array, tx: jax.Array) -> tuple[jax.Array, None]:
        return monge_gap_from_samples(x, tx, cost_fn=cost_fn, epsilon=EPS_REL, relative_epsilon="mean"), None

    model = PotentialMLP(dim_hidden=list(hidden), is_potential=False, act_fn=jax.nn.gelu)
    opt = optax.adam(LR)
    est = MongeGapEstimator(
        dim_data=prob["d"],
        model=model,
        optimizer=opt,
        fitting_loss=fitting_loss,
        regularizer=regularizer,
        regularizer_strength=1.0,
        num_train_iters=n_steps,
        rng=jax.random.PRNGKey(0),
    )
    fparams = _to_flax(params0)
    state = est.state_neural_net.replace(params=fparams, opt_state=opt.init(fparams))
    tgt = _target_sampler(prob)

    @jax.jit
    def batch(i: jax.Array) -> dict[str, jax.Array]:
        kx, ky = jax.random.split(jax.random.fold_in(key, i))
        return {"source": prob["source"](kx), "target": tgt(ky)}

    t_first = time.perf_counter()
    state, _ = est.step_fn(state, batch(0), None, False, 0)
    jax.block_until_ready(state.params)
    t_first = time.perf_counter() - t_first
    t0 = time.perf_counter()
    for i in range(1, n_steps):
        state, _ = est.step_fn(state, batch(i), None, False, i)
    jax.block_until_ready(state.params)
    secs = time.perf_counter() - t0
    apply = jax.jit(lambda x: state.apply_fn({"params": state.params}, x))
    return {"map": apply, "steps_per_s": (n_steps - 1) / secs, "first_step_s": t_first}


# ------------------------------------------------------------------------------------------------ ours


def run_ours(
    prob: dict[str, Any], net: otf.MLP, params0: list, n_steps: int, key: jax.Array, gap: bool, chunk: int
) -> dict[str, Any]:
    state, hist = otf.fit(
        key,
        net.apply,
        params0,
        optax.adam(LR),
        prob["source"],
        _target_sampler(prob),
        n_steps=n_steps,
        fitting_loss=otf.fitting.sinkhorn_loss(epsilon=EPS_REL, relative_epsilon="mean"),
        gap_weight=1.0 if gap else 0.0,
        cost=prob["cost"],
        epsilon=EPS_REL,
        relative_epsilon="mean",
        chunk=chunk,
        progress=False,
    )
    secs, steps = hist["chunk_seconds"], hist["chunk_steps"]
    timed = slice(1, None) if len(secs) > 1 else slice(0, None)  # the first chunk includes compilation
    return {
        "map": jax.jit(lambda x: net.apply(state.params, x)),
        "steps_per_s": float(steps[timed].sum() / secs[timed].sum()),
        "first_chunk_s": float(secs[0]),
        "skipped_steps": int((~hist["applied"]).sum()),
        "final_gap": float(hist["gap"][-1]),
        "final_gap_floor": float(hist["gap_floor"][-1]),
    }


def run_case(prob: dict[str, Any], n_steps: int, n_test: int, n_ent: int, chunk: int, with_ott: bool) -> dict:
    d = prob["d"]
    key = jax.random.PRNGKey(d)
    k_test, k_ent_x, k_ent_y, k_lin, k_fit, k_net = jax.random.split(key, 6)
    x_test = prob["draw"](k_test, n_test)
    t_test = np.asarray(prob["tmap"](x_test))
    var_nu = float(np.asarray(t_test).var(0).sum())
    rows: list[dict[str, Any]] = []

    def add(name: str, pred: Any, **extra: Any) -> None:
        rows.append({"method": name, "l2_uvp": l2_uvp(pred, t_test, var_nu), **extra})

    add("identity", x_test)
    x_lin = np.asarray(prob["draw"](k_lin, 4096))
    design = np.hstack([x_lin, np.ones((len(x_lin), 1), np.float32)])
    coef = np.linalg.lstsq(design, np.asarray(prob["tmap"](x_lin)), rcond=None)[0]
    add("best linear map (oracle)", np.hstack([np.asarray(x_test), np.ones((n_test, 1))]) @ coef)

    x_ent = prob["draw"](k_ent_x, n_ent)
    y_ent = prob["tmap"](prob["draw"](k_ent_y, n_ent))
    t0 = time.perf_counter()
    emap = otf.entropic_map(x_ent, y_ent, cost=prob["cost"], epsilon=EPS_REL, relative_epsilon="mean", max_iters=5000)
    pred = emap(x_test)
    add("entropic map", pred, converged=bool(emap.converged), seconds=time.perf_counter() - t0)
    if prob["cost"] is not None:  # the squared-Euclidean map on a problem whose cost is not
        emap2 = otf.entropic_map(x_ent, y_ent, epsilon=EPS_REL, relative_epsilon="mean", max_iters=5000)
        add("entropic map, sq. Euclidean cost (wrong cost)", emap2(x_test), converged=bool(emap2.converged))
    if "sq_euclidean_map" in prob:
        add("exact sq. Euclidean OT map (wrong cost)", prob["sq_euclidean_map"](x_test))

    hidden = (64, 64) if d <= 16 else (128, 128)
    net = otf.MLP(hidden=hidden, residual=True, activation=jax.nn.gelu)
    params0 = net.init(k_net, d)
    if with_ott:
        try:
            r = run_ott(prob, params0, hidden, n_steps, k_fit)
            add("OTT-JAX MongeGapEstimator", r["map"](x_test), steps_per_s=r["steps_per_s"])
        except Exception as exc:  # noqa: BLE001 - report why the reference could not run
            rows.append({"method": "OTT-JAX MongeGapEstimator", "error": f"{type(exc).__name__}: {exc}"})
    for gap in (False, True):
        r = run_ours(prob, net, params0, n_steps, k_fit, gap, chunk)
        extra = {k: r[k] for k in ("steps_per_s", "skipped_steps", "final_gap", "final_gap_floor")}
        add("ott_fast fit, with gap" if gap else "ott_fast fit, no gap", r["map"](x_test), **extra)
    return {"case": prob["name"], "d": d, "n_steps": n_steps, "batch": BATCH, "hidden": list(hidden), "rows": rows}


def print_case(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}  ({case['n_steps']} steps, batch {case['batch']}, MLP {case['hidden']})")
    print(f"{'method':<48}{'L2-UVP':>10}{'steps/s':>10}")
    for r in case["rows"]:
        if "error" in r:
            print(f"{r['method']:<48}  failed: {r['error']}")
            continue
        sps = f"{r['steps_per_s']:.1f}" if "steps_per_s" in r else ""
        print(f"{r['method']:<48}{r['l2_uvp']:>10.3f}{sps:>10}")
    by = {r["method"]: r for r in case["rows"]}
    ours, nogap, ott = by["ott_fast fit, with gap"], by["ott_fast fit, no gap"], by.get("OTT-JAX MongeGapEstimator")
    line = f"gap helps: {ours['l2_uvp'] < nogap['l2_uvp']}"
    if ott and "error" not in ott:
        line += (
            f"; ours <= OTT-JAX UVP: {ours['l2_uvp'] <= ott['l2_uvp']}; "
            f"speed-up vs OTT-JAX: {ours['steps_per_s'] / ott['steps_per_s']:.2f}x"
        )
    print(line)


def plot(cases: list[dict[str, Any]], out: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots.")
        return []
    methods = [r["method"] for r in cases[0]["rows"] if "error" not in r and "wrong" not in r["method"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 4.8), gridspec_kw={"width_ratios": [3, 1.4]})
    width = 0.8 / len(methods)
    xs = np.arange(len(cases))
    for i, m in enumerate(methods):
        vals = [next((r.get("l2_uvp", np.nan) for r in c["rows"] if r["method"] == m), np.nan) for c in cases]
        ax.bar(xs + i * width, np.maximum(vals, 0.05), width, label=m)  # an exact oracle (0) shows at the floor
    ax.set_xticks(xs + 0.4 - width / 2)
    ax.set_xticklabels([c["case"] for c in cases], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(0.05, 200)
    ax.set_ylabel("L2-UVP (%), held-out samples (lower is better)")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    timed = [("OTT-JAX MongeGapEstimator", "OTT-JAX"), ("ott_fast fit, with gap", "ott_fast, gap")]
    for i, (m, label) in enumerate(timed):
        vals = [next((r.get("steps_per_s", np.nan) for r in c["rows"] if r["method"] == m), np.nan) for c in cases]
        ax2.bar(xs + i * 0.4, vals, 0.4, label=label)
    ax2.set_xticks(xs + 0.2)
    ax2.set_xticklabels([c["case"] for c in cases], rotation=60, fontsize=7)
    ax2.set_ylabel("training steps / s (compilation excluded)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path = os.path.join(out, "monge_gap_l2uvp.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("python -m benchmarks.monge_gap", __doc__, "tiny budgets (smoke test, < 1 minute)")
    parser.add_argument("--no-ott", action="store_true", help="skip OTT-JAX's MongeGapEstimator")
    args = parser.parse_args(argv)
    t0 = time.time()
    if args.quick:
        probs = [gaussian_problem(2), mahalanobis_problem(2)]
        n_steps, n_test, n_ent, chunk = 20, 1000, 256, 10
    else:
        probs = [gaussian_problem(8)] + [brenier_problem(d) for d in (2, 8, 16, 64)]
        probs += [mahalanobis_problem(4, seed=3), elastic_problem(8)]
        n_steps, n_test, n_ent, chunk = 400, 10_000, 2048, 100
    cases = []
    # one bar step per problem, advanced between problems (never inside a timed fit)
    for prob in progress_bar(probs, desc="monge_gap", unit="problem", progress=args.progress):
        cases.append(run_case(prob, n_steps, n_test, n_ent, chunk, with_ott=not args.no_ott))
        print_case(cases[-1])
    meta = cli.run_meta(args.quick, t0, epsilon=f"{EPS_REL} x mean cost (relative_epsilon='mean')")
    path = cli.write_record(args.out, "monge_gap.json", {"meta": meta, "cases": cases})
    paths = plot(cases, args.out)
    print(f"\nwrote {path}" + "".join(f", {p}" for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
