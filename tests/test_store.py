"""db: migrations match the models on both engines; time survives the round trip."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from shapely.geometry import Point
from sqlalchemy import inspect

from data.loader import EPOCH
from data.models import Base, Street
from data.store import is_empty, migrate, session_factory, transaction


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
