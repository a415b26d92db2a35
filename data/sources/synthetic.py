"""Deterministic synthetic geography for what no public dataset gives.

Committee partition, compound plots and gates, guards and rosters, households, further
shops and sites: all drawn from one seeded generator, so the same street and seed always
give the same data (tests and reloads rely on it). Everything made here is marked
``synthetic`` in the database. Geometry is computed in metres (UTM 51N) and returned in
WGS-84; every point lies inside the street boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from data.sources.geodata import RealCompound, to_metric, to_wgs84

PLOT_RADIUS_M = 25.0  # a lane compound's plot when no outline is known
MIN_GAP_M = 8.0  # synthetic points keep this far from compound plots
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国"
SHOP_KINDS = (("便利店", "convenience"), ("药店", "pharmacy"), ("餐饮", "restaurant"),
              ("超市", "supermarket"), ("理发", "barber"), ("服装", "clothing"))
SITE_KINDS = (("construction_site", "工地", 1.0), ("elderly_care", "养老院", 1.0),
              ("office_building", "办公楼", 4.0), ("market", "菜场", 0.8))


@dataclass(frozen=True)
class Plan:
    """A synthetic point or area with its label, before it is given an id."""

    name: str
    kind: str
    geom: BaseGeometry


def rng_for(seed: int, street_id: str, purpose: str) -> np.random.Generator:
    """A generator per (seed, street, purpose): adding a purpose never shifts the others."""
    return np.random.default_rng([seed, *street_id.encode(), *purpose.encode()])


def metric(geom: BaseGeometry) -> BaseGeometry:
    """WGS-84 → metres (UTM 51N)."""
    return shapely.transform(geom, to_metric, interleaved=False)


def wgs84(geom: BaseGeometry) -> BaseGeometry:
    """Back to WGS-84, rounded to 7 decimals (≈1 cm) as stored."""
    return shapely.set_precision(shapely.transform(geom, to_wgs84, interleaved=False), 1e-7)


def committee_count(area_km2: float) -> int:
    """About four committees per km², as in central Shanghai; at least 3, at most 40."""
    return int(np.clip(round(area_km2 * 4), 3, 40))


def partition(boundary_m: BaseGeometry, anchors_m: np.ndarray, k: int,
              rng: np.random.Generator) -> list[BaseGeometry]:
    """Split the street into k areas around clusters of compounds (k-means, then Voronoi).

    Areas are ordered north-west to south-east so their numbers read like a map.
    """
    fill = _points_in(boundary_m, max(k * 20, 200), rng)
    pts = np.vstack([anchors_m, fill]) if len(anchors_m) else fill
    centres = pts[rng.choice(len(pts), size=k, replace=False)]
    for _ in range(30):
        nearest = np.argmin(((pts[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        centres = np.array([pts[nearest == j].mean(0) if (nearest == j).any() else centres[j]
                            for j in range(k)])
    order = np.lexsort((centres[:, 0], -np.round(centres[:, 1] / 300)))
    cells = shapely.voronoi_polygons(MultiPoint(centres[order]), extend_to=boundary_m,
                                     ordered=True).geoms
    return [cell.intersection(boundary_m) for cell in cells]


def _points_in(area: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform points inside ``area`` (rejection sampling over its bounds)."""
    minx, miny, maxx, maxy = area.bounds
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        xy = rng.uniform((minx, miny), (maxx, maxy), size=(n * 2, 2))
        out.append(xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])])
    return np.vstack(out)[:n]


def plots(compounds: list[RealCompound], boundary_m: BaseGeometry) -> list[BaseGeometry]:
    """Each compound's plot in metres: its outline, or a disc cut by its neighbours' cells.

    Why Voronoi: lane numbers two doors apart are ~10 m apart; cutting discs by the
    Voronoi cells keeps plots from overlapping, so every gate belongs to one compound.
    Compounds geocoded to the same spot share its cell in equal wedges.
    """
    points = [metric(c.point) for c in compounds]
    spots = sorted({(round(p.x, 1), round(p.y, 1)) for p in points})
    cells = dict(zip(spots, shapely.voronoi_polygons(MultiPoint(spots), extend_to=boundary_m,
                                                     ordered=True).geoms, strict=True)) \
        if len(spots) > 1 else {spots[0]: boundary_m} if spots else {}
    sharing: dict[tuple[float, float], list[int]] = {}
    for i, p in enumerate(points):
        sharing.setdefault((round(p.x, 1), round(p.y, 1)), []).append(i)
    outlines = shapely.union_all([metric(c.outline) for c in compounds if c.outline is not None])
    out = []
    for i, (comp, pt) in enumerate(zip(compounds, points, strict=True)):
        if comp.outline is not None:
            out.append(metric(comp.outline).intersection(boundary_m))
            continue
        spot = (round(pt.x, 1), round(pt.y, 1))
        area = pt.buffer(PLOT_RADIUS_M).intersection(cells[spot])
        group = sharing[spot]
        if len(group) > 1:
            area = area.intersection(_wedge(pt, group.index(i), len(group)))
        plot = area.intersection(boundary_m).difference(outlines)
        out.append(_largest(plot) if not plot.is_empty else pt.buffer(2.0))
    return out


def _wedge(centre: Point, i: int, n: int) -> Polygon:
    """The i-th of n equal angular sectors around ``centre`` (radius well past a plot)."""
    r = PLOT_RADIUS_M * 3
    angles = np.linspace(2 * np.pi * i / n, 2 * np.pi * (i + 1) / n, 16)
    return Polygon([(centre.x, centre.y), *((centre.x + r * np.cos(a), centre.y + r * np.sin(a)) for a in angles)])


def _largest(geom: BaseGeometry) -> Polygon:
    polys = getattr(geom, "geoms", [geom])
    return max((p for p in polys if isinstance(p, Polygon)), key=lambda p: p.area)


def gates_on(plot_m: BaseGeometry, boundary_m: BaseGeometry, n: int,
             rng: np.random.Generator) -> list[Point]:
    """n gate points on the plot's edge, each still inside the street after rounding."""
    ring = _largest(plot_m).exterior
    boundary = wgs84(boundary_m).buffer(0)
    out: list[Point] = []
    start = rng.uniform()
    for i in range(n):
        for attempt in range(40):
            frac = (start + i / n + attempt * 0.013) % 1.0
            pt = wgs84(ring.interpolate(frac, normalized=True))
            if boundary.contains(pt):
                out.append(pt)
                break
    return out


def person_name(rng: np.random.Generator) -> str:
    return str(rng.choice(list(SURNAMES))) + "".join(rng.choice(list(GIVEN), size=rng.integers(1, 3)))


def households(comp: RealCompound, plot_m: BaseGeometry, rng: np.random.Generator) -> int:
    """Households of a compound: a lane (弄) houses many, a single number few; scaled by area."""
    base = plot_m.area / 12.0 if comp.outline is not None else 0.0
    lo, hi = (60, 400) if comp.lane_no else (8, 60)
    return int(max(base, rng.integers(lo, hi)))


def free_points(boundary_m: BaseGeometry, taken_m: BaseGeometry, n: int,
                rng: np.random.Generator) -> Iterator[Point]:
    """n points inside the street and off every compound plot, in WGS-84."""
    area = boundary_m.difference(taken_m.buffer(MIN_GAP_M))
    if area.is_empty:
        area = boundary_m
    boundary = wgs84(boundary_m)
    made = 0
    while made < n:
        for x, y in _points_in(area, n, rng):
            pt = wgs84(Point(x, y))
            if made < n and boundary.contains(pt):
                made += 1
                yield pt


def shops(boundary_m: BaseGeometry, taken_m: BaseGeometry, area_km2: float,
          rng: np.random.Generator) -> list[Plan]:
    """Street shops beyond the real cafés: about 25 per km² of mixed kinds."""
    n = max(10, round(area_km2 * 25))
    kinds = rng.integers(0, len(SHOP_KINDS), size=n)
    return [Plan(f"{SHOP_KINDS[k][0]} {i + 1:03d}", SHOP_KINDS[k][1], pt)
            for i, (k, pt) in enumerate(zip(kinds, free_points(boundary_m, taken_m, n, rng), strict=True))]


def sites(boundary_m: BaseGeometry, taken_m: BaseGeometry, area_km2: float,
          rng: np.random.Generator) -> list[Plan]:
    """Construction sites, care homes, office buildings and markets, by density per km²."""
    out = []
    for kind, label, per_km2 in SITE_KINDS:
        n = max(1, round(area_km2 * per_km2))
        out += [Plan(f"{label} {i + 1:02d}", kind, pt)
                for i, pt in enumerate(free_points(boundary_m, taken_m, n, rng))]
    return out
