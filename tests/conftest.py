import gc
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

# The repository root, so tests can import the benchmark runners (benchmarks/ is not part of the package).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free every compiled program after each test module.

    An XLA:CPU executable keeps a few memory mappings of JIT code alive for as long as JAX's caches hold it.
    A pytest worker that runs half the suite would pass Linux's per-process limit on mappings
    (``vm.max_map_count``, 65530 by default): LLVM then fails with "Cannot allocate memory", or the worker
    crashes. A module's tests still share their compilations; the next module starts from empty caches.
    """
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def x64():
    """Run a test in float64 (the references are float64; float32 tests stay float32)."""
    with jax.enable_x64(True):
        yield


def random_problem(n=30, m=40, d=2, seed=0, uniform=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    y = (rng.normal(size=(m, d)) + 1.0).astype(dtype)
    if uniform:
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.uniform(0.2, 1.0, n), rng.uniform(0.2, 1.0, m)
        a, b = a / a.sum(), b / b.sum()
    return x, y, a.astype(dtype), b.astype(dtype)


def loss_clouds(n, seed=0, shift=0.0):
    """The divergence-as-a-loss data: x ~ N(0, I), y ~ 0.8 N(0, I) + (1, 0, 0.5) in d = 3, both moved by
    ``shift`` (float64 numpy)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = 0.8 * rng.normal(size=(n, 3)) + np.array([1.0, 0.0, 0.5])
    return x + shift, y + shift


def sq_cost(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def run_on_devices(script, devices):
    """Run ``script`` (Python source) in a fresh process with ``devices`` simulated CPU devices and return the
    JSON object its last line of output prints (a multi-device test cannot share this process's devices)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
