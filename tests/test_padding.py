"""A zero weight means an absent point, everywhere: appending zero-weight points, wherever they sit (at the
origin, on copies of real points, far away), changes no output on the real points, no gradient, no iteration
count; and `otf.pad` turns a ragged batch into one `jax.vmap` that equals a loop of separate solves.

Each test compiles its functions once for the unpadded and once for the padded shape, then runs every padding
position through the same compiled code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ott_fast as otf

N, M, D = 14, 11, 3  # real points
PN, PM = 4, 3  # padding appended to each side
POSITIONS = ("zeros", "copies", "far")
TOL = 1e-6  # float64: padded equals unpadded to this (relative to the output's scale)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    y = 0.8 * rng.normal(size=(M, D)) + 0.7
    a, b = rng.uniform(0.3, 1.0, N), rng.uniform(0.3, 1.0, M)
    return x, y, a / a.sum(), b / b.sum()


def _pad(z, w, k, where):
    fill = {"zeros": np.zeros((k, z.shape[1])), "copies": z[:k], "far": np.full((k, z.shape[1]), 1e3)}[where]
    return np.concatenate([z, fill]), np.concatenate([w, np.zeros(k)])


def _padded(where, x, y, a, b):
    xp, ap = _pad(x, a, PN, where)
    yp, bp = _pad(y, b, PM, where)
    return xp, yp, ap, bp


def _close(padded, plain, tol=TOL):
    """Every leaf of ``padded`` equals ``plain``: arrays over the real points are cut to them first."""
    for p, q in zip(jax.tree_util.tree_leaves(padded), jax.tree_util.tree_leaves(plain), strict=True):
        p, q = np.asarray(p), np.asarray(q)
        if p.ndim:  # per-point (or per-pair) outputs: the real points come first
            p = p[tuple(slice(0, s) for s in q.shape)]
        scale = max(float(np.max(np.abs(q))), 1e-12) if q.size else 1.0
        assert np.all(np.isfinite(p)), "padding produced non-finite values"
        np.testing.assert_allclose(p, q, rtol=0, atol=tol * scale)


# ------------------------------------------------------------------------------------------ entropic solvers


def _sinkhorn_outputs(chunk, tau, rel):
    def solve(x, y, a, b):
        geom = otf.PointCloud(x, y, epsilon=0.2, relative_epsilon=rel, chunk_size=chunk)
        return otf.sinkhorn(geom, a, b, tau_a=tau, tau_b=tau, tol=1e-9, max_iters=4000)

    def outputs(x, y, a, b):
        out = solve(x, y, a, b)
        grads = jax.grad(lambda *args: solve(*args).reg_ot_cost, argnums=(0, 1, 2, 3))(x, y, a, b)
        per_point = (out.f, out.g, out.matrix, out.apply(x), grads[0], grads[1], grads[2], grads[3])
        scalars = (out.reg_ot_cost, out.transport_cost, out.geom.epsilon)
        return per_point, scalars, (out.n_iters, out.converged, out.status)

    return jax.jit(outputs)


@pytest.mark.parametrize(
    "chunk, tau, rel",
    [
        pytest.param(None, 1.0, None, marks=pytest.mark.slow),  # the other two cover both kernels and modes
        (None, 0.7, "mean"),
        (5, 1.0, "std"),
        pytest.param(5, 0.7, None, marks=pytest.mark.slow),
    ],
    ids=["dense-balanced", "dense-unbalanced-mean", "online-balanced-std", "online-unbalanced"],
)
def test_sinkhorn_outputs_and_gradients_ignore_padding(x64, chunk, tau, rel):
    x, y, a, b = _problem()
    outputs = _sinkhorn_outputs(chunk, tau, rel)
    per_point, scalars, counts = outputs(x, y, a, b)
    assert bool(counts[1])
    for where in POSITIONS:
        pp, ps, pc = outputs(*_padded(where, x, y, a, b))
        _close(pp, per_point)
        _close(ps, scalars)
        assert [int(c) for c in pc] == [int(c) for c in counts], where  # n_iters, converged, status


def test_sns_divergence_monge_gap_and_entropic_map_ignore_padding(x64):
    x, y, a, b = _problem(1)
    z = np.random.default_rng(5).normal(size=(6, D))

    def outputs(x, y, a, b):
        geom = otf.PointCloud(x, y, epsilon=0.2, relative_epsilon="mean")
        s = otf.sns(geom, a, b, tol=1e-9)
        div, div_grad = jax.value_and_grad(otf.sinkhorn_divergence)(x, y, a, b, epsilon=0.1, tol=1e-8)
        tx = x + 0.3 * jnp.sin(x)
        gap_fn = lambda t: otf.monge_gap(x, t, a, epsilon=0.2, relative_epsilon="mean", tol=1e-8).gap  # noqa: E731
        gap, gap_grad = jax.value_and_grad(gap_fn)(tx)
        tmap = otf.entropic_map(x, y, a, b, epsilon=0.1, tol=1e-8)
        per_point = (s.f, s.g, s.matrix, div_grad, gap_grad)
        whole = (s.reg_ot_cost, div, gap, tmap(z), s.n_iters, s.converged)
        return per_point, whole

    outputs = jax.jit(outputs)
    per_point, whole = outputs(x, y, a, b)
    assert bool(whole[-1]) and all(np.all(np.isfinite(np.asarray(v))) for v in whole)  # every solve converged
    for where in POSITIONS:
        xp, yp, ap, bp = _padded(where, x, y, a, b)
        # the Monge gap pairs x with its images: pad both with the same points (x's padding)
        pp, pw = outputs(xp, yp, ap, bp)
        _close(pp, per_point)
        _close(pw, whole)


# ------------------------------------------------------------------------------------------ the sliced family


def test_sliced_family_ignores_padding(x64):
    x, y, a, b = _problem(2)
    key = jax.random.PRNGKey(3)
    mu = jnp.ones(D) / jnp.sqrt(D)

    def outputs(x, y, a, b):
        vals = [otf.wasserstein_1d(x[:, 0], y[:, 0], a, b, p=1.5)]
        for dirs in ("mc", "qmc", "orthogonal", "random_path"):
            for est in ("mc", "cv_lower", "cv_upper"):
                vals.append(otf.sliced_wasserstein(key, x, y, a, b, n_projections=6, directions=dirs, estimator=est))
        vals.append(otf.energy_sliced_wasserstein(key, x, y, a, b, n_projections=6))
        vals.append(otf.max_sliced_wasserstein(key, x, y, a, b, n_steps=5).value)
        vals.append(otf.distributional_sliced_wasserstein(key, x, y, a, b, n_projections=6, n_steps=5).value)
        vals.append(otf.vmf_sliced_wasserstein(key, x, y, a, b, location=mu, kappa=10.0, n_projections=6))
        vals.append(
            otf.vmf_distributional_sliced_wasserstein(key, x, y, a, b, n_projections=6, kappa=10.0, n_steps=5).value
        )
        grad = jax.grad(lambda x, a: otf.sliced_wasserstein(key, x, y, a, b, n_projections=6), argnums=(0, 1))(x, a)
        return jnp.stack(vals), grad

    outputs = jax.jit(outputs)
    vals, grad = outputs(x, y, a, b)
    for where in POSITIONS:
        pv, pg = outputs(*_padded(where, x, y, a, b))
        _close(pv, vals, 1e-9)
        _close(pg, grad, 1e-9)


# ------------------------------------------------------------------------------------------ float32


@pytest.mark.parametrize("chunk", [None, 5], ids=["dense", "online"])
def test_float32_far_padding_stays_finite_and_matches_float64(chunk):
    """Padding far away (1e3 off, cost ~3e6, eps 0.02): no NaN, and the float32 padded solve matches a
    float64 unpadded one to float32 accuracy, relative epsilon included."""
    x, y, a, b = _problem(3)
    with jax.enable_x64(True):
        ref = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05, relative_epsilon="mean"), a, b, tol=1e-6)
        ref_cost, ref_f = float(ref.reg_ot_cost), np.asarray(ref.f)
    f32 = lambda *z: [np.asarray(v, np.float32) for v in z]  # noqa: E731
    xp, yp, ap, bp = f32(*_padded("far", x + 50.0, y + 50.0, a, b))  # and away from the origin
    geom = otf.PointCloud(xp, yp, epsilon=0.05, relative_epsilon="mean", chunk_size=chunk)
    out = otf.sinkhorn(geom, ap, bp, tol=1e-3)
    assert bool(out.converged)
    assert np.all(np.isfinite(np.asarray(out.f))) and np.all(np.isfinite(np.asarray(out.matrix)))
    np.testing.assert_allclose(float(out.reg_ot_cost), ref_cost, rtol=2e-3)
    f = np.asarray(out.f)[:N]
    np.testing.assert_allclose(f - f.mean(), ref_f - ref_f.mean(), atol=2e-2)


# ------------------------------------------------------------------------------------------ otf.pad


def test_pad_round_trips_and_a_ragged_vmap_equals_a_loop(x64):
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=(n, 2)) for n in (7, 12, 4, 9)]
    ys = [rng.normal(size=(n, 2)) + 0.5 for n in (10, 5, 8, 11)]
    px = otf.pad(xs, multiple=4)
    py = otf.pad(ys, size=px.points.shape[1])
    assert px.points.shape == (4, 12, 2) and py.points.shape == (4, 12, 2) and px.sizes == (7, 12, 4, 9)
    for x, back in zip(xs, px.unpad(px.points), strict=True):
        np.testing.assert_array_equal(np.asarray(back), x)
    np.testing.assert_allclose(np.asarray(px.weights).sum(1), 1.0)

    def solve(x, y, a, b):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, relative_epsilon="mean"), a, b, tol=1e-8)
        return out.f, out.reg_ot_cost, out.n_iters

    f, cost, iters = jax.jit(jax.vmap(solve))(px.points, py.points, px.weights, py.weights)
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        fi, ci, ni = solve(x, y, None, None)
        np.testing.assert_allclose(np.asarray(px.unpad(f)[i]), np.asarray(fi), atol=1e-8)
        np.testing.assert_allclose(float(cost[i]), float(ci), rtol=1e-8)
        assert int(iters[i]) == int(ni)


def test_pad_errors_name_the_argument():
    with pytest.raises(ValueError, match="same dimension"):
        otf.pad([np.zeros((2, 2)), np.zeros((3, 3))])
    with pytest.raises(ValueError, match=r"size: expected an int >= the largest cloud \(3 points\)"):
        otf.pad([np.zeros((2, 2)), np.zeros((3, 2))], size=2)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        otf.pad([np.zeros((2, 2)), np.zeros((3, 2))], [np.ones(2), np.ones(2)])
    with pytest.raises(TypeError, match="clouds"):
        otf.pad(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="values"):
        otf.unpad(jnp.zeros((2, 3)), (1, 4))
