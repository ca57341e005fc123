"""The multiscale divergence (clusters of a k-d tree, truncated blocks) against the full divergence."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ott_fast as otf
from ott_fast.entropic import multiscale as ms
from tests.conftest import loss_clouds

EPS = 0.005  # the loss study's epsilon (blur 0.05 in GeomLoss's units)


@functools.cache
def _full(n: int, eps: float, shift: float = 0.0) -> tuple[float, np.ndarray]:
    """The full (dense) divergence and its gradient in x, float64, tol 1e-4, annealed + Anderson.

    tol 1e-4 moves the gradient by 1.7e-4 (relative) from tol 1e-6 at n = 2000, far inside the bounds checked
    against it, in a sixth of the time.
    """
    x, y = loss_clouds(n, shift=shift)
    with jax.enable_x64(True):
        fn = jax.value_and_grad(
            lambda x: otf.sinkhorn_divergence(
                x, jnp.asarray(y), epsilon=eps, tol=1e-4, acceleration="anderson", max_iters=20000,
                schedule=otf.EpsilonSchedule(decay=0.7),
            )
        )
        v, g = fn(jnp.asarray(x))
        return float(v), np.asarray(g)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def test_kd_leaves_are_balanced_compact_and_ignore_absent_points():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(1000, 3)), jnp.float32)
    w = jnp.ones(1000)
    leaf, slot = ms.kd_leaves(z, w, 4)
    counts = np.bincount(np.asarray(leaf), minlength=16)
    assert counts.min() >= 62 and counts.max() <= 63  # 1000 / 16, split by count
    pairs = set(zip(np.asarray(leaf).tolist(), np.asarray(slot).tolist(), strict=True))
    assert len(pairs) == 1000  # every point its own slot
    # absent points (weight 0) sit in no leaf and move no split
    zp = jnp.concatenate([z, 50.0 + jnp.zeros((24, 3))])
    leaf_p, slot_p = ms.kd_leaves(zp, jnp.concatenate([w, jnp.zeros(24)]), 4)
    np.testing.assert_array_equal(np.asarray(leaf_p[:1000]), np.asarray(leaf))
    np.testing.assert_array_equal(np.asarray(slot_p[:1000]), np.asarray(slot))
    assert np.all(np.asarray(leaf_p[1000:]) == 16)


@pytest.fixture(scope="module")
def truncated():
    """n = 2000 in 64 leaves of at most 32 points, 16 partners kept per leaf (the defaults)."""
    x, y = jnp.asarray(loss_clouds(2000)[0], jnp.float32), jnp.asarray(loss_clouds(2000)[1], jnp.float32)
    v, g = jax.jit(jax.value_and_grad(lambda x, y: otf.multiscale_divergence(x, y, epsilon=EPS)))(x, y)
    return float(v), np.asarray(g), otf.multiscale_divergence(x, y, epsilon=EPS, return_output=True)


def test_truncated_solve_matches_the_full_divergence_within_its_documented_error(truncated):
    v, g, out = truncated
    ref_v, ref_g = _full(2000, EPS)
    assert bool(out.converged) and float(out.error) <= 1e-2
    assert 0.25 < float(out.kept) < 0.4  # truncated: a pass reads a third of the matrix
    # the guide's bounds at tol 1e-2: value within tol (relative), gradient within 3 tol
    assert abs(v - ref_v) <= 1e-2 * abs(ref_v)
    assert _rel(g, ref_g) <= 3e-2


def test_without_truncation_it_is_the_full_divergence():
    x, y = loss_clouds(500, seed=1)
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(x), jnp.asarray(y)
        out = otf.multiscale_divergence(x64, y64, epsilon=0.2, tol=1e-7, neighbours=16, return_output=True)
        assert float(out.kept) == pytest.approx(256 * 32**2 / 500**2, rel=1e-6)  # 16 x 16 leaves of 32 slots: all
        ref = otf.sinkhorn_divergence(x64, y64, epsilon=0.2, tol=1e-9, max_iters=20000, acceleration="anderson")
        assert float(out.value) == pytest.approx(float(ref), rel=1e-9)


def test_gradients_equal_finite_differences_of_the_value(x64):
    x, y = loss_clouds(400, seed=2)
    x, y = jnp.asarray(x), jnp.asarray(y)
    loss = lambda x, y, e: otf.multiscale_divergence(x, y, epsilon=e, tol=1e-8, neighbours=6)  # noqa: E731
    gx, ge = jax.grad(loss, argnums=(0, 2))(x, y, 0.2)
    d = jnp.asarray(np.random.default_rng(3).normal(size=x.shape))
    h = 1e-4
    fd = (loss(x + h * d, y, 0.2) - loss(x - h * d, y, 0.2)) / (2 * h)  # 44% kept: truncated
    assert float(jnp.vdot(gx, d)) == pytest.approx(float(fd), rel=1e-4)
    fd_e = (loss(x, y, 0.2 + h) - loss(x, y, 0.2 - h)) / (2 * h)
    assert float(ge) == pytest.approx(float(fd_e), rel=1e-3)


def test_jit_vmap_padding_and_translation():
    x, y = loss_clouds(500, seed=4)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    loss = jax.jit(lambda x, y, a, b: otf.multiscale_divergence(x, y, a, b, epsilon=0.02, cluster_size=64))
    u = jnp.full(500, 1 / 500)
    v0 = loss(x, y, u, u)
    assert bool(jnp.isfinite(v0))
    # a batch equals a loop
    xs = jnp.stack([x, x + 0.3, 0.9 * x])
    batched = jax.vmap(loss, in_axes=(0, None, None, None))(xs, y, u, u)
    np.testing.assert_allclose(batched, [loss(xi, y, u, u) for xi in xs], rtol=1e-5)
    # zero-weight padding (far away) changes nothing: the same leaves, the same blocks
    pad = lambda z: jnp.concatenate([z, 40.0 + jnp.zeros((12, 3), z.dtype)])  # noqa: E731
    up = jnp.concatenate([u, jnp.zeros(12)])
    assert float(loss(pad(x), pad(y), up, up)) == pytest.approx(float(v0), rel=1e-5)
    # translating both clouds: costs are formed from differences of centred points
    assert float(loss(x + 100.0, y + 100.0, u, u)) == pytest.approx(float(v0), rel=1e-3)


def test_status_rule_and_bad_input():
    x, y = loss_clouds(300, seed=5)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    out = otf.multiscale_divergence(x, y, epsilon=EPS, max_iters=3, return_output=True)
    assert not bool(out.converged) and bool(jnp.isnan(out.value))
    assert otf.describe(out.status) == otf.describe(otf.Status.MAX_ITERS)
    with pytest.raises(RuntimeError):
        jax.block_until_ready(otf.multiscale_divergence(x, y, epsilon=EPS, max_iters=3, throw=True))
    bad = jax.jit(lambda x: otf.multiscale_divergence(x, y, epsilon=EPS, return_output=True))(x.at[0, 0].set(jnp.nan))
    assert int(bad.status) == otf.Status.INVALID_INPUT and bool(jnp.isnan(bad.value))
    with pytest.raises(ValueError, match="d <= 3"):
        otf.multiscale_divergence(jnp.zeros((10, 4)), jnp.ones((10, 4)), epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon"):
        otf.multiscale_divergence(x, y, epsilon=0.0)
    with pytest.raises(ValueError, match="neighbours"):
        otf.multiscale_divergence(x, y, epsilon=EPS, neighbours=0)
