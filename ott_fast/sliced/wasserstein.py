"""Sliced Wasserstein: 1-D optimal transport by sorting, projection directions, and Monte Carlo estimators.

``SW_p^p(mu, nu) = E_{theta ~ U(S^{d-1})} W_p^p(theta # mu, theta # nu)``, estimated from ``L`` directions:

- directions: ``"mc"`` (i.i.d. uniform on the sphere), ``"qmc"`` (``d = 3``: a spiral point set with one
  uniformly random rotation per estimate, Nguyen et al., ICLR 2024), ``"orthogonal"`` (blocks of random
  orthonormal bases, any ``d``), or a user-given ``[L, d]`` array. Every generated set has uniform marginals,
  so each estimator below is unbiased for ``SW_p^p`` whatever the set (up to the control variates' ``O(1/L)``
  coefficient bias, see below). ``"random_path"`` (Nguyen, Zhang, Le & Ho, ICML 2024, arXiv 2401.15889) is the
  exception: its directions depend on the measures (:func:`random_path_directions`), and the estimate is then of
  the random-path sliced Wasserstein ``RPSW_p^p``, a different quantity.
- estimators: ``"mc"`` (the mean over directions) and the two Gaussian-approximation control variates of
  Nguyen & Ho (ICLR 2024, arXiv 2305.00402), ``p = 2`` only: ``"cv_lower"`` with
  ``C(theta) = (theta^T dm)^2`` and ``"cv_upper"`` with ``C(theta) = (theta^T dm)^2 + theta^T (S_x + S_y) theta``,
  whose expectations over the sphere are ``|dm|^2 / d`` and ``(|dm|^2 + tr S_x + tr S_y) / d``.

The 1-D problems are solved by sorting the ``[L, n]`` matrix of projections (one matmul) along its last
axis. Float keys are sorted as order-preserving ``int32``/``int64`` bit patterns, which XLA sorts several
times faster than floats; the permutation (needed for gradients and weights) is computed only where needed.

Shared with the other sliced modules (package-internal: public names, not in ``__all__``): :func:`project`,
:func:`safe_root`, :func:`check_p`, :func:`prepare_measures`, :func:`wasserstein_1d_rows` and
:func:`resolve_directions`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ott_fast._validation import (
    as_float_array,
    check_finite,
    check_points,
    check_positive,
    check_static_int,
    check_weights,
    is_concrete,
)
from ott_fast.sliced.vmf import householder_from_e1, safe_normalize, sample_vmf_cosine

# Every product of the sliced estimators (projections, weighted moments) runs at full float32 precision: on
# GPUs the default may be TF32, whose ~1e-3 relative error on a projection would exceed the 1-D errors we test.
HIGHEST = lax.Precision.HIGHEST


def project(theta: Array, x: Array) -> Array:
    """Projections ``theta[L, d] @ x[n, d]^T -> [L, n]``, one matrix product at full float32 precision.

    Example:
        >>> import jax.numpy as jnp
        >>> project(jnp.eye(2), jnp.array([[1.0, 2.0]])).tolist()
        [[1.0], [2.0]]
    """
    return jnp.matmul(theta, x.T, precision=HIGHEST)


Array = jax.Array

__all__ = [
    "wasserstein_1d",
    "sliced_wasserstein",
    "directions",
    "control_variates",
    "spiral_directions",
    "random_orthogonal",
    "random_path_directions",
]

DIRECTIONS = ("mc", "qmc", "orthogonal")
ESTIMATORS = ("mc", "cv_lower", "cv_upper")
PERTURBATIONS = ("power_spherical", "vmf")


# ----------------------------------------------------------------------------------------------- sorting


def _sort_key(u: Array) -> Array:
    """Integer bit patterns of the floats ``u`` whose integer order is the float order (no NaN)."""
    it = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[u.dtype.itemsize]
    i = lax.bitcast_convert_type(u, it)
    mask = jnp.array(np.iinfo(np.dtype(it)).max, it)
    return jnp.where(i < 0, i ^ mask, i)


def _from_key(k: Array, dtype: Any) -> Array:
    mask = jnp.array(np.iinfo(np.dtype(k.dtype)).max, k.dtype)
    return lax.bitcast_convert_type(jnp.where(k < 0, k ^ mask, k), dtype)


def _argsort_last(u: Array) -> Array:
    """Permutation sorting ``u`` along its last axis (ties in any order)."""
    iota = lax.broadcasted_iota(jnp.int32, u.shape, u.ndim - 1)
    return lax.sort((_sort_key(u), iota), dimension=u.ndim - 1, num_keys=1, is_stable=False)[1]


@jax.custom_jvp
def _sort_last(u: Array) -> Array:
    """``jnp.sort(u, axis=-1)``, through integer keys; its derivative gathers the tangent by the permutation."""
    return _from_key(lax.sort(_sort_key(u), dimension=u.ndim - 1, is_stable=False), u.dtype)


@_sort_last.defjvp
def _sort_last_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (u,), (t,) = primals, tangents
    perm = _argsort_last(u)
    return jnp.take_along_axis(u, perm, axis=-1), jnp.take_along_axis(t, perm, axis=-1)


# ------------------------------------------------------------------------------------------------- 1-D OT


def _cost(diff: Array, p: Any) -> Array:
    if isinstance(p, (int, float)) and p == 2:
        return diff * diff
    if isinstance(p, (int, float)) and p == 1:
        return jnp.abs(diff)
    return jnp.abs(diff) ** p


def _w1d_uniform(u: Array, v: Array, p: Any) -> Array:
    """``W_p^p`` along the last axis of ``u[..., n]``, ``v[..., n]``, uniform weights."""
    return jnp.mean(_cost(_sort_last(u) - _sort_last(v), p), axis=-1)


def _w1d_weighted(u: Array, v: Array, a: Array, b: Array, p: Any) -> Array:
    """``W_p^p`` along the last axis of ``u[..., n]``, ``v[..., m]`` with weights ``a[n]``, ``b[m]`` (sum 1)."""
    n, m = u.shape[-1], v.shape[-1]
    pu, pv = _argsort_last(u), _argsort_last(v)
    us, vs = jnp.take_along_axis(u, pu, axis=-1), jnp.take_along_axis(v, pv, axis=-1)
    cu, cv = jnp.cumsum(a[pu], axis=-1), jnp.cumsum(b[pv], axis=-1)
    cu, cv = cu / cu[..., -1:], cv / cv[..., -1:]  # a float32 cumsum drifts: both end exactly at 1
    levels = jnp.concatenate([cu, cv], axis=-1)  # >= 0, so the order of the float keys is plain
    order = _argsort_last(levels)
    q = jnp.take_along_axis(levels, order, axis=-1)
    delta = jnp.diff(q, axis=-1, prepend=jnp.zeros_like(q[..., :1]))
    from_u = (order < n).astype(jnp.int32)
    # Level k belongs to the atom of u (and of v) that the merged order has reached: the number of levels of
    # u strictly before it. Ties between a level of u and one of v leave an interval of length 0.
    i = jnp.clip(jnp.cumsum(from_u, axis=-1) - from_u, 0, n - 1)
    j = jnp.clip(jnp.cumsum(1 - from_u, axis=-1) - (1 - from_u), 0, m - 1)
    diff = jnp.take_along_axis(us, i, axis=-1) - jnp.take_along_axis(vs, j, axis=-1)
    return jnp.sum(delta * _cost(diff, p), axis=-1)


def check_p(p: Any) -> None:
    """Raises a ``ValueError`` if a concrete power ``p`` (a scalar) is below 1."""
    if is_concrete(p) and not float(np.asarray(p)) >= 1:
        raise ValueError(f"p: must be >= 1, got {float(np.asarray(p))}.")


def _normalise(name: str, w: Any, size: int, dtype: Any) -> Array | None:
    if w is None:
        return None
    w = check_weights(name, w, size, dtype)
    return w / jnp.sum(w)


def wasserstein_1d(u: Any, v: Any, a: Any = None, b: Any = None, *, p: Any = 2) -> Array:
    """``W_p^p`` between the 1-D measures ``(u[n], a[n])`` and ``(v[m], b[m])``, exactly, by their quantiles.

    ``u[n, k]``, ``v[m, k]`` hold ``k`` problems sharing the weights (as in POT's ``ot.wasserstein_1d``).
    Weights are normalised to sum 1 (``None``: uniform). Equal sizes with uniform weights take the fast path
    ``mean |u_(i) - v_(i)|^p``; otherwise the cumulative weights are merged. Differentiable in the points and
    the weights. Returns a scalar (or ``[k]``), the ``p``-th power (no root), in the dtype of the inputs.

    Example:
        >>> import jax.numpy as jnp, ott_fast as otf
        >>> float(otf.wasserstein_1d(jnp.array([0.0, 1.0]), jnp.array([2.0, 3.0, 4.0]), p=1))
        2.5
    """
    u, v = as_float_array("u", u), as_float_array("v", v)
    if u.ndim not in (1, 2) or v.ndim != u.ndim or (u.ndim == 2 and u.shape[1] != v.shape[1]):
        raise ValueError(f"u, v: expected shapes [n] and [m] (or [n, k] and [m, k]), got {u.shape} and {v.shape}.")
    if u.shape[0] == 0 or v.shape[0] == 0:
        raise ValueError(f"u, v: empty measure (shapes {u.shape}, {v.shape}).")
    check_finite("u", u)  # a device array is reduced on its device, not copied to the host
    check_finite("v", v)
    check_p(p)
    dtype = jnp.result_type(u, v)
    u, v = u.astype(dtype).T, v.astype(dtype).T  # [k, n]: sort along the last (contiguous) axis
    a, b = _normalise("a", a, u.shape[-1], dtype), _normalise("b", b, v.shape[-1], dtype)
    return wasserstein_1d_rows(u, v, a, b, p)


def wasserstein_1d_rows(u: Array, v: Array, a: Array | None, b: Array | None, p: Any) -> Array:
    """``W_p^p`` ``[k]`` along the last axis of validated ``u[k, n]``, ``v[k, m]`` (e.g. projections
    ``[L, n]``), with weights ``a[n]``, ``b[m]`` summing to 1 or ``None`` (uniform): the 1-D solver of every
    sliced estimator. Inputs come from :func:`prepare_measures`; no checks here.

    Example:
        >>> import jax.numpy as jnp
        >>> wasserstein_1d_rows(jnp.array([[0.0, 1.0]]), jnp.array([[2.0, 3.0]]), None, None, 1).tolist()
        [2.0]
    """
    if a is None and b is None and u.shape[-1] == v.shape[-1]:
        return _w1d_uniform(u, v, p)
    n, m = u.shape[-1], v.shape[-1]
    a = jnp.full((n,), 1.0 / n, u.dtype) if a is None else a
    b = jnp.full((m,), 1.0 / m, v.dtype) if b is None else b
    return _w1d_weighted(u, v, a, b, p)


# ---------------------------------------------------------------------------------------------- directions


def _float(dtype: Any) -> Any:
    return jax.dtypes.canonicalize_dtype(jnp.float64) if dtype is None else dtype


def random_orthogonal(key: Array, d: int, dtype: Any = None) -> Array:
    """A Haar-random orthogonal matrix ``[d, d]`` (QR of a Gaussian matrix with the signs of ``diag R`` fixed).

    ``dtype``: default float32 (float64 under ``jax_enable_x64``).
    """
    dtype = _float(dtype)
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, d), dtype=dtype))
    return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)[None, :]


def spiral_directions(n: int, dtype: Any = None) -> Array:
    """The spiral point set on ``S^2`` (``[n, 3]``): ``z_i = 1 - (2i - 1)/n``, ``phi_i = 1.8 sqrt(n) arccos z_i``."""
    dtype = _float(dtype)
    i = jnp.arange(1, n + 1, dtype=dtype)
    z = 1.0 - (2.0 * i - 1.0) / n
    phi = jnp.mod(1.8 * jnp.sqrt(jnp.asarray(n, dtype)) * jnp.arccos(z), 2.0 * jnp.pi)
    r = jnp.sqrt(jnp.clip(1.0 - z * z, 0.0))
    return jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi), z], axis=1)


def directions(key: Array, n_projections: int, d: int, kind: str = "mc", dtype: Any = None) -> Array:
    """``[n_projections, d]`` unit directions, each marginally uniform on ``S^{d-1}``.

    ``kind``: ``"mc"`` i.i.d. normalised Gaussians; ``"qmc"`` (``d = 3`` only) the spiral set rotated by one
    random rotation; ``"orthogonal"`` rows of ``ceil(L / d)`` independent random orthonormal bases.
    ``dtype``: default float32 (float64 under ``jax_enable_x64``).

    Args:
        key: a PRNG key (there is no default key).
        n_projections: the number of directions ``L`` (static).  d: the dimension (static).
        kind: ``"mc"``, ``"qmc"`` or ``"orthogonal"``, as above.  dtype: as above.

    Example:
        >>> import jax, ott_fast as otf
        >>> otf.sliced_directions(jax.random.PRNGKey(0), 10, 3, "qmc").shape
        (10, 3)
    """
    if kind not in DIRECTIONS:
        raise ValueError(f"directions: expected one of {DIRECTIONS} or an array [L, d], got {kind!r}.")
    n_projections = check_static_int("n_projections", n_projections)
    dtype = _float(dtype)
    if kind == "mc":
        g = jax.random.normal(key, (n_projections, d), dtype=dtype)
        return g / jnp.linalg.norm(g, axis=1, keepdims=True)
    if kind == "qmc":
        if d != 3:
            raise ValueError(f"directions='qmc' is for d = 3 (the spiral on S^2), got d = {d}; use 'orthogonal'.")
        return jnp.matmul(
            spiral_directions(n_projections, dtype), random_orthogonal(key, 3, dtype).T, precision=HIGHEST
        )
    blocks = -(-n_projections // d)
    qs = jax.vmap(lambda k: random_orthogonal(k, d, dtype))(jax.random.split(key, blocks))
    return qs.reshape(blocks * d, d)[:n_projections]


def _draw_index(key: Array, w: Array | None, size: int, count: int, dtype: Any) -> Array:
    """``count`` i.i.d. indices in ``[0, size)`` with probabilities ``w`` (``None``: uniform), by inverse CDF.

    Inverting the cumulative weights never picks a zero-weight point, and inserting zero-weight points anywhere
    leaves the chosen *points* unchanged (the same uniform draw lands on the same mass).
    """
    w = jnp.full((size,), 1.0 / size, dtype) if w is None else lax.stop_gradient(w)
    cum = jnp.cumsum(w)
    u = jax.random.uniform(key, (count,), dtype=dtype) * cum[-1]
    return jnp.clip(jnp.searchsorted(cum, u, side="right"), 0, size - 1)


def _sample_power_spherical_w(key: Array, kappa: Array, d: int, n: int, dtype: Any) -> Array:
    """``w = mu^T x`` of the power spherical law (De Cao & Aziz, 2020): ``(w+1)/2 ~ Beta((d-1)/2 + kappa, (d-1)/2)``."""
    beta = 0.5 * (d - 1)
    if d == 3:  # Beta(1 + kappa, 1) has the CDF z^(1 + kappa): exact inversion, no gamma sampler to compile
        z = jax.random.uniform(key, (n,), dtype=dtype) ** (1.0 / (1.0 + kappa))
    else:
        z = jax.random.beta(key, beta + kappa, jnp.asarray(beta, dtype), (n,), dtype=dtype)
    return jnp.clip(2.0 * z - 1.0, -1.0, 1.0)


def random_path_directions(
    key: Array,
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    n_projections: int,
    kappa: Any = 50.0,
    perturbation: str = "power_spherical",
) -> Array:
    """Random-path projecting directions ``[L, d]`` (Nguyen, Zhang, Le & Ho, ICML 2024, arXiv 2401.15889).

    Each direction is ``theta_l ~ sigma_kappa(. ; (x_i - y_j) / |x_i - y_j|)`` with ``x_i ~ a``, ``y_j ~ b`` drawn
    independently, and ``sigma_kappa(. ; mu)`` the power spherical law (density ``∝ (1 + mu^T theta)^kappa``, as in
    the authors' code, with ``kappa = 50`` there; ``E mu^T theta = kappa / (kappa + d - 1)``) or the von
    Mises-Fisher law (``∝ exp(kappa mu^T theta)``) around ``mu``; ``kappa=None`` keeps the unperturbed normalised
    differences. A pair of coincident points (``x_i = y_j``) gets a uniform random direction instead.

    Gradients are pathwise: for a fixed key the directions are a smooth function of the chosen ``x_i``, ``y_j``
    (the perturbation is reparameterised through a Householder reflection, as in the authors' code), so a loss
    built on them differentiates through the directions as well; the choice of the pair is discrete and carries no
    gradient with respect to the weights.

    Args:
        key: a ``jax.random`` key.  x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights (``None``:
            uniform; zero-weight points are never chosen).
        n_projections: number ``L`` of directions (static).  kappa: concentration ``> 0`` (traced) or ``None``.
        perturbation: ``"power_spherical"`` or ``"vmf"``.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (100, 3))
        >>> theta = otf.random_path_directions(jax.random.PRNGKey(1), x, x + 2.0, n_projections=64)
        >>> theta.shape, bool(jnp.allclose(jnp.linalg.norm(theta, axis=1), 1.0, atol=1e-5))
        ((64, 3), True)
    """
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation: expected one of {PERTURBATIONS}, got {perturbation!r}.")
    n_projections = check_static_int("n_projections", n_projections)
    if kappa is not None:
        check_positive("kappa", kappa)
    x, y, a, b = prepare_measures(x, y, a, b)
    return _random_path(key, x, y, a, b, int(n_projections), kappa, perturbation)


@partial(jax.jit, static_argnums=(5, 7))
def _random_path(
    key: Array, x: Array, y: Array, a: Array | None, b: Array | None, n: int, kappa: Any, perturbation: str
) -> Array:
    d, dtype = x.shape[1], x.dtype
    ki, kj, kg, kw, kv = jax.random.split(key, 5)
    diff = x[_draw_index(ki, a, x.shape[0], n, dtype)] - y[_draw_index(kj, b, y.shape[0], n, dtype)]
    sq = jnp.sum(diff * diff, axis=1, keepdims=True)
    ok = sq > 0
    fallback = jax.random.normal(kg, (n, d), dtype=dtype)
    mu = jnp.where(ok, diff * lax.rsqrt(jnp.where(ok, sq, 1.0)), safe_normalize(fallback))
    if kappa is None:
        return mu
    kappa = jnp.asarray(kappa, dtype)
    if perturbation == "power_spherical":
        w = _sample_power_spherical_w(kw, kappa, d, n, dtype)
    else:
        w = sample_vmf_cosine(kw, kappa, d, n, 32, dtype)
    v = safe_normalize(jax.random.normal(kv, (n, d - 1), dtype=dtype))
    z = jnp.concatenate([w[:, None], jnp.sqrt(jnp.clip(1.0 - w * w, 0.0))[:, None] * v], axis=1)
    return jax.vmap(lambda m, zz: householder_from_e1(m, zz[None, :])[0])(mu, z)


# ---------------------------------------------------------------------------------------------- estimators


def _moments(x: Array, a: Array | None) -> tuple[Array, Array]:
    """Weighted mean ``[d]`` and trace of the (biased) covariance."""
    if a is None:
        mean = jnp.mean(x, axis=0)
        return mean, jnp.sum(jnp.mean((x - mean) ** 2, axis=0))
    mean = jnp.matmul(a, x, precision=HIGHEST)
    return mean, jnp.sum(jnp.matmul(a, (x - mean) ** 2, precision=HIGHEST))


def _projected_moments(xp: Array, a: Array | None) -> tuple[Array, Array]:
    """Mean and variance ``[L]`` of the projections ``xp[L, n]``."""
    if a is None:
        mean = jnp.mean(xp, axis=-1)
        return mean, jnp.mean((xp - mean[:, None]) ** 2, axis=-1)
    mean = jnp.matmul(xp, a, precision=HIGHEST)
    return mean, jnp.matmul((xp - mean[:, None]) ** 2, a, precision=HIGHEST)


def control_variates(
    theta: Array, x: Array, y: Array, a: Array | None = None, b: Array | None = None, *, kind: str = "cv_upper"
) -> tuple[Array, Array]:
    """The control variate ``C(theta_l)`` ``[L]`` and its closed-form expectation over the uniform sphere.

    ``kind="cv_lower"``: ``C = (theta^T dm)^2`` and ``E C = |dm|^2 / d``; ``kind="cv_upper"``:
    ``C = (theta^T dm)^2 + theta^T S_x theta + theta^T S_y theta`` and ``E C = (|dm|^2 + tr S_x + tr S_y) / d``,
    with ``dm`` the difference of the (weighted) means and ``S`` the biased covariances. They bound the 1-D
    ``W_2^2`` of the Gaussian approximations of the projected measures from below and above.

    Args:
        theta: ``[L, d]`` unit directions.
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        kind: ``"cv_lower"`` or ``"cv_upper"``, as above.

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (50, 3))
        >>> c, ec = otf.sliced_control_variates(jnp.eye(3), x, x + 1.0, kind="cv_lower")
        >>> [round(float(v), 4) for v in c], round(float(ec), 4)
        ([1.0, 1.0, 1.0], 1.0)
    """
    return _control_variates(theta, project(theta, x), project(theta, y), x, y, a, b, kind)


def _control_variates(
    theta: Array, xp: Array, yp: Array, x: Array, y: Array, a: Array | None, b: Array | None, kind: str
) -> tuple[Array, Array]:
    # The mean term is built from the same difference of means as its expectation, so that C and E C stay
    # consistent to rounding (equal means give C = 0 exactly and the estimator falls back to plain MC).
    if kind not in ("cv_lower", "cv_upper"):
        raise ValueError(f"kind: expected 'cv_lower' or 'cv_upper', got {kind!r}.")
    d = x.shape[1]
    (mean_x, tr_x), (mean_y, tr_y) = _moments(x, a), _moments(y, b)
    dm = mean_x - mean_y
    c = jnp.matmul(theta, dm, precision=HIGHEST) ** 2
    ec = jnp.sum(dm * dm) / d
    if kind == "cv_upper":
        vx, vy = _projected_moments(xp, a)[1], _projected_moments(yp, b)[1]
        c = c + vx + vy
        ec = ec + (tr_x + tr_y) / d
    return c, ec


def _cv_estimate(w: Array, c: Array, ec: Array) -> Array:
    """``mean(W) - gamma (mean(C) - E C)`` with ``gamma = cov(W, C) / var(C)`` from the same draws.

    ``gamma`` is wrapped in ``stop_gradient``: it is a variance-minimising *coefficient*, not part of the
    quantity. The estimator is ``SW_2^2 + O(1/L)`` (the coefficient's own estimation error, the usual
    control-variate bias) for any ``gamma``, and with ``gamma`` fixed its gradient
    ``mean(grad W) - gamma (mean(grad C) - grad E C)`` is itself an unbiased control-variate estimate of
    ``grad SW_2^2`` (``E grad C = grad E C``). Differentiating through ``gamma`` would add the terms
    ``-(mean C - E C) grad gamma``, whose expectation is not zero and which only add noise.
    """
    wc, cc = w - jnp.mean(w), c - jnp.mean(c)
    var = jnp.mean(cc * cc)
    ok = var > 1e-30 * jnp.maximum(jnp.mean(c * c), jnp.finfo(c.dtype).tiny)
    gamma = lax.stop_gradient(jnp.where(ok, jnp.mean(wc * cc) / jnp.where(ok, var, 1.0), 0.0))
    return jnp.mean(w) - gamma * (jnp.mean(c) - ec)


def safe_root(value: Array, p: Any) -> Array:
    """``max(value, 0)^(1/p)`` with a finite (zero) gradient at ``value = 0`` (double ``where``)."""
    ok = value > 0
    return jnp.where(ok, jnp.where(ok, value, 1.0) ** (1.0 / p), 0.0)


def prepare_measures(x: Any, y: Any, a: Any, b: Any) -> tuple[Array, Array, Array | None, Array | None]:
    """Validated ``(x[n, d], y[m, d], a[n] | None, b[m] | None)`` in one dtype, weights normalised to sum 1
    (``None`` stays ``None``: uniform). Points and weights are checked by :mod:`ott_fast._validation` (concrete
    device arrays are reduced on their device, not copied to the host)."""
    x, y = check_points("x", x), check_points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: dimensions differ ({x.shape[1]} and {y.shape[1]}).")
    dtype = jnp.result_type(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    return x, y, _normalise("a", a, x.shape[0], dtype), _normalise("b", b, y.shape[0], dtype)


def _generated_or_given(key: Any, dirs: Any, n_projections: int | None, d: int, dtype: Any) -> Array:
    if isinstance(dirs, str):
        if key is None:
            raise TypeError("key: a jax.random key is required to draw directions (there is no default key).")
        if n_projections is None:
            raise ValueError("n_projections: required unless directions is an array [L, d].")
        return directions(key, n_projections, d, dirs, dtype)
    theta = as_float_array("directions", dirs).astype(dtype)
    if theta.ndim != 2 or theta.shape[1] != d or theta.shape[0] == 0:
        raise ValueError(f"directions: expected an array of shape [L, {d}], got {theta.shape}.")
    if n_projections is not None and n_projections != theta.shape[0]:
        raise ValueError(f"n_projections={n_projections} does not match directions of shape {theta.shape}.")
    return theta


def resolve_directions(
    key: Any, dirs: Any, n_projections: int | None, x: Array, y: Array, a: Array | None, b: Array | None, kappa: Any
) -> Array:
    """The directions ``theta[L, d]`` of an estimator: generated (``dirs`` a kind of :func:`directions`), given
    (``dirs`` an ``[L, d]`` array), or drawn along random paths between ``x`` and ``y`` (``"random_path"``)."""
    if isinstance(dirs, str) and dirs == "random_path":
        if key is None:
            raise TypeError("key: a jax.random key is required to draw directions (there is no default key).")
        if n_projections is None:
            raise ValueError("n_projections: required unless directions is an array [L, d].")
        return random_path_directions(key, x, y, a, b, n_projections=n_projections, kappa=kappa)
    return _generated_or_given(key, dirs, n_projections, x.shape[1], x.dtype)


def sliced_wasserstein(
    key: Any,
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    n_projections: int | None = None,
    p: Any = 2,
    directions: str | Any = "mc",
    estimator: str = "mc",
    root: bool = False,
    kappa: Any = 50.0,
) -> Array:
    """Sliced Wasserstein ``SW_p^p`` between ``(x[n, d], a[n])`` and ``(y[m, d], b[m])``, estimated.

    Args:
        key: a ``jax.random`` key for the directions (no default; may be ``None`` for given directions).
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights (normalised; ``None`` uniform).
        n_projections: number ``L`` of directions (static).
        p: the ground cost ``|s - t|^p``, ``p >= 1`` (traced unless a Python number).
        directions: ``"mc"``, ``"qmc"`` (``d = 3``), ``"orthogonal"``, or an ``[L, d]`` array used as given
            (not renormalised, as POT's ``projections``, transposed); ``"random_path"`` draws measure-dependent
            directions (:func:`random_path_directions`, power spherical perturbation of concentration ``kappa``)
            and estimates the random-path ``RPSW_p^p`` instead, with gradients through the directions too.
        estimator: ``"mc"`` (mean over directions), ``"cv_lower"`` or ``"cv_upper"`` (control variates of
            Nguyen & Ho 2024; ``p = 2`` only). The control-variate coefficient is estimated from the same
            directions and does not carry gradients (see :func:`_cv_estimate`); the CV estimate can be
            slightly negative when ``SW`` is ~0.
        root: return ``SW_p = max(estimate, 0)^(1/p)`` (POT's convention) with a zero gradient at ``0``
            instead of ``SW_p^p`` (OTT-JAX's). The root of an unbiased estimate is biased.
        kappa: concentration of ``directions="random_path"`` (ignored otherwise).

    Returns:
        A scalar in the dtype of the inputs.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (500, 3))
        >>> sw = otf.sliced_wasserstein(jax.random.PRNGKey(1), x, x + 1.0, n_projections=200, estimator="cv_upper")
        >>> round(float(sw), 2)  # |(1, 1, 1)|^2 / 3
        1.0
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}.")
    if estimator != "mc" and not (isinstance(p, (int, float)) and p == 2):
        raise ValueError(f"estimator={estimator!r}: the control variates are for p = 2 (a Python number), got p={p}.")
    check_p(p)
    x, y, a, b = prepare_measures(x, y, a, b)
    theta = resolve_directions(key, directions, n_projections, x, y, a, b, kappa)
    xp, yp = project(theta, x), project(theta, y)  # [L, n]: one matmul each, then sort along the contiguous axis
    w = wasserstein_1d_rows(xp, yp, a, b, p)
    if estimator == "mc":
        value = jnp.mean(w)
    else:
        c, ec = _control_variates(theta, xp, yp, x, y, a, b, estimator)
        value = _cv_estimate(w, c, ec)
    return safe_root(value, p) if root else value
