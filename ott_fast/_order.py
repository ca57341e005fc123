"""Ordering work that XLA would otherwise run side by side or hoist: :func:`after`.

Example:
    >>> import jax.numpy as jnp
    >>> after(jnp.array([1.0, 2.0]), jnp.array(3.0)).tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["after"]


def after(value: Any, done: Array) -> Any:
    """``value`` (a pytree of arrays, unchanged), computed only once the scalar ``done`` is: for solves that
    are independent but should run one after the other.

    XLA:CPU runs independent parts of a program concurrently, and every sweep already splits its rows over
    the cores, so independent solves side by side contend for the cores and their caches: the three solves
    of a divergence (n = m = 1000, 2 cores) took about 1.5 times as long side by side as one after the other.
    The runtime orders work by the buffers it reads, so the order is a data dependency (an optimisation
    barrier's control dependency is not kept): ``value + 0 * done``, exactly ``value`` (``done`` is taken
    as 0 where it is not finite, and no derivative flows along the order). The same dependency keeps a value
    that is invariant in a loop from being hoisted out of it (``GibbsKernel`` reads ``1 / eps`` through it).

    Example:
        >>> import jax.numpy as jnp
        >>> after(jnp.array([1.0, -2.0]), jnp.array(jnp.nan)).tolist()
        [1.0, -2.0]
    """
    done = jax.lax.stop_gradient(done)
    zero = 0 * jnp.where(jnp.isfinite(done), done, 0)
    return jax.tree_util.tree_map(lambda v: v + zero.astype(v.dtype), value)
