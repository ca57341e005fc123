"""The core's contracts: one kernel behind every output, translation-safe float32, `converged` that holds for
what is returned (under jit too), no recompilation on eager use, exact gradients at zero weights, unrolled
gradients whose memory does not grow with max_iters, and the unbalanced divergence."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ott_fast as otf
from ott_fast.entropic import driver
from ott_fast.entropic import dual as dual_mod
from ott_fast.entropic import sinkhorn as _  # noqa: F401  (the module, for its compiled solve below)

Status = driver.Status


def _clouds(n=120, m=80, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (0.5 * rng.normal(size=(m, 2)) + 0.5).astype(np.float32)
    return x, y


def _l1_error64(plan, n, m):
    p = np.asarray(plan, np.float64)
    return np.abs(p.sum(1) - 1 / n).sum() + np.abs(p.sum(0) - 1 / m).sum()


@pytest.mark.parametrize("chunk", [None, 32], ids=["dense", "online"])
@pytest.mark.parametrize("shift", [0.0, 1e2, 1e4])
def test_float32_far_from_origin_matches_a_float64_reference(shift, chunk):
    """Shifts up to 1e4 times the clouds' spread: converged implies a plan within 2 tol (recomputed in float64
    from `out.matrix`), and the transport cost matches POT's float64 solve of the same float32 inputs."""
    x, y = _clouds()
    xs, ys = x + np.float32(shift), y + np.float32(shift)  # the float32 inputs both solvers get
    eps, tol = 0.05, 1e-3
    out = otf.sinkhorn(otf.PointCloud(xs, ys, epsilon=eps, chunk_size=chunk), tol=tol)
    assert bool(out.converged) and int(out.status) == Status.CONVERGED
    assert _l1_error64(out.matrix, *out.geom.shape) <= 2 * tol
    x64, y64 = xs.astype(np.float64), ys.astype(np.float64)
    c = ((x64[:, None] - y64[None]) ** 2).sum(-1)
    n, m = c.shape
    ref = ot.sinkhorn2(np.full(n, 1 / n), np.full(m, 1 / m), c, eps, method="sinkhorn_log", stopThr=1e-10)
    np.testing.assert_allclose(float(out.transport_cost), float(ref), rtol=1e-3)


def test_translating_both_clouds_changes_nothing_beyond_input_rounding():
    x, y = (np.round(c * 64) / 64 for c in _clouds(60, 50))  # on a grid: x + s is exact in float32
    s = np.float32(1024.0)  # so the translated problem is exactly the same problem, shifted
    for chunk in (None, 16):
        base = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05, chunk_size=chunk), tol=1e-4)
        moved = otf.sinkhorn(otf.PointCloud(x + s, y + s, epsilon=0.05, chunk_size=chunk), tol=1e-4)
        assert int(base.n_iters) == int(moved.n_iters)
        np.testing.assert_allclose(np.asarray(moved.matrix), np.asarray(base.matrix), rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(float(moved.reg_ot_cost), float(base.reg_ot_cost), rtol=1e-5)


def test_sns_converged_implies_its_plan_is_within_tol_far_from_origin():
    x, y = _clouds(100, 100, seed=3)
    tol = 1e-3
    out = otf.sns(otf.PointCloud(x + np.float32(3e3), y + np.float32(3e3), epsilon=0.05), tol=tol)
    assert bool(out.converged)
    assert _l1_error64(out.matrix, 100, 100) <= 2 * tol


# ----------------------------------------------------------------------------------- the jit contract


def _bad_inputs():
    x, y = _clouds(20, 15)
    a, b = np.full(20, 1 / 20, np.float32), np.full(15, 1 / 15, np.float32)
    neg = a.copy()
    neg[0], neg[1] = -neg[0], 3 * neg[1]  # same mass, one negative weight
    nan_w = a.copy()
    nan_w[3] = np.nan
    nan_x = x.copy()
    nan_x[2, 0] = np.nan
    return {
        "unequal mass": (x, y, a, 2 * b, 0.1),
        "negative weight": (x, y, neg, b, 0.1),
        "NaN weight": (x, y, nan_w, b, 0.1),
        "NaN point": (nan_x, y, a, b, 0.1),
        "infinite epsilon": (x, y, a, b, np.inf),
        "negative epsilon": (x, y, a, b, -1.0),
    }


@jax.jit
def _solve_bad(x, y, a, b, eps):
    """Every solver on one (invalid) input, compiled once for all cases (they share shapes)."""
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b)
    sns_out = otf.sns(otf.PointCloud(x, y, epsilon=eps), a, b)
    return (
        (out.converged, out.status, out.reg_ot_cost, out.transport_cost),
        (sns_out.converged, sns_out.status, sns_out.reg_ot_cost),
        otf.sinkhorn_divergence(x, y, a, b, epsilon=eps),
        otf.monge_gap(x, x + 1.0, a, epsilon=eps).gap,
    )


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_traced_invalid_input_gives_nan_costs_and_says_why(case):
    x, y, a, b, eps = _bad_inputs()[case]
    (conv, status, reg, lin), (sns_conv, sns_status, sns_reg), div, gap = _solve_bad(x, y, a, b, np.float32(eps))
    assert not bool(conv) and int(status) == Status.INVALID_INPUT
    assert np.isnan(float(reg)) and np.isnan(float(lin))
    assert not bool(sns_conv) and int(sns_status) == Status.INVALID_INPUT and np.isnan(float(sns_reg))
    assert np.isnan(float(div))
    if case != "unequal mass":  # the gap has one weight vector: its masses are equal by design
        assert np.isnan(float(gap))


def test_throw_raises_under_jit_and_describes_the_failure():
    x, y, a, b, eps = _bad_inputs()["unequal mass"]
    solve = jax.jit(lambda a, b: otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b, throw=True).f)
    with pytest.raises(Exception, match="invalid input"):
        jax.block_until_ready(solve(a, b))
    assert np.all(np.isfinite(np.asarray(solve(a, a[:15] / a[:15].sum()))))


def test_zero_weights_work_in_sns_eagerly_and_under_jit():
    x, y = _clouds(30, 20)
    a = np.full(30, 1 / 28, np.float32)
    a[[4, 9]] = 0.0
    geom = otf.PointCloud(x, y, epsilon=0.1)
    eager = otf.sns(geom, a, tol=1e-5)
    jitted = jax.jit(lambda a: otf.sns(geom, a, tol=1e-5))(a)
    assert bool(eager.converged) and bool(jitted.converged)
    np.testing.assert_allclose(np.asarray(eager.matrix), np.asarray(jitted.matrix), rtol=1e-4, atol=1e-7)
    assert np.all(np.asarray(eager.matrix)[[4, 9]] == 0)


def test_tol_zero_is_a_fixed_budget_and_check_every_adjusts_the_default_cap():
    x, y = _clouds(20, 15)
    geom = otf.PointCloud(x, y, epsilon=1.0)
    out = otf.sinkhorn(geom, tol=0.0, max_iters=40)
    assert int(out.n_iters) == 41 and int(out.status) == Status.MAX_ITERS  # the first, exact, iteration + 40
    out = otf.sinkhorn(geom, check_every=3)
    assert out.errors.shape == (667,) and bool(out.converged)  # 2000 rounded up to 2001 = 667 * 3
    with pytest.raises(ValueError, match="max_iters: must be a positive multiple of check_every=3"):
        otf.sinkhorn(geom, check_every=3, max_iters=100)


def test_init_takes_one_potential_and_uses_it():
    x, y = _clouds(40, 30)
    geom = otf.PointCloud(x, y, epsilon=0.05)
    out = otf.sinkhorn(geom, tol=1e-5)
    from_g = otf.sinkhorn(geom, tol=1e-5, init=(None, out.g))
    from_f = otf.sinkhorn(geom, tol=1e-5, init=(out.f, None))
    assert int(from_g.n_iters) < int(out.n_iters) and int(from_f.n_iters) < int(out.n_iters)
    with pytest.raises(ValueError, match="init: give exactly one"):
        otf.sinkhorn(geom, init=(out.f, out.g))


# ------------------------------------------------------------------------------- compilation counts


def test_eager_properties_and_equal_callables_do_not_recompile():
    x, y = _clouds(30, 20)
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1))
    float(out.reg_ot_cost), float(out.transport_cost)
    sizes = dual_mod.dual_objective_jit._cache_size(), dual_mod.plan_cost_jit._cache_size()
    float(out.reg_ot_cost), float(out.transport_cost)  # second access
    out2 = otf.sinkhorn(otf.PointCloud(x, y + 1.0, epsilon=0.2))
    float(out2.reg_ot_cost)  # another problem of the same structure
    assert (dual_mod.dual_objective_jit._cache_size(), dual_mod.plan_cost_jit._cache_size()) == sizes

    from ott_fast.entropic.sinkhorn import _solve_implicit

    def solve_with_fresh_lambda(scale):
        return otf.sinkhorn(otf.PointCloud(x, y, cost=lambda u, v: jnp.sum(jnp.abs(u - v)) * scale, epsilon=0.1))

    first = solve_with_fresh_lambda(2.0)
    before = _solve_implicit._cache_size()
    second = solve_with_fresh_lambda(2.0)  # a new function object computing the same thing
    assert _solve_implicit._cache_size() == before
    np.testing.assert_array_equal(np.asarray(first.f), np.asarray(second.f))
    third = solve_with_fresh_lambda(3.0)  # a different closure value: a different cost, a new compile
    assert _solve_implicit._cache_size() == before + 1
    assert not np.allclose(np.asarray(third.f), np.asarray(first.f))


def test_eager_divergence_is_compiled_once():
    from ott_fast.entropic.divergence import _divergence

    x, y = _clouds(30, 20)
    otf.sinkhorn_divergence(x, y, epsilon=0.1)
    before = _divergence._cache_size()
    otf.sinkhorn_divergence(x, y + 1.0, epsilon=0.3)
    assert _divergence._cache_size() == before


# ----------------------------------------------------------------------------- gradients at the edges


def test_gradient_at_a_zero_weight_is_the_potential_and_matches_finite_differences(x64):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(10, 2)) + 1.0
    a = rng.uniform(0.5, 1.0, 12)
    a[5] = 0.0
    a /= a.sum()
    b = np.full(10, 0.1)
    geom = otf.PointCloud(x, y, epsilon=0.3)

    def cost(w):
        return otf.sinkhorn(geom, w, b, tol=1e-12, max_iters=5000).reg_ot_cost

    g = np.asarray(jax.grad(cost)(jnp.asarray(a)))
    assert np.all(np.isfinite(g))
    out = otf.sinkhorn(geom, a, b, tol=1e-12, max_iters=5000)
    # dD/da_i = f_i at the optimum, up to the constant that a balanced problem leaves free (f + c, g - c).
    f = np.asarray(out.f)
    np.testing.assert_allclose(g - g.mean(), f - f.mean(), atol=1e-8)
    # Mass-preserving directions, one-sided where the zero weight moves: finite differences agree.
    for i, k in [(5, 0), (2, 7)]:
        v = np.zeros(12)
        v[i], v[k] = 1.0, -1.0
        h = 1e-6
        fd = (float(cost(a + h * v)) - float(cost(a))) / h
        np.testing.assert_allclose(g @ v, fd, rtol=1e-4, atol=1e-7)


def test_unrolled_gradient_memory_does_not_grow_with_max_iters():
    x, y = _clouds(200, 200)

    def temp_bytes(max_iters):
        def loss(x):
            out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.5), implicit_diff=False, max_iters=max_iters)
            return out.reg_ot_cost

        compiled = jax.jit(jax.grad(loss)).lower(x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(100), temp_bytes(2000)
    per_check_state = 4 * (2 * 200 + 2 * 200 + 16)  # f, g, log_r, log_c and scalars: what a check stores
    checks_added = (2000 - 100) // 5
    assert large - small <= 2 * checks_added * per_check_state, (small, large)  # O(n + m) per check only
    assert large < 200 * 200 * 4 * 50, (small, large)  # a few [n, m] buffers in all, not one per check


# --------------------------------------------------------------------------------- unbalanced divergence


def _pot_unbalanced_objective(a, b, c, eps, rho):
    """``<P, C> + eps KL(P | a b^T) + rho KL(P 1 | a) + rho KL(P^T 1 | b)`` (generalised KLs) at POT's plan."""
    p = ot.unbalanced.sinkhorn_unbalanced(
        a, b, c, reg=eps, reg_m=rho, reg_type="kl", method="sinkhorn", numItermax=200_000, stopThr=1e-14
    )

    def kl(u, v):
        u, v = u.ravel(), v.ravel()
        pos = u > 0
        return float(np.sum(u[pos] * np.log(u[pos] / v[pos])) - u.sum() + v.sum())

    return float((p * c).sum()) + eps * kl(p, np.outer(a, b)) + rho * (kl(p.sum(1), a) + kl(p.sum(0), b))


def test_unbalanced_divergence_is_nonnegative_and_matches_pot(x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(15, 2))
    y = rng.normal(size=(12, 2)) + 0.5
    eps, rho = 1.0, 1.0
    tau = rho / (rho + eps)
    a, b = np.full(15, 1 / 15), np.full(12, 2 / 12)  # masses 1 and 2
    kw = dict(epsilon=eps, tau_a=tau, tau_b=tau, tol=1e-12, max_iters=20_000)
    cxy = ((x[:, None] - y[None]) ** 2).sum(-1)
    cxx = ((x[:, None] - x[None]) ** 2).sum(-1)
    cyy = ((y[:, None] - y[None]) ** 2).sum(-1)
    ref = (
        _pot_unbalanced_objective(a, b, cxy, eps, rho)
        - 0.5 * (_pot_unbalanced_objective(a, a, cxx, eps, rho) + _pot_unbalanced_objective(b, b, cyy, eps, rho))
        + 0.5 * eps * (a.sum() - b.sum()) ** 2
    )
    ours = float(otf.sinkhorn_divergence(x, y, a, b, **kw))
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    # The case that was negative without the mass term: the same points, masses 1 and 2.
    same = float(otf.sinkhorn_divergence(x, x, a, 2 * a, epsilon=1.0, tau_a=0.5, tau_b=0.5, tol=1e-12))
    assert same > 0
