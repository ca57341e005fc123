"""Geometries (a cost matrix, or points that define one, with ``epsilon``) and THE kernel.

- :class:`Geometry` holds a cost matrix ``C[n, m]``.
- :class:`PointCloud` holds points ``x[n, d]``, ``y[m, d]`` and a :mod:`~ott_fast.costs` cost; for
  translation-invariant costs both clouds are centred by one common shift before any cost is formed.
- :class:`Kernel` (``geom.kernel()``: :class:`DenseKernel` or :class:`OnlineKernel`) is the one place that
  forms log-plan blocks ``u_i + v_j - C_ij / eps``: the solvers' sweeps, SNS's Newton steps and every
  derived quantity (plan, costs, ``apply``, the implicit backward pass, curves) go through it, so what a
  solve converged on is exactly what its outputs are computed from.

``epsilon`` is absolute by default; ``relative_epsilon="mean"`` (or ``"std"``) multiplies it by that statistic
of the cost matrix, differentiated like every other input (gradients are those of the value computed).
Geometries are pytrees whose leaves (``epsilon``, the matrix or the points) are traced, so a new ``epsilon``
neither recompiles nor breaks ``vmap``.

Example:
    >>> import jax, ott_fast as otf
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    >>> geom = otf.PointCloud(x, x + 1.0, epsilon=0.1, relative_epsilon="mean")
    >>> geom.shape
    (5, 5)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast._order import after
from ott_fast._tuning import tuning
from ott_fast.costs import HIGHEST, Cost, SqEuclidean, as_cost

Array = jax.Array
RelativeEpsilon = Literal["mean", "std"] | None

__all__ = ["Geometry", "PointCloud", "Kernel", "DenseKernel", "GibbsKernel", "OnlineKernel", "log_block"]


def _clamps(dtype: Any) -> tuple[float, float]:
    """Bounds ``(hi, lo)`` of a one-pass log-sum for ``dtype``: ``log`` of its largest and smallest normal
    numbers. A sum that overflowed (or underflowed) is clamped to them, so the update is partial but finite."""
    info = np.finfo(dtype)
    return float(np.log(info.max)), float(np.log(info.tiny))


def _given_epsilon(epsilon: Any, relative: RelativeEpsilon, dtype: Any) -> Array:
    """The ``epsilon`` a geometry was given, checked: a scalar > 0 (absolute, or in units of the relative
    statistic)."""
    if epsilon is None:
        raise TypeError("epsilon: required (absolute by default; pass relative_epsilon='mean' to scale it).")
    val.check_positive("epsilon", epsilon)
    eps = jnp.asarray(epsilon, dtype=dtype)
    if eps.shape != ():
        raise ValueError(f"epsilon: expected a scalar, got shape {eps.shape}.")
    if relative not in (None, "mean", "std"):
        raise ValueError(f"relative_epsilon: expected None, 'mean' or 'std', got {relative!r}.")
    return eps


def _support_log(w: Array | None, size: int, dtype: Any) -> Array:
    """``0`` where ``w > 0`` (or everywhere if ``w`` is ``None``), ``-inf`` where ``w = 0``: added to a block,
    it hides the absent points from a maximum."""
    if w is None:
        return jnp.zeros((size,), dtype)
    return jnp.where(w > 0, 0.0, -jnp.inf).astype(dtype)


def _weights_or_uniform(w: Array | None, size: int, dtype: Any) -> Array:
    return jnp.full((size,), 1.0 / size, dtype) if w is None else jnp.asarray(w, dtype)


def _weighted_mean(z: Array, w: Array) -> Array:
    """``sum_i w_i z_i / sum_i w_i`` over the first axis, counting only ``w_i > 0``: a zero weight means an
    absent point, wherever it sits (``0 * inf`` would otherwise be NaN)."""
    pos = (w > 0).reshape(w.shape + (1,) * (z.ndim - 1))
    return jnp.sum(jnp.where(pos, w.reshape(pos.shape) * z, 0.0), axis=0) / jnp.sum(w)


def _masked_stats(c: Array, a: Array, b: Array) -> tuple[Array, Array, Array]:
    """``(sum a_i b_j C_ij, sum a_i b_j C_ij^2, max C_ij)`` over the support ``a_i > 0, b_j > 0`` of a block."""
    keep = (a > 0)[:, None] & (b > 0)[None, :]
    w = a[:, None] * b[None, :]
    c0 = jnp.where(keep, c, 0.0)
    big = jnp.max(jnp.where(keep, c, -jnp.inf))
    return jnp.sum(w * c0), jnp.sum(w * c0 * c0), big


def _stat_from_sums(stat: str, s1: Array, s2: Array, top: Array, mass: Array) -> Array:
    if stat == "max":
        return top
    mean = s1 / mass
    return mean if stat == "mean" else jnp.sqrt(jnp.maximum(s2 / mass - mean**2, 0.0))


def _resolve_chunk(chunk_size: Any, n: int, m: int) -> int | None:
    """Rows per chunk of an online geometry, or ``None`` for a dense one."""
    if chunk_size is None:
        if n * m <= tuning().dense_max_entries:
            return None
        chunk_size = "auto"
    if chunk_size == "auto":  # a multiple of 64 rows, so a chunk splits evenly over 2, 4, ..., 64 devices
        t = tuning()
        return int(min(n, max(t.online_min_rows, (t.online_chunk_entries // m) // 64 * 64)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected None, 'auto' or a positive int, got {chunk_size!r}.")
    return min(chunk_size, n)


def log_block(c: Array, u: Array, v: Array, inv_eps: Array) -> Array:
    """``u_i + v_j - c_ij inv_eps``: THE log-plan formula. Every log-plan entry any solver or derived quantity
    uses comes from here, or, for the online squared-Euclidean kernel, from its norm-folded equivalent."""
    return u[:, None] + v[None, :] - c * inv_eps


def sweep_exp(z: Array) -> Array:
    """``exp(z)`` of a block of a stored matrix, as every dense sweep takes it: written
    ``where(z == -inf, 0, exp(z))``, which is ``exp(z)`` for every input (NaN included).

    The select keeps XLA:CPU from handing the sweep to its YNNPACK library fusion, which ran the sweeps of a
    vmapped batch of small problems about 8x slower than its own loop emitter (4096 problems of 64 x 64:
    121 ms against 14 ms per iteration) and, on a large matrix, needs its operands written out: the block
    it reads and the broadcast potentials. With the select the loop emitter fuses the block's slice, the
    exponential and the reduction (200 iterations at 10007 x 600: 1.0 s against 1.36 s without it). An
    online chunk takes ``exp`` directly: there the matrix product feeds the sweep and the select gained
    nothing."""
    return jnp.where(z == -jnp.inf, jnp.zeros((), z.dtype), jnp.exp(z))


def _lse_rows(c: Array, u: Array, v: Array, inv_eps: Array) -> Array:
    """``log sum_j exp(u_i + v_j - c_ij inv_eps)`` per row in one pass: no max is subtracted, so callers pass
    ``u`` holding the current potential (exponents near 0). The result is clamped to the dtype's range, so
    a poor shift gives a partial, finite update instead of inf (NaN still propagates). Clamping the result,
    not each exponent, keeps the sweep to the matrix read alone: an element-wise clamp made XLA:CPU
    materialise a broadcast constant of the matrix's size under ``vmap``, doubling the bytes read."""
    hi, lo = _clamps(c.dtype)
    return jnp.clip(jnp.log(jnp.sum(sweep_exp(log_block(c, u, v, inv_eps)), axis=1)), lo, hi)


def _col_blocks(n: int, m: int) -> tuple[int, int, int]:
    """``(k, nb, rest)``: the column sweep of a stored ``[n, m]`` matrix reads ``nb`` blocks of ``k`` rows (about
    ``tuning().block_entries`` entries each), then ``rest`` more rows. ``k`` is the largest divisor of ``n`` of a useful
    size (``rest = 0``, strided blocks), else the target size itself (contiguous blocks and a shorter last
    one); ``k = n`` (one block) for a small matrix."""
    target = max(1, tuning().block_entries // m)
    if n <= target:  # one block: the matrix itself, C^T beside it
        return n, 1, 0
    k = useful_divisor(n, target)
    if k is not None:
        return k, n // k, 0
    return target, n // target, n % target


def useful_divisor(n: int, target: int) -> int | None:
    """The largest divisor of ``n`` up to ``target``, or ``None`` if it is below ``target / 4`` (chunks that
    small would cost more in loop steps than equal chunks save).

    Example:
        >>> useful_divisor(12, 5), useful_divisor(13, 8)
        (4, None)
    """
    best = max(k for k in range(1, target + 1) if n % k == 0)
    return best if 4 * best >= target else None


def strided_chunks(r: Array, nb: int, k: int) -> Array:
    """``r[nb * k, ...]`` cut into ``nb`` chunks of ``k`` rows, chunk ``j`` holding rows ``j, j + nb, ...``
    (:func:`unstride` puts them back).

    Any partition of the rows gives the same sums; this one keeps a row-sharded array sharded inside every
    chunk (the chunk axis the scan runs over is unsharded), so under ``jit`` with ``x`` sharded along its
    points each device computes its share of every chunk and only the ``[m]`` column sums are reduced,
    instead of every device gathering ``x`` and computing all chunks. A batch of problems cut the same way
    stays sharded in every chunk too.

    Example:
        >>> import jax.numpy as jnp
        >>> strided_chunks(jnp.arange(6), 2, 3).tolist()
        [[0, 2, 4], [1, 3, 5]]
    """
    return jnp.swapaxes(r.reshape((k, nb) + r.shape[1:]), 0, 1)


def unstride(o: Array, n: int) -> Array:
    """``[nb, k, ...]`` per-chunk rows of :func:`strided_chunks` back in row order, the first ``n`` rows.

    Example:
        >>> import jax.numpy as jnp
        >>> unstride(strided_chunks(jnp.arange(6), 2, 3), 5).tolist()
        [0, 1, 2, 3, 4]
    """
    return jnp.swapaxes(o, 0, 1).reshape((o.shape[0] * o.shape[1],) + o.shape[2:])[:n]


def _groups(k: int, like: Array) -> int:
    """Row groups of a ``k``-row chunk whose column sums the sweeps keep apart (see :func:`_group_reduce`):
    ``gcd(k, D)`` for ``like[n]`` laid out over ``D`` devices (the size of the mesh its sharding names, known
    at trace time), so 1, a plain column sum, for an array on one device. It reads the input's layout, not the
    host's device count, so an unsharded solve sums in the same order (same bits) on every machine."""
    mesh = getattr(jax.typeof(like).sharding, "mesh", None)
    devices = 1 if mesh is None or mesh.empty else mesh.size
    return math.gcd(k, devices)


def _group_reduce(z: Array, reduce: Any, g: int) -> Array:
    """``[k, m] -> [g, m]``: ``reduce`` over each of ``g`` (:func:`_groups`) contiguous groups of rows.

    A chunk of a row-sharded problem is sharded along its rows in contiguous pieces (see
    :func:`strided_chunks`), so with one group per device each device reduces only its own rows: the column
    sweep carries ``[G, m]`` partial sums through the chunk loop, with no communication in it, and reduces
    them over ``G`` once after the loop, the sweep's single ``[m]`` all-reduce. Reducing each chunk straight
    to ``[m]`` made the partitioner all-reduce once per chunk. On one device ``g = 1``: grouping rows there
    made XLA:CPU's reduction 3x slower."""
    k, m = z.shape
    return reduce(z.reshape(g, k // g, m), axis=1)


def _sharded_like(acc: Array, u: Array) -> Array:
    """``acc[G, ...]`` sharded along ``G`` as ``u[n]`` is along its rows, when that sharding is explicit (a
    mesh with ``AxisType.Explicit``: a scan's carry must then keep one sharding); unchanged otherwise."""
    sharding = jax.typeof(u).sharding
    spec = getattr(sharding, "spec", None)
    axis = spec[0] if spec else None
    if axis is None:
        return acc
    return jax.sharding.reshard(acc, sharding.update(spec=jax.sharding.PartitionSpec(axis, *([None] * (acc.ndim - 1)))))


class Kernel:
    """The one place that forms log-plan blocks ``u_i + v_j - C_ij / eps`` of a geometry.

    Every pass over the plan goes through a kernel: the solvers' sweeps (:meth:`row_lse`, :meth:`col_lse`
    and the exact, max-shifted :meth:`row_lse_exact` / :meth:`col_lse_exact`), and every derived quantity
    (plan, its mass, ``<P, C>``, ``P v``, the implicit backward pass) through :meth:`scan`, which runs a
    body over row blocks of the plan. :class:`DenseKernel` holds the cost matrix (one block);
    :class:`OnlineKernel` recomputes costs chunk by chunk from (centred) points. Build one with
    ``geom.kernel()``; both are pytrees, so they pass through ``jit`` and ``vmap``.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> k = otf.Geometry(jnp.array([[0.0, 1.0], [1.0, 0.0]]), epsilon=1.0).kernel()
        >>> [round(float(v), 4) for v in k.row_lse_exact(jnp.zeros(2), jnp.zeros(2), jnp.ones(()))]
        [0.3133, 0.3133]
    """

    epsilon: Array

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def dtype(self) -> Any:
        raise NotImplementedError

    def blocks(self) -> tuple[Any, int]:
        """``(blocks[nb, k, ...], k)``: the row data that :meth:`scan` cuts the plan into."""
        raise NotImplementedError

    def cost_block(self, block: Array) -> Array:
        """The ``[k, m]`` costs of one row block."""
        raise NotImplementedError

    def log_block(self, block: Array, u: Array, v: Array, inv_eps: Array) -> Array:
        """``u_i + v_j - C_ij inv_eps`` for one row block: ``[k], [m] -> [k, m]``."""
        return log_block(self.cost_block(block), u, v, inv_eps)

    def scan(self, body: Any, col_init: Any, rows: tuple[Array, ...] = (), pads: tuple[float, ...] = ()) -> tuple:
        """Runs ``body(col_acc, block, *row_blocks) -> (col_acc, row_out)`` over row blocks.

        ``rows`` are ``[n, ...]`` arrays cut into the same blocks; the last block is padded with ``pads``
        (``-inf`` log-weights, say, so padded rows add nothing). Returns the final ``col_acc`` and the row
        outputs stacked back to ``[n, ...]``. With several blocks each step is checkpointed: reverse-mode
        autodiff stores one block's inputs per step, never a cost block.
        """
        blocks, k = self.blocks()
        n, nb = self.shape[0], jax.tree_util.tree_leaves(blocks)[0].shape[0]
        pad = nb * k - n
        cut = []
        for r, pv in zip(rows, pads, strict=True):
            if pad:
                r = jnp.concatenate([r, jnp.full((pad,) + r.shape[1:], pv, r.dtype)])
            cut.append(strided_chunks(r, nb, k))

        def step(acc: Any, inp: tuple) -> tuple[Any, Any]:
            return body(acc, *inp)

        if nb > 1:
            step = jax.checkpoint(step)
        acc, out = jax.lax.scan(step, col_init, (blocks, *cut))
        out = jax.tree_util.tree_map(lambda o: unstride(o, n), out)
        return acc, out

    def col_init(self, like: Array, tail: tuple[int, ...] = (), fill: float = 0.0) -> Array:
        """A ``[G, m, *tail]`` accumulator of column partial sums for :meth:`scan`, one per row group of a
        block (``G`` divides the block's rows; see :meth:`col_contract`), sharded as ``like[n]`` is.

        Example:
            >>> import jax.numpy as jnp, ott_fast as otf
            >>> k = otf.Geometry(jnp.zeros((4, 3)), epsilon=1.0).kernel()
            >>> k.col_init(jnp.zeros(4)).shape[1:]
            (3,)
        """
        acc = jnp.full((_groups(self.blocks()[1], like), self.shape[1]) + tuple(tail), fill, self.dtype)
        return _sharded_like(acc, like)

    @staticmethod
    def col_contract(acc: Array, p: Array, vb: Array | None = None) -> Array:
        """``acc`` plus the column sums of a block ``p[k, m]`` (weighted by ``vb[k, ...]`` if given) per row
        group, ``[G, m, ...]`` (``G = acc.shape[0]``): start from :meth:`col_init` and sum over ``G`` after
        the loop, so a row-sharded problem communicates once per pass instead of once per block.

        Example:
            >>> import jax.numpy as jnp
            >>> Kernel.col_contract(jnp.zeros((1, 3)), jnp.ones((4, 3)), jnp.arange(4.0)).sum(0).tolist()
            [6.0, 6.0, 6.0]
        """
        g = acc.shape[0]
        if vb is None:
            return acc + _group_reduce(p, jnp.sum, g)
        k, m = p.shape
        return acc + jnp.einsum(
            "gkm,gk...->gm...", p.reshape(g, k // g, m), vb.reshape((g, k // g) + vb.shape[1:]), precision=HIGHEST
        )

    # ---------------------------------------------------------------- sweeps (generic: over row blocks)

    def row_lse(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """One-pass ``log sum_j exp(u_i + v_j - C_ij / eps)``, ``[n]``, clamped to the dtype's range."""
        hi, lo = _clamps(self.dtype)

        def body(acc: None, blk: Array, ub: Array) -> tuple[None, Array]:
            return acc, jnp.log(jnp.sum(jnp.exp(self.log_block(blk, ub, v, inv_eps)), axis=1))

        _, out = self.scan(body, None, (u,), (0.0,))
        return jnp.clip(out, lo, hi)

    def col_lse(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """One-pass ``log sum_i exp(u_i + v_j - C_ij / eps)``, ``[m]``, clamped to the dtype's range."""
        hi, lo = _clamps(self.dtype)

        def body(acc: Array, blk: Array, ub: Array) -> tuple[Array, None]:
            return acc + _group_reduce(jnp.exp(self.log_block(blk, ub, v, inv_eps)), jnp.sum, acc.shape[0]), None

        init = self.col_init(u)
        total, _ = self.scan(body, init, (u,), (-jnp.inf,))
        return jnp.clip(jnp.log(jnp.sum(total, axis=0)), lo, hi)

    def row_max(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """``max_j (u_i + v_j - C_ij / eps)``, ``[n]``."""

        def body(acc: None, blk: Array, ub: Array) -> tuple[None, Array]:
            return acc, jnp.max(self.log_block(blk, ub, v, inv_eps), axis=1)

        return self.scan(body, None, (u,), (0.0,))[1]

    def col_max(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """``max_i (u_i + v_j - C_ij / eps)``, ``[m]``."""

        def body(acc: Array, blk: Array, ub: Array) -> tuple[Array, None]:
            return jnp.maximum(acc, _group_reduce(self.log_block(blk, ub, v, inv_eps), jnp.max, acc.shape[0])), None

        init = self.col_init(u, fill=-jnp.inf)
        return jnp.max(self.scan(body, init, (u,), (-jnp.inf,))[0], axis=0)

    def row_lse_exact(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """Exact, max-shifted ``log sum_j exp(u_i + v_j - C_ij / eps)`` (two passes): valid far from any
        optimum, where the one-pass sweeps may clamp. ``-inf`` for a row whose terms are all ``-inf``."""
        mx = self.row_max(u, v, inv_eps)
        mx = jax.lax.stop_gradient(jnp.where(jnp.isfinite(mx), mx, 0.0))
        return mx + self.row_lse(u - mx, v, inv_eps)

    def col_lse_exact(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """Exact, max-shifted column log-sums, ``[m]`` (see :meth:`row_lse_exact`)."""
        mx = self.col_max(u, v, inv_eps)
        mx = jax.lax.stop_gradient(jnp.where(jnp.isfinite(mx), mx, 0.0))
        return mx + self.col_lse(u, v - mx, inv_eps)

    def max_cost(self, a: Array | None = None, b: Array | None = None) -> Array:
        """The largest cost between points of positive weight (``a``, ``b``: ``[n]``, ``[m]``, all points if
        ``None``): the default start of an epsilon schedule."""
        u, v = _support_log(a, self.shape[0], self.dtype), _support_log(b, self.shape[1], self.dtype)
        return jnp.max(self.row_max(u, v, -jnp.ones((), self.dtype)))

    def finite(self) -> Array:
        """``[]`` bool: whether every cost is finite (the in-graph check of traced input)."""
        raise NotImplementedError


@jax.tree_util.register_pytree_node_class
class DenseKernel(Kernel):
    """A stored cost matrix ``C[n, m]`` and ``epsilon``: fused sweeps, and no second matrix-sized buffer.

    A matrix of at most one block (``n m <= 2**20`` entries, 4 MB of float32) keeps ``C^T`` beside it: both
    sweeps are then fused row reductions (a column reduction is slow under ``vmap``), and the copy is small.
    A larger matrix is read in place, never copied: every sweep (row and column sums and maxima) runs over
    row blocks of about ``2**20`` entries (in cache while a block is read), in the strided order of
    :func:`strided_chunks` (block ``j`` holds rows ``j, j + nb, ...``, a slice of the free reshape
    ``C[k, nb, m]``, so a row-sharded matrix stays sharded in every block) when a useful divisor of ``n``
    exists, else in contiguous blocks and a last, shorter one. (Sweeps over the whole matrix in one fusion
    made XLA:CPU hand them to a library fusion that writes its broadcast operands out at the matrix's size,
    and the column sweep kept a strided copy: a 2000 x 2000 solve held 4.25 times the matrix in
    temporaries, 0.26 times now.)

    Memory of a solve on a stored matrix (the compiled program's temporaries, ``memory_analysis()``): up to
    ``4 n m`` entries when ``n m <= 2**20`` (``C^T``, the library fusion's operands, and the Gibbs kernel a
    Sinkhorn solve sweeps at its target epsilon, :class:`GibbsKernel`); otherwise at most five row blocks
    (``k m <= 2**20`` entries each: 20 MB of float32, whatever the matrix's size), plus that Gibbs kernel
    (``n m`` entries) while ``n m <= tuning().gibbs_max_entries`` (``2**22`` on CPU), and
    ``O(n + m)`` vectors. ``python -m benchmarks.memory`` measures both against these formulas.

    Example:
        >>> import jax.numpy as jnp
        >>> k = DenseKernel(jnp.zeros((3, 2)), jnp.ones(()))
        >>> k.log_matrix(jnp.zeros(3), jnp.ones(2), jnp.ones(())).shape
        (3, 2)
    """

    def __init__(self, cost_matrix: Array, epsilon: Array, transposed: Callable[[], Array] | None = None) -> None:
        n, m = cost_matrix.shape
        self.cost_matrix, self.epsilon = cost_matrix, epsilon
        self.cost_t = None
        if _col_blocks(n, m)[0] == n:
            self.cost_t = cost_matrix.T if transposed is None else transposed()

    @property
    def shape(self) -> tuple[int, int]:
        return self.cost_matrix.shape

    @property
    def dtype(self) -> Any:
        return self.cost_matrix.dtype

    def blocks(self) -> tuple[Array, int]:
        return self.cost_matrix[None], self.shape[0]

    def cost_block(self, block: Array) -> Array:
        return block

    def log_matrix(self, u: Array, v: Array, inv_eps: Array) -> Array:
        """The whole ``[n, m]`` log block ``u_i + v_j - C_ij / eps`` (for solvers that read every entry)."""
        return log_block(self.cost_matrix, u, v, inv_eps)

    def row_lse(self, u: Array, v: Array, inv_eps: Array) -> Array:
        if self.cost_t is not None:
            return _lse_rows(self.cost_matrix, u, v, inv_eps)
        hi, lo = _clamps(self.dtype)
        return jnp.clip(jnp.log(self._row_reduce(u, v, inv_eps, sweep_exp, jnp.sum)), lo, hi)

    def col_lse(self, u: Array, v: Array, inv_eps: Array) -> Array:
        if self.cost_t is not None:
            return _lse_rows(self.cost_t, v, u, inv_eps)
        hi, lo = _clamps(self.dtype)
        return jnp.clip(jnp.log(self._col_reduce(u, v, inv_eps, sweep_exp, jnp.sum)), lo, hi)

    def row_max(self, u: Array, v: Array, inv_eps: Array) -> Array:
        if self.cost_t is not None:
            return jnp.max(self.log_matrix(u, v, inv_eps), axis=1)
        return self._row_reduce(u, v, inv_eps, lambda z: z, jnp.max)

    def _row_reduce(self, u: Array, v: Array, inv_eps: Array, elem: Any, fold: Any) -> Array:
        """``[n]``: ``fold`` over columns of ``elem`` of the log-plan blocks, block by block as
        :meth:`_col_reduce` reads them (a reduction of the whole matrix in one fusion made XLA:CPU write
        broadcast operands of the matrix's size)."""
        k, nb, rest = _col_blocks(*self.shape)
        m = self.shape[1]
        c = self.cost_matrix

        def rows(cb: Array, ub: Array) -> Array:
            return fold(elem(log_block(cb, ub, v, inv_eps)), axis=1)

        if rest == 0:
            c3, u2 = c.reshape(k, nb, m), u.reshape(k, nb)

            def strided(_: None, j: Array) -> tuple[None, Array]:
                cb = jax.lax.dynamic_index_in_dim(c3, j, axis=1, keepdims=False)
                return None, rows(cb, jax.lax.dynamic_index_in_dim(u2, j, axis=1, keepdims=False))

            out = jax.lax.scan(strided, None, jnp.arange(nb))[1]  # [nb, k]: block j holds rows j, j + nb, ...
            return jnp.swapaxes(out, 0, 1).reshape(nb * k)

        def contiguous(_: None, j: Array) -> tuple[None, Array]:
            start = j * k
            cb = jax.lax.dynamic_slice_in_dim(c, start, k, axis=0)
            return None, rows(cb, jax.lax.dynamic_slice_in_dim(u, start, k))

        out = jax.lax.scan(contiguous, None, jnp.arange(nb))[1].reshape(nb * k)
        return jnp.concatenate([out, rows(c[nb * k :], u[nb * k :])])

    def col_max(self, u: Array, v: Array, inv_eps: Array) -> Array:
        if self.cost_t is not None:
            return jnp.max(log_block(self.cost_t, v, u, inv_eps), axis=1)
        return self._col_reduce(u, v, inv_eps, lambda z: z, jnp.max)

    def _col_reduce(self, u: Array, v: Array, inv_eps: Array, elem: Any, fold: Any) -> Array:
        """``[m]``: ``fold`` (``jnp.sum`` or ``jnp.max``) over rows of ``elem`` of the log-plan blocks, over the
        row blocks of :func:`_col_blocks`, read in place (a column reduction of the whole matrix made XLA:CPU
        write an ``n x m`` temporary), per row group (one all-reduce after the loop)."""
        k, nb, rest = _col_blocks(*self.shape)
        m = self.shape[1]
        c = self.cost_matrix
        fill = 0.0 if fold is jnp.sum else -jnp.inf
        combine = jnp.add if fold is jnp.sum else jnp.maximum
        init = _sharded_like(jnp.full((_groups(k, u), m), fill, self.dtype), u)

        def add(acc: Array, cb: Array, ub: Array) -> Array:
            return combine(acc, _group_reduce(elem(log_block(cb, ub, v, inv_eps)), fold, acc.shape[0]))

        if rest == 0:  # strided blocks, read in place from the free reshape [k, nb, m]
            c3, u2 = c.reshape(k, nb, m), u.reshape(k, nb)

            def strided(j: Array, acc: Array) -> Array:
                cb = jax.lax.dynamic_index_in_dim(c3, j, axis=1, keepdims=False)
                return add(acc, cb, jax.lax.dynamic_index_in_dim(u2, j, axis=1, keepdims=False))

            return fold(jax.lax.fori_loop(0, nb, strided, init), axis=0)

        def contiguous(j: Array, acc: Array) -> Array:  # contiguous blocks, then the last rows
            start = j * k
            cb = jax.lax.dynamic_slice_in_dim(c, start, k, axis=0)
            return add(acc, cb, jax.lax.dynamic_slice_in_dim(u, start, k))

        total = fold(jax.lax.fori_loop(0, nb, contiguous, init), axis=0)
        return combine(total, fold(elem(log_block(c[nb * k :], u[nb * k :], v, inv_eps)), axis=0))

    def max_cost(self, a: Array | None = None, b: Array | None = None) -> Array:
        u, v = _support_log(a, self.shape[0], self.dtype), _support_log(b, self.shape[1], self.dtype)
        return jnp.max(self.cost_matrix + u[:, None] + v[None, :])

    def finite(self) -> Array:
        return jnp.all(jnp.isfinite(self.cost_matrix))

    def tree_flatten(self) -> tuple[tuple, None]:
        return (self.cost_matrix, self.epsilon, self.cost_t), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: tuple) -> DenseKernel:
        obj = object.__new__(cls)
        obj.cost_matrix, obj.epsilon, obj.cost_t = children
        return obj


class GibbsKernel:
    """The Gibbs kernel of a stored matrix at fixed potentials, ``K_ij = exp(u0_i + v0_j - C_ij / eps)``, whose
    sweeps at the same ``epsilon`` are matrix-vector products instead of ``exp`` sweeps.

    ``row_lse(u, v, inv_eps)`` is ``(u - u0)_i + log sum_j K_ij exp(v - v0)_j``, the same value as
    :meth:`DenseKernel.row_lse` by the identity ``exp(u_i + v_j - C_ij / eps) = K_ij exp(u - u0)_i exp(v - v0)_j``
    (and ``col_lse`` alike, with ``K^T``). The vector's exponent is shifted by its maximum, so it never
    overflows; ``u0`` holds ``-log`` of the row sums at the potentials it was built at, so ``K`` is bounded by
    ``1 / b_j``. A sweep falls back to the exact ``exp`` sweep of the stored matrix (a ``lax.cond``) where it
    could be wrong: at another ``epsilon``, or where a sum came out below ``sqrt(tiny)`` or non-finite (far
    from the potentials ``K`` was built at: an extrapolated iterate, say). Above that bound, the entries of
    ``K`` that underflowed (below ``tiny``, at most ``max(n, m)`` of them per sum) change a sum by a relative
    ``max(n, m) sqrt(tiny)``, below rounding (``1e-13`` in float32 at ``10**6`` points).

    Why: a matrix-vector product costs a multiply-add per entry where a sweep costs an ``exp``, and the
    matrix stays in cache when it is small. Building ``K`` is one ``exp`` sweep, so a solver builds
    it where the potentials change little over the next sweeps (Sinkhorn's blocks at the target
    ``epsilon``); the potentials are then absorbed into a new ``K`` (Schmitzer's stabilised scaling
    iterations, with absorption at every rebuild). Memory: one ``[n, m]`` buffer beside the cost matrix.

    Example:
        >>> import jax.numpy as jnp
        >>> base = DenseKernel(jnp.array([[0.0, 1.0], [2.0, 0.5]]), jnp.ones(()))
        >>> k = GibbsKernel(base, jnp.zeros(2), jnp.zeros(2), jnp.zeros(2), jnp.ones(()))
        >>> bool(jnp.allclose(k.row_lse(jnp.ones(2), jnp.ones(2), jnp.ones(())),
        ...                   base.row_lse(jnp.ones(2), jnp.ones(2), jnp.ones(()))))
        True
    """

    def __init__(self, base: DenseKernel, u0: Array, v0: Array, log_r0: Array, inv_eps: Array) -> None:
        """``K`` at ``(u0 - log_r0, v0)`` and ``1 / eps = inv_eps`` (``u0 = f / eps``, ``v0 = g / eps``, as the
        sweeps take them), ``log_r0`` the log row sums of ``exp(u0 + v0 + log b - C / eps)`` there: any values
        keep the sweeps exact, the row sums bound ``K``."""
        self.base, self.inv_eps = base, inv_eps
        self.u0, self.v0 = u0 - log_r0, v0
        # C / eps is invariant in a solver's loop. A one-block matrix's sweeps read it formed once before the
        # loop (XLA hoists it), and K reuses it; forming K from C itself had XLA keep C and C^T once more. A
        # larger matrix's sweeps form C / eps block by block, so K reads epsilon through the potentials there:
        # otherwise XLA hoists C / eps as a second matrix-sized buffer.
        if base.cost_t is None:
            inv_eps = after(inv_eps, jnp.max(u0))  # a reduction, not an element: u0 may be sharded
        self.k = sweep_exp(log_block(base.cost_matrix, self.u0, v0, inv_eps))

    @property
    def shape(self) -> tuple[int, int]:
        return self.base.shape

    @property
    def epsilon(self) -> Array:
        return self.base.epsilon

    def _sums(self, d: Array, rows: bool) -> tuple[Array, Array]:
        """``(log sum, ok)``: ``log (K e)`` (``rows``) or ``log (K^T e)`` with ``e = exp(d - max d)``, plus the
        max back; ``ok`` where every sum is finite and at least ``sqrt(tiny)``."""
        top = jnp.max(d)
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        e = jnp.exp(d - top)
        if rows:
            s = jnp.matmul(self.k, e, precision=HIGHEST)
        else:  # per row group (one per device of a row-sharded K, else 1), summed after: see _group_reduce
            n, m = self.k.shape
            g = _groups(n, e)
            s = jnp.einsum("gk,gkm->gm", e.reshape(g, n // g), self.k.reshape(g, n // g, m), precision=HIGHEST)
            s = jnp.sum(s, axis=0)
        floor = math.sqrt(np.finfo(self.k.dtype).tiny)
        ok = jnp.all(s >= floor) & jnp.all(jnp.isfinite(s))
        return jnp.log(s) + top, ok

    def row_lse(self, u: Array, v: Array, inv_eps: Array) -> Array:
        out, ok = self._sweep(u - self.u0, v, self.v0, rows=True)
        return jax.lax.cond(ok & (inv_eps == self.inv_eps), lambda: out, lambda: self.base.row_lse(u, v, inv_eps))

    def col_lse(self, u: Array, v: Array, inv_eps: Array) -> Array:
        out, ok = self._sweep(v - self.v0, u, self.u0, rows=False)
        return jax.lax.cond(ok & (inv_eps == self.inv_eps), lambda: out, lambda: self.base.col_lse(u, v, inv_eps))

    def _sweep(self, shift: Array, w: Array, w0: Array, rows: bool) -> tuple[Array, Array]:
        """``(clamped log-sums, ok)`` of one side: ``shift`` (the kept side's potentials minus ``K``'s) plus
        :meth:`_sums` of the summed side ``w`` against ``K``'s ``w0`` (``-inf``: absent, out of the sum)."""
        lse, ok = self._sums(jnp.where(w == -jnp.inf, -jnp.inf, w - w0), rows)
        hi, lo = _clamps(self.k.dtype)
        return jnp.clip(shift + lse, lo, hi), ok


@jax.tree_util.register_pytree_node_class
class OnlineKernel(Kernel):
    """Points ``x[n, d]``, ``y[m, d]`` (already centred where the cost allows), a cost and ``epsilon``: every
    pass recomputes the costs chunk by chunk, memory ``O((n + m) d + k m)``, in the solver and in reverse-mode
    gradients alike.

    Example:
        >>> import jax.numpy as jnp
        >>> from ott_fast.costs import SqEuclidean
        >>> k = OnlineKernel(jnp.zeros((5, 2)), jnp.ones((3, 2)), SqEuclidean(), jnp.ones(()), 2)
        >>> k.blocks()[0].shape, k.max_cost().tolist()
        ((3, 2, 2), 2.0)
    """

    def __init__(self, x: Array, y: Array, cost: Cost, epsilon: Array, chunk_size: int) -> None:
        self.x, self.y, self.cost, self.epsilon, self.chunk_size = x, y, cost, epsilon, chunk_size

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape[0], self.y.shape[0]

    @property
    def dtype(self) -> Any:
        return self.x.dtype

    def blocks(self) -> tuple[Array, int]:
        """Strided chunks of ``x`` (zero-padded): ``[nb, k, d]``."""
        n, k = self.shape[0], self.chunk_size
        nb = -(-n // k)
        x = self.x if nb * k == n else jnp.concatenate([self.x, jnp.zeros((nb * k - n, self.x.shape[1]), self.dtype)])
        return strided_chunks(x, nb, k), k

    def cost_block(self, block: Array) -> Array:
        return self.cost.all_pairs(block, self.y)

    def log_block(self, block: Array, u: Array, v: Array, inv_eps: Array) -> Array:
        """Squared Euclidean folds the norms into the potentials,
        ``(u - |x|^2/eps)_i + (v - |y|^2/eps)_j + (2/eps) x_i . y_j``, leaving one matrix product per chunk:
        adding the norms and clamping inside the chunk made XLA fuse the product into a generated loop, 4x
        slower (23.6 ms instead of 6.0 ms for a 500 x 10,000 chunk in d = 64). The points are centred
        (:class:`PointCloud`), so the folded norms stay of the order of the clouds' spread."""
        if isinstance(self.cost, SqEuclidean):
            row = u - jnp.sum(block * block, axis=1) * inv_eps
            col = v - jnp.sum(self.y * self.y, axis=1) * inv_eps
            return row[:, None] + col[None, :] + (2.0 * inv_eps) * self.cost.cross(block, self.y)
        return log_block(self.cost_block(block), u, v, inv_eps)

    def finite(self) -> Array:
        return jnp.all(jnp.isfinite(self.x)) & jnp.all(jnp.isfinite(self.y))

    def tree_flatten(self) -> tuple[tuple, int]:
        return (self.x, self.y, self.cost, self.epsilon), self.chunk_size

    @classmethod
    def tree_unflatten(cls, aux: int, children: tuple) -> OnlineKernel:
        return cls(*children, aux)


class _Regularised:
    """What :class:`Geometry` and :class:`PointCloud` share: the ``epsilon`` they were given, its relative
    unit, and :meth:`with_weights`, which places both (and a point cloud's centring) for the weights of a
    problem, so that a zero weight means an absent point for every quantity a solve uses."""

    given_epsilon: Array
    relative_epsilon: RelativeEpsilon
    scale: Array | None

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def dtype(self) -> Any:
        raise NotImplementedError

    @property
    def epsilon(self) -> Array:
        """``[]`` the absolute epsilon: the given one, times the relative statistic if there is one."""
        return self.given_epsilon if self.scale is None else self.given_epsilon * self.scale

    def _centre(self, a: Array, b: Array) -> None:
        """Sets whatever the weights place besides epsilon's unit (a point cloud's common shift)."""

    def _cost_stat(self, stat: str, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def with_weights(self, a: Array | None = None, b: Array | None = None) -> Any:
        """This geometry, its relative epsilon (and a point cloud's centring) computed under the weights
        ``a[n]``, ``b[m]`` (``None``: uniform): the weighted mean or std of the costs, over the pairs of
        positive weight, and the midpoint of the weighted means. The solvers call it with the weights they
        are given, so padding a problem with zero-weight points, wherever they sit, changes neither; a
        geometry built alone uses uniform weights.

        Example:
            >>> import jax.numpy as jnp, ott_fast as otf
            >>> geom = otf.Geometry(jnp.array([[0.0, 1.0], [1.0, 9.0]]), epsilon=1.0, relative_epsilon="mean")
            >>> float(geom.epsilon), float(geom.with_weights(jnp.array([1.0, 0.0]), jnp.ones(2) / 2).epsilon)
            (2.75, 0.5)
        """
        n, m = self.shape
        a = _weights_or_uniform(a, n, self.dtype)
        b = _weights_or_uniform(b, m, self.dtype)
        obj = copy.copy(self)
        obj._centre(a, b)
        if self.relative_epsilon is not None:  # differentiated: gradients are those of the value computed
            obj.scale = obj._cost_stat(self.relative_epsilon, a, b)
        return obj


@jax.tree_util.register_pytree_node_class
class Geometry(_Regularised):
    """A cost matrix ``C[n, m]`` and the regularisation ``epsilon``.

    Args:
        cost_matrix: ``[n, m]`` floating array, checked for NaN or inf here when concrete (a ``ValueError``);
            under ``jit`` a non-finite entry makes the solve report invalid input instead.
        epsilon: entropic regularisation, > 0; absolute unless ``relative_epsilon`` is set.
        relative_epsilon: ``None``, ``"mean"`` or ``"std"``: multiply ``epsilon`` by that statistic of ``C``,
            weighted by ``a_i b_j`` (see :meth:`with_weights`: a solve uses its own weights; ``geom.epsilon``
            alone uses uniform ones). The statistic is differentiated, as everywhere in ott_fast (so
            ``jax.grad`` is the derivative of the value computed); for a fixed unit, compute an absolute
            epsilon under ``jax.lax.stop_gradient``.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> geom = otf.Geometry(jnp.array([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.5, relative_epsilon="mean")
        >>> float(geom.epsilon)
        0.25
    """

    def __init__(self, cost_matrix: Any, *, epsilon: Any, relative_epsilon: RelativeEpsilon = None) -> None:
        c = val.as_float_array("cost_matrix", cost_matrix)
        if c.ndim != 2 or 0 in c.shape:
            raise ValueError(f"cost_matrix: expected a non-empty [n, m] matrix, got shape {c.shape}.")
        val.check_finite("cost_matrix", cost_matrix)
        self.cost_matrix = c
        self.given_epsilon = _given_epsilon(epsilon, relative_epsilon, c.dtype)
        self.relative_epsilon, self.scale = relative_epsilon, None
        if relative_epsilon is not None:
            self.scale = self.with_weights().scale

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, m)``."""
        return self.cost_matrix.shape

    @property
    def dtype(self) -> Any:
        return self.cost_matrix.dtype

    def _cost_stat(self, stat: str, a: Array, b: Array) -> Array:
        s1, s2, top = _masked_stats(self.cost_matrix, a, b)
        return _stat_from_sums(stat, s1, s2, top, jnp.sum(a) * jnp.sum(b))

    def kernel(self) -> DenseKernel:
        """The :class:`Kernel` every pass over the plan runs on: the stored matrix."""
        return DenseKernel(self.cost_matrix, self.epsilon)

    def tree_flatten(self) -> tuple[tuple, RelativeEpsilon]:
        return (self.cost_matrix, self.given_epsilon, self.scale), self.relative_epsilon

    @classmethod
    def tree_unflatten(cls, aux: RelativeEpsilon, children: tuple) -> Geometry:
        obj = object.__new__(cls)
        obj.cost_matrix, obj.given_epsilon, obj.scale = children
        obj.relative_epsilon = aux
        return obj

    def __repr__(self) -> str:
        return f"Geometry(shape={self.shape}, dtype={self.dtype})"


@jax.tree_util.register_pytree_node_class
class PointCloud(_Regularised):
    """Points ``x[n, d]``, ``y[m, d]`` with a ground cost (squared Euclidean by default) and ``epsilon``.

    Args:
        x: ``[n, d]`` source points.
        y: ``[m, d]`` target points.
        cost: a :class:`~ott_fast.costs.Cost` instance or any function ``c(x[d], y[d]) -> scalar``.
        epsilon: entropic regularisation, > 0; absolute unless ``relative_epsilon`` is set.
        relative_epsilon: ``None``, ``"mean"`` or ``"std"`` of the cost matrix as the unit of ``epsilon``,
            weighted by ``a_i b_j`` (see :meth:`with_weights`: a solve uses its own weights;
            ``geom.epsilon`` alone uses uniform ones), differentiated like the points (for a fixed unit,
            compute an absolute epsilon under ``jax.lax.stop_gradient``).
        chunk_size: ``None`` stores the cost matrix (dense), unless it would exceed ``2**28`` entries
            (1 GiB in float32), in which case the geometry is online with an automatic chunk size.
            An int, or ``"auto"``, makes it online: the costs are recomputed in chunks of that many rows
            (``"auto"``: about ``2**23`` entries per chunk), never storing the ``n x m`` matrix, in the
            solver and in reverse-mode gradients alike.

    **Translation.** For translation-invariant costs (``cost.translation_invariant``: squared Euclidean,
    Euclidean, p-norms, every :class:`~ott_fast.costs.TICost` ``h(x - y)``), both clouds are centred by
    one common shift, the midpoint of their (weighted) means, before any cost is formed (dense or online).
    Translating both clouds then changes no result beyond the rounding of the inputs themselves, and float32
    keeps its accuracy far from the origin: the squared Euclidean matrix ``|x|^2 + |y|^2 - 2 x y^T`` would
    otherwise cancel catastrophically (at a shift of 300 times the spread, the plan's marginals were off by 6
    in L1). Zero-weight points do not move the shift, wherever they sit. Costs that are not
    translation-invariant (:class:`~ott_fast.costs.Cosine`, user functions) see the points as given: their
    accuracy is the user's choice of coordinates. The shift is held constant in gradients (for a
    translation-invariant cost its derivative is zero).

    The squared Euclidean matrix is computed as ``|x|^2 + |y|^2 - 2 x y^T`` (one matrix product at full
    float32 precision, see :class:`~ott_fast.costs.SqEuclidean`), and its mean in closed form.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (3, 2))
        >>> near = otf.PointCloud(x, x + 1.0, epsilon=1.0).cost_matrix
        >>> far = otf.PointCloud(x + 1e4, x + 1e4 + 1.0, epsilon=1.0).cost_matrix  # translated far away
        >>> near.shape, bool(abs(far - near).max() < 0.05)  # only the rounding of x + 1e4 itself
        ((3, 3), True)
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        *,
        cost: Cost | Any = None,
        epsilon: Any,
        relative_epsilon: RelativeEpsilon = None,
        chunk_size: int | Literal["auto"] | None = None,
    ) -> None:
        xa = val.check_points("x", x)
        ya = val.check_points("y", y)
        if xa.shape[1] != ya.shape[1]:
            raise ValueError(f"x, y: dimensions differ, x is [n, {xa.shape[1]}] and y is [m, {ya.shape[1]}].")
        dtype = jnp.result_type(xa, ya)
        self.x, self.y = xa.astype(dtype), ya.astype(dtype)
        self.cost = as_cost(cost)
        self.chunk_size = _resolve_chunk(chunk_size, xa.shape[0], ya.shape[0])
        self.given_epsilon = _given_epsilon(epsilon, relative_epsilon, dtype)
        self.relative_epsilon, self.scale, self.shift = relative_epsilon, None, None
        placed = self.with_weights()
        self.scale, self.shift = placed.scale, placed.shift

    def _centre(self, a: Array, b: Array) -> None:
        if self.cost.translation_invariant:
            mid = 0.5 * (_weighted_mean(self.x, a) + _weighted_mean(self.y, b))
            self.shift = jax.lax.stop_gradient(mid)

    def centred(self) -> tuple[Array, Array]:
        """``(x - shift, y - shift)``: the points every cost is formed from (as given when the cost is not
        translation-invariant)."""
        if self.shift is None:
            return self.x, self.y
        return self.x - self.shift, self.y - self.shift

    def _cost_stat(self, stat: str, a: Array, b: Array) -> Array:
        """``"mean"``, ``"std"`` or ``"max"`` of the costs over pairs of positive weight, weighted by
        ``a_i b_j``; in chunks when online."""
        x, y = self.centred()
        if stat == "mean" and isinstance(self.cost, SqEuclidean):
            mx, my = _weighted_mean(x, a), _weighted_mean(y, b)
            sx, sy = _weighted_mean(jnp.sum(x * x, 1), a), _weighted_mean(jnp.sum(y * y, 1), b)
            return sx + sy - 2.0 * jnp.matmul(mx, my, precision=self.cost.precision)
        if self.chunk_size is None:
            s1, s2, top = _masked_stats(self.cost_matrix, a, b)
        else:
            kern = OnlineKernel(x, y, self.cost, jnp.ones((), self.dtype), self.chunk_size)  # costs only

            def body(acc: tuple[Array, Array, Array], blk: Array, wa: Array) -> tuple[tuple[Array, Array, Array], None]:
                t1, t2, big = _masked_stats(kern.cost_block(blk), wa, b)  # the last chunk's padded rows: wa = 0
                return (acc[0] + t1, acc[1] + t2, jnp.maximum(acc[2], big)), None

            zero = jnp.zeros((), self.dtype)
            init = (zero, zero, jnp.full((), -jnp.inf, self.dtype))
            (s1, s2, top), _ = kern.scan(body, init, (a,), (0.0,))
        return _stat_from_sums(stat, s1, s2, top, jnp.sum(a) * jnp.sum(b))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, m)``."""
        return self.x.shape[0], self.y.shape[0]

    @property
    def online(self) -> bool:
        """Whether costs are recomputed in chunks instead of stored."""
        return self.chunk_size is not None

    @property
    def dtype(self) -> Any:
        return self.x.dtype

    @property
    def cost_matrix(self) -> Array:
        """The dense ``[n, m]`` cost matrix (computed from the centred points on each access)."""
        return self.cost.all_pairs(*self.centred())

    def kernel(self) -> DenseKernel | OnlineKernel:
        """The :class:`Kernel` every pass over the plan runs on: the stored matrix, or chunks if online."""
        if self.online:
            x, y = self.centred()
            return OnlineKernel(x, y, self.cost, self.epsilon, self.chunk_size)
        transposed = None
        if self.cost.symmetric:  # C^T as a matrix product, not a transpose (see Cost.symmetric)
            transposed = lambda: self.cost.all_pairs(*reversed(self.centred()))  # noqa: E731
        return DenseKernel(self.cost_matrix, self.epsilon, transposed)

    def tree_flatten(self) -> tuple[tuple, tuple]:
        return (self.x, self.y, self.cost, self.given_epsilon, self.scale, self.shift), (
            self.chunk_size,
            self.relative_epsilon,
        )

    @classmethod
    def tree_unflatten(cls, aux: tuple, children: tuple) -> PointCloud:
        obj = object.__new__(cls)
        obj.x, obj.y, obj.cost, obj.given_epsilon, obj.scale, obj.shift = children
        obj.chunk_size, obj.relative_epsilon = aux
        return obj

    def __repr__(self) -> str:
        mode = f"online, chunk_size={self.chunk_size}" if self.online else "dense"
        return f"PointCloud(shape={self.shape}, d={self.x.shape[1]}, cost={self.cost!r}, {mode}, dtype={self.dtype})"


# A solve places its geometry for its weights in one compiled call (eager use: one dispatch, compiled once per
# geometry structure); under an outer jit it is inlined.
with_weights_jit = jax.jit(lambda geom, a, b: geom.with_weights(a, b))
