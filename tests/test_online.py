"""Online (chunked) geometries: same answers as dense ones, and memory that a dense matrix would break."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_problem

import ott_fast as otf
from ott_fast import costs


@pytest.mark.parametrize("chunk", [7, 16, "auto"])  # 7 and 16 do not divide n = 50: padded last chunk
@pytest.mark.parametrize("cost", [costs.SqEuclidean(), costs.PNorm(1.5)])
def test_online_equals_dense(x64, chunk, cost):
    x, y, a, b = random_problem(n=50, m=37, d=3, seed=1)
    kw = dict(tol=1e-11, max_iters=5000)
    dense = otf.sinkhorn(otf.PointCloud(x, y, cost=cost, epsilon=0.2, relative_epsilon="mean"), a, b, **kw)
    online_geom = otf.PointCloud(x, y, cost=cost, epsilon=0.2, relative_epsilon="mean", chunk_size=chunk)
    assert online_geom.online
    online = otf.sinkhorn(online_geom, a, b, **kw)
    np.testing.assert_allclose(online.geom.epsilon, dense.geom.epsilon, rtol=1e-12)  # the weighted mean cost
    np.testing.assert_allclose(online.f, dense.f, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(online.g, dense.g, rtol=1e-9, atol=1e-11)
    assert int(online.n_iters) == int(dense.n_iters)
    for name in ("reg_ot_cost", "transport_cost", "matrix"):
        np.testing.assert_allclose(getattr(online, name), getattr(dense, name), rtol=1e-9, atol=1e-13)
    v = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_allclose(online.apply(v, axis=0), dense.apply(v, axis=0), rtol=1e-9)
    w = np.random.default_rng(1).normal(size=(37,))
    np.testing.assert_allclose(online.apply(w, axis=1), dense.apply(w, axis=1), rtol=1e-9)


def test_online_schedule_from_max_cost_equals_dense(x64):
    x, y, a, b = random_problem(n=40, m=30, seed=4)
    sched = otf.EpsilonSchedule(init=None, decay=0.8)  # starts at the largest cost, found in chunks when online
    outs = [
        otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.05, chunk_size=c), a, b, tol=1e-10, schedule=sched)
        for c in (None, 7)
    ]
    assert all(bool(o.converged) for o in outs)
    assert int(outs[0].n_iters) == int(outs[1].n_iters)
    np.testing.assert_allclose(outs[1].reg_ot_cost, outs[0].reg_ot_cost, rtol=1e-10)


def test_online_std_epsilon_and_auto_switch():
    x, y, _, _ = random_problem(n=30, m=20, seed=2)
    with jax.enable_x64(True):
        dense = otf.PointCloud(x, y, cost=costs.Euclidean(), epsilon=0.1, relative_epsilon="std")
        online = otf.PointCloud(x, y, cost=costs.Euclidean(), epsilon=0.1, relative_epsilon="std", chunk_size=8)
        np.testing.assert_allclose(online.epsilon, dense.epsilon, rtol=1e-10)
    assert not dense.online and online.online
    with pytest.raises(ValueError, match="chunk_size"):
        otf.PointCloud(x, y, epsilon=1.0, chunk_size=0)


def test_online_gradients_equal_dense(x64):
    x, y, a, b = random_problem(n=24, m=18, d=2, seed=3)

    def loss(x, y, chunk):
        out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1, chunk_size=chunk), a, b, tol=1e-12, max_iters=5000)
        return out.transport_cost + out.reg_ot_cost

    for argnum in (0, 1):
        gd = jax.grad(loss, argnum)(jnp.asarray(x), jnp.asarray(y), None)
        go = jax.grad(loss, argnum)(jnp.asarray(x), jnp.asarray(y), 5)
        np.testing.assert_allclose(go, gd, rtol=1e-7, atol=1e-10)
    div = lambda x, chunk: otf.sinkhorn_divergence(x, y, a, b, epsilon=0.2, chunk_size=chunk, tol=1e-12)  # noqa: E731
    np.testing.assert_allclose(jax.grad(div)(jnp.asarray(x), 5), jax.grad(div)(jnp.asarray(x), None), rtol=1e-7)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, time
    import jax, jax.numpy as jnp, numpy as np
    import ott_fast as otf
    n = 20_000
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(n, 3)) * 0.8 + 0.5, jnp.float32)

    def cost(x):
        geom = otf.PointCloud(x, y, epsilon=0.05, relative_epsilon="mean", chunk_size="auto")
        out = otf.sinkhorn(geom, tol=1e-2, max_iters=500)
        return out.reg_ot_cost, out.converged

    def peak_rss():  # VmHWM: this address space's peak (ru_maxrss would keep the parent's across exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    t0 = time.time()
    value, converged = jax.jit(cost)(x)
    solve_rss = peak_rss()
    grad = jax.jit(jax.grad(lambda x: cost(x)[0]))(x)
    grad_rss = peak_rss()
    print(json.dumps({"converged": bool(converged), "finite": bool(jnp.all(jnp.isfinite(grad))),
                      "solve_rss": solve_rss, "grad_rss": grad_rss, "seconds": time.time() - t0}))
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from /proc (Linux)")
def test_online_solve_and_gradient_stay_low_memory():
    """n = m = 20,000: a dense float32 cost matrix alone is 1.6 GB; the whole process must stay under 1 GB."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["converged"] and res["finite"]
    dense_bytes = 20_000 * 20_000 * 4
    assert res["solve_rss"] < 1.0e9 < dense_bytes, res
    assert res["grad_rss"] < 1.0e9, res
