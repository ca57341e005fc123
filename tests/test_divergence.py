import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_problem

import ott_fast as otf


def test_matches_pot_and_positive_for_different_measures(x64):
    x, y, a, b = random_problem(seed=0)
    import ot

    # Against an independent computation: POT's plans, the KL-form objective evaluated here in NumPy.
    def ot_eps(u, v, wu, wv, eps):
        c = ((u[:, None] - v[None]) ** 2).sum(-1)
        p = ot.sinkhorn(wu, wv, c, eps, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
        pos = p > 0
        return (p * c).sum() + eps * (p[pos] * np.log(p[pos] / np.outer(wu, wv)[pos])).sum()

    ref = ot_eps(x, y, a, b, 0.5) - 0.5 * (ot_eps(x, x, a, a, 0.5) + ot_eps(y, y, b, b, 0.5))
    np.testing.assert_allclose(float(otf.sinkhorn_divergence(x, y, a, b, epsilon=0.5, tol=1e-12)), ref, rtol=1e-7)
    for eps in (0.01, 0.1, 1.0, 10.0):
        s = float(otf.sinkhorn_divergence(x, y, a, b, epsilon=eps, tol=1e-10, max_iters=50_000))
        assert s > 0
    # Large epsilon: tends to the squared distance of the means (MMD limit, Feydy et al.), scaled by 1/2... it
    # is at most the transport cost at small epsilon, which in turn approaches W2^2.
    s_small = float(otf.sinkhorn_divergence(x, y, a, b, epsilon=1e-2, tol=1e-9, max_iters=20000))

    w2 = ot.emd2(a, b, ((x[:, None] - y[None]) ** 2).sum(-1))
    assert abs(s_small / w2 - 1) < 0.05


@pytest.mark.parametrize("eps", [0.2, 1.0, 5.0])
def test_zero_for_equal_measures(eps, x64):
    """S(mu, mu) = 0 exactly (the closed form: the debiasing terms cancel the cross term), here for one
    weighted measure given as two differently ordered point lists, so no shortcut on equal inputs can pass.
    Without the debiasing, the entropic cost of (mu, mu) alone is far from 0 at these epsilons."""
    x, _, a, _ = random_problem(n=30, seed=2)
    perm = np.random.default_rng(0).permutation(len(x))
    s = float(otf.sinkhorn_divergence(x, x[perm], a, a[perm], epsilon=eps, tol=1e-12, max_iters=50_000))
    biased = float(otf.sinkhorn(otf.PointCloud(x, x[perm], epsilon=eps), a, a[perm], tol=1e-12).reg_ot_cost)
    assert abs(s) <= 1e-9 < 1e-3 < abs(biased), (s, biased)
    # shifted by 0.1 along one axis, the measures differ: the divergence is positive again
    s_moved = float(otf.sinkhorn_divergence(x, x[perm] + np.eye(1, 2)[0] * 0.1, a, a[perm], epsilon=eps, tol=1e-12,
                                            max_iters=50_000))
    assert s_moved > 1e-6


def test_divergence_gradient_matches_finite_differences(x64):
    x, y, a, b = random_problem(n=15, m=12, seed=1)
    fun = lambda z: otf.sinkhorn_divergence(z, y, a, b, epsilon=0.2, tol=1e-12, max_iters=5000)  # noqa: E731
    d = np.random.default_rng(0).normal(size=x.shape)
    g = jax.grad(fun)(jnp.asarray(x))
    h = 1e-6
    fd = (fun(x + h * d) - fun(x - h * d)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(g * d)), float(fd), rtol=1e-5)
    # Descending it moves x towards y.
    assert float(fun(x - 0.5 * np.asarray(g) / np.abs(np.asarray(g)).max())) < float(fun(x))
