"""Energy-based SW and random-path directions: against POT's 1-D OT, quadrature, scipy's vMF and closed forms."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
import scipy.stats as st

import ott_fast as otf


def _clouds(n=40, m=55, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 0.5
    y = rng.normal(size=(m, d)) * np.linspace(0.3, 0.9, d) + 0.4
    a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, m)
    return x, y, a / a.sum(), b / b.sum()


def _pot_w(x, y, a, b, theta, p=2):
    """W_p^p of each projection [L], by POT."""
    return ot.wasserstein_1d(x @ theta.T, y @ theta.T, a, b, p=p)


# ------------------------------------------------------------------------------------------------ EBSW


def test_constant_energy_is_sw_and_the_estimate_is_between_sw_and_the_max(x64):
    x, y, a, b = _clouds()
    key = jax.random.PRNGKey(0)
    sw = float(otf.sliced_wasserstein(key, x, y, a, b, n_projections=64))
    const = float(otf.energy_sliced_wasserstein(key, x, y, a, b, n_projections=64, energy=lambda w: 0 * w + 3.0))
    assert const == pytest.approx(sw, rel=1e-12)
    theta = np.asarray(otf.sliced_directions(key, 64, 3))
    w = _pot_w(x, y, a, b, theta)
    for energy in ("exp", "identity"):
        e = float(otf.energy_sliced_wasserstein(None, x, y, a, b, directions=theta, energy=energy))
        assert sw < e < w.max()


@pytest.mark.parametrize("p", [1, 2])
def test_importance_weights_match_the_formula_on_pot_projections(x64, p):
    x, y, a, b = _clouds(seed=1)
    theta = np.asarray(otf.sliced_directions(jax.random.PRNGKey(1), 50, 3))
    w = _pot_w(x, y, a, b, theta, p)
    e = np.exp(w - w.max())
    ref = {"exp": (w * e).sum() / e.sum(), "identity": (w * w).sum() / w.sum()}
    for energy, value in ref.items():
        ours = float(otf.energy_sliced_wasserstein(None, x, y, a, b, directions=theta, energy=energy, p=p))
        assert ours == pytest.approx(value, rel=1e-10)
    root = float(otf.energy_sliced_wasserstein(None, x, y, a, b, directions=theta, p=p, root=True))
    assert root == pytest.approx(ref["exp"] ** (1 / p), rel=1e-10)


@pytest.mark.slow
def test_consistent_as_n_projections_grows_against_quadrature_on_the_circle(x64):
    x, y, a, b = _clouds(60, 45, d=2, seed=2)
    y = y * np.array([3.0, 0.5])  # anisotropic: the energy matters
    phi = (np.arange(20_000) + 0.5) * 2 * np.pi / 20_000
    w = _pot_w(x, y, a, b, np.stack([np.cos(phi), np.sin(phi)], 1))
    e = np.exp(w - w.max())
    exact = (w * e).sum() / e.sum()  # E_unif[W e^W] / E_unif[e^W] by the midpoint rule
    assert exact > 1.2 * w.mean()
    errs = {}
    for L in (20, 2000):
        vals = jax.jit(jax.vmap(partial(otf.energy_sliced_wasserstein, x=x, y=y, a=a, b=b, n_projections=L)))(
            jax.random.split(jax.random.PRNGKey(3), 16)
        )
        errs[L] = np.sqrt(np.mean((np.asarray(vals) - exact) ** 2)) / exact
    assert errs[2000] < 0.02 and errs[2000] < errs[20] / 4


def test_gradient_conventions(x64):
    x, y, a, b = _clouds(30, 25, seed=4)
    theta = np.asarray(otf.sliced_directions(jax.random.PRNGKey(5), 20, 3))
    f = jax.jit(lambda x: otf.energy_sliced_wasserstein(None, x, y, a, b, directions=theta))
    g = np.asarray(jax.grad(f)(x))
    for i, k in [(0, 0), (7, 1), (29, 2)]:
        dx = np.zeros_like(x)
        dx[i, k] = 1e-6
        assert g[i, k] == pytest.approx((float(f(x + dx)) - float(f(x - dx))) / 2e-6, rel=1e-5, abs=1e-10)
    # weights held fixed: sum_l w_l grad W_l with w_l from the values
    w = _pot_w(x, y, a, b, theta)
    c = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
    fixed = jax.grad(lambda x: otf.energy_sliced_wasserstein(None, x, y, a, b, directions=theta, weight_gradient=False))
    manual = jax.grad(lambda x: jnp.sum(c * otf.wasserstein_1d(x @ theta.T, y @ theta.T, a, b)))
    np.testing.assert_allclose(np.asarray(fixed(x)), np.asarray(manual(x)), rtol=1e-9, atol=1e-12)
    assert np.linalg.norm(np.asarray(fixed(x)) - g) > 1e-3 * np.linalg.norm(g)  # the two conventions differ


def test_padding_with_zero_weights_vmap_and_errors():
    x, y, a, b = (np.asarray(t, np.float32) for t in _clouds(seed=6))
    key = jax.random.PRNGKey(7)
    base = float(otf.energy_sliced_wasserstein(key, x, y, a, b, n_projections=32))
    xp = np.concatenate([x, np.full((5, 3), 9.0, np.float32)])
    ap = np.concatenate([a, np.zeros(5, np.float32)])
    assert float(otf.energy_sliced_wasserstein(key, xp, y, ap, b, n_projections=32)) == pytest.approx(base, rel=1e-6)
    batch = jax.vmap(lambda k: otf.energy_sliced_wasserstein(k, x, y, a, b, n_projections=32))(jax.random.split(key, 3))
    assert batch.shape == (3,) and bool(jnp.all(jnp.isfinite(batch)))
    with pytest.raises(ValueError, match="energy"):
        otf.energy_sliced_wasserstein(key, x, y, n_projections=8, energy="cubic")
    with pytest.raises(TypeError, match="key"):
        otf.energy_sliced_wasserstein(None, x, y, n_projections=8)
    same = float(otf.energy_sliced_wasserstein(key, x, x, n_projections=8, energy="identity"))
    assert same == 0.0  # W = 0 everywhere: the identity energy falls back to the plain mean


# -------------------------------------------------------------------------------------------- random path


def _dots_with_fixed_location(kappa, perturbation, n=20_000):
    x, y = np.array([[1.0, 2.0, 2.0]]), np.zeros((1, 3))
    theta = np.asarray(
        otf.random_path_directions(jax.random.PRNGKey(0), x, y, n_projections=n, kappa=kappa, perturbation=perturbation)
    )
    return theta, theta @ (x[0] / 3.0)


def test_random_path_directions_are_unit_and_follow_the_power_spherical_and_vmf_laws():
    kappa = 8.0
    theta, t = _dots_with_fixed_location(kappa, "power_spherical")
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, atol=2e-6)
    # power spherical on S^2: (t + 1) / 2 ~ Beta(1 + kappa, 1), mean kappa / (kappa + 2)
    assert st.kstest((t + 1) / 2, st.beta(1 + kappa, 1).cdf).pvalue > 1e-3
    assert t.mean() == pytest.approx(kappa / (kappa + 2), abs=4 * t.std() / np.sqrt(len(t)))
    theta, t = _dots_with_fixed_location(kappa, "vmf")
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, atol=2e-6)
    cdf = lambda w: (np.exp(kappa * (w - 1)) - np.exp(-2 * kappa)) / (1 - np.exp(-2 * kappa))  # vMF on S^2
    assert st.kstest(t, cdf).pvalue > 1e-3
    # the component orthogonal to the location is isotropic
    perp = theta - np.outer(t, np.array([1.0, 2.0, 2.0]) / 3)
    assert abs(np.mean(perp @ np.array([2.0, -1.0, 0.0]) / np.sqrt(5))) < 0.02
    theta, t = _dots_with_fixed_location(None, "vmf", n=10)  # unperturbed: the normalised difference itself
    np.testing.assert_allclose(theta, np.tile([1 / 3, 2 / 3, 2 / 3], (10, 1)), rtol=1e-6)
    # coincident points: the pair gets a uniform random direction instead, unit and finite
    same = otf.random_path_directions(
        jax.random.PRNGKey(1), np.ones((1, 3)), np.ones((1, 3)), n_projections=10, kappa=None, perturbation="vmf"
    )
    np.testing.assert_allclose(np.linalg.norm(np.asarray(same), axis=1), 1.0, atol=2e-6)
    assert np.std(np.asarray(same)[:, 0]) > 0.1


@pytest.mark.slow
def test_random_path_estimate_matches_an_independent_reference_with_scipy_vmf(x64):
    x, y, a, b = _clouds(50, 40, seed=8)
    a, b = np.full(50, 1 / 50), np.full(40, 1 / 40)
    kappa, L = 5.0, 3000
    theta = np.asarray(
        otf.random_path_directions(jax.random.PRNGKey(9), x, y, n_projections=L, kappa=kappa, perturbation="vmf")
    )
    ours_w = np.asarray(otf.wasserstein_1d(x @ theta.T, y @ theta.T))
    ours = float(otf.sliced_wasserstein(None, x, y, directions=theta))
    assert ours == pytest.approx(ours_w.mean(), rel=1e-10)
    rng = np.random.default_rng(10)
    diff = x[rng.integers(0, 50, L)] - y[rng.integers(0, 40, L)]
    mus = diff / np.linalg.norm(diff, axis=1, keepdims=True)
    ref_theta = np.concatenate([st.vonmises_fisher(mu, kappa).rvs(1, random_state=rng) for mu in mus])
    ref_w = _pot_w(x, y, a, b, ref_theta)
    se = np.sqrt(ours_w.var() / L + ref_w.var() / L)
    assert abs(ours - ref_w.mean()) < 4 * se
    # and it is a different quantity from SW: random-path directions favour the discriminative ones
    sw = float(otf.sliced_wasserstein(jax.random.PRNGKey(11), x, y, n_projections=L))
    assert ref_w.mean() > sw + 4 * se


def test_random_path_sw_is_consistent_as_n_projections_grows():
    x, y, _, _ = (np.asarray(t, np.float32) for t in _clouds(64, 64, seed=12))

    def estimates(L, n_keys=8):
        f = jax.vmap(lambda k: otf.sliced_wasserstein(k, x, y, n_projections=L, directions="random_path"))
        return np.asarray(jax.jit(f)(jax.random.split(jax.random.PRNGKey(L), n_keys)))

    small, large = estimates(16), estimates(1024)
    ref = float(np.mean(estimates(8192, 4)))
    assert np.std(large) < np.std(small) / 4  # ~ 1 / sqrt(L): a factor 8 for 64 times the directions
    assert abs(np.mean(large) - ref) < 4 * np.std(large) / np.sqrt(8) + 1e-6


def test_random_path_padding_keys_gradients_and_iwrpsw():
    x, y, a, b = (np.asarray(t, np.float32) for t in _clouds(seed=13))
    key = jax.random.PRNGKey(14)
    ones = np.ones(len(x), np.float32)
    base = otf.random_path_directions(key, x, y, ones, b, n_projections=64)
    xp = np.concatenate([x[:10], np.full((3, 3), 50.0, np.float32), x[10:]])  # absent points, inserted anywhere
    ap = np.concatenate([ones[:10], np.zeros(3, np.float32), ones[10:]])
    np.testing.assert_array_equal(np.asarray(otf.random_path_directions(key, xp, y, ap, b, n_projections=64)), base)
    via_sw = float(otf.sliced_wasserstein(key, x, y, ones, b, n_projections=64, directions="random_path"))
    assert via_sw == pytest.approx(float(otf.sliced_wasserstein(None, x, y, ones, b, directions=base)), rel=1e-6)
    grad = jax.jit(
        jax.grad(lambda x: otf.sliced_wasserstein(key, x, y, ones, b, n_projections=64, directions="random_path"))
    )(x)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0
    # IWRPSW: energy weights over random-path directions, above RPSW on the same draws
    iw = float(otf.energy_sliced_wasserstein(key, x, y, ones, b, n_projections=64, directions="random_path"))
    assert iw > via_sw
    with pytest.raises(ValueError, match="perturbation"):
        otf.random_path_directions(key, x, y, n_projections=4, perturbation="gaussian")
