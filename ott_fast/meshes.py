"""Triangle meshes as probability measures, for sliced OT between surfaces (Le et al., ICLR 2024, arXiv 2305.17555).

A mesh ``(vertices[V, 3], faces[F, 3])`` becomes a measure in one of three ways, each a plain ``(points, weights)``
pair that :func:`ott_fast.sliced_wasserstein` (weighted, ``n != m``), :func:`ott_fast.sinkhorn_divergence` and
the rest take as they are:

- :func:`varifold`: the discrete oriented varifold ``sum_k (area_k / A) delta_(c_k, s n_k)``, a Dirac at each face
  centroid ``c_k`` carrying its unit normal ``n_k`` (scaled by ``s = normal_scale``), as points of ``R^6``;
- :func:`sample_surface`: an i.i.d. sample of the uniform measure on the surface (a face with probability
  ``area_k / A``, then a uniform point of it), reparameterised so that gradients reach the vertices;
- the centroids alone (``normal_scale=0``), the crudest area-weighted summary.

Conventions. A face ``(i, j, k)`` has the normal ``(p_j - p_i) x (p_k - p_i) / |.|`` (right-hand rule: a face
listed counter-clockwise seen from outside has an outward normal, as in trimesh). Every per-face quantity is
computed from the face's corners sorted lexicographically (the winding enters only as the sign of that
permutation), so the results are *exactly* (bitwise) invariant to re-indexing the vertices and to the cyclic
order in which a face lists its corners; reversing a face's winding negates its normal exactly and changes
nothing else (both hold for every face with three distinct corners). A degenerate (zero-area) face gets area 0
(hence weight 0: it is absent from every measure) and the normal ``0``; its gradients are finite.

Everything is pure JAX: differentiable with respect to the vertices, ``jit``-able, and ``vmap``-able over a batch
of vertex arrays sharing one face list. Evaluation metrics: :func:`chamfer_distance` (chunked, so it runs at 100k
points in bounded memory) and :func:`average_surface_distance` from exact point-to-triangle distances
(:func:`point_to_mesh_distance`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ott_fast._validation import check_index_range, check_points, check_static_int, check_weights

Array = jax.Array

__all__ = [
    "FaceGeometry",
    "SurfaceSample",
    "face_geometry",
    "varifold",
    "sample_surface",
    "chamfer_distance",
    "point_to_mesh_distance",
    "average_surface_distance",
]


class FaceGeometry(NamedTuple):
    """Per-face geometry of a triangle mesh: ``areas[F]``, unit ``normals[F, 3]`` and ``centroids[F, 3]``.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> v = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> g = otf.meshes.face_geometry(v, jnp.array([[0, 1, 2]]))
        >>> float(g.areas[0]), [float(c) + 0.0 for c in g.normals[0]]  # + 0.0: no signed zeros
        (0.5, [0.0, 0.0, 1.0])
    """

    areas: Array
    normals: Array
    centroids: Array


class SurfaceSample(NamedTuple):
    """Points sampled uniformly on a surface: ``points[n, 3]``, ``normals[n, 3]``, ``weights[n]``, ``face_index[n]``.

    ``weights`` are exactly ``1/n`` in value; their gradient is the score-function term of the face choice (see
    :func:`sample_surface`). ``face_index`` is the face each point was drawn from.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> v = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> s = otf.meshes.sample_surface(jax.random.PRNGKey(0), v, jnp.array([[0, 1, 2]]), 4)
        >>> s.points.shape, float(s.weights.sum())
        ((4, 3), 1.0)
    """

    points: Array
    normals: Array
    weights: Array
    face_index: Array


# ------------------------------------------------------------------------------------------------ checks


def _check_mesh(vertices: Any, faces: Any) -> tuple[Array, Array]:
    v = check_points("vertices", vertices)
    if v.shape[1] != 3:
        raise ValueError(f"vertices: expected shape [V, 3], got {v.shape}.")
    dtype = getattr(faces, "dtype", None)
    f = faces if dtype is not None else np.asarray(faces)
    if not jnp.issubdtype(f.dtype, jnp.integer):
        raise TypeError(f"faces: expected an integer array of vertex indices, got dtype {f.dtype}.")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"faces: expected shape [F, 3] with F >= 1, got {f.shape}.")
    check_index_range("faces", f, v.shape[0])  # a device array is reduced on its device
    return v, jnp.asarray(f)


# -------------------------------------------------------------------------------------------- face geometry


def _lex_less(p: Array, q: Array) -> Array:
    """``p < q`` in lexicographic order of the last axis (length 3)."""
    return (p[..., 0] < q[..., 0]) | (
        (p[..., 0] == q[..., 0]) & ((p[..., 1] < q[..., 1]) | ((p[..., 1] == q[..., 1]) & (p[..., 2] < q[..., 2])))
    )


def _sorted_corners(p: Array) -> tuple[Array, Array]:
    """The corners ``p[F, 3, 3]`` of each face in lexicographic order, and the sign ``[F]`` of that permutation.

    Computing every per-face quantity from the sorted corners makes the arithmetic the same, operation for
    operation, whatever the order in which a face lists its corners (XLA may contract ``a*b - c*d`` into a fused
    multiply-add, so ``a x b = -(b x a)`` is not exact in general); the orientation enters only as the sign.
    """
    before = [[None] * 3 for _ in range(3)]
    for j in range(3):
        for k in range(3):
            if j != k:  # corner j sorts before corner k (ties by position in the face)
                tie = jnp.all(p[..., j, :] == p[..., k, :], axis=-1)
                before[j][k] = _lex_less(p[..., j, :], p[..., k, :]) | (tie if j < k else jnp.zeros_like(tie))
    rank = [sum(before[j][k].astype(jnp.int32) for j in range(3) if j != k) for k in range(3)]
    order = jnp.stack([sum(jnp.where(rank[k] == r, k, 0) for k in range(3)) for r in range(3)], axis=-1)
    sign = jnp.where((rank[1] - rank[0]) % 3 == 1, 1.0, -1.0).astype(p.dtype)  # a rotation of (0, 1, 2): even
    return jnp.take_along_axis(p, order[..., None], axis=-2), sign


@jax.jit  # many small ops: one compiled call keeps eager use fast
def _face_geometry(v: Array, f: Array) -> FaceGeometry:
    p = v[f]  # [F, 3, 3]
    q, sign = _sorted_corners(p)
    cross = jnp.cross(q[..., 1, :] - q[..., 0, :], q[..., 2, :] - q[..., 0, :])
    sq = jnp.sum(cross * cross, axis=-1)
    repeated = jnp.all(q[..., 0, :] == q[..., 1, :], axis=-1) | jnp.all(q[..., 1, :] == q[..., 2, :], axis=-1)
    ok = (sq > 0) & ~repeated  # a repeated corner is exactly degenerate, whatever the rounding of the cross product
    norm = jnp.sqrt(jnp.where(ok, sq, 1.0))  # double where: finite gradients at degenerate faces
    areas = jnp.where(ok, 0.5 * norm, 0.0)
    normals = jnp.where(ok[..., None], (sign[..., None] * cross) / norm[..., None], 0.0)
    centroids = jnp.sum(q, axis=-2) / 3.0
    return FaceGeometry(areas, normals, centroids)


def face_geometry(vertices: Any, faces: Any) -> FaceGeometry:
    """Areas ``[F]``, unit normals ``[F, 3]`` and centroids ``[F, 3]`` of the faces of a triangle mesh.

    Args:
        vertices: ``[V, 3]`` vertex positions (float; differentiable).
        faces: ``[F, 3]`` integer vertex indices; the winding gives the normal by the right-hand rule.

    Returns:
        A :class:`FaceGeometry`. Degenerate faces have area 0 and normal 0. Exactly invariant to vertex
        re-indexing and to the cyclic order of each face's corners (see the module notes).

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> v = jnp.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
        >>> g = otf.meshes.face_geometry(v, jnp.array([[0, 1, 2], [0, 3, 3]]))  # the second face is degenerate
        >>> [float(a) for a in g.areas], [float(c) for c in g.normals[1]]
        ([2.0, 0.0], [0.0, 0.0, 0.0])
    """
    return _face_geometry(*_check_mesh(vertices, faces))


def varifold(vertices: Any, faces: Any, *, normal_scale: Any = 1.0) -> tuple[Array, Array]:
    """The oriented varifold of a mesh: points ``[F, 6]`` = (centroid, ``normal_scale`` x normal), weights ``[F]``.

    Weights are ``area_k / A`` (they sum to 1; degenerate faces get 0, i.e. they are absent). The measure lives on
    ``R^3 x S^2``, compared as points of ``R^6``: a direction ``theta = (theta_c, theta_n)`` projects a face to
    ``theta_c . c_k + normal_scale * theta_n . n_k``. ``normal_scale`` is the position/orientation trade-off: the
    length that a unit change of normal is worth. The default ``1.0`` suits shapes of unit size (the notebook's
    spheres); scale it with the shape (e.g. about a tenth of the diameter to let positions dominate),
    and ``0`` keeps positions only (the area-weighted centroid measure). Translating the mesh by ``t`` shifts every
    point by ``(t, 0)``; reversing every face negates the normal part.

    Args:
        vertices: ``[V, 3]`` vertex positions (differentiable).  faces: ``[F, 3]`` integer indices.
        normal_scale: scale ``s >= 0`` of the normal part (traced).

    Returns:
        ``(points[F, 6], weights[F])``, ready for :func:`ott_fast.sliced_wasserstein` as ``x, a``.

    Example:
        >>> import jax, ott_fast as otf
        >>> import jax.numpy as jnp
        >>> v = jnp.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
        >>> f = jnp.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # a tetrahedron, outward normals
        >>> x, a = otf.meshes.varifold(v, f)
        >>> x.shape, round(float(a.sum()), 6)
        ((4, 6), 1.0)
        >>> float(otf.sliced_wasserstein(jax.random.PRNGKey(0), x, x, a, a, n_projections=10))
        0.0
    """
    v, f = _check_mesh(vertices, faces)
    return _varifold(v, f, jnp.asarray(normal_scale, v.dtype))


@jax.jit
def _varifold(v: Array, f: Array, scale: Array) -> tuple[Array, Array]:
    g = _face_geometry(v, f)
    total = jnp.sum(g.areas)
    weights = jnp.where(total > 0, g.areas / jnp.where(total > 0, total, 1.0), 0.0)
    return jnp.concatenate([g.centroids, scale * g.normals], axis=-1), weights


# ---------------------------------------------------------------------------------------------- sampling


def sample_surface(key: Array, vertices: Any, faces: Any, n: int) -> SurfaceSample:
    """``n`` i.i.d. points of the uniform measure on the surface, with their face normals, differentiable.

    A face is drawn with probability ``area_k / A``, then the point
    ``(1 - sqrt(u1)) p0 + sqrt(u1)(1 - u2) p1 + sqrt(u1) u2 p2`` with ``u1, u2 ~ U(0, 1)`` (uniform on the triangle).
    For a fixed key the points are a smooth function of the vertices (the pathwise, reparameterised gradient).
    The face choice itself is discrete: the change of the face probabilities with the vertices is carried by
    ``weights``, equal to ``1/n`` in value but with the gradient ``grad(area_k / A) / (n area_k / A)`` (the score
    function). So ``sum_i weights_i h(points_i)`` has an unbiased gradient of ``E h`` over the surface, and passing
    ``a=weights`` to a loss differentiates both effects; leaving the weights out keeps only the pathwise term
    (lower variance, biased where the areas change; what point samplers usually give).

    Args:
        key: a ``jax.random`` key (no default).  vertices: ``[V, 3]``.  faces: ``[F, 3]`` integer indices.
        n: number of points (static).

    Returns:
        A :class:`SurfaceSample` ``(points[n, 3], normals[n, 3], weights[n], face_index[n])``.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> v = jnp.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
        >>> f = jnp.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
        >>> s = otf.meshes.sample_surface(jax.random.PRNGKey(0), v, f, 1000)
        >>> bool(jnp.all(s.points >= -1e-6)), bool(jnp.all(s.points.sum(1) <= 1 + 1e-6))
        (True, True)
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}.")
    v, f = _check_mesh(vertices, faces)
    return _sample_surface(key, v, f, check_static_int("n", n))


@partial(jax.jit, static_argnums=3)
def _sample_surface(key: Array, v: Array, f: Array, n: int) -> SurfaceSample:
    g = _face_geometry(v, f)
    total = jnp.sum(g.areas)
    prob = g.areas / total
    kf, ku = jax.random.split(key)
    # the face by inverting the cumulative areas: O(n log F), and a zero-area face (a flat step) is never chosen
    cum = jnp.cumsum(lax.stop_gradient(g.areas))
    draw = jax.random.uniform(kf, (n,), dtype=v.dtype) * cum[-1]
    idx = jnp.clip(jnp.searchsorted(cum, draw, side="right"), 0, f.shape[0] - 1)
    u = jax.random.uniform(ku, (n, 2), dtype=v.dtype)
    s = jnp.sqrt(u[:, 0])
    bary = jnp.stack([1.0 - s, s * (1.0 - u[:, 1]), s * u[:, 1]], axis=1)  # [n, 3]
    corners = v[f[idx]]  # [n, 3, 3]
    points = jnp.einsum("nk,nkd->nd", bary, corners, precision=lax.Precision.HIGHEST)
    pk = prob[idx]
    weights = (pk / lax.stop_gradient(pk)) / n  # exactly 1/n; carries grad log p_k
    return SurfaceSample(points, g.normals[idx], weights, idx)


# ----------------------------------------------------------------------------------------------- metrics


def _chunks(x: Array, size: int, fill: Any) -> tuple[Array, int]:
    """``x[n, ...]`` padded with ``fill`` to a multiple of ``size`` and reshaped ``[n_chunks, size, ...]``."""
    n = x.shape[0]
    k = -(-n // size)
    pad = k * size - n
    if pad:
        x = jnp.concatenate([x, jnp.full((pad, *x.shape[1:]), fill, x.dtype)], axis=0)
    return x.reshape(k, size, *x.shape[1:]), n


@partial(jax.jit, static_argnums=3)
def _nearest(x: Array, y: Array, y_ok: Array, chunk_size: int) -> Array:
    """Index ``[n]`` of the nearest ``y_j`` with ``y_ok[j]`` for each ``x_i``, in ``chunk x chunk`` blocks."""
    shift = 0.5 * (jnp.mean(x, axis=0) + jnp.mean(y, axis=0))  # centred: the expanded square stays accurate
    x, y = x - shift, y - shift
    cx, cy = min(chunk_size, x.shape[0]), min(chunk_size, y.shape[0])
    xs, n = _chunks(x, cx, 0.0)
    ys, _ = _chunks(y, cy, 0.0)
    oks, _ = _chunks(y_ok, cy, False)
    y_sq = jnp.sum(ys * ys, axis=-1)
    offsets = jnp.arange(ys.shape[0], dtype=jnp.int32) * cy

    def one_chunk(xc: Array) -> Array:
        x_sq = jnp.sum(xc * xc, axis=-1)

        def body(carry: tuple[Array, Array], blk: tuple[Array, Array, Array, Array]) -> tuple[Any, None]:
            best_d, best_i = carry
            yc, ysq, ok, off = blk
            d = x_sq[:, None] + ysq[None, :] - 2.0 * jnp.matmul(xc, yc.T, precision=lax.Precision.HIGHEST)
            d = jnp.where(ok[None, :], d, jnp.inf)
            j = jnp.argmin(d, axis=1)
            dj = jnp.take_along_axis(d, j[:, None], axis=1)[:, 0]
            better = dj < best_d
            return (jnp.where(better, dj, best_d), jnp.where(better, j.astype(jnp.int32) + off, best_i)), None

        init = (jnp.full((cx,), jnp.inf, x.dtype), jnp.zeros((cx,), jnp.int32))
        return lax.scan(body, init, (ys, y_sq, oks, offsets))[0][1]

    return lax.map(one_chunk, xs).reshape(-1)[:n]


def _safe_sqrt(sq: Array) -> Array:
    ok = sq > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)


def _normalised_weights(name: str, w: Any, size: int, dtype: Any) -> Array:
    """Weights ``[size]`` checked by :func:`ott_fast._validation.check_weights` (``None``: uniform), summing to 1."""
    w = check_weights(name, w, size, dtype)
    return w / jnp.sum(w)


def chamfer_distance(
    x: Any, y: Any, a: Any = None, b: Any = None, *, squared: bool = True, chunk_size: int = 2048
) -> Array:
    """Symmetric Chamfer distance ``sum_i a_i min_j d(x_i, y_j) + sum_j b_j min_i d(x_i, y_j)``, chunked.

    ``d`` is the squared Euclidean distance (``squared=True``, the usual training loss) or the distance. The
    nearest neighbours are found in ``chunk_size x chunk_size`` blocks (memory ``O(chunk_size^2)``, time
    ``O(n m)``), outside the gradient; the distances to them are then recomputed from the points, so the gradient
    is exact wherever the nearest neighbours are unique. A zero weight means the point is absent: it contributes
    nothing and is nobody's neighbour. Chamfer is only a pseudo-metric (it ignores multiplicities).

    Args:
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights (normalised; ``None``: uniform).
        squared: squared distances (default) or distances.  chunk_size: block size (static).

    Returns:
        A scalar.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> x, y = jnp.array([[0.0, 0.0], [1.0, 0.0]]), jnp.array([[0.0, 1.0]])
        >>> float(otf.meshes.chamfer_distance(x, y))  # (1 + 2) / 2 + 1
        2.5
    """
    x, y = check_points("x", x), check_points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: dimensions differ ({x.shape[1]} and {y.shape[1]}).")
    dtype = jnp.result_type(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    a = _normalised_weights("a", a, x.shape[0], dtype)
    b = _normalised_weights("b", b, y.shape[0], dtype)
    return _chamfer(x, y, a, b, bool(squared), check_static_int("chunk_size", chunk_size))


@partial(jax.jit, static_argnums=(4, 5))
def _chamfer(x: Array, y: Array, a: Array, b: Array, squared: bool, chunk_size: int) -> Array:
    xs, ys = lax.stop_gradient(x), lax.stop_gradient(y)
    nx = _nearest(xs, ys, lax.stop_gradient(b) > 0, chunk_size)
    ny = _nearest(ys, xs, lax.stop_gradient(a) > 0, chunk_size)
    dx = jnp.sum((x - y[nx]) ** 2, axis=-1)
    dy = jnp.sum((y - x[ny]) ** 2, axis=-1)
    if not squared:
        dx, dy = _safe_sqrt(dx), _safe_sqrt(dy)
    return jnp.sum(a * dx) + jnp.sum(b * dy)


def _segment_sq(p: Array, s: Array, t: Array) -> Array:
    e = t - s
    ee = jnp.sum(e * e, axis=-1)
    ok = ee > 0
    u = jnp.clip(jnp.sum((p - s) * e, axis=-1) / jnp.where(ok, ee, 1.0), 0.0, 1.0)
    u = jnp.where(ok, u, 0.0)
    r = p - (s + u[..., None] * e)
    return jnp.sum(r * r, axis=-1)


def _point_triangle_sq(p: Array, a: Array, b: Array, c: Array) -> Array:
    """Exact squared distance from ``p`` to the (closed) triangle ``abc``, broadcasting over leading axes.

    The closest point is the orthogonal projection when it falls inside the triangle (all three edge tests
    agree with the normal), else the closest point of one of the three edges; a degenerate triangle uses its
    edges only.
    """
    nrm = jnp.cross(b - a, c - a)
    nn = jnp.sum(nrm * nrm, axis=-1)
    inside = (
        (jnp.sum(jnp.cross(b - a, p - a) * nrm, axis=-1) >= 0)
        & (jnp.sum(jnp.cross(c - b, p - b) * nrm, axis=-1) >= 0)
        & (jnp.sum(jnp.cross(a - c, p - c) * nrm, axis=-1) >= 0)
        & (nn > 0)
    )
    plane = jnp.sum((p - a) * nrm, axis=-1) ** 2 / jnp.where(nn > 0, nn, 1.0)
    edges = jnp.minimum(jnp.minimum(_segment_sq(p, a, b), _segment_sq(p, b, c)), _segment_sq(p, c, a))
    return jnp.where(inside, plane, edges)


def point_to_mesh_distance(points: Any, vertices: Any, faces: Any, *, chunk_size: int = 256) -> Array:
    """Exact Euclidean distance ``[n]`` from each point to the surface (the closest point over all triangles).

    Point-to-triangle distances are exact (projection inside the triangle, else the nearest edge point);
    the nearest face is searched over ``chunk_size``-point blocks against all faces (time ``O(n F)``, memory
    ``O(chunk_size F)``) outside the gradient, then the distance to it is recomputed, differentiably in the
    points and vertices where the closest face is unique.

    Args:
        points: ``[n, 3]``.  vertices: ``[V, 3]``.  faces: ``[F, 3]`` integer indices.
        chunk_size: points per block (static).

    Returns:
        ``[n]`` distances (not squared).

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> v = jnp.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
        >>> d = otf.meshes.point_to_mesh_distance(jnp.array([[0.2, 0.2, 0.5], [2.0, 0, 0]]), v, jnp.array([[0, 1, 2]]))
        >>> [round(float(t), 6) for t in d]
        [0.5, 1.0]
    """
    p = check_points("points", points)
    v, f = _check_mesh(vertices, faces)
    dtype = jnp.result_type(p, v)
    return _point_to_mesh(p.astype(dtype), v.astype(dtype), f, check_static_int("chunk_size", chunk_size))


@partial(jax.jit, static_argnums=3)
def _point_to_mesh(p: Array, v: Array, f: Array, chunk_size: int) -> Array:
    tri = v[f]  # [F, 3, 3]
    tri_s, p_s = lax.stop_gradient(tri), lax.stop_gradient(p)
    blocks, n = _chunks(p_s, min(chunk_size, p.shape[0]), 0.0)

    def nearest(pc: Array) -> Array:
        d = _point_triangle_sq(pc[:, None, :], tri_s[None, :, 0], tri_s[None, :, 1], tri_s[None, :, 2])
        return jnp.argmin(d, axis=1)

    k = lax.map(nearest, blocks).reshape(-1)[:n]
    t = tri[k]
    return _safe_sqrt(_point_triangle_sq(p, t[:, 0], t[:, 1], t[:, 2]))


def average_surface_distance(
    key: Array,
    vertices_a: Any,
    faces_a: Any,
    vertices_b: Any,
    faces_b: Any,
    *,
    n_samples: int = 10_000,
    chunk_size: int = 256,
) -> Array:
    """Average symmetric surface distance ``(E_{p ~ A} d(p, B) + E_{q ~ B} d(q, A)) / 2``.

    ``p`` and ``q`` are ``n_samples`` uniform samples of each surface (:func:`sample_surface`) and ``d`` the exact
    point-to-surface distance (:func:`point_to_mesh_distance`), so the only approximation is the Monte Carlo
    average over the surfaces (standard error ``O(1 / sqrt(n_samples))``). Zero for identical surfaces.

    Args:
        key: a ``jax.random`` key for the samples.  vertices_a, faces_a: mesh A.  vertices_b, faces_b: mesh B.
        n_samples: points sampled on each surface (static).  chunk_size: see :func:`point_to_mesh_distance`.

    Returns:
        A scalar, in the units of the vertices.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> v = jnp.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
        >>> f = jnp.array([[0, 1, 2]])
        >>> float(otf.meshes.average_surface_distance(jax.random.PRNGKey(0), v, f, v + jnp.array([0, 0, 0.25]), f))
        0.25
    """
    ka, kb = jax.random.split(key)
    pa = sample_surface(ka, vertices_a, faces_a, n_samples).points
    pb = sample_surface(kb, vertices_b, faces_b, n_samples).points
    da = point_to_mesh_distance(pa, vertices_b, faces_b, chunk_size=chunk_size)
    db = point_to_mesh_distance(pb, vertices_a, faces_a, chunk_size=chunk_size)
    return 0.5 * (jnp.mean(da) + jnp.mean(db))
