"""Ground costs ``c(x, y)`` between points, and their all-pairs matrices.

Every cost is an immutable pytree with two methods:

- ``cost(x, y)``: ``x[d], y[d] -> []`` for one pair of points;
- ``all_pairs(x, y)``: ``x[n, d], y[m, d] -> C[n, m]``, vectorised (a matrix product where the cost allows).

Any Python function ``c(x, y)`` of two vectors is accepted wherever a cost is, through :func:`as_cost`.

Example:
    >>> import jax.numpy as jnp
    >>> from ott_fast import costs
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    >>> costs.SqEuclidean().all_pairs(x, x)
    Array([[0., 1.],
           [1., 0.]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["Cost", "SqEuclidean", "Euclidean", "PNorm", "Cosine", "Custom", "as_cost"]

# Rows of ``x`` processed at once when a cost has no matrix-product form (bounds the [rows, m, d] buffer).
_ROW_BLOCK = 256


class Cost:
    """Base class: subclasses define :meth:`cost`; :meth:`all_pairs` defaults to a blocked double ``vmap``."""

    def cost(self, x: Array, y: Array) -> Array:
        """Cost between two points ``x[d]`` and ``y[d]``; returns a scalar."""
        raise NotImplementedError

    def all_pairs(self, x: Array, y: Array) -> Array:
        """Cost matrix ``C[n, m]`` between ``x[n, d]`` and ``y[m, d]``."""
        row = jax.vmap(self.cost, in_axes=(None, 0))
        if x.shape[0] <= _ROW_BLOCK:
            return jax.vmap(row, in_axes=(0, None))(x, y)
        return jax.lax.map(lambda xi: row(xi, y), x, batch_size=_ROW_BLOCK)

    def __call__(self, x: Array, y: Array) -> Array:
        return self.cost(x, y)


def _register(cls: type, data: tuple[str, ...] = (), meta: tuple[str, ...] = ()) -> type:
    return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))


def _sq_norms_cross(x: Array, y: Array) -> tuple[Array, Array, Array]:
    return jnp.sum(x * x, axis=-1), jnp.sum(y * y, axis=-1), x @ y.T


@dataclasses.dataclass(frozen=True)
class SqEuclidean(Cost):
    """``c(x, y) = |x - y|_2^2``, computed for all pairs as ``|x|^2 + |y|^2 - 2 x y^T`` (one matrix product)."""

    def cost(self, x: Array, y: Array) -> Array:
        return jnp.sum((x - y) ** 2)

    def all_pairs(self, x: Array, y: Array) -> Array:
        nx, ny, xy = _sq_norms_cross(x, y)
        return jnp.maximum(nx[:, None] + ny[None, :] - 2.0 * xy, 0.0)


def _safe_sqrt(v: Array) -> Array:
    """``sqrt`` whose gradient at 0 is 0 instead of inf (so ``x == y`` gives finite gradients)."""
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class Euclidean(Cost):
    """``c(x, y) = |x - y|_2`` (gradient defined as 0 at ``x == y``)."""

    def cost(self, x: Array, y: Array) -> Array:
        return _safe_sqrt(jnp.sum((x - y) ** 2))

    def all_pairs(self, x: Array, y: Array) -> Array:
        return _safe_sqrt(SqEuclidean().all_pairs(x, y))


@dataclasses.dataclass(frozen=True)
class PNorm(Cost):
    """``c(x, y) = |x - y|_p^p = sum_k |x_k - y_k|^p`` for ``p >= 1`` (``p`` is traced, not static)."""

    p: Any = 2.0

    def cost(self, x: Array, y: Array) -> Array:
        z = jnp.abs(x - y)
        pos = z > 0
        return jnp.sum(jnp.where(pos, jnp.where(pos, z, 1.0) ** self.p, 0.0))


@dataclasses.dataclass(frozen=True)
class Cosine(Cost):
    """``c(x, y) = 1 - <x, y> / (|x| |y|)``, in ``[0, 2]``; zero vectors are treated as orthogonal to all."""

    def cost(self, x: Array, y: Array) -> Array:
        return self.all_pairs(x[None], y[None])[0, 0]

    def all_pairs(self, x: Array, y: Array) -> Array:
        def unit(z: Array) -> Array:
            nz = _safe_sqrt(jnp.sum(z * z, axis=-1, keepdims=True))
            return z / jnp.where(nz > 0, nz, 1.0)

        return jnp.clip(1.0 - unit(x) @ unit(y).T, 0.0, 2.0)


@dataclasses.dataclass(frozen=True)
class Custom(Cost):
    """Wraps a user function ``fn(x[d], y[d]) -> scalar``; the function is static (part of the tree structure)."""

    fn: Callable[[Array, Array], Array]

    def cost(self, x: Array, y: Array) -> Array:
        return self.fn(x, y)


for _cls in (SqEuclidean, Euclidean, Cosine):
    _register(_cls)
_register(PNorm, data=("p",))
_register(Custom, meta=("fn",))


def as_cost(cost: Cost | Callable[[Array, Array], Array] | None) -> Cost:
    """Returns ``cost`` as a :class:`Cost`: ``None`` means :class:`SqEuclidean`, a callable is wrapped.

    Example:
        >>> c = as_cost(lambda x, y: jnp.sum(jnp.abs(x - y)))
        >>> float(c(jnp.zeros(2), jnp.ones(2)))
        2.0
    """
    if cost is None:
        return SqEuclidean()
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, type) and issubclass(cost, Cost):
        raise TypeError(f"cost: pass an instance such as {cost.__name__}(), not the class itself.")
    if callable(cost):
        return Custom(cost)
    raise TypeError(f"cost: expected an ott_fast.costs.Cost or a function c(x, y), got {type(cost).__name__}.")
