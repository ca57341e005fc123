"""The entropic dual, the plan it defines, and implicit differentiation of its maximiser: the one place for
each of these, shared by Sinkhorn, SNS, the divergence, the Monge gap and the curves.

Dual (KL form, balanced when ``tau = 1``):
``D(f, g) = sum_i a_i psi_a(f_i) + sum_j b_j psi_b(g_j) - eps (sum_ij P_ij - sum(a) sum(b))`` with
``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``, ``psi(f) = f`` (balanced) or ``-rho expm1(-f / rho)``,
``rho = eps tau / (1 - tau)``. Sinkhorn maximises ``D``; at the maximiser ``D`` is the entropic OT cost.

Every plan entry is formed by the geometry's :class:`~ott_fast.geometry.Kernel`. Weights enter the derived
quantities as factors, ``P = a_i exp(...) b_j``, not through ``log a``: a zero weight then gives exactly zero
mass *and* a finite gradient (``dD/da_i`` is the potential ``f_i``), where ``log 0`` would give NaN.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
# Products of the plan with vectors (apply, the implicit backward pass) at full float32 precision on every
# accelerator; the cost's own products carry the cost's precision (see ott_fast.costs).
HIGHEST = jax.lax.Precision.HIGHEST


# ------------------------------------------------------------------------ weights and marginal penalties


@jax.custom_jvp
def safe_log(w: Array) -> Array:
    """``log w`` (``-inf`` at 0) whose derivative is ``1 / w`` where ``w > 0`` and 0 where ``w = 0``, so a
    zero weight in a solver's sweeps yields no NaN gradient (its mass is 0 whatever its log's tangent)."""
    return jnp.log(w)


@safe_log.defjvp
def _safe_log_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (w,), (dw,) = primals, tangents
    pos = w > 0
    return jnp.log(w), jnp.where(pos, dw / jnp.where(pos, w, 1.0), 0.0)


def _split_weight(w: Array) -> tuple[Array, Array]:
    """``(log_part, factor)`` with ``exp(log_part) * factor = w``: ``(log w, 1)`` where ``w > 0``, ``(0, w)``
    where ``w = 0``, so that the plan's derivative with respect to a zero weight is finite and exact."""
    pos = w > 0
    return jnp.log(jnp.where(pos, w, 1.0)), jnp.where(pos, 1.0, w)


def rho(eps: Array, tau: Array) -> tuple[Array, Array]:
    """``(unbalanced, rho)``: ``rho = eps tau / (1 - tau)``, a finite placeholder where balanced."""
    unbalanced = tau < 1
    return unbalanced, jnp.where(unbalanced, eps * tau / jnp.where(unbalanced, 1 - tau, 1.0), 1.0)


def psi(f: Array, eps: Array, tau: Array) -> Array:
    """Conjugate marginal penalty term of the dual: ``f`` (balanced) or ``-rho expm1(-f / rho)``."""
    unbalanced, r = rho(eps, tau)
    return jnp.where(unbalanced, -r * jnp.expm1(-f / r), f)


def psi_prime(f: Array, eps: Array, tau: Array) -> Array:
    """``psi'(f)``: the target marginal factor, ``1`` (balanced) or ``exp(-f / rho)``."""
    unbalanced, r = rho(eps, tau)
    return jnp.where(unbalanced, jnp.exp(-f / r), 1.0)


def psi_diff(f: Array, d: Array, eps: Array, tau: Array) -> Array:
    """``psi(f + d) - psi(f)`` without cancellation: ``d``, or ``-rho e^{-f/rho} expm1(-d/rho)``."""
    unbalanced, r = rho(eps, tau)
    return jnp.where(unbalanced, -r * jnp.exp(-f / r) * jnp.expm1(-d / r), d)


def curvature(f: Array, w: Array, eps: Array, tau: Array) -> Array:
    """``-eps w psi''(f) = w exp(-f / rho) eps / rho``: the marginal penalty's share of ``eps H``' diagonal."""
    unbalanced, r = rho(eps, tau)
    return jnp.where(unbalanced, w * jnp.exp(-f / r) * eps / r, 0.0)


# ----------------------------------------------------------------- the dual value and the marginal error


def weighted(w: Array, z: Array) -> Array:
    """``w * z`` with ``0`` wherever ``w = 0``, whatever ``z`` is there: the terms of an absent (zero-weight)
    point vanish even where its potential or its clamped log-sum would make ``0 * inf`` NaN. The derivative
    in ``w`` stays ``z`` wherever ``z`` is finite, zero weights included (``dD/da_i = f_i`` there too)."""
    return w * jnp.where((w > 0) | jnp.isfinite(z), z, jnp.zeros((), z.dtype))


def mass_of(w: Array, log_s: Array) -> Array:
    """``w * exp(log_s)``: a marginal from its log-sum without the weights (0 where ``w = 0``)."""
    return weighted(w, jnp.exp(log_s))


def dual_value(f: Array, g: Array, a: Array, b: Array, mass: Array, eps: Array, tau_a: Any, tau_b: Any) -> Array:
    """``D(f, g)`` given the plan's mass ``sum_ij P_ij`` (the only term that needs a pass over the plan)."""
    penalties = jnp.sum(weighted(a, psi(f, eps, tau_a))) + jnp.sum(weighted(b, psi(g, eps, tau_b)))
    return penalties - eps * (mass - jnp.sum(a) * jnp.sum(b))


def marginal_error(
    f: Array, g: Array, log_r: Array, log_c: Array, a: Array, b: Array, eps: Array, tau_a: Any, tau_b: Any
) -> Array:
    """The L1 marginal violation ``|P 1 - a psi_a'(f)|_1 + |P^T 1 - b psi_b'(g)|_1`` (docs/design.md's; the
    targets are ``a``, ``b`` when balanced), from the log row and column sums *without* the weights:
    ``(P 1)_i = a_i exp(log_r_i)``, ``(P^T 1)_j = b_j exp(log_c_j)``."""
    row = weighted(a, jnp.exp(log_r) - psi_prime(f, eps, tau_a))
    col = weighted(b, jnp.exp(log_c) - psi_prime(g, eps, tau_b))
    return jnp.sum(jnp.abs(row)) + jnp.sum(jnp.abs(col))


def exact_sums(f: Array, g: Array, kernel: Any, a: Array, b: Array, *, shifted: bool = True) -> tuple[Array, Array]:
    """``(log_r[n], log_c[m])`` at ``(f, g)``, weights excluded as in :func:`marginal_error`: the sums the
    returned plan has, whatever state a solver's sweeps carried.

    ``shifted=True`` takes them max-shifted (two passes each): exact far from any optimum too.
    ``shifted=False`` takes one pass each, clamped to the dtype's range (``Kernel.row_lse``):
    equal to the shifted sums wherever a plan's marginal is within the dtype's range, and wherever it is
    not, the marginal error they give is as large as the exact one (overflow: ``inf`` or the largest
    number; underflow: the row's whole mass is missing). That is all a convergence check needs, at half
    the passes over the matrix."""
    inv = 1.0 / kernel.epsilon
    rows, cols = (kernel.row_lse_exact, kernel.col_lse_exact) if shifted else (kernel.row_lse, kernel.col_lse)
    return rows(f * inv, g * inv + safe_log(b), inv), cols(f * inv + safe_log(a), g * inv, inv)


# --------------------------------------------------------------------------- the plan and its quantities


def plan_scan(
    f: Array,
    g: Array,
    kernel: Any,
    a: Array,
    b: Array,
    body: Any,
    col_init: Any,
    rows: tuple[Array, ...] = (),
    pads: tuple[float, ...] = (),
    log: bool = False,
) -> tuple[Any, Any]:
    """``body(acc, P_block[k, m], block, *row_blocks)`` over the kernel's row blocks of the plan
    ``P = a_i b_j exp((f_i + g_j - C_ij) / eps)`` (``block``: the chunk's row data, whose costs are
    ``kernel.cost_block(block)``). With ``log=True`` the body also gets the exponent the pass forms,
    ``body(acc, P_block, log_P_block, block, *row_blocks)``: ``log P_ij`` wherever ``P_ij > 0``."""
    inv = 1.0 / kernel.epsilon
    la, fa = _split_weight(a)
    lb, fb = _split_weight(b)
    v = g * inv + lb
    col_absent = b <= 0

    def step(acc: Any, blk: Array, u: Array, wa: Array, *rb: Array) -> tuple[Any, Any]:
        # A pair of absent points (both weights 0) is no entry at all: its exponent is dropped before exp
        # (it may overflow: two padded points at the same far place have cost 0 and large potentials).
        z = kernel.log_block(blk, u, v, inv)
        z = jnp.where((wa <= 0)[:, None] & col_absent[None, :], -jnp.inf, z)
        p = jnp.exp(z) * wa[:, None] * fb[None, :]
        return body(acc, p, z, blk, *rb) if log else body(acc, p, blk, *rb)

    return kernel.scan(step, col_init, (f * inv + la, fa, *rows), (-jnp.inf, 0.0, *pads))


def plan(f: Array, g: Array, geom: Any, a: Array, b: Array) -> Array:
    """``P[n, m] = a_i b_j exp((f_i + g_j - C_ij) / eps)`` (materialised, also for online geometries)."""
    return plan_scan(f, g, geom.kernel(), a, b, lambda acc, p, c: (acc, p), None)[1]


def plan_mass(f: Array, g: Array, geom: Any, a: Array, b: Array) -> Array:
    """``sum_ij P_ij``, in chunks for online geometries (row sums per chunk, summed once after the loop: a
    row-sharded problem then reduces one scalar across devices, not one per chunk)."""
    return jnp.sum(plan_scan(f, g, geom.kernel(), a, b, lambda acc, p, c: (acc, jnp.sum(p, axis=1)), None)[1])


def plan_cost(f: Array, g: Array, geom: Any, a: Array, b: Array) -> Array:
    """``<P, C>``, in chunks for online geometries."""
    kern = geom.kernel()
    body = lambda acc, p, blk: (acc, jnp.sum(p * kern.cost_block(blk), axis=1))  # noqa: E731
    return jnp.sum(plan_scan(f, g, kern, a, b, body, None)[1])  # one reduction after the loop, as plan_mass


def plan_cost_and_entropy(f: Array, g: Array, geom: Any, a: Array, b: Array) -> tuple[Array, Array]:
    """``(<P, C>, H(P / sum P))`` (the entropy in nats) from one pass over the plan.

    ``log P_ij = (f_i + g_j - C_ij) / eps + log a_i + log b_j`` is the exponent the pass forms anyway, so the
    entropy costs no logarithm per entry, and the cost needs no cost block: ``P_ij C_ij = P_ij (f_i + eps
    log a_i) + P_ij (g_j + eps log b_j) - eps P_ij log P_ij``, row sums of the plan against vectors. An online
    chunk then needs no second matrix product for its costs, nor a buffer for them. Over several row blocks the
    three row sums are one reduction, so the pass holds about one block beside the costs' (n = m = 16384,
    d = 64, automatic 512-row chunks: 160 MB of temporaries with a cost block, 104 MB with three sums, 41 MB).
    """
    kern = geom.kernel()
    eps = kern.epsilon
    fa = f + eps * _split_weight(a)[0]  # log a where a > 0, 0 where a = 0 (no mass there)
    gb = g + eps * _split_weight(b)[0]

    # Several row blocks (an online kernel, a large stored matrix): the three row sums are one variadic
    # reduction, which XLA fuses with the block's exponent and exp into one loop; three separate sums keep
    # exp(z), P and P log P as three block-sized buffers. The fused loop runs slower than XLA's own row sums,
    # so within one stored block (where the block is the matrix the solve already holds) they are kept.
    fused = kern.blocks()[1] < kern.shape[0]

    def body(acc: None, p: Array, logp: Array, blk: Array, fr: Array) -> tuple[None, tuple[Array, Array, Array]]:
        terms = (p, p * gb[None, :], jnp.where(p > 0, p * logp, 0.0))
        if fused:
            zero = jnp.zeros((), p.dtype)
            add = lambda s, t: tuple(si + ti for si, ti in zip(s, t))  # noqa: E731
            mass, pg, plogp = jax.lax.reduce(terms, (zero,) * 3, add, (1,))
        else:
            mass, pg, plogp = (jnp.sum(t, axis=1) for t in terms)
        return acc, (mass, fr * mass + pg - eps * plogp, plogp)

    mass, cost, plogp = plan_scan(f, g, kern, a, b, body, None, (fa,), (0.0,), log=True)[1]
    total = jnp.sum(mass)
    return jnp.sum(cost), -(jnp.sum(plogp) / total) + jnp.log(total)


def plan_apply(f: Array, g: Array, geom: Any, a: Array, b: Array, vec: Array, axis: int) -> Array:
    """``P^T vec`` for ``vec[n, ...]`` (``axis=0``) or ``P vec`` for ``vec[m, ...]`` (``axis=1``), in chunks."""
    kern = geom.kernel()
    if axis == 0:
        vec = vec.astype(jnp.result_type(vec, geom.dtype))
        body = lambda acc, p, c, vb: (kern.col_contract(acc, p, vb), None)  # noqa: E731
        init = kern.col_init(f, vec.shape[1:]).astype(vec.dtype)
        return jnp.sum(plan_scan(f, g, kern, a, b, body, init, (vec,), (0.0,))[0], axis=0)
    rows = lambda acc, p, c: (acc, jnp.tensordot(p, vec, axes=(1, 0), precision=HIGHEST))  # noqa: E731
    return plan_scan(f, g, kern, a, b, rows, None)[1]


def dual_objective(f: Array, g: Array, geom: Any, a: Array, b: Array, tau_a: Array, tau_b: Array) -> Array:
    """``D(f, g)``; equals the entropic OT cost ``<P, C> + eps KL(P | a b^T)`` (+ penalties) at the optimum."""
    return dual_value(f, g, a, b, plan_mass(f, g, geom, a, b), geom.epsilon, tau_a, tau_b)


# Compiled once per static structure (geometry kind, cost, chunking, shapes): eager property access on an
# output neither retraces nor recompiles after the first call.
plan_jit = jax.jit(plan)
plan_cost_jit = jax.jit(plan_cost)
plan_apply_jit = jax.jit(plan_apply, static_argnums=(6,))
dual_objective_jit = jax.jit(dual_objective)


class CGResult(NamedTuple):
    """What :func:`cg_solve` returns: the solution, the iterations it took and its relative residual."""

    x: Any
    iterations: Array
    residual: Array  # |r| / |rhs| of the recursively updated residual (0 for a zero right-hand side)


def cg_solve(matvec: Any, rhs: Any, precond: Any, *, rtol: Any, maxiter: int, x0: Any = None) -> CGResult:
    """Preconditioned conjugate gradient on a pytree of arrays, stopping at ``|r| <= rtol |rhs|``: the one
    CG of the package (the implicit backward pass, SNS's Newton steps).

    The textbook iteration (as ``jax.scipy.sparse.linalg.cg``, which reports neither iterations nor
    residual), with inner products as element-wise sums over the leaves, so that it also runs on vectors
    sharded over a mesh with explicit axes (``jnp.vdot`` of two sharded vectors has no output sharding
    there). It stops early on a breakdown (``r^T M^-1 r <= 0``).

    Args:
        matvec: ``v -> A v`` on pytrees shaped like ``rhs`` (``A`` symmetric positive definite).
        rhs: the right-hand side.  precond: ``v -> M^-1 v`` (Jacobi: a division by ``A``'s diagonal).
        rtol: relative tolerance.  maxiter: iteration cap (static).  x0: start (zero if ``None``).

    Returns:
        A :class:`CGResult` ``(x, iterations, residual)``: callers check ``residual`` against what they
        need (the implicit backward pass turns a failed solve into NaN gradients).

    Example:
        >>> import jax.numpy as jnp
        >>> mat = jnp.array([[4.0, 1.0], [1.0, 3.0]])
        >>> out = cg_solve(lambda v: mat @ v, jnp.ones(2), lambda v: v, rtol=1e-6, maxiter=10)
        >>> [round(float(v), 4) for v in out.x], int(out.iterations)
        ([0.1818, 0.2727], 2)
    """
    leaves = jax.tree_util.tree_leaves

    def dot(u: Any, v: Any) -> Array:
        return sum(jnp.sum(p * q) for p, q in zip(leaves(u), leaves(v), strict=True))

    def axpy(alpha: Array, u: Any, v: Any) -> Any:
        return jax.tree_util.tree_map(lambda p, q: q + alpha * p, u, v)

    x = jax.tree_util.tree_map(jnp.zeros_like, rhs) if x0 is None else x0
    r = rhs if x0 is None else axpy(-1.0, matvec(x0), rhs)
    rhs2 = dot(rhs, rhs)
    target = rtol * rtol * rhs2

    def cond(state: tuple) -> Array:
        _, r, rz, _, k = state
        return (dot(r, r) > target) & (k < maxiter) & (rz > 0)

    def body(state: tuple) -> tuple:
        x, r, rz, p, k = state
        ap = matvec(p)
        alpha = rz / dot(p, ap)
        x, r = axpy(alpha, p, x), axpy(-alpha, ap, r)
        z = precond(r)
        rz_new = dot(r, z)
        return x, r, rz_new, axpy(rz_new / rz, p, z), k + 1

    z = precond(r)
    x, r, _, _, k = jax.lax.while_loop(cond, body, (x, r, dot(r, z), z, jnp.int32(0)))
    tiny = jnp.finfo(rhs2.dtype).tiny
    residual = jnp.where(rhs2 > 0, jnp.sqrt(dot(r, r) / jnp.maximum(rhs2, tiny)), 0.0)
    return CGResult(x, k, residual)


def cg_tolerances(dtype: Any) -> tuple[float, float]:
    """``(rtol, fail)`` of the implicit backward pass's CG for ``dtype``: it aims at ``eps**0.75`` of the
    dtype (float32 ``6e-6``, float64 ``2e-12``, bfloat16 ``3e-2``) and counts as failed above ``eps**0.375``
    (float32 ``2.5e-3``, float64 ``1.3e-6``). The system is ill-conditioned at small epsilon (its condition
    number grows like the inverse spectral gap of the plan), and CG's attainable accuracy is about that
    condition number times the dtype's rounding: a float32 solve that stalls there returns garbage, so a
    residual above ``fail`` gives NaN gradients instead of a plausible wrong number."""
    e = float(jnp.finfo(dtype).eps)
    return e**0.75, e**0.375


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

    cf, cg, cgeom, ca, cb = const
    kern = cgeom.kernel()

    def both(vf: Array, vg: Array) -> tuple[Array, Array]:  # (P vg, P^T vf) in one pass over the plan
        def body(acc: Array, p: Array, c: Array, vfb: Array) -> tuple[Array, Array]:
            return kern.col_contract(acc, p, vfb), jnp.matmul(p, vg, precision=HIGHEST)

        pt_vf, p_vg = plan_scan(cf, cg, kern, ca, cb, body, kern.col_init(cf), (vf,), (0.0,))
        return p_vg, jnp.sum(pt_vf, axis=0)  # per-group column sums: one reduction per pass

    body = lambda acc, p, c: (kern.col_contract(acc, p), jnp.sum(p, 1))  # noqa: E731
    c, r = plan_scan(cf, cg, kern, ca, cb, body, kern.col_init(cf))
    c = jnp.sum(c, axis=0)
    d_a = weighted(a, curvature(f, jnp.ones_like(a), eps, tau_a))
    d_b = weighted(b, curvature(g, jnp.ones_like(b), eps, tau_b))
    # A zero-weight point's row of H is zero (the dual does not depend on its potential, which the solvers
    # set to the c-transform): its coordinate is taken out of the system (identity there, right-hand side
    # 0, so lam = 0 and its potential is a constant in the backward pass), and the null direction (1, -1)
    # runs over the points present only. Padding a problem then changes no gradient.
    pos_f, pos_g = a > 0, b > 0
    balanced = (tau_a >= 1) & (tau_b >= 1)
    w_f, w_g = jnp.where(pos_f, 1.0, 0.0).astype(r.dtype), jnp.where(pos_g, -1.0, 0.0).astype(r.dtype)
    w_norm2 = jnp.sum(w_f) - jnp.sum(w_g)
    ridge = jnp.where(balanced, (jnp.sum(r) + jnp.sum(c)) / w_norm2, 0.0)

    def project(vf: Array, vg: Array) -> tuple[Array, Array]:
        t = jnp.where(balanced, (jnp.sum(vf * w_f) + jnp.sum(vg * w_g)) / w_norm2, 0.0)
        return jnp.where(pos_f, vf - t * w_f, 0.0), jnp.where(pos_g, vg - t * w_g, 0.0)

    def matvec(v: tuple[Array, Array]) -> tuple[Array, Array]:
        vf, vg = v
        t = ridge * (jnp.sum(vf * w_f) + jnp.sum(vg * w_g)) / w_norm2
        p_vg, pt_vf = both(vf, vg)
        out_f = jnp.where(pos_f, (r + d_a) * vf + p_vg + t * w_f, vf)
        out_g = jnp.where(pos_g, pt_vf + (c + d_b) * vg + t * w_g, vg)
        return out_f, out_g

    diag_f = jnp.where(pos_f, r + d_a + ridge / w_norm2, 1.0)
    diag_g = jnp.where(pos_g, c + d_b + ridge / w_norm2, 1.0)
    tiny = jnp.finfo(r.dtype).tiny
    precond = lambda v: (v[0] / jnp.maximum(diag_f, tiny), v[1] / jnp.maximum(diag_g, tiny))  # noqa: E731
    rhs = project(f_bar, g_bar)
    rtol, fail = cg_tolerances(r.dtype)
    sol = cg_solve(matvec, rhs, precond, rtol=rtol, maxiter=cg_maxiter)
    lam = project(*sol.x)
    # A solve that did not reach the accuracy the dtype allows says so: NaN gradients, never wrong ones.
    solved = sol.residual <= fail
    lam = tuple(jnp.where(solved, v, jnp.nan) for v in lam)
    lam_f, lam_g = lam[0] * eps, lam[1] * eps  # H = (eps H) / eps

    def directional(geom_: Any, a_: Array, b_: Array, ta: Array, tb: Array) -> Array:
        fun = lambda ff, gg: dual_objective(ff, gg, geom_, a_, b_, ta, tb)  # noqa: E731
        return jax.jvp(fun, (f, g), (lam_f, lam_g))[1]

    return jax.grad(directional, argnums=(0, 1, 2, 3, 4))(geom, a, b, tau_a, tau_b)
