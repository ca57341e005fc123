"""Ragged batches: point clouds of different sizes as one padded batch, solved by one ``jax.vmap``.

A zero weight means an absent point everywhere in ott_fast (docs/design.md): every solver, divergence, sliced
estimator and map gives the same outputs on the real points whether or not zero-weight points are appended,
wherever they sit. So a ragged batch is a padded batch: :func:`pad` stacks clouds ``[n_i, d]`` into
``points[B, N, d]`` with weights ``[B, N]`` that are zero on the padding, any per-problem function of one
padded problem is ``jax.vmap``-ed over the batch, and :func:`unpad` cuts per-point outputs back to each
problem's size. Rounding ``N`` up to a ``multiple`` keeps the number of compiled shapes small when batches of
different sizes follow one another.

Example:
    >>> import jax, numpy as np, ott_fast as otf
    >>> rng = np.random.default_rng(0)
    >>> xs = [rng.normal(size=(n, 2)) for n in (5, 8, 3)]
    >>> ys = [rng.normal(size=(n, 2)) + 1.0 for n in (6, 4, 7)]
    >>> px = otf.pad(xs, multiple=4)
    >>> py = otf.pad(ys, size=px.points.shape[1])  # one N for both sides
    >>> px.points.shape, px.weights.shape, px.sizes
    ((3, 8, 2), (3, 8), (5, 8, 3))
    >>> solve = lambda x, y, a, b: otf.sinkhorn(otf.PointCloud(x, y, epsilon=0.1), a, b)
    >>> out = jax.vmap(solve)(px.points, py.points, px.weights, py.weights)
    >>> [f.shape for f in px.unpad(out.f)]
    [(5,), (8,), (3,)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ott_fast import _validation as val

Array = jax.Array

__all__ = ["pad", "unpad", "Padded"]


class Padded(NamedTuple):
    """A padded batch of point clouds (see :func:`pad`).

    Attributes:
        points: ``[B, N, d]`` the clouds, each followed by ``N - n_i`` copies of its first point.
        weights: ``[B, N]`` the clouds' weights, zero on the padding.
        sizes: the ``B`` original sizes ``n_i`` (a tuple of Python ints).

    Example:
        >>> import numpy as np
        >>> p = pad([np.zeros((2, 3)), np.ones((4, 3))])
        >>> p.weights.tolist()
        [[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]
    """

    points: Array
    weights: Array
    sizes: tuple[int, ...]

    def unpad(self, values: Any) -> list[Array]:
        """Per-point outputs ``values[B, N, ...]`` cut back to each problem's size: a list of ``[n_i, ...]``
        (see :func:`unpad`)."""
        return unpad(values, self.sizes)


def pad(
    clouds: Sequence[Any],
    weights: Sequence[Any] | None = None,
    *,
    size: int | None = None,
    multiple: int = 1,
) -> Padded:
    """Stacks point clouds of different sizes into one batch, padded with zero-weight points.

    Each cloud ``[n_i, d]`` is followed by ``N - n_i`` copies of its own first point (inside the data's
    range, so no cost, float32 product or user function sees a new magnitude; any position would give the
    same results), with weight 0. ``N`` is ``size`` if given, else the largest ``n_i`` rounded up to a
    multiple of ``multiple``, so that batches of nearby sizes share one compiled shape.

    Args:
        clouds: ``B`` arrays ``[n_i, d]`` (NumPy or JAX, one floating dtype after promotion, one ``d``).
        weights: ``B`` arrays ``[n_i]`` of non-negative weights, used as given; ``None``: uniform,
            ``1 / n_i`` for each cloud.
        size: the padded size ``N >= max n_i`` (static); ``None``: see above.
        multiple: round the automatic ``N`` up to a multiple of this (``>= 1``).

    Returns:
        A :class:`Padded` ``(points[B, N, d], weights[B, N], sizes)``.

    Example:
        >>> import numpy as np
        >>> p = pad([np.zeros((3, 2)), np.ones((5, 2))], multiple=4)
        >>> p.points.shape, p.sizes
        ((2, 8, 2), (3, 5))
    """
    if isinstance(clouds, (np.ndarray, jax.Array)) or not len(clouds):
        raise TypeError("clouds: expected a non-empty sequence of [n_i, d] arrays (a list of point clouds).")
    for i, c in enumerate(clouds):
        val.check_points(f"clouds[{i}]", c)
    arrays = [np.asarray(c) for c in clouds]
    dims = {c.shape[1] for c in arrays}
    if len(dims) != 1:
        raise ValueError(f"clouds: every cloud needs the same dimension d, got {sorted(dims)}.")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple: expected a positive int, got {multiple!r}.")
    sizes = tuple(int(c.shape[0]) for c in arrays)
    biggest = max(sizes)
    if size is None:
        size = -(-biggest // multiple) * multiple
    elif isinstance(size, bool) or not isinstance(size, int) or size < biggest:
        raise ValueError(f"size: expected an int >= the largest cloud ({biggest} points), got {size!r}.")
    dtype = jnp.result_type(*arrays)
    if weights is None:
        ws = [np.full(n, 1.0 / n) for n in sizes]
    else:
        if len(weights) != len(arrays):
            raise ValueError(f"weights: expected {len(arrays)} arrays (one per cloud), got {len(weights)}.")
        pairs = enumerate(zip(weights, sizes, strict=True))
        ws = [np.asarray(val.check_weights(f"weights[{i}]", w, n, dtype)) for i, (w, n) in pairs]
    points = np.stack([np.concatenate([c, np.repeat(c[:1], size - c.shape[0], 0)]) for c in arrays])
    wts = np.stack([np.concatenate([w, np.zeros(size - w.shape[0])]) for w in ws])
    return Padded(jnp.asarray(points, dtype), jnp.asarray(wts, dtype), sizes)


def unpad(values: Any, sizes: Sequence[int]) -> list[Array]:
    """The inverse of :func:`pad` for per-point outputs: ``values[B, N, ...]`` (potentials, gradients with
    respect to the points, ...) to a list of ``values[i, :n_i]``.

    Args:
        values: ``[B, N, ...]`` array.  sizes: the ``B`` sizes ``n_i`` (``Padded.sizes``).

    Example:
        >>> import jax.numpy as jnp
        >>> [v.tolist() for v in unpad(jnp.arange(6.0).reshape(2, 3), (1, 3))]
        [[0.0], [3.0, 4.0, 5.0]]
    """
    values = jnp.asarray(values)
    if values.ndim < 2 or values.shape[0] != len(sizes) or max(sizes) > values.shape[1]:
        raise ValueError(
            f"values: expected shape [B={len(sizes)}, N >= {max(sizes)}, ...] to match sizes, got {values.shape}."
        )
    return [values[i, :n] for i, n in enumerate(sizes)]
