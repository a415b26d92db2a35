"""Coordinate shifts for display on Chinese web basemaps.

Why: AutoNavi/Gaode and Tencent tiles are drawn in GCJ-02, which is offset from WGS-84 by
up to ~500 m in Shanghai. opsmap stores WGS-84 only; when such a tile source is configured,
features are shifted on the way out so they sit on the right street.
"""

from __future__ import annotations

import math
from typing import Any

_A = 6378245.0
_EE = 0.00669342162296594323


def _in_china(lng: float, lat: float) -> bool:
    return 72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271


def _dlat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _dlng(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """The published GCJ-02 forward transform (identity outside China)."""
    if not _in_china(lng, lat):
        return lng, lat
    dlat, dlng = _dlat(lng - 105.0, lat - 35.0), _dlng(lng - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lng + dlng, lat + dlat


def _shift(coords: Any) -> Any:
    if coords and isinstance(coords[0], int | float):
        return list(wgs84_to_gcj02(coords[0], coords[1]))
    return [_shift(c) for c in coords]


def to_gcj02(collection: dict[str, Any]) -> dict[str, Any]:
    """A copy of a GeoJSON FeatureCollection with every coordinate shifted to GCJ-02."""
    return {**collection, "features": [
        {**f, "geometry": {**f["geometry"], "coordinates": _shift(f["geometry"]["coordinates"])}}
        for f in collection["features"]]}
