"""Pairs drawn from a solved entropic plan without forming it: conditional, joint and argmax couplings.

The plan of a solve is ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``. Its row ``i``, normalised, is the
conditional ``P(j | i) ∝ b_j exp((g_j - C_ij) / eps)`` (``f_i`` is a row constant). Every sampler here draws
``j`` by inverting that row's distribution function with one uniform ``u_i``: the row's weights, max-shifted,
are summed in blocks of :data:`_DRAW_BLOCK` columns, the block where the running sum passes ``u_i`` times the
total is found, then the column inside it (two short cumulative sums, not one of length ``m``, which XLA:CPU
computes several times slower). It goes one row block at a time through the geometry's
:class:`~ott_fast.geometry.Kernel` (its ``scan`` / ``blocks`` and ``log_block``): a dense geometry reads its
stored matrix in row chunks of about ``2**20`` entries, an online one recomputes its costs chunk by chunk, so
the sampler's own memory stays ``O(k m)`` for a ``k``-row chunk (its log-plan chunk and weights, a few
chunks) and never ``n x m``. (The Gumbel-max trick draws the same law but needs ``n x m`` random numbers:
five times the time of the whole draw at ``n = m = 1024``.)

The uniform of draw ``s`` is ``uniform(fold_in(key, s))``: the same key gives the same draws on a dense and
an online geometry of the same points (up to the rounding of their costs), and on one device or many.

A zero weight means an absent point: a column with ``b_j = 0`` is never drawn, a row with ``a_i = 0`` never
by :func:`sample_joint`. An output whose solve failed (``status`` invalid input or non-finite, NaN potentials)
is a ``ValueError`` eagerly; under ``jit`` its indices are ``-1`` and ``valid`` is ``False``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast.entropic.driver import after, describe, failed
from ott_fast.geometry import unstride

Array = jax.Array

__all__ = ["Pairs", "sample_conditional", "sample_joint", "argmax_coupling"]


class Pairs(NamedTuple):
    """Index pairs drawn from a coupling; a pytree, so it passes through ``jit`` and ``vmap``.

    Attributes:
        rows: ``[k]`` int32 row (source) indices.
        cols: ``[k]`` int32 column (target) indices: pair ``s`` is ``(x[rows[s]], y[cols[s]])``.
        valid: ``[]`` bool, ``False`` where the solve the pairs come from failed (then every index is ``-1``:
            check it before gathering, as ``y[-1]`` is the last point).

    Example:
        >>> import jax.numpy as jnp
        >>> p = Pairs(jnp.arange(3), jnp.array([2, 0, 1]), jnp.array(True))
        >>> p.cols[p.rows].tolist()
        [2, 0, 1]
    """

    rows: Array
    cols: Array
    valid: Array


# ----------------------------------------------------------------------------------------- shared pieces


def output_is_valid(out: Any) -> Array:
    """``[]`` bool: the solve of ``out`` did not fail (status neither invalid input nor non-finite, finite
    potentials). Eagerly (concrete ``out``), a failed solve is a ``ValueError`` naming ``out``.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (4, 2))
        >>> bool(output_is_valid(otf.sinkhorn(otf.PointCloud(x, x, epsilon=1.0))))
        True
    """
    for field in ("f", "g", "geom", "a", "b", "status"):
        if not hasattr(out, field):
            raise TypeError(f"out: expected a SinkhornOutput or SNSOutput (fields f, g, geom, a, b), got {type(out)}.")
    ok = ~failed(out.status)
    ok = ok & jnp.all(jnp.isfinite(out.f)) & jnp.all(jnp.isfinite(out.g))
    if val.is_concrete(ok) and ok.ndim == 0 and not bool(ok):
        raise ValueError(
            f"out: the solve failed ({describe(out.status)}), so its plan has no pairs to draw; "
            "check the input (NaN points or weights, unequal masses) or raise epsilon."
        )
    return ok


def problem(out: Any) -> tuple[Any, Array, Array]:
    """``(kernel, v[m], inv_eps)`` of a solved output: ``v = g / eps + log b`` (``-inf`` where ``b = 0``), so
    that ``kernel.log_block(rows, 0, v, inv_eps)`` is the log of the plan's rows up to a row constant."""
    kern = out.geom.kernel()
    inv = 1.0 / kern.epsilon
    return kern, out.g * inv + jnp.log(out.b.astype(out.g.dtype)), inv


# Entries per row chunk when sampling a stored matrix (4 MiB of float32): a large dense plan is swept in row
# chunks, so the sampler's temporaries (the log-plan chunk, its noise) stay a few chunks, not a few n x m.
_DENSE_BLOCK = 1 << 20


# Columns per block of the two-level inverse CDF: a row's draw sums blocks of this many weights, finds the
# block, then sums inside it (both cumulative sums short; a cumulative sum of a whole 1024-entry row ran
# three times slower than the two-level draw on XLA:CPU).
_DRAW_BLOCK = 32


def _uniforms(key: Array, ids: Array, dtype: Any) -> Array:
    """``[k]`` uniforms in ``[0, 1)``, entry ``s`` from ``fold_in(key, ids[s])`` (layout-independent)."""
    return jax.vmap(lambda s: jax.random.uniform(jax.random.fold_in(key, s), (), dtype))(ids)


def _first_above(c: Array, t: Array, total: Array) -> Array:
    """Per row, the first index where the non-decreasing ``c`` exceeds ``t``, capped at the first index where
    it reaches ``total`` (an entry of positive weight, even when ``t`` rounds up to ``total``)."""
    return jnp.minimum(jnp.sum(c <= t, axis=-1), jnp.sum(c < total, axis=-1))


def _inverse_cdf(z: Array, u: Array) -> Array:
    """``[k]`` int32: per row of ``z[k, m]`` (log weights up to a row constant, ``-inf`` hides a column) the
    column ``j`` with ``F(j - 1) <= u_i F(m) < F(j)``, ``F`` the row's running sum of ``exp(z)``."""
    k, m = z.shape
    s = min(_DRAW_BLOCK, m)
    nb = -(-m // s)
    z = jnp.pad(z, ((0, 0), (0, nb * s - m)), constant_values=-jnp.inf)
    w = jnp.exp(z - jnp.max(z, axis=1, keepdims=True)).reshape(k, nb, s)
    sums = jnp.cumsum(jnp.sum(w, axis=2), axis=1)  # [k, nb] running block sums
    total = sums[:, -1:]
    t = u[:, None].astype(z.dtype) * total
    blk = _first_above(sums, t, total)
    before = jnp.where(blk > 0, jnp.take_along_axis(sums, jnp.maximum(blk - 1, 0)[:, None], 1)[:, 0], 0.0)
    inside = jnp.cumsum(jnp.take_along_axis(w, blk[:, None, None], 1)[:, 0], axis=1)  # [k, s]
    j = _first_above(inside, t - before[:, None], inside[:, -1:])
    return (blk * s + j).astype(jnp.int32)


def _pick(z: Array, key: Array | None, ids: Array) -> tuple[Array, Array]:
    """``(cols[k], z at cols)`` for a block ``z[k, m]``: a draw per row (uniform ``fold_in(key, ids[s])``), or
    the row's argmax when ``key`` is ``None``."""
    if key is None:
        cols = jnp.argmax(z, axis=1).astype(jnp.int32)
    else:
        cols = _inverse_cdf(z, _uniforms(key, ids, z.dtype))
    return cols, jnp.take_along_axis(z, cols[:, None], 1)[:, 0]


def all_rows_argmax(out: Any, key: Array | None, v: Array | None = None) -> tuple[Array, Array]:
    """``(cols[n], best[n])``: per row, a draw ``j ~ P(j | i)`` (uniform of draw ``i``), or when ``key`` is
    ``None`` the argmax over ``j`` of ``log P_ij - log a_i - f_i / eps``, and that log weight at ``j``. One pass
    of ``kernel.scan``. ``v`` replaces the column term ``g / eps + log b`` (``-inf`` entries hide columns)."""
    kern, v0, inv = problem(out)
    v = v0 if v is None else v
    n, m = kern.shape
    if kern.blocks()[1] == n and n * m > _DENSE_BLOCK:  # a large stored matrix: row chunks, not one n x m pass
        ids = jnp.arange(n, dtype=jnp.int32)
        return some_rows_argmax(out, ids, ids, key, v, max(1, _DENSE_BLOCK // m))

    def body(acc: None, blk: Any, ids: Array) -> tuple[None, tuple[Array, Array]]:
        return acc, _pick(kern.log_block(blk, jnp.zeros(ids.shape, kern.dtype), v, inv), key, ids)

    # The draws' noise depends on the key and the row ids alone: without an order, XLA generates it while
    # the solve still runs, and the two contend for the cores (driver.after).
    ids = after(jnp.arange(n, dtype=jnp.int32), jnp.sum(v[:1]))
    _, (cols, best) = kern.scan(body, None, (ids,), (0,))
    return cols, best


def row_data(kern: Any) -> Array:
    """The kernel's row data in row order, ``[n, ...]`` (a dense kernel's cost rows, an online one's
    points): ``kern.cost_block(row_data(kern)[rows])`` are the costs of those rows."""
    blocks, _ = kern.blocks()
    if blocks.shape[0] == 1:  # one block (a stored matrix): the block itself, no reordering copy
        return blocks[0][: kern.shape[0]]
    return unstride(blocks, kern.shape[0])


def some_rows_argmax(
    out: Any, rows: Array, ids: Array, key: Array | None, v: Array | None = None, chunk: int | None = None
) -> tuple[Array, Array]:
    """``(cols[k], best[k])``: for each ``rows[s]``, draw ``s`` (uniform ``fold_in(key, ids[s])``) of its
    conditional (its argmax when ``key`` is ``None``) and the log weight there, in chunks of ``chunk`` rows
    (default: the kernel's block size, at most :data:`_DENSE_BLOCK` entries for a stored matrix), so
    ``O(chunk x m)`` memory. ``v`` as in :func:`all_rows_argmax`."""
    kern, v0, inv = problem(out)
    v = v0 if v is None else v
    n, m = kern.shape
    data = row_data(kern)
    num = rows.shape[0]
    k = kern.blocks()[1]
    if chunk is None:
        chunk = max(1, _DENSE_BLOCK // m) if k == n else k
    c = max(1, min(chunk, num))
    nb = -(-num // c)
    pad = nb * c - num
    rows_p = jnp.concatenate([rows, jnp.zeros((pad,), rows.dtype)]).reshape(nb, c)
    ids_p = jnp.concatenate([ids, jnp.zeros((pad,), ids.dtype)]).reshape(nb, c)

    def step(acc: None, inp: tuple[Array, Array]) -> tuple[None, tuple[Array, Array]]:
        r, s = inp
        return acc, _pick(kern.log_block(data[r], jnp.zeros((c,), kern.dtype), v, inv), key, s)

    _, (cols, best) = jax.lax.scan(step, None, (rows_p, ids_p))
    return cols.reshape(-1)[:num], best.reshape(-1)[:num]


def _finish(rows: Array, cols: Array, ok: Array) -> Pairs:
    bad = jnp.full((), -1, jnp.int32)
    return Pairs(jnp.where(ok, rows, bad).astype(jnp.int32), jnp.where(ok, cols, bad).astype(jnp.int32), ok)


# ----------------------------------------------------------------------------------------------- public


def sample_conditional(key: Array, out: Any) -> Pairs:
    """One target per source point: ``cols[i] ~ P(j | i) ∝ b_j exp((g_j - C_ij) / eps)``, for every row.

    An inverse-CDF draw on each row of the plan, through the geometry's kernel (dense: the stored matrix;
    online: chunks of ``k`` rows, memory ``O(k m)``). With uniform ``a`` the ``n`` pairs ``(x_i, y_cols[i])``
    are a row-stratified draw of ``n`` pairs from ``P`` (what flow matching trains on). Rows of zero weight
    get the conditional their potential defines (use :func:`sample_joint` to draw rows by their mass).

    Args:
        key: a PRNG key.
        out: a :class:`~ott_fast.SinkhornOutput` or :class:`~ott_fast.SNSOutput` (``f[n]``, ``g[m]``,
            ``geom``, ``a``, ``b``).

    Returns:
        :class:`Pairs` with ``rows = arange(n)`` and ``cols[n]``; ``valid`` is ``False`` (indices ``-1``) under
        ``jit`` if the solve failed, a ``ValueError`` eagerly. ``jit``- and ``vmap``-able.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
        >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.01, chunk_size=16))  # online
        >>> pairs = otf.sample_conditional(jax.random.PRNGKey(1), out)
        >>> pairs.cols.shape, bool(pairs.valid)
        ((64,), True)
    """
    ok = output_is_valid(out)
    cols, _ = all_rows_argmax(out, key)
    return _finish(jnp.arange(out.f.shape[0], dtype=jnp.int32), cols, ok)


def argmax_coupling(out: Any) -> Pairs:
    """The deterministic argmax coupling ``cols[i] = argmax_j P_ij`` (every row), in one pass of the kernel.

    Not a transport plan in general (two rows may pick one column); :func:`~ott_fast.couplings.greedy_matching`
    resolves such conflicts into a permutation.

    Args:
        out: a :class:`~ott_fast.SinkhornOutput` or :class:`~ott_fast.SNSOutput`.

    Returns:
        :class:`Pairs` with ``rows = arange(n)``, ``cols[n]`` and ``valid`` as in :func:`sample_conditional`.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> c = jnp.array([[0.0, 1.0, 4.0], [1.0, 0.0, 1.0], [4.0, 1.0, 0.0]])
        >>> otf.argmax_coupling(otf.sinkhorn(otf.Geometry(c, epsilon=0.1))).cols.tolist()
        [0, 1, 2]
    """
    ok = output_is_valid(out)
    cols, _ = all_rows_argmax(out, None)
    return _finish(jnp.arange(out.f.shape[0], dtype=jnp.int32), cols, ok)


def row_marginal_log(out: Any) -> Array:
    """``[n]`` log of the plan's row sums, ``log a_i + log sum_j b_j exp((f_i + g_j - C_ij) / eps)`` (exact,
    max-shifted; ``-inf`` where ``a_i = 0``), in two passes of the kernel."""
    kern, v, inv = problem(out)
    return jnp.log(out.a.astype(out.f.dtype)) + kern.row_lse_exact(out.f * inv, v, inv)


def sample_joint(key: Array, out: Any, num: int, replace: bool = True) -> Pairs:
    """``num`` pairs ``(i, j) ~ P / sum(P)``: rows from the plan's row marginal, then ``j | i`` by inverse CDF.

    The row marginal ``r_i = a_i sum_j b_j exp((f_i + g_j - C_ij) / eps)`` takes two passes over the plan
    (exact, max-shifted log-sums); rows are drawn by inverse CDF (``replace=True``: ``O(n + num)``) or by a
    Gumbel top-``num`` (``replace=False``: distinct rows, the without-replacement law of successive draws
    from ``r``); then each drawn row gets its own column draw, in chunks (``O(chunk x m)`` memory). A row
    drawn twice gets two independent columns.

    Args:
        key: a PRNG key.
        out: a :class:`~ott_fast.SinkhornOutput` or :class:`~ott_fast.SNSOutput`.
        num: number of pairs (static); without replacement at most the number of rows of positive weight.
        replace: whether rows may repeat.

    Returns:
        :class:`Pairs` of ``rows[num]``, ``cols[num]`` and ``valid`` (as in :func:`sample_conditional`).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (50, 2))
        >>> out = otf.sinkhorn(otf.PointCloud(x, x, epsilon=0.1))
        >>> pairs = otf.sample_joint(jax.random.PRNGKey(1), out, 20, replace=False)
        >>> pairs.rows.shape, len(set(pairs.rows.tolist()))
        ((20,), 20)
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num: expected a positive int (the number of pairs), got {num!r}.")
    n = out.f.shape[0]
    if not replace:
        if num > n:
            raise ValueError(f"num: {num} pairs without replacement need num <= n = {n}; pass replace=True.")
        if val.is_concrete(out.a) and out.a.ndim == 1 and int(np.sum(np.asarray(out.a) > 0)) < num:
            raise ValueError(
                f"num: {num} distinct rows asked, but only {int(np.sum(np.asarray(out.a) > 0))} "
                "have positive weight; pass replace=True or a smaller num."
            )
    ok = output_is_valid(out)
    k_rows, k_cols = jax.random.split(key)
    log_r = row_marginal_log(out)
    if replace:
        top = jnp.max(jnp.where(jnp.isfinite(log_r), log_r, -jnp.inf))
        cdf = jnp.cumsum(jnp.exp(log_r - top))
        u = jax.random.uniform(k_rows, (num,), cdf.dtype) * cdf[-1]
        rows = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, n - 1).astype(jnp.int32)
    else:
        scores = log_r + jax.random.gumbel(k_rows, (n,), log_r.dtype)
        rows = jax.lax.top_k(scores, int(num))[1].astype(jnp.int32)
    cols, _ = some_rows_argmax(out, rows, jnp.arange(num, dtype=jnp.int32), k_cols)
    return _finish(rows, cols, ok)
