"""ott_fast: a pure-JAX optimal transport toolkit (jit, vmap and grad throughout).

Which module owns what (three families on one shared floor; every public name is re-exported here):

- the floor: :mod:`ott_fast.costs` (ground costs, their matmul precision, user callables compared by what
  they compute), :mod:`ott_fast.geometry` (``Geometry``/``PointCloud``, centring of translation-invariant
  point clouds, ``epsilon``, and THE kernel: the one place that forms log-plan blocks, stored or in
  chunks), ``ott_fast._validation`` (the one validation routine: eager checks and the in-graph check).
- :mod:`ott_fast.entropic`: ``sinkhorn`` (the solver, its output and the warm-up other solvers reuse),
  ``sns`` (Sinkhorn-Newton-Sparse), ``dual`` (the dual value, the marginal penalties, the plan and its
  derived quantities, the implicit backward pass), ``driver`` (status codes, the check of ``converged``
  against the returned outputs, the implicit-gradient wrapper and the batching rule shared by the
  solvers), ``divergence``.
- :mod:`ott_fast.sliced`: ``wasserstein`` (1-D OT, directions, control variates, the estimator),
  ``distributional`` (Max-SW, DSW, v-DSW), ``vmf``, ``amortized``.
- :mod:`ott_fast.maps`: ``monge_gap``, ``entropic_map`` (and the MLP map model), ``fitting``.
- :mod:`ott_fast.couplings`: couplings for generative models: ``sampling`` (conditional, joint and argmax
  pairs from a solved plan, never forming it), ``rounding`` (onto the transport polytope), ``matching``
  (exact and near-exact permutations), ``flow`` (the pairs of a flow-matching step).
- :mod:`ott_fast.padding`: ragged batches as padded batches (``pad``, ``unpad``): a zero weight means an
  absent point everywhere, so one ``jax.vmap`` solves clouds of different sizes.
- :mod:`ott_fast.trace`: convergence curves of our solvers, and plotting (the peers' runners live in
  ``benchmarks/``).

Example:
    >>> import jax, ott_fast as otf
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
    >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.1))
    >>> bool(out.converged), otf.describe(out.status)
    (True, 'converged: the marginal error of the returned plan is within tol')
"""

from ott_fast import costs, couplings, entropic, maps, meshes, sliced, trace
from ott_fast._version import __version__ as __version__
from ott_fast.couplings import (
    FlowPairs,
    Matching,
    Pairs,
    RoundedCoupling,
    RoundedPlan,
    argmax_coupling,
    exact_matching,
    flow_matching_pairs,
    greedy_matching,
    plan_entropy,
    round_output,
    round_plan,
    sample_conditional,
    sample_joint,
    sinkhorn_matching,
)
from ott_fast.entropic import (
    DivergenceOutput,
    EpsilonSchedule,
    MultiscaleOutput,
    NewtonDiagnostics,
    SinkhornOutput,
    SNSOutput,
    multiscale_divergence,
    sinkhorn,
    sinkhorn_divergence,
    sns,
)
from ott_fast.entropic.driver import Status, describe
from ott_fast.geometry import Geometry, PointCloud
from ott_fast.maps import MLP, EntropicMap, MongeGapOutput, entropic_map, fit, fitting, monge_gap
from ott_fast.padding import Padded, pad, unpad
from ott_fast.sliced import (
    ProjectionSearchOutput,
    apply_amortized,
    distributional_sliced_wasserstein,
    energy_sliced_wasserstein,
    init_amortized,
    max_sliced_wasserstein,
    random_path_directions,
    sample_vmf,
    sliced_wasserstein,
    vmf_distributional_sliced_wasserstein,
    vmf_sliced_wasserstein,
    wasserstein_1d,
)
from ott_fast.sliced import control_variates as sliced_control_variates
from ott_fast.sliced import directions as sliced_directions

__all__ = [
    "costs",
    "entropic",
    "meshes",
    "sliced",
    "Geometry",
    "PointCloud",
    "pad",
    "unpad",
    "Padded",
    "sinkhorn",
    "SinkhornOutput",
    "Status",
    "describe",
    "EpsilonSchedule",
    "sinkhorn_divergence",
    "DivergenceOutput",
    "multiscale_divergence",
    "MultiscaleOutput",
    "sns",
    "SNSOutput",
    "NewtonDiagnostics",
    "trace",
    "wasserstein_1d",
    "sliced_wasserstein",
    "sliced_directions",
    "sliced_control_variates",
    "random_path_directions",
    "energy_sliced_wasserstein",
    "max_sliced_wasserstein",
    "distributional_sliced_wasserstein",
    "vmf_sliced_wasserstein",
    "vmf_distributional_sliced_wasserstein",
    "ProjectionSearchOutput",
    "sample_vmf",
    "init_amortized",
    "apply_amortized",
    "monge_gap",
    "MongeGapOutput",
    "maps",
    "MLP",
    "entropic_map",
    "EntropicMap",
    "fitting",
    "fit",
    "couplings",
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
