"""ott_fast: a pure-JAX optimal transport toolkit (jit, vmap and grad throughout).

Example:
    >>> import jax, ott_fast as otf
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
    >>> out = otf.sinkhorn(otf.PointCloud(x, x + 1.0, epsilon=0.1))
    >>> bool(out.converged)
    True
"""

from ott_fast import costs, fitting, maps, trace
from ott_fast.amortized import apply_amortized, init_amortized
from ott_fast.distributional import (
    ProjectionSearchOutput,
    distributional_sliced_wasserstein,
    max_sliced_wasserstein,
    vmf_distributional_sliced_wasserstein,
    vmf_sliced_wasserstein,
)
from ott_fast.divergence import sinkhorn_divergence
from ott_fast.fitting import fit
from ott_fast.geometry import Geometry, PointCloud
from ott_fast.maps import MLP, EntropicMap, entropic_map
from ott_fast.monge_gap import MongeGapOutput, monge_gap
from ott_fast.sinkhorn import EpsilonSchedule, SinkhornOutput, sinkhorn
from ott_fast.sliced import control_variates as sliced_control_variates
from ott_fast.sliced import directions as sliced_directions
from ott_fast.sliced import sliced_wasserstein, wasserstein_1d
from ott_fast.sns import NewtonDiagnostics, SNSOutput, sns
from ott_fast.vmf import sample_vmf

__all__ = [
    "costs",
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
__version__ = "0.1.0"
