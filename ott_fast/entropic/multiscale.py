"""Multiscale Sinkhorn divergence for large clouds in low dimension: clusters first, then truncated blocks.

A divergence between two clouds of 100,000 points touches ``10^10`` cost entries per sweep, while at a
small epsilon each point only matters to its neighbours. After Schmitzer (2019) and GeomLoss's multiscale
scheme (Feydy, 2020), with fixed shapes so that it jits, vmaps and runs under ``jax.grad``:

1. **Clusters.** Each cloud is cut into the ``2^L`` leaves of a k-d tree (median splits along each cell's
   longest side), at most ``B`` points per leaf, padded to equal size with absent points: compact boxes.
2. **Coarse.** The three problems of the divergence (``x``-``y``, ``x``-``x``, ``y``-``y``) are solved on the
   clusters' centroids, weighted by the clusters' masses, while epsilon anneals from the clouds' squared
   diameter down to the clusters' own scale (their mean squared radius).
3. **Truncation.** Per problem, the cluster pairs the coarse plan weighs most are kept: each cluster's
   ``K`` heaviest partners, by rows and by columns (their union, so every cluster keeps at least ``K``).
   This is a fixed number of pairs, listed once.
4. **Fine.** The points' potentials are extrapolated from the coarse ones (a soft c-transform against the
   centroids), then epsilon anneals on to its target and the iterations run until the marginal error of
   all three problems is at most ``tol``. Every pass reads the kept blocks only.

Every iteration is GeomLoss's symmetric, averaged update ``f <- (f + T(g)) / 2``, ``g <- (g + T(f)) / 2``:
one pass over a block gives both its row and its column sums, and the same pass measures the marginal
error of the potentials it starts from. The value is one last extrapolation ``<a, T(g) - T_xx(p)> +
<b, T(f) - T_yy(q)>``, and its gradient the envelope theorem's, computed in that same pass (first moments
of the plan): no autodiff through the loop, no linear solve.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val
from ott_fast.entropic import driver
from ott_fast.entropic.sinkhorn import block_update
from ott_fast.geometry import log_block, sweep_exp

Array = jax.Array

__all__ = ["multiscale_divergence", "MultiscaleOutput"]

HIGHEST = jax.lax.Precision.HIGHEST
_CLIP = 80.0  # largest exponent taken: exp(80) ~ 5.5e34, so weighted float32 sums of a block stay finite
_BLOCK_ENTRIES = 2**20  # entries of one pass step (pairs x B x B), a few MB
_COARSE_SIZE = 256  # clusters per coarse block


class MultiscaleOutput(NamedTuple):
    """What :func:`multiscale_divergence` computed with ``return_output=True``; an immutable pytree.

    Attributes:
        value: ``[]`` the divergence; NaN unless ``converged``.
        converged: ``[]`` bool: the L1 marginal errors of all three truncated problems are ``<= tol``.
        status: ``[]`` int32, a :class:`~ott_fast.Status` code (``otf.describe(out.status)``).
        error: ``[]`` the largest L1 marginal error of the three problems, measured on the potentials the
            value is extrapolated from.
        iterations: ``[]`` int32, the fine passes of the slowest of the three problems (annealing included).
        coarse_iterations: ``[]`` int32, the same on the clusters.
        kept: ``[]`` the fraction of the ``n x m`` cost entries of the ``x``-``y`` problem that the kept
            blocks hold (padding included): what a fine pass reads instead of the whole matrix.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (2048, 2))  # 64 leaves of 32 points
        >>> out = otf.multiscale_divergence(x, x + 1.0, epsilon=0.05, return_output=True)
        >>> bool(out.converged), bool(out.kept < 0.5)
        (True, True)
    """

    value: Array
    converged: Array
    status: Array
    error: Array
    iterations: Array
    coarse_iterations: Array
    kept: Array


class _Cut(NamedTuple):
    """One cloud in clusters: ``pts[k, B, d]`` (centred, Morton order, padded) and ``w[k, B]`` (0: absent)."""

    pts: Array
    w: Array


class _Pairs(NamedTuple):
    """Kept cluster pairs ``(i[P], j[P])`` in chunks of ``chunk`` (``P`` a multiple), ``ok[P]``: not padding."""

    i: Array
    j: Array
    ok: Array
    chunk: int


# ------------------------------------------------------------------------------------------- clusters


def kd_leaves(z: Array, w: Array, levels: int) -> tuple[Array, Array]:
    """``(leaf[n], slot[n])``: the points of positive weight in ``2**levels`` leaves of a k-d tree, each split
    at its median along the leaf's longest side (by count: the halves differ by at most one point), and
    each point's rank inside its leaf. Points of weight 0 get leaf ``2**levels`` (none): they move no split,
    so padding a cloud with absent points leaves its leaves as they were, as long as ``levels`` is the same.

    Example:
        >>> import jax.numpy as jnp
        >>> z = jnp.array([[0.0, 0.0], [0.1, 0.9], [1.0, 0.2], [0.9, 1.0]])
        >>> leaf, slot = kd_leaves(z, jnp.ones(4), 2)
        >>> sorted(leaf.tolist()), slot.tolist()
        ([0, 1, 2, 3], [0, 0, 0, 0])
    """
    n = z.shape[0]
    present = w > 0
    big = jnp.asarray(jnp.inf, z.dtype)
    group = jnp.where(present, 0, 1).astype(jnp.int32)
    for level in range(levels + 1):
        ng = 2**level  # groups now; `ng` itself stands for "absent"
        lo = jax.ops.segment_min(jnp.where(present[:, None], z, big), group, num_segments=ng + 1)
        hi = jax.ops.segment_max(jnp.where(present[:, None], z, -big), group, num_segments=ng + 1)
        axis = jnp.argmax(jnp.where(jnp.isfinite(hi - lo), hi - lo, -1.0), axis=1)
        coord = jnp.where(present, jnp.take_along_axis(z, axis[group][:, None], axis=1)[:, 0], big)
        order = jnp.lexsort((coord, group))  # by group, then along the group's longest side
        g = group[order]
        count = jax.ops.segment_sum(jnp.ones(n, jnp.int32), group, num_segments=ng + 1)
        rank = jnp.arange(n, dtype=jnp.int32) - (jnp.cumsum(count) - count)[g]
        if level < levels:
            half = (count[g] + 1) // 2
            child = jnp.where(g < ng, 2 * g + (rank >= half), 2 * ng).astype(jnp.int32)
            group = jnp.zeros(n, jnp.int32).at[order].set(child)
    # the last level's sort: each point's leaf and its rank inside it
    return jnp.zeros(n, jnp.int32).at[order].set(g), jnp.zeros(n, jnp.int32).at[order].set(rank)


def _tree_cut(z: Array, w: Array, size: int) -> tuple[_Cut, Array, Array]:
    """``z[n, d]``, ``w[n]`` in the leaves of :func:`kd_leaves`, ``2**L`` clusters of at most ``size`` points
    (``L`` the smallest depth that allows it; each leaf's slots: ``ceil(n / 2**L)``), with each point's
    ``(leaf, slot)``; unused slots are absent points at the origin."""
    n, d = z.shape
    levels = max(0, math.ceil(math.log2(n / size)))
    slots = -(-n // 2**levels)
    leaf, slot = kd_leaves(z, w, levels)
    pts = jnp.zeros((2**levels, slots, d), z.dtype).at[leaf, slot].set(z, mode="drop")
    return _Cut(pts, jnp.zeros((2**levels, slots), w.dtype).at[leaf, slot].set(w, mode="drop")), leaf, slot


def _uncut(v: Array, leaf: Array, slot: Array) -> Array:
    """Values ``v[k, B, ...]`` of :func:`_tree_cut`'s layout back to the points' order, ``[n, ...]`` (0 for an
    absent point)."""
    return v.at[leaf, slot].get(mode="fill", fill_value=0)


def _cut(z: Array, w: Array, size: int) -> _Cut:
    """``z[n, d]``, ``w[n]`` as they are, cut into blocks of ``size`` (the last one filled with absent points)."""
    n, d = z.shape
    k = -(-n // size)
    pad = k * size - n
    if pad:
        z = jnp.concatenate([z, jnp.zeros((pad, d), z.dtype)])
        w = jnp.concatenate([w, jnp.zeros((pad,), w.dtype)])
    return _Cut(z.reshape(k, size, d), w.reshape(k, size))


def _centroids(c: _Cut) -> tuple[Array, Array, Array]:
    """``(centres[k, d], masses[k], mean squared radius)`` of the clusters (an empty cluster: centre 0)."""
    mass = jnp.sum(c.w, axis=1)
    safe = jnp.where(mass > 0, mass, 1.0)
    centre = jnp.einsum("kb,kbd->kd", c.w, c.pts, precision=HIGHEST) / safe[:, None]
    spread = jnp.einsum("kb,kb->k", c.w, jnp.sum((c.pts - centre[:, None]) ** 2, axis=-1), precision=HIGHEST)
    return centre, mass, jnp.sum(spread) / jnp.sum(mass)


def _all_pairs(u: _Cut, v: _Cut) -> _Pairs:
    """Every pair of ``u``'s and ``v``'s clusters (no truncation), in pass chunks."""
    (ki, bi), (kj, bj) = u.w.shape, v.w.shape
    i, j = np.meshgrid(np.arange(ki, dtype=np.int32), np.arange(kj, dtype=np.int32), indexing="ij")
    return _chunked(jnp.asarray(i.ravel()), jnp.asarray(j.ravel()), jnp.ones(ki * kj, bool), bi, bj)


def _chunked(i: Array, j: Array, ok: Array, bi: int, bj: int) -> _Pairs:
    chunk = int(max(1, min(i.shape[0], _BLOCK_ENTRIES // (bi * bj))))
    pad = -i.shape[0] % chunk
    if pad:
        i, j = jnp.concatenate([i, jnp.zeros(pad, i.dtype)]), jnp.concatenate([j, jnp.zeros(pad, j.dtype)])
        ok = jnp.concatenate([ok, jnp.zeros(pad, bool)])
    return _Pairs(i, j, ok, chunk)


def _kept_pairs(score: Array, k: int, size: int) -> _Pairs:
    """The cluster pairs of ``score[ki, kj]`` (the coarse log-plan) among each row's and each column's ``k``
    largest: a fixed count ``ki k + kj k`` of slots (duplicates merged, the rest padding)."""
    ki, kj = score.shape
    kr, kc = min(k, kj), min(k, ki)
    top_r = jax.lax.top_k(score, kr)[1]
    top_c = jax.lax.top_k(score.T, kc)[1]
    mask = jnp.zeros((ki, kj), bool)
    mask = mask.at[jnp.arange(ki)[:, None], top_r].set(True).at[top_c, jnp.arange(kj)[:, None]].set(True)
    slots = min(ki * kr + kj * kc, ki * kj)
    i, j = jnp.nonzero(mask, size=slots, fill_value=0)
    return _chunked(i.astype(jnp.int32), j.astype(jnp.int32), jnp.arange(slots) < jnp.sum(mask), size, size)


# ------------------------------------------------------------------------------------------- the pass


def _pass(xs: _Cut, ys: _Cut, f: Array, g: Array, pairs: _Pairs, inv_eps: Array, rv: Array, cv: Array | None) -> tuple:
    """One pass over the kept blocks of ``e_ij = exp((f_i + g_j - |x_i - y_j|^2) / eps)``.

    ``rv[kj, Bj, r]`` and ``cv[ki, Bi, c]`` are values carried by the columns and the rows: returns the row
    sums ``sum_j e_ij rv_j`` (``[ki, Bi, r]``) and, unless ``cv`` is ``None``, the column sums
    ``sum_i e_ij cv_i`` (``[kj, Bj, c]``). A block's costs are one small matrix product of points centred on
    the block's first row point: the clusters are local, so the squared norms stay of the order of the
    block's costs and float32 keeps its accuracy far from the origin (the product form ran 1.6x faster on
    the CPU than the differences' squares). Each step is checkpointed: a gradient through it stores no block.
    """
    ki, kj = xs.pts.shape[0], ys.pts.shape[0]
    steps = pairs.i.shape[0] // pairs.chunk

    def block_sum(e: Array, v: Array, axis: int) -> Array:  # one value: a fused reduction, no matrix product
        if v.shape[-1] == 1:
            return jnp.sum(e * jnp.expand_dims(v[..., 0], 3 - axis), axis=axis)[..., None]
        return jnp.einsum("cab,cbr->car" if axis == 2 else "cab,car->cbr", e, v, precision=HIGHEST)

    def step(carry: None, idx: tuple[Array, Array, Array]) -> tuple[None, tuple]:
        i, j, ok = idx
        xb, yb = xs.pts[i], ys.pts[j]
        o = xb[:, :1, :]
        xb, yb = xb - o, yb - o
        cross = jnp.einsum("cad,cbd->cab", xb, yb, precision=HIGHEST)
        u = (f[i] - jnp.sum(xb * xb, axis=-1)) * inv_eps
        v = (g[j] - jnp.sum(yb * yb, axis=-1)) * inv_eps
        z = u[:, :, None] + v[:, None, :] + (2.0 * inv_eps) * cross
        e = sweep_exp(jnp.minimum(z, _CLIP)) * ok[:, None, None].astype(z.dtype)
        rows = block_sum(e, rv[j], 2)
        cols = None if cv is None else block_sum(e, cv[i], 1)
        return carry, (rows, cols)

    cut = tuple(v.reshape(steps, pairs.chunk) for v in (pairs.i, pairs.j, pairs.ok))
    _, (rows, cols) = jax.lax.scan(jax.checkpoint(step), None, cut)
    flat = lambda v: v.reshape((-1,) + v.shape[2:])  # noqa: E731
    out_r = jax.ops.segment_sum(flat(rows), pairs.i, num_segments=ki, indices_are_sorted=True)
    if cv is None:
        return out_r, None
    return out_r, jax.ops.segment_sum(flat(cols), pairs.j, num_segments=kj)


def _l1(w: Array, s: Array) -> Array:
    """``|w s - w|_1``: the L1 error of a marginal ``w s`` (``s``: the pass's sums, marginal / weight)."""
    return jnp.sum(jnp.abs(w * s - w))


def _relaxed(pot: Array, s: Array, w: Array, eps: Array, omega: Array) -> Array:
    """The exact block update ``pot - eps log(s)``, over-relaxed by ``omega`` per point wherever that keeps
    a sufficient share of the exact step's dual gain (:func:`~ott_fast.entropic.sinkhorn.block_update`), so
    the dual still increases; absent points keep 0."""
    log_s = jnp.log(jnp.maximum(s, jnp.finfo(s.dtype).tiny))
    return jnp.where(w > 0, block_update(pot, log_s, eps, jnp.ones((), pot.dtype), omega, True), 0.0)


def _half_step(pot: Array, s: Array, w: Array, step: Array) -> Array:
    """``pot - step log(s)``: ``step = eps`` is the exact block update ``T``; absent points keep 0."""
    tiny = jnp.finfo(s.dtype).tiny
    return jnp.where(w > 0, pot - step * jnp.log(jnp.maximum(s, tiny)), 0.0)


class _Problem(NamedTuple):
    """One of the divergence's three problems at one scale: its clouds and its kept pairs."""

    x: _Cut
    y: _Cut
    pairs: _Pairs
    symmetric: bool  # x is y and the weights are equal: one potential, averaged updates


class _State(NamedTuple):
    it: Array
    f: Array
    g: Array  # f again for a symmetric problem
    err: Array  # measured by the last pass, on (f, g)


class _Schedule(NamedTuple):
    """``eps(it) = max(end, start decay^it)``, exactly ``end`` from iteration ``steps`` on."""

    start: Array
    end: Array
    decay: Array

    @property
    def steps(self) -> Array:
        ratio = jnp.log(self.end / self.start) / jnp.log(self.decay)
        return jnp.maximum(jnp.ceil(ratio), 0).astype(jnp.int32)

    def at(self, it: Array) -> Array:
        eps = jnp.maximum(self.end, self.start * self.decay ** it.astype(self.end.dtype))
        return jnp.where(it >= self.steps, self.end, eps)


def _iterate(
    pb: _Problem, f: Array, g: Array, sched: _Schedule, tol: Array, max_iters: int, omega_max: float
) -> _State:
    """Passes over ``pb``'s blocks while epsilon anneals, then until the L1 marginal error is ``<= tol`` (or
    ``max_iters`` passes). Each pass measures the error of the potentials it starts from, so the returned
    potentials are the ones ``err`` belongs to (the pass that meets ``tol`` updates nothing).

    A symmetric problem takes averaged steps ``f <- (f + T(f)) / 2``. The others alternate exact steps on
    ``f`` (even passes) and ``g`` (odd passes), each pass computing both marginals from one exponential
    per entry; at the target epsilon the steps are over-relaxed by ``omega_max`` wherever a point's step
    keeps a sufficient share of the exact step's dual gain (Sinkhorn's rate at a small epsilon is close to 1,
    where over-relaxation saves most; the safeguard keeps the dual increasing far from the optimum).
    """
    target = sched.steps
    dtype = f.dtype
    wx, wy = pb.x.w, pb.y.w

    def cond(s: _State) -> Array:
        met = (s.it >= target) & (s.err <= tol)
        return (s.it < max_iters) & ~met & ~jnp.isnan(s.err)

    def body(s: _State) -> _State:
        eps = sched.at(s.it)
        if pb.symmetric:
            r = _pass(pb.x, pb.y, s.f, s.f, pb.pairs, 1.0 / eps, wy[..., None], None)[0][..., 0]
            err = 2 * _l1(wx, r)
        else:
            r, c = _pass(pb.x, pb.y, s.f, s.g, pb.pairs, 1.0 / eps, wy[..., None], wx[..., None])
            r, c = r[..., 0], c[..., 0]
            err = _l1(wx, r) + _l1(wy, c)
        done = (s.it >= target) & (err <= tol)
        if pb.symmetric:
            f = g = _half_step(s.f, r, wx, 0.5 * eps)
        else:  # alternating, over-relaxed at the target epsilon wherever a row's step still gains enough
            omega = jnp.where(s.it >= target, omega_max, 1.0).astype(dtype)
            odd = s.it % 2 == 1
            f = jnp.where(odd, s.f, _relaxed(s.f, r, wx, eps, omega))
            g = jnp.where(odd, _relaxed(s.g, c, wy, eps, omega), s.g)
        f, g = jnp.where(done, s.f, f), jnp.where(done, s.g, g)
        return _State(s.it + jnp.where(done, 0, 1), f, g, err)

    inf = jnp.asarray(jnp.inf, dtype)
    s = _State(jnp.zeros((), jnp.int32), f, g, inf)
    return jax.lax.while_loop(cond, body, s)


def _coarse(c: _Cut) -> _Cut:
    """The clusters of ``c`` as weighted points (centroids, masses), cut into blocks of the coarse pass."""
    centre, mass, _ = _centroids(c)
    return _cut(centre, mass, _COARSE_SIZE)


def _extrapolate(fine: _Cut, coarse: _Cut, f: Array, g: Array, eps: Array) -> Array:
    """Fine potentials ``T(g)`` on ``fine``'s points against the coarse measure ``coarse`` (potential ``g``);
    ``f`` (coarse, one per cluster of ``fine``) is each point's shift. Absent points get 0."""
    k, size = fine.w.shape
    shift = jnp.broadcast_to(f.reshape(-1)[:k, None], (k, size))
    s = _pass(fine, coarse, shift, g, _all_pairs(fine, coarse), 1.0 / eps, coarse.w[..., None], None)[0]
    return _half_step(shift, s[..., 0], fine.w, eps)


def _scores(cx: _Cut, cy: _Cut, f: Array, g: Array, eps: Array, ki: int, kj: int) -> Array:
    """``[ki, kj]`` the coarse log-plan ``log a_i + log b_j + (f_i + g_j - C_ij) / eps`` between the clusters."""
    d = cx.pts.shape[-1]
    x, y = cx.pts.reshape(-1, d)[:ki], cy.pts.reshape(-1, d)[:kj]
    a, b = cx.w.reshape(-1)[:ki], cy.w.reshape(-1)[:kj]
    c = jnp.sum((x[:, None] - y[None]) ** 2, axis=-1)
    log = lambda w: jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)  # noqa: E731
    return log_block(c, f.reshape(-1)[:ki] / eps + log(a), g.reshape(-1)[:kj] / eps + log(b), 1.0 / eps)


def _moments(c: _Cut) -> Array:
    """``[k, B, d + 2]``: ``w``, ``w z`` and ``w |z|^2`` of each point (one pass gives a plan's row sums, its
    partners' mean and their mean squared norm)."""
    w = c.w[..., None]
    return jnp.concatenate([w, w * c.pts, w * jnp.sum(c.pts * c.pts, axis=-1, keepdims=True)], axis=-1)


def _transform(pot: Array, mom: Array, pts: Array, eps: Array) -> tuple[Array, Array, Array]:
    """From a pass's row values ``mom[..., d + 2]`` (see :func:`_moments`): the c-transform
    ``pot - eps log S``, the partners' mean under the row-normalised plan, and the row's mean cost."""
    tiny = jnp.finfo(pot.dtype).tiny
    s = jnp.maximum(mom[..., 0], tiny)
    mean = mom[..., 1:-1] / s[..., None]
    second = mom[..., -1] / s
    cost = jnp.sum(pts * pts, axis=-1) - 2 * jnp.sum(pts * mean, axis=-1) + second
    return pot - eps * jnp.log(s), mean, cost


_OMEGA_MAX = 1.5  # over-relaxation at the target epsilon (of 1, 1.5, 1.9: the fewest passes at n = 20000, d = 3)


def _solve(
    x: Array, y: Array, a: Array, b: Array, eps: Array, tol: Array, decay: Array, size: int, k: int, max_iters: int
) -> tuple[Array, tuple[Array, ...], MultiscaleOutput]:
    """The divergence, its envelope gradients ``(x, y, a, b, eps)`` and the output (inputs held constant)."""
    n, m = x.shape[0], y.shape[0]
    dtype = x.dtype
    finite = lambda *vs: jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in vs]))  # noqa: E731
    sa, sb = jnp.sum(a), jnp.sum(b)
    balanced = jnp.abs(sa - sb) <= 1e-5 * jnp.maximum(sa, sb) + 10 * jnp.finfo(dtype).eps
    valid = finite(x, y, a, b, eps) & jnp.all(a >= 0) & jnp.all(b >= 0) & (eps > 0) & (sa > 0) & balanced
    mid = 0.5 * (a @ x / sa + b @ y / sb)  # the common centre: translating both clouds moves nothing
    x, y = x - mid, y - mid
    big = jnp.asarray(jnp.inf, dtype)
    lo = jnp.minimum(jnp.min(jnp.where(a[:, None] > 0, x, big), 0), jnp.min(jnp.where(b[:, None] > 0, y, big), 0))
    hi = jnp.maximum(jnp.max(jnp.where(a[:, None] > 0, x, -big), 0), jnp.max(jnp.where(b[:, None] > 0, y, -big), 0))
    lo, hi = jnp.where(valid, lo, 0.0), jnp.where(valid, hi, 1.0)
    (fx, lx, sx), (fy, ly, sy) = _tree_cut(x, a, size), _tree_cut(y, b, size)
    (ki, kj), cx, cy = (fx.w.shape[0], fy.w.shape[0]), _coarse(fx), _coarse(fy)

    # Coarse: every cluster pair, epsilon annealed from the squared diameter to the clusters' scale.
    eps0 = jnp.maximum(jnp.sum((hi - lo) ** 2), eps)
    eps_c = jnp.clip(0.5 * (_centroids(fx)[2] + _centroids(fy)[2]), eps, eps0)
    coarse_sched, fine_sched = _Schedule(eps0, eps_c, decay), _Schedule(eps_c, eps, decay)
    run = lambda pb, f, g, sched: _iterate(pb, f, g, sched, tol, max_iters, _OMEGA_MAX)  # noqa: E731
    zeros = lambda c: jnp.zeros(c.w.shape, dtype)  # noqa: E731
    c_xy = run(_Problem(cx, cy, _all_pairs(cx, cy), False), zeros(cx), zeros(cy), coarse_sched)
    c_xx = run(_Problem(cx, cx, _all_pairs(cx, cx), True), zeros(cx), zeros(cx), coarse_sched)
    c_yy = run(_Problem(cy, cy, _all_pairs(cy, cy), True), zeros(cy), zeros(cy), coarse_sched)

    # Truncation by the coarse plans, the fine start by extrapolation, then the fine solves.
    kept = lambda u, v, s, kk, kl: _kept_pairs(_scores(u, v, s.f, s.g, eps_c, kk, kl), k, fx.w.shape[1])  # noqa: E731
    p_xy = _Problem(fx, fy, kept(cx, cy, c_xy, ki, kj), False)
    p_xx = _Problem(fx, fx, kept(cx, cx, c_xx, ki, ki), True)
    p_yy = _Problem(fy, fy, kept(cy, cy, c_yy, kj, kj), True)
    ext = lambda fine, coarse, f, g: _extrapolate(fine, coarse, f, g, eps_c)  # noqa: E731
    s_xy = run(p_xy, ext(fx, cy, c_xy.f, c_xy.g), ext(fy, cx, c_xy.g, c_xy.f), fine_sched)
    f_xx = ext(fx, cx, c_xx.f, c_xx.f)
    s_xx = run(p_xx, f_xx, f_xx, fine_sched)
    f_yy = ext(fy, cy, c_yy.f, c_yy.f)
    s_yy = run(p_yy, f_yy, f_yy, fine_sched)

    # The value and its envelope gradients, from one last pass per problem.
    mx, my = _moments(fx), _moments(fy)
    r_xy, k_xy = _pass(fx, fy, s_xy.f, s_xy.g, p_xy.pairs, 1.0 / eps, my, mx)
    r_xx = _pass(fx, fx, s_xx.f, s_xx.f, p_xx.pairs, 1.0 / eps, mx, None)[0]
    r_yy = _pass(fy, fy, s_yy.f, s_yy.f, p_yy.pairs, 1.0 / eps, my, None)[0]
    tf, ybar, cost_xy = _transform(s_xy.f, r_xy, fx.pts, eps)
    tg, xbar, _ = _transform(s_xy.g, k_xy, fy.pts, eps)
    tp, xself, cost_xx = _transform(s_xx.f, r_xx, fx.pts, eps)
    tq, yself, cost_yy = _transform(s_yy.f, r_yy, fy.pts, eps)
    ga, gb = jnp.where(fx.w > 0, tf - tp, 0.0), jnp.where(fy.w > 0, tg - tq, 0.0)
    value = jnp.sum(fx.w * ga) + jnp.sum(fy.w * gb)
    transport = jnp.sum(fx.w * (cost_xy - 0.5 * cost_xx)) - 0.5 * jnp.sum(fy.w * cost_yy)
    grads = (
        _uncut(2 * fx.w[..., None] * (xself - ybar), lx, sx),
        _uncut(2 * fy.w[..., None] * (yself - xbar), ly, sy),
        _uncut(ga, lx, sx),
        _uncut(gb, ly, sy),
        (value - transport) / eps,
    )

    err = jnp.maximum(s_xy.err, jnp.maximum(s_xx.err, s_yy.err))
    converged = valid & (err <= tol)
    status = jnp.where(converged, driver.Status.CONVERGED, driver.Status.MAX_ITERS)
    status = jnp.where(jnp.isnan(err), driver.Status.NONFINITE, status)
    status = jnp.where(valid, status, driver.Status.INVALID_INPUT).astype(jnp.int32)
    nan = jnp.asarray(jnp.nan, dtype)
    value = jnp.where(converged, value, nan)
    grads = tuple(jnp.where(converged, gr, nan) for gr in grads)
    iters = jnp.maximum(s_xy.it, jnp.maximum(s_xx.it, s_yy.it))
    coarse_iters = jnp.maximum(c_xy.it, jnp.maximum(c_xx.it, c_yy.it))
    share = (jnp.sum(p_xy.pairs.ok) * (fx.w.shape[1] * fy.w.shape[1] / (n * m))).astype(dtype)
    return value, grads, MultiscaleOutput(value, converged, status, err, iters, coarse_iters, share)


@jax.jit(static_argnums=(0, 1, 2, 3))
def _divergence(
    size: int, k: int, max_iters: int, throw: bool, x: Array, y: Array, a: Array, b: Array, eps: Array, tol: Array,
    decay: Array
) -> MultiscaleOutput:
    sg = jax.lax.stop_gradient
    value, grads, out = _solve(sg(x), sg(y), sg(a), sg(b), sg(eps), sg(tol), sg(decay), size, k, max_iters)
    if throw:
        driver.throw_unless_converged("multiscale_divergence", out.status)
    # The value, with the envelope gradients as its derivative (first order; the loop is not differentiated).
    for g, v in zip(grads, (x, y, a, b, eps), strict=True):
        value = value + jnp.sum(g * (v - sg(v)))
    return out._replace(value=value)


def multiscale_divergence(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    epsilon: Any,
    tol: Any = 1e-2,
    decay: Any = 0.9,
    cluster_size: int = 32,
    neighbours: int = 16,
    max_iters: int = 1000,
    return_output: bool = False,
    throw: bool = False,
) -> Array | MultiscaleOutput:
    """Sinkhorn divergence of large clouds in ``d <= 3`` with the squared Euclidean cost, on truncated blocks.

    The same divergence as :func:`~ott_fast.sinkhorn_divergence` (cost ``|x - y|^2``, absolute ``epsilon``,
    balanced weights), computed by the multiscale scheme of this module: the clouds are cut into clusters
    of ``cluster_size`` points along a Morton curve, the three problems are annealed on the clusters'
    centroids down to the clusters' scale, and the fine iterations then read only the kept blocks of
    cluster pairs (each cluster's ``neighbours`` heaviest partners under the coarse plan, by rows and by
    columns). A pass costs about ``2 neighbours cluster_size (n + m)`` entries per problem instead of ``n m``.

    **Truncation.** The kept blocks define the problem solved: a point's mass outside them is dropped,
    so the value is that of a slightly different problem. With ``neighbours`` at least the number of
    clusters nothing is dropped and the value is the full divergence's, to ``tol``. The truncation's error
    is measured (and documented in the guide) against the full solve.

    **Status.** ``tol`` bounds the largest L1 marginal error of the three truncated problems, measured on
    the potentials the value is extrapolated from; the value (and every gradient) is NaN unless all three
    reached it, under ``jit`` too (``throw=True`` raises instead). ``max_iters`` caps the fine iterations.

    **Gradients** (first order) flow to ``x``, ``y``, ``a``, ``b`` and ``epsilon``: the envelope theorem's,
    ``2 a_i (mean of x_i's partners in the x-x plan - mean of its partners in the x-y plan)`` for ``x``,
    the potentials for the weights and the plans' KL divergence for ``epsilon``, computed in the value's
    own pass; the loop is not differentiated. Their bias vanishes with ``tol`` (exact at the optimum).

    Zero weights mean absent points (sorted last, in no cluster of present points); translating both
    clouds changes nothing beyond rounding (costs are formed from differences of centred points).

    Args:
        x, y: ``[n, d]``, ``[m, d]`` points, ``d <= 3``.  a, b: ``[n]``, ``[m]`` weights of equal mass,
            uniform if ``None``.
        epsilon: the absolute regularisation, > 0.
        tol: the stopping tolerance on the L1 marginal errors.
        decay: epsilon's factor per iteration while it anneals from the squared diameter, in ``(0, 1)``.
        cluster_size: points per cluster (static).  neighbours: partners kept per cluster (static).
        max_iters: fine iterations at most (static).  return_output: return a :class:`MultiscaleOutput`.
        throw: raise a ``RuntimeError`` (at run time) instead of returning NaN when not converged.

    Returns:
        ``[]`` the divergence, or a :class:`MultiscaleOutput`.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (2000, 3))
        >>> y = 0.8 * jax.random.normal(jax.random.PRNGKey(1), (2000, 3)) + 1.0
        >>> fast = otf.multiscale_divergence(x, y, epsilon=0.01)
        >>> full = otf.sinkhorn_divergence(x, y, epsilon=0.01, tol=1e-2)
        >>> bool(abs(fast - full) < 1e-2 * abs(full))
        True
    """
    xa, ya = val.check_points("x", x), val.check_points("y", y)
    d = xa.shape[1]
    if ya.shape[1] != d:
        raise ValueError(f"x, y: dimensions differ, x is [n, {d}] and y is [m, {ya.shape[1]}].")
    if d > 3:
        raise ValueError(
            f"x, y: multiscale_divergence clusters along a space-filling curve, local only in d <= 3 (got d = {d});"
            " use sinkhorn_divergence(..., chunk_size='auto') instead."
        )
    dtype = jnp.result_type(xa, ya)
    xa, ya = xa.astype(dtype), ya.astype(dtype)
    a = val.check_weights("a", a, xa.shape[0], dtype)
    b = val.check_weights("b", b, ya.shape[0], dtype)
    val.check_mass(a, b, dtype)
    val.check_positive("epsilon", epsilon)
    val.check_nonnegative("tol", tol)
    if val.is_concrete(decay) and not 0.0 < float(decay) < 1.0:
        raise ValueError(f"decay: expected a factor in (0, 1), got {float(decay)}.")
    for name, v in (("cluster_size", cluster_size), ("neighbours", neighbours), ("max_iters", max_iters)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}.")
    cast = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    out = _divergence(
        cluster_size, neighbours, max_iters, throw, xa, ya, a, b, cast(epsilon), cast(tol), cast(decay)
    )
    return out if return_output else out.value
