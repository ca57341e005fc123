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


# --------------------------------------------------------------------- static ints: one rule everywhere


@pytest.mark.parametrize(
    "call",
    [
        lambda v: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), check_every=v),
        lambda v: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), max_iters=v, check_every=1),
        lambda v: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), acceleration="anderson", anderson_memory=v),
        lambda v: otf.sinkhorn(otf.PointCloud(X, Y, epsilon=1.0), cg_maxiter=v),
        lambda v: otf.sns(otf.Geometry(np.ones((4, 4)), epsilon=0.1), max_newton_iters=v),
        lambda v: otf.sns(otf.Geometry(np.ones((4, 4)), epsilon=0.1), newton_cg_maxiter=v),
        lambda v: otf.sliced_wasserstein(jax.random.PRNGKey(0), X, X, n_projections=v),
        lambda v: otf.energy_sliced_wasserstein(jax.random.PRNGKey(0), X, X, n_projections=v),
        lambda v: otf.max_sliced_wasserstein(jax.random.PRNGKey(0), X, X, n_steps=v),
        lambda v: otf.sample_vmf(jax.random.PRNGKey(0), jnp.ones(3), 1.0, v),
        lambda v: otf.meshes.chamfer_distance(X, Y, chunk_size=v),
        lambda v: otf.fit(jax.random.PRNGKey(0), lambda p, x: x, {}, None, None, None, n_steps=v),
    ],
)
def test_static_ints_type_error_for_a_wrong_type_value_error_out_of_range(call):
    """A float or a bool where a static int is expected is a TypeError; 0 is a ValueError (one rule, shared by
    _validation.check_static_int)."""
    for bad in (2.0, True, np.float32(3)):
        with pytest.raises(TypeError, match="must be a Python int"):
            call(bad)
    with pytest.raises(ValueError, match="must be >= 1"):
        call(0)


# -------------------------------------------------------------- device arrays are not copied to the host


class _NoHostCopy:
    """Stands for a module's ``np``: ``np.asarray``/``np.array`` of a JAX array with elements is a host copy."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if name not in ("asarray", "array"):
            return attr

        def guarded(x, *args, **kwargs):
            if isinstance(x, jax.Array) and x.ndim > 0:
                raise AssertionError(f"np.{name} copied a device array of shape {x.shape} to the host")
            return attr(x, *args, **kwargs)

        return guarded


@pytest.fixture
def no_host_copy(monkeypatch):
    import ott_fast._validation as validation
    import ott_fast.meshes as meshes
    import ott_fast.sliced.wasserstein as wasserstein

    for module in (validation, meshes, wasserstein):
        monkeypatch.setattr(module, "np", _NoHostCopy(np))


def test_device_arrays_are_validated_on_their_device(no_host_copy):
    from ott_fast import _validation as val

    w = jnp.asarray([0.5, 0.25, 0.25])
    assert val.check_weights("a", w, 3, jnp.float32).shape == (3,)
    val.check_mass(w, w, jnp.float32)
    for bad, match in ((w.at[0].set(jnp.nan), "NaN"), (w.at[0].set(-1.0), "non-negative"), (0 * w, "sum to zero")):
        with pytest.raises(ValueError, match=match):
            val.check_weights("a", bad, 3, jnp.float32)
    key, x, y = jax.random.PRNGKey(0), jnp.asarray(X), jnp.asarray(Y)
    a, b = jnp.full(5, 0.2), jnp.full(4, 0.25)
    assert np.isfinite(float(otf.wasserstein_1d(x[:, 0], y[:, 0], a, b)))
    assert np.isfinite(float(otf.sliced_wasserstein(key, x, y, a, b, n_projections=4)))
    assert np.isfinite(float(otf.meshes.chamfer_distance(x, y, a, b)))
    with pytest.raises(ValueError, match="u: contains NaN"):
        otf.wasserstein_1d(x[:, 0].at[1].set(jnp.inf), y[:, 0])
    with pytest.raises(ValueError, match="b: weights must be non-negative"):
        otf.meshes.chamfer_distance(x, y, a, b.at[0].set(-1.0))
    v = jnp.asarray([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match=r"faces: indices must lie in \[0, 2\]"):
        otf.meshes.varifold(v, jnp.asarray([[0, 1, 3]]))


def test_describe_a_batched_status():
    """One string for one code, a list of strings for a batch (describe failed on an array of codes)."""
    geom = otf.Geometry(np.ones((2, 2), np.float32), epsilon=1.0)
    one = otf.sinkhorn(geom)
    assert otf.describe(one.status) == otf.describe(int(one.status)) == otf.describe(otf.Status.CONVERGED)
    a = jnp.asarray([[0.5, 0.5], [0.5, 0.5], [0.9, 0.9]])  # the third problem has unequal masses (traced)
    batch = jax.vmap(lambda a: otf.sinkhorn(geom, a, jnp.full(2, 0.5)).status)(a)
    words = otf.describe(batch)
    assert words == [otf.describe(otf.Status.CONVERGED)] * 2 + [otf.describe(otf.Status.INVALID_INPUT)]
    assert otf.describe(np.reshape(batch[:2], (1, 2))) == [words[:2]]
