"""Rebuild the shipped dataset subsets from the project's shared public-data folder.

Why: a fresh clone has no shared folder, so the loader reads only what is copied here.
Run by hand when the shared data changes:
``python -m data.datasets.refresh SHARED_DATA_DIR`` (the workplace folder of public datasets).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

POI_FILES = {
    "metro_entrance": "dawn_metro_stations_shanghai_wgs84.geojson",
    "park": "dawn_parks_shanghai_wgs84.geojson",
    "cafe": "dawn_cafes_shanghai_wgs84.geojson",
}


def _gz_text(dst: Path) -> io.TextIOWrapper:
    """A gzip text writer with no timestamp in its header, so a rerun gives identical bytes."""
    return io.TextIOWrapper(gzip.GzipFile(dst, "wb", mtime=0), encoding="utf-8", newline="")


def _gzip_copy(src: Path, dst: Path) -> None:
    with src.open("rb") as fin, gzip.GzipFile(dst, "wb", mtime=0) as fout:
        shutil.copyfileobj(fin, fout)


def _addresses(src: Path, dst: Path) -> int:
    """Keep the geocode_flag == ok rows and the WGS-84 columns only (GCJ-02 ones dropped)."""
    cols = ["date", "district", "address", "wgs84_lng", "wgs84_lat", "geocode_flag"]
    n = 0
    with gzip.open(src, "rt", encoding="utf-8") as fin, _gz_text(dst) as fout:
        writer = csv.DictWriter(fout, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for row in csv.DictReader(fin):
            if row["geocode_flag"] == "ok":
                writer.writerow({c: row[c] for c in cols})
                n += 1
    return n


def _pois(src_dir: Path, dst: Path) -> int:
    cols = ["kind", "id", "name", "district", "lng", "lat"]
    n = 0
    with _gz_text(dst) as fout:
        writer = csv.DictWriter(fout, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for kind, name in POI_FILES.items():
            for feat in json.loads((src_dir / name).read_text(encoding="utf-8"))["features"]:
                p = feat["properties"]
                lng, lat = feat["geometry"]["coordinates"][:2]
                writer.writerow({"kind": kind, "id": p["id"], "name": p["name"],
                                 "district": p["district"], "lng": lng, "lat": lat})
                n += 1
    return n


def _daily(src_dir: Path, dst: Path) -> int:
    """Official new confirmed / asymptomatic counts per day, city (region 上海市) and per district."""
    cols = ["date", "region", "confirm", "wzz"]
    n = 0
    with _gz_text(dst) as fout:
        writer = csv.DictWriter(fout, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        with (src_dir / "helloint_city_daily.csv").open(encoding="utf-8") as fin:
            for row in csv.DictReader(fin):
                writer.writerow({"date": row["date"], "region": "上海市", "confirm": row["confirm"], "wzz": row["wzz"]})
                n += 1
        with (src_dir / "helloint_district_daily.csv").open(encoding="utf-8") as fin:
            for row in csv.DictReader(fin):
                writer.writerow({c: row[c] for c in cols})
                n += 1
    return n


def _basemap(src_dir: Path, dst: Path) -> int:
    """OSM road centrelines (name and class only) and the approximate river outlines of 黄浦."""
    feats = []
    for feat in json.loads((src_dir / "huangpu_roads_osm_wgs84.geojson").read_text(encoding="utf-8"))["features"]:
        p = feat["properties"]
        feats.append({"type": "Feature", "geometry": feat["geometry"],
                      "properties": {"kind": "road", "name": p.get("name"), "highway": p["highway"]}})
    for feat in json.loads((src_dir / "huangpu_water_approx_wgs84.geojson").read_text(encoding="utf-8"))["features"]:
        feats.append({"type": "Feature", "geometry": feat["geometry"], "properties": {"kind": "water"}})
    with _gz_text(dst) as fout:
        json.dump({"type": "FeatureCollection", "features": feats}, fout, ensure_ascii=False, separators=(",", ":"))
    return len(feats)


def main(shared: Path) -> None:
    _gzip_copy(shared / "shanghai-admin-boundaries/shanghai_townships_wgs84.geojson",
               HERE / "townships_wgs84.geojson.gz")
    _gzip_copy(shared / "shanghai-residential-estates-2022/helloint_estates_wgs84.geojson",
               HERE / "estates_wgs84.geojson.gz")
    print("addresses:", _addresses(shared / "shanghai-2022-covid-addresses/lewangdev_addresses_daily_shanghai.csv.gz",
                                   HERE / "case_addresses_2022_wgs84.csv.gz"))
    print("pois:", _pois(shared / "shanghai-pois", HERE / "pois_wgs84.csv.gz"))
    print("basemap:", _basemap(shared / "huangpu-osm-basemap", HERE / "basemap_huangpu_wgs84.geojson.gz"))
    print("daily:", _daily(shared / "shanghai-2022-covid-daily", HERE / "covid_daily_2022.csv.gz"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
