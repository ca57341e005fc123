import os
import sys

import jax
import numpy as np
import pytest

# The repository root, so tests can import the benchmark runners (benchmarks/ is not part of the package).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def sq_cost(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
