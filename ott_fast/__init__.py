"""ott_fast: a pure-JAX optimal transport toolkit (jit, vmap and grad throughout).

Example:
    >>> import jax, ott_fast as otf
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
    >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.1))
    >>> bool(out.converged)
    True
"""

from ott_fast import costs, entropic, maps, sliced, trace
from ott_fast._version import __version__ as __version__
from ott_fast.entropic import (
    EpsilonSchedule,
    NewtonDiagnostics,
    SinkhornOutput,
    SNSOutput,
    sinkhorn,
    sinkhorn_divergence,
    sns,
)
from ott_fast.geometry import Geometry, PointCloud
from ott_fast.maps import MLP, EntropicMap, MongeGapOutput, entropic_map, fit, fitting, monge_gap
from ott_fast.sliced import (
    ProjectionSearchOutput,
    apply_amortized,
    distributional_sliced_wasserstein,
    init_amortized,
    max_sliced_wasserstein,
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
    "sliced",
    "Geometry",
    "PointCloud",
    "sinkhorn",
    "SinkhornOutput",
    "EpsilonSchedule",
    "sinkhorn_divergence",
    "sns",
    "SNSOutput",
    "NewtonDiagnostics",
    "trace",
    "wasserstein_1d",
    "sliced_wasserstein",
    "sliced_directions",
    "sliced_control_variates",
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
]
