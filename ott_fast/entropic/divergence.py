"""Sinkhorn divergence ``S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2`` (Feydy et al., 2019)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast.costs import Cost
from ott_fast.entropic import driver
from ott_fast.entropic.sinkhorn import SinkhornOutput, sinkhorn
from ott_fast.geometry import PointCloud, RelativeEpsilon

Array = jax.Array

__all__ = ["sinkhorn_divergence", "DivergenceOutput"]

# sinkhorn's options that are static (shapes of the loop, method choices); every other option is traced.
_STATIC_OPTIONS = frozenset(
    {"max_iters", "check_every", "acceleration", "anderson_memory", "implicit_diff", "cg_maxiter", "batching", "throw"}
)


class DivergenceOutput(NamedTuple):
    """Everything :func:`sinkhorn_divergence` computed with ``return_output=True``; an immutable pytree.

    Attributes:
        value: ``[]`` the divergence; NaN unless all three solves converged (``converged``).
        converged: ``[]`` bool, all three solves met ``tol`` (checked on their returned potentials).
        status: ``[]`` int32, ``Status.CONVERGED`` when all three did, else the status of the
            first that did not, in the order ``xy``, ``xx``, ``yy`` (``otf.describe(out.status)``).
        error: ``[]`` the largest of the three solves' L1 marginal errors (how far from converged).
        xy, xx, yy: the three :class:`~ott_fast.SinkhornOutput` (``x``-``y``, ``x``-``x``, ``y``-``y``).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
        >>> out = otf.sinkhorn_divergence(x, x + 1.0, epsilon=0.1, return_output=True)
        >>> bool(out.converged), otf.describe(out.status) == otf.describe(otf.Status.CONVERGED)
        (True, True)
    """

    value: Array
    converged: Array
    status: Array
    error: Array
    xy: SinkhornOutput
    xx: SinkhornOutput
    yy: SinkhornOutput


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
    return_output: bool = False,
    warm_start: DivergenceOutput | None = None,
    **solver_kwargs: Any,
) -> Array | DivergenceOutput:
    """Debiased Sinkhorn divergence between ``(x[n, d], a[n])`` and ``(y[m, d], b[m])``.

    ``S = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2 + eps (m(a) - m(b))^2 / 2`` with the KL-form entropic cost
    (``SinkhornOutput.reg_ot_cost``) for the three terms, all at the same absolute epsilon (a relative
    epsilon is resolved on the ``x``-``y`` cost matrix under the weights ``a_i b_j``, and differentiated).
    The last term, with ``m(a) = sum(a)``, is Sejourne et al.'s (2019) correction for unbalanced problems
    (``tau < 1``): without it the divergence can be negative when the masses differ; it is 0 for balanced
    problems. ``S >= 0`` for the squared Euclidean cost, and 0 when ``x == y`` and ``a == b``, up to the
    solves' tolerance (the self terms are solved by symmetric updates, the cross term by alternating ones).

    **Status.** The value is NaN unless all three solves converged (reached ``tol``, checked on their
    returned potentials), under ``jit`` too: a solve stopped by ``max_iters`` gives NaN, never a plausible
    number. ``return_output=True`` returns a :class:`DivergenceOutput` with the status and the error;
    ``throw=True`` raises a ``RuntimeError`` at run time instead of returning NaN.

    **Gradients** flow to ``x``, ``y``, ``a``, ``b`` and ``epsilon``. With implicit differentiation (the
    default) they are the envelope theorem's (each term's dual at fixed potentials, see
    :attr:`~ott_fast.SinkhornOutput.reg_ot_cost`): exact at the optimum, no linear solve, and as accurate in
    float32 as the value. ``implicit_diff=False`` differentiates through the unrolled iterations.

    **Memory.** ``chunk_size`` makes all three solves online (``O((n + m) d)`` memory, gradients too); each
    solve resolves ``"auto"`` (or ``None`` past the dense limit) for its own shape, so ``x``-``x`` chunks are
    sized for ``n x n`` and ``y``-``y`` chunks for ``m x m``.
    For tens of thousands of points in ``d <= 3``, :func:`~ott_fast.multiscale_divergence` reads only the
    blocks of neighbouring clusters instead.

    The three solves and the combination are compiled together once per problem structure, so an eager
    call costs about what a jitted one does.

    Args:
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        epsilon, cost, relative_epsilon, chunk_size: as in :class:`~ott_fast.PointCloud`.
        return_output: return a :class:`DivergenceOutput` instead of the value alone (static).
        warm_start: a previous :class:`DivergenceOutput` of the same shapes (the last training step's, say):
            each of the three solves starts from its potential (``init=(None, g)``), which saves iterations
            when the clouds moved little. The value and the gradients do not depend on it (up to ``tol``).
        **solver_kwargs: passed to :func:`~ott_fast.sinkhorn` (``tol``, ``max_iters``, ``tau_a``, ``throw``, ...).

    Returns:
        ``[]`` the divergence, or a :class:`DivergenceOutput`.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
        >>> bool(abs(otf.sinkhorn_divergence(x, x, epsilon=0.1, tol=1e-4)) < 1e-5)
        True
        >>> out = otf.sinkhorn_divergence(x, x + 1.0, epsilon=0.01, max_iters=5, return_output=True)
        >>> bool(out.converged), bool(jnp.isnan(out.value)), otf.describe(out.status)
        (False, True, 'hit max_iters before the marginal error reached tol')
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
    # tau_a == tau_b makes each self term symmetric (the usual case); otherwise they are solved as they are.
    symmetric = "tau_a" not in solver_kwargs and "tau_b" not in solver_kwargs
    if not symmetric and val.is_concrete(tau_a, tau_b):
        symmetric = float(np.asarray(tau_a)) == float(np.asarray(tau_b))
    if warm_start is not None:
        if "init" in solver_kwargs:
            raise ValueError("warm_start, init: pass one of them (warm_start sets init for each of the three solves).")
        if not isinstance(warm_start, DivergenceOutput):
            raise TypeError("warm_start: expected a DivergenceOutput (sinkhorn_divergence(..., return_output=True)).")
        starts = (warm_start.xy.g, warm_start.xx.g, warm_start.yy.g)
        if tuple(jnp.shape(g) for g in starts) != ((m,), (n,), (m,)):
            raise ValueError(f"warm_start: its potentials do not match these shapes (n={n}, m={m}).")
        traced["starts"] = tuple(jax.lax.stop_gradient(g) for g in starts)
    out = _divergence(static, chunk_size, symmetric, geom_xy, a, b, traced)
    return out if return_output else out.value


@jax.jit(static_argnums=(0, 1, 2))
def _divergence(
    static: tuple, chunk_size: Any, symmetric: bool, geom_xy: PointCloud, a: Array, b: Array, traced: dict
) -> DivergenceOutput:
    kw = {**dict(static), **traced}
    starts = kw.pop("starts", None)
    inits = (None, None, None) if starts is None else tuple((None, g) for g in starts)
    geom_xy = geom_xy.with_weights(a, b)  # a relative epsilon under the weights: absent points count for nothing
    eps = geom_xy.epsilon
    out_xy = sinkhorn(geom_xy, a, b, init=inits[0], **kw)
    # The self terms are symmetric problems (f = g at the optimum): averaged updates, one sweep each. Each
    # resolves the chunk size for its own shape (n x n, m x m), not the x-y one. The three solves run one
    # after the other (driver.after): side by side they contend for the cores.
    self_kw = {**kw, "symmetric": symmetric, "tau_b": kw.get("tau_a", 1.0)} if symmetric else kw
    v_xy = out_xy.reg_ot_cost
    x = driver.after(geom_xy.x, v_xy)
    geom_xx = PointCloud(x, x, cost=geom_xy.cost, epsilon=eps, chunk_size=chunk_size)
    out_xx = sinkhorn(geom_xx, a, a, init=inits[1], **self_kw)
    v_xx = out_xx.reg_ot_cost
    y = driver.after(geom_xy.y, v_xx)
    geom_yy = PointCloud(y, y, cost=geom_xy.cost, epsilon=eps, chunk_size=chunk_size)
    out_yy = sinkhorn(geom_yy, b, b, init=inits[2], **self_kw)
    outs = (out_xy, out_xx, out_yy)
    converged = out_xy.converged & out_xx.converged & out_yy.converged
    status = jnp.int32(driver.Status.CONVERGED)
    for o in reversed(outs):  # the first solve that did not converge names the reason
        status = jnp.where(o.converged, status, o.status)
    if kw.get("throw", False):
        driver.throw_unless_converged("sinkhorn_divergence", status)
    mass_term = 0.5 * eps * (jnp.sum(a) - jnp.sum(b)) ** 2
    value = v_xy - 0.5 * (v_xx + out_yy.reg_ot_cost) + mass_term
    value = jnp.where(converged, value, jnp.nan)
    error = jnp.maximum(jnp.maximum(out_xy.error, out_xx.error), out_yy.error)
    return DivergenceOutput(value, converged, status, error, out_xy, out_xx, out_yy)
