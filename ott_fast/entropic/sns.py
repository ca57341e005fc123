"""Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024): Sinkhorn warm-up, then Newton steps on a sparsified Hessian.

Entropic OT's dual ``D(f, g) = <a, f> + <b, g> - eps (sum P - |a| |b|)``, with the plan
``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``, is concave; Sinkhorn is exact block-coordinate ascent on it.
Its gradient is ``(a - P 1, b - P^T 1)`` and ``-eps`` times its Hessian is ``[[diag(P 1), P], [P^T, diag(P^T 1)]]``.
Near the optimum the plan, hence the off-diagonal blocks, is nearly sparse. After at least ``sinkhorn_iters``
Sinkhorn iterations, SNS takes Newton steps whose Hessian keeps the diagonal blocks exactly and, off the
diagonal, only the largest entries of each row of ``P`` (all but at most ``drop`` of the row's mass), solved
by preconditioned conjugate gradient, with a backtracking line search. (The paper's Lyapunov potential
``L(x, y)`` is this dual with ``x_i + y_j = f_i + g_j + eps`` up to the weights' logs; the Newton directions
coincide.)

How it stays fast in JAX (shapes are static everywhere, so it ``jit``s and ``vmap``s):

- **Log domain.** ``log P`` is formed from the potentials and ``C``; ``exp(-C / eps)`` never is.
- **Masked Hessian (the default).** An entry is kept if it holds at least ``drop / m`` of its row's mass, so
  a row drops at most ``drop``: one fused pass over ``log P`` writes the kept entries into an ``[n, m]``
  matrix (zero elsewhere), and the CG's products with it are matrix products. It needs no more memory than
  the ``log P`` block the step forms anyway, needs no selection, and keeps every entry a row needs (W1's
  plans keep more than ``sparsity`` per row).
- **Sparse Hessian** (``hessian="sparse"``, the paper's layout; for ``m`` much larger than ``sparsity``).
  Each row keeps the entries above a threshold: the largest one that keeps all but ``drop`` of the row's
  mass, raised where needed so that at most ``sparsity`` entries pass. Both are found by 12 rounds of
  bisection (fused passes over a float32 copy of ``log P``; XLA:CPU's ``top_k`` sorts, and a global
  threshold would need a data-dependent compaction), then a row cumsum and one scatter compact the kept
  entries into a static ``[n, sparsity]`` layout, so ``S w`` is a pure gather (``S^T u`` is one
  ``segment_sum``).
- **Hessian-vector products** by matrix products (masked) or gathers and ``segment_sum`` (sparse) over the
  kept entries, on the Schur complement ``diag(r) - S diag(1 / c) S^T`` of the column block: CG on ``n``
  unknowns with the Jacobi preconditioner (CG on the 2 x 2 block system takes twice the iterations; a
  two-level preconditioner halves the CG iterations but costs more than it saves at the sizes a dense
  ``[n, m]`` product is fast).
- **The ``(1, -1)`` direction.** With the exact diagonal blocks, dropping entries makes the sparse Hessian
  strictly diagonally dominant, hence definite; a Levenberg-Marquardt shift ``lambda = shift * error``
  (relative to the diagonal) keeps it well conditioned far from the optimum and vanishes at it, so the
  local convergence stays quadratic when enough entries are kept.
- **Line search.** Armijo backtracking on ``D`` from step 1; trial points with non-finite values are
  rejected. Near machine accuracy the dual cannot resolve the improvement, so a step that halves the
  marginal error without decreasing ``D`` beyond rounding is accepted too.
- **Measured handover and fallback.** The warm-up is a minimum, not a fixed count: after it, and after
  every Sinkhorn block, a Newton step is a probe. A step is fast when it reduces the error by more than
  Sinkhorn would have in the same time (Sinkhorn's per-iteration error ratio, measured over the last check
  of the warm-up or of the latest block, raised to ``newton_cost``). A Newton step stalls when its line
  search fails, when it is a probe and slow, or when it and the step before it are both slow (one slow step
  is forgiven inside a Newton run: damped steps precede the quadratic phase). A stall is followed by a block
  of over-relaxed Sinkhorn iterations through the warm-up's loop (:func:`~ott_fast.entropic.sinkhorn.warmup`
  with a traced ``budget``: ``fallback_iters`` rounded up to whole checks, doubling on each stall up to 64x
  until a Newton step is fast, without recompiling). So SNS hands over as soon as Newton pays, and on a
  problem where Newton never helps it does Sinkhorn's work plus a geometrically shrinking overhead.

The measurements behind these choices (and the alternatives tried) are in the changelog.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast.entropic import driver
from ott_fast.entropic import dual as _dual
from ott_fast.entropic.sinkhorn import SinkhornOutput, initial_potential, warmup
from ott_fast.geometry import DenseKernel, Geometry, PointCloud, with_weights_jit

Array = jax.Array
Geom = Geometry | PointCloud

__all__ = ["sns", "SNSOutput", "NewtonDiagnostics"]


class NewtonDiagnostics(NamedTuple):
    """What the Newton phase of :func:`sns` did; arrays have one slot per outer step (``max_newton_iters``).

    Attributes:
        n_newton: Newton steps taken (accepted or not).
        n_fallback: Sinkhorn iterations run by the fallback after stalled Newton steps.
        cg_iters: ``[max_newton_iters]`` conjugate-gradient iterations of each Newton step (0 where unused).
        step_sizes: ``[max_newton_iters]`` accepted step size, 0 where the line search failed, NaN unused.
        kept: ``[max_newton_iters]`` entries of the plan kept in the sparse Hessian, 0 where unused.

    Example:
        >>> import jax, ott_fast as otf
        >>> c = jax.random.uniform(jax.random.PRNGKey(0), (50, 50))
        >>> d = otf.sns(otf.Geometry(c, epsilon=0.005), tol=1e-5, max_newton_iters=10).newton
        >>> d.cg_iters.shape, bool(d.step_sizes[0] > 0), int(d.n_fallback)
        ((10,), True, 0)
    """

    n_newton: Array
    n_fallback: Array
    cg_iters: Array
    step_sizes: Array
    kept: Array


SNSOutput = SinkhornOutput
"""What :func:`sns` returns: a :class:`~ott_fast.SinkhornOutput` whose ``trace_iters`` holds the iteration
count of each entry of ``errors`` (the warm-up's checks, then one entry per Newton step with its fallback
block; NaN where unused) and whose ``newton`` holds the :class:`NewtonDiagnostics`. ``tau_a = tau_b = 1``
(balanced) and ``envelope`` is True: gradients of ``reg_ot_cost`` hold the potentials fixed.

Example:
    >>> import jax, ott_fast as otf
    >>> c = jax.random.uniform(jax.random.PRNGKey(1), (40, 30))
    >>> out = otf.sns(otf.Geometry(c, epsilon=0.05), tol=1e-6)
    >>> out.errors.shape, out.matrix.shape, bool(out.converged)  # 20 // 5 warm-up checks + 50 Newton slots
    ((54,), (40, 30), True)
"""


class _Static(NamedTuple):
    sinkhorn_iters: int
    check_every: int
    accelerate: bool
    max_newton_iters: int
    sparsity: int
    newton_cg_maxiter: int  # CG cap of each Newton step
    max_line_search: int
    fallback_iters: int
    cg_maxiter: int  # CG cap of the implicit backward pass (the name sinkhorn uses)
    batching: str
    throw: bool = False
    masked: bool = True  # the kept entries as a masked [n, m] matrix (else the [n, sparsity] gather layout)
    init_from_f: bool = False  # the start holds f[n]: g is its exact half-step


class _Numerics(NamedTuple):
    tol: Array
    shift: Array
    newton_cost: Array
    armijo: Array
    budget: Array  # traced cap on outer steps (<= max_newton_iters)
    drop: Array  # mass fraction of each row the sparse Hessian may drop


class _Newton(NamedTuple):
    f: Array
    g: Array
    log_r: Array  # log row sums of the plan without the weights: P 1 = a exp(log_r)
    log_c: Array  # likewise for columns: P^T 1 = b exp(log_c)
    err: Array
    j: Array  # outer steps done
    it: Array  # iterations done (Sinkhorn + Newton)
    n_fallback: Array
    stalls: Array  # stalls since the last fast Newton step
    slow: Array  # the last Newton step was slower than Sinkhorn (one slow step is forgiven)
    rate: Array  # Sinkhorn's error ratio per iteration, as last measured (warm-up or fallback block)
    dual: Array  # D(f, g)
    probe: Array  # the next Newton step follows a Sinkhorn block (no slow step is forgiven)
    errors: Array
    duals: Array
    iters: Array
    cg_iters: Array
    steps: Array
    kept: Array
    converged: Array


# ------------------------------------------------------------------------------------------ dense passes


def _sums(kern: DenseKernel, f: Array, g: Array, la: Array, lb: Array, inv: Array) -> tuple[Array, Array]:
    """Exact (max-shifted) log row and column sums of the plan at ``(f, g)``, weights excluded (the
    convention of :class:`~ott_fast.entropic.sinkhorn.SinkhornState`): one pass over ``log K``."""
    k = kern.log_matrix(f * inv, g * inv, inv)
    return jax.nn.logsumexp(k + lb[None, :], axis=1), jax.nn.logsumexp(k + la[:, None], axis=0)


def _dual_value(f: Array, g: Array, log_r: Array, a: Array, b: Array, eps: Array) -> Array:
    return _dual.dual_value(f, g, a, b, jnp.sum(_dual.mass_of(a, log_r)), eps, 1.0, 1.0)


def _error(f: Array, g: Array, log_r: Array, log_c: Array, a: Array, b: Array, eps: Array) -> Array:
    return _dual.marginal_error(f, g, log_r, log_c, a, b, eps, 1.0, 1.0)


# --------------------------------------------------------------------------------------- sparse Hessian


def _row_threshold(log_q: Array, k: int, drop: Array, iters: int = 12) -> tuple[Array, Array, Array]:
    """``(cols[n, k], log_vals[n, k], iters)``: the entries of each row of ``log_q = log(P / rowsum)`` above a
    per-row threshold, the largest threshold that keeps ``1 - drop`` of the row's mass, raised where needed so
    that at most ``k`` entries pass; unused slots are ``-inf``. (Rows of zero weight have a finite ``log_q``
    too: their entries are selected, and carry no mass once multiplied by the row sum 0.)

    Both thresholds are found by bisection in ``log(P / rowsum)`` on ``[-40, 1]`` (``iters`` fused passes over
    a float32 copy, each with two row reductions), then one compaction: a row cumsum gives each kept entry its
    slot, and one scatter writes the slots. Unlike taking entries largest-first in lockstep, every row keeps
    only what it needs."""
    n, m = log_q.shape
    rel = log_q.astype(jnp.float32)
    p = jnp.exp(rel)
    target = (1 - drop).astype(jnp.float32)

    def body(_: Any, c: tuple[Array, Array, Array, Array]) -> tuple[Array, Array, Array, Array]:
        lo_m, hi_m, lo_c, hi_c = c  # mass(lo_m) >= target > mass(hi_m); count(hi_c) <= k < count(lo_c)
        tm, tc = 0.5 * (lo_m + hi_m), 0.5 * (lo_c + hi_c)
        ok_m = jnp.sum(jnp.where(rel >= tm[:, None], p, 0.0), axis=1) >= target
        ok_c = jnp.sum((rel >= tc[:, None]).astype(jnp.int32), axis=1) <= k
        mass = jnp.where(ok_m, tm, lo_m), jnp.where(ok_m, hi_m, tm)
        return *mass, jnp.where(ok_c, lo_c, tc), jnp.where(ok_c, tc, hi_c)

    lo, hi = jnp.full((n,), -40.0, jnp.float32), jnp.ones((n,), jnp.float32)
    lo_m, _, _, hi_c = jax.lax.fori_loop(0, iters, body, (lo, hi, lo, hi))
    mask = rel >= jnp.maximum(lo_m, hi_c)[:, None]
    pos = jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1
    pos = jnp.where(mask & (pos < k), pos, k)  # slot k is out of bounds: dropped by the scatter
    rows = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], (n, m))
    src = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32)[None, :], (n, m))
    cols = jnp.zeros((n, k), jnp.int32).at[rows, pos].set(src, mode="drop")
    vals = jnp.full((n, k), -jnp.inf, log_q.dtype).at[rows, pos].set(log_q, mode="drop")
    return cols, vals, jnp.int32(iters)


def _newton_direction(
    log_q: Array, r: Array, c: Array, a: Array, b: Array, err: Array, num: _Numerics, static: _Static
) -> tuple[Array, Array, Array, Array]:
    """``(dx[n], dy[m], cg_iters, kept)`` with ``eps (dx, dy)`` the Newton ascent direction of ``D``.

    Solves ``(H + lambda diag(H)) (dx, dy) = (a - P 1, b - P^T 1)``, ``H = [[diag(r), S], [S^T, diag(c)]]``
    with ``S`` the kept entries, by CG on the Schur complement of the column block. ``log_q = log(P / rowsum)``,
    ``r = P 1`` and ``c = P^T 1``."""
    n, m = log_q.shape
    mass = jnp.sum(a)
    lam = num.shift * jnp.minimum(err / mass, 1.0)
    tiny = jnp.finfo(r.dtype).tiny
    dr, dc = r * (1 + lam), jnp.maximum(c * (1 + lam), tiny)  # a zero-weight column has c = 0 and no entries
    gf, gg = a - r, b - c
    if static.masked:
        # One pass: an entry stays if it holds at least drop / m of its row's mass, so a row drops at most drop
        # (m counts the present columns: padding with zero-weight points leaves the selection unchanged).
        m_present = jnp.maximum(jnp.sum(b > 0), 1).astype(log_q.dtype)
        sd = jnp.where(log_q >= jnp.log(num.drop / m_present), jnp.exp(log_q), 0.0) * r[:, None]  # [n, m]
        kept = jnp.sum(sd > 0).astype(jnp.int32)
        hi = jax.lax.Precision.HIGHEST

        def s_apply(w: Array) -> Array:
            return jnp.matmul(sd, w, precision=hi)

        def st_apply(u: Array) -> Array:
            return jnp.matmul(u, sd, precision=hi)

        diag = dr - jnp.sum(sd * sd / dc[None, :], axis=1)
    else:
        cols, log_v, _ = _row_threshold(log_q, static.sparsity, num.drop)
        p = jnp.exp(log_v) * r[:, None]  # [n, k]; exactly 0 in unused slots and in rows of zero weight
        kept = jnp.sum(p > 0).astype(jnp.int32)

        def s_apply(w: Array) -> Array:  # S w, w[m] -> [n]: gathers only
            return jnp.sum(p * w[cols], axis=1)

        def st_apply(u: Array) -> Array:  # S^T u, u[n] -> [m]
            return jax.ops.segment_sum((p * u[:, None]).ravel(), cols.ravel(), m)

        diag = dr - jnp.sum(p * p / dc[cols], axis=1)

    def schur(x: Array) -> Array:
        return dr * x - s_apply(st_apply(x) / dc)

    diag = jnp.maximum(diag, lam * r + jnp.finfo(r.dtype).tiny)
    rhs = gf - s_apply(gg / dc)
    rtol = jnp.clip(err / mass, 1e-10, 0.1)  # forcing term ~ error: superlinear, no over-solving early
    sol = _dual.cg_solve(schur, rhs, lambda v: v / diag, rtol=rtol, maxiter=static.newton_cg_maxiter)
    dx, k = sol.x, sol.iterations
    dy = (gg - st_apply(dx)) / dc
    return dx, dy, k, kept


# ------------------------------------------------------------------------------------------ the phases


def _sinkhorn_block(
    kern: DenseKernel, a: Array, b: Array, eps: Array, num: _Numerics, static: _Static, s: _Newton, count: Array
) -> _Newton:
    """A fallback block: Sinkhorn from ``s.g`` through the shared loop (over-relaxed like the warm-up, its
    factor measured afresh), ``count`` iterations (traced, whole checks) after an exact first one."""
    w = warmup(
        kern, a, b, iters=_block_checks(static) * _MAX_DOUBLINGS * static.check_every,
        check_every=static.check_every, accelerate=static.accelerate, tol=num.tol, g0=s.g, budget=count,
    )  # fmt: skip
    s = _after_sinkhorn(kern, a, b, eps, w, s.err, static.check_every, s)
    return s._replace(it=s.it + w.it, n_fallback=s.n_fallback + w.it)


def _block_checks(static: _Static) -> int:
    """Checks in the first fallback block: ``fallback_iters`` rounded up to whole checks."""
    return -(-static.fallback_iters // static.check_every)


def _after_sinkhorn(
    kern: DenseKernel, a: Array, b: Array, eps: Array, w: Any, err0: Array, check_every: int, s: _Newton
) -> _Newton:
    """``s`` at the end of a Sinkhorn run ``w`` (a :class:`~ott_fast.entropic.sinkhorn.SinkhornState` started at
    error ``err0``, NaN if unknown): exact sums (the loop's carried ones are one-pass and may be a half-step
    old), error, dual, and Sinkhorn's error ratio per iteration over its last check (over the whole run if it
    had one check; kept from ``s`` if it had none or the error did not fall)."""
    la, lb = _dual.safe_log(a), _dual.safe_log(b)
    inv = 1.0 / eps
    log_r, log_c = _sums(kern, w.f, w.g, la, lb, inv)
    err = _error(w.f, w.g, log_r, log_c, a, b, eps)
    dual = _dual_value(w.f, w.g, log_r, a, b, eps)
    two = w.k >= 2
    e_prev = jnp.where(two, w.errors[jnp.maximum(w.k - 2, 0)], err0)
    e_last = w.errors[jnp.maximum(w.k - 1, 0)]
    span = jnp.maximum(jnp.where(two, check_every, w.it), 1).astype(err.dtype)
    rate = jnp.maximum(e_last / e_prev, 0.0) ** (1.0 / span)
    # An error that did not fall (over-relaxation is not monotone in it) measures nothing: keep the last rate,
    # else any Newton step that reduces the error at all would count as fast.
    rate = jnp.where((w.k >= 1) & (rate < 1), rate, s.rate).astype(err.dtype)
    return s._replace(f=w.f, g=w.g, log_r=log_r, log_c=log_c, err=err, dual=dual, rate=rate)


def _outer_step(
    kern: DenseKernel, a: Array, b: Array, eps: Array, num: _Numerics, static: _Static, s: _Newton
) -> _Newton:
    """One Newton step with line search; a Sinkhorn block after it if it stalled."""
    la, lb = _dual.safe_log(a), _dual.safe_log(b)
    inv = 1.0 / eps
    dtype = a.dtype
    log_q = kern.log_matrix(s.f * inv - s.log_r, s.g * inv + lb, inv)  # log(P / rowsum), finite for every row
    r, c = _dual.mass_of(a, s.log_r), _dual.mass_of(b, s.log_c)
    dx, dy, cg_k, kept = _newton_direction(log_q, r, c, a, b, s.err, num, static)
    df, dg = eps * dx, eps * dy
    slope = jnp.sum((a - r) * df) + jnp.sum((b - c) * dg)  # dD/dalpha at 0, > 0
    mass = jnp.sum(r)
    scale = jnp.abs(jnp.sum(a * s.f)) + jnp.abs(jnp.sum(b * s.g)) + eps * mass
    slack = 64 * jnp.finfo(dtype).eps * scale

    def trial(alpha: Array) -> tuple[Array, Array, Array, Array, Array]:
        f, g = s.f + alpha * df, s.g + alpha * dg
        lr, lc = _sums(kern, f, g, la, lb, inv)
        gain = alpha * (jnp.sum(a * df) + jnp.sum(b * dg)) - eps * (jnp.sum(_dual.mass_of(a, lr)) - mass)
        err = _error(f, g, lr, lc, a, b, eps)
        ok = jnp.isfinite(err) & jnp.isfinite(gain)
        ok &= (gain >= num.armijo * alpha * slope) | ((err <= 0.5 * s.err) & (gain >= -slack))
        return ok, lr, lc, err, gain

    def ls_cond(c: tuple) -> Array:
        k, ok = c[0], c[1]
        return (k < static.max_line_search) & ~ok

    def ls_body(c: tuple) -> tuple:
        k = c[0]
        alpha = jnp.asarray(0.5, dtype) ** k.astype(dtype)
        ok, lr, lc, err, _ = trial(alpha)
        return k + 1, ok, alpha, lr, lc, err

    zero = jnp.zeros((), dtype)
    init = (jnp.int32(0), jnp.zeros((), bool), zero, s.log_r, s.log_c, s.err)
    _, ok, alpha, lr, lc, err = jax.lax.while_loop(ls_cond, ls_body, init)
    alpha = jnp.where(ok, alpha, 0.0)
    new = s._replace(
        f=jnp.where(ok, s.f + alpha * df, s.f),
        g=jnp.where(ok, s.g + alpha * dg, s.g),
        log_r=jnp.where(ok, lr, s.log_r),
        log_c=jnp.where(ok, lc, s.log_c),
        err=jnp.where(ok, err, s.err),
    )
    new = new._replace(dual=_dual_value(new.f, new.g, new.log_r, a, b, eps))
    # Fast: the step reduced the error more than Sinkhorn would have in its time (newton_cost iterations at the
    # rate last measured).
    fast = new.err <= s.err * s.rate**num.newton_cost
    # A stall: the step failed, or it was slow right after a Sinkhorn block (the probe of a measured
    # handover), or slow after a slow step (one is forgiven: damped steps precede the quadratic phase).
    stalled = (~ok | (~fast & (s.probe | s.slow))) & ~driver.loop_met(new.err, num.tol)
    count = _block_checks(static) * static.check_every * 2 ** jnp.minimum(s.stalls, _LOG2_MAX_DOUBLINGS)
    new = new._replace(it=s.it + 1)
    new = jax.lax.cond(stalled, lambda t: _sinkhorn_block(kern, a, b, eps, num, static, t, count), lambda t: t, new)
    slot = jnp.arange(s.errors.shape[0]) == s.j
    return new._replace(
        j=s.j + 1,
        stalls=jnp.where(stalled, s.stalls + 1, jnp.where(fast, 0, s.stalls)),  # reset by a fast step
        slow=~fast & ~stalled,
        probe=stalled,
        errors=jnp.where(slot, new.err, s.errors),
        duals=jnp.where(slot, new.dual, s.duals),
        iters=jnp.where(slot, new.it.astype(s.iters.dtype), s.iters),
        cg_iters=jnp.where(slot, cg_k, s.cg_iters),
        steps=jnp.where(slot, alpha, s.steps),
        kept=jnp.where(slot, kept, s.kept),
        converged=driver.loop_met(new.err, num.tol),
    )


_LOG2_MAX_DOUBLINGS = 6
_MAX_DOUBLINGS = 2**_LOG2_MAX_DOUBLINGS  # a fallback block is at most this many times the first


def _run_single(static: _Static, geom: Geom, a: Array, b: Array, g0: Array, num: _Numerics) -> tuple:
    dtype = a.dtype
    kern = geom.kernel()
    valid = driver.input_is_valid(kern, a, b, 1.0, 1.0)
    if static.init_from_f:  # init=(f, None): g's exact half-step, g_j = -eps log sum_i a_i e^((f_i - C_ij) / eps)
        inv = 1.0 / kern.epsilon
        zm = jnp.zeros((kern.shape[1],), dtype)
        g0 = -kern.epsilon * kern.col_lse_exact(g0 * inv + _dual.safe_log(a), zm, inv)
    w = warmup(
        kern, a, b, iters=static.sinkhorn_iters, check_every=static.check_every, accelerate=static.accelerate,
        tol=num.tol, g0=g0,
    )  # fmt: skip
    eps = kern.epsilon
    k_w = static.sinkhorn_iters // static.check_every
    n_trace = k_w + static.max_newton_iters
    warm_iters = jnp.where(jnp.isfinite(w.errors), 1.0 + static.check_every * (jnp.arange(k_w) + 1.0), jnp.nan)
    nan = jnp.full((static.max_newton_iters,), jnp.nan, dtype)
    zeros = jnp.zeros((static.max_newton_iters,), jnp.int32)
    zero = jnp.zeros((), dtype)
    s = _Newton(
        f=w.f,
        g=w.g,
        log_r=w.log_r,
        log_c=w.log_c,
        err=zero,
        j=jnp.int32(k_w),
        it=w.it,
        n_fallback=jnp.int32(0),
        stalls=jnp.int32(0),
        slow=jnp.zeros((), bool),
        rate=jnp.asarray(0.5, dtype),  # if the warm-up had no check to measure it
        dual=zero,
        probe=jnp.ones((), bool),
        errors=jnp.concatenate([w.errors, nan]),
        duals=jnp.concatenate([w.duals, nan]),
        iters=jnp.concatenate([warm_iters.astype(dtype), nan]),
        cg_iters=jnp.concatenate([jnp.zeros((k_w,), jnp.int32), zeros]),
        steps=jnp.concatenate([jnp.full((k_w,), jnp.nan, dtype), nan]),
        kept=jnp.concatenate([jnp.zeros((k_w,), jnp.int32), zeros]),
        converged=jnp.zeros((), bool),
    )
    unknown = jnp.asarray(jnp.nan, dtype)  # the start of the warm-up: its rate needs two checks
    s = _after_sinkhorn(kern, a, b, eps, w, unknown, static.check_every, s)
    s = s._replace(converged=driver.loop_met(s.err, num.tol))

    def keep_going(st: _Newton) -> Array:
        return (st.j < n_trace) & (st.j - k_w < num.budget) & ~st.converged & jnp.isfinite(st.err)

    s = jax.lax.while_loop(keep_going, lambda st: _outer_step(kern, a, b, eps, num, static, st), s)
    fin = driver.finalize(s.f, s.g, kern, a, b, 1.0, 1.0, num.tol, valid, s.converged)
    if static.throw:
        driver.throw_on_failure("sns", fin.status)
    n_newton = s.j - k_w
    diag = NewtonDiagnostics(n_newton, s.n_fallback, s.cg_iters[k_w:], s.steps[k_w:], s.kept[k_w:])
    return fin.f, fin.g, s.errors, s.it, fin.converged, s.duals, s.iters, diag, fin.status, fin.error


def _num_cotangent(num: _Numerics, g_ta: Array, g_tb: Array) -> _Numerics:
    """Balanced: no tau; ``budget`` is an integer (its cotangent is float0)."""
    return jax.tree_util.tree_map(jnp.zeros_like, num)._replace(budget=np.zeros((), jax.dtypes.float0))


_solve, _ = driver.make_solve(
    _run_single,
    taus=lambda num: (jnp.ones((), num.tol.dtype), jnp.ones((), num.tol.dtype)),
    cg_maxiter=lambda static: static.cg_maxiter,
    mode=lambda static, shape: driver.batched_mode(static.batching, shape),
    num_cotangent=_num_cotangent,
)


def sns(
    geom: Geom,
    a: Any = None,
    b: Any = None,
    *,
    sinkhorn_iters: int = 20,
    max_newton_iters: int = 50,
    sparsity: int = 64,
    hessian: Literal["masked", "sparse"] = "masked",
    drop: Any = 1e-7,
    tol: Any = 1e-6,
    check_every: int = 5,
    acceleration: Literal["adaptive", "none"] = "adaptive",
    init: tuple[Any, Any] | None = None,
    shift: Any = 1e-2,
    newton_cost: Any = 4.0,
    newton_budget: Any = None,
    fallback_iters: int = 20,
    newton_cg_maxiter: int = 500,
    max_line_search: int = 30,
    cg_maxiter: int = 2000,
    batching: Literal["auto", "parallel", "sequential"] = "auto",
    throw: bool = False,
) -> SNSOutput:
    """Solves balanced entropic OT by Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024).

    At least ``sinkhorn_iters`` log-domain Sinkhorn iterations (the paper's N1, here a minimum), then up to
    ``max_newton_iters`` Newton steps, each on a Hessian that keeps its diagonal blocks and the largest
    entries of the plan, solved by Jacobi-preconditioned CG and followed by a backtracking line search; a
    Newton step that is slower than Sinkhorn right after a Sinkhorn phase (a probe), or that stalls, is
    followed by a block of Sinkhorn iterations: the handover to Newton is measured, not a fixed count (see
    the module docstring for the design).
    Reaching machine accuracy (an L1 marginal error ~1e-12) needs float64.

    Args:
        geom: a dense :class:`~ott_fast.Geometry` or :class:`~ott_fast.PointCloud` (not online: the
            Newton steps read all ``n * m`` entries of the plan to pick the largest).
        a, b: ``[n]``, ``[m]`` non-negative weights of equal mass; ``None`` means uniform. A zero weight
            means an absent point: its row (column) of the plan is zero and its potential is still defined.
        sinkhorn_iters: the minimum warm-up, in Sinkhorn iterations (static), a multiple of ``check_every``;
            the warm-up stops early if it reaches ``tol``. More Sinkhorn iterations follow while Newton
            probes lose to Sinkhorn (W1 between 28 x 28 images: ~100 in all from the default 20).
        max_newton_iters: cap on Newton steps (static); each takes one slot of the trace.
        sparsity: the most entries of the plan kept per row by ``hessian="sparse"`` (static).
        hessian: how the kept entries are stored (static). ``"masked"``: an ``[n, m]`` matrix holding every
            entry with at least ``drop / m`` of its row's mass, zero elsewhere; CG multiplies by it with
            matrix products (one selection pass, no cap per row: fastest on every problem of the
            benchmark, n = m <= 2000). ``"sparse"``: the paper's layout, at most ``sparsity`` entries per
            row holding ``1 - drop`` of its mass, found by bisection and applied by gathers (for ``m`` much
            larger than ``sparsity``).
        drop: the mass fraction of each row the Hessian may drop: the budget adapts to the problem within
            static shapes. With the defaults, the random assignment problem (n = 500, eta = 1200) keeps ~8
            entries per row (the paper's 2n-15n) and takes 7 Newton steps to 1e-10. A larger ``drop`` keeps
            fewer: ``1e-3`` takes 13 Newton steps on W2 between 28 x 28 images.
        tol: stop when the L1 marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1 <= tol``. The default, 1e-6, is
            tighter than :func:`~ott_fast.sinkhorn`'s 1e-3 on purpose: SNS is for high accuracy. Its Newton
            steps converge quadratically once they take over, so the last digits cost a step or two each,
            where Sinkhorn's linear rate would pay for every digit; at a loose tolerance the warm-up alone
            usually meets ``tol`` and SNS is plain Sinkhorn. Both solvers measure the same error.
        check_every: warm-up iterations between checks (static).
        acceleration: the warm-up's over-relaxation, as in :func:`~ott_fast.sinkhorn` (``"none"``: the paper's
            plain Sinkhorn). The safe adaptive factor is never slower per iteration and gets Newton's region
            sooner: on W2 between 28 x 28 images it takes 27 iterations against 29 plain. The fallback
            blocks are over-relaxed too (the factor measured afresh in each).
        init: warm start of the warm-up, ``(None, g[m])`` or ``(f[n], None)``, as in :func:`~ott_fast.sinkhorn`:
            the first half-step computes the missing potential exactly (with ``(f, None)``, ``g`` is computed
            from ``f`` first, then the warm-up runs from that ``g``). Passing both is an error.
        shift: Levenberg-Marquardt shift: the Hessian's diagonal is scaled by ``1 + shift * error / mass``.
        newton_cost: the cost of a Newton step in Sinkhorn iterations (about 4 at n = 500 on CPU). A
            Newton step is slow when it reduces the error by less than Sinkhorn's measured rate per
            iteration raised to this power, i.e. by less than Sinkhorn would have in the same time.
        newton_budget: a traced cap on the Newton steps, at most ``max_newton_iters`` (``None``: that cap).
            Changing it does not recompile: time the solve at increasing budgets for an honest
            error-against-seconds curve.
        fallback_iters: Sinkhorn iterations after a stall (static; rounded up to whole ``check_every``),
            doubled per stall up to 64x until a Newton step is fast.
        newton_cg_maxiter: CG iterations per Newton step (static cap).
        max_line_search: halvings of the step before the line search gives up (static).
        cg_maxiter: iteration cap of the conjugate-gradient solve of the implicit backward pass (static), as in
            :func:`~ott_fast.sinkhorn` (the same name means the same cap in both solvers).
        batching: how ``vmap`` batches the solve, as in :func:`~ott_fast.sinkhorn`.
        throw: raise at run time on invalid input or non-finite values, as in :func:`~ott_fast.sinkhorn`.

    Returns:
        An :class:`SNSOutput` (``f``, ``g``, ``errors``, ``n_iters``, ``converged``, ``matrix``,
        ``reg_ot_cost``, ``transport_cost``, ``apply``, ``trace_iters``, ``newton``). Gradients with respect
        to the geometry and the weights are by implicit differentiation, as for Sinkhorn.

    Example:
        >>> import jax, ott_fast as otf
        >>> c = jax.random.uniform(jax.random.PRNGKey(0), (100, 100))
        >>> out = otf.sns(otf.Geometry(c, epsilon=0.01), tol=1e-5)
        >>> bool(out.converged), int(out.newton.n_newton) < 10
        (True, True)
    """
    if not isinstance(geom, (Geometry, PointCloud)):
        raise TypeError(f"geom: expected an ott_fast.Geometry or PointCloud, got {type(geom).__name__}.")
    if isinstance(geom, PointCloud) and geom.online:
        raise ValueError("geom: SNS needs a dense geometry (its Newton steps read the whole plan); got an online one.")
    sinkhorn_iters = val.check_static_int("sinkhorn_iters", sinkhorn_iters)
    max_newton_iters = val.check_static_int("max_newton_iters", max_newton_iters)
    sparsity = val.check_static_int("sparsity", sparsity)
    check_every = val.check_static_int("check_every", check_every)
    fallback_iters = val.check_static_int("fallback_iters", fallback_iters)
    newton_cg_maxiter = val.check_static_int("newton_cg_maxiter", newton_cg_maxiter)
    max_line_search = val.check_static_int("max_line_search", max_line_search)
    cg_maxiter = val.check_static_int("cg_maxiter", cg_maxiter)
    if sinkhorn_iters % check_every:
        raise ValueError(f"sinkhorn_iters: must be a multiple of check_every={check_every}, got {sinkhorn_iters}.")
    if acceleration not in ("adaptive", "none"):
        raise ValueError(f"acceleration: expected 'adaptive' or 'none', got {acceleration!r}.")
    if hessian not in ("masked", "sparse"):
        raise ValueError(f"hessian: expected 'masked' or 'sparse', got {hessian!r}.")
    if batching not in ("auto", "parallel", "sequential"):
        raise ValueError(f"batching: expected 'auto', 'parallel' or 'sequential', got {batching!r}.")
    n, m = geom.shape
    dtype = geom.dtype
    a = val.check_weights("a", a, n, dtype)
    b = val.check_weights("b", b, m, dtype)
    geom = with_weights_jit(geom, a, b)  # relative epsilon and centring under these weights
    val.check_nonnegative("tol", tol)
    val.check_positive("epsilon", geom.epsilon)
    val.check_mass(a, b, dtype)
    if val.is_concrete(shift) and float(shift) < 0:
        raise ValueError(f"shift: must be >= 0, got {float(shift)}.")
    if val.is_concrete(newton_cost) and not float(newton_cost) > 0:
        raise ValueError(f"newton_cost: must be > 0, got {float(newton_cost)}.")
    g0, from_f = initial_potential(init, n, m, dtype)
    static = _Static(
        sinkhorn_iters,
        check_every,
        acceleration == "adaptive",
        max_newton_iters,
        min(sparsity, m),
        newton_cg_maxiter,
        max_line_search,
        fallback_iters,
        cg_maxiter,
        batching,
        bool(throw),
        hessian == "masked",
        from_f,
    )
    num = _Numerics(
        tol=jnp.asarray(tol, dtype),
        shift=jnp.asarray(shift, dtype),
        newton_cost=jnp.asarray(newton_cost, dtype),
        armijo=jnp.asarray(1e-4, dtype),
        budget=jnp.asarray(max_newton_iters if newton_budget is None else newton_budget, jnp.int32),
        drop=jnp.asarray(drop, dtype),
    )
    f, g, errors, n_iters, converged, duals, iters, diag, status, error = _solve(static, geom, a, b, g0, num)
    one = jnp.ones((), dtype)
    envelope = jnp.asarray(True)
    return SinkhornOutput(
        f, g, errors, n_iters, converged, geom, a, b, one, one, duals, status, error, envelope, iters, diag
    )
