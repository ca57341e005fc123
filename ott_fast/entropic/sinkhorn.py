"""Log-domain Sinkhorn: balanced and unbalanced, epsilon schedule, safe adaptive over-relaxation or safeguarded
Anderson acceleration.

The solver carries the potentials ``f[n]``, ``g[m]`` together with the log row and column sums of the plan
at those potentials, so the convergence error (docs/design.md's L1 marginal violation) is available at every
check for free, and each iteration costs exactly two one-pass log-sum-exp sweeps over the cost matrix.

Plan convention (KL form): ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / epsilon)``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast._tuning import tuning
from ott_fast.entropic import driver
from ott_fast.entropic import dual as _dual
from ott_fast.geometry import Geometry, GibbsKernel, Kernel, PointCloud, with_weights_jit

Array = jax.Array
Geom = Geometry | PointCloud

__all__ = ["sinkhorn", "SinkhornOutput", "EpsilonSchedule", "warmup", "SinkhornState"]


class EpsilonSchedule(NamedTuple):
    """Geometric epsilon decay: iteration ``i`` (1-based) uses ``max(epsilon, init * decay**(i - 1))``.

    Attributes:
        init: starting epsilon (absolute). ``None`` uses the largest entry of the cost matrix.
        decay: factor in ``(0, 1)`` applied per iteration.

    Example:
        >>> sched = EpsilonSchedule(init=1.0, decay=0.8)
    """

    init: Any = None
    decay: Any = 0.8


class _Static(NamedTuple):
    max_iters: int
    check_every: int
    accelerate: bool
    implicit_diff: bool
    cg_maxiter: int
    batching: str
    init_from_f: bool = False
    throw: bool = False
    anderson: int = 0  # Anderson memory; 0: off
    symmetric: bool = False  # a symmetric problem (C = C^T, a = b): averaged updates of f = g, one sweep each
    gibbs: bool = False  # blocks at the target epsilon sweep a Gibbs kernel built at their start (_block)


class _Numerics(NamedTuple):
    tol: Array
    tau_a: Array
    tau_b: Array
    eps_init: Array | None  # None with a decay: the largest cost; None without one: no schedule
    eps_decay: Array | None  # None: no schedule, every iteration uses the target epsilon itself
    omega_max: Array


class SinkhornState(NamedTuple):
    """The loop's state (public within the package: SNS warms up with it, see :func:`warmup`).

    ``log_r``/``log_c`` are the log row/column sums of the plan at ``(f, g)`` without the weights: the row
    marginal is ``a * exp(log_r)``. ``errors``/``duals`` have one slot per check, NaN where none happened.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> s = warmup(otf.Geometry(jnp.zeros((3, 2)), epsilon=1.0), jnp.full(3, 1 / 3), jnp.full(2, 0.5), iters=5)
        >>> s.f.shape, s.errors.shape
        ((3,), (1,))
    """

    f: Array
    g: Array
    log_r: Array  # log sum_j b_j exp((f_i + g_j - C_ij) / eps): row marginal is a * exp(log_r)
    log_c: Array  # likewise for columns
    it: Array  # iterations done
    k: Array  # checks done
    omega: Array  # current over-relaxation factor (1 = plain Sinkhorn)
    err_prev: Array
    err_best: Array
    errors: Array  # [n_checks], NaN where no check happened
    duals: Array  # [n_checks] dual objective at each check, NaN where no check happened
    converged: Array
    anderson: Any = None  # an _Anderson history when acceleration="anderson", else None (no leaves)


class _Anderson(NamedTuple):
    """Anderson history over the fixed-point map ``g -> T(g)`` (one Sinkhorn iteration, ``f`` eliminated).

    ``dx``/``dr`` hold the last ``k`` differences of iterates ``x = g`` and of their residuals
    ``r = T(g) - g``, oldest first; rows before the last ``count`` are zero (unused)."""

    dx: Array  # [k, m]
    dr: Array  # [k, m]
    count: Array  # valid rows, <= k
    x_last: Array  # [m] the last iterate fed in
    r_last: Array  # [m] its residual
    has_last: Array  # whether x_last / r_last hold a pair
    y: Array  # [m] the plain step T(x_last): where a rejected extrapolation falls back to
    d_prev: Array  # dual value D(f(x), x) at the last iterate fed in (-inf: none)
    extrapolated: Array  # whether the current g is an extrapolation (still to be checked)


class SinkhornOutput(NamedTuple):
    """Result of :func:`sinkhorn`; an immutable pytree, so it passes through ``jit`` and ``vmap``.

    Attributes:
        f: ``[n]`` row potential.  g: ``[m]`` column potential.
        errors: ``[max_iters // check_every]`` L1 marginal error at each check, NaN after the stop.
        n_iters: iterations run (the first, exact, iteration included).
        converged: error <= tol at a check with finite values.
        geom, a, b, tau_a, tau_b: the problem, kept for the derived quantities below.
        duals: ``[max_iters // check_every]`` dual objective ``D(f, g)`` at each check (its optimality gap
            ``D* - D`` is the convergence curve the error cannot give), NaN after the stop.
        status: ``[]`` int32, why the solve stopped: a :class:`~ott_fast.entropic.driver.Status` code
            (``otf.describe(out.status)`` says it in words).
        error: ``[]`` the L1 marginal error recomputed exactly from the returned ``f``, ``g`` (what
            ``converged`` was decided on); NaN for invalid input or non-finite values.
        envelope: ``[]`` bool, whether gradients of ``reg_ot_cost`` hold the potentials fixed (True with
            implicit differentiation, see :attr:`reg_ot_cost`).
        trace_iters: ``None`` from :func:`sinkhorn` (entry ``k`` of ``errors`` is at iteration
            ``(k + 1) * check_every``); from :func:`~ott_fast.sns`, like ``errors``: the iteration count at
            which each entry was measured (NaN where unused).
        newton: ``None`` from :func:`sinkhorn`; from :func:`~ott_fast.sns`, its
            :class:`~ott_fast.NewtonDiagnostics`.

    :func:`sinkhorn` and :func:`~ott_fast.sns` return this one type (``otf.SNSOutput`` is another name for
    it), so every derived quantity below is written once for both solvers.

    ``converged`` is a promise about the returned outputs: the plan they define meets ``tol``. On invalid
    input (seen in-graph) or non-finite values, ``f``, ``g`` and every cost are NaN. Derived quantities are
    compiled once per problem structure, so accessing them eagerly again costs no retracing.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
        >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.5))
        >>> out.matrix.shape, out.apply(x).shape, bool(out.reg_ot_cost >= out.transport_cost - 1e-6)
        ((8, 8), (8, 2), True)
    """

    f: Array
    g: Array
    errors: Array
    n_iters: Array
    converged: Array
    geom: Geom
    a: Array
    b: Array
    tau_a: Array
    tau_b: Array
    duals: Array
    status: Array
    error: Array
    envelope: Array
    trace_iters: Array | None = None
    newton: Any = None

    @property
    def matrix(self) -> Array:
        """The transport plan ``P[n, m]``."""
        return self._masked(_dual.plan_jit(self.f, self.g, self.geom, self.a, self.b))

    @property
    def reg_ot_cost(self) -> Array:
        """Entropic cost ``<P, C> + eps KL(P | a b^T)`` (+ the KL marginal penalties if unbalanced).

        Computed as the dual objective ``D(f, g)`` at the returned potentials, which equals it at the optimum.
        Its gradient (with implicit differentiation, the default) is the envelope theorem's: ``D``'s partial
        derivatives in the geometry, epsilon, the weights and ``tau`` at fixed ``(f, g)``, the exact gradient
        of the optimal value (``dD/d(f, g) = 0`` there), with no linear solve. Differentiating through the
        potentials instead would add ``dD/d(f, g) . d(f, g)/dtheta``, the residual at ``tol`` times an
        ill-conditioned solve: in float32 at small epsilon that term is rounding noise larger than the
        gradient itself. With ``implicit_diff=False`` the gradient goes through the unrolled iterations
        (the derivative of exactly what was computed)."""
        f, g = _frozen(self.f, self.envelope), _frozen(self.g, self.envelope)
        return self._masked(_dual.dual_objective_jit(f, g, self.geom, self.a, self.b, self.tau_a, self.tau_b))

    @property
    def transport_cost(self) -> Array:
        """Linear transport cost ``<P, C>`` of the entropic plan (what POT's ``sinkhorn2`` returns)."""
        return self._masked(_dual.plan_cost_jit(self.f, self.g, self.geom, self.a, self.b))

    def apply(self, v: Array, axis: int = 0) -> Array:
        """``P^T v`` for ``v[n, ...]`` (``axis=0``) or ``P v`` for ``v[m, ...]`` (``axis=1``); chunked when online."""
        return self._masked(_dual.plan_apply_jit(self.f, self.g, self.geom, self.a, self.b, jnp.asarray(v), axis))

    def _masked(self, value: Array) -> Array:
        """NaN wherever the solve failed (invalid input, non-finite values). The potentials are NaN there
        already; this makes every derived value NaN too, whatever the compiler does with NaN inputs."""
        failed = driver.failed(self.status)
        failed = jnp.reshape(failed, failed.shape + (1,) * (value.ndim - failed.ndim))
        return jnp.where(failed, jnp.nan, value)


def _frozen(x: Array, envelope: Array) -> Array:
    """``x`` held constant in gradients where ``envelope`` is True (a traced flag: batched outputs carry one
    per member)."""
    flag = jnp.reshape(envelope, jnp.shape(envelope) + (1,) * (x.ndim - jnp.ndim(envelope)))
    return jnp.where(flag, jax.lax.stop_gradient(x), x)


# --------------------------------------------------------------------------------------------- updates


def block_update(f: Array, log_s: Array, eps: Array, tau: Array, omega: Array, accelerate: bool) -> Array:
    """One half-step: the exact block maximiser ``tau (f - eps log_s)``, over-relaxed by ``omega`` per row
    wherever that still gains at least a fixed fraction of the exact step's dual gain."""
    f_star = tau * (f - eps * log_s)
    if not accelerate:
        return f_star
    d_star = f_star - f
    d_om = omega * d_star

    def gain(d: Array) -> Array:  # dual gain of row i per unit weight; concave in d, max at d_star
        return _dual.psi_diff(f, d, eps, tau) - eps * jnp.exp(log_s) * jnp.expm1(d / eps)

    tiny = jnp.abs(d_om) < 1e-3 * eps  # quadratic regime: the gain ratio is omega (2 - omega) >= 0.19
    ok = tiny | (gain(d_om) >= _KAPPA * gain(d_star))
    return jnp.where(ok, f + d_om, f_star)


_KAPPA = 0.1  # sufficient-increase fraction; omega_max <= 1.9 keeps the quadratic-regime ratio above it


def _eps_at(i: Array, eps: Array, num: _Numerics) -> Array:
    """Epsilon used by iteration ``i`` (1-based). Without a schedule the target itself: every ``1 / eps`` of
    the solve is then one loop-invariant value, and XLA forms ``C / eps`` once before the loop instead of in
    every sweep (n = m = 1024: 21 iterations 28 -> 22 ms)."""
    if num.eps_decay is None:
        return eps
    return jnp.maximum(eps, num.eps_init * num.eps_decay ** (i - 1).astype(eps.dtype))


def _marginal_error(s: SinkhornState, a: Array, b: Array, eps: Array, num: _Numerics) -> Array:
    return _dual.marginal_error(s.f, s.g, s.log_r, s.log_c, a, b, eps, num.tau_a, num.tau_b)


def _dual_value(s: SinkhornState, a: Array, b: Array, eps: Array, num: _Numerics) -> Array:
    """``D(f, g)`` from the carried row sums (the plan's mass is ``sum_i a_i exp(log_r_i)``)."""
    return _dual.dual_value(s.f, s.g, a, b, jnp.sum(_dual.mass_of(a, s.log_r)), eps, num.tau_a, num.tau_b)


def _first_iteration(geom: Kernel, a: Array, b: Array, g0: Array, num: _Numerics, static: _Static) -> SinkhornState:
    """Iteration 1, with exact two-pass sweeps: afterwards every log-sum the one-pass sweeps meet is bounded
    by ``log n`` (an exact half-step normalises the other side), so no max pass is needed again. With
    ``init=(f, None)``, ``g0`` holds that ``f`` and the start is its exact g half-step."""
    la, lb = _dual.safe_log(a), _dual.safe_log(b)
    eps_t = geom.epsilon
    eps1, eps2 = _eps_at(jnp.int32(1), eps_t, num), _eps_at(jnp.int32(2), eps_t, num)
    inv1 = 1.0 / eps1
    zn, zm = jnp.zeros((geom.shape[0],), a.dtype), jnp.zeros((geom.shape[1],), a.dtype)
    if static.init_from_f:
        g0 = -num.tau_b * eps1 * geom.col_lse_exact(g0 * inv1 + la, zm, inv1)
    f = -num.tau_a * eps1 * geom.row_lse_exact(zn, g0 * inv1 + lb, inv1)
    if static.symmetric:
        return _symmetric_start(geom, a, b, f, num, static)
    lc = geom.col_lse_exact(f * inv1 + la, zm, inv1)  # log col sums at g = 0
    g = -num.tau_b * eps1 * lc
    log_c = g * inv1 + lc
    inv2 = 1.0 / eps2
    log_r = geom.row_lse(f * inv2, g * inv2 + lb, inv2)
    n_checks = static.max_iters // static.check_every
    nan = jnp.full((n_checks,), jnp.nan, dtype=f.dtype)
    one = jnp.ones((), f.dtype)
    inf = jnp.asarray(jnp.inf, f.dtype)
    hist = _anderson_init(static.anderson, g) if static.anderson else None
    s = SinkhornState(
        f, g, log_r, log_c, jnp.int32(1), jnp.int32(0), one, inf, inf, nan, nan, jnp.zeros((), bool), hist
    )
    # The error after this iteration is free: it is the reference of the first block's rate estimate.
    err = jax.lax.stop_gradient(_marginal_error(s, a, b, eps_t, num))
    err = jnp.where(eps2 <= eps_t, err, inf)  # meaningless while epsilon still decays
    return s._replace(err_prev=err, err_best=err)


def _symmetric_start(geom: Kernel, a: Array, b: Array, f: Array, num: _Numerics, static: _Static) -> SinkhornState:
    """The state after iteration 1 of a symmetric problem: ``g = f``, its row sums (the column sums too)."""
    eps_t = geom.epsilon
    inv2 = 1.0 / _eps_at(jnp.int32(2), eps_t, num)
    log_r = geom.row_lse_exact(f * inv2, f * inv2 + _dual.safe_log(b), inv2)
    n_checks = static.max_iters // static.check_every
    nan = jnp.full((n_checks,), jnp.nan, dtype=f.dtype)
    inf = jnp.asarray(jnp.inf, f.dtype)
    no = jnp.zeros((), bool)
    s = SinkhornState(f, f, log_r, log_r, jnp.int32(1), jnp.int32(0), jnp.ones((), f.dtype), inf, inf, nan, nan, no)
    return s


def _symmetric_iteration(geom: Kernel, lb: Array, num: _Numerics, s: SinkhornState) -> SinkhornState:
    """Iteration ``s.it + 1`` of a symmetric problem (``C = C^T``, ``a = b``, ``tau_a = tau_b``), whose optimum
    has ``f = g``: the average of ``f`` and its exact half-step, then one row sweep (Feydy et al.'s symmetric
    update for the self terms of the divergence). Plain alternating Sinkhorn oscillates between two mirror
    iterates there and converges slowly; the average damps that mode."""
    eps_t = geom.epsilon
    eps, eps_next = _eps_at(s.it + 1, eps_t, num), _eps_at(s.it + 2, eps_t, num)
    f = 0.5 * (s.f + num.tau_a * (s.f - eps * s.log_r))
    inv_n = 1.0 / eps_next
    log_r = geom.row_lse(f * inv_n, f * inv_n + lb, inv_n)
    return s._replace(f=f, g=f, log_r=log_r, log_c=log_r, it=s.it + 1)


def _iteration(geom: Kernel, la: Array, lb: Array, num: _Numerics, static: _Static, s: SinkhornState) -> SinkhornState:
    """Iteration ``s.it + 1``: f half-step from the carried row sums, column sweep, g half-step, row sweep."""
    if static.symmetric:
        return _symmetric_iteration(geom, lb, num, s)
    eps_t = geom.epsilon
    eps, eps_next = _eps_at(s.it + 1, eps_t, num), _eps_at(s.it + 2, eps_t, num)
    omega = jnp.where(eps > eps_t, 1.0, s.omega).astype(eps.dtype)  # plain steps while epsilon decays
    inv = 1.0 / eps
    f = block_update(s.f, s.log_r, eps, num.tau_a, omega, static.accelerate)
    lc = geom.col_lse(f * inv + la, s.g * inv, inv)
    g = block_update(s.g, lc, eps, num.tau_b, omega, static.accelerate)
    log_c = lc + (g - s.g) * inv  # column sums at the new g, in closed form
    inv_n = 1.0 / eps_next
    log_r = geom.row_lse(f * inv_n, g * inv_n + lb, inv_n)
    return s._replace(f=f, g=g, log_r=log_r, log_c=log_c, it=s.it + 1)


def _anderson_init(k: int, g: Array) -> _Anderson:
    z, zm, no = jnp.zeros((k, g.shape[0]), g.dtype), jnp.zeros_like(g), jnp.zeros((), bool)
    return _Anderson(z, z, jnp.int32(0), zm, zm, no, g, jnp.asarray(-jnp.inf, g.dtype), no)


def _anderson_iteration(
    geom: Kernel, a: Array, b: Array, la: Array, lb: Array, num: _Numerics, static: _Static, s: SinkhornState
) -> SinkhornState:
    """Iteration ``s.it + 1`` with safeguarded Anderson acceleration of ``T: g -> g``-half-step(f-half-step(g)).

    1. Safeguard, one iteration late (for free: the row sums at the current ``g`` are carried): if the
       current ``g`` was extrapolated and its dual ``D(f(g), g)`` fell below the previous iterate's, fall
       back to the plain step ``T`` of that iterate (one extra row sweep, only then) and clear the history.
    2. A plain iteration ``y = T(g)``; the pair ``(g, y - g)`` joins the history.
    3. The next iterate mixes the last ``k`` steps: ``y - (dX + dR) gamma``, ``gamma`` the Tikhonov-
       regularised least-squares fit of the residual by its differences (a ``k x k`` solve). Row sweep there;
       an extrapolation whose marginals overflow is replaced by ``y`` at once (one more row sweep, only then).
    The dual's rounding slack is scaled by the last iterate that passed, not by a possibly wild current one.
    While epsilon still decays the steps are plain and the history stays empty.
    """
    h = s.anderson
    eps_t = geom.epsilon
    eps, eps_next = _eps_at(s.it + 1, eps_t, num), _eps_at(s.it + 2, eps_t, num)
    inv = 1.0 / eps
    on = eps <= eps_t
    dtype = s.g.dtype

    def dual_at(f: Array, g: Array, log_r: Array) -> Array:  # D at (f(g), g): after the exact f half-step
        f1 = num.tau_a * (f - eps * log_r)
        mass = jnp.sum(_dual.mass_of(a, log_r + (f1 - f) * inv))
        return _dual.dual_value(f1, g, a, b, mass, eps, num.tau_a, num.tau_b)

    d = dual_at(s.f, s.g, s.log_r)
    g_safe = jnp.where(h.has_last, h.x_last, s.g)  # the last iterate that passed (the current g may not)
    scale = (
        jnp.sum(jnp.abs(_dual.weighted(a, s.f)))
        + jnp.sum(jnp.abs(_dual.weighted(b, g_safe)))
        + eps * jnp.sum(a) * jnp.sum(b)
    )
    slack = 16 * jnp.finfo(dtype).eps * scale  # rounding of D: near the optimum steps change it below that
    reject = h.extrapolated & on & ~(d >= h.d_prev - slack)  # NaN rejects too

    def fall_back(_: None) -> tuple[Array, Array, Array]:
        log_r = geom.row_lse(s.f * inv, h.y * inv + lb, inv)
        return h.y, log_r, dual_at(s.f, h.y, log_r)

    g, log_r, d = jax.lax.cond(reject, fall_back, lambda _: (s.g, s.log_r, d), None)
    f = num.tau_a * (s.f - eps * log_r)
    lc = geom.col_lse(f * inv + la, g * inv, inv)
    y = num.tau_b * (g - eps * lc)
    # Absent columns (b_j = 0) are left out of the fit and take plain steps: their potentials move no mass, a
    # far padded point's residual would dominate the least squares (padding would change the iterates), and
    # extrapolating them could overflow.
    r = jnp.where(b > 0, y - g, 0.0)

    k = static.anderson
    keep = on & ~reject  # otherwise the history restarts from the pair (g, r)
    push = keep & h.has_last
    dx = jnp.where(push, jnp.concatenate([h.dx[1:], (g - h.x_last)[None]]), h.dx)
    dr = jnp.where(push, jnp.concatenate([h.dr[1:], (r - h.r_last)[None]]), h.dr)
    dx, dr = jnp.where(keep, dx, 0.0), jnp.where(keep, dr, 0.0)
    count = jnp.where(keep, jnp.minimum(h.count + push.astype(jnp.int32), k), 0)
    gamma = _anderson_weights(dr, r, count)
    g_aa = jnp.where(b > 0, y - jnp.matmul(gamma, dx + dr, precision=_dual.HIGHEST), y)  # absent: plain steps
    inv_n = 1.0 / eps_next

    def at(g_new: Array) -> tuple[Array, Array, Array]:  # g_new with its row sweep and closed-form column sums
        return g_new, geom.row_lse(f * inv_n, g_new * inv_n + lb, inv_n), lc + (g_new - g) * inv

    use = on & (count > 0)
    g_new, log_r, log_c = at(jnp.where(use, g_aa, y))
    # An extrapolation whose marginals overflow (or are NaN) is never handed on (a check may come before the
    # safeguard sees it; W1 between images at eps = 1/1200 overshoots that far on the first mixes): plain step.
    finite = jnp.isfinite(jnp.sum(_dual.mass_of(a, log_r)) + jnp.sum(_dual.mass_of(b, log_c)))
    blown = use & ~finite
    g_new, log_r, log_c = jax.lax.cond(blown, lambda: at(y), lambda: (g_new, log_r, log_c))
    use = use & ~blown
    d_prev = jnp.where(on, d, -jnp.inf).astype(dtype)
    h = _Anderson(dx, dr, count, g, r, on, y, d_prev, use)
    return s._replace(f=f, g=g_new, log_r=log_r, log_c=log_c, it=s.it + 1, anderson=h)


def _anderson_weights(dr: Array, r: Array, count: Array) -> Array:
    """``gamma[k] = argmin |r - dR^T gamma|^2 + lam |gamma|^2`` over the last ``count`` rows of ``dR[k, m]``
    (zero on the others), ``lam`` a small multiple of the Gram matrix's mean diagonal. The mixing weights
    steer the iteration; they are not differentiated (the solve's gradient is implicit, or through ``y``)."""
    dr, r = jax.lax.stop_gradient(dr), jax.lax.stop_gradient(r)
    k = dr.shape[0]
    valid = jnp.arange(k) >= k - count
    gram = jnp.matmul(dr, dr.T, precision=_dual.HIGHEST)
    diag = jnp.diagonal(gram)
    info = jnp.finfo(dr.dtype)
    lam = (1e-10 if dr.dtype == jnp.float64 else 1e-6) * jnp.sum(diag) / jnp.maximum(count, 1) + info.tiny
    gram = gram + jnp.diag(jnp.where(valid, lam, 1.0))
    rhs = jnp.where(valid, jnp.matmul(dr, r, precision=_dual.HIGHEST), 0.0)
    gamma = jnp.linalg.solve(gram, rhs)
    return jnp.where(valid & jnp.all(jnp.isfinite(gamma)), gamma, 0.0)


def _block(geom: Kernel, a: Array, b: Array, num: _Numerics, static: _Static, s: SinkhornState) -> SinkhornState:
    """``check_every`` iterations, then the check: error, convergence, adaptive over-relaxation factor."""
    la, lb = _dual.safe_log(a), _dual.safe_log(b)
    eps_t = geom.epsilon

    def iterations(kern: Any, st: SinkhornState) -> SinkhornState:
        if static.anderson:
            step = lambda _, x: _anderson_iteration(kern, a, b, la, lb, num, static, x)  # noqa: E731
        else:
            step = lambda _, x: _iteration(kern, la, lb, num, static, x)  # noqa: E731
        return jax.lax.fori_loop(0, static.check_every, step, st)

    if static.gibbs:  # see _uses_gibbs
        s = _gibbs_block(geom, iterations, num, s)
    else:
        s = iterations(geom, s)
    err = jax.lax.stop_gradient(_marginal_error(s, a, b, eps_t, num))  # checks steer, they are not differentiated
    at_target = _eps_at(s.it, eps_t, num) <= eps_t
    converged = at_target & driver.loop_met(err, num.tol)
    omega = s.omega
    if static.accelerate:
        omega = _adapt_relaxation(omega, err / s.err_prev, err > 100 * s.err_best, at_target, num, static)
    slot = jnp.arange(s.errors.shape[0]) == s.k
    errors = jnp.where(slot, err, s.errors)  # no scatter: any sharding mode
    duals = jnp.where(slot, jax.lax.stop_gradient(_dual_value(s, a, b, eps_t, num)), s.duals)
    omega = jax.lax.stop_gradient(omega)
    err_best = jnp.minimum(s.err_best, err)
    return s._replace(
        k=s.k + 1, omega=omega, err_prev=err, err_best=err_best, errors=errors, duals=duals, converged=converged
    )


def _gibbs_block(geom: Kernel, iterations: Any, num: _Numerics, s: SinkhornState) -> SinkhornState:
    """``iterations(kernel, s)`` on the Gibbs kernel at the block's starting potentials where the block runs at
    the target epsilon; earlier blocks (epsilon still decaying) sweep ``geom``, and so does every sweep the
    Gibbs kernel could get wrong (:class:`~ott_fast.geometry.GibbsKernel`)."""
    eps_t = geom.epsilon
    inv_t = 1.0 / eps_t

    def on_gibbs(st: SinkhornState) -> SinkhornState:
        return iterations(GibbsKernel(geom, st.f * inv_t, st.g * inv_t, st.log_r, inv_t), st)

    at_target = _eps_at(s.it + 1, eps_t, num) <= eps_t
    return jax.lax.cond(at_target, on_gibbs, lambda st: iterations(geom, st), s)


def _adapt_relaxation(
    omega: Array, ratio: Array, diverging: Array, at_target: Array, num: _Numerics, static: _Static
) -> Array:
    """Next over-relaxation factor, from the error ratio ``ratio`` of the block just run.

    After a plain block whose error fell, the measured Sinkhorn rate ``mu2`` gives the optimal SOR factor
    of a two-block iteration, ``2 / (1 + sqrt(1 - mu2))``. The rate seen early underestimates the
    asymptotic one, and SOR's rate is steep below the optimal factor but flat above it, so the factor is
    moved a quarter of the way from that estimate towards 2 (on the benchmark problems the best fixed
    factor is ~1.5 in d=64 and ~1.7 in d=3). It is then kept: later blocks are too non-linear for SOR
    theory to re-estimate it (tried: re-estimates ratchet it to the cap, and resetting when a relaxed
    block looks slow fires on the transient of every first relaxed block). An error grown 100x over the
    best seen sends it back to plain steps, which measure the rate afresh.
    """
    best = driver.sor_factor(jnp.clip(ratio, 0.0, 1.0) ** (1.0 / static.check_every), num.omega_max)
    plain = (omega == 1) & at_target & (ratio > 0) & (ratio < 1)  # ratio is 0 after the first block
    omega = jnp.where(plain, best, omega)
    return jnp.where(diverging, 1.0, omega).astype(omega.dtype)


def _keep_going(s: SinkhornState, n_checks: int | Array) -> Array:
    last = s.errors[jnp.maximum(s.k - 1, 0)]
    finite = (s.k == 0) | jnp.isfinite(last)
    return (s.k < n_checks) & ~s.converged & finite


def _loop(
    static: _Static, pg: Kernel, a: Array, b: Array, g0: Array, num: _Numerics, max_checks: Array | None = None
) -> SinkhornState:
    """The first iteration, then blocks of ``check_every`` iterations until converged, capped or non-finite
    (``max_checks``: a traced cap on the blocks, below the static one)."""
    if num.eps_init is None and num.eps_decay is not None:
        num = num._replace(eps_init=pg.max_cost(a, b))
    s = _first_iteration(pg, a, b, g0, num, static)
    n_checks = static.max_iters // static.check_every
    if max_checks is not None:
        n_checks = jnp.minimum(n_checks, max_checks)
    if static.implicit_diff:  # under vmap, only the members still going run a block (driver.while_loop)
        return driver.while_loop(
            lambda ops, st: _keep_going(st, ops[-1]),
            lambda ops, st: _block(*ops[:-1], static, st),
            (pg, a, b, num, jnp.asarray(n_checks, jnp.int32)),
            s,
        )
    body = lambda st: _block(pg, a, b, num, static, st)  # noqa: E731

    # Unrolled: a scan that reverse-mode autodiff can go through; finished problems are frozen. Each step
    # (the check's cond included) is checkpointed, so the backward pass stores one state, O(n + m), per
    # check and recomputes that block's iterations from it; the kernel is a loop-invariant input, stored
    # once. (Checkpointing only the block inside the cond made the cond output the cost matrix as a
    # residual of every step: 133 MB instead of 10 MB at n = m = 200, max_iters = 2000.)
    @jax.checkpoint
    def step(st: SinkhornState, _: None) -> tuple[SinkhornState, None]:
        return jax.lax.cond(_keep_going(st, n_checks), body, lambda x: x, st), None

    return jax.lax.scan(step, s, None, length=static.max_iters // static.check_every)[0]


def _run_single(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> tuple:
    pg = geom.kernel()
    valid = driver.input_is_valid(pg, a, b, num.tau_a, num.tau_b)
    s = _loop(static, pg, a, b, g0, num)
    fin = driver.finalize(s.f, s.g, pg, a, b, num.tau_a, num.tau_b, num.tol, valid, s.converged)
    if static.throw:
        driver.throw_on_failure("sinkhorn", fin.status)
    return fin.f, fin.g, s.errors, s.it, fin.converged, s.duals, fin.status, fin.error


def warmup(
    geom: Geom | Kernel,
    a: Array,
    b: Array,
    *,
    iters: int,
    check_every: int = 5,
    accelerate: bool = True,
    tol: Any = 0.0,
    g0: Array | None = None,
    budget: Any = None,
) -> SinkhornState:
    """``iters`` balanced Sinkhorn iterations (fewer if ``tol`` is met) from ``g0``, returning the loop state:
    the warm-up other solvers start from (SNS's, and its fallback blocks), through the same loop as
    :func:`sinkhorn`.

    Args:
        geom: the geometry, or its :class:`~ott_fast.geometry.Kernel`.  a, b: ``[n]``, ``[m]`` weights.
        iters: a multiple of ``check_every`` (static).  check_every: iterations per check (static).
        accelerate: adaptive over-relaxation (static).  tol: stop early once the running error is ``<= tol``
        (0: run all ``iters``).  g0: ``[m]`` start.  budget: a traced cap on the iterations after the first
        (at most ``iters``, rounded down to whole checks): blocks of varying length without recompiling.

    Example:
        >>> import jax, ott_fast as otf
        >>> geom = otf.Geometry(jax.random.uniform(jax.random.PRNGKey(0), (4, 3)), epsilon=0.1)
        >>> s = warmup(geom, jax.numpy.full(4, 0.25), jax.numpy.full(3, 1 / 3), iters=10)
        >>> int(s.it), s.errors.shape
        (11, (2,))
    """
    dtype = a.dtype
    one = jnp.ones((), dtype)
    num = _Numerics(jnp.asarray(tol, dtype), one, one, jnp.zeros((), dtype), one, jnp.asarray(1.9, dtype))
    static = _Static(iters, check_every, accelerate, True, 0, "parallel")
    g0 = jnp.zeros((geom.shape[1],), dtype) if g0 is None else g0
    kern = geom if isinstance(geom, Kernel) else geom.kernel()
    max_checks = None if budget is None else jnp.asarray(budget, jnp.int32) // check_every
    return _loop(static, kern, a, b, g0, num, max_checks)


def _num_cotangent(num: _Numerics, g_ta: Array, g_tb: Array) -> _Numerics:
    return jax.tree_util.tree_map(jnp.zeros_like, num)._replace(tau_a=g_ta, tau_b=g_tb)


_solve_implicit, _solve_unrolled = driver.make_solve(
    _run_single,
    taus=lambda num: (num.tau_a, num.tau_b),
    cg_maxiter=lambda static: static.cg_maxiter,
    mode=lambda static, shape: driver.batched_mode(static.batching, shape, static.implicit_diff),
    num_cotangent=_num_cotangent,
)


def sinkhorn(
    geom: Geom,
    a: Any = None,
    b: Any = None,
    *,
    tol: Any = 1e-3,
    max_iters: int | None = None,
    check_every: int = 5,
    tau_a: Any = 1.0,
    tau_b: Any = 1.0,
    init: tuple[Any, Any] | None = None,
    schedule: EpsilonSchedule | None = None,
    acceleration: Literal["adaptive", "anderson", "none"] = "adaptive",
    anderson_memory: int = 5,
    max_relaxation: Any = 1.9,
    implicit_diff: bool = True,
    cg_maxiter: int = 2000,
    batching: Literal["auto", "parallel", "sequential"] = "auto",
    throw: bool = False,
    symmetric: bool = False,
) -> SinkhornOutput:
    """Solves entropic OT between ``a[n]`` and ``b[m]`` on ``geom`` with log-domain Sinkhorn.

    Args:
        geom: a :class:`~ott_fast.Geometry` or :class:`~ott_fast.PointCloud` (it carries ``epsilon``).
        a, b: ``[n]``, ``[m]`` non-negative weights; ``None`` means uniform. Balanced problems need equal mass.
        tol: stop when the L1 marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1`` is ``<= tol`` (unbalanced: the
            violation of the relaxed marginal conditions ``P 1 = a exp(-f / rho_a)``). ``tol=0`` runs exactly
            ``max_iters`` iterations (a fixed budget, for curves and benchmarks; ``converged`` is then False).
            The default, 1e-3, suits Sinkhorn's linear rate (each further digit costs as many iterations as
            the last) and the uses it serves (losses, gradients, plans for sampling); :func:`~ott_fast.sns`
            defaults to 1e-6 because its Newton steps make high accuracy cheap.
        max_iters: iteration cap (static), a multiple of ``check_every``; ``None`` means 2000 rounded up to
            a multiple of ``check_every``.
        check_every: iterations between convergence checks (static); the trace has ``max_iters // check_every``
            entries.
        tau_a, tau_b: in ``(0, 1]``; ``1`` is balanced, ``rho / (rho + epsilon)`` relaxes that marginal with
            a KL penalty of weight ``rho``.
        init: warm start ``(f, g)`` with exactly one of them given, the other ``None``: the first half-step
            computes the missing one exactly (``(None, g)``: ``f`` from ``g``; ``(f, None)``: ``g`` from
            ``f``). Passing both is an error, since the first half-step would overwrite one of them.
        schedule: an :class:`EpsilonSchedule`; the solve only stops once ``epsilon`` has reached its target.
        acceleration: ``"adaptive"`` over-relaxes with a factor set from the measured Sinkhorn rate, keeping a
            row's relaxed step only where it gains at least 10% of the exact step's dual gain (so the dual
            increases monotonically) and falling back to plain steps whenever the error grows; ``"none"`` is
            plain Sinkhorn. ``"anderson"`` extrapolates every iteration from the last ``anderson_memory``
            iterates (Anderson acceleration of the fixed-point map ``g -> T(g)``, one Sinkhorn iteration):
            the next ``g`` is the combination of recent steps whose residual ``T(g) - g`` fits best, by a
            Tikhonov-regularised ``k x k`` least-squares solve. It uses the curvature seen along many past
            steps where over-relaxation uses one rate, so it often needs several times fewer iterations at
            small epsilon. Safeguard: an extrapolated ``g`` whose dual ``D(f(g), g)`` is below the previous
            iterate's is replaced by the plain step and the history cleared, so the dual still increases.
            An iteration costs the same two sweeps plus ``O(k m)``; a rejection one more row sweep (under
            ``vmap``, where branches become selects, every iteration pays it). Plain steps while an epsilon
            schedule still decays. Balanced and unbalanced.
        anderson_memory: the number of past steps ``k >= 1`` Anderson mixes (static); used only with
            ``acceleration="anderson"``.
        max_relaxation: the largest over-relaxation factor, in ``[1, 1.9]``.
        implicit_diff: gradients by implicit differentiation of the optimality conditions (default), or
            ``False`` to differentiate through the unrolled iterations (memory grows with iterations).
        cg_maxiter: iteration cap of the conjugate-gradient solve of the implicit backward pass.
        batching: how ``jax.vmap`` batches the solve (static). ``"parallel"``: batched loops in which only
            the members still going run a block, over cache-sized chunks of the batch on CPU (with
            ``implicit_diff=True``) and over the whole batch elsewhere. ``"sequential"``: a loop over
            members. ``"auto"``: sequential on CPU for problems of at least ``2**16`` cost entries with
            ``implicit_diff=True``, where batching gains nothing over a loop, else parallel (see
            :func:`ott_fast.entropic.driver.batched_mode`). Results are the same either way. For a batch
            sharded over devices, pass ``"parallel"``: the sequential loop would gather the batch on every
            device.
        throw: raise a ``RuntimeError`` at run time (under ``jit`` too) when the input is invalid or values
            become non-finite, instead of returning NaN with the reason in ``status``. Opt-in: the check is
            a host callback.
        symmetric: the problem is symmetric (static): a symmetric cost matrix (``x == y`` for a point
            cloud), ``a == b`` and ``tau_a == tau_b``, as in the self terms ``OT(a, a)`` of a divergence. Its
            optimum has ``f = g``, and the solver iterates ``f <- (f + T(f)) / 2`` (``T`` the exact
            half-step), one sweep per iteration, where alternating Sinkhorn oscillates between mirror
            iterates and converges slowly. ``acceleration`` is then not used. The caller vouches for the
            symmetry of the costs; weights and ``tau`` are checked where concrete.

    Validation: shapes and dtypes are checked when traced; concrete values (points, cost matrices, weights,
    scalars; outside ``jit``) are checked eagerly, with a ``ValueError`` naming the argument. Under ``jit``
    they are checked in-graph, and invalid input gives ``converged=False``,
    ``status == Status.INVALID_INPUT`` and NaN potentials and costs.

    Returns:
        A :class:`SinkhornOutput`.

    Example:
        >>> import jax, ott_fast as otf
        >>> kx, ky = jax.random.split(jax.random.PRNGKey(0))
        >>> x, y = jax.random.normal(kx, (64, 2)), jax.random.normal(ky, (48, 2)) + 1.0
        >>> out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), tol=1e-4)
        >>> bool(out.converged), out.f.shape, out.matrix.shape
        (True, (64,), (64, 48))
        >>> geom = otf.PointCloud(x, y, epsilon=0.005, relative_epsilon="mean")
        >>> fast = otf.sinkhorn(geom, tol=1e-4, acceleration="anderson", anderson_memory=5)
        >>> plain = otf.sinkhorn(geom, tol=1e-4, acceleration="none", max_iters=20000)
        >>> bool(fast.converged), bool(fast.n_iters < plain.n_iters / 2)
        (True, True)
    """
    if not isinstance(geom, (Geometry, PointCloud)):
        raise TypeError(f"geom: expected an ott_fast.Geometry or PointCloud, got {type(geom).__name__}.")
    max_iters = _check_iterations(max_iters, check_every)
    if batching not in ("auto", "parallel", "sequential"):
        raise ValueError(f"batching: expected 'auto', 'parallel' or 'sequential', got {batching!r}.")
    if batching == "sequential" and not implicit_diff:
        raise ValueError("batching='sequential' needs implicit_diff=True (reverse mode cannot unroll the loop).")
    if acceleration not in ("adaptive", "anderson", "none"):
        raise ValueError(f"acceleration: expected 'adaptive', 'anderson' or 'none', got {acceleration!r}.")
    anderson_memory = val.check_static_int("anderson_memory", anderson_memory)
    cg_maxiter = val.check_static_int("cg_maxiter", cg_maxiter)
    n, m = geom.shape
    dtype = geom.dtype
    a = val.check_weights("a", a, n, dtype)
    b = val.check_weights("b", b, m, dtype)
    geom = with_weights_jit(geom, a, b)  # relative epsilon and centring under these weights
    val.check_tau("tau_a", tau_a)
    val.check_tau("tau_b", tau_b)
    val.check_nonnegative("tol", tol)
    val.check_positive("epsilon", geom.epsilon)
    if val.is_concrete(tau_a, tau_b) and float(np.asarray(tau_a)) == 1.0 and float(np.asarray(tau_b)) == 1.0:
        val.check_mass(a, b, dtype)
    if val.is_concrete(max_relaxation) and not 1.0 <= float(max_relaxation) <= 1.9:
        raise ValueError(f"max_relaxation: must lie in [1, 1.9], got {float(max_relaxation)}.")
    g0, from_f = initial_potential(init, n, m, dtype)
    if symmetric:
        _check_symmetric(n, m, a, b, tau_a, tau_b)
    if schedule is None:
        eps_init, eps_decay = None, None
    else:
        if not isinstance(schedule, EpsilonSchedule):
            raise TypeError("schedule: expected an ott_fast.EpsilonSchedule or None.")
        if schedule.init is not None:
            val.check_positive("schedule.init", schedule.init)
        if val.is_concrete(schedule.decay) and not 0.0 < float(schedule.decay) < 1.0:
            raise ValueError(f"schedule.decay: must lie in (0, 1), got {float(schedule.decay)}.")
        eps_init = None if schedule.init is None else jnp.asarray(schedule.init, dtype)
        eps_decay = jnp.asarray(schedule.decay, dtype)
    num = _Numerics(
        tol=jnp.asarray(tol, dtype),
        tau_a=jnp.asarray(tau_a, dtype),
        tau_b=jnp.asarray(tau_b, dtype),
        eps_init=eps_init,
        eps_decay=eps_decay,
        omega_max=jnp.asarray(max_relaxation, dtype),
    )
    static = _Static(
        max_iters,
        check_every,
        acceleration == "adaptive" and not symmetric,
        bool(implicit_diff),
        int(cg_maxiter),
        batching,
        from_f,
        bool(throw),
        anderson_memory if acceleration == "anderson" and not symmetric else 0,
        bool(symmetric),
        _uses_gibbs(geom, batching, bool(implicit_diff), check_every),
    )
    solve = _solve_implicit if implicit_diff else _solve_unrolled
    f, g, errors, n_iters, converged, duals, status, error = solve(static, geom, a, b, g0, num)
    envelope = jnp.asarray(bool(implicit_diff))
    return SinkhornOutput(
        f, g, errors, n_iters, converged, geom, a, b, num.tau_a, num.tau_b, duals, status, error, envelope
    )


def _uses_gibbs(geom: Geom, batching: str, implicit_diff: bool, check_every: int) -> bool:
    """Whether the blocks at the target epsilon sweep a :class:`~ott_fast.geometry.GibbsKernel` built at each
    block's start (one ``exp`` sweep per block, then matrix-vector products): for a stored matrix of at most
    ``tuning().gibbs_max_entries`` entries (the kernel is one more buffer of its size), blocks of at least
    ``tuning().gibbs_min_block`` iterations (a shorter block hardly repays the build), and batches that run
    one member at a time (``driver.batched_mode``). A batch run in parallel would turn the kernel's fallback
    ``cond`` into a select that runs both branches, and reverse mode through unrolled iterations never goes
    through it."""
    n, m = geom.shape
    t = tuning()
    dense = isinstance(geom, Geometry) or not geom.online
    small = n * m <= t.gibbs_max_entries
    long_blocks = check_every >= t.gibbs_min_block
    sequential = driver.batched_mode(batching, (n, m), implicit_diff) == "sequential"
    return dense and small and long_blocks and sequential


def _check_symmetric(n: int, m: int, a: Array, b: Array, tau_a: Any, tau_b: Any) -> None:
    """Raises where ``symmetric=True`` is visibly wrong: a non-square problem, or concrete unequal weights or
    ``tau``."""
    if n != m:
        raise ValueError(f"symmetric: needs a square problem (x == y), got shape ({n}, {m}).")
    if val.is_concrete(a, b) and not np.array_equal(np.asarray(a), np.asarray(b)):
        raise ValueError("symmetric: needs a == b (the self term OT(a, a)); the weights differ.")
    if val.is_concrete(tau_a, tau_b) and float(np.asarray(tau_a)) != float(np.asarray(tau_b)):
        raise ValueError("symmetric: needs tau_a == tau_b.")


def _check_iterations(max_iters: int | None, check_every: int) -> int:
    """``max_iters`` as a positive multiple of ``check_every`` (``None``: 2000 rounded up to one)."""
    check_every = val.check_static_int("check_every", check_every)
    if max_iters is None:
        return -(-2000 // check_every) * check_every
    max_iters = val.check_static_int("max_iters", max_iters)
    if max_iters < check_every or max_iters % check_every:
        raise ValueError(
            f"max_iters: must be a positive multiple of check_every={check_every}, got {max_iters}; "
            f"e.g. max_iters={-(-max(max_iters, 1) // check_every) * check_every}."
        )
    return max_iters


def initial_potential(init: tuple[Any, Any] | None, n: int, m: int, dtype: Any) -> tuple[Array, bool]:
    """``(start[m or n], from_f)`` for a warm start ``init=(f, g)`` with one of the two given (see
    :func:`sinkhorn`); shared by the solvers that warm up with Sinkhorn.

    Args:
        init: ``None``, ``(None, g[m])`` or ``(f[n], None)``.  n, m: the problem's shape.  dtype: its dtype.

    Example:
        >>> g0, from_f = initial_potential((None, jnp.ones(3)), 2, 3, jnp.float32)
        >>> g0.shape, from_f
        ((3,), False)
    """
    if init is None:
        return jnp.zeros((m,), dtype), False
    if not isinstance(init, (tuple, list)) or len(init) != 2:
        raise TypeError("init: expected a pair (f, g) with one of them None.")
    f0, g0 = init
    if (f0 is None) == (g0 is None):
        raise ValueError(
            "init: give exactly one of (f, g), e.g. init=(None, out.g): the first half-step computes the other "
            "exactly, so a second potential would be overwritten."
        )
    if g0 is not None:
        g0 = val.as_float_array("init", g0).astype(dtype)
        if g0.shape != (m,):
            raise ValueError(f"init: expected g of shape ({m},), got {g0.shape}.")
        return g0, False
    f0 = val.as_float_array("init", f0).astype(dtype)
    if f0.shape != (n,):
        raise ValueError(f"init: expected f of shape ({n},), got {f0.shape}.")
    return f0, True
