"""Rounding an approximate plan onto the transport polytope ``U(a, b)`` (Altschuler, Weed & Rigollet 2017,
Algorithm 2).

Given ``P >= 0`` with marginals near ``a``, ``b`` (a Sinkhorn plan stopped at a tolerance):

1. ``X = diag(min(a / r(P), 1)) P`` (rows scaled down to at most ``a``);
2. ``Y = X diag(min(b / c(X), 1))`` (columns scaled down to at most ``b``);
3. ``err_a = a - r(Y)``, ``err_b = b - c(Y)`` (both ``>= 0``, of equal mass);
4. ``round(P) = Y + err_a err_b^T / |err_b|_1``.

Its marginals are ``a`` and ``b`` exactly (up to float rounding), and
``|round(P) - P|_1 <= 2 (|r(P) - a|_1 + |c(P) - b|_1)``, so its cost moves by at most
``max C`` times that bound. The dense version here costs ``O(n m)`` time and memory.

**Online.** The rounded plan of a solve never needs ``n x m`` memory either: steps 1-2 are diagonal scalings,
i.e. new potentials ``f' = f + eps log min(a / r, 1)`` and ``g' = g + eps log min(b / c(X), 1)`` (one
row-sum pass and one column-sum pass of the kernel), and step 4 is a rank-one term held as two vectors. Each
use of it (a product, a cost, a draw) is then one more pass over the kernel, ``O(n m)`` time and
``O((n + m) d + k m)`` memory; this module only implements the dense matrix form.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ott_fast import _validation as val

Array = jax.Array

__all__ = ["RoundedPlan", "round_plan"]


class RoundedPlan(NamedTuple):
    """Result of :func:`round_plan`.

    Attributes:
        matrix: ``[n, m]`` the rounded plan, in ``U(a, b)``.
        change: ``[]`` ``|round(P) - P|_1``, measured.
        bound: ``[]`` ``2 (|r(P) - a|_1 + |c(P) - b|_1)``, the guarantee on ``change`` (Altschuler et al.,
            Lemma 7): ``|<round(P) - P, C>| <= max|C| * bound``.

    Example:
        >>> import jax.numpy as jnp
        >>> r = round_plan(jnp.full((2, 2), 0.3), jnp.array([0.5, 0.5]), jnp.array([0.5, 0.5]))
        >>> r.matrix.sum(1).tolist(), bool(r.change <= r.bound)
        ([0.5, 0.5], True)
    """

    matrix: Array
    change: Array
    bound: Array


def _ratio(target: Array, have: Array) -> Array:
    """``min(target / have, 1)``, ``1`` where ``have = 0`` (nothing to scale) and ``0`` where ``target = 0``."""
    pos = have > 0
    return jnp.where(pos, jnp.minimum(target / jnp.where(pos, have, 1.0), 1.0), 1.0)


def round_plan(plan: Any, a: Any = None, b: Any = None) -> RoundedPlan:
    """Rounds ``plan[n, m]`` onto ``U(a, b)`` (Altschuler, Weed & Rigollet 2017, Algorithm 2).

    Args:
        plan: ``[n, m]`` non-negative matrix (for a solve: ``out.matrix``).
        a: ``[n]`` row marginal (``None``: uniform ``1 / n``); a zero weight means an absent row (its row of
            the result is zero).
        b: ``[m]`` column marginal (``None``: uniform), the same total mass as ``a``.

    Returns:
        :class:`RoundedPlan`: the rounded matrix, the measured ``L1`` change and its bound. Eagerly, NaN or
        negative entries, or bad weights, are a ``ValueError``; under ``jit`` a non-finite ``plan`` gives a
        NaN matrix (NaN propagates). ``jit``- and ``vmap``-able.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (30, 2))
        >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.01), tol=1e-2)
        >>> r = otf.round_plan(out.matrix)
        >>> float(abs(r.matrix.sum(0) - 1 / 30).max()) < 1e-7, bool(r.change <= r.bound)
        (True, True)
    """
    p = val.as_float_array("plan", plan)
    if p.ndim != 2:
        raise ValueError(f"plan: expected an [n, m] matrix, got shape {p.shape}.")
    if val.is_concrete(p):
        import numpy as np

        pn = np.asarray(p)
        if not np.all(np.isfinite(pn)):
            raise ValueError("plan: contains NaN or inf entries (a failed solve?); check the solve's status.")
        if np.any(pn < 0):
            raise ValueError(f"plan: entries must be non-negative (min is {float(pn.min())}).")
    n, m = p.shape
    a = val.check_weights("a", a, n, p.dtype)
    b = val.check_weights("b", b, m, p.dtype)
    val.check_mass(a, b, p.dtype)
    x = p * _ratio(a, jnp.sum(p, axis=1))[:, None]
    y = x * _ratio(b, jnp.sum(x, axis=0))[None, :]
    err_a = jnp.maximum(a - jnp.sum(y, axis=1), 0.0)  # >= 0 in exact arithmetic; clamped against rounding
    err_b = jnp.maximum(b - jnp.sum(y, axis=0), 0.0)
    mass = jnp.sum(jnp.abs(err_b))
    rank_one = err_a[:, None] * (err_b / jnp.where(mass > 0, mass, 1.0))[None, :]
    out = y + rank_one
    bound = 2.0 * (jnp.sum(jnp.abs(jnp.sum(p, 1) - a)) + jnp.sum(jnp.abs(jnp.sum(p, 0) - b)))
    return RoundedPlan(out, jnp.sum(jnp.abs(out - p)), bound)
