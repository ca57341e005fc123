"""``python -m benchmarks.divergence [--quick] [--out out]``: the Sinkhorn divergence as a loss, error against time.

The debiased Sinkhorn divergence is most often a training loss: its value and its gradient in the points,
every step, at a small blur. Each case draws ``x ~ N(0, I_d)`` and ``y ~ 0.8 N(0, I_d) + (1, 0, 0.5, 0, ...)``
(``n = m`` points, float32), and computes value + gradient in ``x`` with:

- **a reference**: ours in float64 with Anderson acceleration, ``tol=1e-9`` or 20,000 iterations per solve
  (``--reference-iters``: fewer, where 20,000 would take hours, as at ``n = 5000``), up to ``n = 5000``; from
  ``n = 20000`` ours in float32, online, ``tol=1e-4`` or 2,000 iterations (a float64 solve of that size takes
  hours on a CPU). At this epsilon the ``x``-``y`` solve converges sublinearly and
  stops at its budget (float64, n = 1000: an L1 marginal error of about 3e-6), so the reference's value is
  not masked by the divergence's status rule, and the marginal errors it reached are recorded. Its gradient
  is the envelope theorem's. Each row's error is relative: ``|v - v_ref| / |v_ref|`` and
  ``||g - g_ref|| / ||g_ref||``.
- **GeomLoss** (``SamplesLoss("sinkhorn", p=2, blur, scaling)``, torch on the CPU, float32, gradient by
  autograd) at ``scaling`` 0.5, 0.7 and 0.9: the ``"tensorized"`` backend up to ``n = 5000``, and where
  pykeops compiles, ``"online"`` and (``d <= 3``) ``"multiscale"`` from ``n = 5000``. Its cost is
  ``|x - y|^2 / 2`` with ``epsilon = blur^2``; ours, ``|x - y|^2`` with ``epsilon = 2 blur^2``, is twice the
  same divergence, so GeomLoss's value and gradient are doubled before they are compared.
- **ott_fast** (:func:`ott_fast.sinkhorn_divergence`, float32, ``jax.jit(jax.value_and_grad(...))``):
  today's default at ``tol=1e-3``; Anderson at ``tol=1e-3``; epsilon annealed from the largest cost
  (``EpsilonSchedule(init=None, decay=0.8)``) at ``tol`` 1e-2 and 1e-3; annealed + Anderson at ``tol`` 1e-3
  and 1e-2, and annealed faster + Anderson (decay 0.6 at ``tol=3e-2``, decay 0.4 at ``tol=1e-1``): the cheap
  end of the error-time curve.
  Online (``chunk_size="auto"``) from ``n = 20000``. In ``d <= 3`` also :func:`ott_fast.multiscale_divergence`
  (k-d tree leaves of at most 32 points, 16 partners kept per leaf) at ``tol`` 1e-2, 3e-2 and 1e-1; from
  ``n = 20000`` in ``d <= 3`` the reference is the multiscale solve itself at ``tol=1e-3`` with 16 partners per
  leaf (its truncation is checked against full solves at small ``n`` by the tests, not at this size).

``blur = 0.05`` in ``d = 3`` (the issue's case, ``epsilon = 0.005``, about 8e-4 x the mean cost) and
``blur = 0.25`` in ``d = 64`` (``epsilon = 0.125``, about 1e-3 x the mean cost: the same relative scale; at
``blur = 0.05`` a 64-d problem is nearly unregularised). Sizes: ``n`` = 1k, 5k, 20k, 100k in ``d = 3`` and
1k, 5k in ``d = 64`` (``--quick``: 1k in ``d = 3``). Seconds: best of 2 calls (``--repeats``) after an
untimed warm-up (compilation excluded), value + gradient, waited on (``jax.block_until_ready``). A setting whose call is
predicted (from its time at the previous size, scaled by ``n^2``) to take over ``--max-seconds`` is skipped
and says so; likewise the reference with ``--max-reference-seconds``. A peer that is not installed
(``pip install -e ".[geomloss]"``) is reported as absent and the suite goes on. The numbers compare only
within one run on one machine.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ott_fast as otf
from benchmarks import cli
from ott_fast._progress import progress_bar
from ott_fast.trace import best_time

BLUR = {3: 0.05, 64: 0.25}
SHIFT = (1.0, 0.0, 0.5)
SCALINGS = (0.5, 0.7, 0.9)
ONLINE_FROM = 20_000  # ours (and the reference) online from this n
TENSORIZED_UP_TO = 5_000  # GeomLoss's dense torch backend up to this n (n^2 floats per matrix)
KEOPS_FROM = 5_000  # GeomLoss's KeOps backends (online, multiscale) from this n, where pykeops works
REPEATS = 2
FULL_CASES = [(1_000, 3), (5_000, 3), (20_000, 3), (100_000, 3), (1_000, 64), (5_000, 64)]
QUICK_CASES = [(1_000, 3)]

_ANNEAL = otf.EpsilonSchedule(init=None, decay=0.8)
OURS: dict[str, dict[str, Any]] = {  # setting -> sinkhorn options (passed through sinkhorn_divergence)
    "ott_fast default (tol 1e-3)": {"tol": 1e-3},
    "ott_fast anderson (tol 1e-3)": {"tol": 1e-3, "acceleration": "anderson"},
    "ott_fast annealed 0.8 (tol 1e-2)": {"tol": 1e-2, "schedule": _ANNEAL},
    "ott_fast annealed 0.8 (tol 1e-3)": {"tol": 1e-3, "schedule": _ANNEAL},
    "ott_fast annealed 0.8 + anderson (tol 1e-3)": {"tol": 1e-3, "schedule": _ANNEAL, "acceleration": "anderson"},
    "ott_fast annealed 0.8 + anderson (tol 1e-2)": {"tol": 1e-2, "schedule": _ANNEAL, "acceleration": "anderson"},
    "ott_fast annealed 0.6 + anderson (tol 3e-2)": {
        "tol": 3e-2,
        "schedule": otf.EpsilonSchedule(init=None, decay=0.6),
        "acceleration": "anderson",
    },
    "ott_fast annealed 0.4 + anderson (tol 1e-1)": {
        "tol": 1e-1,
        "schedule": otf.EpsilonSchedule(init=None, decay=0.4),
        "acceleration": "anderson",
    },
}


MULTISCALE: dict[str, dict[str, Any]] = {  # setting -> multiscale_divergence options (d <= 3 only)
    "ott_fast multiscale (tol 1e-2)": {"tol": 1e-2},
    "ott_fast multiscale (tol 3e-2)": {"tol": 3e-2},
    "ott_fast multiscale (tol 1e-1)": {"tol": 1e-1},
}


def clouds(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x[n, d] ~ N(0, I)`` and ``y[n, d] ~ 0.8 N(0, I) + (1, 0, 0.5, 0, ...)``, float32.

    Example:
        >>> x, y = clouds(8, 3)
        >>> x.shape, y.dtype
        ((8, 3), dtype('float32'))
    """
    rng = np.random.default_rng(seed + d)
    shift = np.zeros(d)
    shift[: min(d, len(SHIFT))] = SHIFT[:d]
    x = rng.normal(size=(n, d))
    y = 0.8 * rng.normal(size=(n, d)) + shift
    return x.astype(np.float32), y.astype(np.float32)


def _flat_value_and_grad(loss: Callable[[Any, Any], tuple]) -> Callable[[Any, Any], tuple]:
    """``jit`` of ``loss(x, y) -> (value, (converged, iterations, errors))`` and its gradient in ``x``, flat:
    ``(value, grad, converged, iterations, errors)``."""
    vg = jax.value_and_grad(loss, has_aux=True)

    @jax.jit
    def fn(x: jax.Array, y: jax.Array) -> tuple:
        (value, (conv, iters, err)), grad = vg(x, y)
        return value, grad, conv, iters, err

    return fn


def _ours_fn(eps: float, chunk: Any, options: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """``jit(value_and_grad)`` of our divergence in ``x``: ``(value, grad, converged, iterations, error)``."""

    def loss(x: jax.Array, y: jax.Array) -> tuple[jax.Array, tuple]:
        out = otf.sinkhorn_divergence(x, y, epsilon=eps, chunk_size=chunk, return_output=True, **options)
        iters = out.xy.n_iters + out.xx.n_iters + out.yy.n_iters
        return out.value, (out.converged, iters, out.error)

    return _flat_value_and_grad(loss)


def _multiscale_fn(eps: float, options: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """``jit(value_and_grad)`` of :func:`ott_fast.multiscale_divergence` in ``x``, as :func:`_ours_fn`."""

    def loss(x: jax.Array, y: jax.Array) -> tuple[jax.Array, tuple]:
        out = otf.multiscale_divergence(x, y, epsilon=eps, return_output=True, **options)
        return out.value, (out.converged, out.iterations, out.error)

    return _flat_value_and_grad(loss)


def _reference_fn(eps: float, chunk: Any, options: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """``jit(value_and_grad)`` of ``OT(x, y) - OT(x, x) / 2 - OT(y, y) / 2`` from three solves, not masked.

    :func:`ott_fast.sinkhorn_divergence` returns NaN unless all three solves reach ``tol``; at this epsilon
    the ``x``-``y`` solve converges sublinearly (float64, n = 1000: an L1 marginal error near 1e-5 after
    10,000 iterations, 3e-6 after 20,000), so the reference is a fixed budget of iterations and states the
    marginal error it reached. The same formula as the divergence (balanced, uniform weights); the self terms
    by symmetric averaged updates; gradients by the envelope theorem (implicit differentiation).
    """

    def loss(x: jax.Array, y: jax.Array) -> tuple[jax.Array, tuple]:
        xy = otf.sinkhorn(otf.PointCloud(x, y, epsilon=eps, chunk_size=chunk), **options)
        xx = otf.sinkhorn(otf.PointCloud(x, x, epsilon=eps, chunk_size=chunk), symmetric=True, **options)
        yy = otf.sinkhorn(otf.PointCloud(y, y, epsilon=eps, chunk_size=chunk), symmetric=True, **options)
        value = xy.reg_ot_cost - 0.5 * (xx.reg_ot_cost + yy.reg_ot_cost)
        errors = jnp.stack([xy.error, xx.error, yy.error])
        return value, (xy.converged & xx.converged & yy.converged, xy.n_iters + xx.n_iters + yy.n_iters, errors)

    return _flat_value_and_grad(loss)


REF_DENSE = {"tol": 1e-9, "acceleration": "anderson", "max_iters": 20_000}  # float64, n < ONLINE_FROM
REF_ONLINE = {"tol": 1e-4, "acceleration": "anderson", "max_iters": 2_000}  # float32, online, n >= ONLINE_FROM
REF_MULTISCALE = {"tol": 1e-3, "neighbours": 16, "max_iters": 5_000}  # float32, d <= 3, n >= ONLINE_FROM
# (float32 L1 marginal errors floor near 5e-5 already at n = 2000: a tighter tol only burns the budget)


def reference(x: np.ndarray, y: np.ndarray, eps: float, max_iters: int = REF_DENSE["max_iters"]) -> dict[str, Any]:
    """The value and gradient every row is scored against (see the module's docstring and
    :func:`_reference_fn`): float64 up to ``ONLINE_FROM`` points (``max_iters`` per solve); beyond, float32
    online, or in ``d <= 3`` the multiscale solve at ``tol=1e-3`` with 16 partners per leaf (an online solve
    there takes hours)."""
    online = x.shape[0] >= ONLINE_FROM
    multiscale = online and x.shape[1] <= 3
    options = REF_MULTISCALE if multiscale else REF_ONLINE if online else dict(REF_DENSE, max_iters=max_iters)
    if multiscale:
        kind = f"ott_fast multiscale float32, tol {options['tol']:.0e}, {options['neighbours']} neighbours"
        fn = _multiscale_fn(eps, options)
    else:
        kind = (
            f"ott_fast {'float32, online' if online else 'float64'}, anderson, tol {options['tol']:.0e} or "
            f"{options['max_iters']} iterations per solve"
        )
        fn = _reference_fn(eps, "auto" if online else None, options)
    with jax.enable_x64(not online):
        dtype = jnp.float32 if online else jnp.float64
        t0 = time.perf_counter()
        v, g, conv, iters, errs = jax.block_until_ready(fn(jnp.asarray(x, dtype), jnp.asarray(y, dtype)))
        secs = time.perf_counter() - t0
        v, g, errs = float(v), np.asarray(g, np.float64), np.atleast_1d(np.asarray(errs, np.float64))
    return {
        "kind": kind.replace("e-0", "e-"),
        "value": v,
        "grad": g,
        "grad_norm": float(np.linalg.norm(g)),
        "converged": bool(conv),
        "iterations": int(iters),
        "marginal_errors": [float(e) for e in errs],  # xy, xx, yy (multiscale: the largest): how far from converged
        "seconds_with_compilation": secs,
    }


def _errors(v: float, g: np.ndarray, ref: dict[str, Any] | None) -> dict[str, float | None]:
    if ref is None or not np.isfinite(ref["value"]):
        return {"value_error": None, "grad_error": None}
    g = np.asarray(g, np.float64)
    return {
        "value_error": abs(v - ref["value"]) / abs(ref["value"]) if np.isfinite(v) else None,
        "grad_error": float(np.linalg.norm(g - ref["grad"]) / ref["grad_norm"]) if np.all(np.isfinite(g)) else None,
    }


def run_ours(
    name: str, x: np.ndarray, y: np.ndarray, eps: float, ref: dict | None, repeats: int = REPEATS
) -> dict[str, Any]:
    n = x.shape[0]
    chunk = "auto" if n >= ONLINE_FROM and name in OURS else None
    fn = _multiscale_fn(eps, MULTISCALE[name]) if name in MULTISCALE else _ours_fn(eps, chunk, OURS[name])
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    try:
        secs, (v, g, conv, iters, err) = best_time(lambda: fn(xj, yj), repeats)
    except Exception as exc:  # noqa: BLE001 -- out of memory at large n: recorded, the suite goes on
        return {"solver": name, "setting": name, "library": "ott_fast", "failed": f"{type(exc).__name__}: {exc}"[:200]}
    v, g = float(v), np.asarray(g)
    row = {
        "solver": name + (" online" if chunk else ""),
        "setting": name,
        "library": "ott_fast",
        "seconds": secs,
        "value": v,
        "grad_norm": float(np.linalg.norm(g)),
        "converged": bool(conv),
        "iterations": int(iters),
        "marginal_error": float(err),
    }
    return row | _errors(v, g, ref)


def keops_works() -> tuple[bool, str]:
    """Whether pykeops imports and compiles a reduction here (GeomLoss's online and multiscale backends)."""
    try:
        import torch
        from pykeops.torch import LazyTensor

        a = LazyTensor(torch.ones(4, 1, 3)) - LazyTensor(torch.ones(1, 5, 3))
        (a**2).sum(-1).sum(1)
        return True, "pykeops works"
    except Exception as err:  # noqa: BLE001 -- absent, or no compiler: GeomLoss's tensorized backend remains
        return False, f"pykeops unavailable ({type(err).__name__}: {str(err)[:120]})"


def geomloss_available() -> tuple[bool, str]:
    try:
        import geomloss
        import torch
    except ImportError as err:
        return False, f"absent ({err}; pip install -e '.[geomloss]')"
    return True, f"geomloss {getattr(geomloss, '__version__', '?')}, torch {torch.__version__}"


def geomloss_backends(n: int, d: int, keops: bool) -> list[str]:
    """GeomLoss's backends run at ``(n, d)``: tensorized up to 5000 points, KeOps from 5000 where it works."""
    out = ["tensorized"] if n <= TENSORIZED_UP_TO else []
    if keops and n >= KEOPS_FROM:
        out += ["online"] + (["multiscale"] if d <= 3 else [])
    return out


def run_geomloss(
    x: np.ndarray,
    y: np.ndarray,
    blur: float,
    scaling: float,
    backend: str,
    ref: dict | None,
    repeats: int = REPEATS,
) -> dict[str, Any]:
    import geomloss
    import torch

    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, backend=backend)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def call() -> tuple[float, np.ndarray]:
        xr = xt.clone().requires_grad_(True)
        value = loss(xr, yt)
        (grad,) = torch.autograd.grad(value, [xr])
        return 2.0 * float(value.detach()), 2.0 * grad.numpy().astype(np.float64)  # x2: its cost is |x - y|^2 / 2

    name = f"geomloss {backend} scaling {scaling}"
    try:
        secs, (v, g) = best_time(call, repeats)
    except Exception as err:  # noqa: BLE001 -- out of memory or a KeOps failure: recorded, the suite goes on
        return {"solver": name, "setting": name, "library": "geomloss", "failed": f"{type(err).__name__}: {err}"[:200]}
    row = {
        "solver": name,
        "setting": name,
        "library": "geomloss",
        "seconds": secs,
        "value": v,
        "grad_norm": float(np.linalg.norm(g)),
    }
    return row | _errors(v, g, ref)


def _predicted(prev: dict[str, float], setting: str, n: int) -> float | None:
    """Seconds predicted for ``setting`` at ``n`` from its last run ``prev[setting] = (seconds, n)``, as ``n^2``."""
    if setting not in prev:
        return None
    secs, n0 = prev[setting]
    return secs * (n / n0) ** 2


def run_case(
    n: int,
    d: int,
    peers: dict[str, Any],
    prev: dict[str, tuple[float, int]],
    max_s: float,
    max_ref_s: float,
    ours: list[str] | None = None,
    ref_iters: int = REF_DENSE["max_iters"],
    repeats: int = REPEATS,
) -> dict[str, Any]:
    """Every setting on one case (``ours``: only these of ours); ``prev`` (setting -> (seconds, n) at the last
    size) decides what is skipped; ``ref_iters``: the float64 reference's budget per solve; ``repeats``: timed
    calls per setting after the compiling one (the best is kept)."""
    x, y = clouds(n, d)
    blur = BLUR[d]
    eps = 2 * blur**2
    rows: list[dict[str, Any]] = []
    ref_key = "reference online" if n >= ONLINE_FROM else "reference"  # predicted from its own kind only
    guess = _predicted(prev, ref_key, n)
    if guess is not None and guess > max_ref_s:
        ref = None
        ref_note = f"skipped (predicted {guess:.0f} s > --max-reference-seconds {max_ref_s:g})"
    else:
        ref = reference(x, y, eps, ref_iters)
        prev[ref_key] = (ref["seconds_with_compilation"], n)
        ref_note = "" if ref["converged"] else "(stopped at its iteration budget; the marginal errors it reached)"

    def skip(setting: str, solver: str, library: str) -> bool:
        guess = _predicted(prev, setting, n)
        if guess is not None and guess > max_s:
            rows.append(
                {"solver": solver, "setting": setting, "library": library, "skipped": f"predicted {guess:.0f} s"}
            )
            return True
        return False

    if peers["geomloss"][0]:
        for backend in geomloss_backends(n, d, peers["keops"][0]):
            if peers.get("backends") and backend not in peers["backends"]:
                continue
            for s in peers.get("scalings") or SCALINGS:
                setting = f"geomloss {backend} scaling {s}"
                if not skip(setting, setting, "geomloss"):
                    rows.append(run_geomloss(x, y, blur, s, backend, ref, repeats))
                    if "seconds" in rows[-1]:
                        prev[setting] = (rows[-1]["seconds"], n)
    else:
        absent = peers["geomloss"][1]
        rows.append({"solver": "geomloss", "setting": "geomloss", "library": "geomloss", "absent": absent})
    for name in ours if ours is not None else list(OURS) + (list(MULTISCALE) if d <= 3 else []):
        if not skip(name, name, "ott_fast"):
            rows.append(run_ours(name, x, y, eps, ref, repeats))
            if "seconds" in rows[-1]:
                prev[name] = (rows[-1]["seconds"], n)
    ref_row = None
    if ref is not None:
        ref_row = {k: v for k, v in ref.items() if k != "grad"}
    return {
        "case": f"n = m = {n}, d = {d}",
        "n": n,
        "d": d,
        "blur": blur,
        "epsilon": eps,
        "reference": ref_row,
        "reference_note": ref_note,
        "results": rows,
    }


def _cell(x: float | None, fmt: str = ".1e") -> str:
    return "-" if x is None else format(x, fmt)


def print_case(case: dict[str, Any]) -> None:
    ref = case["reference"]
    print(f"\n{case['case']}  (blur {case['blur']:g}; ours: |x - y|^2, epsilon {case['epsilon']:g})")
    if ref is None:
        print(f"reference {case['reference_note']}")
    else:
        print(
            f"reference: {ref['kind']}: value {ref['value']:.6g}, |grad| {ref['grad_norm']:.4g}, "
            f"{ref['iterations']} iterations, L1 marginal errors (xy, xx, yy) "
            f"{', '.join(f'{e:.1e}' for e in ref['marginal_errors'])} {case['reference_note']}"
        )
    print(f"{'setting':<50}{'time [s]':>10}{'value':>11}{'value err':>11}{'grad err':>10}{'|grad|':>9}{'iters':>7}")
    for r in case["results"]:
        note = r.get("absent") or r.get("failed") or r.get("skipped")
        if note:
            print(f"{r['solver']:<50} {'absent: ' if 'absent' in r else ''}{note}")
            continue
        conv = "" if r.get("converged", True) else " (not converged: NaN)"
        iters = str(r["iterations"]) if "iterations" in r else ""
        print(
            f"{r['solver']:<50}{r['seconds']:>10.3f}{r['value']:>11.5g}{_cell(r['value_error']):>11}"
            f"{_cell(r['grad_error']):>10}{r['grad_norm']:>9.4f}{iters:>7}{conv}"
        )


def plot(cases: list[dict[str, Any]], out: str) -> list[str]:
    """``<out>/divergence.png``: value and gradient error against seconds, one row of two panels per case."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]').")
        return []
    cases = [c for c in cases if c["reference"] is not None]
    if not cases:
        return []
    fig, axes = plt.subplots(len(cases), 2, figsize=(11, 3.8 * len(cases)), squeeze=False)
    markers = {"tensorized": "s", "online": "^", "multiscale": "D"}
    for row, case in zip(axes, cases):
        for r in case["results"]:
            if "seconds" not in r:
                continue
            if r["library"] == "geomloss":
                style = dict(marker=markers.get(r["solver"].split()[1], "s"), mfc="none", color="gray")
            else:
                style = dict(marker="o")
            for ax, key in zip(row, ("value_error", "grad_error")):
                if r[key] is not None and r[key] > 0:
                    ax.loglog(r["seconds"], r[key], ls="none", ms=7, label=r["solver"], **style)
                    if r["library"] == "geomloss":
                        ax.annotate(r["solver"].split()[-1], (r["seconds"], r[key]), fontsize=7)
        for ax, what in zip(row, ("value", "gradient in x")):
            ax.set_xlabel("seconds, value + gradient (compilation excluded)")
            ax.set_ylabel(f"relative error of the {what}")
            ax.set_title(f"{case['case']}, blur {case['blur']:g}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
        row[1].legend(fontsize=7, loc="best")
    fig.suptitle("Sinkhorn divergence: error against the reference vs time (GeomLoss: gray, label = scaling)")
    fig.tight_layout()
    path = os.path.join(out, "divergence.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("python -m benchmarks.divergence", __doc__, "n = 1000 in d = 3 only (smoke test, a few minutes)")
    p.add_argument("--sizes", default=None, help="comma-separated n to run in d = 3 instead of the mode's")
    p.add_argument("--dims", default=None, help="comma-separated d (3, 64) to run with --sizes (default 3)")
    p.add_argument("--max-seconds", type=float, default=300.0, help="skip a setting predicted slower than this")
    p.add_argument(
        "--max-reference-seconds", type=float, default=3600.0, help="skip a reference predicted slower than this"
    )
    p.add_argument(
        "--reference-iters",
        type=int,
        default=REF_DENSE["max_iters"],
        help="iterations per solve of the float64 reference (below n = 20000; fewer make n = 5000 affordable, and "
        "the table states the marginal errors it reached)",
    )
    p.add_argument(
        "--repeats", type=int, default=REPEATS, help="timed calls per setting after the compiling one (best kept)"
    )
    p.add_argument("--no-geomloss", action="store_true", help="skip GeomLoss even where it is installed")
    p.add_argument(
        "--settings", choices=("all", "multiscale"), default="all", help="ours: every setting, or the multiscale ones"
    )
    p.add_argument("--scalings", default=None, help="comma-separated GeomLoss scalings (default 0.5,0.7,0.9)")
    p.add_argument("--backends", default=None, help="comma-separated GeomLoss backends (default: all that apply)")
    args = p.parse_args(argv)
    t0 = time.time()
    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.sizes:
        dims = [int(d) for d in (args.dims or "3").split(",")]
        cases = [(int(n), d) for d in dims for n in args.sizes.split(",")]
    unknown = sorted({d for _, d in cases} - set(BLUR))
    if unknown:
        p.error(f"--dims: no blur for d in {unknown}; choose from {sorted(BLUR)}")
    gl = (False, "skipped (--no-geomloss)") if args.no_geomloss else geomloss_available()
    keops = keops_works() if gl[0] else (False, "not tried (no GeomLoss)")
    peers = {
        "geomloss": gl,
        "keops": keops,
        "scalings": [float(v) for v in args.scalings.split(",")] if args.scalings else None,
        "backends": args.backends.split(",") if args.backends else None,
    }
    print(f"GeomLoss: {gl[1]}; KeOps: {keops[1]}")
    if gl[0] and not keops[0]:
        print(f"GeomLoss runs its tensorized backend only (n <= {TENSORIZED_UP_TO}): no online or multiscale.")
    results = []
    prev: dict[str, dict[str, tuple[float, int]]] = {}
    with progress_bar(total=len(cases), desc="divergence", unit="case", progress=args.progress) as bar:
        for n, d in cases:
            last = prev.setdefault(str(d), {})  # per dimension: times at the previous size
            ours = list(MULTISCALE) if args.settings == "multiscale" else None
            results.append(
                run_case(
                    n,
                    d,
                    peers,
                    last,
                    args.max_seconds,
                    args.max_reference_seconds,
                    ours,
                    args.reference_iters,
                    args.repeats,
                )
            )
            print_case(results[-1])
            bar.update()
    meta = cli.run_meta(
        args.quick,
        t0,
        geomloss=gl[1],
        keops=keops[1],
        torch_threads=_torch_threads(),
        repeats=args.repeats,
        max_seconds=args.max_seconds,
        settings=args.settings,
        scalings=args.scalings or ",".join(map(str, SCALINGS)),
        backends=args.backends or "all",
        reference_iters=args.reference_iters,
    )
    path = cli.write_record(args.out, "divergence.json", {"meta": meta, "cases": results})
    paths = plot(results, args.out)
    print(f"\nwrote {path}" + "".join(f", {q}" for q in paths))
    return 0


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
