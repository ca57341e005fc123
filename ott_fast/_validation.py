"""Input checks shared by the public entry points.

Shapes and dtypes are checked always (at trace time under ``jit``); values (finiteness, signs, masses) only
where they are concrete, i.e. outside ``jit``/``vmap``. Traced bad values surface as ``converged=False``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def is_concrete(*xs: Any) -> bool:
    """True when none of ``xs`` is a tracer, so their values can be inspected eagerly."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def as_float_array(name: str, x: Any) -> Array:
    """``x`` as a floating JAX array; integer or boolean input is a ``TypeError`` naming ``name``."""
    if x is None:
        raise TypeError(f"{name}: expected an array, got None.")
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name}: expected a floating-point array, got dtype {dtype}; "
            f"convert it, e.g. `{name}.astype(jnp.float32)`."
        )
    return jnp.asarray(x)


def check_points(name: str, x: Any) -> Array:
    """Validates a point cloud ``x[n, d]``: float, 2-D, non-empty, finite (when concrete)."""
    x = as_float_array(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected points of shape [n, d], got shape {x.shape}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: the point set is empty (shape {x.shape}).")
    if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):  # NumPy: jnp ops would trace under jit
        raise ValueError(f"{name}: contains NaN or inf values.")
    return x


def check_weights(name: str, w: Any, size: int, dtype: Any) -> Array:
    """Validates weights ``w[size]`` (``None`` means uniform): float, right length, >= 0, finite, positive mass."""
    if w is None:
        return jnp.full((size,), 1.0 / size, dtype=dtype)
    w = as_float_array(name, w)
    if w.shape != (size,):
        raise ValueError(f"{name}: expected weights of shape ({size},) to match the points, got shape {w.shape}.")
    w = w.astype(dtype)
    if is_concrete(w):  # NumPy on the concrete values: jnp ops would trace under jit
        wn = np.asarray(w)
        if not np.all(np.isfinite(wn)):
            raise ValueError(f"{name}: contains NaN or inf weights.")
        if np.any(wn < 0):
            raise ValueError(f"{name}: weights must be non-negative (min is {float(wn.min())}).")
        if not float(wn.sum()) > 0:
            raise ValueError(f"{name}: weights sum to zero.")
    return w


def check_positive(name: str, value: Any) -> None:
    """Raises if a concrete scalar ``value`` is not a finite number > 0."""
    if is_concrete(value):
        v = float(np.asarray(value))
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name}: must be a finite number > 0, got {v}.")


def check_tau(name: str, tau: Any) -> None:
    """Raises if a concrete ``tau`` is outside ``(0, 1]``."""
    if is_concrete(tau):
        v = float(np.asarray(tau))
        if not (0.0 < v <= 1.0):
            raise ValueError(f"{name}: must lie in (0, 1] (1 is balanced), got {v}.")
