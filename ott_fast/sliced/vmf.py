"""Reparameterised von Mises-Fisher sampler on the sphere ``S^{d-1}`` (Wood, 1994).

``vMF(mu, kappa)`` has density proportional to ``exp(kappa mu^T x)``. A sample is ``x = H (w, sqrt(1 - w^2) v)``:
``w = mu^T x`` from its 1-D law, ``v`` uniform on ``S^{d-2}`` and ``H`` the Householder reflection taking
``e_1`` to ``mu``. Only ``H`` depends on ``mu``, so gradients flow to the location by reparameterisation
(``w`` does not depend on ``mu``; no gradient is defined with respect to ``kappa``).

- ``d = 3``: ``w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa``, exact inverse-CDF sampling.
- any ``d``: Wood's rejection sampler with a Beta proposal, run on a fixed budget of ``n_proposals`` proposals
  per sample (the first accepted one is kept), so it ``jit``s and ``vmap``s. The acceptance rate is above
  ~0.6 for every ``(d, kappa)``, so with the default budget of 32 the chance that no proposal is accepted is
  below ``1e-12``; in that case the last proposal is used.

Shared with the other sliced modules (package-internal: public names, not in ``__all__``):
:func:`safe_normalize`, :func:`householder_from_e1` and :func:`sample_vmf_cosine`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from ott_fast._validation import as_float_array, check_positive, check_static_int

Array = jax.Array

__all__ = ["sample_vmf", "vmf_mean_resultant_length"]


def safe_normalize(v: Array, axis: int = -1) -> Array:
    """``v / |v|`` along ``axis``, with zero vectors left at zero and finite gradients there (double ``where``).

    Example:
        >>> import jax.numpy as jnp
        >>> [[round(float(t), 4) for t in row] for row in safe_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]]))]
        [[0.6, 0.8], [0.0, 0.0]]
    """
    sq = jnp.sum(v * v, axis=axis, keepdims=True)
    ok = sq > 0
    return jnp.where(ok, v * lax.rsqrt(jnp.where(ok, sq, 1.0)), v)


def householder_from_e1(mu: Array, z: Array) -> Array:
    """Applies the reflection ``H`` with ``H e_1 = mu`` to the rows of ``z[k, d]`` (``H = I`` when ``mu = e_1``)."""
    u = -mu.at[0].add(-1.0)  # e_1 - mu
    sq = jnp.sum(u * u)
    ok = sq > 1e-12 * jnp.ones((), mu.dtype)
    inv = jnp.where(ok, 2.0 / jnp.where(ok, sq, 1.0), 0.0)
    return z - jnp.matmul(z, u, precision=lax.Precision.HIGHEST)[:, None] * (inv * u)[None, :]


def sample_vmf_cosine(key: Array, kappa: Array, d: int, n: int, n_proposals: int, dtype: Any) -> Array:
    """``n`` draws ``[n]`` of ``w = mu^T x`` for ``x ~ vMF(mu, kappa)`` on ``S^{d-1}`` (the part of a sample that
    does not depend on ``mu``): exact inversion for ``d = 3``, Wood's sampler on ``n_proposals`` proposals else."""
    if d == 3:
        u = jax.random.uniform(key, (n,), dtype=dtype)
        w = 1.0 + jnp.log(u + (1.0 - u) * jnp.exp(-2.0 * kappa)) / kappa
        return jnp.clip(w, -1.0, 1.0)
    dm1 = jnp.asarray(d - 1, dtype)
    b = dm1 / (2.0 * kappa + jnp.sqrt(4.0 * kappa**2 + dm1**2))  # Wood's b, in its cancellation-free form
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + dm1 * jnp.log(1.0 - x0**2)
    kz, ku = jax.random.split(key)
    z = jax.random.beta(kz, dm1 / 2.0, dm1 / 2.0, (n_proposals, n), dtype=dtype)
    u = jax.random.uniform(ku, (n_proposals, n), dtype=dtype)
    w = (1.0 - (1.0 + b) * z) / (1.0 - (1.0 - b) * z)
    accept = kappa * w + dm1 * jnp.log1p(-x0 * w) - c >= jnp.log(u)
    first = jnp.where(jnp.any(accept, axis=0), jnp.argmax(accept, axis=0), n_proposals - 1)
    return jnp.clip(jnp.take_along_axis(w, first[None, :], axis=0)[0], -1.0, 1.0)


def sample_vmf(key: Array, mu: Any, kappa: Any, n: int, *, n_proposals: int = 32) -> Array:
    """``n`` samples ``[n, d]`` of ``vMF(mu, kappa)``, differentiable in ``mu`` (reparameterised).

    Args:
        key: a ``jax.random`` key.  mu: ``[d]`` location (normalised here; ``d >= 2``).
        kappa: concentration ``> 0`` (traced).  n: number of samples (static).
        n_proposals: rejection budget per sample for ``d != 3`` (static).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from ott_fast.sliced.vmf import sample_vmf
        >>> s = sample_vmf(jax.random.PRNGKey(0), jnp.array([0.0, 0.0, 1.0]), 50.0, 1000)
        >>> s.shape, bool(jnp.allclose(jnp.linalg.norm(s, axis=1), 1.0, atol=1e-5))
        ((1000, 3), True)
    """
    mu = as_float_array("mu", mu)
    if mu.ndim != 1 or mu.shape[0] < 2:
        raise ValueError(f"mu: expected a location of shape [d] with d >= 2, got shape {mu.shape}.")
    check_positive("kappa", kappa)
    n = check_static_int("n", n)
    n_proposals = check_static_int("n_proposals", n_proposals)
    dtype = mu.dtype
    d = mu.shape[0]
    kappa = jnp.asarray(kappa, dtype)
    kw, kv = jax.random.split(key)
    w = sample_vmf_cosine(kw, kappa, d, n, n_proposals, dtype)
    v = safe_normalize(jax.random.normal(kv, (n, d - 1), dtype=dtype))
    z = jnp.concatenate([w[:, None], jnp.sqrt(jnp.clip(1.0 - w * w, 0.0))[:, None] * v], axis=1)
    return householder_from_e1(safe_normalize(mu), z)


def vmf_mean_resultant_length(kappa: Any, d: int) -> Array:
    """``A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T x]`` for ``x ~ vMF(mu, kappa)`` on ``S^{d-1}``.

    Computed by a continued fraction (Gauss), stable for any ``kappa > 0`` in float32.

    Example:
        >>> from ott_fast.sliced.vmf import vmf_mean_resultant_length
        >>> round(float(vmf_mean_resultant_length(10.0, 3)), 4)  # coth(10) - 1/10
        0.9
    """
    kappa = jnp.asarray(kappa)
    if not jnp.issubdtype(kappa.dtype, jnp.floating):
        kappa = kappa.astype(jnp.float32)
    nu = d / 2.0
    # I_nu / I_{nu-1} = 1 / (2 nu / k + 1 / (2 (nu + 1) / k + 1 / (...))), evaluated bottom-up.
    acc = jnp.zeros_like(kappa)
    for j in range(200, -1, -1):
        acc = 1.0 / (2.0 * (nu + j) / kappa + acc)
    return acc
