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
import numpy as np

Array = jax.Array

__all__ = [
    "Cost",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "Custom",
    "StaticFunction",
    "as_cost",
    "TICost",
    "ElasticL1",
    "TranslationInvariant",
    "ti_gradients",
    "precision_of",
]

# Rows of ``x`` processed at once when a cost has no matrix-product form (bounds the [rows, m, d] buffer).
_ROW_BLOCK = 256


class Cost:
    """Base class: subclasses define :meth:`cost`; :meth:`all_pairs` defaults to a blocked double ``vmap``.

    Example:
        >>> import dataclasses, jax.numpy as jnp
        >>> @dataclasses.dataclass(frozen=True)
        ... class L1(Cost):
        ...     def cost(self, x, y):
        ...         return jnp.sum(jnp.abs(x - y))
        >>> L1().all_pairs(jnp.zeros((2, 3)), jnp.ones((4, 3))).shape
        (2, 4)
    """

    #: Whether ``c(x + s, y + s) = c(x, y)`` for every shift ``s``: point clouds are then centred before any
    #: cost is formed (see :class:`~ott_fast.PointCloud`). ``False`` unless a subclass says otherwise.
    translation_invariant: bool = False

    #: Whether ``c(x, y) = c(y, x)``: a small dense kernel then forms ``C^T`` as ``all_pairs(y, x)`` (a second
    #: matrix product) rather than as a transpose, which XLA:CPU fuses into each consumer as a strided read.
    symmetric: bool = False

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


#: Precision of the matrix products in costs (the squared-Euclidean cross term). Full float32 by default: on
#: GPUs JAX's default float32 matmul may run in TF32 (a 10-bit mantissa), a relative error of ~1e-3 on the
#: cross term that ``1 / epsilon`` amplifies into solves that stall. ``jax.lax.Precision.DEFAULT`` is faster
#: there; pass it per cost (``SqEuclidean(precision=...)``) where that error is acceptable.
HIGHEST = jax.lax.Precision.HIGHEST


def precision_of(cost: Any) -> Any:
    """The precision of ``cost``'s matrix products: its ``precision`` field, or full float32 (``HIGHEST``)
    for a cost without one (every product ott_fast forms itself is explicit about its precision).

    Args:
        cost: a :class:`Cost` (or any object; only its ``precision`` attribute is read).

    Example:
        >>> precision_of(SqEuclidean(precision=jax.lax.Precision.DEFAULT)).name, precision_of(PNorm(3.0)).name
        ('DEFAULT', 'HIGHEST')
    """
    return getattr(cost, "precision", HIGHEST)


def _sq_norms_cross(x: Array, y: Array, precision: Any = HIGHEST) -> tuple[Array, Array, Array]:
    return jnp.sum(x * x, axis=-1), jnp.sum(y * y, axis=-1), jnp.matmul(x, y.T, precision=precision)


@dataclasses.dataclass(frozen=True)
class SqEuclidean(Cost):
    """``c(x, y) = |x - y|_2^2``, computed for all pairs as ``|x|^2 + |y|^2 - 2 x y^T`` (one matrix product).

    Args:
        precision: of the cross term's matrix product (static); full float32 by default, see ``HIGHEST``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(SqEuclidean()(jnp.array([0.0, 0.0]), jnp.array([3.0, 4.0])))
        25.0
    """

    precision: Any = HIGHEST
    translation_invariant = True
    symmetric = True

    def cost(self, x: Array, y: Array) -> Array:
        return jnp.sum((x - y) ** 2)

    def cross(self, x: Array, y: Array) -> Array:
        """``x y^T``, ``[n, m]``, at this cost's precision."""
        return jnp.matmul(x, y.T, precision=self.precision)

    def all_pairs(self, x: Array, y: Array) -> Array:
        nx, ny, xy = _sq_norms_cross(x, y, self.precision)
        return jnp.maximum(nx[:, None] + ny[None, :] - 2.0 * xy, 0.0)


def _safe_sqrt(v: Array) -> Array:
    """``sqrt`` whose gradient at 0 is 0 instead of inf (so ``x == y`` gives finite gradients)."""
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class Euclidean(Cost):
    """``c(x, y) = |x - y|_2`` (gradient defined as 0 at ``x == y``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> float(Euclidean()(jnp.array([0.0, 0.0]), jnp.array([3.0, 4.0])))
        5.0
        >>> jax.grad(Euclidean().cost)(jnp.ones(2), jnp.ones(2)).tolist()  # finite at x == y
        [0.0, 0.0]

    Args:
        precision: of the squared distances' matrix product (static), as for :class:`SqEuclidean`.
    """

    precision: Any = HIGHEST
    translation_invariant = True
    symmetric = True

    def cost(self, x: Array, y: Array) -> Array:
        return _safe_sqrt(jnp.sum((x - y) ** 2))

    def all_pairs(self, x: Array, y: Array) -> Array:
        return _safe_sqrt(SqEuclidean(self.precision).all_pairs(x, y))


@dataclasses.dataclass(frozen=True)
class PNorm(Cost):
    """``c(x, y) = |x - y|_p^p = sum_k |x_k - y_k|^p`` for ``p >= 1`` (``p`` is traced, not static).

    Example:
        >>> import jax.numpy as jnp
        >>> float(PNorm(3.0)(jnp.array([0.0, 0.0]), jnp.array([1.0, 2.0])))
        9.0
    """

    p: Any = 2.0
    translation_invariant = True
    symmetric = True

    def cost(self, x: Array, y: Array) -> Array:
        z = jnp.abs(x - y)
        pos = z > 0
        return jnp.sum(jnp.where(pos, jnp.where(pos, z, 1.0) ** self.p, 0.0))


@dataclasses.dataclass(frozen=True)
class Cosine(Cost):
    """``c(x, y) = 1 - <x, y> / (|x| |y|)``, in ``[0, 2]``; zero vectors are treated as orthogonal to all.

    Example:
        >>> import jax.numpy as jnp
        >>> Cosine().all_pairs(jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])).tolist()
        [[0.0, 1.0, 2.0]]

    Args:
        precision: of the matrix product of the unit vectors (static), full float32 by default.
    """

    precision: Any = HIGHEST
    symmetric = True

    def cost(self, x: Array, y: Array) -> Array:
        return self.all_pairs(x[None], y[None])[0, 0]

    def all_pairs(self, x: Array, y: Array) -> Array:
        def unit(z: Array) -> Array:
            nz = _safe_sqrt(jnp.sum(z * z, axis=-1, keepdims=True))
            return z / jnp.where(nz > 0, nz, 1.0)

        return jnp.clip(1.0 - jnp.matmul(unit(x), unit(y).T, precision=self.precision), 0.0, 2.0)


class StaticFunction:
    """A user function as static metadata, equal to another when it computes the same thing: same code,
    same default arguments, equal closure values and equal values of the globals its code reads.

    So ``cost=lambda x, y: ...`` written inside a loop (a fresh function object on every pass) compiles
    once instead of on every call. Captured NumPy arrays compare by value (shape, dtype and bytes), so
    changing one in place recompiles rather than giving a stale result; other unhashable values (JAX
    arrays, which are immutable, say) compare by identity. A global read by the function is compared the
    same way.

    Args:
        fn: any Python callable.

    Example:
        >>> make = lambda: (lambda x, y: jnp.sum(jnp.abs(x - y)))
        >>> StaticFunction(make()) == StaticFunction(make())
        True
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._key = _function_key(fn)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StaticFunction) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"StaticFunction({getattr(self.fn, '__qualname__', self.fn)!r})"


class _Identity:
    """Compares (and hashes) by the identity of ``obj``, and keeps it alive so the identity stays unique."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and self.obj is other.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _hashable(v: Any) -> Any:
    if isinstance(v, StaticFunction):
        return v
    if callable(v) and hasattr(v, "__code__"):
        return StaticFunction(v)
    if isinstance(v, np.ndarray):  # mutable: compared by value, so changing it in place recompiles
        return ("ndarray", v.shape, v.dtype.str, v.tobytes())
    try:
        hash(v)
    except TypeError:
        return _Identity(v)
    return v


def _function_key(fn: Callable[..., Any]) -> Any:
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin, a callable object, a functools.partial: its own equality
        return _hashable(fn)
    cells = tuple(_hashable(c.cell_contents) for c in (fn.__closure__ or ()))
    defaults = tuple(_hashable(d) for d in (fn.__defaults__ or ()))
    glob = fn.__globals__
    reads = tuple((name, _hashable(glob[name])) for name in code.co_names if name in glob)
    return code, cells, defaults, reads


class Custom(Cost):
    """Wraps a user function ``fn(x[d], y[d]) -> scalar``. The function is static metadata, compared by what
    it computes (see :class:`StaticFunction`), so an equal function passed again does not recompile.

    Args:
        fn: the cost of one pair of points.

    Example:
        >>> import jax.numpy as jnp
        >>> linf = Custom(lambda x, y: jnp.max(jnp.abs(x - y)))
        >>> linf.all_pairs(jnp.zeros((1, 2)), jnp.array([[1.0, -3.0]])).tolist()
        [[3.0]]
    """

    def __init__(self, fn: Callable[[Array, Array], Array]) -> None:
        self.fn = fn if isinstance(fn, StaticFunction) else StaticFunction(fn)

    def cost(self, x: Array, y: Array) -> Array:
        return self.fn(x, y)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Custom) and self.fn == other.fn

    def __hash__(self) -> int:
        return hash(self.fn)

    def __repr__(self) -> str:
        return f"Custom({self.fn.fn!r})"


for _cls in (SqEuclidean, Euclidean, Cosine):
    _register(_cls, meta=("precision",))
_register(PNorm, data=("p",))
jax.tree_util.register_pytree_node(Custom, lambda c: ((), c.fn), lambda fn, _: Custom(fn))


def as_cost(cost: Cost | Callable[[Array, Array], Array] | None) -> Cost:
    """Returns ``cost`` as a :class:`Cost`: ``None`` means :class:`SqEuclidean`, a callable is wrapped.

    Args:
        cost: a :class:`Cost`, a function ``c(x[d], y[d]) -> []``, or ``None``.

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


# ------------------------------------------------------------------------- translation-invariant costs


class TICost(Cost):
    """Translation-invariant cost ``c(x, y) = h(x - y)`` with ``h`` strictly convex.

    Subclasses define :meth:`h` and :meth:`grad_h_star` (the gradient of the convex conjugate ``h*``, the
    inverse of ``grad h``); :meth:`grad_h` defaults to autodiff. These two gradients give the optimal map
    ``T(x) = x - grad h*(grad f(x))`` of an ``h``-concave potential ``f`` (Gangbo & McCann), and the entropic
    map of :func:`ott_fast.maps.entropic_map`.

    Example:
        >>> import dataclasses, jax.numpy as jnp
        >>> @dataclasses.dataclass(frozen=True)
        ... class HalfSq(TICost):  # h(z) = |z|^2 / 2, its own conjugate
        ...     def h(self, z):
        ...         return 0.5 * jnp.sum(z * z)
        ...     def grad_h_star(self, w):
        ...         return w
        >>> c = HalfSq()
        >>> float(c(jnp.zeros(2), jnp.array([1.0, 1.0]))), c.grad_h(jnp.array([2.0, -1.0])).tolist()
        (1.0, [2.0, -1.0])
    """

    translation_invariant = True

    def h(self, z: Array) -> Array:
        """``h(z)`` for ``z[d]``; returns a scalar."""
        raise NotImplementedError

    def grad_h(self, z: Array) -> Array:
        """``grad h(z)`` for ``z[d]``."""
        return jax.grad(self.h)(z)

    def grad_h_star(self, w: Array) -> Array:
        """``grad h*(w)`` for ``w[d]``: the ``z`` with ``grad h(z) = w``."""
        raise NotImplementedError

    def cost(self, x: Array, y: Array) -> Array:
        return self.h(x - y)


def soft_threshold(w: Array, gamma: Any) -> Array:
    """``sign(w) max(|w| - gamma, 0)``, elementwise."""
    return jnp.sign(w) * jnp.maximum(jnp.abs(w) - gamma, 0.0)


@dataclasses.dataclass(frozen=True)
class ElasticL1(TICost):
    """Elastic cost ``h(z) = |z|^2 / 2 + gamma |z|_1`` (``gamma >= 0`` traced; Cuturi, Klein & Ablin, 2023).

    ``grad h(z) = z + gamma sign(z)`` and ``h*(w) = |S_gamma(w)|^2 / 2``, so ``grad h*(w) = S_gamma(w)``,
    the soft-thresholding operator: displacements ``grad h*(.)`` are sparse.

    Example:
        >>> c = ElasticL1(gamma=0.5)
        >>> float(c(jnp.array([1.0, 0.0]), jnp.array([0.0, 0.0])))
        1.0
        >>> c.grad_h_star(jnp.array([1.0, -2.0]))
        Array([ 0.5, -1.5], dtype=float32)

    ``precision`` (static) is that of the squared term's matrix product, as for :class:`SqEuclidean`.
    """

    gamma: Any = 1.0
    precision: Any = HIGHEST

    def h(self, z: Array) -> Array:
        return 0.5 * jnp.sum(z * z) + self.gamma * jnp.sum(jnp.abs(z))

    def grad_h(self, z: Array) -> Array:
        return z + self.gamma * jnp.sign(z)

    def grad_h_star(self, w: Array) -> Array:
        return soft_threshold(w, self.gamma)

    def all_pairs(self, x: Array, y: Array) -> Array:
        sq = SqEuclidean(self.precision).all_pairs(x, y)
        l1 = Cost.all_pairs(_L1(), x, y)
        return 0.5 * sq + self.gamma * l1


@dataclasses.dataclass(frozen=True)
class _L1(Cost):
    def cost(self, x: Array, y: Array) -> Array:
        return jnp.sum(jnp.abs(x - y))


@dataclasses.dataclass(frozen=True)
class TranslationInvariant(TICost):
    """``c(x, y) = h_fn(x - y)`` from user functions (static): ``h_fn(z[d])`` and ``grad_h_star_fn(w[d])``.

    Example:
        >>> c = TranslationInvariant(lambda z: jnp.sum(z**4) / 4 + jnp.sum(z**2) / 2, None)
        >>> float(c(jnp.ones(2), jnp.zeros(2)))
        1.5
    """

    h_fn: Callable[[Array], Array]
    grad_h_star_fn: Callable[[Array], Array] | None = None

    def __post_init__(self) -> None:  # static metadata compared by what the functions compute
        for name in ("h_fn", "grad_h_star_fn"):
            fn = getattr(self, name)
            if fn is not None and not isinstance(fn, StaticFunction):
                object.__setattr__(self, name, StaticFunction(fn))

    def h(self, z: Array) -> Array:
        return self.h_fn(z)

    def grad_h_star(self, w: Array) -> Array:
        if self.grad_h_star_fn is None:
            raise TypeError("grad_h_star_fn: not given; pass grad h* to TranslationInvariant(h_fn, grad_h_star_fn).")
        return self.grad_h_star_fn(w)


_register(ElasticL1, data=("gamma",), meta=("precision",))
_register(_L1)
_register(TranslationInvariant, meta=("h_fn", "grad_h_star_fn"))


def ti_gradients(cost: Cost) -> tuple[Callable[[Array], Array], Callable[[Array], Array]] | None:
    """``(grad h, grad h*)`` of a translation-invariant strictly convex cost ``h(x - y)``, else ``None``.

    Known: :class:`SqEuclidean` (``h = |z|^2``: ``2 z`` and ``w / 2``), :class:`PNorm` with ``p > 1``
    (``h = sum |z_k|^p``: ``p sign(z) |z|^(p-1)`` and ``sign(w) (|w| / p)^(1 / (p-1))``), and any
    :class:`TICost`. :class:`Euclidean` is not strictly convex (``None``).

    Example:
        >>> gh, ghs = ti_gradients(PNorm(3.0))
        >>> ghs(gh(jnp.array([0.5, -2.0])))
        Array([ 0.5, -2. ], dtype=float32)
    """
    cost = as_cost(cost)
    if isinstance(cost, SqEuclidean):
        return (lambda z: 2.0 * z), (lambda w: 0.5 * w)
    if isinstance(cost, PNorm):
        p = cost.p
        if not isinstance(p, jax.core.Tracer) and not float(p) > 1.0:
            raise ValueError(f"cost: PNorm(p) needs p > 1 for a strictly convex h, got p={float(p)}.")

        def grad_h(z: Array) -> Array:
            return p * jnp.sign(z) * jnp.abs(z) ** (p - 1.0)

        def grad_h_star(w: Array) -> Array:
            return jnp.sign(w) * (jnp.abs(w) / p) ** (1.0 / (p - 1.0))

        return grad_h, grad_h_star
    if isinstance(cost, TICost):
        return cost.grad_h, cost.grad_h_star
    return None
