"""Map fitting with the Monge gap, as an optax training loop (Uscidda & Cuturi, ICML 2023).

A map ``T = apply_fn(params, .)`` is fitted by minimising ``fitting_loss(T(x), y) + lambda * M(T)`` over
batches ``x ~ mu``, ``y ~ nu``, where ``M`` is the entropic Monge gap of :func:`~ott_fast.monge_gap` on the
source batch and its image, and the fitting loss is a Sinkhorn divergence by default. The pieces:

- :func:`sinkhorn_loss`: the default fitting loss (debiased Sinkhorn divergence, envelope gradients);
- :func:`make_train_step`: a jitted ``step(state, x, y) -> (state, metrics)`` for your own loop;
- :func:`fit`: ``lax.scan`` over steps in chunks of ``chunk`` steps (compiled once per configuration and
  reused by later calls), a ``tqdm`` progress bar advanced on the host between chunks (never inside the
  compiled loop), the loss history, and the final :class:`FitState` to resume from.

A step whose loss or gradient is not finite (e.g. an inner Sinkhorn solve that did not converge, which
makes the gap NaN) leaves the parameters and optimiser state unchanged: the optimiser runs behind
:func:`optax.apply_if_finite`, and ``metrics["applied"]`` is its ``last_finite``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ott_fast._progress import progress_bar
from ott_fast._validation import check_static_int
from ott_fast.costs import Cost
from ott_fast.entropic.divergence import sinkhorn_divergence
from ott_fast.geometry import RelativeEpsilon
from ott_fast.maps.monge_gap import monge_gap

Array = jax.Array
Sampler = Callable[[Array], Array]

__all__ = ["sinkhorn_loss", "FitState", "make_train_step", "fit", "array_sampler"]


def sinkhorn_loss(
    *,
    epsilon: Any = 0.01,
    relative_epsilon: RelativeEpsilon = "mean",
    cost: Cost | Any = None,
    **solver_kwargs: Any,
) -> Callable[[Array, Array], Array]:
    """The debiased Sinkhorn divergence ``S(Tx, y)`` as a fitting loss ``loss(Tx[n, d], y[m, d]) -> []``.

    :func:`~ott_fast.sinkhorn_divergence` with these options bound: envelope-theorem gradients (exact at
    the optimum, no linear solve), NaN if any of the three solves did not converge (a training step then
    skips the update, see :func:`make_train_step`).

    Args:
        epsilon, relative_epsilon, cost: as in :class:`~ott_fast.PointCloud` (squared Euclidean by default).
        **solver_kwargs: passed to :func:`~ott_fast.sinkhorn`.

    Example:
        >>> import jax, ott_fast as otf
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
        >>> loss = otf.fitting.sinkhorn_loss(epsilon=0.1, relative_epsilon=None)
        >>> bool(loss(x, x + 1.0) == otf.sinkhorn_divergence(x, x + 1.0, epsilon=0.1))
        True
    """

    def loss(tx: Array, y: Array) -> Array:
        return sinkhorn_divergence(
            tx, y, epsilon=epsilon, relative_epsilon=relative_epsilon, cost=cost, **solver_kwargs
        )

    return loss


# The default fitting loss, one object: a fit with the default loss reuses its compiled steps.
_DEFAULT_LOSS = sinkhorn_loss()

# A step is never forced through: optax.apply_if_finite gives up after this many consecutive non-finite steps, and
# its counter saturates at the int32 maximum, so it never does.
_NEVER_GIVE_UP = int(np.iinfo(np.int32).max)


def _guarded(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` behind :func:`optax.apply_if_finite`: a step with a non-finite gradient is not applied."""
    return optax.apply_if_finite(optimizer, max_consecutive_errors=_NEVER_GIVE_UP)


class FitState(NamedTuple):
    """Training state: ``params``, the optimiser state ``opt_state`` and the ``step`` counter (``[]`` int32).

    ``opt_state`` is the state of ``optax.apply_if_finite(optimizer)`` (the guard that skips non-finite steps):
    ``opt_state.last_finite`` says whether the last step was applied, ``opt_state.total_notfinite`` counts the
    skipped steps, and ``opt_state.inner_state`` is the optimiser's own state. A :func:`fit` returns it, and
    ``fit(..., state=state)`` resumes from it (same batches as one uninterrupted run with the same key).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> state = FitState.create({"w": jnp.zeros(3)}, optax.adam(1e-3))
        >>> int(state.step), state.params["w"].shape, bool(state.opt_state.last_finite)
        (0, (3,), True)
    """

    params: Any
    opt_state: Any
    step: Array

    @classmethod
    def create(cls, params: Any, optimizer: optax.GradientTransformation) -> FitState:
        """The state at step 0 (the optimiser's state wrapped by its finite-step guard)."""
        return cls(params, _guarded(optimizer).init(params), jnp.zeros((), jnp.int32))


def _no_gap(gap_weight: Any) -> bool:
    return gap_weight is None or (not callable(gap_weight) and float(gap_weight) == 0.0)


class _StepSpec(NamedTuple):
    """What a training step's program depends on (hashable: the key of the compiled-step cache). Numbers that
    do not change the program (``epsilon``, a constant ``gap_weight``) are traced arguments instead."""

    apply_fn: Callable[[Any, Array], Array]
    optimizer: optax.GradientTransformation
    fitting_loss: Callable[[Array, Array], Array]
    schedule: Callable[[Array], Any] | None  # a gap-weight schedule, or None for a constant weight
    use_gap: bool
    cost: Any
    relative_epsilon: RelativeEpsilon
    gap_kwargs: tuple[tuple[str, Any], ...]


def _spec(
    apply_fn: Callable[[Any, Array], Array],
    optimizer: optax.GradientTransformation,
    fitting_loss: Callable[[Array, Array], Array] | None,
    gap_weight: float | Callable[[Array], Any] | None,
    cost: Any,
    relative_epsilon: RelativeEpsilon,
    gap_kwargs: dict[str, Any] | None,
) -> tuple[_StepSpec, Array]:
    """The static part of a step and its traced constant gap weight (``[]`` float32)."""
    schedule = gap_weight if callable(gap_weight) else None
    weight = jnp.asarray(0.0 if gap_weight is None or schedule is not None else gap_weight, jnp.float32)
    loss = _DEFAULT_LOSS if fitting_loss is None else fitting_loss
    spec = _StepSpec(
        apply_fn, optimizer, loss, schedule, not _no_gap(gap_weight), cost, relative_epsilon,
        tuple(sorted((gap_kwargs or {}).items())),
    )  # fmt: skip
    return spec, weight


def _train_step(
    spec: _StepSpec, state: FitState, x: Array, y: Array, epsilon: Any, weight: Array
) -> tuple[FitState, dict[str, Array]]:
    """One step of :func:`make_train_step` (``weight`` is the constant gap weight when there is no schedule)."""
    if spec.schedule is not None:
        weight = jnp.asarray(spec.schedule(state.step), jnp.float32)
    gap_kwargs = dict(spec.gap_kwargs)

    def loss_fn(params: Any) -> tuple[Array, dict[str, Array]]:
        tx = spec.apply_fn(params, x)
        fit_value = spec.fitting_loss(tx, y)
        if spec.use_gap:
            out = monge_gap(
                x, tx, cost=spec.cost, epsilon=epsilon, relative_epsilon=spec.relative_epsilon, **gap_kwargs
            )
            gap, floor = out.gap, out.floor
            total = fit_value + weight.astype(gap.dtype) * gap
        else:
            gap = floor = jnp.full((), jnp.nan, fit_value.dtype)
            total = fit_value
        return total, {"fitting": fit_value, "gap": gap, "gap_floor": floor}

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    # apply_if_finite looks at the gradient only; a non-finite loss (an unconverged inner solve gives NaN with a
    # zero gradient) is made visible to it, so that the step is skipped too.
    grads = jax.tree_util.tree_map(lambda g: jnp.where(jnp.isfinite(loss), g, jnp.nan), grads)
    updates, opt_state = _guarded(spec.optimizer).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)  # a skipped step's updates are zero
    new = FitState(params, opt_state, state.step + 1)
    return new, {"loss": loss, "weight": weight, "applied": opt_state.last_finite, **aux}


def make_train_step(
    apply_fn: Callable[[Any, Array], Array],
    optimizer: optax.GradientTransformation,
    *,
    fitting_loss: Callable[[Array, Array], Array] | None = None,
    gap_weight: float | Callable[[Array], Any] | None = 1.0,
    cost: Cost | Any = None,
    epsilon: Any = 0.01,
    relative_epsilon: RelativeEpsilon = "mean",
    gap_kwargs: dict[str, Any] | None = None,
    jit: bool = True,
) -> Callable[[FitState, Array, Array], tuple[FitState, dict[str, Array]]]:
    """A training step ``step(state, x[n, d], y[m, d]) -> (state, metrics)`` for the Monge-gap objective.

    The loss is ``fitting_loss(T(x), y) + lambda(step) * monge_gap(x, T(x))`` with ``T(x) =
    apply_fn(params, x)``. A step with a non-finite loss or gradient is not applied: the optimiser runs behind
    :func:`optax.apply_if_finite` (see :class:`FitState`), and the step counter still advances.

    Args:
        apply_fn: the model, ``apply_fn(params, x[n, d]) -> [n, d]`` (e.g. :meth:`ott_fast.maps.MLP.apply`,
            a Flax module's ``apply``, an Equinox model called through a wrapper).
        optimizer: any optax ``GradientTransformation``; the state must come from :meth:`FitState.create`.
        fitting_loss: ``loss(Tx, y) -> []``; default :func:`sinkhorn_loss` (squared Euclidean, epsilon 0.01
            relative to the mean cost).
        gap_weight: ``lambda``: a float, or a schedule ``step -> float`` (an optax schedule works). ``0`` or
            ``None`` drops the gap (it is then not computed, and reported as NaN).
        cost: the cost the map should be optimal for (the gap's cost); squared Euclidean if ``None``.
        epsilon, relative_epsilon: the gap's entropic regularisation (see :func:`~ott_fast.monge_gap`).
        gap_kwargs: extra keyword arguments of :func:`~ott_fast.monge_gap` (solver options).
        jit: return the step jitted (default) or plain (to call it inside your own jitted loop).

    Returns:
        ``step``; ``metrics`` has ``loss``, ``fitting``, ``gap``, ``gap_floor``, ``weight`` (all ``[]``) and
        ``applied`` (``[]`` bool: the guard's ``last_finite``).

    Example:
        >>> import jax, optax, ott_fast as otf
        >>> net = otf.maps.MLP(hidden=(8,))
        >>> opt = optax.adam(1e-3)
        >>> state = otf.fitting.FitState.create(net.init(jax.random.PRNGKey(0), 2), opt)
        >>> step = otf.fitting.make_train_step(net.apply, opt, gap_weight=1.0)
        >>> x = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
        >>> state, metrics = step(state, x, x + 1.0)
        >>> int(state.step), bool(metrics["applied"])
        (1, True)
    """
    spec, weight = _spec(apply_fn, optimizer, fitting_loss, gap_weight, cost, relative_epsilon, gap_kwargs)

    def step(state: FitState, x: Array, y: Array) -> tuple[FitState, dict[str, Array]]:
        return _train_step(spec, state, x, y, epsilon, weight)

    return jax.jit(step) if jit else step


def array_sampler(data: Any, batch_size: int) -> Sampler:
    """A sampler ``key -> data[idx]`` drawing ``batch_size`` rows of ``data[N, d]`` uniformly with replacement.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> sample = array_sampler(jnp.arange(10.0)[:, None], 4)
        >>> sample(jax.random.PRNGKey(0)).shape
        (4, 1)
    """
    data = jnp.asarray(data)
    n = data.shape[0]

    def sample(key: Array) -> Array:
        return data[jax.random.randint(key, (batch_size,), 0, n)]

    return sample


def fit(
    key: Array,
    apply_fn: Callable[[Any, Array], Array],
    params: Any,
    optimizer: optax.GradientTransformation,
    source_sampler: Sampler,
    target_sampler: Sampler,
    *,
    n_steps: int,
    fitting_loss: Callable[[Array, Array], Array] | None = None,
    gap_weight: float | Callable[[Array], Any] | None = 1.0,
    cost: Cost | Any = None,
    epsilon: Any = 0.01,
    relative_epsilon: RelativeEpsilon = "mean",
    gap_kwargs: dict[str, Any] | None = None,
    chunk: int = 100,
    progress: bool = True,
    state: FitState | None = None,
) -> tuple[FitState, dict[str, Any]]:
    """Fits a map ``apply_fn(params, .)`` from ``mu`` to ``nu`` with the Monge-gap objective.

    Runs ``n_steps`` steps of :func:`make_train_step` as a jitted ``lax.scan`` of ``chunk`` steps at a time
    (the last chunk masks the steps past ``n_steps``). The compiled chunk is cached per ``apply_fn``,
    ``optimizer``, samplers, ``fitting_loss``, ``gap_weight`` schedule, ``cost``, ``relative_epsilon``,
    ``gap_kwargs`` and ``chunk`` (compared as objects: pass the same ones again to reuse it); ``key``,
    ``n_steps``, ``epsilon``, a constant ``gap_weight`` and the state are arguments, so a second call with new
    values of those does not retrace. With ``progress``, a ``tqdm`` bar advances after each chunk, on the host,
    with the last step's loss, fitting term, gap and skipped steps; ``progress=False`` is silent. Step ``i``
    (counted from the first step of the first fit) draws ``x = source_sampler(kx)``, ``y = target_sampler(ky)``
    with ``kx, ky = split(fold_in(key, i))``, so results depend neither on ``chunk`` nor on where a fit was
    stopped and resumed.

    Args:
        key: PRNG key for the batches.
        apply_fn, optimizer, fitting_loss, gap_weight, cost, epsilon, relative_epsilon, gap_kwargs: as in
            :func:`make_train_step`.
        params: initial parameters (``None`` when resuming from ``state``).
        source_sampler, target_sampler: jax-traceable ``sampler(key) -> [batch, d]`` (they run inside the
            scan), e.g. :func:`array_sampler`.
        n_steps: number of training steps to run (a static int >= 1; not part of the compiled program).
        chunk: steps per compiled scan (and per progress-bar update; static). The steps of the last chunk past
            ``n_steps`` are masked (skipped at run time), so any ``n_steps`` reuses one compiled chunk.
        progress: show a ``tqdm`` progress bar (default) or nothing.
        state: a :class:`FitState` to resume from (a previous fit's, with the same ``optimizer``): its
            parameters, optimiser state and step counter carry on.

    Returns:
        ``(state, history)``: the final :class:`FitState` (``state.params`` are the fitted parameters; pass
        ``state`` back to resume) and a dict of NumPy arrays ``[n_steps]`` (``loss``, ``fitting``, ``gap``,
        ``gap_floor``, ``weight``, ``applied``), plus ``chunk_seconds`` (wall time of each chunk, the first
        including compilation unless cached) and ``chunk_steps``.

    Example:
        >>> import jax, optax, ott_fast as otf
        >>> net = otf.maps.MLP(hidden=(8,))
        >>> src = lambda k: jax.random.normal(k, (64, 2))
        >>> tgt = lambda k: jax.random.normal(k, (64, 2)) + 1.0
        >>> opt = optax.adam(1e-2)
        >>> state, hist = otf.fit(jax.random.PRNGKey(0), net.apply, net.init(jax.random.PRNGKey(1), 2),
        ...                       opt, src, tgt, n_steps=20, chunk=10, progress=False)
        >>> hist["loss"].shape, int(state.step)
        ((20,), 20)
        >>> state, hist = otf.fit(jax.random.PRNGKey(0), net.apply, None, opt, src, tgt, n_steps=10,
        ...                       chunk=10, progress=False, state=state)  # resumes, reusing the compiled chunk
        >>> int(state.step), hist["loss"].shape
        (30, (10,))
    """
    n_steps = check_static_int("n_steps", n_steps)
    chunk = check_static_int("chunk", chunk)  # not clamped to n_steps: a shorter fit reuses the compiled chunk
    if state is None:
        state = FitState.create(params, optimizer)
    elif params is not None:
        raise ValueError("params: pass the initial params or a state to resume from, not both (params=None).")
    elif not isinstance(state, FitState):
        raise TypeError(f"state: expected a FitState from a previous fit, got {type(state).__name__}.")
    spec, weight = _spec(apply_fn, optimizer, fitting_loss, gap_weight, cost, relative_epsilon, gap_kwargs)
    config = _ChunkConfig(spec, source_sampler, target_sampler, chunk)
    try:
        hash(config)
        run_chunk = functools.partial(_run_chunk, config)
    except TypeError:  # an unhashable option (e.g. an array in gap_kwargs): compiled for this call only
        run_chunk = jax.jit(functools.partial(_run_chunk_impl, config))
    stop = state.step + n_steps
    logs: list[dict[str, np.ndarray]] = []
    seconds, steps = [], []
    done = 0
    with progress_bar(total=n_steps, desc="fit", unit="step", progress=progress) as bar:
        while done < n_steps:
            t0 = time.perf_counter()
            state, metrics = run_chunk(state, key, stop, epsilon, weight)
            metrics = jax.device_get(metrics)  # the chunk has finished: the bar never runs inside it
            seconds.append(time.perf_counter() - t0)
            k = min(chunk, n_steps - done)
            steps.append(k)
            logs.append({name: np.asarray(v)[:k] for name, v in metrics.items()})
            done += k
            last = logs[-1]
            bar.set_postfix(
                loss=f"{float(last['loss'][-1]):.4g}",
                fitting=f"{float(last['fitting'][-1]):.4g}",
                gap=f"{float(last['gap'][-1]):.4g}",
                skipped=int(k - last["applied"].sum()),
                refresh=False,
            )
            bar.update(k)
    history: dict[str, Any] = {name: np.concatenate([lg[name] for lg in logs]) for name in logs[0]}
    history["chunk_seconds"] = np.asarray(seconds)
    history["chunk_steps"] = np.asarray(steps)
    return state, history


class _ChunkConfig(NamedTuple):
    """The static part of a compiled chunk of :func:`fit` (hashable: the cache key)."""

    spec: _StepSpec
    source_sampler: Sampler
    target_sampler: Sampler
    chunk: int


def _run_chunk_impl(
    config: _ChunkConfig, state: FitState, key: Array, stop: Array, epsilon: Any, weight: Array
) -> tuple[FitState, dict[str, Array]]:
    """``config.chunk`` steps of a fit as one ``lax.scan``; steps at or past ``stop`` are masked."""

    def one(st: FitState) -> tuple[FitState, dict[str, Array]]:
        kx, ky = jax.random.split(jax.random.fold_in(key, st.step))
        x, y = config.source_sampler(kx), config.target_sampler(ky)
        return _train_step(config.spec, st, x, y, epsilon, weight)

    shapes = jax.eval_shape(one, state)[1]

    def skip(st: FitState) -> tuple[FitState, dict[str, Array]]:
        return st, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(st: FitState, _: None) -> tuple[FitState, dict[str, Array]]:
        return jax.lax.cond(st.step < stop, one, skip, st)

    return jax.lax.scan(body, state, None, length=config.chunk)


# One compiled chunk per configuration, reused across calls of fit (jax.jit's cache, keyed by the config).
_run_chunk = jax.jit(_run_chunk_impl, static_argnums=0)
