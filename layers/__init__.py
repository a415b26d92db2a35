"""Map layers, one module per layer; the registry below is the only list of them.

Adding a layer is one module implementing ``layers.base.Layer`` and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data.pipeline.streams import topics
from layers import alerts, basemap, boundaries, cases, compounds, gates, observations, shops, sites, workorders
from layers.base import Layer

#: drawing order, bottom to top
LAYERS: tuple[Layer, ...] = (basemap, boundaries, compounds, sites, shops, gates, cases,  # type: ignore[assignment]
                             observations, workorders, alerts)
BY_ID: dict[str, Layer] = {layer.id: layer for layer in LAYERS}


def affected(notice: Mapping[str, Any]) -> list[str]:
    """The layers a change notice (``data.pipeline.streams.announce``) may have changed, in drawing order."""
    changed = topics(notice.get("streams", ()), notice.get("kinds", ()))
    return [layer.id for layer in LAYERS if layer.changed_by & changed]


#: layers whose features change with time alone (overdue, stale, windows): pages re-ask them now and then
TIMELY: tuple[str, ...] = tuple(layer.id for layer in LAYERS if "clock" in layer.changed_by)
