"""Transport maps: the Monge gap, the entropic map, and fitting a map model with optax.

Modules: :mod:`~ott_fast.maps.monge_gap`, :mod:`~ott_fast.maps.entropic_map` (the entropic map and a
small MLP map model) and :mod:`~ott_fast.maps.fitting` (losses, the training step and :func:`fit`).
"""

from ott_fast.maps import fitting
from ott_fast.maps.entropic_map import MLP, EntropicMap, entropic_map
from ott_fast.maps.fitting import fit
from ott_fast.maps.monge_gap import MongeGapOutput, monge_gap

__all__ = ["monge_gap", "MongeGapOutput", "entropic_map", "EntropicMap", "MLP", "fit", "fitting"]
