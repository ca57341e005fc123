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
    summary = _summarise(x, _all_finite, lambda v: np.all(np.isfinite(v)))
    if summary is not None and not bool(summary):
        raise ValueError(
            f"{name}: contains NaN or inf values; remove or replace those points (a zero weight marks a point as "
            "absent, but its coordinates must still be finite)."
        )


_all_finite = jax.jit(lambda x: jnp.all(jnp.isfinite(x)))


def _summarise(x: Any, on_device: Any, on_host: Any) -> Any:
    """A concrete array's summary for the eager checks: ``on_device(x)`` (a jitted reduction to a few
    scalars, brought back; the array itself never leaves its device) for a JAX array, ``on_host`` of it for a
    host array; ``None`` where values cannot be checked now (traced, or spread over several processes)."""
    if not is_concrete(x):
        return None
    if isinstance(x, jax.Array):
        if not x.is_fully_addressable:
            return None
        with jax.ensure_compile_time_eval():  # a concrete array met while tracing: still evaluated now
            return jax.device_get(on_device(x))
    return on_host(np.asarray(x))


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
    """Validates weights ``w[size]`` (``None`` means uniform): float, right length, >= 0, finite, positive mass.

    Where ``w`` is concrete the values are checked eagerly (:func:`check_weight_values`: a device array is reduced
    on its device, never copied to the host); traced weights are left to the in-graph check."""
    if w is None:
        return jnp.full((size,), 1.0 / size, dtype=dtype)
    w = as_float_array(name, w)
    if w.shape != (size,):
        raise ValueError(f"{name}: expected weights of shape ({size},) to match the points, got shape {w.shape}.")
    w = w.astype(dtype)
    check_weight_values(name, w)
    return w


def check_weight_values(name: str, w: Any) -> None:
    """Raises a ``ValueError`` naming ``name`` if concrete weights ``w`` have NaN/inf or negative entries, or no
    mass. A device array is reduced on its device to three scalars (finite, minimum, sum): the array itself is
    never copied to the host. Traced arrays, and arrays spread over several processes, are left to the in-graph
    check (:func:`problem_is_valid`)."""

    def host(wn: np.ndarray) -> tuple[float, float, float]:
        wn = wn.astype(np.float64)
        return float(np.all(np.isfinite(wn))), float(wn.min()) if wn.size else 0.0, float(wn.sum())

    summary = _summarise(w, _weight_summary, host)
    if summary is None:
        return
    finite, low, total = (float(v) for v in summary)
    if not finite:
        raise ValueError(f"{name}: contains NaN or inf weights.")
    if low < 0:
        raise ValueError(f"{name}: weights must be non-negative (min is {low}).")
    if not total > 0:
        raise ValueError(f"{name}: weights sum to zero.")


@jax.jit
def _weight_summary(w: Array) -> Array:
    """``[3]``: all finite (0 or 1), minimum, sum; computed where ``w`` lives."""
    return jnp.stack([jnp.all(jnp.isfinite(w)).astype(w.dtype), jnp.min(w), jnp.sum(w)])


def check_static_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as a Python ``int`` for a static option (a shape, an iteration cap, a chunk size).

    The one rule of every entry point: a value of the wrong type (a float, a bool, an array, ``None``) is a
    ``TypeError``; an int below ``minimum`` is a ``ValueError``. Python and NumPy integers are accepted.

    Example:
        >>> check_static_int("max_iters", 10)
        10
        >>> check_static_int("max_iters", 10.0)
        Traceback (most recent call last):
        ...
        TypeError: max_iters: must be a Python int (it is static: it sets a shape or a loop bound), got float 10.0.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name}: must be a Python int (it is static: it sets a shape or a loop bound), "
            f"got {type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {int(value)}.")
    return int(value)


def check_index_range(name: str, idx: Any, size: int) -> None:
    """Raises a ``ValueError`` naming ``name`` if concrete integer indices ``idx`` fall outside ``[0, size)``.

    A device array is reduced on its device to its minimum and maximum; traced indices are not checked."""
    if not is_concrete(idx):
        return
    if isinstance(idx, jax.Array):
        if not idx.is_fully_addressable or idx.size == 0:
            return
        with jax.ensure_compile_time_eval():
            low, high = (int(v) for v in jax.device_get(_index_range(idx)))
    else:
        arr = np.asarray(idx)
        if arr.size == 0:
            return
        low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= size:
        raise ValueError(f"{name}: indices must lie in [0, {size - 1}], got [{low}, {high}].")


@jax.jit
def _index_range(idx: Array) -> Array:
    """``[2]``: minimum and maximum of ``idx``, computed where it lives."""
    return jnp.stack([jnp.min(idx), jnp.max(idx)])


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
    """Raises, where ``a`` and ``b`` are concrete, if a balanced problem's masses differ (each is summed where it
    lives: a device array is not copied to the host)."""
    if is_concrete(a, b):
        sa, sb = _concrete_sum(a), _concrete_sum(b)
        if abs(sa - sb) > 1e-5 * max(sa, sb) + 10 * float(jnp.finfo(dtype).eps):
            raise ValueError(
                f"a, b: a balanced problem needs equal total mass, got sum(a)={sa} and sum(b)={sb}; "
                "normalise them, or pass tau_a/tau_b < 1 for an unbalanced problem."
            )


def _concrete_sum(w: Any) -> float:
    if isinstance(w, jax.Array):
        with jax.ensure_compile_time_eval():
            return float(jax.device_get(jnp.sum(w)))
    return float(np.sum(np.asarray(w)))
