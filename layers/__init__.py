"""Map layers, one module per layer; the registry below is the only list of them.

Adding a layer is one module implementing ``layers.base.Layer`` and one line here.
"""

from __future__ import annotations

from layers import boundaries, compounds
from layers.base import Layer

LAYERS: tuple[Layer, ...] = (boundaries, compounds)  # type: ignore[assignment]
BY_ID: dict[str, Layer] = {layer.id: layer for layer in LAYERS}
