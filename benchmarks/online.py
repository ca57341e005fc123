"""Online (low-memory) Sinkhorn: iterations per second and peak memory, ott_fast vs OTT-JAX online.

Each measurement runs in a fresh subprocess, so its peak RSS (``VmHWM``) is its own. Iterations per second
come from timing two fixed iteration budgets of the jitted solve (compilation excluded). OTT-JAX 0.6.0's
online mode fails on JAX 0.10 (``jax.interpreters.batching.is_vmappable`` is gone), so it runs from its own
virtual environment with JAX 0.8.1, the newest it supports, created under ``out/`` on first use.
Both libraries get the same points, the same absolute epsilon (0.01 x mean cost) and the same chunk size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

_COMMON = """
import json, time, sys
import numpy as np
sys.path.insert(0, {root!r})
from benchmarks.problems import gaussian_clouds
n, d, chunk, k1, k2 = {n}, {d}, {chunk}, {k1}, {k2}
x, y = gaussian_clouds(n, d, seed=d)
mean_cost = (x * x).sum(1).mean() + (y * y).sum(1).mean() - 2 * x.mean(0) @ y.mean(0)
eps = float(0.01 * mean_cost)

def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

def timed(fn):
    import jax
    jax.block_until_ready(fn(x, y))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x, y))
    return time.perf_counter() - t0
"""

_OURS = """
import jax, ott_fast as otf
def make(k):
    return jax.jit(lambda x, y: otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps, chunk_size=chunk), tol=1e-30,
                                             max_iters=k, check_every=1).f)
t1, t2 = timed(make(k1)), timed(make(k2))
print(json.dumps({{"seconds_per_iter": (t2 - t1) / (k2 - k1), "peak_rss": peak_rss(), "jax": jax.__version__}}))
"""

_OTT = """
import jax, ott
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn
def make(k):
    solver = sinkhorn.Sinkhorn(threshold=-1.0, min_iterations=k, max_iterations=k, inner_iterations=1)
    return jax.jit(lambda x, y: solver(linear_problem.LinearProblem(
        pointcloud.PointCloud(x, y, epsilon=eps, batch_size=chunk))).f)
t1, t2 = timed(make(k1)), timed(make(k2))
print(json.dumps({{"seconds_per_iter": (t2 - t1) / (k2 - k1), "peak_rss": peak_rss(), "jax": jax.__version__,
                  "ott": ott.__version__}}))
"""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ott_python(out: str) -> str | None:
    """The interpreter of the OTT-JAX 0.6.0 / JAX 0.8.1 environment, created on first use (None if that fails)."""
    venv = os.path.join(out, ".venv-ott-jax-0.6-jax-0.8.1")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {venv} (OTT-JAX 0.6.0 on JAX 0.8.1) ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run(
                [py, "-m", "pip", "install", "-q", "jax==0.8.1", "jaxlib==0.8.1", "ott-jax==0.6.0", "numpy"], check=True
            )
        except (subprocess.CalledProcessError, OSError) as err:
            print(f"could not create the OTT-JAX environment: {err}")
            return None
    return py


def _run(python: str, body: str, n: int, d: int, chunk: int, k1: int, k2: int) -> dict[str, Any]:
    code = textwrap.dedent(_COMMON.format(root=ROOT, n=n, d=d, chunk=chunk, k1=k1, k2=k2)) + textwrap.dedent(
        body.format()
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["iters_per_second"] = 1.0 / res["seconds_per_iter"]
    return res


def online_case(n: int, d: int, ott_py: str | None, with_ott: bool) -> dict[str, Any]:
    import numpy as np

    import ott_fast as otf

    # ott_fast's automatic chunk size (the one PointCloud(chunk_size="auto") resolves to), given to both libraries
    points = np.zeros((n, d), np.float32)
    chunk = otf.PointCloud(points, points, epsilon=1.0, chunk_size="auto").chunk_size
    k1, k2 = (1, 3) if n * d > 10**6 else (2, 6)
    ours = _run(sys.executable, _OURS, n, d, chunk, k1, k2)
    theirs = _run(ott_py, _OTT, n, d, chunk, k1, k2) if (ott_py and with_ott) else {"error": "not run"}
    # docs/design.md ("Speed"): 10-25 iterations/s at n = m = 10,000 on this CPU, scaling with 1 / (n m).
    limit = tuple(r * (10_000 / n) ** 2 for r in (10.0, 25.0))
    return {
        "case": f"online n=m={n}, d={d}",
        "n": n,
        "d": d,
        "chunk": chunk,
        "ott_fast": ours,
        "ott-jax": theirs,
        "physical_limit_iters_per_second": limit,
    }


def print_online(cases: list[dict[str, Any]]) -> None:
    print("\nonline (low-memory) Sinkhorn, float32, eps = 0.01 x mean cost, same chunk size for both")
    print(f"{'case':<26}{'solver':<10}{'it/s':>9}{'peak RSS [GB]':>15}{'speed-up':>10}{'% of limit':>12}")
    for c in cases:
        ours, theirs = c["ott_fast"], c["ott-jax"]
        lo, hi = c["physical_limit_iters_per_second"]
        for name, r in (("ott_fast", ours), ("ott-jax", theirs)):
            if "error" in r:
                print(f"{c['case']:<26}{name:<10}  {r['error'][:60]}")
                continue
            up = ours.get("iters_per_second", 0) / r["iters_per_second"] if name == "ott-jax" else None
            lim = f"{100 * r['iters_per_second'] / hi:.0f}-{100 * r['iters_per_second'] / lo:.0f}"
            print(
                f"{c['case']:<26}{name:<10}{r['iters_per_second']:>9.3f}{r['peak_rss'] / 1e9:>15.2f}"
                f"{'' if up is None else f'{up:.1f}x':>10}{lim:>12}"
            )


_GRAD_50K = """
import jax, ott_fast as otf
xj = jax.numpy.asarray(x)

def cost(x):
    out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps * 5, chunk_size="auto"), tol=1e-2, max_iters=2000)
    return out.reg_ot_cost, (out.n_iters, out.converged)

t0 = time.perf_counter()
(val, (iters, conv)), grad = jax.jit(jax.value_and_grad(cost, has_aux=True))(xj)
jax.block_until_ready(grad)
print(json.dumps({{"seconds": time.perf_counter() - t0, "iterations": int(iters), "converged": bool(conv),
                  "grad_finite": bool(jax.numpy.all(jax.numpy.isfinite(grad))), "peak_rss": peak_rss()}}))
"""


def solve_and_gradient(n: int = 50_000, d: int = 3) -> dict[str, Any]:
    """One online solve (eps = 0.05 x mean cost, tol 1e-2) and its gradient w.r.t. x, timed with compilation."""
    code = textwrap.dedent(_COMMON.format(root=ROOT, n=n, d=d, chunk=0, k1=0, k2=0)) + textwrap.dedent(
        _GRAD_50K.format()
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=3600,
    )
    if proc.returncode != 0:
        return {"case": f"online solve + gradient, n=m={n}, d={d}", "error": proc.stderr.strip()[-300:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["case"] = f"online solve + gradient, n=m={n}, d={d}"
    res["dense_matrix_bytes"] = n * n * 4
    return res
