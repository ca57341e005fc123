"""What every entropic solver shares around its loop: the status it reports, the check of its result against
the outputs it returns, the implicit-gradient wrapper and the batching rule.

A solver module supplies ``run_single(static, geom, a, b, g0, num) -> (f, g, *rest)`` (its loop, unbatched)
and gets back, from :func:`make_solve`, a jitted solve with implicit gradients and the chosen ``vmap``
batching. Before returning, ``run_single`` passes its potentials through :func:`finalize`, which recomputes
the marginal error exactly from those potentials, through the same kernel as the output's ``matrix``, so
``converged`` is a promise about what is returned, and which turns invalid or non-finite input into NaN
potentials (hence NaN costs) with a status saying why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast._order import after  # noqa: F401  (driver.after: the solvers' name for it)
from ott_fast._tuning import tuning
from ott_fast.entropic import dual
from ott_fast.geometry import strided_chunks, unstride, useful_divisor

Array = jax.Array

__all__ = [
    "Status",
    "describe",
    "failed",
    "finalize",
    "Finalized",
    "input_is_valid",
    "make_solve",
    "batched_mode",
    "chunk_members",
    "in_chunks",
    "throw_on_failure",
    "throw_unless_converged",
    "while_loop",
    "STOP_MARGIN",
    "loop_met",
]


class Status:
    """Why a solve stopped: the integer codes of an output's ``status`` field (``[]`` int32, per problem
    under ``vmap``). :func:`describe` turns one into words.

    Attributes:
        CONVERGED: the L1 marginal error, recomputed from the returned potentials, is ``<= tol``.
        MAX_ITERS: the iteration cap was reached first (``tol=0``: a fixed budget, always this).
        NONFINITE: the iterates became non-finite (epsilon too small for the dtype, say); potentials are NaN.
        INVALID_INPUT: the input failed the in-graph check (NaN or negative weights, unequal masses of a
            balanced problem, non-finite costs or points, epsilon not finite and > 0); potentials are NaN.
        UNVERIFIED: the loop's running error met ``tol`` but the error recomputed from the returned
            potentials did not (rounding at a tolerance too tight for the dtype).

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> geom = otf.Geometry(jnp.ones((2, 2)), epsilon=1.0)
        >>> int(otf.sinkhorn(geom).status) == Status.CONVERGED
        True
        >>> out = jax.jit(otf.sinkhorn)(geom, jnp.array([0.5, 0.5]), jnp.ones(2))  # unequal masses, traced
        >>> int(out.status) == Status.INVALID_INPUT, bool(jnp.isnan(out.reg_ot_cost))
        (True, True)
    """

    CONVERGED = 0
    MAX_ITERS = 1
    NONFINITE = 2
    INVALID_INPUT = 3
    UNVERIFIED = 4


_MESSAGES = {
    Status.CONVERGED: "converged: the marginal error of the returned plan is within tol",
    Status.MAX_ITERS: "hit max_iters before the marginal error reached tol",
    Status.NONFINITE: "non-finite values appeared during the solve (epsilon too small for the dtype?)",
    Status.INVALID_INPUT: (
        "invalid input seen in-graph: NaN/negative weights, unequal masses of a balanced problem, "
        "non-finite costs or points, or epsilon not finite and > 0"
    ),
    Status.UNVERIFIED: "the running error met tol but the error recomputed from the returned plan did not",
}


def describe(status: Any) -> str | list[Any]:
    """The words for a status code: a string for a Python int or a ``[]`` array, and for a batched status (the
    ``status[batch]`` of a ``vmap``-ed solve, any shape) a list of strings, one per code, nested like the array.

    Args:
        status: a code of :class:`Status`, or an array of them.

    Example:
        >>> describe(Status.MAX_ITERS)
        'hit max_iters before the marginal error reached tol'
        >>> describe(np.array([Status.CONVERGED, Status.MAX_ITERS]))[1]
        'hit max_iters before the marginal error reached tol'
    """
    codes = np.asarray(status)
    if codes.ndim == 0:
        return _MESSAGES[int(codes)]
    return [describe(c) for c in codes]


# The loops stop at STOP_MARGIN * tol on their running error: it rounds differently from finalize's exact recount
# of the returned potentials, and stopping a little below tol keeps a solve that meets tol there from coming
# back UNVERIFIED (its costs then NaN). Every solver's loop uses it.
STOP_MARGIN = 0.9


def loop_met(err: Array, tol: Array) -> Array:
    """``[]`` bool: a solver loop's stop on its own running error, ``err <= STOP_MARGIN * tol`` with finite
    values (``tol = 0`` asks for a fixed budget: never met).

    Example:
        >>> bool(loop_met(jnp.asarray(0.5e-3), jnp.asarray(1e-3))), bool(loop_met(jnp.asarray(0.95e-3), 1e-3))
        (True, False)
    """
    return (err <= STOP_MARGIN * tol) & jnp.isfinite(err) & (tol > 0)


class Finalized(NamedTuple):
    """What :func:`finalize` returns: potentials as returned, the verified flag, the status and the error."""

    f: Array
    g: Array
    converged: Array
    status: Array
    error: Array


def finalize(
    f: Array,
    g: Array,
    kernel: Any,
    a: Array,
    b: Array,
    tau_a: Array,
    tau_b: Array,
    tol: Array,
    valid: Array,
    loop_converged: Array,
) -> Finalized:
    """Checks a solver's final potentials against what the output will return.

    The error is recomputed at ``(f, g)`` through ``kernel``, the kernel the output's plan and costs are
    computed from, with one-pass sums (:func:`~ott_fast.entropic.dual.exact_sums` with ``shifted=False``:
    exact wherever the error is small, and as large as the exact error wherever it is not). ``converged``
    holds only if it is ``<= tol`` (and ``tol > 0``: ``tol=0`` asks for a fixed budget). Invalid input or
    non-finite values give NaN potentials, so every cost derived from them is NaN too, never a plausible
    number.

    Args:
        f, g: ``[n]``, ``[m]`` final potentials.  kernel: the geometry's kernel.  a, b: the weights.
        tau_a, tau_b: marginal relaxations.  tol: the tolerance.  valid: the in-graph input check.
        loop_converged: whether the solver's own loop stopped on its running error.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> k, w = otf.Geometry(jnp.zeros((2, 2)), epsilon=1.0).kernel(), jnp.full(2, 0.5)
        >>> out = finalize(jnp.zeros(2), jnp.zeros(2), k, w, w, 1.0, 1.0, 1e-6, jnp.array(True), jnp.array(True))
        >>> bool(out.converged), float(out.error)
        (True, 0.0)
    """
    log_r, log_c = dual.exact_sums(f, g, kernel, a, b, shifted=False)
    err = jax.lax.stop_gradient(dual.marginal_error(f, g, log_r, log_c, a, b, kernel.epsilon, tau_a, tau_b))
    finite = jnp.isfinite(err) & jnp.all(jnp.isfinite(f)) & jnp.all(jnp.isfinite(g))
    ok = valid & finite
    converged = ok & (err <= tol) & (tol > 0)
    status = jnp.where(
        ~valid,
        Status.INVALID_INPUT,
        jnp.where(
            ~finite,
            Status.NONFINITE,
            jnp.where(converged, Status.CONVERGED, jnp.where(loop_converged, Status.UNVERIFIED, Status.MAX_ITERS)),
        ),
    ).astype(jnp.int32)
    nan_f, nan_g = jnp.full_like(f, jnp.nan), jnp.full_like(g, jnp.nan)
    return Finalized(jnp.where(ok, f, nan_f), jnp.where(ok, g, nan_g), converged, status, jnp.where(ok, err, jnp.nan))


# The codes of a failed solve (its potentials are NaN), as opposed to one that stopped short of tol.
_FAILED = (Status.NONFINITE, Status.INVALID_INPUT)


def sor_factor(mu2: Array, omega_max: Any) -> Array:
    """The over-relaxation factor for a two-block (alternating) iteration whose plain rate per iteration is
    ``mu2`` in ``[0, 1]``: SOR's optimum ``2 / (1 + sqrt(1 - mu2))``, moved a quarter of the way towards 2
    (the rate seen early underestimates the asymptotic one, and SOR is steep below its optimal factor but
    flat above it), capped to ``[1, omega_max]``.

    Example:
        >>> round(float(sor_factor(jnp.asarray(0.96), 1.9)), 4)
        1.75
    """
    best = 2.0 / (1.0 + jnp.sqrt(1.0 - mu2))
    return jnp.clip(best + 0.25 * (2.0 - best), 1.0, omega_max)


def failed(status: Any) -> Array:
    """Bool, shaped like ``status``: the solve failed (invalid input or non-finite values, so its potentials and
    every value derived from them are NaN), as opposed to one that converged or stopped short of ``tol``.

    Example:
        >>> bool(failed(Status.NONFINITE)), bool(failed(Status.MAX_ITERS))
        (True, False)
    """
    status = jnp.asarray(status)
    return (status == _FAILED[0]) | (status == _FAILED[1])


def _raise_if_failed(solver: str, status: Any) -> None:
    codes = np.atleast_1d(np.asarray(status))
    bad = [int(c) for c in codes if int(c) in _FAILED]
    if bad:
        raise RuntimeError(f"{solver}: {describe(bad[0])} (status {bad[0]}); pass throw=False to get NaN instead.")


def throw_on_failure(solver: str, status: Array) -> None:
    """With ``throw=True``: raises at run time, under ``jit`` too, when a solve saw invalid input or
    non-finite values (a host callback, so it costs a device-to-host sync: opt-in only)."""
    jax.debug.callback(functools.partial(_raise_if_failed, solver), status)


def _raise_unless_converged(name: str, status: Any) -> None:
    codes = np.atleast_1d(np.asarray(status))
    bad = [int(c) for c in codes if int(c) != Status.CONVERGED]
    if bad:
        raise RuntimeError(f"{name}: {describe(bad[0])} (status {bad[0]}); pass throw=False to get NaN instead.")


def throw_unless_converged(name: str, status: Array) -> None:
    """With ``throw=True``: raises at run time, under ``jit`` too, unless ``status`` is ``CONVERGED``: the
    rule of every value derived from a solve (a divergence, a gap, a loss), which is NaN otherwise."""
    jax.debug.callback(functools.partial(_raise_unless_converged, name), status)


# ------------------------------------------------------------------------------- gradients and batching


def batched_mode(batching: str, shape: tuple[int, int], implicit_diff: bool = True) -> str:
    """How ``vmap`` runs a batch of ``[n, m]`` problems, the rule the solvers share: ``"sequential"`` (a loop
    over members), ``"chunked"`` (batched loops over cache-sized chunks of the batch, one after another) or
    ``"whole"`` (one batched loop over the whole batch).

    ``"auto"`` is sequential on CPU for problems of at least ``2**16`` cost entries (256 x 256), where a
    chunk holds too few members to gain over a loop, else ``"parallel"``. ``"parallel"`` is chunked on CPU
    with ``implicit_diff`` (see :func:`in_chunks`) and whole elsewhere: a GPU wants the whole batch at once,
    and reverse mode cannot go through the chunks' loop.

    Example:
        >>> import jax
        >>> batched_mode("parallel", (64, 64)) == ("chunked" if jax.default_backend() == "cpu" else "whole")
        True
    """
    cpu = jax.default_backend() == "cpu"
    if batching == "sequential" or (
        batching == "auto" and implicit_diff and cpu and shape[0] * shape[1] >= tuning().sequential_min_entries
    ):
        return "sequential"
    return "chunked" if cpu and implicit_diff else "whole"


def in_chunks(fn: Callable[..., Any], members: int) -> Callable[..., Any]:
    """``fn``, whose ``vmap`` runs the batch in chunks of about ``members`` members, one chunk after another
    (a ``lax.map``), each chunk ``vmap``-ed.

    On a CPU a batch of small problems is bound by memory traffic: every sweep of a vmapped solve over
    4096 problems of 128 x 128 reads 268 MB of costs, out of cache, and so do the first iteration's exact
    sweeps and the final check. A chunk whose costs fit the cache runs the same work from cache, about
    twice as fast. A batch of at most four chunks' worth runs whole: splitting it gained nothing (4096
    problems of 32 x 32 ran about 10% slower in four chunks).

    Chunk ``j`` holds members ``j, j + c, j + 2c, ...`` (``c`` the number of chunks; the layout of
    ``ott_fast.geometry.strided_chunks``), so a batch sharded in contiguous blocks over devices keeps
    every chunk sharded the same way. The chunks are equal: their size is the largest divisor of the batch
    up to ``members``, or, where that divisor is below a quarter of ``members``, the batch is topped up with
    copies of its first members (whose results are dropped; a sharded batch is then reshuffled once). Each
    member's computation is unchanged, so results equal a plain ``vmap``'s.

    Args:
        fn: the function to batch; every output gets a leading batch axis.
        members: the target number of members per chunk (>= 1).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> double = in_chunks(lambda x: 2 * x, members=2)  # 10 members: five chunks of 2
        >>> jax.vmap(double)(jnp.arange(10.0)).tolist()
        [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
    """
    run = jax.custom_batching.custom_vmap(fn)

    @run.def_vmap
    def _rule(axis_size: int, in_batched: list, *args: Any) -> tuple[Any, Any]:
        axes = tuple(jax.tree.map(lambda bt: 0 if bt else None, list(in_batched)))
        batched_fn = jax.vmap(fn, in_axes=axes)
        if axis_size <= tuning().whole_chunks * members:  # a few chunks' worth: the whole batch is cache-sized
            out = batched_fn(*args)
            return out, jax.tree.map(lambda _: True, out)
        # no divisor of a useful size: top up to balanced chunks instead
        size = useful_divisor(axis_size, members) or -(-axis_size // -(-axis_size // members))
        chunks = -(-axis_size // size)
        total = chunks * size

        def cut(x: Array, bt: bool) -> Array:  # [B, ...] -> [chunks, size, ...]
            if not bt:
                return x
            if total > axis_size:
                x = jnp.concatenate([x, x[: total - axis_size]])
            return strided_chunks(x, chunks, size)

        leaves, tree = jax.tree.flatten(list(args))
        flags = jax.tree.leaves(list(in_batched))
        cut_leaves = [cut(x, bt) for x, bt in zip(leaves, flags, strict=True)]
        pos = [i for i, bt in enumerate(flags) if bt]

        def one(xs: list) -> Any:
            full = list(cut_leaves)
            for i, x in zip(pos, xs, strict=True):
                full[i] = x
            return batched_fn(*jax.tree.unflatten(tree, full))

        outs = jax.lax.map(one, [cut_leaves[i] for i in pos])
        out = jax.tree.map(lambda o: unstride(o, axis_size), outs)
        return out, jax.tree.map(lambda _: True, out)

    return run


def chunk_members(shape: tuple[int, int]) -> int:
    """Members per chunk of a ``"chunked"`` batch of ``[n, m]`` problems: as many as keep ``2**20`` cost
    entries (4 MB of float32 per stored copy) in a chunk, at least one.

    Example:
        >>> chunk_members((128, 128))
        64
    """
    return max(1, tuning().chunk_entries // (shape[0] * shape[1]))


def while_loop(
    cond_fun: Callable[[Any, Any], Array], body_fun: Callable[[Any, Any], Any], operands: Any, init: Any
) -> Any:
    """``lax.while_loop`` over ``state`` with loop-invariant ``operands``, whose ``vmap`` runs only the members
    still going: a batched solve's work follows each member's own iteration count, not the slowest one's.

    ``jax.vmap`` of a plain ``while_loop`` runs the body on the whole batch until its last member stops,
    freezing the finished ones by a select, so a batch whose iteration counts spread from 10 to 80 costs 80
    full-batch iterations. Here the batched rule splits the batch into up to 8 lanes and, before each body
    call, orders each lane's members with ``cond_fun`` true first, then runs the body, vmapped, on
    consecutive groups of an eighth of each lane only while a group holds a member that is going (finished
    members met in the last group stay frozen). Each
    member's own computation is unchanged (same operations, so the same result as a loop of separate
    solves); the work is about the batch's mean iteration count, plus a gather and a scatter of the
    groups' operands and states per call, small next to a body of full sweeps.

    Args:
        cond_fun: ``(operands, state) -> []`` bool, per member.  body_fun: ``(operands, state) -> state``.
        operands: a pytree the loop reads (a kernel, weights, numerics).  init: the initial state.

    Returns:
        The final state, as ``lax.while_loop`` returns it.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> count = lambda limit: while_loop(lambda o, s: s < o, lambda o, s: s + 1, limit, jnp.int32(0))
        >>> jax.vmap(count)(jnp.array([3, 0, 7])).tolist()
        [3, 0, 7]
    """

    def run(operands: Any, init: Any) -> Any:
        return jax.lax.while_loop(lambda s: cond_fun(operands, s), lambda s: body_fun(operands, s), init)

    run = jax.custom_batching.custom_vmap(run)

    @run.def_vmap
    def _rule(axis_size: int, in_batched: list, operands: Any, init: Any) -> tuple[Any, Any]:
        # The batch is split into `lanes` rows [lanes, width] and each lane is regrouped on its own: a batch
        # sharded along its axis over up to 8 devices (in contiguous blocks) then gathers and scatters only
        # within each device's lanes, never across devices.
        lanes = next(k for k in (8, 4, 2, 1) if axis_size % k == 0)
        width = axis_size // lanes
        groups = tuning().groups
        size = -(-width // groups)
        op_batched = in_batched[0]
        op_axes = jax.tree.map(lambda bt: 0 if bt else None, op_batched)

        def lane_rows(x: Array) -> Array:
            return jnp.reshape(x, (lanes, width, *jnp.shape(x)[1:]))

        def state_rows(x: Any, is_batched: bool) -> Array:
            x = x if is_batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))
            return lane_rows(x)

        ops = jax.tree.map(lambda x, bt: lane_rows(x) if bt else x, operands, op_batched)
        state = jax.tree.map(state_rows, init, in_batched[1])

        def members(fn: Callable[..., Any]) -> Callable[..., Any]:  # over lanes, then over members
            return jax.vmap(jax.vmap(fn, in_axes=(op_axes, 0)), in_axes=(op_axes, 0))

        def step(o: Any, s: Any) -> Any:
            keep = cond_fun(o, s)
            return jax.tree.map(lambda new, old: jnp.where(keep, new, old), body_fun(o, s), s)

        going, steps = members(cond_fun), members(step)
        take = jax.vmap(lambda x, i: x[i])  # per lane
        put = jax.vmap(lambda x, i, v: x.at[i].set(v))  # repeated members carry equal values

        def call(st: Any) -> Any:
            active = going(ops, st)  # [lanes, width]
            order = jnp.argsort(~active, axis=1, stable=True).astype(jnp.int32)  # members going first
            order = jnp.concatenate([order, jnp.repeat(order[:, -1:], size * groups - width, axis=1)], axis=1)
            n_groups = jnp.max((jnp.sum(active, axis=1, dtype=jnp.int32) + size - 1) // size)

            def group(i: Array, st: Any) -> Any:
                idx = jax.lax.dynamic_slice_in_dim(order, i * size, size, axis=1)  # [lanes, size]
                sub_ops = jax.tree.map(lambda x, bt: take(x, idx) if bt else x, ops, op_batched)
                new = steps(sub_ops, jax.tree.map(lambda x: take(x, idx), st))
                return jax.tree.map(lambda x, v: put(x, idx, v), st, new)

            return jax.lax.fori_loop(0, n_groups, group, st)

        out = jax.lax.while_loop(lambda st: jnp.any(going(ops, st)), call, state)
        out = jax.tree.map(lambda x: jnp.reshape(x, (axis_size, *x.shape[2:])), out)
        return out, jax.tree.map(lambda _: True, out)

    return run(operands, init)


def make_solve(
    run_single: Callable[..., tuple],
    *,
    taus: Callable[[Any], tuple[Array, Array]],
    cg_maxiter: Callable[[Any], int],
    mode: Callable[[Any, tuple[int, int]], str],
    num_cotangent: Callable[[Any, Array, Array], Any],
) -> Callable[..., tuple]:
    """A jitted ``solve(static, geom, a, b, g0, num) -> (f, g, *rest)`` with implicit gradients.

    The backward pass is the implicit differentiation of the optimality conditions shared by every
    entropic solver (:func:`~ott_fast.entropic.dual.implicit_vjp`), from the potentials' cotangents.

    Args:
        run_single: the solver's loop for one problem; its first two outputs are ``f``, ``g``.
        taus: ``num -> (tau_a, tau_b)``.  cg_maxiter: ``static -> int``, the backward CG cap.
        mode: ``(static, shape) -> str``, how ``vmap`` runs a batch (:func:`batched_mode`).
        num_cotangent: ``(num, g_tau_a, g_tau_b) -> cotangent of num``.

    Returns:
        ``(solve, solve_unrolled)``: the first differentiates implicitly, the second through the loop.

    Example:
        >>> solve, _ = make_solve(lambda s, geom, a, b, g0, num: (a, b), taus=lambda num: (1.0, 1.0),
        ...                       cg_maxiter=lambda s: 10, mode=lambda s, shape: "whole",
        ...                       num_cotangent=lambda num, ta, tb: num)
        >>> callable(solve)
        True
    """

    @functools.lru_cache(maxsize=64)
    def batched_run(static: Any, shape: tuple[int, int]) -> Callable[..., tuple]:
        run = functools.partial(run_single, static)
        how = mode(static, shape)
        if how == "sequential":
            return jax.custom_batching.sequential_vmap(run)
        return in_chunks(run, chunk_members(shape)) if how == "chunked" else run

    def core(static: Any, geom: Any, a: Array, b: Array, g0: Array, num: Any) -> tuple:
        return batched_run(static, geom.shape)(geom, a, b, g0, num)

    def fwd(static: Any, geom: Any, a: Array, b: Array, g0: Array, num: Any) -> tuple:
        out = core(static, geom, a, b, g0, num)
        return out, (out[0], out[1], geom, a, b, num, g0)

    def bwd(static: Any, res: tuple, cts: tuple) -> tuple:
        f, g, geom, a, b, num, g0 = res
        tau_a, tau_b = taus(num)

        def solve(_: None) -> tuple:
            return dual.implicit_vjp(f, g, geom, a, b, tau_a, tau_b, cts[0], cts[1], cg_maxiter(static))

        def zeros(_: None) -> tuple:
            return jax.tree_util.tree_map(jnp.zeros_like, (geom, a, b, tau_a, tau_b))

        # A value taken at frozen potentials (reg_ot_cost, the divergence: the envelope theorem) sends zero
        # cotangents here; they need no linear solve and no pass over the plan. (Under vmap, where cond
        # becomes select, both branches run: no slower than the solve alone.)
        needed = jnp.any(cts[0] != 0) | jnp.any(cts[1] != 0)
        g_geom, g_a, g_b, g_ta, g_tb = jax.lax.cond(needed, solve, zeros, None)
        # The start is g[m], or f[n] with init=(f, None): its cotangent is zero (the optimum does not depend on it).
        return g_geom, g_a, g_b, jnp.zeros_like(g0), num_cotangent(num, g_ta, g_tb)

    implicit = jax.custom_vjp(core, nondiff_argnums=(0,))
    implicit.defvjp(fwd, bwd)
    return _explain_explicit_mesh(jax.jit(implicit, static_argnums=(0,))), _explain_explicit_mesh(
        jax.jit(core, static_argnums=(0,))
    )


EXPLICIT_MESH_BATCH = (
    "a batch of problems sharded along the batch axis of a mesh with Explicit axes (the default of "
    "jax.make_mesh since JAX 0.10) cannot be solved under jax.vmap: JAX's batching of while_loop fails on it "
    '("{err}"). Build the mesh with Auto axes, jax.make_mesh(shape, names, '
    "axis_types=(jax.sharding.AxisType.Auto,) * len(names)), and shard the batch on it; one problem sharded "
    "along its points works on Explicit axes too."
)


def _explain_explicit_mesh(solve: Callable[..., tuple]) -> Callable[..., tuple]:
    """``solve``, turning JAX's error for a vmapped loop over an Explicit-axes-sharded batch into one that
    says what to pass instead (the error is raised while tracing, inside the user's ``vmap``)."""

    @functools.wraps(solve)
    def wrapped(*args: Any) -> tuple:
        try:
            return solve(*args)
        except ValueError as err:
            msg = str(err)
            if ("Resource axis" in msg and "is not found in mesh" in msg) or "should be sharded the same" in msg:
                raise ValueError(EXPLICIT_MESH_BATCH.format(err=err)) from err
            raise

    wrapped._cache_size = solve._cache_size  # type: ignore[attr-defined]  # compile counts stay observable
    return wrapped


def input_is_valid(kernel: Any, a: Array, b: Array, tau_a: Array, tau_b: Array) -> Array:
    """``[]`` bool: the in-graph input check of an entropic problem (:func:`ott_fast._validation.problem_is_valid`,
    and ``tau`` in ``(0, 1]``).

    Args:
        kernel: the geometry's kernel.  a, b: the weights.  tau_a, tau_b: marginal relaxations.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> k = otf.Geometry(jnp.zeros((2, 2)), epsilon=1.0).kernel()
        >>> bool(input_is_valid(k, jnp.full(2, 0.5), jnp.array([0.5, jnp.nan]), 1.0, 1.0))
        False
    """
    ta, tb = jnp.asarray(tau_a), jnp.asarray(tau_b)
    ok = val.problem_is_valid(kernel, a, b, (ta >= 1) & (tb >= 1))
    return ok & (ta > 0) & (tb > 0) & (ta <= 1) & (tb <= 1)
