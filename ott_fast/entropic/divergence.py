"""Sinkhorn divergence ``S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2`` (Feydy et al., 2019)."""

from __future__ import annotations

from typing import Any

import jax

from ott_fast.costs import Cost
from ott_fast.entropic.sinkhorn import sinkhorn
from ott_fast.geometry import PointCloud, RelativeEpsilon

Array = jax.Array

__all__ = ["sinkhorn_divergence"]


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

    Uses the KL-form entropic cost (``SinkhornOutput.reg_ot_cost``) for the three terms, all at the same
    absolute epsilon (a relative epsilon is resolved on the ``x``-``y`` cost matrix). It is >= 0 for the
    squared Euclidean cost, and exactly 0 when ``x == y`` and ``a == b``. Gradients flow to ``x``, ``y``,
    ``a``, ``b`` and ``epsilon`` (implicit differentiation of each solve).

    Args:
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        epsilon, cost, relative_epsilon, chunk_size: as in :class:`~ott_fast.PointCloud` (``chunk_size``
            makes all three solves online, for gradients too).
        **solver_kwargs: passed to :func:`~ott_fast.sinkhorn` (``tol``, ``max_iters``, ...).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
        >>> float(otf.sinkhorn_divergence(x, x, epsilon=0.1))
        0.0
    """
    geom_xy = PointCloud(x, y, cost=cost, epsilon=epsilon, relative_epsilon=relative_epsilon, chunk_size=chunk_size)
    eps = geom_xy.epsilon
    geom_xx = PointCloud(geom_xy.x, geom_xy.x, cost=geom_xy.cost, epsilon=eps, chunk_size=chunk_size)
    geom_yy = PointCloud(geom_xy.y, geom_xy.y, cost=geom_xy.cost, epsilon=eps, chunk_size=chunk_size)
    out_xy = sinkhorn(geom_xy, a, b, **solver_kwargs)
    out_xx = sinkhorn(geom_xx, out_xy.a, out_xy.a, **solver_kwargs)
    out_yy = sinkhorn(geom_yy, out_xy.b, out_xy.b, **solver_kwargs)
    return out_xy.reg_ot_cost - 0.5 * (out_xx.reg_ot_cost + out_yy.reg_ot_cost)
