"""geo: `opsmap load` puts the real 南京东路 (or any township) into SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from shapely.geometry import Point
from sqlalchemy import Engine, func, select

from data.models import (
    Base,
    Committee,
    Compound,
    CompoundAddress,
    Gate,
    Shop,
    Site,
    StateChange,
    Street,
    WorkTarget,
)
from data.settings import PROJECT_ROOT
from data.sources import geodata
from data.sources.loader import EPOCH, build, load_street
from data.sources.synthetic import metric
from data.store import session_factory, states_as_of, transaction
from tests.conftest import DATASETS, SEED

# Stored coordinates keep 7 decimals (≈1 cm); edges shared with the street boundary may
# lie that far outside it, so areas are checked against the boundary grown by ~10 cm.
AREA_TOLERANCE_DEG = 1e-6
STREET_MODELS = (Committee, Compound, Site, Shop)


def _count(engine: Engine, model: type[Base], *where) -> int:
    with session_factory(engine)() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _dump(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, minus surrogate keys and load times: equal dumps = equal data."""
    out = {}
    with session_factory(engine)() as s:
        for model in (Street, Committee, Compound, CompoundAddress, Gate, Site, Shop, WorkTarget, StateChange):
            cols = [c for c in model.__table__.columns
                    if c.key not in {"loaded_at"} and not (c.key == "id" and c.autoincrement is True)]
            rows = s.execute(select(*cols)).all()
            out[model.__tablename__] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def test_geo001_nanjing_east_road_has_its_real_compounds(loaded):
    engine, data = loaded
    source = pd.read_csv(DATASETS / geodata.ADDRESSES, dtype=str)
    town = geodata.find_township(geodata.read_townships(DATASETS), "南京东路")
    ok = source[source.geocode_flag == "ok"]
    inside = ok[[town.geom.contains(Point(float(x), float(y)))
                 for x, y in zip(ok.wgs84_lng, ok.wgs84_lat, strict=True)]]
    distinct = {geodata.clean_address(a) for a in inside.address}
    assert len(distinct) == 344
    assert _count(engine, CompoundAddress) == 344
    with session_factory(engine)() as s:
        stored = set(s.scalars(select(CompoundAddress.address)))
    assert stored == distinct
    assert _count(engine, Compound) >= 200
    assert data.street.name == "南京东路" and data.street.district == "黄浦区"
    assert 2.0 < data.street.area_km2 < 2.8  # official: about 2.36 km²


def test_geo002_all_geometry_is_wgs84_inside_the_street(loaded):
    engine, _ = loaded
    with session_factory(engine)() as s:
        street = s.scalars(select(Street)).one()
        boundary = street.geom
        grown = boundary.buffer(AREA_TOLERANCE_DEG)
        lng0, lat0, lng1, lat1 = boundary.bounds
        assert 121.0 < lng0 < lng1 < 122.0 and 30.9 < lat0 < lat1 < 31.6  # degrees, not metres
        for model in STREET_MODELS:
            for row in s.scalars(select(model)):
                assert grown.covers(row.geom), f"{model.__name__} {row.id} outside the street"
                if model in (Site, Shop):
                    assert boundary.contains(row.geom), f"{row.id} point not strictly inside"
        for comp in s.scalars(select(Compound)):
            assert grown.covers(comp.footprint), f"footprint of {comp.id} outside the street"
        for gate in s.scalars(select(Gate)):
            assert boundary.contains(gate.geom), f"gate {gate.id} outside the street"


def test_geo003_gates_lie_on_their_compound_edge(loaded):
    engine, _ = loaded
    with session_factory(engine)() as s:
        gates = s.scalars(select(Gate)).all()
        assert len(gates) >= _count(engine, Compound)  # every compound has at least one gate
        for gate in gates:
            edge = metric(gate.compound.footprint).exterior
            assert metric(gate.geom).distance(edge) < 0.05, f"{gate.id} is not on its compound's edge"


def test_geo004_loading_again_changes_nothing(loaded):
    engine, _ = loaded
    before = _dump(engine)
    load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
    assert _dump(engine) == before


def test_geo005_reload_keeps_state_that_events_changed(engine):
    load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
    later = dt.datetime(2022, 4, 10, 9, 0, tzinfo=dt.UTC)
    with transaction(engine) as s:
        gate = s.scalars(select(Gate).order_by(Gate.id)).first()
        gate_id, was = gate.id, gate.status
        gate.status = "closed" if was != "closed" else "open"
        s.add(StateChange(entity_kind="gate", entity_id=gate_id, at=later,
                          attrs={"status": gate.status}, source="event", event_id="e-1"))
    load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
    with session_factory(engine)() as s:
        assert s.get(Gate, gate_id).status != was
        assert states_as_of(s, "gate", EPOCH, [gate_id])[gate_id]["status"] == was
        assert states_as_of(s, "gate", later, [gate_id])[gate_id]["status"] != was
        before = states_as_of(s, "gate", EPOCH - dt.timedelta(seconds=1), [gate_id])
        assert before == {}  # nothing existed before the history starts


def test_geo006_another_street_loads_beside_the_first(engine):
    nd = load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
    wt = load_street(engine, DATASETS, "外滩", SEED, show_progress=False)
    assert nd.street.id != wt.street.id
    assert _count(engine, Street) == 2
    assert _count(engine, Compound, Compound.street_id == wt.street.id) >= 200
    with session_factory(engine)() as s:
        boundary = s.get(Street, wt.street.id).geom
        for gate in s.scalars(select(Gate).join(Compound).where(Compound.street_id == wt.street.id)):
            assert boundary.contains(gate.geom)
        outlined = s.scalars(select(Compound).where(Compound.has_outline)).all()
        assert [c.outline_name for c in outlined] == ["瑞福小区"]  # the one estate outline in 外滩


def test_geo007_unknown_street_lists_close_matches():
    towns = geodata.read_townships(DATASETS)
    with pytest.raises(geodata.UnknownStreet) as err:
        geodata.find_township(towns, "南京东")
    assert "南京东路" in err.value.close
    assert geodata.find_township(towns, "南京东路街道").name == "南京东路"
    assert geodata.find_township(towns, "半淞园路街道").name == "半淞园"
    assert len(towns) == 214


def test_geo008_cli_rejects_an_unknown_street(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OPSMAP_VAR_DIR": str(tmp_path), "HOME": str(tmp_path)}
    for name, hint in (("不存在", "no close match"), ("南京东", "南京东路")):
        proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "load", "--street", name],
                              capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120)
        assert proc.returncode != 0
        assert f"unknown street '{name}'" in proc.stderr and hint in proc.stderr


def _corrupt_copy(tmp_path: Path, file: str, line_no: int, column: str, value: str) -> Path:
    target = tmp_path / "datasets"
    shutil.copytree(DATASETS, target)
    with gzip.open(target / file, "rt", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    df.loc[line_no - 1, column] = value
    with gzip.open(target / file, "wt", encoding="utf-8") as fh:
        df.to_csv(fh, index=False)
    return target


@pytest.mark.parametrize(("file", "column", "value", "problem"), [
    (geodata.ADDRESSES, "wgs84_lat", "abc", "not a number: 'abc'"),
    (geodata.ADDRESSES, "date", "2022-13-45", "not a YYYY-MM-DD date"),
    (geodata.POIS, "lng", "12.5", "12.5 is outside Shanghai"),
])
def test_geo009_bad_file_is_rejected_by_file_row_field_and_nothing_changes(engine, tmp_path, file, column,
                                                                            value, problem):
    load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
    before = _dump(engine)
    bad = _corrupt_copy(tmp_path, file, 7, column, value)
    with pytest.raises(geodata.DatasetError) as err:
        load_street(engine, bad, "外滩", SEED, show_progress=False)
    assert str(err.value).startswith(f"{file}: row 7: field '{column}': {problem}")
    assert _dump(engine) == before


def test_geo010_bad_geometry_is_rejected(tmp_path):
    target = tmp_path / "datasets"
    shutil.copytree(DATASETS, target)
    with gzip.open(target / geodata.TOWNSHIPS, "rt", encoding="utf-8") as fh:
        doc = json.load(fh)
    doc["features"][2]["geometry"] = {"type": "Polygon", "coordinates": [[[1, 2], [3, 4]]]}
    with gzip.open(target / geodata.TOWNSHIPS, "wt", encoding="utf-8") as fh:
        json.dump(doc, fh)
    with pytest.raises(geodata.DatasetError, match=r"townships_wgs84.geojson.gz: row 3: field 'geometry'"):
        geodata.read_townships(target)


def test_geo011_synthetic_parts_are_marked_and_real_ones_are_not(loaded):
    engine, _ = loaded
    with session_factory(engine)() as s:
        assert all(c.synthetic for c in s.scalars(select(Committee)))
        assert all(g.synthetic for g in s.scalars(select(Gate)))
        metro = s.scalars(select(Site).where(Site.kind == "metro_entrance")).all()
        cafes = s.scalars(select(Shop).where(Shop.category == "cafe")).all()
        assert metro and not any(m.synthetic for m in metro) and all(m.source_ref for m in metro)
        assert cafes and not any(c.synthetic for c in cafes)
        kinds = set(s.scalars(select(Site.kind).where(Site.synthetic)))
        assert kinds == {"construction_site", "elderly_care", "office_building", "market"}
    source_md = (DATASETS / "SOURCE.md").read_text(encoding="utf-8")
    assert "synthetic" in source_md


def test_geo012_same_seed_same_street_other_seed_other_gates():
    one, two = build(DATASETS, "南京东路", SEED), build(DATASETS, "南京东路", SEED)
    other = build(DATASETS, "南京东路", SEED + 1)
    gates = lambda d: [(g.id, g.geom.wkt, g.status, tuple(g.roster)) for g in d.gates]  # noqa: E731
    assert gates(one) == gates(two)
    assert gates(one) != gates(other)
    assert [c.address for c in one.compounds] == [c.address for c in other.compounds]  # real part fixed


def test_geo013_lane_addresses_merge_into_one_compound():
    assert geodata.compound_key("宁波路430弄1号") == ("宁波路430弄", "宁波路", "430")
    assert geodata.compound_key("宁波路430弄") == ("宁波路430弄", "宁波路", "430")
    assert geodata.compound_key("九江路558号") == ("九江路558号", "九江路", None)
    assert geodata.clean_address(" 大沽路139弄，") == "大沽路139弄"
    rows = pd.DataFrame({"address": ["宁波路430弄", "宁波路430弄1号", "九江路558号"],
                         "lng": [121.47, 121.4702, 121.46], "lat": [31.23, 31.2302, 31.24]})
    empty = geodata.read_estates(DATASETS, Point(0, 0).buffer(0.001))
    comps = geodata.derive_compounds(rows, empty)
    assert [(c.key, sorted(c.addresses)) for c in comps] == [
        ("九江路558号", ["九江路558号"]), ("宁波路430弄", ["宁波路430弄", "宁波路430弄1号"])]
