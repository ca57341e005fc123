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
``O((n + m) d + k m)`` memory. :func:`round_output` computes this form from a solve (dense or online):
its potentials, the rank-one vectors, the bound and the rounded plan's cost, in six passes over the kernel.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ott_fast import _validation as val
from ott_fast.entropic import dual

Array = jax.Array

__all__ = ["RoundedPlan", "round_plan", "RoundedCoupling", "round_output"]


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


class RoundedCoupling(NamedTuple):
    """The rounded plan of a solve, ``Y + err_a err_b^T / |err_b|_1`` with
    ``Y_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``, held in ``O(n + m)`` memory (see :func:`round_output`).

    Attributes:
        f, g: ``[n]``, ``[m]`` potentials of the scaled part ``Y`` (the solve's, lowered where a marginal
            exceeded its target).
        err_a, err_b: ``[n]``, ``[m]`` the rank-one correction's factors (non-negative, equal mass).
        cost: ``[]`` ``<round(P), C>``.
        bound: ``[]`` ``2 (|r(P) - a|_1 + |c(P) - b|_1)``, the bound on ``|round(P) - P|_1``.
        geom, a, b: the problem.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> out = otf.sinkhorn(otf.Geometry(jnp.array([[0.0, 1.0], [1.0, 0.0]]), epsilon=1.0), tol=1e-1)
        >>> r = otf.round_output(out)
        >>> [round(float(v), 6) for v in r.matrix().sum(0)]
        [0.5, 0.5]
    """

    f: Array
    g: Array
    err_a: Array
    err_b: Array
    cost: Array
    bound: Array
    geom: Any
    a: Array
    b: Array

    def matrix(self) -> Array:
        """The dense ``[n, m]`` rounded plan (``O(n m)`` memory)."""
        y = dual.plan(self.f, self.g, self.geom, self.a, self.b)
        mass = jnp.sum(self.err_b)
        return y + self.err_a[:, None] * (self.err_b / jnp.where(mass > 0, mass, 1.0))[None, :]


def round_output(out: Any) -> RoundedCoupling:
    """Rounds a solve's plan onto ``U(a, b)`` without forming it (Algorithm 2 of Altschuler et al. 2017 as
    potentials and a rank-one term): dense or online, ``O(n m)`` time in six passes over the kernel and
    ``O(n + m)`` memory besides the kernel's chunk.

    Args:
        out: a :class:`~ott_fast.SinkhornOutput` or :class:`~ott_fast.SNSOutput` (balanced).

    Returns:
        :class:`RoundedCoupling`; its ``matrix()`` equals :func:`round_plan` of ``out.matrix``. ``jit``- and
        ``vmap``-able; a failed solve's NaN potentials give NaN throughout.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (40, 2))
        >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.01, chunk_size=16), tol=1e-1)  # online
        >>> r = otf.round_output(out)
        >>> bool(abs(r.cost - out.transport_cost) <= 4 * 16 * r.bound)  # max cost < 16 here
        True
    """
    kern = out.geom.kernel()
    eps = kern.epsilon
    inv = 1.0 / eps
    a, b = out.a.astype(out.f.dtype), out.b.astype(out.f.dtype)
    la, lb = dual.safe_log(a), dual.safe_log(b)
    log_r, log_c = dual.exact_sums(out.f, out.g, kern, a, b)  # r(P) = a exp(log_r), c(P) = b exp(log_c)
    bound = 2.0 * (
        jnp.sum(dual.weighted(a, jnp.abs(jnp.exp(log_r) - 1.0)))
        + jnp.sum(dual.weighted(b, jnp.abs(jnp.exp(log_c) - 1.0)))
    )
    f1 = out.f + eps * jnp.where(a > 0, jnp.minimum(-log_r, 0.0), 0.0)  # rows scaled to at most a
    log_c1 = kern.col_lse_exact(f1 * inv + la, out.g * inv, inv)
    g1 = out.g + eps * jnp.where(b > 0, jnp.minimum(-log_c1, 0.0), 0.0)  # columns scaled to at most b
    log_r2 = kern.row_lse_exact(f1 * inv, g1 * inv + lb, inv)
    err_a = jnp.maximum(a - dual.mass_of(a, log_r2), 0.0)
    err_b = jnp.maximum(b - dual.mass_of(b, jnp.minimum(log_c1, 0.0)), 0.0)
    mass = jnp.sum(err_b)
    unit_b = err_b / jnp.where(mass > 0, mass, 1.0)

    def body(acc: None, blk: Any, ea: Array) -> tuple[None, Array]:
        return acc, ea * jnp.matmul(kern.cost_block(blk), unit_b, precision=jax.lax.Precision.HIGHEST)

    _, rank_one = kern.scan(body, None, (err_a,), (0.0,))
    cost = dual.plan_cost(f1, g1, out.geom, a, b) + jnp.sum(rank_one)
    return RoundedCoupling(f1, g1, err_a, err_b, cost, bound, out.geom, a, b)
