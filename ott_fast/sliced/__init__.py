"""The sliced family: exact 1-D OT, directions, estimators, projection searches, vMF sampling, the amortized model.

Modules: :mod:`~ott_fast.sliced.wasserstein` (1-D OT by sorting, directions, control variates, the
sliced estimator), :mod:`~ott_fast.sliced.distributional` (Max-SW, DSW, v-DSW searches),
:mod:`~ott_fast.sliced.vmf` (von Mises-Fisher sampling), :mod:`~ott_fast.sliced.energy` (energy-based SW) and
:mod:`~ott_fast.sliced.amortized`. Random-path directions live with the other directions in ``wasserstein``.
"""

from ott_fast.sliced.amortized import apply_amortized, init_amortized
from ott_fast.sliced.distributional import (
    ProjectionSearchOutput,
    distributional_sliced_wasserstein,
    max_sliced_wasserstein,
    vmf_distributional_sliced_wasserstein,
    vmf_sliced_wasserstein,
)
from ott_fast.sliced.energy import energy_sliced_wasserstein
from ott_fast.sliced.vmf import sample_vmf
from ott_fast.sliced.wasserstein import (
    control_variates,
    directions,
    random_path_directions,
    sliced_wasserstein,
    wasserstein_1d,
)

__all__ = [
    "wasserstein_1d",
    "sliced_wasserstein",
    "directions",
    "control_variates",
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
]
