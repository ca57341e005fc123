"""The entropic dual, the plan it defines, and implicit differentiation of its maximiser.

Dual (KL form, balanced when ``tau = 1``):
``D(f, g) = sum_i a_i psi_a(f_i) + sum_j b_j psi_b(g_j) - eps (sum_ij P_ij - sum(a) sum(b))`` with
``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``, ``psi(f) = f`` (balanced) or ``-rho expm1(-f / rho)``,
``rho = eps tau / (1 - tau)``. Sinkhorn maximises ``D``; at the maximiser ``D`` is the entropic OT cost.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ott_fast.geometry import scan_rows

Array = jax.Array


def _rho(eps: Array, tau: Array) -> tuple[Array, Array]:
    """``(unbalanced, rho)`` with a finite placeholder ``rho`` where balanced (keeps gradients NaN-free)."""
    unbalanced = tau < 1
    return unbalanced, jnp.where(unbalanced, eps * tau / jnp.where(unbalanced, 1 - tau, 1.0), 1.0)


def psi(f: Array, eps: Array, tau: Array) -> Array:
    """Conjugate marginal penalty term of the dual: ``f`` (balanced) or ``-rho expm1(-f / rho)``."""
    unbalanced, rho = _rho(eps, tau)
    return jnp.where(unbalanced, -rho * jnp.expm1(-f / rho), f)


def psi_prime(f: Array, eps: Array, tau: Array) -> Array:
    """``psi'(f)``: the target marginal factor, ``1`` (balanced) or ``exp(-f / rho)``."""
    unbalanced, rho = _rho(eps, tau)
    return jnp.where(unbalanced, jnp.exp(-f / rho), 1.0)


def _plan_scan(
    f: Array,
    g: Array,
    geom: Any,
    a: Array,
    b: Array,
    body: Any,
    col_init: Any,
    rows: tuple[Array, ...] = (),
    pads: tuple[float, ...] = (),
) -> tuple[Any, Any]:
    """``body(acc, P_block[k, m], block, *row_blocks)`` over row chunks of the plan (``block``: the chunk's
    row data, whose costs are ``geom.cost_block(block)``)."""
    inv = 1.0 / geom.epsilon
    v = g * inv + jnp.log(b)

    def step(acc: Any, blk: Array, u: Array, *rb: Array) -> tuple[Any, Any]:
        return body(acc, jnp.exp(geom.log_kernel(blk, u, v, inv)), blk, *rb)

    return scan_rows(geom, step, col_init, (f * inv + jnp.log(a), *rows), (-jnp.inf, *pads))


def plan(f: Array, g: Array, geom: Any, a: Array, b: Array) -> Array:
    """``P[n, m] = a_i b_j exp((f_i + g_j - C_ij) / eps)`` (materialised, also for online geometries)."""
    return _plan_scan(f, g, geom, a, b, lambda acc, p, c: (acc, p), None)[1]


def plan_mass(f: Array, g: Array, geom: Any, a: Array, b: Array) -> Array:
    """``sum_ij P_ij``, in chunks for online geometries."""
    zero = jnp.zeros((), geom.dtype)
    return _plan_scan(f, g, geom, a, b, lambda acc, p, c: (acc + jnp.sum(p), None), zero)[0]


def plan_cost(f: Array, g: Array, geom: Any, a: Array, b: Array) -> Array:
    """``<P, C>``, in chunks for online geometries."""
    zero = jnp.zeros((), geom.dtype)
    body = lambda acc, p, blk: (acc + jnp.sum(p * geom.cost_block(blk)), None)  # noqa: E731
    return _plan_scan(f, g, geom, a, b, body, zero)[0]


def plan_apply(f: Array, g: Array, geom: Any, a: Array, b: Array, vec: Array, axis: int) -> Array:
    """``P^T vec`` for ``vec[n, ...]`` (``axis=0``) or ``P vec`` for ``vec[m, ...]`` (``axis=1``), in chunks."""
    if axis == 0:
        init = jnp.zeros((geom.shape[1],) + vec.shape[1:], jnp.result_type(vec, geom.dtype))
        body = lambda acc, p, c, vb: (acc + jnp.tensordot(p, vb, axes=(0, 0)), None)  # noqa: E731
        return _plan_scan(f, g, geom, a, b, body, init, (vec,), (0.0,))[0]
    return _plan_scan(f, g, geom, a, b, lambda acc, p, c: (acc, jnp.tensordot(p, vec, axes=(1, 0))), None)[1]


def dual_objective(f: Array, g: Array, geom: Any, a: Array, b: Array, tau_a: Array, tau_b: Array) -> Array:
    """``D(f, g)``; equals the entropic OT cost ``<P, C> + eps KL(P | a b^T)`` (+ penalties) at the optimum."""
    eps = geom.epsilon
    mass = plan_mass(f, g, geom, a, b)
    return jnp.sum(a * psi(f, eps, tau_a)) + jnp.sum(b * psi(g, eps, tau_b)) - eps * (mass - jnp.sum(a) * jnp.sum(b))


def implicit_vjp(
    f: Array,
    g: Array,
    geom: Any,
    a: Array,
    b: Array,
    tau_a: Array,
    tau_b: Array,
    f_bar: Array,
    g_bar: Array,
    cg_maxiter: int,
) -> tuple[Any, Array, Array, Array, Array]:
    """Cotangents of ``(geom, a, b, tau_a, tau_b)`` given those of the optimal potentials.

    The optimum solves ``F = grad_z D(z; theta) = 0``; with ``H = -hess_z D`` (PSD),
    ``theta_bar = grad_theta <lambda, F(z; theta)>`` where ``H lambda = z_bar``. ``H`` is applied from the
    plan (``eps H = [[diag(P1) + d_a, P], [P^T, diag(P^T 1) + d_b]]``) and inverted by Jacobi-preconditioned
    conjugate gradient. In the balanced case ``(1, -1)`` spans the kernel of ``H``: ``z_bar`` is projected
    orthogonally to it and a rank-one term along it makes the system definite without changing the solution.
    """
    eps = jax.lax.stop_gradient(geom.epsilon)
    const = jax.tree_util.tree_map(jax.lax.stop_gradient, (f, g, geom, a, b))

    def both(vf: Array, vg: Array) -> tuple[Array, Array]:  # (P vg, P^T vf) in one pass over the plan
        body = lambda acc, p, c, vfb: (acc + p.T @ vfb, p @ vg)  # noqa: E731
        pt_vf, p_vg = _plan_scan(*const, body, jnp.zeros_like(vg), (vf,), (0.0,))
        return p_vg, pt_vf

    body = lambda acc, p, c: (acc + jnp.sum(p, 0), jnp.sum(p, 1))  # noqa: E731
    c, r = _plan_scan(*const, body, jnp.zeros_like(g))
    d_a = _curvature(f, a, eps, tau_a)
    d_b = _curvature(g, b, eps, tau_b)
    n, m = r.shape[0], c.shape[0]
    balanced = (tau_a >= 1) & (tau_b >= 1)
    w_f, w_g = jnp.full((n,), 1.0, r.dtype), jnp.full((m,), -1.0, r.dtype)
    w_norm2 = float(n + m)
    ridge = jnp.where(balanced, (jnp.sum(r) + jnp.sum(c)) / w_norm2, 0.0)

    def project(vf: Array, vg: Array) -> tuple[Array, Array]:
        t = jnp.where(balanced, (jnp.sum(vf * w_f) + jnp.sum(vg * w_g)) / w_norm2, 0.0)
        return vf - t * w_f, vg - t * w_g

    def matvec(v: tuple[Array, Array]) -> tuple[Array, Array]:
        vf, vg = v
        t = ridge * (jnp.sum(vf * w_f) + jnp.sum(vg * w_g)) / w_norm2
        p_vg, pt_vf = both(vf, vg)
        return ((r + d_a) * vf + p_vg + t * w_f, pt_vf + (c + d_b) * vg + t * w_g)

    diag_f, diag_g = r + d_a + ridge / w_norm2, c + d_b + ridge / w_norm2
    tiny = jnp.finfo(r.dtype).tiny
    precond = lambda v: (v[0] / jnp.maximum(diag_f, tiny), v[1] / jnp.maximum(diag_g, tiny))  # noqa: E731
    rhs = project(f_bar, g_bar)
    tol = 1e-6 if r.dtype == jnp.float32 else 1e-12
    lam, _ = jax.scipy.sparse.linalg.cg(matvec, rhs, M=precond, tol=tol, maxiter=cg_maxiter)
    lam = project(*lam)
    lam_f, lam_g = lam[0] * eps, lam[1] * eps  # H = (eps H) / eps

    def directional(geom_: Any, a_: Array, b_: Array, ta: Array, tb: Array) -> Array:
        fun = lambda ff, gg: dual_objective(ff, gg, geom_, a_, b_, ta, tb)  # noqa: E731
        return jax.jvp(fun, (f, g), (lam_f, lam_g))[1]

    return jax.grad(directional, argnums=(0, 1, 2, 3, 4))(geom, a, b, tau_a, tau_b)


def _curvature(f: Array, w: Array, eps: Array, tau: Array) -> Array:
    """``-eps w psi''(f) = w exp(-f / rho) eps / rho``: the marginal penalty's share of ``eps H``' diagonal."""
    unbalanced, rho = _rho(eps, tau)
    return jnp.where(unbalanced, w * jnp.exp(-f / rho) * eps / rho, 0.0)
