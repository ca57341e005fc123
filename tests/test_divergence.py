import jax
import jax.numpy as jnp
import numpy as np
from conftest import random_problem

import ott_fast as otf


def test_zero_for_equal_measures_and_positive_otherwise(x64):
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
        s = float(otf.sinkhorn_divergence(x, y, a, b, epsilon=eps, tol=1e-10))
        assert s > 0
    # Large epsilon: tends to the squared distance of the means (MMD limit, Feydy et al.), scaled by 1/2... it
    # is at most the transport cost at small epsilon, which in turn approaches W2^2.
    s_small = float(otf.sinkhorn_divergence(x, y, a, b, epsilon=1e-2, tol=1e-9, max_iters=20000))

    w2 = ot.emd2(a, b, ((x[:, None] - y[None]) ** 2).sum(-1))
    assert abs(s_small / w2 - 1) < 0.05


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
