"""Self-attention amortized v-DSW (Nguyen, Nguyen & Ho, ICML 2023): a model maps two clouds to a vMF location.

The model (functional: ``params`` is a dict of arrays, no NN framework) applies one shared attention block
to each cloud, pools each over its points and averages the two:

``A(Z) = Attn(Z W_q + b_q, Z W_k + b_k, Z W_v + b_v)``,  ``epsilon = normalise((a^T A(X) + b^T A(Y)) / 2)``

(as in the authors' code: no residual, values in ``R^d``; the pooling is weighted by ``a``, ``b``, the plain
mean for uniform weights). Attention is permutation-equivariant and the pooling invariant, so ``epsilon`` is
invariant to permutations of each cloud, and the average makes it symmetric in the two clouds.
``attention="full"`` is softmax attention (``O(n^2)``); ``attention="efficient"`` (default) is the
linear-complexity variant of Shen et al. (2021) used in the paper,
``softmax_features(Q) (softmax_points(K)^T V)``, ``O(n h d)``.

The model is trained by ascent on :func:`~ott_fast.vmf_sliced_wasserstein` at its output location (with the
clouds frozen, as the authors detach them), in turn with the descent step of the model being fitted (a
min-max game); see ``examples/sliced_autoencoder.ipynb``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ott_fast.sliced.vmf import safe_normalize
from ott_fast.sliced.wasserstein import prepare_measures


def _mm(p: Array, q: Array) -> Array:
    """A matrix product at full float32 precision (independent of the accelerator's default)."""
    return jnp.matmul(p, q, precision=jax.lax.Precision.HIGHEST)


Array = jax.Array

__all__ = ["init_amortized", "apply_amortized"]

ATTENTION = ("efficient", "full")


def init_amortized(key: Array, d: int, hidden: int = 16, dtype: Any = jnp.float32) -> dict[str, Array]:
    """Parameters of the attention block: ``wq``, ``wk`` ``[d, h]``, ``wv`` ``[d, d]`` (scaled Gaussians) and
    biases ``bq``, ``bk`` ``[h]``, ``bv`` ``[d]`` (zeros).

    Args:
        key: a PRNG key (the weights' draws).  d: the points' dimension.
        hidden: ``h``, the width of the query and key projections.  dtype: the parameters' dtype.

    Example:
        >>> import jax, ott_fast as otf
        >>> sorted(otf.init_amortized(jax.random.PRNGKey(0), 3))
        ['bk', 'bq', 'bv', 'wk', 'wq', 'wv']
    """
    kq, kk, kv = jax.random.split(key, 3)
    s = 1.0 / jnp.sqrt(jnp.asarray(d, dtype))
    return {
        "wq": s * jax.random.normal(kq, (d, hidden), dtype),
        "wk": s * jax.random.normal(kk, (d, hidden), dtype),
        "wv": s * jax.random.normal(kv, (d, d), dtype),
        "bq": jnp.zeros((hidden,), dtype),
        "bk": jnp.zeros((hidden,), dtype),
        "bv": jnp.zeros((d,), dtype),
    }


def _attention(params: dict[str, Array], z: Array, kind: str) -> Array:
    q, k, v = (_mm(z, params["w" + c]) + params["b" + c] for c in "qkv")
    if kind == "full":
        return _mm(jax.nn.softmax(_mm(q, k.T) / jnp.sqrt(jnp.asarray(q.shape[1], z.dtype)), axis=1), v)
    # Efficient attention: features of each query normalised over the hidden axis, keys over the points.
    return _mm(jax.nn.softmax(q, axis=1), _mm(jax.nn.softmax(k, axis=0).T, v))


def apply_amortized(
    params: dict[str, Array], x: Any, y: Any, a: Any = None, b: Any = None, *, attention: str = "efficient"
) -> Array:
    """The vMF location ``epsilon[d]`` (unit norm) predicted for the clouds ``x[n, d]``, ``y[m, d]``.

    Args:
        params: from :func:`init_amortized`.
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights (the pooling's), uniform if ``None``.
        attention: ``"efficient"`` (linear in the number of points) or ``"full"`` (softmax attention).

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> params = otf.init_amortized(jax.random.PRNGKey(0), 3)
        >>> x, y = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 3))
        >>> bool(jnp.allclose(otf.apply_amortized(params, x, y), otf.apply_amortized(params, y, x), atol=1e-6))
        True
    """
    if attention not in ATTENTION:
        raise ValueError(f"attention: expected one of {ATTENTION}, got {attention!r}.")
    x, y, a, b = prepare_measures(x, y, a, b)
    n, m = x.shape[0], y.shape[0]
    a = jnp.full((n,), 1.0 / n, x.dtype) if a is None else a
    b = jnp.full((m,), 1.0 / m, x.dtype) if b is None else b
    pooled = _mm(a, _attention(params, x, attention)) + _mm(b, _attention(params, y, attention))
    return safe_normalize(0.5 * pooled)
