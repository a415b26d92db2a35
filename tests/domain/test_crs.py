"""crs: WGS-84 → GCJ-02 for Chinese tile sources; stored data is never shifted."""

from __future__ import annotations

import pytest

from data.domain.crs import to_gcj02, wgs84_to_gcj02

# (WGS-84, GCJ-02) pairs from the 2022 address file of the shared data (Amap GCJ-02 originals
# and their WGS-84 inversions): 中山南一路247弄 and 鲁班路721弄.
PAIRS = [((121.482125, 31.202999), (121.486617, 31.201020)), ((121.474082, 31.199121), (121.478601, 31.197163))]


@pytest.mark.parametrize(("wgs", "gcj"), PAIRS)
def test_crs001_forward_transform_matches_amap(wgs, gcj):
    lng, lat = wgs84_to_gcj02(*wgs)
    assert abs(lng - gcj[0]) < 2e-6 and abs(lat - gcj[1]) < 2e-6


def test_crs002_outside_china_is_unchanged_and_collections_are_copied():
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[list(PAIRS[0][0]), [121.48, 31.2],
                                                                             list(PAIRS[0][0])]]},
         "properties": {}}]}
    shifted = to_gcj02(fc)
    assert shifted["features"][0]["geometry"]["coordinates"][0][0] == pytest.approx(list(PAIRS[0][1]), abs=2e-6)
    assert fc["features"][0]["geometry"]["coordinates"][0][0] == list(PAIRS[0][0])  # input untouched
