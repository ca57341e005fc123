"""Map fitting with the Monge gap, as an optax training loop (Uscidda & Cuturi, ICML 2023).

A map ``T = apply_fn(params, .)`` is fitted by minimising ``fitting_loss(T(x), y) + lambda * M(T)`` over
batches ``x ~ mu``, ``y ~ nu``, where ``M`` is the entropic Monge gap of :func:`~ott_fast.monge_gap` on the
source batch and its image, and the fitting loss is a Sinkhorn divergence by default. The pieces:

- :func:`sinkhorn_loss`: the default fitting loss (debiased Sinkhorn divergence, envelope gradients);
- :func:`make_train_step`: a jitted ``step(state, x, y) -> (state, metrics)`` for your own loop;
- :func:`fit`: ``lax.scan`` over steps in chunks of ``chunk`` steps, a ``tqdm`` progress bar advanced on the
  host between chunks (never inside the compiled loop), and the loss history.

A step whose loss or gradient is not finite (e.g. an inner Sinkhorn solve that did not converge, which
makes the gap NaN) leaves the parameters and optimiser state unchanged; ``metrics["applied"]`` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ott_fast._progress import progress_bar
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


class FitState(NamedTuple):
    """Training state: ``params``, the optax ``opt_state`` and the ``step`` counter (``[]`` int32).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> state = FitState.create({"w": jnp.zeros(3)}, optax.adam(1e-3))
        >>> int(state.step), state.params["w"].shape
        (0, (3,))
    """

    params: Any
    opt_state: Any
    step: Array

    @classmethod
    def create(cls, params: Any, optimizer: optax.GradientTransformation) -> FitState:
        """The state at step 0."""
        return cls(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def _weight_at(gap_weight: float | Callable[[Array], Any] | None, step: Array) -> Array:
    if callable(gap_weight):
        return jnp.asarray(gap_weight(step), jnp.float32)
    return jnp.asarray(0.0 if gap_weight is None else gap_weight, jnp.float32)


def _no_gap(gap_weight: Any) -> bool:
    return gap_weight is None or (not callable(gap_weight) and float(gap_weight) == 0.0)


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
    apply_fn(params, x)``. A step with a non-finite loss or gradient is not applied.

    Args:
        apply_fn: the model, ``apply_fn(params, x[n, d]) -> [n, d]`` (e.g. :meth:`ott_fast.maps.MLP.apply`,
            a Flax module's ``apply``, an Equinox model called through a wrapper).
        optimizer: any optax ``GradientTransformation``.
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
        ``applied`` (``[]`` bool).

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
    if fitting_loss is None:
        fitting_loss = sinkhorn_loss()
    gap_kwargs = dict(gap_kwargs or {})
    use_gap = not _no_gap(gap_weight)

    def loss_fn(params: Any, x: Array, y: Array, weight: Array) -> tuple[Array, dict[str, Array]]:
        tx = apply_fn(params, x)
        fit_value = fitting_loss(tx, y)
        if use_gap:
            out = monge_gap(x, tx, cost=cost, epsilon=epsilon, relative_epsilon=relative_epsilon, **gap_kwargs)
            gap, floor = out.gap, out.floor
            total = fit_value + weight.astype(gap.dtype) * gap
        else:
            gap = floor = jnp.full((), jnp.nan, fit_value.dtype)
            total = fit_value
        return total, {"fitting": fit_value, "gap": gap, "gap_floor": floor}

    def step(state: FitState, x: Array, y: Array) -> tuple[FitState, dict[str, Array]]:
        weight = _weight_at(gap_weight, state.step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, y, weight)
        leaves = jax.tree_util.tree_leaves(grads)
        ok = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in leaves]))
        grads = jax.tree_util.tree_map(lambda g: jnp.where(ok, g, jnp.zeros_like(g)), grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)  # noqa: E731
        new = FitState(keep(params, state.params), keep(opt_state, state.opt_state), state.step + 1)
        return new, {"loss": loss, "weight": weight, "applied": ok, **aux}

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
) -> tuple[Any, dict[str, Any]]:
    """Fits a map ``apply_fn(params, .)`` from ``mu`` to ``nu`` with the Monge-gap objective.

    Runs ``n_steps`` steps of :func:`make_train_step` as a jitted ``lax.scan`` of ``chunk`` steps at a time
    (one compilation; the last chunk masks the steps past ``n_steps``). With ``progress``, a ``tqdm`` bar
    advances after each chunk, on the host, with the last step's loss, fitting term, gap and skipped steps;
    ``progress=False`` is silent. Step ``i`` draws ``x = source_sampler(kx)``, ``y = target_sampler(ky)`` with
    ``kx, ky = split(fold_in(key, i))``, so results do not depend on ``chunk``.

    Args:
        key: PRNG key for the batches.
        apply_fn, optimizer, fitting_loss, gap_weight, cost, epsilon, relative_epsilon, gap_kwargs: as in
            :func:`make_train_step`.
        params: initial parameters.
        source_sampler, target_sampler: jax-traceable ``sampler(key) -> [batch, d]`` (they run inside the
            scan), e.g. :func:`array_sampler`.
        n_steps: number of training steps.
        chunk: steps per compiled scan (and per progress-bar update).
        progress: show a ``tqdm`` progress bar (default) or nothing.

    Returns:
        ``(params, history)``: the fitted parameters and a dict of NumPy arrays ``[n_steps]`` (``loss``,
        ``fitting``, ``gap``, ``gap_floor``, ``weight``, ``applied``), plus ``chunk_seconds`` (wall time of
        each chunk, the first including compilation) and ``chunk_steps``.

    Example:
        >>> import jax, optax, ott_fast as otf
        >>> net = otf.maps.MLP(hidden=(8,))
        >>> src = lambda k: jax.random.normal(k, (64, 2))
        >>> tgt = lambda k: jax.random.normal(k, (64, 2)) + 1.0
        >>> params, hist = otf.fit(jax.random.PRNGKey(0), net.apply, net.init(jax.random.PRNGKey(1), 2),
        ...                        optax.adam(1e-2), src, tgt, n_steps=20, chunk=10, progress=False)
        >>> hist["loss"].shape
        (20,)
    """
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps: expected a positive int, got {n_steps!r}.")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}.")
    chunk = min(chunk, n_steps)
    step = make_train_step(
        apply_fn,
        optimizer,
        fitting_loss=fitting_loss,
        gap_weight=gap_weight,
        cost=cost,
        epsilon=epsilon,
        relative_epsilon=relative_epsilon,
        gap_kwargs=gap_kwargs,
        jit=False,
    )

    def one(st: FitState) -> tuple[FitState, dict[str, Array]]:
        kx, ky = jax.random.split(jax.random.fold_in(key, st.step))
        return step(st, source_sampler(kx), target_sampler(ky))

    @jax.jit
    def run_chunk(state: FitState) -> tuple[FitState, dict[str, Array]]:
        shapes = jax.eval_shape(one, state)[1]

        def skip(st: FitState) -> tuple[FitState, dict[str, Array]]:
            return st, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def body(st: FitState, _: None) -> tuple[FitState, dict[str, Array]]:
            return jax.lax.cond(st.step < n_steps, one, skip, st)

        return jax.lax.scan(body, state, None, length=chunk)

    state = FitState.create(params, optimizer)
    logs: list[dict[str, np.ndarray]] = []
    seconds, steps = [], []
    done = 0
    with progress_bar(total=n_steps, desc="fit", unit="step", progress=progress) as bar:
        while done < n_steps:
            t0 = time.perf_counter()
            state, metrics = run_chunk(state)
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
    return state.params, history
