"""Entropic OT: log-domain Sinkhorn, Sinkhorn-Newton-Sparse, the dual and its implicit gradients, the divergence.

Modules: :mod:`~ott_fast.entropic.sinkhorn` (the solver and its output), :mod:`~ott_fast.entropic.sns`
(Newton steps on a sparsified Hessian after a Sinkhorn warm-up), :mod:`~ott_fast.entropic.dual` (the dual
value, the marginal penalties, the plan's derived quantities and the implicit backward pass shared by both
solvers), :mod:`~ott_fast.entropic.driver` (status, the ``converged`` check, gradients and batching shared
by the solvers), :mod:`~ott_fast.entropic.divergence` and :mod:`~ott_fast.entropic.multiscale` (the
divergence of large clouds in ``d <= 3`` on truncated blocks of clusters).
"""

from ott_fast.entropic.divergence import DivergenceOutput, sinkhorn_divergence
from ott_fast.entropic.driver import Status, describe
from ott_fast.entropic.multiscale import MultiscaleOutput, multiscale_divergence
from ott_fast.entropic.sinkhorn import EpsilonSchedule, SinkhornOutput, sinkhorn
from ott_fast.entropic.sns import NewtonDiagnostics, SNSOutput, sns

__all__ = [
    "Status",
    "describe",
    "sinkhorn",
    "SinkhornOutput",
    "EpsilonSchedule",
    "sns",
    "SNSOutput",
    "NewtonDiagnostics",
    "sinkhorn_divergence",
    "DivergenceOutput",
    "multiscale_divergence",
    "MultiscaleOutput",
]
