"""Monge gap from samples (Uscidda & Cuturi, ICML 2023).

For a reference measure ``rho`` and a map ``T`` the Monge gap is
``M(T) = E_rho[c(x, T(x))] - W_c(rho, T # rho)``: it is ``>= 0``, and ``0`` exactly when ``T`` is c-optimal
between ``rho`` and its image. From samples ``x[n]`` with weights ``a`` and their images ``Tx[n]`` (same
weights), the entropic estimator replaces ``W_c`` by the entropic transport cost
``W_eps = min_P <P, C> - eps H(P)``, ``H(P) = -sum P log P``, over couplings of ``(a, a)``.

Its floor: the coupling ``diag(a)`` pairs each ``x_i`` with its own image, so
``W_eps <= sum_i a_i c(x_i, Tx_i) - eps H(a)``, i.e. ``M >= eps H(a)`` for every map (``eps log n`` for
uniform weights), reached only in the limit where the entropic plan is that diagonal. A gap "at its floor"
is the entropic estimator's zero; :attr:`MongeGapOutput.excess` is ``M - eps H(a)``.

Relation to the KL form that :func:`~ott_fast.sinkhorn` solves: at exact marginals
``KL(P | a b^T) = -H(P) + H(a) + H(b)``, so ``W_eps = reg_ot_cost - eps (H(a) + H(b))``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from ott_fast import _validation as val
from ott_fast.costs import Cost
from ott_fast.entropic import dual as _dual
from ott_fast.entropic.sinkhorn import EpsilonSchedule, SinkhornOutput, sinkhorn
from ott_fast.geometry import PointCloud, RelativeEpsilon

Array = jax.Array

__all__ = ["monge_gap", "MongeGapOutput", "entropic_transport_cost"]


class MongeGapOutput(NamedTuple):
    """Everything :func:`monge_gap` computed; an immutable pytree (the gap itself is ``.gap``).

    Attributes:
        gap: ``[]`` the Monge gap ``displacement_cost - entropic_cost``; NaN if the inner solve did not converge.
        displacement_cost: ``[]`` ``sum_i a_i c(x_i, Tx_i)``.
        entropic_cost: ``[]`` ``<P, C> - eps H(P)`` of the entropic plan between ``(x, a)`` and ``(Tx, a)``,
            as computed (not masked by convergence).
        floor: ``[]`` ``eps H(a)`` (``eps log n`` for uniform weights): the gap is never below it.
        epsilon: ``[]`` the absolute epsilon used.
        converged: ``[]`` bool, whether the inner Sinkhorn solve reached its tolerance.
        sinkhorn: the inner :class:`~ott_fast.SinkhornOutput` (its plan, potentials and trace).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
        >>> out = otf.monge_gap(x, x + 1.0, epsilon=0.1)  # a translation is optimal
        >>> bool(out.converged), bool(out.gap >= out.floor - 1e-4), bool(out.excess < out.floor)
        (True, True, True)
    """

    gap: Array
    displacement_cost: Array
    entropic_cost: Array
    floor: Array
    epsilon: Array
    converged: Array
    sinkhorn: SinkhornOutput

    @property
    def excess(self) -> Array:
        """``gap - floor``: how far above the entropic estimator's zero the gap is."""
        return self.gap - self.floor


def _entropy(w: Array) -> Array:
    """``H(w) = -sum w log w`` with ``0 log 0 = 0``."""
    return -jnp.sum(jnp.where(w > 0, w * jnp.log(jnp.where(w > 0, w, 1.0)), 0.0))


def entropic_transport_cost(out: SinkhornOutput) -> Array:
    """``<P, C> - eps H(P)`` of a balanced Sinkhorn solution, ``= reg_ot_cost - eps (H(a) + H(b))``.

    Differentiated as :attr:`~ott_fast.SinkhornOutput.reg_ot_cost` is: by the envelope theorem (the
    potentials held fixed, no linear solve) with implicit differentiation, the exact gradient at the
    optimum (the gradient w.r.t. the cost matrix is the plan ``P``).

    Args:
        out: a balanced :class:`~ott_fast.SinkhornOutput`.

    Returns:
        ``[]`` the entropic transport cost.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
        >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.1))
        >>> bool(entropic_transport_cost(out) < out.reg_ot_cost)
        True
    """
    return out.reg_ot_cost - out.geom.epsilon * (_entropy(out.a) + _entropy(out.b))


def monge_gap(
    x: Any,
    Tx: Any,
    a: Any = None,
    *,
    epsilon: Any,
    cost: Cost | Any = None,
    relative_epsilon: RelativeEpsilon = None,
    schedule: EpsilonSchedule | Literal["auto"] | None = "auto",
    **solver_kwargs: Any,
) -> MongeGapOutput:
    """Entropic Monge gap ``sum_i a_i c(x_i, Tx_i) - W_eps((x, a), (Tx, a))`` of a map from its samples.

    ``W_eps = <P, C> - eps H(P)`` is the entropic *transport* cost (not the KL-form objective
    ``reg_ot_cost``). The estimate is always ``>= eps H(a)`` (``eps log n`` for uniform weights, the
    ``floor`` field), since pairing each point with its own image is a feasible coupling: a c-optimal map
    has a gap close to that floor (closer as ``eps`` shrinks relative to the spacing of the samples), a
    non-optimal map one clearly above it.

    Non-convergence: if the inner Sinkhorn solve does not reach its tolerance, ``gap`` is NaN (under ``jit``
    too), never a silently wrong number; its gradient is then zero. Raise ``max_iters`` or ``epsilon``; the
    output's ``entropic_cost`` and ``sinkhorn`` hold the unmasked value, the trace and the solve's status.

    Gradients w.r.t. ``x``, ``Tx`` (hence a map's parameters), ``epsilon`` and ``a`` use the envelope
    theorem (no linear solve; see :func:`entropic_transport_cost`). A relative epsilon's scale (the mean or
    std of the cost matrix) is differentiated too, as everywhere in ott_fast, so the gradient is that of the
    value computed; the floor ``eps H(a)`` then moves with the scale. To hold the unit fixed, pass an
    absolute ``epsilon`` computed under ``jax.lax.stop_gradient``.

    Args:
        x: ``[n, d]`` source samples.
        Tx: ``[n, d]`` their images under the map.
        a: ``[n]`` weights of the samples (shared by the images), normalised to sum 1; uniform if ``None``.
        epsilon: entropic regularisation, absolute unless ``relative_epsilon`` is set (as in
            :class:`~ott_fast.PointCloud`; ``epsilon=0.01, relative_epsilon="mean"`` is a good start).
        cost: a :class:`~ott_fast.costs.Cost` or a function ``c(x[d], y[d])``; squared Euclidean if ``None``.
        relative_epsilon: ``None``, ``"mean"`` or ``"std"``: the unit of ``epsilon``, on the ``x``-``Tx``
            cost matrix.
        schedule: epsilon scaling of the inner solve. ``"auto"`` (default) decays epsilon from ``20 eps`` by
            ``0.7`` per iteration: the coupling between samples and the images of a near-optimal map is
            nearly deterministic, where Sinkhorn at the target epsilon alone is slow (on batches of 256
            near-optimal pairs in d = 8: 30-150 iterations instead of 700-800; in d = 2 it can cost a few
            more). ``None`` solves at the target epsilon directly; an :class:`~ott_fast.EpsilonSchedule`
            is used as given. The gap's value does not depend on it (up to the tolerance).
        **solver_kwargs: passed to :func:`~ott_fast.sinkhorn` (``tol``, ``max_iters``, ...).

    Returns:
        A :class:`MongeGapOutput`; its ``gap`` is NaN if the inner solve did not converge.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
        >>> out = otf.monge_gap(x, x + 1.0, epsilon=0.01)  # a translation: optimal
        >>> bool(out.converged), bool(out.excess < 0.05 * out.floor)
        (True, True)
        >>> bool(otf.monge_gap(x, x[:, ::-1], epsilon=0.01).gap > 10 * out.floor)  # a reflection: not optimal
        True
    """
    x = val.check_points("x", x)
    Tx = val.check_points("Tx", Tx)
    if x.shape != Tx.shape:
        raise ValueError(
            f"x, Tx: expected the same shape [n, d] (samples and their images), got {x.shape} and {Tx.shape}."
        )
    if "tau_a" in solver_kwargs or "tau_b" in solver_kwargs:
        raise ValueError("tau_a, tau_b: the Monge gap compares a map's samples with their images (balanced only).")
    geom = PointCloud(x, Tx, cost=cost, epsilon=epsilon, relative_epsilon=relative_epsilon)
    w = val.check_weights("a", a, x.shape[0], geom.dtype)
    w = w / jnp.sum(w)
    geom = geom.with_weights(w, w)  # a relative epsilon under the weights (the schedule starts from it)
    if isinstance(schedule, str):
        if schedule != "auto":
            raise ValueError(f"schedule: expected 'auto', None or an EpsilonSchedule, got {schedule!r}.")
        schedule = EpsilonSchedule(init=20.0 * geom.epsilon, decay=0.7)
    out = sinkhorn(geom, w, w, schedule=schedule, **solver_kwargs)
    displacement = jnp.sum(_dual.weighted(out.a, jax.vmap(geom.cost.cost)(geom.x, geom.y)))
    ent = entropic_transport_cost(out)
    floor = geom.epsilon * _entropy(out.a)
    gap = jnp.where(out.converged, displacement - ent, jnp.nan)
    return MongeGapOutput(gap, displacement, ent, floor, geom.epsilon, out.converged, out)
