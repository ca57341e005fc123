"""Sliced Wasserstein with optimised projections: Max-SW, DSW (Nguyen et al., ICLR 2021) and v-DSW
(von Mises-Fisher DSW, Nguyen, Nguyen & Ho, ICML 2023).

Each searches its projecting distribution by projected gradient ascent with an optax optimiser, for a fixed
number of steps (a ``lax.scan``: it ``jit``s and ``vmap``s, one key per problem). The search runs on
``stop_gradient`` copies of the clouds; the returned ``value`` is then re-evaluated at the found (frozen)
projection, so its gradient in ``x``, ``y`` is the envelope-theorem gradient of the max, at the cost of one
evaluation. All return ``SW_p^p``-type values (``root=True``: the ``p``-th root, zero gradient at 0).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from ott_fast._validation import check_positive, check_static_int
from ott_fast.sliced.vmf import safe_normalize, sample_vmf
from ott_fast.sliced.wasserstein import (
    check_p,
    directions,
    prepare_measures,
    project,
    safe_root,
    wasserstein_1d_rows,
)

Array = jax.Array

__all__ = [
    "ProjectionSearchOutput",
    "max_sliced_wasserstein",
    "distributional_sliced_wasserstein",
    "vmf_sliced_wasserstein",
    "vmf_distributional_sliced_wasserstein",
]


class ProjectionSearchOutput(NamedTuple):
    """Result of a projection search.

    Attributes:
        value: the objective at the found projection (``W_p^p(theta)`` for Max-SW, ``E W_p^p`` over fresh
            draws for DSW and v-DSW), or its root; differentiable in the points (envelope theorem).
        params: the found projection: the direction ``[d]`` (Max-SW), the vMF location ``[d]`` (v-DSW) or the
            linear map ``[d, d]`` of the pushforward ``theta -> W theta / |W theta|`` (DSW).
        history: ``[n_steps]`` the objective at each ascent step (the best restart for Max-SW).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (50, 3))
        >>> out = otf.max_sliced_wasserstein(jax.random.PRNGKey(1), x, x + 1.0, n_steps=20)
        >>> out.params.shape, out.history.shape, bool(out.value >= out.history[0] - 1e-5)
        ((3,), (20,), True)
    """

    value: Array
    params: Array
    history: Array


def _tangent(g: Array, theta: Array) -> Array:
    return g - jnp.sum(g * theta, axis=-1, keepdims=True) * theta


def _ascent(
    objective: Any, params: Array, opt: optax.GradientTransformation, n_steps: int, key: Array, project: Any
) -> tuple[Array, Array]:
    """``n_steps`` of ``params <- project(params + opt(grad objective))``; objective(params, key) is maximised."""

    def step(carry: tuple[Array, Any], k: Array) -> tuple[tuple[Array, Any], Array]:
        prm, st = carry
        val, g = jax.value_and_grad(objective)(prm, k)
        if prm.ndim == 1:
            g = _tangent(g, prm)  # Riemannian gradient on the sphere
        upd, st = opt.update(-g, st, prm)  # optax minimises
        return (project(optax.apply_updates(prm, upd)), st), val

    (params, _), hist = lax.scan(step, (params, opt.init(params)), jax.random.split(key, n_steps))
    return params, hist


def _optimizer(optimizer: optax.GradientTransformation | None, learning_rate: Any) -> optax.GradientTransformation:
    return optax.adam(learning_rate) if optimizer is None else optimizer


def _check_steps(n_steps: int, n_restarts: int = 1) -> None:
    check_static_int("n_steps", n_steps)
    check_static_int("n_restarts", n_restarts)


def max_sliced_wasserstein(
    key: Array,
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    p: Any = 2,
    n_steps: int = 100,
    n_restarts: int = 4,
    learning_rate: Any = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    root: bool = False,
) -> ProjectionSearchOutput:
    """Max-SW: ``max_theta W_p^p(theta # mu, theta # nu)`` by Riemannian gradient ascent with restarts.

    ``n_restarts`` random starts (``vmap``-ed) each take ``n_steps`` optax steps (default Adam with the traced
    ``learning_rate``) on the sphere; the best final direction wins. The landscape has local maxima, so the
    result is a lower bound of the true Max-SW.

    Args:
        key: a PRNG key (the random starts).
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        p: the ground cost's power.  n_steps: ascent steps (static).  n_restarts: random starts (static).
        learning_rate, optimizer: Adam at ``learning_rate`` unless an optax ``optimizer`` is given.
        root: return ``value ** (1 / p)`` (finite gradient at ``x == y``).

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (200, 3)) * jnp.array([1.0, 0.1, 0.1])
        >>> out = otf.max_sliced_wasserstein(jax.random.PRNGKey(1), x, 2.0 * x)
        >>> round(abs(float(out.params[0])), 2)  # the direction of largest spread
        1.0
    """
    _check_steps(n_steps, n_restarts)
    check_p(p)
    x, y, a, b = prepare_measures(x, y, a, b)
    xs, ys = lax.stop_gradient(x), lax.stop_gradient(y)
    opt = _optimizer(optimizer, learning_rate)
    k0, k1 = jax.random.split(key)

    def objective(theta: Array, _: Array) -> Array:
        return wasserstein_1d_rows(project(theta, xs)[None], project(theta, ys)[None], a, b, p)[0]

    run = jax.vmap(lambda th, k: _ascent(objective, th, opt, n_steps, k, safe_normalize))
    thetas, hists = run(directions(k0, n_restarts, x.shape[1], "mc", x.dtype), jax.random.split(k1, n_restarts))
    finals = wasserstein_1d_rows(project(thetas, xs), project(thetas, ys), a, b, p)
    best = jnp.argmax(finals)
    theta = lax.stop_gradient(thetas[best])
    value = wasserstein_1d_rows(project(theta, x)[None], project(theta, y)[None], a, b, p)[0]
    return ProjectionSearchOutput(safe_root(value, p) if root else value, theta, hists[best])


def _pushforward(w: Array, theta: Array) -> Array:
    return safe_normalize(project(theta, w))


def distributional_sliced_wasserstein(
    key: Array,
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    n_projections: int,
    p: Any = 2,
    regularization: Any = 1.0,
    n_steps: int = 50,
    learning_rate: Any = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    root: bool = False,
) -> ProjectionSearchOutput:
    """DSW (Nguyen et al., ICLR 2021): ``max_sigma E_{theta ~ sigma} W_p^p`` over pushforwards of the uniform
    measure by ``f_W(theta) = W theta / |W theta|``, with the Lagrangian penalty
    ``regularization * E_{theta, theta'} |f(theta)^T f(theta')|`` keeping the directions spread.

    ``W`` starts at the identity (the uniform measure, i.e. SW) and takes ``n_steps`` ascent steps, each on
    ``n_projections`` fresh directions. ``value`` is ``E W_p^p`` (no penalty) on fresh directions.

    Args:
        key: a PRNG key (the search's and the evaluation's directions).
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        n_projections: directions per step and for the value (static).  p: the ground cost's power.
        regularization: weight of the spread penalty.  n_steps: ascent steps (static).
        learning_rate, optimizer: Adam at ``learning_rate`` unless an optax ``optimizer`` is given.
        root: return ``value ** (1 / p)`` (finite gradient at ``x == y``).

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (100, 3))
        >>> key = jax.random.PRNGKey(1)
        >>> dsw = otf.distributional_sliced_wasserstein(key, x, x + 1.0, n_projections=50).value
        >>> sw = otf.sliced_wasserstein(key, x, x + 1.0, n_projections=50)
        >>> bool(dsw > sw)
        True
    """
    _check_steps(n_steps)
    check_p(p)
    x, y, a, b = prepare_measures(x, y, a, b)
    xs, ys = lax.stop_gradient(x), lax.stop_gradient(y)
    d = x.shape[1]
    opt = _optimizer(optimizer, learning_rate)
    k_search, k_eval = jax.random.split(key)

    def objective(w: Array, k: Array) -> Array:
        th = _pushforward(w, directions(k, n_projections, d, "mc", x.dtype))
        spread = jnp.mean(jnp.abs(project(th, th)))
        return jnp.mean(wasserstein_1d_rows(project(th, xs), project(th, ys), a, b, p)) - regularization * spread

    w, hist = _ascent(objective, jnp.eye(d, dtype=x.dtype), opt, n_steps, k_search, lambda v: v)
    w = lax.stop_gradient(w)
    th = _pushforward(w, directions(k_eval, n_projections, d, "mc", x.dtype))
    value = jnp.mean(wasserstein_1d_rows(project(th, x), project(th, y), a, b, p))
    return ProjectionSearchOutput(safe_root(value, p) if root else value, w, hist)


def vmf_sliced_wasserstein(
    key: Array,
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    location: Any,
    kappa: Any,
    n_projections: int,
    p: Any = 2,
    root: bool = False,
) -> Array:
    """``E_{theta ~ vMF(location, kappa)} W_p^p``, estimated on ``n_projections`` reparameterised draws.

    Differentiable in the points and in ``location`` (the v-DSW inner objective; the amortized model feeds
    its output here).

    Args:
        key: a PRNG key (the vMF draws).
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        location: ``[d]`` the vMF mean direction (unit norm).  kappa: its concentration (``> 0``).
        n_projections: draws (static).  p: the ground cost's power.
        root: return ``value ** (1 / p)`` (finite gradient at ``x == y``).

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (100, 3))
        >>> e1 = jnp.array([1.0, 0.0, 0.0])
        >>> v = otf.vmf_sliced_wasserstein(jax.random.PRNGKey(1), x, x + e1, location=e1, kappa=100.0, n_projections=64)
        >>> round(float(v), 1)
        1.0
    """
    check_p(p)
    check_positive("kappa", kappa)
    x, y, a, b = prepare_measures(x, y, a, b)
    th = sample_vmf(key, jnp.asarray(location, x.dtype), kappa, n_projections)
    value = jnp.mean(wasserstein_1d_rows(project(th, x), project(th, y), a, b, p))
    return safe_root(value, p) if root else value


def vmf_distributional_sliced_wasserstein(
    key: Array,
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    kappa: Any,
    n_projections: int,
    p: Any = 2,
    n_steps: int = 50,
    learning_rate: Any = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    location: Any = None,
    root: bool = False,
) -> ProjectionSearchOutput:
    """v-DSW: ``max_epsilon E_{theta ~ vMF(epsilon, kappa)} W_p^p`` by ascent on the location ``epsilon``.

    The location starts at ``location`` (e.g. the previous solution, to warm start a training loop) or at
    a random direction, and takes ``n_steps`` Riemannian optax steps, each on ``n_projections`` fresh
    reparameterised vMF draws. ``value`` is the objective at the found location on fresh draws.

    Args:
        key: a PRNG key (the start and the draws).
        x, y: ``[n, d]``, ``[m, d]`` points.  a, b: ``[n]``, ``[m]`` weights, uniform if ``None``.
        kappa: the vMF concentration (``> 0``).  n_projections: draws per step and for the value (static).
        p: the ground cost's power.  n_steps: ascent steps (static).
        learning_rate, optimizer: Adam at ``learning_rate`` unless an optax ``optimizer`` is given.
        location: ``[d]`` starting location, or ``None`` for a random one.
        root: return ``value ** (1 / p)`` (finite gradient at ``x == y``).

    Example:
        >>> import jax, jax.numpy as jnp, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (200, 3)) * jnp.array([1.0, 0.1, 0.1])
        >>> out = otf.vmf_distributional_sliced_wasserstein(
        ...     jax.random.PRNGKey(1), x, 2.0 * x, kappa=50.0, n_projections=32, n_steps=100)
        >>> round(abs(float(out.params[0])), 1)
        1.0
    """
    _check_steps(n_steps)
    check_p(p)
    check_positive("kappa", kappa)
    x, y, a, b = prepare_measures(x, y, a, b)
    xs, ys = lax.stop_gradient(x), lax.stop_gradient(y)
    opt = _optimizer(optimizer, learning_rate)
    k0, k_search, k_eval = jax.random.split(key, 3)
    if location is None:
        eps0 = directions(k0, 1, x.shape[1], "mc", x.dtype)[0]
    else:
        eps0 = safe_normalize(jnp.asarray(location, x.dtype))

    def objective(eps: Array, k: Array) -> Array:
        th = sample_vmf(k, eps, kappa, n_projections)
        return jnp.mean(wasserstein_1d_rows(project(th, xs), project(th, ys), a, b, p))

    eps, hist = _ascent(objective, eps0, opt, n_steps, k_search, safe_normalize)
    eps = lax.stop_gradient(eps)
    th = sample_vmf(k_eval, eps, kappa, n_projections)
    value = jnp.mean(wasserstein_1d_rows(project(th, x), project(th, y), a, b, p))
    return ProjectionSearchOutput(safe_root(value, p) if root else value, eps, hist)
