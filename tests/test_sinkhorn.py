"""Sinkhorn against independent references: POT (entropic and exact solvers) and finite differences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from conftest import random_problem, sq_cost

import ott_fast as otf
from ott_fast.entropic import driver, dual


@pytest.mark.parametrize("acceleration", ["none", "adaptive"])
@pytest.mark.parametrize("eps", [0.05, 0.5])
def test_balanced_matches_pot_sinkhorn2(x64, acceleration, eps):
    x, y, a, b = random_problem()
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b, tol=1e-11, max_iters=20000, acceleration=acceleration)
    assert bool(out.converged)
    ref = ot.sinkhorn2(a, b, sq_cost(x, y), eps, method="sinkhorn_log", stopThr=1e-14, numItermax=200000)
    assert abs(float(out.transport_cost) / float(ref) - 1) < 1e-6
    p_ref = ot.sinkhorn(a, b, sq_cost(x, y), eps, method="sinkhorn_log", stopThr=1e-14, numItermax=200000)
    np.testing.assert_allclose(out.matrix, p_ref, atol=1e-9)


@pytest.mark.parametrize("acceleration", ["none", "adaptive"])
@pytest.mark.parametrize("rho_a, rho_b", [(0.5, 0.5), (1.0, np.inf), (0.2, 2.0)])
def test_unbalanced_matches_pot(x64, acceleration, rho_a, rho_b):
    x, y, a, b = random_problem(seed=1)
    b = 1.7 * b  # different masses
    eps = 0.1
    tau = lambda rho: 1.0 if np.isinf(rho) else rho / (rho + eps)  # noqa: E731
    out = otf.sinkhorn(
        otf.PointCloud(x, y, epsilon=eps),
        a,
        b,
        tau_a=tau(rho_a),
        tau_b=tau(rho_b),
        tol=1e-12,
        max_iters=20000,
        acceleration=acceleration,
    )
    assert bool(out.converged)
    reg_m = (rho_a, rho_b)
    p_ref = ot.unbalanced.sinkhorn_unbalanced(
        a, b, sq_cost(x, y), eps, reg_m, method="sinkhorn", reg_type="kl", stopThr=1e-15, numItermax=200000
    )
    np.testing.assert_allclose(out.matrix, p_ref, rtol=1e-6, atol=1e-12)
    lin = ot.unbalanced.sinkhorn_unbalanced2(
        a, b, sq_cost(x, y), eps, reg_m, method="sinkhorn", reg_type="kl", stopThr=1e-15, numItermax=200000
    )
    assert abs(float(out.transport_cost) / float(lin) - 1) < 1e-6


def test_schedule_reaches_exact_ot_within_one_percent(x64):
    x, y, a, b = random_problem(n=60, m=50, seed=2)
    cost = sq_cost(x, y)
    exact = ot.emd2(a, b, cost)
    eps = 1e-3 * cost.mean()
    out = otf.sinkhorn(
        otf.Geometry(cost, epsilon=eps),
        a,
        b,
        tol=1e-6,
        max_iters=20000,
        schedule=otf.EpsilonSchedule(init=None, decay=0.9),
    )
    assert bool(out.converged)
    assert abs(float(out.transport_cost) / exact - 1) < 0.01
    # The schedule changes the path, not the answer.
    plain = otf.sinkhorn(otf.Geometry(cost, epsilon=eps), a, b, tol=1e-6, max_iters=20000)
    assert abs(float(out.transport_cost) / float(plain.transport_cost) - 1) < 1e-4


def test_relative_epsilon_and_reg_ot_cost(x64):
    x, y, a, b = random_problem(seed=3)
    cost = sq_cost(x, y)
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, relative_epsilon="mean"), a, b, tol=1e-12)
    eps = 0.1 * (a @ cost @ b)  # relative epsilon: the mean cost under the weights (a zero weight is absent)
    np.testing.assert_allclose(out.geom.epsilon, eps, rtol=1e-12)
    p = np.asarray(out.matrix)
    kl = np.sum(p * np.log(p / np.outer(a, b)) - p + np.outer(a, b))
    np.testing.assert_allclose(out.reg_ot_cost, np.sum(p * cost) + eps * kl, rtol=1e-9)
    std = otf.PointCloud(x, y, epsilon=0.1, relative_epsilon="std").epsilon
    np.testing.assert_allclose(std, 0.1 * cost.std(), rtol=1e-12)


def test_outputs_apply_trace_and_permutation(x64):
    x, y, a, b = random_problem(seed=4)
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), a, b, tol=1e-9, check_every=5, max_iters=1000)
    v, w = np.random.default_rng(0).normal(size=(len(x), 3)), np.random.default_rng(1).normal(size=(len(y), 3))
    np.testing.assert_allclose(out.apply(v, axis=0), np.asarray(out.matrix).T @ v, rtol=1e-10)
    np.testing.assert_allclose(out.apply(w, axis=1), np.asarray(out.matrix) @ w, rtol=1e-10)
    errors = np.asarray(out.errors)
    assert errors.shape == (200,)
    k = (int(out.n_iters) - 1) // 5
    assert np.all(np.isfinite(errors[:k])) and np.all(np.isnan(errors[k:]))
    # the trace's last entry is the L1 marginal error of the returned plan (recomputed here in NumPy), within
    # tol; the loop stopped soon after reaching it (no check before the last was below tol / 2)
    p = np.asarray(out.matrix, np.float64)
    l1 = np.abs(p.sum(1) - a).sum() + np.abs(p.sum(0) - b).sum()
    np.testing.assert_allclose(errors[k - 1], l1, rtol=1e-4, atol=1e-15)
    assert errors[k - 1] <= 1e-9 and np.all(errors[: k - 1] > 0.5e-9)
    perm = np.random.default_rng(1).permutation(len(x))
    out_p = otf.sinkhorn(otf.PointCloud(x[perm], y, epsilon=0.1), a[perm], b, tol=1e-9, max_iters=1000)
    np.testing.assert_allclose(out_p.matrix, np.asarray(out.matrix)[perm], atol=1e-9)


def test_warm_start_converges_at_once(x64):
    x, y, a, b = random_problem(seed=5)
    geom = otf.PointCloud(x, y, epsilon=0.05)
    out = otf.sinkhorn(geom, a, b, tol=1e-8, max_iters=5000)
    warm = otf.sinkhorn(geom, a, b, tol=1e-8, init=(None, out.g))
    assert bool(warm.converged) and int(warm.n_iters) <= 6 < int(out.n_iters)


def test_float32_follows_inputs_and_agrees_with_float64(x64):
    x, y, a, b = random_problem(seed=6)
    out64 = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), a, b, tol=1e-10)
    out32 = otf.sinkhorn(
        otf.PointCloud(x.astype(np.float32), y.astype(np.float32), epsilon=0.1),
        a.astype(np.float32),
        b.astype(np.float32),
        tol=1e-5,
    )
    assert out32.f.dtype == jnp.float32 and out32.reg_ot_cost.dtype == jnp.float32
    assert out32.errors.dtype == jnp.float32
    assert bool(out32.converged)
    assert abs(float(out32.reg_ot_cost) / float(out64.reg_ot_cost) - 1) < 1e-5


def test_jit_equals_eager(x64):
    x, y, a, b = random_problem(seed=7)
    solve = lambda x, y, a, b: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), a, b, tol=1e-9)  # noqa: E731
    eager, jitted = solve(x, y, a, b), jax.jit(solve)(x, y, a, b)
    np.testing.assert_allclose(eager.f, jitted.f, rtol=1e-12, atol=1e-14)
    assert int(eager.n_iters) == int(jitted.n_iters)


@pytest.mark.parametrize("batching", ["parallel", "sequential"])
def test_vmap_equals_loop_and_freezes_finished_problems(x64, batching):
    probs = [random_problem(seed=s) for s in range(4)]
    xs, ys, as_, bs = (np.stack(z) for z in zip(*probs))
    eps = np.array([0.02, 0.1, 0.5, 1.0])  # very different iteration counts

    def solve(x, y, a, b, e):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=e), a, b, tol=1e-9, max_iters=5000, batching=batching)
        return out.f, out.g, out.n_iters, out.converged, out.reg_ot_cost

    batched = jax.vmap(solve)(xs, ys, as_, bs, eps)
    loop = [solve(*z) for z in zip(xs, ys, as_, bs, eps)]
    assert len(set(int(z[2]) for z in loop)) > 1
    for i, single in enumerate(loop):
        for got, want in zip(batched, single):
            np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-13)


def test_in_chunks_equals_a_plain_vmap():
    """Uneven batches are topped up, unbatched arguments pass through, pytrees and nested vmaps work."""
    fn = lambda x, t: {"y": x * t["k"] + jnp.sum(x), "n": jnp.sum(x)}  # noqa: E731
    chunked = driver.in_chunks(fn, members=5)  # 23 members: five chunks of 5, topped up with 2 copies
    x, t = jnp.arange(69.0).reshape(23, 3), {"k": jnp.float32(2.0)}
    want, got = jax.vmap(fn, in_axes=(0, None))(x, t), jax.vmap(chunked, in_axes=(0, None))(x, t)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    xs = jnp.arange(138.0).reshape(2, 23, 3)
    nested = jax.vmap(jax.vmap(chunked, in_axes=(0, None)), in_axes=(0, None))(xs, t)
    jax.tree.map(np.testing.assert_array_equal, nested, jax.vmap(jax.vmap(fn, in_axes=(0, None)), in_axes=(0, None))(xs, t))


def test_vmap_in_cache_sized_chunks_equals_loop(x64):
    """18 problems of 512 x 512: six chunks of 3 members on CPU."""
    n, size = 512, 18
    assert driver.batched_mode("parallel", (n, n)) == ("chunked" if jax.default_backend() == "cpu" else "whole")
    assert 4 * driver.chunk_members((n, n)) < size
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(size, n, 2)), rng.normal(size=(size, n, 2)) + 0.5
    eps = np.geomspace(0.2, 2.0, size)  # different iteration counts

    def solve(x, y, e):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=e), tol=1e-6, batching="parallel")
        return out.f, out.n_iters, out.converged, out.reg_ot_cost

    batched = jax.jit(jax.vmap(solve))(xs, ys, eps)
    single = jax.jit(solve)
    loop = [single(*z) for z in zip(xs, ys, eps)]
    assert len({int(z[1]) for z in loop}) > 1 and all(bool(z[2]) for z in loop)
    for i, one in enumerate(loop):
        for got, want in zip(batched, one):
            np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-13)


def test_numeric_options_are_traced_not_static(x64):
    x, y, a, b = random_problem(seed=8)
    calls = []

    @jax.jit
    def solve(eps, tol, tau):
        calls.append(1)
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b, tol=tol, tau_a=tau, tau_b=tau).reg_ot_cost

    for eps, tol, tau in [(0.1, 1e-6, 1.0), (0.3, 1e-8, 0.9)]:
        solve(eps, tol, tau)
    assert len(calls) == 1


def _fd_check(fun, x, seed=0, h=1e-6, rtol=1e-5):
    d = np.random.default_rng(seed).normal(size=np.shape(x))
    g = jax.grad(fun)(x)
    fd = (fun(x + h * d) - fun(x - h * d)) / (2 * h)
    np.testing.assert_allclose(float(np.sum(np.asarray(g) * d)), float(fd), rtol=rtol, atol=1e-9)


@pytest.mark.parametrize("implicit", [True, False])
def test_gradients_match_finite_differences(x64, implicit):
    x, y, a, b = random_problem(n=20, m=15, seed=9)
    kw = dict(tol=1e-12, max_iters=5000, implicit_diff=implicit)

    def solve(x=x, y=y, a=a, b=b, eps=0.1, tau=1.0):
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b, tau_a=tau, **kw)

    _fd_check(lambda z: solve(x=z).transport_cost, jnp.asarray(x))
    _fd_check(lambda z: solve(y=z).reg_ot_cost, jnp.asarray(y))
    _fd_check(lambda e: solve(eps=e).transport_cost, 0.1)
    # weights: a balanced problem constrains sum(a) = sum(b), so move a and b together (direction of equal mass)
    _fd_check(lambda t: solve(a=a + t * (np.eye(20)[0] - np.eye(20)[1])).transport_cost, 0.0)
    _fd_check(lambda z: solve(a=z, tau=0.8).transport_cost, jnp.asarray(a))
    _fd_check(lambda t: solve(tau=t).reg_ot_cost, 0.8)


@pytest.mark.parametrize("batching", ["parallel", "sequential"])
def test_vmap_of_gradients_equals_loop(x64, batching):
    probs = [random_problem(n=12, m=9, seed=s) for s in range(3)]
    xs, ys, as_, bs = (np.stack(z) for z in zip(*probs))

    def loss(x, y, a, b):
        return otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), a, b, tol=1e-11, batching=batching).transport_cost

    batched = jax.vmap(jax.grad(loss))(xs, ys, as_, bs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], jax.grad(loss)(xs[i], ys[i], as_[i], bs[i]), rtol=1e-9, atol=1e-12)


def test_implicit_and_unrolled_gradients_agree(x64):
    x, y, a, b = random_problem(n=25, m=20, seed=10)

    def loss(x, implicit):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05), a, b, tol=1e-12, max_iters=5000, implicit_diff=implicit)
        # Depends on the potentials themselves, through a function invariant to the balanced problem's
        # null direction (f + c, g - c), on which the potentials (and their gradients) are not defined.
        return jnp.var(out.f) + out.f[0] + out.g[1] + out.transport_cost

    g1, g2 = jax.grad(loss)(jnp.asarray(x), True), jax.grad(loss)(jnp.asarray(x), False)
    np.testing.assert_allclose(g1, g2, rtol=1e-6, atol=1e-9)


def test_adaptive_relaxation_never_diverges_and_helps():
    rng = np.random.default_rng(11)
    for d, rel in [(2, 0.005), (64, 0.002), (8, 0.1)]:  # the hardest in low and high d, and an easy one
        x = rng.normal(size=(300, d)).astype(np.float32)
        y = (rng.normal(size=(300, d)) * 0.7 + 0.5).astype(np.float32)
        geom = otf.PointCloud(x, y, epsilon=rel, relative_epsilon="mean")
        plain = otf.sinkhorn(geom, tol=1e-3, max_iters=5000, acceleration="none")
        fast = otf.sinkhorn(geom, tol=1e-3, max_iters=5000, acceleration="adaptive", max_relaxation=1.9)
        assert bool(plain.converged) and bool(fast.converged), (d, rel)
        assert int(fast.n_iters) <= int(plain.n_iters) + 5, (d, rel, int(fast.n_iters), int(plain.n_iters))
        assert abs(float(fast.reg_ot_cost) / float(plain.reg_ot_cost) - 1) < 1e-3


def test_vmap_of_gradients_with_zero_and_nonzero_potential_cotangents_equals_loop(x64):
    # The backward pass skips the implicit solve when the potentials' cotangents are zero (a value at
    # frozen potentials, as reg_ot_cost); under vmap that choice is per member.
    probs = [random_problem(n=12, m=9, seed=s) for s in range(3)]
    xs, ys, as_, bs = (np.stack(z) for z in zip(*probs))

    def loss(x, y, a, b, w):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), a, b, tol=1e-11, batching="parallel")
        return out.reg_ot_cost + w * (jnp.var(out.f) + out.f[0] + out.g[1])

    ws = jnp.array([0.0, 1.0, 0.0])
    batched = jax.vmap(jax.grad(loss))(xs, ys, as_, bs, ws)
    for i in range(3):
        expected = jax.grad(loss)(xs[i], ys[i], as_[i], bs[i], ws[i])
        np.testing.assert_allclose(batched[i], expected, rtol=1e-9, atol=1e-12)
    # With w = 0 the gradient is the envelope theorem's alone: that of the dual at the frozen potentials.
    out = otf.sinkhorn(otf.PointCloud(xs[0], ys[0], epsilon=0.1), as_[0], bs[0], tol=1e-11)
    frozen = lambda x: dual.dual_objective(out.f, out.g, otf.PointCloud(x, ys[0], epsilon=0.1), as_[0], bs[0], 1.0, 1.0)  # noqa: E731
    np.testing.assert_allclose(batched[0], jax.grad(frozen)(jnp.asarray(xs[0])), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shift", [0.0, 30.0, -30.0, 300.0, -300.0])
def test_final_check_by_one_pass_sums_equals_the_shifted_sums(shift):
    # finalize checks the returned potentials with one-pass (unshifted) sums: the same error as the exact,
    # max-shifted sums where it is small, and as large where the potentials are far off (overflow, underflow).
    x, y, a, b = random_problem(n=30, m=20, seed=4)
    x, y, a, b = (jnp.asarray(v, jnp.float32) for v in (x, y, a, b))
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05), a, b, tol=1e-4)
    kern = out.geom.kernel()
    f = out.f + shift * jnp.linspace(0.0, 1.0, 30) * 0.05  # far from the optimum once shift is large
    one = driver.finalize(f, out.g, kern, a, b, 1.0, 1.0, 1e-3, jnp.array(True), jnp.array(True))
    log_r, log_c = dual.exact_sums(f, out.g, kern, a, b)
    exact = dual.marginal_error(f, out.g, log_r, log_c, a, b, kern.epsilon, 1.0, 1.0)
    if shift == 0.0:
        assert bool(one.converged)
        np.testing.assert_allclose(float(one.error), float(exact), rtol=1e-3, atol=1e-7)
    else:
        assert not bool(one.converged)
        assert float(exact) > 1e-3
        if bool(jnp.isfinite(one.error)):
            assert float(one.error) >= min(float(exact), 1.0) * 0.99


def _gibbs_problem(n=300, m=260, dtype=np.float32):
    """A problem whose solve sweeps the Gibbs kernel (``2**16 <= n m <= 2**20``), away from the origin, with
    zero-weight points on both sides."""
    x, y, a, b = random_problem(n, m, d=3, seed=3)
    a[:7], b[-5:] = 0.0, 0.0
    return (x + 10.0).astype(dtype), (y + 10.0).astype(dtype), (a / a.sum()).astype(dtype), (b / b.sum()).astype(dtype)


def test_gibbs_kernel_sweeps_equal_the_exact_sweeps(x64):
    x, y, a, b = _gibbs_problem(70, 50, np.float64)
    geom = otf.PointCloud(x, y, epsilon=0.05)
    out = otf.sinkhorn(geom, a, b, tol=1e-8)
    base, inv = geom.kernel(), 1.0 / geom.epsilon
    la, lb = dual.safe_log(jnp.asarray(a)), dual.safe_log(jnp.asarray(b))
    log_r = base.row_lse_exact(out.f * inv, out.g * inv + lb, inv)
    gk = otf.geometry.GibbsKernel(base, out.f * inv, out.g * inv, log_r, inv)
    rng = np.random.default_rng(0)
    for shift in (0.0, 3.0, 40.0):  # at the potentials K was built at, near them, far from them
        f = out.f + shift * geom.epsilon * rng.normal(size=70)
        g = out.g + shift * geom.epsilon * rng.normal(size=50)
        for eps_scale in (1.0, 2.0):  # another epsilon: the exact sweep itself
            inv_k = inv / eps_scale
            np.testing.assert_allclose(
                gk.row_lse(f * inv_k, g * inv_k + lb, inv_k), base.row_lse_exact(f * inv_k, g * inv_k + lb, inv_k),
                rtol=1e-10, atol=1e-10,
            )
            np.testing.assert_allclose(
                gk.col_lse(f * inv_k + la, g * inv_k, inv_k), base.col_lse_exact(f * inv_k + la, g * inv_k, inv_k),
                rtol=1e-10, atol=1e-10,
            )


def test_gibbs_kernel_falls_back_where_its_sums_underflow():
    # float32: potentials up to 200 epsilon apart underflow the kernel's sums; the sweep is then the exact one.
    x, y, a, b = _gibbs_problem(70, 50)
    geom = otf.PointCloud(x, y, epsilon=0.05)
    base, inv = geom.kernel(), 1.0 / geom.epsilon
    f, g = jnp.zeros(70), jnp.zeros(50)
    gk = otf.geometry.GibbsKernel(base, f, g, base.row_lse_exact(f, g, inv), inv)
    far = jnp.asarray(np.linspace(-200.0, 0.0, 50), jnp.float32)
    assert not bool(gk._sums(far - gk.v0, rows=True)[1])  # the kernel's own sums would be wrong here
    np.testing.assert_allclose(gk.row_lse(f, far, inv), base.row_lse(f, far, inv), rtol=1e-5)


@pytest.mark.parametrize("acceleration", ["adaptive", "anderson"])
def test_solves_on_the_gibbs_kernel_match_pot_and_the_exact_sweeps(acceleration):
    # float32 at a small epsilon, 10 away from the origin, zero weights on both sides: the default solve
    # sweeps the Gibbs kernel, batching="parallel" the stored matrix (a vmapped batch would select both).
    x, y, a, b = _gibbs_problem()
    geom = otf.PointCloud(x, y, epsilon=0.01, relative_epsilon="mean")
    solve = lambda batching: otf.sinkhorn(geom, a, b, tol=1e-4, acceleration=acceleration, batching=batching)  # noqa: E731
    dots = [str(jax.make_jaxpr(lambda bt=bt: solve(bt).f)()).count("dot_general") for bt in ("auto", "parallel")]
    assert dots[0] > dots[1], dots  # the Gibbs kernel's products are there, and only there
    gibbs, exact = solve("auto"), solve("parallel")
    assert bool(gibbs.converged) and bool(exact.converged)
    assert float(gibbs.error) <= 1e-4
    np.testing.assert_allclose(gibbs.matrix, exact.matrix, atol=1e-3 * float(jnp.max(exact.matrix)))
    ref = _pot_gibbs_reference(float(geom.epsilon))
    np.testing.assert_allclose(float(gibbs.transport_cost), ref, rtol=1e-3)  # tol 1e-4 of marginals


@functools.cache
def _pot_gibbs_reference(eps: float) -> float:
    """``<P, C>`` of POT's log-domain Sinkhorn (float64) on :func:`_gibbs_problem` without its absent points."""
    x, y, a, b = _gibbs_problem()
    keep_a, keep_b = a > 0, b > 0
    c = sq_cost(x[keep_a], y[keep_b])
    p = ot.bregman.sinkhorn_log(a[keep_a].astype(np.float64), b[keep_b].astype(np.float64), c, eps, stopThr=1e-8)
    return float(np.sum(p * c))
