"""Monge gap, entropic map, costs h(x - y) and map fitting, against POT, closed forms and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import ot
import pytest
import scipy.linalg as sl

import ott_fast as otf
from ott_fast import costs


def _cov(d, rng, lo=0.3, hi=2.0):
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return q @ np.diag(rng.uniform(lo, hi, d)) @ q.T


def _gauss_map(s1, s2):
    """Closed-form OT map matrix between centred Gaussians (squared Euclidean)."""
    r = sl.sqrtm(s1).real
    ri = np.linalg.inv(r)
    return ri @ sl.sqrtm(r @ s2 @ r).real @ ri


def _gaussian_pair(d=2, seed=0):
    rng = np.random.default_rng(seed)
    s1, s2 = _cov(d, rng), _cov(d, rng)
    return s1, s2, _gauss_map(s1, s2), rng.normal(size=d)


# ----------------------------------------------------------------------------------------- the gap


def test_entropic_cost_matches_pot_plan(x64):
    """<P, C> - eps H(P) of POT's Sinkhorn plan, and the gap built on it (uniform and weighted)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    tx = x @ np.array([[0.0, 1.0], [1.0, 0.0]]) + 0.3 * rng.normal(size=(30, 2))
    c = ((x[:, None] - tx[None]) ** 2).sum(-1)
    eps = 0.2
    for a in (np.full(30, 1 / 30), rng.uniform(0.2, 1.0, 30)):
        a = a / a.sum()
        p = ot.sinkhorn(a, a, c, eps, stopThr=1e-13, numItermax=100_000)
        ref = (p * c).sum() + eps * (p * np.log(p)).sum()
        out = otf.monge_gap(x, tx, epsilon=eps, a=a, tol=1e-10)
        assert bool(out.converged)
        np.testing.assert_allclose(float(out.entropic_cost), ref, rtol=1e-8)
        np.testing.assert_allclose(float(out.gap), (a * np.diag(c)).sum() - ref, rtol=1e-8)
        np.testing.assert_allclose(float(out.floor), -eps * (a * np.log(a)).sum(), rtol=1e-12)
        assert float(out.gap) >= float(out.floor)


def test_gap_at_floor_for_optimal_maps_positive_otherwise():
    s1, s2, amat, m2 = _gaussian_pair(d=2, seed=1)
    x = jax.random.normal(jax.random.PRNGKey(0), (256, 2)) @ np.linalg.cholesky(s1).T
    optimal = {"translation": x + jnp.array([3.0, -1.0]), "gaussian map": x @ amat.T + m2}
    wrong = {"rotation": x @ np.array([[0.0, -1.0], [1.0, 0.0]]).T, "reflection": x[:, ::-1]}
    for name, tx in {**optimal, **wrong}.items():
        out = otf.monge_gap(x, tx, epsilon=0.005, relative_epsilon="mean")
        assert bool(out.converged), name
        np.testing.assert_allclose(float(out.floor), float(out.epsilon) * np.log(256), rtol=1e-5)
        assert float(out.gap) >= float(out.floor) * (1 - 1e-4), name
        if name in optimal:
            assert float(out.excess) < 0.5 * float(out.floor), (name, float(out.excess), float(out.floor))
        else:
            assert float(out.excess) > 20 * float(out.floor), (name, float(out.excess), float(out.floor))


def test_gap_excess_vanishes_with_epsilon_for_a_translation(x64):
    x = jax.random.normal(jax.random.PRNGKey(3), (64, 2))
    outs = [otf.monge_gap(x, x + 1.0, epsilon=e, tol=1e-4, max_iters=10_000) for e in (0.3, 0.1, 0.03)]
    ex = [float(o.excess / o.floor) for o in outs]  # excess relative to the floor
    assert all(bool(o.converged) for o in outs)
    assert ex[0] > ex[1] > ex[2] > 0 and ex[2] < 0.2 * ex[0], ex


def test_gap_optimal_for_elastic_cost(x64):
    """x - S_gamma(grad g(x)) for a concave g is optimal for the elastic cost: POT's exact OT agrees, and the
    entropic gap under that cost sits at its floor while a reflection does not."""
    rng = np.random.default_rng(2)
    w, b = 1.5 * rng.normal(size=(4, 3)), rng.normal(size=4)
    cost = costs.ElasticL1(gamma=0.5)

    def g(z):  # concave
        return -jax.nn.logsumexp(w @ z + b) - 0.25 * jnp.sum(z**2)

    x = jnp.asarray(rng.normal(size=(200, 3)))
    tx = jax.vmap(lambda z: z - cost.grad_h_star(jax.grad(g)(z)))(x)
    c = np.asarray(cost.all_pairs(x, tx))
    plan = ot.emd(np.full(200, 1 / 200), np.full(200, 1 / 200), c)
    np.testing.assert_allclose((plan * c).sum(), np.trace(c) / 200, rtol=1e-10)  # the identity pairing is optimal
    kw = dict(cost=cost, epsilon=0.005, relative_epsilon="mean", max_iters=10_000)
    good, bad = otf.monge_gap(x, tx, **kw), otf.monge_gap(x, tx[:, ::-1], **kw)
    assert bool(good.converged) and bool(bad.converged)
    assert float(good.excess) < 0.5 * float(good.floor)
    assert float(bad.excess) > 5 * float(bad.floor)


def test_gap_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(12, 2)))
    tx = jnp.asarray(rng.normal(size=(12, 2)))
    v = jnp.asarray(rng.normal(size=(12, 2)))
    for cost in (None, costs.ElasticL1(0.3)):
        fun = lambda t, e, c=cost: otf.monge_gap(x, t, cost=c, epsilon=e, tol=1e-12, max_iters=20_000).gap  # noqa: E731
        gt, ge = jax.grad(fun, argnums=(0, 1))(tx, 0.5)
        h = 1e-5
        fd_t = (fun(tx + h * v, 0.5) - fun(tx - h * v, 0.5)) / (2 * h)
        fd_e = (fun(tx, 0.5 + h) - fun(tx, 0.5 - h)) / (2 * h)
        np.testing.assert_allclose(float(jnp.sum(gt * v)), float(fd_t), rtol=1e-5)
        np.testing.assert_allclose(float(ge), float(fd_e), rtol=1e-5)


def test_gap_gradients_finite_through_a_map_and_jit():
    net = otf.MLP(hidden=(16,), residual=False)
    params = net.init(jax.random.PRNGKey(0), 2)
    x = jax.random.normal(jax.random.PRNGKey(1), (128, 2))
    fun = lambda p: otf.monge_gap(x, net.apply(p, x), epsilon=0.01, relative_epsilon="mean").gap  # noqa: E731
    val, grads = jax.jit(jax.value_and_grad(fun))(params)
    assert np.isfinite(float(val))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(grads))
    np.testing.assert_allclose(float(val), float(fun(params)), rtol=1e-5)  # jit equals eager
    gx = jax.grad(lambda t: otf.monge_gap(x, t, epsilon=0.01, relative_epsilon="mean").gap)(x)  # at x == Tx
    assert bool(jnp.all(jnp.isfinite(gx)))


def test_gap_reports_non_convergence():
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    out = otf.monge_gap(x, x[:, ::-1], epsilon=1e-4, max_iters=10, check_every=5)
    assert not bool(out.converged)
    assert np.isnan(float(out.gap)) and np.isfinite(float(out.entropic_cost))
    g = jax.grad(lambda t: otf.monge_gap(x, t, epsilon=1e-4, max_iters=10, check_every=5).gap)(x[:, ::-1])
    assert bool(jnp.all(g == 0))  # no gradient from a gap that is not an answer
    jitted = jax.jit(lambda t: otf.monge_gap(x, t, epsilon=1e-4, max_iters=10, check_every=5).gap)
    assert np.isnan(float(jitted(x[:, ::-1])))


def test_gap_input_validation():
    x = jnp.zeros((8, 2))
    with pytest.raises(ValueError, match="same shape"):
        otf.monge_gap(x, jnp.zeros((7, 2)), epsilon=0.1)
    with pytest.raises(ValueError, match="balanced"):
        otf.monge_gap(x, x, epsilon=0.1, tau_a=0.5)
    with pytest.raises(ValueError, match="epsilon"):
        otf.monge_gap(x, x, epsilon=-1.0)
    with pytest.raises(ValueError, match="NaN"):  # host arrays are checked eagerly
        otf.monge_gap(x, np.asarray(x.at[0, 0].set(jnp.nan)), epsilon=0.1)
    with pytest.raises(ValueError, match="Tx: contains NaN"):  # eager device arrays are checked too
        otf.monge_gap(x, x.at[0, 0].set(jnp.nan), epsilon=0.1)
    out = jax.jit(lambda t: otf.monge_gap(x, t, epsilon=0.1))(x.at[0, 0].set(jnp.nan))  # traced: the status rule
    assert np.isnan(float(out.gap)) and int(out.sinkhorn.status) == otf.Status.INVALID_INPUT


# ------------------------------------------------------------------------------------ costs h(x - y)


@pytest.mark.parametrize("cost", [costs.SqEuclidean(), costs.PNorm(1.5), costs.PNorm(3.0), costs.ElasticL1(0.7)])
def test_grad_h_star_inverts_grad_h(cost, x64):
    grad_h, grad_h_star = costs.ti_gradients(cost)
    z = jnp.asarray(np.random.default_rng(0).normal(size=(50, 3)))
    np.testing.assert_allclose(jax.vmap(lambda v: grad_h_star(grad_h(v)))(z), z, atol=1e-10)
    if not isinstance(cost, costs.ElasticL1):  # |z|_1 has no gradient at 0; elsewhere autodiff must agree
        np.testing.assert_allclose(jax.vmap(grad_h)(z), jax.vmap(jax.grad(lambda v: cost(v, 0 * v)))(z), rtol=1e-10)
    assert costs.ti_gradients(costs.Euclidean()) is None


def test_elastic_cost_matrix_matches_numpy(x64):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    ref = 0.5 * ((x[:, None] - y[None]) ** 2).sum(-1) + 0.4 * np.abs(x[:, None] - y[None]).sum(-1)
    np.testing.assert_allclose(costs.ElasticL1(0.4).all_pairs(jnp.asarray(x), jnp.asarray(y)), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="p > 1"):
        costs.ti_gradients(costs.PNorm(1.0))


# ------------------------------------------------------------------------------------- entropic map


def test_entropic_map_recovers_gaussian_closed_form():
    s1, s2, amat, m2 = _gaussian_pair(d=2, seed=5)
    kx, ky, kz = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (2000, 2)) @ np.linalg.cholesky(s1).T
    y = jax.random.normal(ky, (2000, 2)) @ np.linalg.cholesky(s2).T + m2
    t = otf.entropic_map(x, y, epsilon=0.01, relative_epsilon="mean")
    assert bool(t.converged)
    z = jax.random.normal(kz, (500, 2)) @ np.linalg.cholesky(s1).T * 0.8  # held out, away from the tails
    tz = np.asarray(t(z))
    design = np.hstack([np.asarray(z), np.ones((500, 1))])
    coef = np.linalg.lstsq(design, tz, rcond=None)[0]
    np.testing.assert_allclose(coef[:2].T, amat, atol=0.1)
    np.testing.assert_allclose(coef[2], m2, atol=0.1)
    uvp = 100 * np.mean(np.sum((tz - (np.asarray(z) @ amat.T + m2)) ** 2, 1)) / np.trace(s2)
    assert uvp < 2.0, uvp


def test_entropic_map_non_euclidean_costs():
    """Translations are optimal for every h(x - y): the entropic map must recover them for each cost; the
    x - grad h*(.) form and the barycentric projection coincide for the squared Euclidean cost."""
    x = jax.random.normal(jax.random.PRNGKey(0), (400, 2))
    shift = jnp.array([1.0, -0.5])
    z = 0.5 * jax.random.normal(jax.random.PRNGKey(1), (50, 2))
    for cost in (costs.SqEuclidean(), costs.PNorm(1.5), costs.ElasticL1(0.5)):
        t = otf.entropic_map(x, x + shift, cost=cost, epsilon=0.01, relative_epsilon="mean")
        assert bool(t.converged)
        err = float(jnp.abs(t(z) - (z + shift)).max())
        assert err < 0.15, (cost, err)


def _ott_jax_costs():
    from ott.geometry import costs as ott_costs
    from ott.geometry import regularizers

    # (ours, OTT-JAX's, c_ours / c_ott): OTT-JAX's PNormP is |z|_p^p / p, the same map at epsilon / p
    return [
        (costs.SqEuclidean(), ott_costs.SqEuclidean(), 1.0),
        (costs.PNorm(1.5), ott_costs.PNormP(1.5), 1.5),
        (costs.ElasticL1(0.5), ott_costs.RegTICost(regularizers.L1(), lam=0.5), 1.0),
    ]


def test_entropic_map_matches_ott_jax(x64):
    """The entropic map ``z - grad h*(grad f_eps(z))`` against OTT-JAX's ``DualPotentials.transport`` on the same
    problem, for the squared Euclidean, a p-norm and the elastic cost (agreement ~1e-11 at these tolerances)."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    x = jax.random.normal(jax.random.PRNGKey(0), (200, 2))
    y = 2.0 * jax.random.normal(jax.random.PRNGKey(2), (150, 2)) + jnp.array([1.0, -0.5])
    z = 0.5 * jax.random.normal(jax.random.PRNGKey(1), (50, 2))
    for ours, theirs, scale in _ott_jax_costs():
        t = otf.entropic_map(x, y, cost=ours, epsilon=0.2, tol=1e-11, max_iters=100_000)
        geom = pointcloud.PointCloud(x, y, cost_fn=theirs, epsilon=0.2 / scale)
        ref = ott_sinkhorn.Sinkhorn(threshold=1e-11, max_iterations=100_000)(linear_problem.LinearProblem(geom))
        assert bool(t.converged) and bool(ref.converged)
        np.testing.assert_allclose(t(z), ref.to_dual_potentials().transport(z), atol=1e-8, err_msg=type(ours).__name__)
    assert t(z[0]).shape == (2,)


# --------------------------------------------------------------------------------------------- fitting


def test_sinkhorn_loss_matches_sinkhorn_divergence(x64):
    """Same value as otf.sinkhorn_divergence; its envelope gradient matches finite differences."""
    x = jax.random.normal(jax.random.PRNGKey(0), (24, 2))
    y = jax.random.normal(jax.random.PRNGKey(1), (24, 2)) * 0.5 + 1.0  # one shape: one compilation
    v = jax.random.normal(jax.random.PRNGKey(2), (24, 2))
    loss = otf.fitting.sinkhorn_loss(epsilon=0.3, relative_epsilon=None, tol=1e-11, max_iters=20_000)
    ref = otf.sinkhorn_divergence(x, y, epsilon=0.3, tol=1e-11, max_iters=20_000)
    np.testing.assert_allclose(float(loss(x, y)), float(ref), rtol=1e-9)
    h = 1e-5
    fd = (loss(x + h * v, y) - loss(x - h * v, y)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(jax.grad(loss)(x, y) * v)), float(fd), rtol=1e-6)


def test_fit_gaussian_pair_small_l2_uvp():
    s1, s2, amat, m2 = _gaussian_pair(d=2, seed=0)
    l1, l2 = np.linalg.cholesky(s1), np.linalg.cholesky(s2)
    src = lambda k: jax.random.normal(k, (256, 2)) @ l1.T  # noqa: E731
    tgt = lambda k: jax.random.normal(k, (256, 2)) @ l2.T + m2  # noqa: E731
    net = otf.MLP(hidden=(32, 32))
    state, hist = otf.fit(
        jax.random.PRNGKey(0), net.apply, net.init(jax.random.PRNGKey(1), 2), optax.adam(2e-3), src, tgt,
        n_steps=300, gap_weight=1.0, chunk=100, progress=False,
    )  # fmt: skip
    params = state.params
    assert hist["loss"].shape == (300,) and hist["applied"].all()
    assert np.all(np.asarray(hist["gap"]) >= np.asarray(hist["gap_floor"]) * (1 - 1e-4))
    xt = np.asarray(src(jax.random.PRNGKey(7)))
    err = np.asarray(net.apply(params, xt)) - (xt @ amat.T + m2)
    uvp = 100 * np.mean(np.sum(err**2, 1)) / np.trace(s2)
    assert uvp < 3.0, uvp


def test_train_step_skips_non_finite_and_takes_any_model():
    """Any apply_fn works (here a plain affine map in a dict); a NaN loss leaves the state unchanged; a
    schedule for lambda is evaluated at the step."""
    apply_fn = lambda p, x: x @ p["w"] + p["b"]  # noqa: E731
    params = {"w": jnp.eye(2), "b": jnp.zeros(2)}
    opt = optax.sgd(0.1)
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    nan_loss = lambda tx, y: jnp.nan * jnp.sum(tx)  # noqa: E731
    step = otf.fitting.make_train_step(apply_fn, opt, fitting_loss=nan_loss, gap_weight=1.0)
    state = otf.fitting.FitState.create(params, opt)
    new, metrics = step(state, x, x + 1.0)
    assert not bool(metrics["applied"]) and int(new.step) == 1
    np.testing.assert_array_equal(new.params["w"], params["w"])
    assert int(new.opt_state.total_notfinite) == 1  # optax.apply_if_finite's own count of skipped steps
    grad_nan = lambda tx, y: jnp.sqrt(jnp.sum(0.0 * tx))  # noqa: E731  # loss 0, gradient 0 * inf = NaN
    step = otf.fitting.make_train_step(apply_fn, optax.adam(0.1), fitting_loss=grad_nan, gap_weight=None)
    state = otf.fitting.FitState.create(params, optax.adam(0.1))
    new, metrics = step(state, x, x + 1.0)
    assert np.isfinite(float(metrics["loss"])) and not bool(metrics["applied"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, new.opt_state.inner_state, state.opt_state.inner_state)
    schedule = optax.linear_schedule(0.0, 1.0, 10)
    step = otf.fitting.make_train_step(apply_fn, opt, gap_weight=schedule)
    state = otf.fitting.FitState.create(params, opt)
    for _ in range(3):
        state, metrics = step(state, x, x + 1.0)
    assert bool(metrics["applied"]) and np.isclose(float(metrics["weight"]), 0.2)
    assert float(jnp.abs(state.params["b"] - 0.0).max()) > 0  # the translation is being learnt


def test_fit_is_independent_of_chunking():
    net = otf.MLP(hidden=(8,))
    p0 = net.init(jax.random.PRNGKey(1), 2)
    src = lambda k: jax.random.normal(k, (32, 2))  # noqa: E731
    tgt = lambda k: jax.random.normal(k, (32, 2)) + 1.0  # noqa: E731
    kw = dict(n_steps=7, progress=False, gap_weight=0.5)
    s1, h1 = otf.fit(jax.random.PRNGKey(0), net.apply, p0, optax.adam(1e-2), src, tgt, chunk=7, **kw)
    s2, h2 = otf.fit(jax.random.PRNGKey(0), net.apply, p0, optax.adam(1e-2), src, tgt, chunk=3, **kw)
    p1, p2 = s1.params, s2.params
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="n_steps"):
        otf.fit(jax.random.PRNGKey(0), net.apply, p0, optax.adam(1e-2), src, tgt, n_steps=0)


def test_fit_resumes_from_its_state_and_reuses_its_compiled_chunk():
    """fit returns its FitState (params, optimiser state, step): 4 steps then 3 resumed equal 7 in one run
    (Adam's moments carry on); a second fit with the same model, optimiser and samplers does not retrace,
    whatever its key, n_steps, epsilon or constant gap weight."""
    net = otf.MLP(hidden=(8,))
    p0 = net.init(jax.random.PRNGKey(1), 2)
    traces = []

    def apply_fn(p, x):  # runs only while tracing
        traces.append(1)
        return net.apply(p, x)

    src = lambda k: jax.random.normal(k, (32, 2))  # noqa: E731
    tgt = lambda k: jax.random.normal(k, (32, 2)) + 1.0  # noqa: E731
    opt = optax.adam(1e-2)
    kw = dict(progress=False, gap_weight=0.5, chunk=4)
    whole, h = otf.fit(jax.random.PRNGKey(0), apply_fn, p0, opt, src, tgt, n_steps=7, **kw)
    compiled = len(traces)
    first, h1 = otf.fit(jax.random.PRNGKey(0), apply_fn, p0, opt, src, tgt, n_steps=4, **kw)
    resumed, h2 = otf.fit(jax.random.PRNGKey(0), apply_fn, None, opt, src, tgt, n_steps=3, state=first, **kw)
    assert int(resumed.step) == 7 and isinstance(resumed, otf.fitting.FitState)
    np.testing.assert_allclose(np.concatenate([h1["loss"], h2["loss"]]), h["loss"], rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(whole)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    otf.fit(jax.random.PRNGKey(5), apply_fn, p0, opt, src, tgt, n_steps=9, epsilon=0.02, **kw)
    assert len(traces) == compiled  # no retrace after the first call
    with pytest.raises(ValueError, match="not both"):
        otf.fit(jax.random.PRNGKey(0), apply_fn, p0, opt, src, tgt, n_steps=3, state=first, **kw)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_quick_monge_gap_benchmark(tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow (25 s): excluded by default, run with -m slow")
    import json
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.monge_gap import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "monge_gap.json").read_text())
    for case in report["cases"]:
        names = [r["method"] for r in case["rows"]]
        assert names[:3] == ["identity", "best linear map (oracle)", "entropic map"]
        assert names[-2:] == ["ott_fast fit, no gap", "ott_fast fit, with gap"]
        assert all(np.isfinite(r["l2_uvp"]) for r in case["rows"] if "error" not in r)
    assert (tmp_path / "monge_gap_l2uvp.png").exists()
