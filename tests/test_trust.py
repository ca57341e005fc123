"""The solver's contract carried to everything built on a solve: gradients (float32 against float64, and
against central finite differences), the status rule of derived values, eager validation and memory.

References here are independent of the code under test: float64 solves at a tight tolerance, central finite
differences of the computed value, POT's solver, and the documented memory formula.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import loss_clouds

import ott_fast as otf
from ott_fast.entropic import driver

# ------------------------------------------------------------------ float32 gradients at small epsilon


def _values(x, y):
    """Every value whose gradient users train with, at epsilon = 0.005, from one compiled function."""
    geom = otf.PointCloud(x, y, epsilon=0.005)
    reg = otf.sinkhorn(geom, tol=1e-3).reg_ot_cost
    div = otf.sinkhorn_divergence(x, y, epsilon=0.005, tol=1e-3)
    gap = otf.monge_gap(x, y, epsilon=0.005, tol=1e-3).gap
    return reg, div, gap


_grads = jax.jit(jax.jacrev(lambda x, y: jnp.stack(_values(x, y)), argnums=0))


def _relative(g32, g64):
    g32, g64 = np.asarray(g32, np.float64), np.asarray(g64, np.float64)
    return np.linalg.norm(g32 - g64) / np.linalg.norm(g64)


@pytest.mark.parametrize("shift", [0.0, 100.0], ids=["centred", "far"])
def test_float32_gradients_match_float64_at_small_epsilon(shift):
    # Before the envelope-theorem gradient, reg_ot_cost's float32 gradient was off by 2.96 (relative norm)
    # at n = 1000: the implicit solve of an ill-conditioned system in float32 amplified the residual at tol.
    x, y = loss_clouds(400, shift=shift)
    g32 = _grads(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    with jax.enable_x64(True):
        g64 = _grads(jnp.asarray(x), jnp.asarray(y))
    assert np.all(np.isfinite(np.asarray(g64)))
    for k, name in enumerate(("reg_ot_cost", "divergence", "monge_gap")):
        assert _relative(g32[k], g64[k]) < 1e-3, name


@pytest.mark.slow
@pytest.mark.parametrize("n", [1000, 4000])
def test_float32_gradients_match_float64_large(n):
    x, y = loss_clouds(n, shift=10.0)
    g32 = _grads(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    with jax.enable_x64(True):
        g64 = _grads(jnp.asarray(x), jnp.asarray(y))
    for k in range(3):
        assert _relative(g32[k], g64[k]) < 1e-3


def test_float32_gradient_through_the_potentials_is_right_or_nan():
    # transport_cost goes through f and g: the implicit linear solve. In float32 it must either reach the
    # accuracy the dtype allows (then agree with float64) or say it failed (NaN), never return a wrong number.
    x, y = loss_clouds(300, shift=5.0)

    def lin(x, y, cap):
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.005), tol=1e-3, cg_maxiter=cap).transport_cost

    g32 = jax.jit(jax.grad(lin), static_argnums=2)(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), 2000)
    with jax.enable_x64(True):
        g64 = jax.jit(jax.grad(lin), static_argnums=2)(jnp.asarray(x), jnp.asarray(y), 20000)
    assert _relative(g32, g64) < 2e-2
    capped = jax.jit(jax.grad(lin), static_argnums=2)(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), 3)
    assert np.all(np.isnan(np.asarray(capped)))  # a CG stopped by its cap is reported, not used


# ------------------------------------------------------------------- gradients = finite differences


def _fd_problem(seed=3):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1.0, 1.0, size=(9, 2)), rng.uniform(-1.0, 1.0, size=(7, 2)) + 0.5
    a, b = rng.uniform(0.5, 1.0, 9), rng.uniform(0.5, 1.0, 7)
    return x, y, a / a.sum(), b / b.sum()


def _fd_values(x, y, a, b, relative, unbalanced, online):
    """The four values at once (so one compile per configuration): reg_ot_cost, transport_cost, the
    divergence and (balanced only) the Monge gap."""
    eps = 0.3 if relative else 0.2
    rel = "std" if relative else None
    chunk = 4 if online else None
    taus = {"tau_a": 0.8, "tau_b": 0.7} if unbalanced else {}
    geom = otf.PointCloud(x, y, epsilon=eps, relative_epsilon=rel, chunk_size=chunk)
    out = otf.sinkhorn(geom, a, b, tol=1e-12, max_iters=20000, **taus)
    div = otf.sinkhorn_divergence(
        x, y, a, b, epsilon=eps, relative_epsilon=rel, chunk_size=chunk, tol=1e-12, max_iters=20000, **taus
    )
    values = [out.reg_ot_cost, out.transport_cost, div]
    if not unbalanced:
        gap = otf.monge_gap(x, 0.8 * x + 0.1, a, epsilon=eps, relative_epsilon=rel, tol=1e-12, max_iters=20000)
        values.append(gap.gap)
    return jnp.stack(values)


_FD_CASES = [  # each factor at both levels twice in the default run; the other four combinations are slow
    pytest.param(False, False, False, id="absolute-balanced-dense"),
    pytest.param(True, False, True, id="relative-balanced-online"),
    pytest.param(False, True, True, id="absolute-unbalanced-online"),
    pytest.param(True, True, False, id="relative-unbalanced-dense"),
    pytest.param(True, False, False, id="relative-balanced-dense", marks=pytest.mark.slow),
    pytest.param(False, False, True, id="absolute-balanced-online", marks=pytest.mark.slow),
    pytest.param(False, True, False, id="absolute-unbalanced-dense", marks=pytest.mark.slow),
    pytest.param(True, True, True, id="relative-unbalanced-online", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("relative", "unbalanced", "online"), _FD_CASES)
def test_gradients_equal_central_finite_differences(relative, unbalanced, online, x64):
    x, y, a, b = _fd_problem()
    rng = np.random.default_rng(7)
    dx, dy = rng.normal(size=x.shape), rng.normal(size=y.shape)
    fun = jax.jit(lambda x, y: _fd_values(x, y, a, b, relative, unbalanced, online))
    jac_x, jac_y = jax.jit(jax.jacrev(lambda x, y: _fd_values(x, y, a, b, relative, unbalanced, online), (0, 1)))(x, y)
    analytic = np.einsum("kij,ij->k", jac_x, dx) + np.einsum("kij,ij->k", jac_y, dy)
    h = 1e-5
    fd = (np.asarray(fun(x + h * dx, y + h * dy)) - np.asarray(fun(x - h * dx, y - h * dy))) / (2 * h)
    np.testing.assert_allclose(analytic, fd, rtol=1e-5, atol=1e-7)


def test_relative_epsilon_is_differentiated(x64):
    # The case: delta . grad was 0.0432 against 0.0373 by finite differences, the statistic behind
    # stop_gradient.
    rng = np.random.default_rng(0)
    c, delta = rng.uniform(size=(15, 17)), rng.normal(size=(15, 17))

    def reg(c):
        return otf.sinkhorn(otf.Geometry(c, epsilon=0.05, relative_epsilon="std"), tol=1e-13, max_iters=20000).reg_ot_cost

    analytic = float(jnp.sum(jax.grad(reg)(c) * delta))
    h = 1e-6
    fd = (float(reg(c + h * delta)) - float(reg(c - h * delta))) / (2 * h)
    np.testing.assert_allclose(analytic, fd, rtol=1e-6)


# ------------------------------------------------------------------------- the status rule, derived


def test_divergence_is_nan_with_its_status_when_a_solve_stops_at_max_iters():
    # Before: a plausible number (the xy solve stopped at max_iters; reg_ot_cost is not masked by convergence).
    x, y = loss_clouds(64)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    value = otf.sinkhorn_divergence(x, y, epsilon=0.01, max_iters=10)
    assert np.isnan(float(value))
    out = jax.jit(lambda x, y: otf.sinkhorn_divergence(x, y, epsilon=0.01, max_iters=10, return_output=True))(x, y)
    assert np.isnan(float(out.value)) and not bool(out.converged)
    assert int(out.status) == driver.Status.MAX_ITERS and float(out.error) > 1e-3
    with pytest.raises(Exception, match="max_iters"):
        jax.block_until_ready(otf.sinkhorn_divergence(x, y, epsilon=0.01, max_iters=10, throw=True))
    good = otf.sinkhorn_divergence(x, y, epsilon=0.1, return_output=True)
    assert bool(good.converged) and int(good.status) == driver.Status.CONVERGED and np.isfinite(float(good.value))
    assert float(good.value) == float(otf.fitting.sinkhorn_loss(epsilon=0.1, relative_epsilon=None)(x, y))


def test_self_terms_are_solved_symmetrically_to_the_same_optimum(x64):
    # The self terms OT(a, a) by averaged symmetric updates: POT's plan (its alternating solve has not quite
    # converged after 20,000 iterations), in a few dozen iterations.
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(0)
    x, a = rng.normal(size=(30, 2)), rng.uniform(0.2, 1.0, 30)
    a = a / a.sum()
    c = ((x[:, None] - x[None]) ** 2).sum(-1)
    out = otf.sinkhorn(otf.PointCloud(x, x, epsilon=0.05), a, a, tol=1e-10, symmetric=True, max_iters=5000)
    assert bool(out.converged) and int(out.n_iters) < 500
    ref = ot.sinkhorn(a, a, c, 0.05, stopThr=1e-12, numItermax=20_000)  # alternating: slow here, close enough
    np.testing.assert_allclose(np.asarray(out.matrix), ref, atol=1e-7)
    with pytest.raises(ValueError, match="symmetric"):
        otf.sinkhorn(otf.PointCloud(x, x[:20], epsilon=0.01), symmetric=True)


# ------------------------------------------------------------------------------ eager validation


def test_eager_nan_points_raise_naming_the_argument():
    x = jnp.zeros((8, 2)).at[3, 1].set(jnp.nan)
    y = jnp.ones((6, 2))
    with pytest.raises(ValueError, match="^x: contains NaN"):
        otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1))
    with pytest.raises(ValueError, match="^y: contains NaN"):
        otf.sinkhorn_divergence(y, x, epsilon=0.1)
    with pytest.raises(ValueError, match="^cost_matrix: contains NaN"):
        otf.Geometry(jnp.ones((3, 3)).at[0, 0].set(jnp.inf), epsilon=0.1)
    out = jax.jit(lambda x: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1)))(x)  # traced: status + NaN
    assert int(out.status) == driver.Status.INVALID_INPUT and np.isnan(float(out.reg_ot_cost))


# -------------------------------------------------------------------------------------- memory


def test_divergence_resolves_each_chunk_for_its_own_shape():
    # Before: the x-x and y-y solves reused the row count resolved for x-y: with n = 100k, m = 1k, chunks of
    # 8192 x 100k entries (3.3 GB) in the x-x solve instead of the documented ~2**23.
    x = jax.ShapeDtypeStruct((100_000, 3), jnp.float32)
    y = jax.ShapeDtypeStruct((1_000, 3), jnp.float32)
    out = jax.eval_shape(
        lambda x, y: otf.sinkhorn_divergence(x, y, epsilon=0.1, chunk_size="auto", return_output=True), x, y
    )
    for o, (n, m) in ((out.xy, (100_000, 1_000)), (out.xx, (100_000, 100_000)), (out.yy, (1_000, 1_000))):
        rows = o.geom.chunk_size
        assert rows == min(n, max(512, ((1 << 23) // m) // 64 * 64)), (n, m, rows)


def _temp_bytes(fun, *shapes):
    """The compiled program's temporary memory (no run): what XLA allocates besides inputs and outputs."""
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    return jax.jit(fun).lower(*args).compile().memory_analysis().temp_size_in_bytes


_BLOCK = 4 * (1 << 20)  # bytes of the 2**20-entry row block a stored matrix is swept in (float32)


@pytest.mark.parametrize("shape", [(4096, 4096), (10007, 2000)], ids=["divisible", "prime-rows"])
def test_dense_solve_needs_no_second_matrix(shape):
    # Before: a strided copy (or C^T when n had no useful divisor) plus XLA's library-fusion operands, 4.25x
    # the matrix at 2000 x 2000. Documented: at most five row blocks of <= 2**20 entries.
    n, m = shape
    temp = _temp_bytes(lambda c: otf.sinkhorn(otf.Geometry(c, epsilon=0.05)).reg_ot_cost, shape)
    assert temp <= 1.25 * (5 * _BLOCK + 64 * (n + m)), (temp / 2**20, n * m * 4 / 2**20)


def test_a_gibbs_kernel_solve_holds_one_matrix_more():
    # Between 2**20 and 2**22 entries, Sinkhorn's blocks at the target epsilon sweep the Gibbs kernel: one
    # more [n, m] buffer, and no other (C / eps, invariant in the loop, was hoisted beside it: 34 MB here).
    n = m = 2000
    temp = _temp_bytes(lambda c: otf.sinkhorn(otf.Geometry(c, epsilon=0.05)).reg_ot_cost, (n, m))
    assert 4 * n * m <= temp < 2 * 4 * n * m, temp / 2**20


def test_online_and_divergence_memory_is_one_chunk():
    # Documented: an online solve holds one chunk of its rows (about 2**23 entries, at least 512 rows). The
    # divergence with n != m holds the largest of its three solves' chunks (before: 1281 MB at 20000 x 500).
    def chunk_bytes(n, m):
        return 4 * m * min(n, max(512, ((1 << 23) // m) // 64 * 64))

    temp = _temp_bytes(
        lambda x, y: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, chunk_size="auto")).reg_ot_cost,
        (20000, 3),
        (20000, 3),
    )
    assert temp <= 1.25 * chunk_bytes(20000, 20000)
    temp = _temp_bytes(
        lambda x, y: otf.sinkhorn_divergence(x, y, epsilon=0.1, chunk_size="auto"), (20000, 3), (500, 3)
    )
    assert temp <= 1.25 * max(chunk_bytes(20000, 500), chunk_bytes(20000, 20000), chunk_bytes(500, 500))


def test_an_online_flow_matching_coupling_holds_about_one_chunk():
    # The solve, the draws and the plan's cost and entropy pass one after the other: the pass's three row
    # sums held exp(z), P and P log P apart, 3.3 chunks in all (126.5 MB at n = m = 16384, d = 64).
    n, d = 16384, 64
    rows = min(n, max(512, ((1 << 23) // n) // 64 * 64))
    temp = _temp_bytes(
        lambda x, y: otf.flow_matching_pairs(jax.random.PRNGKey(0), x, y, "sinkhorn", chunk_size="auto"),
        (n, d),
        (n, d),
    )
    assert temp <= 1.5 * 4 * rows * n, temp / 2**20


def test_a_captured_numpy_array_changed_in_place_recompiles():
    # Before: captured arrays compared by identity, so the second call reused the first compile: stale costs.
    w = np.ones(2, np.float32)
    cost = lambda x, y: jnp.sum(w * (x - y) ** 2)  # noqa: E731
    x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)
    first = float(otf.sinkhorn(otf.PointCloud(x, x + 1.0, cost=cost, epsilon=0.5, relative_epsilon="mean")).transport_cost)
    w[:] = 2.0
    second = float(otf.sinkhorn(otf.PointCloud(x, x + 1.0, cost=cost, epsilon=0.5, relative_epsilon="mean")).transport_cost)
    np.testing.assert_allclose(second, 2 * first, rtol=1e-4)


def test_entropic_map_of_an_unconverged_solve_is_nan_and_its_memory_is_bounded():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(64, 2)), jnp.float32)
    bad = otf.entropic_map(x, x + 1.0, epsilon=0.001, max_iters=5)
    assert not bool(bad.converged) and bool(jnp.all(jnp.isnan(bad(x[:3]))))
    good = otf.entropic_map(x, x + 1.0, epsilon=0.1)
    assert bool(good.converged) and bool(jnp.all(jnp.isfinite(good(x[:3]))))
    # A cost other than squared Euclidean holds [block, m, d] gradients: documented about 3 block m d entries.
    y = jnp.zeros((4000, 16), jnp.float32)
    t = otf.EntropicMap(y, jnp.zeros(4000), jnp.zeros(4000), jnp.ones(()), otf.costs.PNorm(1.5), jnp.array(True))
    mem = jax.jit(t.__call__).lower(jnp.zeros((5000, 16))).compile().memory_analysis().temp_size_in_bytes
    assert mem <= 1.25 * 4 * max(3 * t.block_size * 4000 * 16, 5000 * 16)


def test_divergence_warm_start_saves_iterations_and_changes_nothing():
    x, y = loss_clouds(128)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    run = jax.jit(lambda x, y, w: otf.sinkhorn_divergence(x, y, epsilon=0.02, return_output=True, warm_start=w))
    cold = jax.jit(lambda x, y: otf.sinkhorn_divergence(x, y, epsilon=0.02, return_output=True))(x, y)
    step = x + 0.01  # a training step moves the cloud a little
    fresh = jax.jit(lambda x, y: otf.sinkhorn_divergence(x, y, epsilon=0.02, return_output=True))(step, y)
    warm = run(step, y, cold)
    assert bool(warm.converged) and int(warm.xy.n_iters) < int(fresh.xy.n_iters)
    np.testing.assert_allclose(float(warm.value), float(fresh.value), rtol=1e-3)
    with pytest.raises(ValueError, match="warm_start"):
        otf.sinkhorn_divergence(x[:100], y, epsilon=0.02, warm_start=cold)
