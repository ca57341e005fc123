"""Couplings: draws from a solved plan against POT's plan (chi-square), rounding against Algorithm 2 written
out in NumPy, matchings against scipy's linear_sum_assignment, memory of the compiled online sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from conftest import random_problem, sq_cost
from scipy.optimize import linear_sum_assignment
from scipy.stats import chisquare

import ott_fast as otf
from ott_fast.entropic import dual

EPS = 0.5


def _pot_plan(x, y, a, b):
    return ot.sinkhorn(a, b, sq_cost(x, y), EPS, method="sinkhorn_log", stopThr=1e-10, numItermax=100_000)


@pytest.fixture(scope="module")
def small():
    """A small weighted problem (n = 6, m = 5) solved by us in float32, dense and online, and POT's plan."""
    x, y, a, b = random_problem(6, 5, d=2, seed=3, dtype=np.float32)
    dense = otf.sinkhorn(otf.PointCloud(x, y, epsilon=EPS), a, b, tol=1e-5)
    online = otf.sinkhorn(otf.PointCloud(x, y, epsilon=EPS, chunk_size=4), a, b, tol=1e-5)
    ref = _pot_plan(*(np.asarray(v, np.float64) for v in (x, y, a, b)))
    assert dense.converged and online.converged
    return dense, online, ref


def _chi2_p(counts, probs):
    probs = probs / probs.sum()
    return chisquare(counts, counts.sum() * probs).pvalue


# one compiled program per problem structure, shared by the tests (CI has two cores: compile few programs)
DRAW = jax.jit(jax.vmap(otf.sample_conditional, in_axes=(0, None)))
KEYS = jax.random.split(jax.random.PRNGKey(0), 3000)


def test_conditional_samples_follow_the_plan_rows_dense_and_online(small):
    dense, online, ref = small
    draw_d, draw_o = DRAW(KEYS, dense), DRAW(KEYS, online)
    cols_d, cols_o = draw_d.cols, draw_o.cols  # [3000, 6]
    assert cols_d.shape == (3000, 6) and bool(draw_d.valid.all())
    # the same key gives the same noise: dense and online agree draw by draw up to rounding near ties
    assert float((cols_d == cols_o).mean()) > 0.99
    for cols in (np.asarray(cols_d), np.asarray(cols_o)):
        for i in range(6):
            counts = np.bincount(cols[:, i], minlength=5)
            assert _chi2_p(counts, ref[i]) > 1e-4, (i, counts, ref[i])


def test_joint_samples_follow_the_plan_with_and_without_replacement(small):
    dense, online, ref = small
    for out in (dense, online):
        pairs = otf.sample_joint(jax.random.PRNGKey(1), out, 20_000)
        counts = np.bincount(np.asarray(pairs.rows) * 5 + np.asarray(pairs.cols), minlength=30)
        assert _chi2_p(counts, ref.reshape(-1)) > 1e-4
    distinct = otf.sample_joint(jax.random.PRNGKey(2), dense, 6, replace=False)
    assert sorted(distinct.rows.tolist()) == list(range(6))
    # without replacement, one row: its law is the row marginal
    rows = jax.vmap(lambda k: otf.sample_joint(k, dense, 1, replace=False).rows[0])(
        jax.random.split(jax.random.PRNGKey(3), 4000)
    )
    assert _chi2_p(np.bincount(np.asarray(rows), minlength=6), ref.sum(1)) > 1e-4


def test_zero_weights_are_never_drawn():
    x, y, a, b = random_problem(6, 5, d=2, seed=1, dtype=np.float32)  # the shapes of `small`: no new compile
    a[[1, 4]], b[[0, 3]] = 0.0, 0.0
    a, b = a / a.sum(), b / b.sum()
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=EPS), a, b, tol=1e-5)
    pairs = otf.sample_joint(jax.random.PRNGKey(0), out, 20_000)
    assert not set(pairs.rows.tolist()) & {1, 4} and not set(pairs.cols.tolist()) & {0, 3}
    assert not set(np.asarray(DRAW(KEYS, out).cols).ravel().tolist()) & {0, 3}


def test_compiled_online_sampler_holds_no_n_by_m_buffer():
    n = m = 2048
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 2))
    out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.1, chunk_size=64), tol=0.0, max_iters=5)
    key = jax.random.PRNGKey(1)
    for fn in (otf.sample_conditional, lambda k, o: otf.sample_joint(k, o, n), lambda k, o: otf.greedy_matching(o)):
        compiled = jax.jit(fn).lower(key, out).compile()
        temp = compiled.memory_analysis().temp_size_in_bytes
        # a chunk is 64 x 2048 entries, 1/32 of the plan; its log-plan block and weights take a few of them
        assert temp < n * m * 4 / 4, temp
    assert bool(otf.sample_conditional(key, out).valid)
    # a stored matrix is swept in row chunks too: the temporaries are a few 4 MiB chunks, not a few n x m
    big = jax.random.uniform(key, (4 * n, m))  # 128 MiB: the temporaries stay ~17 MB whatever n
    dense = otf.sinkhorn(otf.Geometry(big, epsilon=0.1), tol=0.0, max_iters=5)
    temp = jax.jit(otf.sample_conditional).lower(key, dense).compile().memory_analysis().temp_size_in_bytes
    assert temp < big.size * 4 / 3, temp


def _round_numpy(p, a, b):
    """Altschuler, Weed & Rigollet (2017), Algorithm 2, in float64."""
    x = p * np.minimum(a / p.sum(1), 1.0)[:, None]
    y = x * np.minimum(b / x.sum(0), 1.0)[None, :]
    ea, eb = a - y.sum(1), b - y.sum(0)
    return y + np.outer(ea, eb) / np.abs(eb).sum()


def test_rounding_is_exactly_feasible_within_its_bound_and_matches_algorithm_2():
    x, y, a, b = random_problem(30, 20, d=3, seed=5, dtype=np.float32)
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05), a, b, tol=5e-2)
    p = np.asarray(out.matrix)
    r = otf.round_plan(p, a, b)
    got = np.asarray(r.matrix, np.float64)
    assert np.abs(got.sum(1) - a).max() < 1e-7 and np.abs(got.sum(0) - b).max() < 1e-7
    assert got.min() >= 0 and float(r.change) <= float(r.bound) > 0
    ref = _round_numpy(p.astype(np.float64), a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, ref, atol=1e-7)
    c = sq_cost(x, y)
    assert abs((got * c).sum() - (p * c).sum()) <= c.max() * float(r.bound)
    # the same rounding held as potentials and a rank-one term (what an online solve can afford)
    held = otf.round_output(out)
    np.testing.assert_allclose(np.asarray(held.matrix()), ref, atol=1e-6)
    assert float(held.cost) == pytest.approx((ref * c).sum(), rel=1e-4)
    assert float(held.bound) == pytest.approx(float(r.bound), rel=1e-3)
    batch = jax.vmap(otf.round_plan)(jnp.stack([p, 2 * p]), jnp.stack([a, a]), jnp.stack([b, b]))
    np.testing.assert_allclose(np.asarray(batch.matrix[1]).sum(0), b, atol=1e-6)
    with pytest.raises(ValueError, match="plan"):
        otf.round_plan(np.full((2, 2), np.nan))


def test_exact_matching_equals_scipy_on_random_problems_and_batches():
    rng = np.random.default_rng(0)
    costs = rng.random((4, 24, 24)).astype(np.float32)
    batch = jax.jit(jax.vmap(otf.exact_matching))(jnp.asarray(costs))
    for c, perm, value in zip(costs, batch.perm, batch.cost):
        r, cols = linear_sum_assignment(c)
        assert sorted(perm.tolist()) == list(range(24))
        assert c[np.arange(24), np.asarray(perm)].sum() == pytest.approx(c[r, cols].sum(), rel=1e-6)
        assert float(value) == pytest.approx(c[r, cols].mean(), rel=1e-5)


def test_near_exact_matching_is_a_permutation_within_two_percent_of_scipy():
    x, y, _, _ = random_problem(64, 64, d=2, seed=7, dtype=np.float32)
    c = sq_cost(x, y)
    exact = c[linear_sum_assignment(c)].mean()
    for chunk in (None, 16):
        m = otf.sinkhorn_matching(x, y, epsilon=1e-3, chunk_size=chunk, max_iters=3000)
        assert sorted(m.perm.tolist()) == list(range(64))
        assert float(m.cost) == pytest.approx(c[np.arange(64), np.asarray(m.perm)].mean(), rel=1e-4)
        assert exact <= float(m.cost) <= 1.02 * exact
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=1e-3, relative_epsilon="mean"))
    assert otf.argmax_coupling(out).cols.shape == (64,)


def test_flow_matching_pairs_in_a_jitted_step():
    x0, x1, _, _ = random_problem(32, 32, d=2, seed=2, dtype=np.float32)
    step = jax.jit(otf.flow_matching_pairs, static_argnames=("method", "chunk_size"))
    key = jax.random.PRNGKey(0)
    c = sq_cost(x0, x1)
    exact = c[linear_sum_assignment(c)].mean()
    ex = step(key, x0, x1, method="exact")
    assert float(ex.pair_cost) == pytest.approx(exact, rel=1e-5) and float(ex.entropy_ratio) == 0.0
    np.testing.assert_allclose(ex.x1, x1[np.asarray(ex.cols)])
    ind = step(key, x0, x1, method="independent")
    assert sorted(ind.cols.tolist()) == list(range(32)) and float(ind.plan_cost) == pytest.approx(c.mean(), rel=1e-4)
    sk = step(key, x0, x1, method="sinkhorn", chunk_size=8)
    assert bool(sk.valid) and bool(sk.converged) and 0.0 < float(sk.entropy_ratio) < 1.0
    assert exact <= float(sk.plan_cost) < float(ind.plan_cost)
    # the plan's entropy against POT's plan at the same epsilon
    ref = ot.sinkhorn(np.full(32, 1 / 32), np.full(32, 1 / 32), c, 0.05 * c.mean(), method="sinkhorn_log")
    h = -(ref * np.log(ref)).sum()
    assert float(sk.entropy_ratio) == pytest.approx((h - np.log(32)) / np.log(32), abs=2e-2)


def test_plan_cost_and_entropy_from_one_pass_equal_the_materialised_plans():
    # float32, clouds far from the origin, a small epsilon, zero weights; dense and online: the entropy taken
    # from the exponent the pass forms equals -sum q log q of the materialised plan (float64)
    x, y, a, b = random_problem(40, 30, d=3, seed=5, dtype=np.float32)
    x, y, a = x + 50.0, y + 50.0, np.where(np.arange(40) < 4, 0.0, a).astype(np.float32)
    for chunk in (None, 8):
        geom = otf.PointCloud(x, y, epsilon=0.01, relative_epsilon="mean", chunk_size=chunk)
        out = otf.sinkhorn(geom, a=a / a.sum(), b=b, tol=1e-4)
        p = np.asarray(out.matrix, np.float64)
        q = p[p > 0] / p.sum()
        cost, h = dual.plan_cost_and_entropy(out.f, out.g, out.geom, out.a, out.b)
        assert bool(out.converged) and float(h) == pytest.approx(-(q * np.log(q)).sum(), rel=1e-5)
        assert float(cost) == pytest.approx((p * sq_cost(x, y)).sum(), rel=1e-5)
        assert float(otf.plan_entropy(out)) == pytest.approx(float(h), rel=1e-6)


def test_bad_inputs_raise_eagerly_and_flag_under_jit():
    x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="n == m"):
        otf.exact_matching(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="cost"):
        otf.exact_matching(np.full((3, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="x0, x1"):
        otf.flow_matching_pairs(jax.random.PRNGKey(0), x, x[:4], method="exact")
    with pytest.raises(ValueError, match="method"):
        otf.flow_matching_pairs(jax.random.PRNGKey(0), x, x, method="emd")
    with pytest.raises(ValueError, match="x0"):
        otf.flow_matching_pairs(jax.random.PRNGKey(0), jnp.asarray(x).at[0, 0].set(jnp.nan), x)
    with pytest.raises(ValueError, match="num"):
        otf.sample_joint(jax.random.PRNGKey(0), otf.sinkhorn(otf.PointCloud(x, x, epsilon=1.0)), 9, replace=False)
    # a failed solve (NaN weights, traced): eagerly a ValueError naming `out`, under jit indices -1 and a flag
    bad_a = jnp.full(5, jnp.nan)
    failed = jax.jit(otf.sinkhorn)(otf.PointCloud(x, x, epsilon=1.0), bad_a, None)
    with pytest.raises(ValueError, match="out"):
        otf.sample_conditional(jax.random.PRNGKey(0), failed)
    pairs = jax.jit(otf.sample_conditional)(jax.random.PRNGKey(0), failed)
    assert not bool(pairs.valid) and set(pairs.cols.tolist()) == {-1}
    m = jax.jit(otf.exact_matching)(jnp.full((3, 3), jnp.nan))
    assert not bool(m.valid) and set(m.perm.tolist()) == {-1} and np.isnan(float(m.cost))
    fp = jax.jit(otf.flow_matching_pairs, static_argnames="method")(
        jax.random.PRNGKey(0), jnp.asarray(x).at[0, 0].set(jnp.nan), x, method="sinkhorn"
    )
    assert not bool(fp.valid) and np.isnan(float(fp.pair_cost))


def test_a_batch_of_problems_under_vmap_and_sns_outputs():
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(3, 12, 2)).astype(np.float32)
    ys = (rng.normal(size=(3, 12, 2)) + 1.0).astype(np.float32)
    solve = jax.vmap(lambda x, y: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.01, relative_epsilon="mean")))
    outs = solve(xs, ys)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    batched = jax.jit(jax.vmap(lambda k, o: (otf.sample_conditional(k, o), otf.greedy_matching(o))))(keys, outs)
    for i in range(3):
        c = sq_cost(xs[i], ys[i])
        one = otf.sinkhorn(otf.PointCloud(xs[i], ys[i], epsilon=0.01, relative_epsilon="mean"))
        assert otf.sample_conditional(keys[i], one).cols.tolist() == batched[0].cols[i].tolist()
        perm = np.asarray(batched[1].perm[i])
        assert sorted(perm.tolist()) == list(range(12))
        assert c[np.arange(12), perm].mean() <= 1.05 * c[linear_sum_assignment(c)].mean()
    # an SNS output is sampled the same way: same problem, same key, (nearly) the same draws
    geom = otf.Geometry(jnp.asarray(sq_cost(xs[0], ys[0]), jnp.float32), epsilon=0.5)
    by_sns = otf.sample_conditional(keys[0], otf.sns(geom, tol=1e-5))
    by_sinkhorn = otf.sample_conditional(keys[0], otf.sinkhorn(geom, tol=1e-5))
    assert float((by_sns.cols == by_sinkhorn.cols).mean()) >= 11 / 12
