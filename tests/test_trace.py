"""Convergence curves: each solver's curve is its real trace, gaps are measured against the best dual of all,
and POT's independent solve reaches the same optimum."""

import matplotlib
import numpy as np
import pytest

import ott_fast as otf
from benchmarks import curves as curves_mod
from ott_fast import trace

matplotlib.use("Agg")


@pytest.fixture
def geom(x64):
    c = np.random.default_rng(0).uniform(size=(60, 50))
    return otf.Geometry(c, epsilon=0.02)


def test_curves_of_every_solver_on_one_problem(geom):
    tol = 1e-8
    curves = trace.with_gaps(
        [
            trace.sinkhorn_curve(geom, tol=tol, acceleration="none", max_iters=20000, label="plain", repeats=1),
            trace.sinkhorn_curve(geom, tol=tol, max_iters=20000, label="accelerated", repeats=1),
            trace.sinkhorn_curve(
                geom, tol=tol, max_iters=20000, schedule=otf.EpsilonSchedule(decay=0.8), label="schedule", repeats=1
            ),
            trace.sns_curve(geom, tol=tol, repeats=1),
            curves_mod.pot_curve(geom, tol=tol, max_iters=20000, chunk=50),
        ]
    )
    for c in curves:
        assert c.errors[-1] <= tol, c.label
        assert np.all(np.diff(c.iterations) > 0), c.label
        assert np.all(np.isfinite(c.seconds)) and c.seconds[0] >= 0 and c.total_seconds > 0
    # D*, the best dual any curve reached, is the entropic optimum: POT's plan's KL-form objective (NumPy).
    import ot

    cost = np.asarray(geom.cost_matrix)
    a, b = np.full(60, 1 / 60), np.full(50, 1 / 50)
    p = ot.sinkhorn(a, b, cost, 0.02, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
    pos = p > 0
    primal = (p * cost).sum() + 0.02 * (p[pos] * np.log(p[pos] / np.outer(a, b)[pos])).sum()
    best = max(float(np.nanmax(c.duals)) for c in curves)
    np.testing.assert_allclose(best, primal, rtol=1e-9)
    # every solver, POT included, ends at the same optimum: final gaps are tiny next to the initial ones
    for c in curves:
        assert c.gaps[-1] <= 1e-6 * max(1.0, float(np.nanmax(c.gaps))), c.label
    plain, accelerated, _, sns, _ = curves
    assert accelerated.iterations[-1] < plain.iterations[-1]  # over-relaxation helps
    assert sns.iterations[-1] < accelerated.iterations[-1]
    fig = trace.plot(curves, title="test")
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == len(curves)


def _pot_l1_error(cost, a, b, eps, iterations):
    """The L1 marginal error of POT's log-domain Sinkhorn plan after ``iterations`` iterations. POT updates
    the column potential first; on the transposed problem it makes ott_fast's updates in ott_fast's order
    (rows, then columns), so with uniform weights the plans are the same iterates."""
    import ot

    plan = ot.sinkhorn(b, a, cost.T, eps, method="sinkhorn_log", stopThr=0.0, numItermax=iterations, warn=False).T
    return np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()


def test_sinkhorn_curve_is_pots_sinkhorn_iterate_by_iterate(geom):
    """Plain Sinkhorn's curve: at each of its iteration counts, the error POT's independent solve has after
    as many iterations (a curve shifted by one iteration, or measuring another error, is off by 10-30%)."""
    curve = trace.sinkhorn_curve(geom, tol=1e-6, acceleration="none", max_iters=5000, repeats=1)
    assert curve.errors[-1] <= 1e-6 < curve.errors[0] and len(curve.iterations) >= 5
    cost = np.asarray(geom.cost_matrix)
    a, b = np.full(60, 1 / 60), np.full(50, 1 / 50)
    ref = [_pot_l1_error(cost, a, b, 0.02, int(k)) for k in curve.iterations]
    np.testing.assert_allclose(curve.errors, ref, rtol=1e-8)
