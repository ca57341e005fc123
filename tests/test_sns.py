"""Sinkhorn-Newton-Sparse against Sinkhorn, POT, and its own invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from conftest import random_problem, sq_cost

import ott_fast as otf


def _assignment(n, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, n))


def test_sns_matches_sinkhorn_potentials_and_costs(x64):
    x, y, a, b = random_problem(n=70, m=50, d=2, seed=1)
    geom = otf.PointCloud(x, y, epsilon=0.05)
    out = otf.sns(geom, a, b, tol=1e-12)
    ref = otf.sinkhorn(geom, a, b, tol=1e-12, max_iters=20000)
    assert bool(out.converged) and bool(ref.converged)
    assert int(out.newton.n_newton) >= 1
    shift = jnp.mean(out.f - ref.f)  # potentials are defined up to (f + t, g - t)
    np.testing.assert_allclose(out.f - shift, ref.f, atol=1e-8)
    np.testing.assert_allclose(out.g + shift, ref.g, atol=1e-8)
    np.testing.assert_allclose(float(out.reg_ot_cost), float(ref.reg_ot_cost), rtol=1e-8)
    np.testing.assert_allclose(float(out.transport_cost), float(ref.transport_cost), rtol=1e-8)
    plan = np.asarray(out.matrix)
    err = np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()
    assert err <= 1e-11
    last = np.asarray(out.errors)[np.isfinite(np.asarray(out.errors))][-1]
    np.testing.assert_allclose(last, err, rtol=1e-3, atol=1e-14)  # the trace is the real L1 error


def test_sns_matches_pot_sinkhorn2(x64):
    x, y, a, b = random_problem(n=40, m=60, d=3, seed=2)
    eps = 0.1
    out = otf.sns(otf.PointCloud(x, y, epsilon=eps), a, b, tol=1e-11)
    ref = ot.sinkhorn2(a, b, sq_cost(x, y), eps, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    np.testing.assert_allclose(float(out.transport_cost), float(ref), rtol=1e-7)


def test_random_assignment_few_iterations_to_machine_accuracy(x64):
    """The paper's Table 1 problem (n = 500, eta = 1200; the paper: 20 Sinkhorn + 9 Newton iterations)."""
    geom = otf.Geometry(_assignment(500), epsilon=1 / 1200)
    out = otf.sns(geom, tol=1e-10)
    assert bool(out.converged)
    assert int(out.n_iters) <= 40
    steps = np.asarray(out.newton.step_sizes)[: int(out.newton.n_newton)]
    assert np.all(steps > 0)
    assert int(out.newton.n_fallback) == 0
    d = np.asarray(out.duals)
    d = d[np.isfinite(d)]
    assert np.all(np.diff(d) >= -1e-12)  # the dual ascends (Sinkhorn and Armijo steps)
    kept = np.asarray(out.newton.kept)[: int(out.newton.n_newton)]
    assert np.all((kept >= 2 * 500) & (kept <= 20 * 500))  # the drop rule keeps the paper's 2n-15n here


def test_fallback_engages_on_degenerate_w1_and_converges(x64):
    """1-D W1: the entropic plan is not sparse, Newton on a 1-entry-per-row sparse Hessian stalls; the fallback's
    Sinkhorn iterations finish the job at about Sinkhorn's own iteration count. (Plain Sinkhorn: over-relaxed
    blocks restart their factor, raise the error, and let the next Newton steps count as fast while repairing
    it, so the blocks do not grow; on W1 images that repair is what makes the early handover pay.)"""
    n = 64
    xs = np.linspace(0, 1, n)[:, None]
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 1, n), rng.uniform(0.5, 1, n)
    a, b = a / a.sum(), b / b.sum()
    geom = otf.Geometry(np.abs(xs - xs.T), epsilon=0.02)
    out = otf.sns(geom, a, b, tol=1e-9, hessian="sparse", sparsity=1, fallback_iters=10, acceleration="none")
    ref = otf.sinkhorn(geom, a, b, tol=1e-9, max_iters=20000, acceleration="none")
    assert bool(out.converged) and bool(ref.converged)
    assert int(out.newton.n_fallback) > 0
    assert int(out.n_iters) <= 1.25 * int(ref.n_iters) + 20
    np.testing.assert_allclose(float(out.reg_ot_cost), float(ref.reg_ot_cost), rtol=1e-7)


def test_measured_handover_on_w1_images_matches_sinkhorn(x64):
    """W1 between two 12 x 12 images (the benchmark's degenerate case, smaller): from the default 20-iteration
    warm-up, Newton probes and Sinkhorn blocks alternate until Newton wins; the answer is Sinkhorn's."""
    from benchmarks.sns import image_problem

    cost, a, b = image_problem(1, side=12)
    geom = otf.Geometry(cost, epsilon=1 / 1200)
    out = otf.sns(geom, a, b, tol=1e-10)
    ref = otf.sinkhorn(geom, a, b, tol=1e-10, max_iters=50000)
    assert bool(out.converged) and bool(ref.converged)
    assert int(out.newton.n_newton) >= 1
    assert int(out.n_iters) < int(ref.n_iters) // 2  # Newton did most of the work
    shift = jnp.mean(out.f - ref.f)
    np.testing.assert_allclose(out.f - shift, ref.f, atol=1e-7)
    np.testing.assert_allclose(out.g + shift, ref.g, atol=1e-7)
    np.testing.assert_allclose(float(out.reg_ot_cost), float(ref.reg_ot_cost), rtol=1e-8)
    plan = np.asarray(out.matrix)
    assert np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum() <= 1e-10


def test_vmap_equals_loop(x64):
    cs = np.stack([_assignment(40, seed) for seed in range(3)])
    solve = lambda c, batching: otf.sns(otf.Geometry(c, epsilon=0.01), tol=1e-10, batching=batching)
    loop = [solve(jnp.asarray(c), "auto") for c in cs]
    for batching in ("parallel", "sequential"):
        out = jax.vmap(lambda c, batching=batching: solve(c, batching))(jnp.asarray(cs))
        for i, ref in enumerate(loop):
            # potentials are defined up to (f + t, g - t): batched reductions round differently, and Newton
            # steps with the Levenberg-Marquardt shift move along that direction by ~1e-8
            t = jnp.mean(out.f[i] - ref.f)
            np.testing.assert_allclose(out.f[i] - t, ref.f, atol=1e-10)
            np.testing.assert_allclose(out.g[i] + t, ref.g, atol=1e-10)
            member = jax.tree_util.tree_map(lambda z, i=i: z[i], out)
            np.testing.assert_allclose(member.matrix, ref.matrix, atol=1e-10)
            assert int(out.n_iters[i]) == int(ref.n_iters)
            assert bool(out.converged[i])


def test_jit_equals_eager_and_float32():
    x, y, a, b = random_problem(n=30, m=20, d=2, seed=3, dtype=np.float32)
    geom = otf.PointCloud(x, y, epsilon=0.1)
    eager = otf.sns(geom, a, b, tol=1e-5)
    jitted = jax.jit(lambda g: otf.sns(g, a, b, tol=1e-5))(geom)
    assert eager.f.dtype == jnp.float32
    assert bool(eager.converged)
    # (f + c, g - c) is the same solution: the jitted graph rounds the weighted centring shift differently,
    # and the Newton steps of the two runs then settle on slightly different constants.
    np.testing.assert_allclose(eager.f - eager.f.mean(), jitted.f - jitted.f.mean(), atol=1e-5)
    np.testing.assert_allclose(eager.reg_ot_cost, jitted.reg_ot_cost, rtol=1e-5)
    with jax.enable_x64(True):
        ref = otf.sns(otf.PointCloud(x.astype(np.float64), y.astype(np.float64), epsilon=0.1), a, b, tol=1e-10)
        np.testing.assert_allclose(float(eager.reg_ot_cost), float(ref.reg_ot_cost), rtol=1e-4)


def test_gradients_equal_sinkhorns(x64):
    x, y, a, b = random_problem(n=20, m=25, d=2, seed=4)

    def cost(solver, x, a):
        return solver(otf.PointCloud(x, y, epsilon=0.1), a, b, tol=1e-11).reg_ot_cost

    g_sns = jax.grad(lambda x, a: cost(otf.sns, x, a), argnums=(0, 1))(x, a)
    g_sk = jax.grad(lambda x, a: cost(otf.sinkhorn, x, a), argnums=(0, 1))(x, a)
    np.testing.assert_allclose(g_sns[0], g_sk[0], atol=1e-8)
    np.testing.assert_allclose(g_sns[1] - g_sns[1].mean(), g_sk[1] - g_sk[1].mean(), atol=1e-8)
    h = 1e-5  # and a finite difference along a random direction
    v = np.random.default_rng(0).normal(size=x.shape)
    fd = (cost(otf.sns, x + h * v, a) - cost(otf.sns, x - h * v, a)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(g_sns[0] * v)), float(fd), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sparsity=0), "sparsity"),
        (dict(sinkhorn_iters=7), "multiple of check_every"),
        (dict(acceleration="fast"), "acceleration"),
        (dict(hessian="dense"), "hessian"),
        (dict(newton_cost=0.0), "newton_cost"),
        (dict(tol=-1.0), "tol"),
    ],
)
def test_named_errors(kwargs, match):
    geom = otf.Geometry(np.ones((4, 4)), epsilon=0.1)
    with pytest.raises(ValueError, match=match):
        otf.sns(geom, **kwargs)


def test_input_errors():
    geom = otf.Geometry(np.ones((3, 3)), epsilon=0.1)
    with pytest.raises(ValueError, match="balanced"):
        otf.sns(geom, np.full(3, 0.5), np.full(3, 1 / 3))
    absent = otf.sns(geom, np.array([0.5, 0.5, 0.0]), np.full(3, 1 / 3))  # a zero weight is an absent point
    assert bool(absent.converged) and np.all(np.asarray(absent.matrix)[2] == 0)
    online = otf.PointCloud(np.zeros((8, 2)), np.ones((8, 2)), epsilon=0.1, chunk_size=4)
    with pytest.raises(ValueError, match="dense"):
        otf.sns(online)
    with pytest.raises(TypeError, match="geom"):
        otf.sns(np.ones((3, 3)))


def test_warm_start_from_f_or_g():
    """init=(f, None) computes g from f exactly and then warms up from it (it used to be rejected); from the
    optimum's f or g the solve needs no Newton step and lands where the cold solve did."""
    c = jax.random.uniform(jax.random.PRNGKey(3), (30, 20))
    geom = otf.Geometry(c, epsilon=0.05)
    cold = otf.sns(geom, tol=1e-6)
    from_f = otf.sns(geom, tol=1e-6, init=(cold.f, None))
    from_g = otf.sns(geom, tol=1e-6, init=(None, cold.g))
    for warm in (from_f, from_g):
        assert bool(warm.converged) and int(warm.newton.n_newton) == 0 and int(warm.n_iters) < int(cold.n_iters)
        np.testing.assert_allclose(warm.reg_ot_cost, cold.reg_ot_cost, rtol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        otf.sns(geom, init=(cold.f, cold.g))


def test_cg_caps_mean_what_they_mean_in_sinkhorn():
    """cg_maxiter caps the implicit backward CG, as in sinkhorn; newton_cg_maxiter caps each Newton step's CG
    (sns's cg_maxiter used to be the Newton cap and implicit_cg_maxiter the backward one)."""
    c = jax.random.uniform(jax.random.PRNGKey(4), (40, 40))
    geom = otf.Geometry(c, epsilon=0.01)
    capped = otf.sns(geom, tol=1e-5, newton_cg_maxiter=2)
    assert int(capped.newton.n_newton) > 0 and int(np.max(capped.newton.cg_iters)) == 2
    free = otf.sns(geom, tol=1e-5, cg_maxiter=3)  # the backward cap does not touch the forward solve
    assert int(np.max(free.newton.cg_iters)) > 3
    with pytest.raises(TypeError, match="implicit_cg_maxiter"):
        otf.sns(geom, implicit_cg_maxiter=10)


@pytest.mark.parametrize("solver", [otf.sinkhorn, otf.sns])
def test_gradient_with_a_warm_start_from_f(solver):
    """init=(f[n], None) with n != m under jax.grad and vmap (the backward pass gave the start a cotangent of
    shape [m]); the gradient is the cold start's."""
    c = jax.random.uniform(jax.random.PRNGKey(5), (3, 30, 20))
    cost = lambda c, init=None: solver(otf.Geometry(c, epsilon=0.05), tol=1e-6, init=init).reg_ot_cost  # noqa: E731
    f = jax.vmap(lambda c: solver(otf.Geometry(c, epsilon=0.05), tol=1e-6).f)(c)
    warm = jax.vmap(jax.grad(lambda c, f: cost(c, (f, None))))(c, f)
    np.testing.assert_allclose(warm, jax.vmap(jax.grad(cost))(c), rtol=1e-4, atol=1e-6)
