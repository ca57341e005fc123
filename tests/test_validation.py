"""Bad input gets a clear error naming the argument; traced bad values come back as converged=False."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ott_fast as otf

X = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32)


@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: otf.PointCloud(X, np.zeros((4, 3), np.float32), epsilon=1.0), ValueError, "dimensions"),
        (lambda: otf.PointCloud(X.astype(int), Y, epsilon=1.0), TypeError, "x: expected a floating"),
        (lambda: otf.PointCloud(X, np.zeros((0, 2), np.float32), epsilon=1.0), ValueError, "y: the point set is empty"),
        (lambda: otf.PointCloud(X[0], Y, epsilon=1.0), ValueError, r"x: expected points of shape \[n, d\]"),
        (lambda: otf.PointCloud(np.where(X > 1, np.nan, X), Y, epsilon=1.0), ValueError, "x: contains NaN"),
        (lambda: otf.PointCloud(X, Y, epsilon=0.0), ValueError, "epsilon"),
        (lambda: otf.PointCloud(X, Y, epsilon=-1.0), ValueError, "epsilon"),
        (lambda: otf.PointCloud(X, Y, epsilon=None), TypeError, "epsilon"),
        (lambda: otf.PointCloud(X, Y, epsilon=1.0, relative_epsilon="max"), ValueError, "relative_epsilon"),
        (lambda: otf.Geometry(np.ones(3, np.float32), epsilon=1.0), ValueError, "cost_matrix"),
        (
            lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), np.ones(4) / 4),
            ValueError,
            r"a: expected weights of shape \(5,\)",
        ),
        (
            lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), None, -np.ones(4)),
            ValueError,
            "b: weights must be non-negative",
        ),
        (
            lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), None, np.array([np.nan, 1, 1, 1])),
            ValueError,
            "b: contains NaN",
        ),
        (lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), None, np.ones(4)), ValueError, "equal total mass"),
        (lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), np.ones(5, int)), TypeError, "a: expected a floating"),
        (lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), tau_a=1.5), ValueError, "tau_a"),
        (lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), max_iters=12, check_every=5), ValueError, "max_iters"),
        (lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), acceleration="anderson!"), ValueError, "acceleration"),
        (lambda: otf.sinkhorn(X), TypeError, "geom"),
        (
            lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), batching="sequential", implicit_diff=False),
            ValueError,
            "batching",
        ),
        (lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), batching="pmap"), ValueError, "batching"),
        (
            lambda: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), schedule=otf.EpsilonSchedule(1.0, 1.5)),
            ValueError,
            "decay",
        ),
    ],
)
def test_bad_input_is_named(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_unbalanced_allows_different_masses():
    out = otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), None, np.full(4, 0.5, np.float32), tau_a=0.9, tau_b=0.9)
    assert bool(out.converged)


def test_shape_errors_raise_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="dimensions"):
        jax.jit(lambda x, y: otf.PointCloud(x, y, epsilon=1.0).epsilon)(X, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="a: expected weights"):
        jax.jit(lambda a: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), a).f)(jnp.ones(3) / 3)


def test_traced_nan_is_reported_not_hidden():
    bad = X.copy()
    bad[2, 0] = np.nan
    out = jax.jit(lambda x: otf.sinkhorn(otf.PointCloud(x, Y, epsilon=1.0)))(bad)
    assert not bool(out.converged)
    assert np.isnan(float(out.reg_ot_cost))
    out = jax.jit(lambda e: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=e)))(jnp.float32(-1.0))
    assert not bool(out.converged)


def test_not_converged_is_flagged():
    out = otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1e-3), tol=1e-9, max_iters=5, check_every=5)
    assert not bool(out.converged) and int(out.n_iters) == 6


@settings(max_examples=15, deadline=None)  # each example compiles its own shapes
@given(
    n=st.integers(1, 12),
    m=st.integers(1, 12),
    d=st.integers(1, 4),
    eps=st.floats(0.05, 5.0),
    seed=st.integers(0, 2**16),
)
def test_random_small_problems_converge_with_correct_marginals(n, m, d, eps, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    a, b = rng.uniform(0.1, 1, n), rng.uniform(0.1, 1, m)
    a, b = a / a.sum(), b / b.sum()
    with jax.enable_x64(True):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps), a, b, tol=1e-8, max_iters=10000)
        p = np.asarray(out.matrix)
    assert bool(out.converged)
    assert np.abs(p.sum(1) - a).sum() + np.abs(p.sum(0) - b).sum() <= 1e-8 * 1.01
    assert np.all(p >= 0)


@settings(max_examples=30, deadline=None)
@given(
    w=st.lists(
        st.one_of(st.floats(-1.0, 1.0, allow_subnormal=False, width=32), st.sampled_from([np.nan, np.inf, 0.0])),
        min_size=5,
        max_size=5,
    )
)
def test_weights_are_validated(w):
    w = np.asarray(w, np.float32)
    geom = otf.PointCloud(X, X, epsilon=1.0)
    ok = np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0
    if ok:
        out = otf.sinkhorn(geom, w, w)
        assert bool(out.converged)
    else:
        with pytest.raises(ValueError, match="a: "):
            otf.sinkhorn(geom, w, w)


def test_closed_over_concrete_arrays_inside_jit():
    """Values checks on concrete arrays must not run jnp ops (those would be traced under jit)."""
    a = np.full(4, 0.25, np.float32)
    out = jax.jit(lambda x: otf.sinkhorn(otf.PointCloud(x, Y, epsilon=1.0), None, a).reg_ot_cost)(X)
    assert np.isfinite(float(out))
