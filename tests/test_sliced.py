"""Sliced Wasserstein family against POT, closed forms, Monte Carlo and finite differences."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
import scipy.special as sp

import ott_fast as otf
from ott_fast.sliced.vmf import vmf_mean_resultant_length
from ott_fast.sliced.wasserstein import _sort_last, random_orthogonal


def _clouds(n=40, m=55, d=3, seed=0, weighted=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) * np.linspace(0.5, 1.5, d) + 0.7
    a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, m)
    if not weighted:
        a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    return x, y, a / a.sum(), b / b.sum()


# ------------------------------------------------------------------------------------------------ 1-D OT


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
def test_w1d_weighted_matches_pot_and_emd(x64, p):
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=23), rng.normal(size=17) * 2 + 0.3
    a, b = rng.uniform(0.05, 1, 23), rng.uniform(0.05, 1, 17)
    a, b = a / a.sum(), b / b.sum()
    ours = float(otf.wasserstein_1d(u, v, a, b, p=p))
    assert ours == pytest.approx(ot.wasserstein_1d(u, v, a, b, p=p), rel=1e-10)
    assert ours == pytest.approx(ot.emd2(a, b, np.abs(u[:, None] - v[None]) ** p), rel=1e-9)


def test_w1d_batched_unnormalised_and_ties(x64):
    rng = np.random.default_rng(2)
    u = np.round(rng.normal(size=(30, 4)), 1)  # ties inside u and between u and v
    v = np.round(rng.normal(size=(20, 4)), 1)
    a, b = rng.uniform(0, 1, 30), rng.uniform(0, 1, 20)
    a[3] = 0.0  # a zero weight
    ours = np.asarray(otf.wasserstein_1d(u, v, 3.0 * a, b, p=2))
    ref = ot.wasserstein_1d(u, v, a / a.sum(), b / b.sum(), p=2)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_w1d_uniform_fast_path(x64):
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    fast = np.asarray(otf.wasserstein_1d(u, v, p=2))
    general = np.asarray(otf.wasserstein_1d(u, v, np.full(50, 0.02), np.full(50, 0.02), p=2))
    np.testing.assert_allclose(fast, general, rtol=1e-12)
    np.testing.assert_allclose(fast, ot.wasserstein_1d(u, v, p=2), rtol=1e-12)
    np.testing.assert_allclose(fast, ((np.sort(u, 0) - np.sort(v, 0)) ** 2).mean(0), rtol=1e-12)


def test_w1d_float32_renormalised_cumulative_weights():
    rng = np.random.default_rng(4)
    n, m = 20_000, 15_000
    u, v = rng.normal(size=n), rng.normal(size=m) + 0.1
    a, b = rng.uniform(0.5, 1, n), rng.uniform(0.5, 1, m)
    ours = float(
        otf.wasserstein_1d(u.astype(np.float32), v.astype(np.float32), a.astype(np.float32), b.astype(np.float32))
    )
    ref = ot.wasserstein_1d(u, v, a / a.sum(), b / b.sum(), p=2)
    assert ours == pytest.approx(ref, rel=1e-3)


def test_sort_keys_order_floats_including_negative_zero_and_gradient():
    u = jnp.array([[3.0, -0.0, -2.5, 0.0, 1e-30, -1e30, 7.0]])
    np.testing.assert_array_equal(np.asarray(_sort_last(u)), np.sort(np.asarray(u), axis=-1))
    g = jax.grad(lambda u: jnp.sum(_sort_last(u) * jnp.arange(7.0)))(u)
    np.testing.assert_array_equal(np.asarray(g)[0], np.argsort(np.argsort(np.asarray(u)[0], kind="stable")))


def test_w1d_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(5)
    u, v = rng.normal(size=9), rng.normal(size=6)
    a, b = rng.uniform(0.2, 1, 9), rng.uniform(0.2, 1, 6)
    f = jax.jit(lambda u, a: otf.wasserstein_1d(u, v, a, b, p=2))
    gu, ga = jax.grad(f, argnums=(0, 1))(jnp.asarray(u), jnp.asarray(a))
    h = 1e-6
    for i in range(9):
        e = np.eye(9)[i] * h
        assert float(gu[i]) == pytest.approx((float(f(u + e, a)) - float(f(u - e, a))) / (2 * h), abs=1e-7)
        assert float(ga[i]) == pytest.approx((float(f(u, a + e)) - float(f(u, a - e))) / (2 * h), abs=1e-7)


# --------------------------------------------------------------------------------------------------- SW


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("p", [1, 2])
def test_sw_given_directions_matches_pot(x64, weighted, p):
    x, y, a, b = _clouds(weighted=weighted)
    theta = np.asarray(otf.sliced_directions(jax.random.PRNGKey(0), 30, 3))
    kw = dict(a=a, b=b) if weighted else {}
    pot = ot.sliced_wasserstein_distance(x, y, projections=theta.T, p=p, **kw)  # POT: [d, L], returns the root
    ours = otf.sliced_wasserstein(None, x, y, directions=theta, p=p, root=True, **kw)
    assert float(ours) == pytest.approx(pot, rel=1e-10)
    power = otf.sliced_wasserstein(None, x, y, directions=theta, p=p, **kw)
    assert float(power) == pytest.approx(pot**p, rel=1e-10)


def test_sw_equal_sizes_uniform_matches_pot(x64):
    x, y, _, _ = _clouds(n=64, m=64)
    theta = np.asarray(otf.sliced_directions(jax.random.PRNGKey(1), 50, 3))
    pot = ot.sliced_wasserstein_distance(x, y, projections=theta.T)
    assert float(otf.sliced_wasserstein(None, x, y, directions=theta, root=True)) == pytest.approx(pot, rel=1e-10)


@pytest.mark.parametrize("kind", ["mc", "qmc", "orthogonal"])
def test_directions_are_unit_and_orthogonal_blocks(kind):
    th = np.asarray(otf.sliced_directions(jax.random.PRNGKey(2), 7, 3, kind))
    np.testing.assert_allclose(np.linalg.norm(th, axis=1), 1.0, atol=1e-5)
    if kind == "orthogonal":
        np.testing.assert_allclose(th[:3] @ th[:3].T, np.eye(3), atol=1e-5)
    th64 = np.asarray(otf.sliced_directions(jax.random.PRNGKey(2), 100, 64, "orthogonal"))
    np.testing.assert_allclose(th64[:64] @ th64[:64].T, np.eye(64), atol=1e-4)


def test_directions_are_uniform_on_the_sphere():
    # Every generated set has uniform marginals: E theta theta^T = I / d and E theta = 0.
    for kind in ("mc", "qmc", "orthogonal"):
        keys = jax.random.split(jax.random.PRNGKey(3), 400)
        th = jax.vmap(lambda k, kind=kind: otf.sliced_directions(k, 16, 3, kind))(keys).reshape(-1, 3)
        np.testing.assert_allclose(np.asarray(th.mean(0)), 0.0, atol=0.03)
        np.testing.assert_allclose(np.asarray(th.T @ th / th.shape[0]), np.eye(3) / 3, atol=0.02)


@pytest.mark.parametrize("kind", ["cv_lower", "cv_upper"])
def test_control_variate_expectations(x64, kind):
    x, y, a, b = _clouds(d=5)
    # Exact: the mean of a quadratic form over any orthonormal basis is its trace / d.
    basis = otf.sliced_directions(jax.random.PRNGKey(4), 5, 5, "orthogonal")
    c, ec = otf.sliced_control_variates(basis, x, y, a, b, kind=kind)
    assert float(c.mean()) == pytest.approx(float(ec), rel=1e-10)
    # Monte Carlo over uniform directions.
    theta = otf.sliced_directions(jax.random.PRNGKey(5), 200_000, 5)
    c, ec = otf.sliced_control_variates(theta, x, y, a, b, kind=kind)
    assert float(c.mean()) == pytest.approx(float(ec), rel=4 * float(c.std()) / np.sqrt(2e5) / float(ec))
    # Independent closed form from NumPy moments.
    dm = a @ x - b @ y
    sx = ((x - a @ x) ** 2 * a[:, None]).sum()
    sy = ((y - b @ y) ** 2 * b[:, None]).sum()
    ref = (dm @ dm + (sx + sy if kind == "cv_upper" else 0.0)) / 5
    assert float(ec) == pytest.approx(ref, rel=1e-12)


@pytest.fixture(scope="module")
def sw_reference():
    with jax.enable_x64(True):
        x, y, a, b = _clouds(n=48, m=48, weighted=False, seed=6)
        y = y @ np.diag([2.0, 0.5, 1.0])
        ref = float(
            otf.sliced_wasserstein(jax.random.PRNGKey(99), x, y, n_projections=200_000, directions="orthogonal")
        )
    return x, y, ref


@pytest.mark.parametrize(
    "directions,estimator",
    [("mc", "mc"), ("qmc", "mc"), ("orthogonal", "mc"), ("mc", "cv_lower"), ("mc", "cv_upper"), ("qmc", "cv_upper")],
)
def test_estimators_are_unbiased(x64, sw_reference, directions, estimator):
    x, y, ref = sw_reference
    keys = jax.random.split(jax.random.PRNGKey(7), 400)
    f = jax.jit(
        jax.vmap(
            lambda k: otf.sliced_wasserstein(k, x, y, n_projections=20, directions=directions, estimator=estimator)
        )
    )
    vals = np.asarray(f(keys))
    stderr = vals.std() / np.sqrt(len(vals))
    assert abs(vals.mean() - ref) < 4 * stderr + 2e-3 * ref, (vals.mean(), ref, stderr)


def test_control_variates_and_qmc_reduce_variance(sw_reference):
    x, y, _ = sw_reference
    keys = jax.random.split(jax.random.PRNGKey(8), 200)

    def spread(directions, estimator):
        f = lambda k: otf.sliced_wasserstein(k, x, y, n_projections=50, directions=directions, estimator=estimator)
        return float(jnp.var(jax.jit(jax.vmap(f))(keys)))

    mc = spread("mc", "mc")
    assert spread("mc", "cv_upper") < 0.5 * mc
    assert spread("mc", "cv_lower") < mc
    assert spread("qmc", "mc") < 0.5 * mc


def test_lower_cv_is_plain_mc_when_means_agree():
    z = jnp.round(4.0 * jax.random.normal(jax.random.PRNGKey(9), (32, 3)))
    x = jnp.concatenate([z, -z])  # integer coordinates: the mean is exactly 0
    y = 2.0 * x[::-1] + jnp.round(jax.random.normal(jax.random.PRNGKey(10), (64, 3)))[jnp.arange(64) % 32]
    y = jnp.concatenate([y[:32], -y[:32]])
    key = jax.random.PRNGKey(11)
    mc = otf.sliced_wasserstein(key, x, y, n_projections=20)
    cv = otf.sliced_wasserstein(key, x, y, n_projections=20, estimator="cv_lower")
    assert float(cv) == float(mc)
    assert float(otf.sliced_wasserstein(key, x, y, n_projections=20, estimator="cv_upper")) != float(mc)


def test_sw_gradient_matches_finite_differences(x64):
    x, y, a, b = _clouds(n=12, m=9, d=3)
    theta = otf.sliced_directions(jax.random.PRNGKey(11), 8, 3)
    for est in ("mc", "cv_upper"):
        f = jax.jit(
            lambda x, a, est=est: otf.sliced_wasserstein(None, x, y, a, b, directions=theta, estimator=est, root=True)
        )
        gx, ga = jax.jit(jax.grad(f, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(a))
        h = 1e-6
        for i, j in [(0, 0), (3, 1), (11, 2)]:
            e = np.zeros_like(x)
            e[i, j] = h
            fd = (float(f(x + e, a)) - float(f(x - e, a))) / (2 * h)
            if est == "mc":
                assert float(gx[i, j]) == pytest.approx(fd, abs=1e-6)
            else:  # gamma is frozen: the gradient is the CV gradient estimate, not the total derivative
                assert np.isfinite(float(gx[i, j]))
        e = np.eye(12)[4] * h
        if est == "mc":
            assert float(ga[4]) == pytest.approx((float(f(x, a + e)) - float(f(x, a - e))) / (2 * h), abs=1e-6)


def test_cv_gradient_with_frozen_gamma_matches_finite_differences(x64):
    x, y, _, _ = _clouds(n=12, m=12, d=3, weighted=False)
    theta = otf.sliced_directions(jax.random.PRNGKey(12), 8, 3)
    sw = lambda x: otf.sliced_wasserstein(None, x, y, directions=theta, estimator="cv_upper")
    w = jax.vmap(lambda t: otf.sliced_wasserstein(None, x, y, directions=t[None]))(theta)
    c, ec = otf.sliced_control_variates(theta, x, y, kind="cv_upper")
    gamma = float(jnp.cov(w, c, bias=True)[0, 1] / jnp.var(c))

    def frozen(x):  # the same estimator with gamma a constant
        w = jax.vmap(lambda t: otf.sliced_wasserstein(None, x, y, directions=t[None]))(theta)
        c, ec = otf.sliced_control_variates(theta, x, y, kind="cv_upper")
        return w.mean() - gamma * (c.mean() - ec)

    assert float(sw(x)) == pytest.approx(float(frozen(x)), rel=1e-10)
    gs, gf = jax.jit(jax.grad(sw))(jnp.asarray(x)), jax.jit(jax.grad(frozen))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(gs), np.asarray(gf), atol=1e-10)


def test_safe_root_gradient_is_finite_at_equal_clouds():
    x = jax.random.normal(jax.random.PRNGKey(13), (32, 3))
    g = jax.grad(lambda z: otf.sliced_wasserstein(jax.random.PRNGKey(0), z, x, n_projections=10, root=True))(x)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).max()) == 0.0
    for est in ("cv_lower", "cv_upper"):
        f = lambda z, est=est: otf.sliced_wasserstein(
            jax.random.PRNGKey(0), z, x, n_projections=10, estimator=est, root=True
        )
        assert np.all(np.isfinite(np.asarray(jax.grad(f)(x))))


def test_jit_and_vmap_one_key_per_problem():
    xs = jax.random.normal(jax.random.PRNGKey(14), (4, 50, 3))
    ys = xs * 1.5 + 0.2
    keys = jax.random.split(jax.random.PRNGKey(15), 4)
    for kw in (dict(directions="qmc"), dict(estimator="cv_upper"), dict(directions="orthogonal")):
        f = lambda k, x, y, kw=kw: otf.sliced_wasserstein(k, x, y, n_projections=16, **kw)
        batched = jax.jit(jax.vmap(f))(keys, xs, ys)
        loop = np.array([float(f(k, x, y)) for k, x, y in zip(keys, xs, ys)])
        np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-4)
    assert len(set(np.asarray(jax.vmap(lambda k: otf.sliced_wasserstein(k, xs[0], ys[0], n_projections=4))(keys)))) == 4
    # p is traced: changing it neither recompiles nor breaks vmap.
    g = jax.jit(jax.vmap(lambda k, p: otf.sliced_wasserstein(k, xs[0], ys[0], n_projections=8, p=p)))
    assert g(keys, jnp.array([1.0, 2.0, 3.0, 1.5])).shape == (4,)


def test_bad_inputs_raise():
    key = jax.random.PRNGKey(0)
    x = jnp.ones((5, 3))
    with pytest.raises(ValueError, match="x: contains NaN"):  # host arrays are checked eagerly
        otf.sliced_wasserstein(key, np.asarray(x.at[0, 0].set(jnp.nan)), x, n_projections=3)
    with pytest.raises(ValueError, match="dimensions differ"):
        otf.sliced_wasserstein(key, x, jnp.ones((5, 2)), n_projections=3)
    with pytest.raises(ValueError, match="b: weights must be non-negative"):
        otf.sliced_wasserstein(key, x, x, b=jnp.array([1.0, -1, 1, 1, 1]), n_projections=3)
    with pytest.raises(ValueError, match="a: expected weights of shape"):
        otf.sliced_wasserstein(key, x, x, a=jnp.ones(4), n_projections=3)
    with pytest.raises(ValueError, match="estimator"):
        otf.sliced_wasserstein(key, x, x, n_projections=3, estimator="cv")
    with pytest.raises(ValueError, match="p = 2"):
        otf.sliced_wasserstein(key, x, x, n_projections=3, estimator="cv_upper", p=1)
    with pytest.raises(ValueError, match="qmc"):
        otf.sliced_wasserstein(key, jnp.ones((5, 4)), jnp.ones((5, 4)), n_projections=3, directions="qmc")
    with pytest.raises(ValueError, match="n_projections"):
        otf.sliced_wasserstein(key, x, x)
    with pytest.raises(ValueError, match="directions"):
        otf.sliced_wasserstein(key, x, x, directions=jnp.ones((4, 2)))
    with pytest.raises(TypeError, match="key"):
        otf.sliced_wasserstein(None, x, x, n_projections=3)
    with pytest.raises(TypeError, match="x: expected a floating-point"):
        otf.sliced_wasserstein(key, jnp.ones((5, 3), jnp.int32), x, n_projections=3)
    with pytest.raises(ValueError, match="p: must be >= 1"):
        otf.sliced_wasserstein(key, x, x, n_projections=3, p=0.5)
    with pytest.raises(ValueError, match="kappa"):
        otf.sample_vmf(key, jnp.ones(3), 0.0, 4)
    with pytest.raises(ValueError, match="n_steps"):
        otf.max_sliced_wasserstein(key, x, x, n_steps=0)
    with pytest.raises(ValueError, match="attention"):
        otf.apply_amortized(otf.init_amortized(key, 3), x, x, attention="softmax")
    with pytest.raises(ValueError, match="u, v"):
        otf.wasserstein_1d(jnp.ones((3, 2)), jnp.ones(3))


# --------------------------------------------------------------------------------- vMF, Max-SW, DSW, v-DSW


@pytest.mark.parametrize("d,kappa", [(3, 1.0), (3, 20.0), (3, 500.0), (2, 5.0), (10, 3.0), (64, 50.0), (64, 2000.0)])
def test_vmf_mean_resultant_length(d, kappa):
    mu = jax.random.normal(jax.random.PRNGKey(d), (d,))
    mu = mu / jnp.linalg.norm(mu)
    s = np.asarray(otf.sample_vmf(jax.random.PRNGKey(16), mu, kappa, 20_000), np.float64)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    cos = s @ np.asarray(mu, np.float64)
    ref = sp.ive(d / 2, kappa) / sp.ive(d / 2 - 1, kappa)
    assert abs(cos.mean() - ref) < 5 * cos.std() / np.sqrt(len(cos)) + 1e-6
    assert float(vmf_mean_resultant_length(kappa, d)) == pytest.approx(ref, rel=1e-5)
    # The mean direction is mu: the orthogonal part averages out.
    perp = s - cos[:, None] * np.asarray(mu)[None]
    assert np.linalg.norm(perp.mean(0)) < 5 * np.sqrt((perp**2).sum(1).mean() / len(cos)) + 1e-6


def test_vmf_is_reparameterised_and_vmaps():
    mu = jnp.array([0.0, 0.6, 0.8])
    f = jax.jit(lambda m: jnp.mean(otf.sample_vmf(jax.random.PRNGKey(0), m, 10.0, 256) @ jnp.array([1.0, 2.0, 3.0])))
    g = jax.grad(f)(mu)
    h = 1e-3
    fd = [(float(f(mu + h * e)) - float(f(mu - h * e))) / (2 * h) for e in jnp.eye(3)]
    np.testing.assert_allclose(np.asarray(g), fd, rtol=2e-2, atol=2e-3)
    mus = jnp.eye(4)
    out = jax.jit(jax.vmap(lambda k, m: otf.sample_vmf(k, m, 100.0, 64)))(
        jax.random.split(jax.random.PRNGKey(1), 4), mus
    )
    assert out.shape == (4, 64, 4) and bool(jnp.all(jnp.einsum("bnd,bd->bn", out, mus) > 0.5))


def _elongated(seed=17):
    x = jax.random.normal(jax.random.PRNGKey(seed), (128, 3)) * jnp.array([1.0, 0.2, 0.2])
    rot = random_orthogonal(jax.random.PRNGKey(seed + 1), 3)
    return x @ rot.T, rot[:, 0]


def test_max_sw_reaches_brute_force_maximum():
    x, axis = _elongated()
    y = jax.random.normal(jax.random.PRNGKey(18), (100, 3)) * 0.3
    msw = jax.jit(lambda x: otf.max_sliced_wasserstein(jax.random.PRNGKey(19), x, y, n_steps=100, n_restarts=4))
    out = msw(x)
    grid = otf.sliced_directions(jax.random.PRNGKey(20), 20_000, 3)
    brute = float(jnp.max(otf.wasserstein_1d(x @ grid.T, y @ grid.T)))
    assert float(out.value) >= 0.99 * brute
    assert float(out.value) <= 1.0001 * brute + 1e-6
    assert abs(float(out.params @ axis)) > 0.97
    # The value's gradient in the points is the envelope gradient at the found direction.
    g = jax.jit(jax.grad(lambda z: msw(z).value))(x)
    gd = jax.grad(lambda z: otf.sliced_wasserstein(None, z, y, directions=out.params[None]))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(gd), atol=1e-5)


def test_vdsw_and_dsw_lie_between_sw_and_max_sw():
    x, axis = _elongated(21)
    y = 0.3 * x
    key = jax.random.PRNGKey(22)
    sw = float(otf.sliced_wasserstein(key, x, y, n_projections=2000))
    msw = float(jax.jit(lambda x, y: otf.max_sliced_wasserstein(key, x, y).value)(x, y))
    v = jax.jit(lambda x, y: otf.vmf_distributional_sliced_wasserstein(key, x, y, kappa=50.0, n_projections=32))(x, y)
    dsw = jax.jit(lambda x, y: otf.distributional_sliced_wasserstein(key, x, y, n_projections=32, n_steps=100))(x, y)
    assert sw < float(v.value) <= 1.02 * msw
    assert sw < float(dsw.value) <= 1.02 * msw
    assert abs(float(v.params @ axis)) > 0.95
    # With the location fixed at the found optimum, a larger kappa concentrates toward Max-SW.
    hi = otf.vmf_sliced_wasserstein(key, x, y, location=v.params, kappa=5000.0, n_projections=64)
    assert float(v.value) < float(hi) <= 1.02 * msw
    f = jax.jit(
        jax.vmap(
            lambda k, x: otf.vmf_distributional_sliced_wasserstein(k, x, y, kappa=10.0, n_projections=8, n_steps=5)
        )
    )
    out = f(jax.random.split(key, 3), jnp.stack([x, x + 1.0, 2.0 * x]))
    assert out.value.shape == (3,) and out.params.shape == (3, 3) and out.history.shape == (3, 5)


# ----------------------------------------------------------------------------------------- amortized model


@pytest.mark.parametrize("attention", ["efficient", "full"])
def test_amortized_model_is_permutation_invariant_and_symmetric(attention):
    params = otf.init_amortized(jax.random.PRNGKey(23), 3, hidden=8)
    x = jax.random.normal(jax.random.PRNGKey(24), (50, 3))
    y = jax.random.normal(jax.random.PRNGKey(25), (70, 3)) + 0.5
    a = jax.random.uniform(jax.random.PRNGKey(26), (50,)) + 0.1
    eps = otf.apply_amortized(params, x, y, a, attention=attention)
    assert float(jnp.linalg.norm(eps)) == pytest.approx(1.0, abs=1e-5)
    px, py = jax.random.permutation(jax.random.PRNGKey(27), 50), jax.random.permutation(jax.random.PRNGKey(28), 70)
    perm = otf.apply_amortized(params, x[px], y[py], a[px], attention=attention)
    np.testing.assert_allclose(np.asarray(perm), np.asarray(eps), atol=1e-5)
    b = jnp.full((70,), 1 / 70)
    swap = otf.apply_amortized(params, y, x, b, a, attention=attention)
    np.testing.assert_allclose(np.asarray(swap), np.asarray(eps), atol=1e-5)
    # Not trivially constant: it depends on the clouds.
    other = otf.apply_amortized(params, x * jnp.array([3.0, 1.0, 0.1]), y, a, attention=attention)
    assert float(jnp.linalg.norm(other - eps)) > 1e-3


def test_amortized_vdsw_trains_by_ascent_and_vmaps():
    import optax

    x, _ = _elongated(29)
    y = 0.3 * x
    params = otf.init_amortized(jax.random.PRNGKey(30), 3)
    opt = optax.adam(0.05)
    state = opt.init(params)

    def objective(params, k):
        eps = otf.apply_amortized(params, x, y)
        return otf.vmf_sliced_wasserstein(k, x, y, location=eps, kappa=50.0, n_projections=16)

    @jax.jit
    def step(params, state, k):
        val, g = jax.value_and_grad(objective)(params, k)
        upd, state = opt.update(jax.tree_util.tree_map(jnp.negative, g), state)
        return optax.apply_updates(params, upd), state, val

    vals = []
    for k in jax.random.split(jax.random.PRNGKey(31), 100):
        params, state, val = step(params, state, k)
        vals.append(float(val))
    assert np.mean(vals[-20:]) > 2.0 * vals[0]
    batched = jax.vmap(lambda x, y: otf.apply_amortized(params, x, y))(jnp.stack([x, y]), jnp.stack([y, x]))
    np.testing.assert_allclose(np.asarray(batched[0]), np.asarray(batched[1]), atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_quick_sliced_benchmark(tmp_path, capsys):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.sliced import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "sliced.json").read_text())
    assert {c["d"] for c in report["accuracy"]} == {3, 64}
    for case in report["throughput"]:
        assert [r["solver"].split()[0] for r in case["results"]][:3] == ["ott_fast", "ott-jax", "pot"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["sliced_estimators.png", "sliced_flow.png"]
    assert "speed-up of ott_fast" in capsys.readouterr().out
