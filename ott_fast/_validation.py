"""The one validation routine every entry point uses.

Shapes and dtypes are checked always (at trace time under ``jit``). Values are checked eagerly wherever they
are concrete (outside ``jit``): host (NumPy, list) and device points and cost matrices (a device array is
reduced on its device to one flag: no copy of the array), weights and scalars, with a ``ValueError`` naming
the argument. Under ``jit`` values are checked in-graph by :func:`problem_is_valid`, whose flag the solvers
turn into ``converged=False``, ``status=INVALID_INPUT`` and NaN potentials (hence NaN costs).
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


def check_finite(name: str, x: Any) -> None:
    """Raises a ``ValueError`` naming ``name`` if a concrete array ``x`` (host or device) has NaN or inf.

    A device array is reduced to one flag on its device (one scalar comes back, not the array); an array
    spread over several processes is left to the in-graph check (:func:`problem_is_valid`), as is every
    traced one."""
    if not is_concrete(x):
        return
    if isinstance(x, jax.Array):
        if not x.is_fully_addressable:
            return
        with jax.ensure_compile_time_eval():  # a concrete array met while tracing: still evaluated now
            finite = bool(_all_finite(x))
    else:
        finite = bool(np.all(np.isfinite(np.asarray(x))))
    if not finite:
        raise ValueError(
            f"{name}: contains NaN or inf values; remove or replace those points (a zero weight marks a point as "
            "absent, but its coordinates must still be finite)."
        )


_all_finite = jax.jit(lambda x: jnp.all(jnp.isfinite(x)))


def check_points(name: str, x: Any) -> Array:
    """Validates a point cloud ``x[n, d]``: float, 2-D, non-empty, finite (when concrete)."""
    raw = x
    x = as_float_array(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected points of shape [n, d], got shape {x.shape}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: the point set is empty (shape {x.shape}).")
    check_finite(name, raw)
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


def check_nonnegative(name: str, value: Any) -> None:
    """Raises if a concrete scalar ``value`` is not a finite number >= 0."""
    if is_concrete(value):
        v = float(np.asarray(value))
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: must be a finite number >= 0, got {v}.")


def check_tau(name: str, tau: Any) -> None:
    """Raises if a concrete ``tau`` is outside ``(0, 1]``."""
    if is_concrete(tau):
        v = float(np.asarray(tau))
        if not (0.0 < v <= 1.0):
            raise ValueError(f"{name}: must lie in (0, 1] (1 is balanced), got {v}.")


def problem_is_valid(kernel: Any, a: Array, b: Array, balanced: Array) -> Array:
    """``[]`` bool, in-graph: finite costs, finite epsilon > 0, finite non-negative weights with positive
    mass, and equal masses where ``balanced``. The traced counterpart of the eager checks above: a solve
    whose input fails it returns NaN potentials and says so in its status."""
    eps = kernel.epsilon
    ok = kernel.finite() & jnp.isfinite(eps) & (eps > 0)
    for w in (a, b):
        ok &= jnp.all(jnp.isfinite(w)) & jnp.all(w >= 0) & (jnp.sum(w) > 0)
    sa, sb = jnp.sum(a), jnp.sum(b)
    same = jnp.abs(sa - sb) <= mass_tolerance(sa, sb, a.dtype)
    return ok & (same | ~balanced)


def mass_tolerance(sa: Any, sb: Any, dtype: Any) -> Any:
    """How far two masses may differ and still count as equal (balanced problems): relative ``1e-5``."""
    return 1e-5 * jnp.maximum(sa, sb) + 10 * float(jnp.finfo(dtype).eps)


def check_mass(a: Any, b: Any, dtype: Any) -> None:
    """Raises, where ``a`` and ``b`` are concrete, if a balanced problem's masses differ."""
    if is_concrete(a, b):
        sa, sb = float(np.asarray(a).sum()), float(np.asarray(b).sum())
        if abs(sa - sb) > 1e-5 * max(sa, sb) + 10 * float(jnp.finfo(dtype).eps):
            raise ValueError(
                f"a, b: a balanced problem needs equal total mass, got sum(a)={sa} and sum(b)={sb}; "
                "normalise them, or pass tau_a/tau_b < 1 for an unbalanced problem."
            )
