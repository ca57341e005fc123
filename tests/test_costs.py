import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from ott_fast import costs


@pytest.fixture
def pts():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 3)), rng.normal(size=(5, 3))


@pytest.mark.parametrize(
    "cost, ref",
    [
        (costs.SqEuclidean(), lambda x, y: cdist(x, y, "sqeuclidean")),
        (costs.Euclidean(), lambda x, y: cdist(x, y, "euclidean")),
        (costs.PNorm(1.5), lambda x, y: cdist(x, y, "minkowski", p=1.5) ** 1.5),
        (costs.PNorm(1.0), lambda x, y: cdist(x, y, "cityblock")),
        (costs.Cosine(), lambda x, y: cdist(x, y, "cosine")),
        (costs.as_cost(lambda u, v: jnp.sum(jnp.abs(u - v) ** 3)), lambda x, y: cdist(x, y, "minkowski", p=3) ** 3),
    ],
)
def test_all_pairs_match_scipy(x64, pts, cost, ref):
    x, y = pts
    np.testing.assert_allclose(cost.all_pairs(jnp.asarray(x), jnp.asarray(y)), ref(x, y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cost(jnp.asarray(x[0]), jnp.asarray(y[1])), ref(x, y)[0, 1], rtol=1e-10)


def test_blocked_all_pairs_for_large_sets(x64):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(600, 2)), rng.normal(size=(9, 2))  # > one row block of the generic path
    np.testing.assert_allclose(costs.PNorm(3.0).all_pairs(x, y), cdist(x, y, "minkowski", p=3) ** 3, rtol=1e-10)


@pytest.mark.parametrize("cost", [costs.Euclidean(), costs.PNorm(1.0), costs.Cosine()])
def test_gradients_finite_at_coincident_points(cost):
    x = jnp.ones((3, 2))
    g = jax.grad(lambda z: cost.all_pairs(z, x).sum())(x)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_as_cost_errors():
    assert isinstance(costs.as_cost(None), costs.SqEuclidean)
    with pytest.raises(TypeError, match="instance"):
        costs.as_cost(costs.SqEuclidean)
    with pytest.raises(TypeError, match="cost"):
        costs.as_cost(3)
