"""Transport maps: the entropic map (Pooladian & Niles-Weed, 2021) and a small functional MLP.

The entropic map of a Sinkhorn solution between ``(x, a)`` and ``(y, b)`` extends its potential ``g`` to
any point: ``f(x) = -eps log sum_j b_j exp((g_j - c(x, y_j)) / eps)``, and for a translation-invariant cost
``c(x, y) = h(x - y)`` with ``h`` strictly convex, ``T(x) = x - grad h*(grad f(x))`` with
``grad f(x) = sum_j w_j(x) grad h(x - y_j)``, ``w(x) = softmax_j(log b_j + (g_j - c(x, y_j)) / eps)``.
For the squared Euclidean cost this is the barycentric projection ``sum_j w_j(x) y_j``; for costs without
``grad h*`` (Euclidean, user functions) the barycentric projection is returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ott_fast.costs import HIGHEST, Cost, SqEuclidean, ti_gradients
from ott_fast.entropic.sinkhorn import sinkhorn
from ott_fast.geometry import PointCloud, RelativeEpsilon, log_block

Array = jax.Array

__all__ = ["EntropicMap", "entropic_map", "MLP"]

_MAP_BLOCK = 1024  # query points processed at once (see EntropicMap.block_size)


class EntropicMap(NamedTuple):
    """The entropic map of a Sinkhorn solution; call it on points ``x[k, d] -> [k, d]`` (or ``x[d]``).

    Attributes:
        y: ``[m, d]`` target points.  g: ``[m]`` their potential.  log_b: ``[m]`` log target weights.
        epsilon: ``[]`` absolute epsilon.  cost: the ground cost.
        converged: ``[]`` bool, whether the Sinkhorn solve that gave ``g`` converged; the map's values are
            NaN where it did not (the status rule of every value derived from a solve).
        shift: ``[d]`` the common shift the solve centred both clouds by (translation-invariant costs), or
            ``None``: costs to new points are formed from centred points too, so the map stays accurate
            far from the origin.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (128, 2))
        >>> T = otf.entropic_map(x, x + 2.0, epsilon=0.05)  # the optimal map is the translation by 2
        >>> Tx = T(x[:4])
        >>> Tx.shape, bool(jax.numpy.abs(Tx - x[:4] - 2.0).max() < 0.3)
        ((4, 2), True)
    """

    y: Array
    g: Array
    log_b: Array
    epsilon: Array
    cost: Cost
    converged: Array
    shift: Array | None = None

    def weights(self, x: Array) -> Array:
        """``w[k, m]``: the entropic conditional plan ``softmax_j(log b_j + (g_j - c(x, y_j)) / eps)``."""
        x0, y0 = (x, self.y) if self.shift is None else (x - self.shift, self.y - self.shift)
        inv = 1.0 / self.epsilon
        z = log_block(self.cost.all_pairs(x0, y0), jnp.zeros(x.shape[:1], x.dtype), self.g * inv + self.log_b, inv)
        return jax.nn.softmax(z, axis=-1)

    def _apply_block(self, x: Array) -> Array:
        w = self.weights(x)
        grads = None if isinstance(self.cost, SqEuclidean) else ti_gradients(self.cost)
        if grads is None:  # barycentric projection (exact form for the squared Euclidean cost)
            return jnp.matmul(w, self.y, precision=HIGHEST)
        grad_h, grad_h_star = grads
        dh = jax.vmap(jax.vmap(grad_h))(x[:, None, :] - self.y[None, :, :])  # [k, m, d]
        return x - jax.vmap(grad_h_star)(jnp.einsum("km,kmd->kd", w, dh, precision=HIGHEST))

    def __call__(self, x: Any) -> Array:
        x = jnp.asarray(x)
        if x.ndim == 1:
            return self(x[None])[0]
        x = x.astype(self.y.dtype)
        block = self.block_size
        if x.shape[0] <= block:
            out = self._apply_block(x)
        else:
            out = jax.lax.map(lambda xi: self._apply_block(xi[None])[0], x, batch_size=block)
        # The status rule of every value derived from a solve: NaN where the solve did not converge.
        return jnp.where(self.converged, out, jnp.nan)

    @property
    def block_size(self) -> int:
        """Query points mapped at once: 1024 for the squared Euclidean cost (temporaries ``~ block m``
        entries), fewer for other costs, whose ``[block, m, d]`` gradients ``grad h(x - y_j)`` and their
        weighted products are held together: ``block m d <= 2**21`` entries, so the map's temporary memory is
        at most about ``3 block m d <= 3 * 2**21`` entries (24 MB of float32), whatever the number of queries."""
        m, d = self.y.shape
        if isinstance(self.cost, SqEuclidean):
            return _MAP_BLOCK
        return max(1, min(_MAP_BLOCK, (1 << 21) // (m * d)))


def entropic_map(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    cost: Cost | Any = None,
    epsilon: Any,
    relative_epsilon: RelativeEpsilon = None,
    **solver_kwargs: Any,
) -> EntropicMap:
    """Entropic map estimator from ``(x[n, d], a)`` to ``(y[m, d], b)`` (Pooladian & Niles-Weed, 2021).

    Solves entropic OT with :func:`~ott_fast.sinkhorn` and extends its target potential to any point (see
    the module docstring): ``T(x) = x - grad h*(sum_j w_j(x) grad h(x - y_j))`` for translation-invariant
    costs (:class:`~ott_fast.costs.SqEuclidean`, :class:`~ott_fast.costs.PNorm` with ``p > 1``,
    :class:`~ott_fast.costs.ElasticL1`, any :class:`~ott_fast.costs.TICost`), else the barycentric
    projection ``sum_j w_j(x) y_j``. Check ``converged`` on the result.

    Args:
        x, y: ``[n, d]``, ``[m, d]`` samples.  a, b: their weights, uniform if ``None``.
        cost, epsilon, relative_epsilon: as in :class:`~ott_fast.PointCloud`.
        **solver_kwargs: passed to :func:`~ott_fast.sinkhorn`.

    Returns:
        An :class:`EntropicMap` (a pytree: it passes through ``jit``).

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (256, 2))
        >>> T = otf.entropic_map(x, 2.0 * x + 1.0, epsilon=0.1)  # the optimal map is 2 x + 1
        >>> z = jax.random.normal(jax.random.PRNGKey(1), (100, 2))  # new points
        >>> bool(T.converged), bool(jnp.abs(T(z) - (2.0 * z + 1.0)).mean() < 0.3)
        (True, True)
    """
    geom = PointCloud(x, y, cost=cost, epsilon=epsilon, relative_epsilon=relative_epsilon)
    out = sinkhorn(geom, a, b, **solver_kwargs)
    placed = out.geom  # the solve's geometry: its relative epsilon and centring are under a, b
    return EntropicMap(placed.y, out.g, jnp.log(out.b), placed.epsilon, placed.cost, out.converged, placed.shift)


# ---------------------------------------------------------------------------------------------- MLP


@dataclasses.dataclass(frozen=True)
class MLP:
    """A small functional MLP map ``R^d -> R^d``: ``net.init(key, d) -> params``, ``net.apply(params, x)``.

    Args:
        hidden: widths of the hidden layers.
        residual: ``apply(params, x) = x + mlp(x)``; with the last layer initialised to zero the map starts
            as the identity.
        activation: elementwise nonlinearity.
        out_dim: output dimension (``None``: the input's; required to equal it when ``residual``).

    ``params`` is a list of ``{"w": [d_in, d_out], "b": [d_out]}`` dicts (a pytree for optax); ``apply``
    takes ``x[d]`` or ``x[k, d]``. Any other model (Flax, Equinox) works with the fitting functions through
    its own ``apply_fn(params, x)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = MLP(hidden=(16, 16))
        >>> params = net.init(jax.random.PRNGKey(0), 2)
        >>> net.apply(params, jnp.ones((3, 2)))  # residual, zero last layer: the identity at init
        Array([[1., 1.],
               [1., 1.],
               [1., 1.]], dtype=float32)
    """

    hidden: Sequence[int] = (64, 64)
    residual: bool = True
    activation: Callable[[Array], Array] = jax.nn.gelu
    out_dim: int | None = None

    def init(self, key: Array, in_dim: int, dtype: Any = jnp.float32) -> list[dict[str, Array]]:
        """Parameters for inputs of dimension ``in_dim``: LeCun-normal weights, zero biases, zero last layer
        when ``residual`` (so the map starts as the identity)."""
        out_dim = in_dim if self.out_dim is None else int(self.out_dim)
        if self.residual and out_dim != in_dim:
            raise ValueError(f"out_dim: a residual map needs out_dim == in_dim, got {out_dim} and {in_dim}.")
        sizes = [int(in_dim), *(int(h) for h in self.hidden), out_dim]
        keys = jax.random.split(key, len(sizes) - 1)
        params = []
        for i, (k, d_in, d_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            w = jax.random.normal(k, (d_in, d_out), dtype) / jnp.sqrt(jnp.asarray(d_in, dtype))
            if last and self.residual:
                w = jnp.zeros_like(w)
            params.append({"w": w, "b": jnp.zeros((d_out,), dtype)})
        return params

    def apply(self, params: list[dict[str, Array]], x: Any) -> Array:
        """The map at ``x[d]`` or ``x[k, d]``."""
        x = jnp.asarray(x)
        z = x
        for layer in params[:-1]:
            z = self.activation(jnp.matmul(z, layer["w"], precision=HIGHEST) + layer["b"])
        z = jnp.matmul(z, params[-1]["w"], precision=HIGHEST) + params[-1]["b"]
        return x + z if self.residual else z

    def __call__(self, params: list[dict[str, Array]], x: Any) -> Array:
        return self.apply(params, x)
