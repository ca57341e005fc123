"""Benchmark problems, generated in code (nothing is downloaded)."""

from __future__ import annotations

import numpy as np


def gaussian_clouds(n: int, d: int, seed: int = 0, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian clouds ``x[n, d] ~ N(0, I)`` and ``y[n, d] ~ N(0.5, 0.64 I)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d)) * 0.8 + 0.5
    return x.astype(dtype), y.astype(dtype)


def sq_euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean cost matrix in float64 (the reference every library's plan is scored on)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0.0)


def l1_marginal_error(plan: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``|P 1 - a|_1 + |P^T 1 - b|_1`` in float64: the one convergence error all libraries are scored with."""
    p = np.asarray(plan, dtype=np.float64)
    return float(np.abs(p.sum(1) - a).sum() + np.abs(p.sum(0) - b).sum())
