"""grw: a growing layer (the cases) is brought to a new version by the rows ingest names,
not rebuilt — and ends up exactly as a whole build would."""

from __future__ import annotations

import datetime as dt
import json
import random
import time

import numpy as np
import pytest
from sqlalchemy import select

from dashboard.answers import COLUMNS_MAGIC, Encoded, Overlay, columnar
from dashboard.app import create_app
from data.models import Case
from data.pipeline import streams
from data.pipeline.ingest import Worker
from data.read import cache
from data.store import session_factory
from layers import cases
from layers.base import Query
from tests.conftest import config_for, person_id, signed_in
from tests.ingesting import drain, tag


@pytest.fixture
def app(loaded, redis_url, client, tmp_path):
    engine, _ = loaded
    cfg = config_for(tmp_path, engine)
    return create_app(cfg, redis_url).server


def post_cases(engine, client, config, events: list[dict]) -> None:
    streams.append(client, "cases", [json.dumps(e, ensure_ascii=False) for e in events])
    drain(Worker(engine, client, config, consumer=f"grw-{tag()}"), client)


def case(t: str, i: int, compound: str, ts: dt.datetime, category: str = "confirmed") -> dict:
    return {"event_id": f"{t}-{i}", "ts": ts.isoformat(), "person_id": person_id(7000 + i),
            "category": category, "compound_id": compound}


def whole_now(engine, street: str) -> dict[str, dict]:
    with session_factory(engine)() as s:
        fc = cases.features(s, Query(street, dt.datetime.now(dt.UTC)))
    return {f["id"]: f for f in fc["features"]}


def test_grw001_new_cases_patch_the_layer_grown_from_the_last_version(loaded, app, client, config):
    engine, data = loaded
    web, growth, street, t = signed_in(app), app.config["OPSMAP_GROWTH"], data.street.id, tag()
    url = f"/api/v1/layers/cases?street={street}"
    now = dt.datetime.now(dt.UTC)
    post_cases(engine, client, config, [case(t, 0, data.compounds[3].id, now - dt.timedelta(minutes=5))])
    first = web.get(url)
    v1, before = first.headers["X-Opsmap-Version"], {f["id"]: f for f in first.get_json()["features"]}
    assert before == whole_now(engine, street)

    post_cases(engine, client, config, [case(t, i, data.compounds[i].id, now, c) for i, c in
                                        ((1, "suspected"), (2, "close_contact"))])
    with session_factory(engine)() as s:
        new_ids = {str(i) for i in s.scalars(select(Case.id).where(Case.event_id.in_([f"{t}-1", f"{t}-2"])))}
    version = cache.data_version(client, cases.changed_by)
    patch = web.get(f"{url}&base={v1}&v={version}").get_json()
    assert patch["type"] == "Patch" and patch["base"] == v1
    assert {f["id"] for f in patch["upsert"]} == new_ids and patch["remove"] == []
    grown = growth._states[("cases", street, None, "live")]
    assert grown.encoded.delta.base == v1 and grown.version == version  # grown from the first answer, not rebuilt
    merged = before | {f["id"]: f for f in patch["upsert"]}
    assert merged == whole_now(engine, street)  # and exactly what a whole build gives
    with session_factory(engine)() as s:  # whose version is the same: it names the features, not their order
        assert Encoded.of(cases.features(s, Query(street, dt.datetime.now(dt.UTC)))).etag == patch["version"]
    assert {f["id"]: f for f in web.get(f"{url}&v={version}").get_json()["features"]} == merged


def test_grw002_a_case_leaves_the_grown_layer_when_its_window_ends(loaded, app, client, config):
    engine, data = loaded
    web, street, t = signed_in(app), data.street.id, tag()
    url = f"/api/v1/layers/cases?street={street}"
    window = dt.timedelta(days=config.case_window_days)
    now = dt.datetime.now(dt.UTC)
    post_cases(engine, client, config, [case(t, 0, data.compounds[5].id, now - window + dt.timedelta(seconds=2))])
    with session_factory(engine)() as s:
        old_id = str(s.scalar(select(Case.id).where(Case.event_id == f"{t}-0")))
    first = web.get(url)
    v1 = first.headers["X-Opsmap-Version"]
    assert old_id in {f["id"] for f in first.get_json()["features"]}
    time.sleep(2.5)  # its window ends
    post_cases(engine, client, config, [case(t, 1, data.compounds[6].id, dt.datetime.now(dt.UTC))])
    patch = web.get(f"{url}&base={v1}&v={cache.data_version(client, cases.changed_by)}").get_json()
    assert old_id in patch["remove"] and len(patch["upsert"]) == 1
    assert set(whole_now(engine, street)) == ({f["id"] for f in first.get_json()["features"]} - {old_id}
                                              | {patch["upsert"][0]["id"]})


def test_grw003_a_version_names_the_rows_its_batch_inserted_even_after_a_crash(loaded, client, config):
    engine, data = loaded
    t = tag()

    class CrashAfterCommit(Worker):
        def _finish(self, out, ahead=False):
            raise SystemExit("killed after the SQL commit, before the Redis side")

    streams.append(client, "cases", [json.dumps(case(t, i, data.compounds[i].id, dt.datetime.now(dt.UTC)))
                                     for i in range(3)])
    before = cache.data_version(client)
    with pytest.raises(SystemExit):
        CrashAfterCommit(engine, client, config, consumer="doomed").step(block_ms=10)
    assert cache.data_version(client, cases.changed_by) <= before  # nothing announced yet
    time.sleep(0.6)  # past OPSMAP_INGEST_CLAIM_IDLE_MS
    drain(Worker(engine, client, config, consumer="rescuer"), client)
    with session_factory(engine)() as s:
        ids = sorted(s.scalars(select(Case.id).where(Case.event_id.like(f"{t}-%"))))
    version = cache.data_version(client, cases.changed_by)
    assert len(ids) == 3 and version > before  # the replay moved the cases layer's version
    assert sorted(cache.added_since(client, before, version, "case")) == ids


def test_grw004_added_since_says_when_it_no_longer_knows(client, monkeypatch):
    monkeypatch.setattr(cache, "ADDED_KEEP", 3)
    v = [cache.bump_version(client, {"stream:cases"}, {"case": [10 * i]}) for i in range(1, 6)]
    quiet = cache.bump_version(client, {"stream:checkins"})  # a batch that inserted nothing: no entry, no gap
    assert cache.added_since(client, v[2], quiet, "case") == [40, 50]
    assert cache.added_since(client, v[1], v[4], "case") == [30, 40, 50]
    assert cache.added_since(client, v[0], v[4], "case") is None  # version 2's rows were trimmed away
    assert cache.added_since(client, quiet, quiet, "case") == []
    assert cache.added_since(client, v[4], quiet, "other") == []
    client.delete(cache.VERSION_KEY)  # a counter reset (the stream is of other versions now)
    again = cache.bump_version(client, {"stream:cases"}, {"case": [99]})
    assert again == 1 and cache.added_since(client, 0, again, "case") == [99]


def test_grw005_an_overlay_is_its_versions_dict_and_leaves_older_versions_as_they_were():
    """Each version of the layer's parts shares its base with the last: set and popped keys,
    the order (a key set again moves to the end), folding into a new base after many changes,
    and the versions before unchanged by what the later ones did."""
    rng = random.Random(5)
    model = {f"f{i}": i for i in range(2000)}
    version, versions = Overlay(dict(model)), []
    for v in range(60):
        version = version.edited()
        for _ in range(60):
            key = f"f{rng.randrange(2600)}"
            if rng.random() < 0.4:
                assert version.pop(key) == model.pop(key, None)
            else:
                model.pop(key, None)
                model[key] = version_value = v * 10_000 + rng.randrange(10_000)
                version.set(key, version_value)
        assert list(version.items()) == list(model.items())
        assert list(version) == list(model) and list(version.values()) == list(model.values())
        assert len(version) == len(model)
        for key in (f"f{i}" for i in range(0, 2600, 7)):
            assert (key in version) == (key in model) and version.get(key) == model.get(key)
        versions.append((version, dict(model)))
    assert len({id(o._base) for o, _ in versions}) > 1, "the changes were folded into a new base"
    for older, was in versions:
        assert list(older.items()) == list(was.items())


def _from_columns(body: bytes) -> dict[str, dict]:
    """The features a layer in binary columns stands for, read as dashboard.answers.columnar
    describes them (assets/worker/clusters.js reads them the same way)."""
    assert body[:8] == COLUMNS_MAGIC
    length = int.from_bytes(body[8:12], "little")
    header, start = json.loads(body[12:12 + length]), -(-(12 + length) // 8) * 8
    dtypes = {"f64": "<f8", "i32": "<i4", "u8": "<u1", "u16": "<u2", "u32": "<u4"}

    def column(spec: dict) -> list:
        if "list" in spec:
            return spec["list"]
        array = np.frombuffer(body, dtypes[spec["array"]], header["count"], start + spec["at"]).tolist()
        if "values" in spec:
            return [spec["values"][code] for code in array]
        return [str(v) for v in array] if spec.get("text") else [v / spec.get("scale", 1) for v in array]

    ids = column(header["ids"])
    props = {name: ids if spec.get("same") == "ids" else column(spec) for name, spec in header["properties"].items()}
    return {fid: {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lng, lat]},
                  "properties": {name: values[i] for name, values in props.items()}}
            for i, (fid, lng, lat) in enumerate(zip(ids, column(header["lng"]), column(header["lat"]), strict=True))}


def test_grw006_the_case_layer_in_columns_is_the_same_layer(loaded, app, client, config):
    """What the cluster worker loads (form=columns) is the GeoJSON answer feature for feature,
    under the same layer version (patches go on from it) but its own ETag; repeated texts (the
    compound's name, the category) travel once; a layer of polygons stays GeoJSON."""
    engine, data = loaded
    web, street, t = signed_in(app), data.street.id, tag()
    now = dt.datetime.now(dt.UTC)
    post_cases(engine, client, config, [case(t, i, data.compounds[i % 3].id, now - dt.timedelta(minutes=i), c)
                                        for i, c in enumerate(["confirmed", "suspected", "close_contact"] * 10)])
    url = f"/api/v1/layers/cases?street={street}"
    geo, cols = web.get(url), web.get(f"{url}&form=columns")
    assert cols.mimetype == "application/octet-stream" and len(geo.get_json()["features"]) >= 30
    assert _from_columns(cols.data) == {f["id"]: f for f in geo.get_json()["features"]}
    assert cols.headers["X-Opsmap-Version"] == geo.headers["X-Opsmap-Version"]
    assert cols.headers["ETag"] != geo.headers["ETag"]
    header = json.loads(cols.data[12:12 + int.from_bytes(cols.data[8:12], "little")])
    assert header["properties"]["kind"]["array"] == "u8"  # given once per value, with codes
    assert header["lng"] == {"array": "i32", "scale": 1e7, "at": header["lng"]["at"]}  # 7 decimals: integers
    assert web.get(f"/api/v1/layers/boundaries?street={street}&form=columns").get_json()["type"] == "FeatureCollection"


def test_grw007_binary_columns_read_back_as_the_features_whatever_their_values():
    """Each kind of column (dashboard.answers.columnar) reads back as the very values: integers,
    floats of 7 decimals (as integers) and of more, repeated texts with None, decimal ids, and
    what fits none (ids with a leading zero, integers beyond 2**53, booleans) as JSON."""
    def point(fid: str, lng: float, lat: float, **properties: object) -> dict:
        return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lng, lat]},
                "properties": properties}

    def kinds(features: list[dict]) -> dict[str, str]:
        body = columnar(features)
        assert body is not None and _from_columns(body) == {f["id"]: f for f in features}
        header = json.loads(body[12:12 + int.from_bytes(body[8:12], "little")])
        shown = {k: header[k] for k in ("ids", "lng", "lat")} | header["properties"]
        suffix = {"scale": "-scaled", "text": "-text", "values": "-codes"}
        return {k: "list" if "list" in v else "same" if "same" in v else
                v["array"] + "".join(suffix.get(key, "") for key in v) for k, v in shown.items()}

    rng = random.Random(8)
    many = [point(str(i), round(121.4 + rng.random() / 10, 7), 31.2 + rng.random() / 10, id=str(i), n=i - 5,
                  big=2**53 + 1 + 2 * i if i % 2 else 0.5, kind=[None, "甲", "乙"][i % 3], flag=i % 2 == 0)
            for i in range(1, 41)]
    assert kinds(many) == {"ids": "u32-text", "lng": "i32-scaled", "lat": "f64", "id": "same", "n": "i32",
                           "big": "list", "kind": "u8-codes", "flag": "list"}
    assert kinds([point("007", 1.5, 2, x=None), point("7", 3, 4.25, x=None)]) == {
        "ids": "list", "lng": "i32-scaled", "lat": "i32-scaled", "x": "list"}
    assert columnar([point("1", 0, 0, a=1), point("2", 0, 0, b=1)]) is None  # properties differ
    assert columnar([{**point("1", 0, 0), "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]) is None
    assert kinds([]) == {"ids": "u32-text", "lng": "u32-text", "lat": "u32-text"}  # empty arrays
