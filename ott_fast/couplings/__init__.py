"""Couplings for generative models: pairs from a solved plan at any size, rounding, matchings, flow matching.

Modules: :mod:`~ott_fast.couplings.sampling` (conditional, joint and argmax draws from a
:class:`~ott_fast.SinkhornOutput` or :class:`~ott_fast.SNSOutput`, dense or online, never forming the plan),
:mod:`~ott_fast.couplings.rounding` (an approximate plan onto the transport polytope, Altschuler et al.
2017), :mod:`~ott_fast.couplings.matching` (exact permutations by the Hungarian algorithm, near-exact ones
from a small-epsilon plan) and :mod:`~ott_fast.couplings.flow` (the pairs of a flow-matching step, with the
coupling's sharpness).

Example:
    >>> import jax, ott_fast as otf
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
    >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.1, chunk_size=8))  # online
    >>> otf.sample_joint(jax.random.PRNGKey(1), out, 5).cols.shape
    (5,)
"""

from ott_fast.couplings.flow import FlowPairs, flow_matching_pairs, plan_entropy
from ott_fast.couplings.matching import Matching, exact_matching, greedy_matching, sinkhorn_matching
from ott_fast.couplings.rounding import RoundedCoupling, RoundedPlan, round_output, round_plan
from ott_fast.couplings.sampling import Pairs, argmax_coupling, sample_conditional, sample_joint

__all__ = [
    "Pairs",
    "sample_conditional",
    "sample_joint",
    "argmax_coupling",
    "RoundedPlan",
    "round_plan",
    "RoundedCoupling",
    "round_output",
    "Matching",
    "exact_matching",
    "greedy_matching",
    "sinkhorn_matching",
    "FlowPairs",
    "flow_matching_pairs",
    "plan_entropy",
]
