"""Log-domain Sinkhorn: balanced and unbalanced, epsilon schedule, safe adaptive over-relaxation.

The solver carries the potentials ``f[n]``, ``g[m]`` together with the log row and column sums of the plan
at those potentials, so the convergence error (the L1 marginal violation of DESIGN.md) is available at every
check for free, and each iteration costs exactly two one-pass log-sum-exp sweeps over the cost matrix.

Plan convention (KL form): ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / epsilon)``.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast.entropic import dual as _dual
from ott_fast.geometry import Geometry, PointCloud, _DenseKernel

Array = jax.Array
Geom = Geometry | PointCloud

__all__ = ["sinkhorn", "SinkhornOutput", "EpsilonSchedule"]


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


class _Numerics(NamedTuple):
    tol: Array
    tau_a: Array
    tau_b: Array
    eps_init: Array
    eps_decay: Array
    omega_max: Array


class _State(NamedTuple):
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

    @property
    def matrix(self) -> Array:
        """The transport plan ``P[n, m]``."""
        return _dual.plan(self.f, self.g, self.geom, self.a, self.b)

    @property
    def reg_ot_cost(self) -> Array:
        """Entropic cost ``<P, C> + eps KL(P | a b^T)`` (+ the KL marginal penalties if unbalanced).

        Computed as the dual objective at ``(f, g)``, which equals it at the optimum."""
        return _dual.dual_objective(self.f, self.g, self.geom, self.a, self.b, self.tau_a, self.tau_b)

    @property
    def transport_cost(self) -> Array:
        """Linear transport cost ``<P, C>`` of the entropic plan (what POT's ``sinkhorn2`` returns)."""
        return _dual.plan_cost(self.f, self.g, self.geom, self.a, self.b)

    def apply(self, v: Array, axis: int = 0) -> Array:
        """``P^T v`` for ``v[n, ...]`` (``axis=0``) or ``P v`` for ``v[m, ...]`` (``axis=1``); chunked when online."""
        return _dual.plan_apply(self.f, self.g, self.geom, self.a, self.b, jnp.asarray(v), axis)


# --------------------------------------------------------------------------------------------- updates


def _psi_diff(f: Array, d: Array, eps: Array, tau: Array) -> Array:
    """``psi(f + d) - psi(f)``: ``d`` if balanced, else ``-rho e^{-f/rho} expm1(-d/rho)``, ``rho = eps tau/(1-tau)``."""
    unbalanced = tau < 1
    rho = jnp.where(unbalanced, eps * tau / jnp.where(unbalanced, 1 - tau, 1.0), 1.0)
    return jnp.where(unbalanced, -rho * jnp.exp(-f / rho) * jnp.expm1(-d / rho), d)


def _block_update(f: Array, log_s: Array, eps: Array, tau: Array, omega: Array, accelerate: bool) -> Array:
    """One half-step: the exact block maximiser ``tau (f - eps log_s)``, over-relaxed by ``omega`` per row
    wherever that still gains at least a fixed fraction of the exact step's dual gain."""
    f_star = tau * (f - eps * log_s)
    if not accelerate:
        return f_star
    d_star = f_star - f
    d_om = omega * d_star

    def gain(d: Array) -> Array:  # dual gain of row i per unit weight; concave in d, max at d_star
        return _psi_diff(f, d, eps, tau) - eps * jnp.exp(log_s) * jnp.expm1(d / eps)

    tiny = jnp.abs(d_om) < 1e-3 * eps  # quadratic regime: the gain ratio is omega (2 - omega) >= 0.19
    ok = tiny | (gain(d_om) >= _KAPPA * gain(d_star))
    return jnp.where(ok, f + d_om, f_star)


_KAPPA = 0.1  # sufficient-increase fraction; omega_max <= 1.9 keeps the quadratic-regime ratio above it


def _eps_at(i: Array, eps: Array, num: _Numerics) -> Array:
    """Epsilon used by iteration ``i`` (1-based)."""
    return jnp.maximum(eps, num.eps_init * num.eps_decay ** (i - 1).astype(eps.dtype))


def _marginal_error(s: _State, a: Array, b: Array, eps: Array, num: _Numerics) -> Array:
    target_a = a * _dual.psi_prime(s.f, eps, num.tau_a)
    target_b = b * _dual.psi_prime(s.g, eps, num.tau_b)
    return jnp.sum(jnp.abs(a * jnp.exp(s.log_r) - target_a)) + jnp.sum(jnp.abs(b * jnp.exp(s.log_c) - target_b))


def _dual_value(s: _State, a: Array, b: Array, eps: Array, num: _Numerics) -> Array:
    """``D(f, g)`` from the carried row sums (the plan's mass is ``sum_i a_i exp(log_r_i)``)."""
    mass = jnp.sum(a * jnp.exp(s.log_r))
    psi = jnp.sum(a * _dual.psi(s.f, eps, num.tau_a)) + jnp.sum(b * _dual.psi(s.g, eps, num.tau_b))
    return psi - eps * (mass - jnp.sum(a) * jnp.sum(b))


def _safe_lse_rows(geom: _DenseKernel, v: Array, inv: Array) -> Array:
    """Exact two-pass ``log sum_j exp(v_j - C_ij / eps)`` (max-shifted), for the first iteration."""
    m = geom.row_max(v, inv)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return m + geom.row_lse(-m, v, inv)


def _safe_lse_cols(geom: _DenseKernel, u: Array, inv: Array) -> Array:
    m = geom.col_max(u, inv)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return m + geom.col_lse(u, -m, inv)


def _first_iteration(geom: _DenseKernel, a: Array, b: Array, g0: Array, num: _Numerics, static: _Static) -> _State:
    """Iteration 1, with exact two-pass sweeps: afterwards every log-sum the one-pass sweeps meet is bounded
    by ``log n`` (an exact half-step normalises the other side), so no max pass is needed again."""
    la, lb = jnp.log(a), jnp.log(b)
    eps_t = geom.epsilon
    eps1, eps2 = _eps_at(jnp.int32(1), eps_t, num), _eps_at(jnp.int32(2), eps_t, num)
    inv1 = 1.0 / eps1
    f = -num.tau_a * eps1 * _safe_lse_rows(geom, g0 * inv1 + lb, inv1)
    lc = _safe_lse_cols(geom, f * inv1 + la, inv1)  # log col sums at g = 0
    g = -num.tau_b * eps1 * lc
    log_c = g * inv1 + lc
    inv2 = 1.0 / eps2
    log_r = geom.row_lse(f * inv2, g * inv2 + lb, inv2)
    n_checks = static.max_iters // static.check_every
    nan = jnp.full((n_checks,), jnp.nan, dtype=f.dtype)
    one = jnp.ones((), f.dtype)
    inf = jnp.asarray(jnp.inf, f.dtype)
    s = _State(f, g, log_r, log_c, jnp.int32(1), jnp.int32(0), one, inf, inf, nan, nan, jnp.zeros((), bool))
    # The error after this iteration is free: it is the reference of the first block's rate estimate.
    err = jax.lax.stop_gradient(_marginal_error(s, a, b, eps_t, num))
    err = jnp.where(eps2 <= eps_t, err, inf)  # meaningless while epsilon still decays
    return s._replace(err_prev=err, err_best=err)


def _iteration(geom: _DenseKernel, la: Array, lb: Array, num: _Numerics, static: _Static, s: _State) -> _State:
    """Iteration ``s.it + 1``: f half-step from the carried row sums, column sweep, g half-step, row sweep."""
    eps_t = geom.epsilon
    eps, eps_next = _eps_at(s.it + 1, eps_t, num), _eps_at(s.it + 2, eps_t, num)
    omega = jnp.where(eps > eps_t, 1.0, s.omega).astype(eps.dtype)  # plain steps while epsilon decays
    inv = 1.0 / eps
    f = _block_update(s.f, s.log_r, eps, num.tau_a, omega, static.accelerate)
    lc = geom.col_lse(f * inv + la, s.g * inv, inv)
    g = _block_update(s.g, lc, eps, num.tau_b, omega, static.accelerate)
    log_c = lc + (g - s.g) * inv  # column sums at the new g, in closed form
    inv_n = 1.0 / eps_next
    log_r = geom.row_lse(f * inv_n, g * inv_n + lb, inv_n)
    return s._replace(f=f, g=g, log_r=log_r, log_c=log_c, it=s.it + 1)


def _block(geom: _DenseKernel, a: Array, b: Array, num: _Numerics, static: _Static, s: _State) -> _State:
    """``check_every`` iterations, then the check: error, convergence, adaptive over-relaxation factor."""
    la, lb = jnp.log(a), jnp.log(b)
    s = jax.lax.fori_loop(0, static.check_every, lambda _, st: _iteration(geom, la, lb, num, static, st), s)
    eps_t = geom.epsilon
    err = jax.lax.stop_gradient(_marginal_error(s, a, b, eps_t, num))  # checks steer, they are not differentiated
    at_target = _eps_at(s.it, eps_t, num) <= eps_t
    converged = at_target & (err <= num.tol) & jnp.isfinite(err)
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
    mu2 = jnp.clip(ratio, 0.0, 1.0) ** (1.0 / static.check_every)
    best = 2.0 / (1.0 + jnp.sqrt(1.0 - mu2))
    best = jnp.clip(best + 0.25 * (2.0 - best), 1.0, num.omega_max)
    plain = (omega == 1) & at_target & (ratio > 0) & (ratio < 1)  # ratio is 0 after the first block
    omega = jnp.where(plain, best, omega)
    return jnp.where(diverging, 1.0, omega).astype(omega.dtype)


def _keep_going(s: _State, n_checks: int) -> Array:
    last = s.errors[jnp.maximum(s.k - 1, 0)]
    finite = (s.k == 0) | jnp.isfinite(last)
    return (s.k < n_checks) & ~s.converged & finite


# Problems with at least this many cost entries are solved one after another under ``vmap`` on CPU.
_SEQUENTIAL_MIN_ENTRIES = 1 << 14


def _sequential(static: _Static, shape: tuple[int, int]) -> bool:
    if static.batching == "auto":  # reverse-mode autodiff cannot go through the loop: unrolled is parallel
        big = shape[0] * shape[1] >= _SEQUENTIAL_MIN_ENTRIES
        return static.implicit_diff and big and jax.default_backend() == "cpu"
    return static.batching == "sequential"


@functools.lru_cache(maxsize=64)
def _sequential_run(static: _Static) -> Any:
    """``_run`` for one ``static``, batched by a loop: each member stops at its own convergence."""
    return jax.custom_batching.sequential_vmap(functools.partial(_run_single, static))


def _run(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> _State:
    """The solve. Under ``vmap``, a batched ``while_loop`` runs every member until the slowest has
    converged (finished members are frozen by a select). On CPU, batching buys no parallelism, so
    problems that are not tiny are batched as a loop over members instead (``batching="auto"``): each
    stops at its own iteration count, which on the benchmark batch is 71 iterations on average against
    116 for the slowest member."""
    if _sequential(static, geom.shape):
        return _sequential_run(static)(geom, a, b, g0, num)
    return _run_single(static, geom, a, b, g0, num)


def _run_single(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> _State:
    pg = geom.prepared()
    if num.eps_init is None:
        num = num._replace(eps_init=pg.max_cost())
    s = _first_iteration(pg, a, b, g0, num, static)
    n_checks = static.max_iters // static.check_every
    body = lambda st: _block(pg, a, b, num, static, st)  # noqa: E731
    if static.implicit_diff:
        s = jax.lax.while_loop(lambda st: _keep_going(st, n_checks), body, s)
    else:  # unrolled: a scan that reverse-mode autodiff can go through; finished problems are frozen

        def step(st: _State, _: None) -> tuple[_State, None]:
            return jax.lax.cond(_keep_going(st, n_checks), body, lambda x: x, st), None

        s, _ = jax.lax.scan(step, s, None, length=n_checks)
    last = s.errors[jnp.maximum(s.k - 1, 0)]
    bad = ~jnp.isfinite(last) | ~jnp.all(jnp.isfinite(s.f)) | ~jnp.all(jnp.isfinite(s.g))
    nan_f, nan_g = jnp.full_like(s.f, jnp.nan), jnp.full_like(s.g, jnp.nan)
    return s._replace(f=jnp.where(bad, nan_f, s.f), g=jnp.where(bad, nan_g, s.g), converged=s.converged & ~bad)


def _outputs(s: _State) -> tuple[Array, Array, Array, Array, Array, Array]:
    return s.f, s.g, s.errors, s.it, s.converged, s.duals


def _solve_core(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> tuple:
    return _outputs(_run(static, geom, a, b, g0, num))


def _solve_fwd(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> tuple:
    out = _solve_core(static, geom, a, b, g0, num)
    return out, (out[0], out[1], geom, a, b, g0, num)


def _solve_bwd(static: _Static, res: tuple, cts: tuple) -> tuple:
    f, g, geom, a, b, g0, num = res
    grads = _dual.implicit_vjp(f, g, geom, a, b, num.tau_a, num.tau_b, cts[0], cts[1], static.cg_maxiter)
    g_geom, g_a, g_b, g_ta, g_tb = grads
    zeros = jax.tree_util.tree_map(jnp.zeros_like, num)
    return g_geom, g_a, g_b, jnp.zeros_like(g0), zeros._replace(tau_a=g_ta, tau_b=g_tb)


_solve_implicit = jax.custom_vjp(_solve_core, nondiff_argnums=(0,))
_solve_implicit.defvjp(_solve_fwd, _solve_bwd)


@jax.jit(static_argnums=(0,))
def _solve(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> tuple:
    if static.implicit_diff:
        return _solve_implicit(static, geom, a, b, g0, num)
    return _solve_core(static, geom, a, b, g0, num)


def sinkhorn(
    geom: Geom,
    a: Any = None,
    b: Any = None,
    *,
    tol: Any = 1e-3,
    max_iters: int = 2000,
    check_every: int = 5,
    tau_a: Any = 1.0,
    tau_b: Any = 1.0,
    init: tuple[Any, Any] | None = None,
    schedule: EpsilonSchedule | None = None,
    acceleration: Literal["adaptive", "none"] = "adaptive",
    max_relaxation: Any = 1.9,
    implicit_diff: bool = True,
    cg_maxiter: int = 2000,
    batching: Literal["auto", "parallel", "sequential"] = "auto",
) -> SinkhornOutput:
    """Solves entropic OT between ``a[n]`` and ``b[m]`` on ``geom`` with log-domain Sinkhorn.

    Args:
        geom: a :class:`~ott_fast.Geometry` or :class:`~ott_fast.PointCloud` (it carries ``epsilon``).
        a, b: ``[n]``, ``[m]`` non-negative weights; ``None`` means uniform. Balanced problems need equal mass.
        tol: stop when the L1 marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1`` is ``<= tol`` (unbalanced: the
            violation of the relaxed marginal conditions ``P 1 = a exp(-f / rho_a)``).
        max_iters: iteration cap (static), a multiple of ``check_every``.
        check_every: iterations between convergence checks (static); the trace has ``max_iters // check_every``
            entries.
        tau_a, tau_b: in ``(0, 1]``; ``1`` is balanced, ``rho / (rho + epsilon)`` relaxes that marginal with
            a KL penalty of weight ``rho``.
        init: warm start ``(f, g)``; the first half-step recomputes ``f`` from ``g``.
        schedule: an :class:`EpsilonSchedule`; the solve only stops once ``epsilon`` has reached its target.
        acceleration: ``"adaptive"`` over-relaxes with a factor set from the measured Sinkhorn rate, keeping a
            row's relaxed step only where it gains at least 10% of the exact step's dual gain (so the dual
            increases monotonically) and falling back to plain steps whenever the error grows; ``"none"`` is
            plain Sinkhorn.
        max_relaxation: the largest over-relaxation factor, in ``[1, 1.9]``.
        implicit_diff: gradients by implicit differentiation of the optimality conditions (default), or
            ``False`` to differentiate through the unrolled iterations (memory grows with iterations).
        cg_maxiter: iteration cap of the conjugate-gradient solve of the implicit backward pass.
        batching: how ``jax.vmap`` batches the solve (static). ``"parallel"``: one batched loop in which
            finished members are frozen until the slowest converges. ``"sequential"``: a loop over members,
            each stopping at its own convergence. ``"auto"``: sequential on CPU for problems of at least
            ``2**14`` cost entries with ``implicit_diff=True``, where batching gains no parallelism, else
            parallel. Results are the same either way. For a batch sharded over devices, pass
            ``"parallel"``: the sequential loop would gather the batch on every device.

    Returns:
        A :class:`SinkhornOutput`.

    Example:
        >>> import jax, ott_fast as otf
        >>> kx, ky = jax.random.split(jax.random.PRNGKey(0))
        >>> x, y = jax.random.normal(kx, (64, 2)), jax.random.normal(ky, (48, 2)) + 1.0
        >>> out = otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), tol=1e-4)
        >>> bool(out.converged), out.f.shape, out.matrix.shape
        (True, (64,), (64, 48))
    """
    if not isinstance(geom, (Geometry, PointCloud)):
        raise TypeError(f"geom: expected an ott_fast.Geometry or PointCloud, got {type(geom).__name__}.")
    if not isinstance(max_iters, int) or not isinstance(check_every, int) or check_every < 1:
        raise TypeError("max_iters, check_every: must be Python ints (they are static), check_every >= 1.")
    if max_iters < check_every or max_iters % check_every:
        raise ValueError(f"max_iters: must be a positive multiple of check_every={check_every}, got {max_iters}.")
    if batching not in ("auto", "parallel", "sequential"):
        raise ValueError(f"batching: expected 'auto', 'parallel' or 'sequential', got {batching!r}.")
    if batching == "sequential" and not implicit_diff:
        raise ValueError("batching='sequential' needs implicit_diff=True (reverse mode cannot unroll the loop).")
    if acceleration not in ("adaptive", "none"):
        raise ValueError(f"acceleration: expected 'adaptive' or 'none', got {acceleration!r}.")
    n, m = geom.shape
    dtype = geom.dtype
    a = val.check_weights("a", a, n, dtype)
    b = val.check_weights("b", b, m, dtype)
    val.check_tau("tau_a", tau_a)
    val.check_tau("tau_b", tau_b)
    val.check_positive("tol", tol)
    val.check_positive("epsilon", geom.epsilon)
    if val.is_concrete(a, b, tau_a, tau_b) and float(np.asarray(tau_a)) == 1.0 and float(np.asarray(tau_b)) == 1.0:
        sa, sb = float(np.asarray(a).sum()), float(np.asarray(b).sum())
        if abs(sa - sb) > 1e-5 * max(sa, sb) + 10 * float(jnp.finfo(dtype).eps):
            raise ValueError(
                f"a, b: a balanced problem needs equal total mass, got sum(a)={sa} and sum(b)={sb}; "
                "normalise them, or pass tau_a/tau_b < 1 for an unbalanced problem."
            )
    if val.is_concrete(max_relaxation) and not 1.0 <= float(max_relaxation) <= 1.9:
        raise ValueError(f"max_relaxation: must lie in [1, 1.9], got {float(max_relaxation)}.")
    g0 = jnp.zeros((m,), dtype)
    if init is not None:
        f_init, g_init = init
        g0 = val.as_float_array("init", g_init).astype(dtype)
        if g0.shape != (m,) or jnp.shape(f_init) != (n,):
            raise ValueError(f"init: expected (f[{n}], g[{m}]), got shapes {jnp.shape(f_init)} and {g0.shape}.")
    if schedule is None:
        eps_init, eps_decay = jnp.zeros((), dtype), jnp.ones((), dtype)
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
    static = _Static(max_iters, check_every, acceleration == "adaptive", bool(implicit_diff), int(cg_maxiter), batching)
    f, g, errors, n_iters, converged, duals = _solve(static, geom, a, b, g0, num)
    return SinkhornOutput(f, g, errors, n_iters, converged, geom, a, b, num.tau_a, num.tau_b, duals)
