"""Read the shipped public datasets, validate them, and derive one street's real geography.

Why validation here: a bad file must be rejected with file, row and field named *before*
anything is written, so a failed load leaves the database as it was.
All coordinates read and returned are WGS-84 (EPSG:4326); metric work uses UTM 51N.
"""

from __future__ import annotations

import difflib
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

WGS84 = "EPSG:4326"
METRIC = "EPSG:32651"  # UTM zone 51N: metres around Shanghai
TOWNSHIPS = "townships_wgs84.geojson.gz"
ADDRESSES = "case_addresses_2022_wgs84.csv.gz"
ESTATES = "estates_wgs84.geojson.gz"
POIS = "pois_wgs84.csv.gz"

# Shanghai's extent with a margin: a coordinate outside is a geocoding or typing error.
LNG_RANGE = (120.8, 122.2)
LAT_RANGE = (30.6, 31.9)
_TRAILING = ",，、;；.。 \t"
_ADDRESS = re.compile(r"^(?P<road>.*?)(?P<no>\d+)(?P<unit>弄|号)")
_SUFFIXES = ("街道", "镇", "乡")

to_metric = Transformer.from_crs(WGS84, METRIC, always_xy=True).transform
to_wgs84 = Transformer.from_crs(METRIC, WGS84, always_xy=True).transform


class DatasetError(ValueError):
    """A dataset failed validation; the message names the file, the row and the field."""

    def __init__(self, file: Path | str, row: int | None, field: str | None, problem: str) -> None:
        where = [Path(file).name]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {problem}")
        self.file, self.row, self.field, self.problem = str(file), row, field, problem


class UnknownStreet(LookupError):
    """No township has that name; carries the closest names so the user can pick one."""

    def __init__(self, name: str, close: list[str]) -> None:
        hint = ("close matches: " + "、".join(close)) if close else "no close match"
        super().__init__(f"unknown street {name!r}; {hint}. `opsmap streets` lists all of them.")
        self.name, self.close = name, close


@dataclass(frozen=True)
class Township:
    """One of Shanghai's townships: its source feature number, names and WGS-84 polygon."""

    feature_id: int
    name: str
    district: str
    geom: BaseGeometry

    @property
    def street_id(self) -> str:
        return f"S{self.feature_id:03d}"


@dataclass
class RealCompound:
    """A compound derived from published addresses, before the synthetic parts are added."""

    key: str
    road: str
    lane_no: str | None
    addresses: dict[str, tuple[float, float]] = field(default_factory=dict)
    outline: BaseGeometry | None = None
    outline_name: str | None = None

    @property
    def point(self) -> Point:
        lngs, lats = zip(*self.addresses.values(), strict=True)
        return Point(float(np.mean(lngs)), float(np.mean(lats)))

    @property
    def name(self) -> str:
        return self.outline_name or self.key


def clean_address(address: str) -> str:
    """Published addresses sometimes keep scraping debris (a trailing comma); strip it."""
    return address.strip().rstrip(_TRAILING)


def compound_key(address: str) -> tuple[str, str, str | None]:
    """``宁波路430弄1号`` → (``宁波路430弄``, ``宁波路``, ``430``): addresses in one 弄 share a key."""
    m = _ADDRESS.match(address)
    if not m:
        return address, address, None
    if m["unit"] == "弄":
        return f"{m['road']}{m['no']}弄", m["road"], m["no"]
    return address, m["road"], None


def _normalise(name: str) -> str:
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _feature_geometry(file: Path, i: int, feat: dict) -> BaseGeometry:
    try:
        geom = shape(feat["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(file, i, "geometry", f"not a GeoJSON geometry ({exc})") from None
    if geom.is_empty:
        raise DatasetError(file, i, "geometry", "empty geometry")
    minx, miny, maxx, maxy = geom.bounds
    if not (LNG_RANGE[0] <= minx and maxx <= LNG_RANGE[1] and LAT_RANGE[0] <= miny and maxy <= LAT_RANGE[1]):
        raise DatasetError(file, i, "geometry", f"outside Shanghai in WGS-84: bounds {geom.bounds}")
    return geom if geom.is_valid else shapely.make_valid(geom)


def _features(file: Path) -> list[dict]:
    try:
        with gzip.open(file, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
        return list(doc["features"])
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(file, None, None, f"not a readable gzipped GeoJSON FeatureCollection ({exc})") from None


def _text(file: Path, i: int, props: object, name: str) -> str:
    value = props.get(name) if isinstance(props, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(file, i, name, f"missing or empty (got {value!r})")
    return value.strip()


def read_townships(directory: Path) -> list[Township]:
    """All townships (feature ``row`` numbers are 1-based, as in the error messages)."""
    file = directory / TOWNSHIPS
    out = []
    for i, feat in enumerate(_features(file), start=1):
        props = feat.get("properties")
        out.append(Township(i - 1, _text(file, i, props, "STREET"), _text(file, i, props, "AREA"),
                            _feature_geometry(file, i, feat)))
    return out


def find_township(townships: list[Township], name: str) -> Township:
    """The township called ``name`` (``南京东路`` or ``南京东路街道``); else UnknownStreet with hints."""
    wanted = _normalise(name.strip())
    for t in townships:
        if _normalise(t.name) in (wanted, wanted.removesuffix("路")) or t.name == name:
            return t
    names = [t.name for t in townships]
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.4)
    if not close:  # short Chinese names: rank by shared characters instead
        scored = sorted(((len(set(wanted) & set(n)), n) for n in names), key=lambda s: -s[0])
        close = [n for score, n in scored[:5] if score]
    raise UnknownStreet(name, close)


def _read_csv(file: Path, numeric: tuple[str, ...], required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(file, dtype=str, keep_default_na=False, compression="gzip")
    except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(file, None, None, f"not a readable gzipped CSV ({exc})") from None
    missing = [c for c in (*required, *numeric) if c not in df.columns]
    if missing:
        raise DatasetError(file, None, missing[0], "column missing from the header")
    for col in required:
        bad = df.index[df[col].str.strip() == ""]
        if len(bad):
            raise DatasetError(file, int(bad[0]) + 1, col, "empty")
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df.index[values.isna()]
        if len(bad):
            raise DatasetError(file, int(bad[0]) + 1, col, f"not a number: {df.at[bad[0], col]!r}")
        df[col] = values
    for lng_col, lat_col in (("wgs84_lng", "wgs84_lat"), ("lng", "lat")):
        if lng_col in numeric:
            for col, (lo, hi) in ((lng_col, LNG_RANGE), (lat_col, LAT_RANGE)):
                bad = df.index[~df[col].between(lo, hi)]
                if len(bad):
                    raise DatasetError(file, int(bad[0]) + 1, col,
                                       f"{df.at[bad[0], col]} is outside Shanghai in WGS-84 [{lo}, {hi}]")
    return df


def read_case_addresses(directory: Path, boundary: BaseGeometry) -> pd.DataFrame:
    """Published 2022 case-address rows (date, address, lng, lat) inside ``boundary``.

    Only rows whose geocode was checked (``geocode_flag == ok``) are kept; addresses are
    cleaned of trailing punctuation.
    """
    file = directory / ADDRESSES
    df = _read_csv(file, numeric=("wgs84_lng", "wgs84_lat"), required=("date", "address", "geocode_flag"))
    dates = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(df.index[dates.isna()][0])
        raise DatasetError(file, row + 1, "date", f"not a YYYY-MM-DD date: {df.at[row, 'date']!r}")
    df["date"] = dates.dt.date
    df = df[df["geocode_flag"] == "ok"]
    inside = shapely.contains_xy(boundary, df["wgs84_lng"].to_numpy(), df["wgs84_lat"].to_numpy())
    df = df[inside].copy()
    df["address"] = df["address"].map(clean_address)
    return df.rename(columns={"wgs84_lng": "lng", "wgs84_lat": "lat"})[["date", "address", "lng", "lat"]]


def read_estates(directory: Path, boundary: BaseGeometry) -> gpd.GeoDataFrame:
    """小区 outlines (Polygon features only) that touch ``boundary``, clipped to it."""
    file = directory / ESTATES
    rows = []
    for i, feat in enumerate(_features(file), start=1):
        props = feat.get("properties")
        geom = _feature_geometry(file, i, feat)
        if geom.geom_type not in ("Polygon", "MultiPolygon") or not geom.intersects(boundary):
            continue
        rows.append({"key": clean_address(_text(file, i, props, "address_key")),
                     "district": (props or {}).get("district") or "",
                     "name": _text(file, i, props, "estate_name"),
                     "geometry": geom.intersection(boundary)})
    return gpd.GeoDataFrame(rows, columns=["key", "district", "name", "geometry"], crs=WGS84)


def read_pois(directory: Path, boundary: BaseGeometry) -> pd.DataFrame:
    """Metro entrances, parks and cafés inside ``boundary`` (columns kind, id, name, lng, lat)."""
    file = directory / POIS
    df = _read_csv(file, numeric=("lng", "lat"), required=("kind", "id", "name"))
    inside = shapely.contains_xy(boundary, df["lng"].to_numpy(), df["lat"].to_numpy())
    return df[inside].sort_values(["kind", "id"]).reset_index(drop=True)


def derive_compounds(addresses: pd.DataFrame, estates: gpd.GeoDataFrame) -> list[RealCompound]:
    """Distinct addresses → compounds: same 弄 merged; those inside one estate outline merged too.

    Why merge by outline: an outline is one 小区 with one set of gates, however many
    numbers of its lanes appeared in the lists.
    """
    points = addresses.groupby("address")[["lng", "lat"]].median()
    by_key: dict[str, RealCompound] = {}
    for address, (lng, lat) in points.iterrows():
        key, road, lane = compound_key(str(address))
        by_key.setdefault(key, RealCompound(key, road, lane)).addresses[str(address)] = (float(lng), float(lat))

    estate_by_key = {compound_key(e.key.removeprefix(e.district))[0]: e for e in estates.itertuples()}
    merged: dict[str, RealCompound] = {}
    for key in sorted(by_key):
        comp = by_key[key]
        estate = estate_by_key.get(key)
        if estate is None:
            hits = estates[estates.contains(comp.point)]
            estate = next(hits.itertuples(), None)
        if estate is None:
            merged[key] = comp
            continue
        holder = merged.setdefault(f"estate:{estate.name}:{estate.Index}",
                                   RealCompound(key, comp.road, comp.lane_no, {}, estate.geometry,
                                                estate.name if estate.name != estate.key else None))
        holder.addresses.update(comp.addresses)
    return sorted(merged.values(), key=lambda c: c.key)
