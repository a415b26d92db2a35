"""Map layers, one module per layer; the registry below is the only list of them.

Adding a layer is one module implementing ``layers.base.Layer`` and one line here.
"""

from __future__ import annotations

from layers import alerts, basemap, boundaries, cases, compounds, gates, observations, shops, sites, workorders
from layers.base import Layer

#: drawing order, bottom to top
LAYERS: tuple[Layer, ...] = (basemap, boundaries, compounds, sites, shops, gates, cases,  # type: ignore[assignment]
                             observations, workorders, alerts)
BY_ID: dict[str, Layer] = {layer.id: layer for layer in LAYERS}
