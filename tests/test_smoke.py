"""One tiny run of each way the package uses its dependencies, checked against POT or a closed form.

`.ci/run` also runs this file in a second environment with the floor versions of `pyproject.toml` installed
(`jax==FLOOR`, `optax==FLOOR`, ...), so a floor that is not true (an API the code calls that the oldest
allowed release lacks) fails CI. Keep it fast: a few seconds, small problems.
"""

import io

import jax
import jax.numpy as jnp
import numpy as np
import ot

import ott_fast as otf
from ott_fast._progress import progress_bar


def _clouds(n=24, m=20, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), (rng.normal(size=(m, d)) + 1.0).astype(np.float32)


def _pot_cost(x, y, eps):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    return float(ot.sinkhorn2(a, b, ot.dist(x, y), eps, method="sinkhorn_log", stopThr=1e-10, numItermax=100_000))


def test_dense_and_online_solves_match_pot():
    x, y = _clouds()
    ref = _pot_cost(x, y, 0.5)
    for chunk in (None, 8):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.5, chunk_size=chunk), tol=1e-5)
        assert bool(out.converged)
        np.testing.assert_allclose(float(out.transport_cost), ref, rtol=1e-3)


def test_vmap_equals_a_loop_and_grad_is_finite():
    """``jax.vmap`` goes through the solvers' custom batching rule; ``jax.grad`` through the implicit backward."""
    xs = np.stack([_clouds(seed=s)[0] for s in range(3)])
    ys = np.stack([_clouds(seed=s)[1] for s in range(3)])

    def cost(x, y):
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.5), tol=1e-5).reg_ot_cost

    batched = jax.jit(jax.vmap(cost))(xs, ys)
    np.testing.assert_allclose(batched, [float(cost(x, y)) for x, y in zip(xs, ys)], rtol=1e-5)
    grad = jax.grad(cost)(xs[0], ys[0])
    assert grad.shape == xs[0].shape and bool(jnp.all(jnp.isfinite(grad)))
    # translating x moves the cost by the gradient's sum: finite differences along one direction
    d = np.zeros_like(xs[0])
    d[:, 0] = 1e-2
    fd = (float(cost(xs[0] + d, ys[0])) - float(cost(xs[0] - d, ys[0]))) / 2
    np.testing.assert_allclose(float(jnp.sum(grad * d)), fd, rtol=2e-2)


def test_explicitly_sharded_online_solve_equals_the_plain_one():
    """Points on a mesh with an Explicit axis: the online sweeps keep their sharding (``jax.typeof`` and
    ``jax.sharding.reshard``); one device is enough to run that code."""
    x, y = _clouds(n=32, m=16)
    mesh = jax.make_mesh((1,), ("rows",), axis_types=(jax.sharding.AxisType.Explicit,))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows"))
    xs = jax.device_put(x, spec)
    plain = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.5, chunk_size=8), tol=1e-5)
    sharded = otf.sinkhorn(otf.PointCloud(xs, y, epsilon=0.5, chunk_size=8), tol=1e-5)
    assert bool(sharded.converged)
    np.testing.assert_allclose(float(sharded.reg_ot_cost), float(plain.reg_ot_cost), rtol=1e-5)


def test_max_sliced_optimizes_with_optax_toward_the_closed_form():
    """Two clouds that differ only along e_1 by a shift t: Max-SW_2 = t (the 1-D W_2 of a translation)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    t = 2.0
    y = x + np.float32([t, 0.0, 0.0])
    out = otf.max_sliced_wasserstein(jax.random.PRNGKey(0), x, y, n_steps=60, learning_rate=0.1, root=True)
    np.testing.assert_allclose(float(out.value), t, rtol=1e-2)


def test_progress_bar_counts_and_can_be_silenced():
    buf = io.StringIO()
    with progress_bar(total=4, desc="smoke", unit="step", file=buf, mininterval=0) as bar:
        bar.update(4)
    assert "4/4" in buf.getvalue()
    with progress_bar(total=4, progress=False, file=(quiet := io.StringIO())) as bar:
        bar.update(4)
    assert quiet.getvalue() == ""
