"""db: migrations match the models on both engines; time survives the round trip."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from shapely.geometry import Point
from sqlalchemy import inspect, select

from data.models import Base, Street
from data.sources.loader import EPOCH
from data.store import among, is_empty, migrate, session_factory, transaction


def test_db001_migrations_build_exactly_the_models(engine):
    assert is_empty(engine)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert {"street", "gate", "state_change", "checkin", "work_order_event"} <= set(inspect(engine).get_table_names())


def test_db002_times_come_back_aware_and_equal(engine):
    migrate(engine)
    shanghai = dt.timezone(dt.timedelta(hours=8))
    with transaction(engine) as s:
        s.add(Street(id="S999", name="测试", district="测试区", geom=Point(121.47, 31.23).buffer(0.01),
                     area_km2=1.0, seed=1, loaded_at=dt.datetime(2022, 4, 10, 8, 0, tzinfo=shanghai)))
    with session_factory(engine)() as s:
        street = s.get(Street, "S999")
        assert street.loaded_at == dt.datetime(2022, 4, 10, 0, 0, tzinfo=dt.UTC)
        assert street.loaded_at.tzinfo is not None
        assert street.geom.equals_exact(Point(121.47, 31.23).buffer(0.01), 1e-7)
    assert not is_empty(engine)
    assert EPOCH.utcoffset() == dt.timedelta(hours=8)


def test_db003_a_savepoint_stays_inside_its_transaction(engine):
    """Ingest applies each event in a savepoint inside the batch transaction; on SQLite the
    driver alone would let the savepoint commit by itself, making a batch non-atomic."""
    from sqlalchemy import func, select

    from data.models import ProcessedEvent

    migrate(engine)
    now = dt.datetime.now(dt.UTC)
    with session_factory(engine, write=True)() as s:
        with s.begin_nested():
            s.add(ProcessedEvent(event_id="sp-1", stream="t", entry_id="1-0", processed_at=now))
        s.rollback()
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 0


def test_db004_cases_replayed_as_confirmed_become_positive_and_replay_again_as_duplicates(engine):
    """Migration 0005: the 2022 lists' cases an earlier replay stored as ``confirmed`` are
    阳性感染者 (``positive``); a producer's own confirmed case is left alone; the replayed events'
    ledger rows forget their old digest, so the corrected replay is a duplicate, not a conflict."""
    from alembic import command
    from sqlalchemy import text

    from data.store import alembic_config

    command.upgrade(alembic_config(engine), "0004")
    with engine.begin() as conn:
        for n, (event_id, source) in enumerate((("replay2022:S1:2022-04-10:某路1号", "上海发布 2022"),
                                                 ("hotline-7", "12345"))):
            conn.execute(text("INSERT INTO case_report (event_id, category, reported_at, source) "
                              "VALUES (:e, 'confirmed', :t, :s)"),
                         {"e": event_id, "t": f"2022-04-10 0{n}:00:00", "s": source})
            conn.execute(text("INSERT INTO processed_event (stream, event_id, digest, entry_id, processed_at) "
                              "VALUES ('cases', :e, :d, '1-0', '2022-04-10 00:00:00')"),
                         {"e": event_id, "d": "ab" * 32})
    migrate(engine)
    with engine.connect() as conn:
        got = dict(conn.execute(text("SELECT source, category FROM case_report")).all())
        digests = dict(conn.execute(text("SELECT event_id, digest FROM processed_event")).all())
    assert got == {"上海发布 2022": "positive", "12345": "confirmed"}
    assert digests == {"replay2022:S1:2022-04-10:某路1号": None, "hotline-7": "ab" * 32}


def test_db005_among_is_in_with_one_parameter_whatever_the_count(engine):
    """``among`` answers as ``in_`` does (quotes, CJK, none at all) with one bound parameter, so
    the statement is the same for one value and for a batch's thousand."""
    names = ["外滩", "O'Brien \"x\"", "南京东路", "", "[1]", "a\\b\\u0041", "{x,y}"]
    migrate(engine)
    with transaction(engine) as s:
        s.add_all(Street(id=f"T{i}", name=n, district="黄浦区", geom=Point(121.48, 31.23), area_km2=1.0, seed=1,
                         loaded_at=EPOCH) for i, n in enumerate(names))
    asked = [[*names[1:3], "missing"], names, [], [names[0]] * 3, [*(f"n{i}" for i in range(1000)), names[4]]]
    with session_factory(engine)() as s:
        for values in asked:
            assert sorted(s.scalars(select(Street.id).where(among(Street.name, values)))) == \
                sorted(s.scalars(select(Street.id).where(Street.name.in_(values))))
    one, many = (select(Street.id).where(among(Street.name, v)).compile(engine) for v in (["a"], asked[4]))
    assert str(one) == str(many) and len(one.params) == len(many.params) == 1
