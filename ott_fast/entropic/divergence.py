"""Sinkhorn divergence ``S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2`` (Feydy et al., 2019)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ott_fast import _validation as val
from ott_fast.costs import Cost
from ott_fast.entropic.sinkhorn import sinkhorn
from ott_fast.geometry import PointCloud, RelativeEpsilon

Array = jax.Array

__all__ = ["sinkhorn_divergence"]

# sinkhorn's options that are static (shapes of the loop, method choices); every other option is traced.
_STATIC_OPTIONS = frozenset(
    {"max_iters", "check_every", "acceleration", "anderson_memory", "implicit_diff", "cg_maxiter", "batching", "throw"}
)


def sinkhorn_divergence(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    epsilon: Any,
    cost: Cost | Any = None,
    relative_epsilon: RelativeEpsilon = None,
    chunk_size: Any = None,
    **solver_kwargs: Any,
) -> Array:
    """Debiased Sinkhorn divergence between ``(x[n, d], a[n])`` and ``(y[m, d], b[m])``.

    ``S = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2 + eps (m(a) - m(b))^2 / 2`` with the KL-form entropic cost
    (``SinkhornOutput.reg_ot_cost``) for the three terms, all at the same absolute epsilon (a relative
    epsilon is resolved on the ``x``-``y`` cost matrix under the weights ``a_i b_j``, its scale a constant in
    gradients). The last term,
    with ``m(a) = sum(a)``, is Sejourne et al.'s (2019) correction for unbalanced problems (``tau < 1``):
    without it the divergence can be negative when the masses differ; it is 0 for balanced problems.
    ``S >= 0`` for the squared Euclidean cost, and exactly 0 when ``x == y`` and ``a == b``. Gradients flow
    to ``x``, ``y``, ``a``, ``b`` and ``epsilon`` (implicit differentiation of each solve). NaN when any of
    the three solves saw invalid input or non-finite values (their ``status`` says why).

    The three solves and the combination are compiled together once per problem structure, so an eager
    call costs about what a jitted one does.

    Args:
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        epsilon, cost, relative_epsilon, chunk_size: as in :class:`~ott_fast.PointCloud` (``chunk_size``
            makes all three solves online, for gradients too).
        **solver_kwargs: passed to :func:`~ott_fast.sinkhorn` (``tol``, ``max_iters``, ``tau_a``, ...).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
        >>> float(otf.sinkhorn_divergence(x, x, epsilon=0.1))
        0.0
    """
    geom_xy = PointCloud(x, y, cost=cost, epsilon=epsilon, relative_epsilon=relative_epsilon, chunk_size=chunk_size)
    n, m = geom_xy.shape
    a = val.check_weights("a", a, n, geom_xy.dtype)
    b = val.check_weights("b", b, m, geom_xy.dtype)
    static = tuple(sorted((k, v) for k, v in solver_kwargs.items() if k in _STATIC_OPTIONS))
    traced = {k: v for k, v in solver_kwargs.items() if k not in _STATIC_OPTIONS}
    tau_a, tau_b = solver_kwargs.get("tau_a", 1.0), solver_kwargs.get("tau_b", 1.0)
    val.check_tau("tau_a", tau_a)
    val.check_tau("tau_b", tau_b)
    val.check_nonnegative("tol", solver_kwargs.get("tol", 1e-3))
    if val.is_concrete(tau_a, tau_b) and float(tau_a) == 1.0 and float(tau_b) == 1.0:
        val.check_mass(a, b, geom_xy.dtype)
    return _divergence(static, geom_xy, a, b, traced)


@jax.jit(static_argnums=(0,))
def _divergence(static: tuple, geom_xy: PointCloud, a: Array, b: Array, traced: dict) -> Array:
    kw = {**dict(static), **traced}
    geom_xy = geom_xy.with_weights(a, b)  # a relative epsilon under the weights: absent points count for nothing
    eps = geom_xy.epsilon
    geom_xx = PointCloud(geom_xy.x, geom_xy.x, cost=geom_xy.cost, epsilon=eps, chunk_size=geom_xy.chunk_size)
    geom_yy = PointCloud(geom_xy.y, geom_xy.y, cost=geom_xy.cost, epsilon=eps, chunk_size=geom_xy.chunk_size)
    out_xy = sinkhorn(geom_xy, a, b, **kw)
    out_xx = sinkhorn(geom_xx, a, a, **kw)
    out_yy = sinkhorn(geom_yy, b, b, **kw)
    mass_term = 0.5 * eps * (jnp.sum(a) - jnp.sum(b)) ** 2
    # Each reg_ot_cost is already NaN where its solve failed (SinkhornOutput masks on its status).
    return out_xy.reg_ot_cost - 0.5 * (out_xx.reg_ot_cost + out_yy.reg_ot_cost) + mass_term
