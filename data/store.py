"""Engines, sessions, migrations and the state history: everything that touches SQL.

Why one module: every process (app, ingest, loader, tests) must open the database the
same way — same SQLite pragmas, same migrations — whatever engine the URL names.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, Table, Text, create_engine, event, func, insert, inspect, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement, bindparam, coercions, roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, TypeDecorator

from data.models import StateChange, Street

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE = "opsmap_write"  # execution option: this connection's transactions will write


#: pages the write-ahead log of a SQLite database may hold before a commit copies them into the
#: database file (SQLite's default: 1,000, ~4 MB). Why more: a batch of check-ins dirties a page
#: of the ledger's key per event wherever the ids are random, so at the default nearly every
#: commit paid a checkpoint, copying and syncing pages the next batches dirtied again. With a
#: million check-ins stored and UUID event ids the worker stored 7,718-8,122 events/s at 1,000
#: and 11,228-11,271 at 10,000 (30,000: no better); on an empty database 5-19 % more.
WAL_CHECKPOINT_PAGES = 10_000

#: KiB of page cache per SQLite connection (SQLite's default: 2,000). Why more: each batch of
#: check-ins adds a row to every gate's stretch of the (gate, time) index, ~450 leaf pages on the
#: demo street, which with the other trees' pages overflowed the default cache, so each batch read
#: them back (from the write-ahead log or the file) and wrote them out again. Inserting 300,000
#: check-ins and their ledger rows in batches of 2,000 took 10.6-11.6 µs a row at the default and
#: 8.2-9.0 at this size (bare sqlite3 on the demo street's schema); 64 MiB was no better.
#: SQLite fills it only as pages are read, so an idle connection holds little of it.
SQLITE_CACHE_KIB = 16_384


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and real transactions.

    Why the BEGIN listener: Python's sqlite3 module opens a transaction only before DML, so a
    SAVEPOINT issued first starts (and its RELEASE commits) a transaction of its own, and a
    rollback then undoes nothing. Emitting BEGIN ourselves makes a session's transaction the
    database's. Sessions that write ask for BEGIN IMMEDIATE (``session_factory(write=True)``):
    they take the write lock at once and wait for each other, instead of failing when their
    snapshot turns out to be stale at their first write.
    """
    # JSON columns (the ledger's effects, state changes) through orjson: a batch writes thousands
    kwargs.setdefault("json_serializer", lambda obj: orjson.dumps(obj).decode())
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # the driver issues no BEGIN/COMMIT of its own
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(engine: Engine) -> AlembicConfig:
    """Alembic pointed at our migrations and at this engine (no alembic.ini needed to run)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe to call at every start."""
    command.upgrade(alembic_config(engine), "head")


def session_factory(engine: Engine, write: bool = False) -> sessionmaker[Session]:
    """Sessions on ``engine``; ``write`` for those that will write (see ``make_engine``)."""
    return sessionmaker(engine.execution_options(**{WRITE: True}) if write else engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on any error."""
    with session_factory(engine, write=True)() as session, session.begin():
        yield session


def is_empty(engine: Engine) -> bool:
    """True when no street is loaded (or the schema does not exist yet)."""
    if not inspect(engine).has_table("street"):
        return True
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(Street)) == 0


def record_changes(session: Session, kind: str, changes: Iterable[tuple[str, dt.datetime, dict[str, Any]]],
                   source: str, event_id: str | None = None) -> None:
    """Append state changes ``(entity_id, at, attrs)`` of one entity kind to the history."""
    session.add_all(StateChange(entity_kind=kind, entity_id=entity_id, at=at, attrs=attrs,
                                source=source, event_id=event_id)
                    for entity_id, at, attrs in changes)


def states_as_of(session: Session, kind: str, at: dt.datetime,
                 entity_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The state of every entity of ``kind`` at moment ``at``: the fold of its changes up to then.

    Entities with no change at or before ``at`` are absent (they did not exist yet).
    """
    stmt = (select(StateChange.entity_id, StateChange.attrs)
            .where(StateChange.entity_kind == kind, StateChange.at <= at)
            .order_by(StateChange.entity_id, StateChange.at, StateChange.id))
    if entity_ids is not None:
        stmt = stmt.where(among(StateChange.entity_id, entity_ids))
    states: dict[str, dict[str, Any]] = {}
    for entity_id, attrs in session.execute(stmt):
        states.setdefault(entity_id, {}).update(attrs)
    return states


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]], **same: Any) -> None:
    """INSERT ``rows`` (all with the same keys; ``same``: values every row shares, converted once)
    in the session's transaction, each value through its column type's bind processor as
    SQLAlchemy would: one executemany of the driver, or on PostgreSQL one COPY. Why: building
    parameters row by row through the ORM's machinery was a fifth of ingest's time for
    check-ins and their ledger rows; the statement and processors are worked out once here."""
    if not rows:
        return
    conn = session.connection()
    sql, keys, processors, positional = _insert_plan(table, conn.dialect, (*rows[0], *same))
    by_column = []  # the per-value work runs in C (map), not in a comprehension
    for k, p in zip(keys, processors, strict=True):
        if k in same:
            by_column.append(itertools.repeat(p(same[k]) if p else same[k], len(rows)))
        else:
            column = map(operator.itemgetter(k), rows)
            by_column.append(map(p, column) if p else column)
    values = list(zip(*by_column, strict=True))
    if conn.dialect.name == "postgresql":
        quote = conn.dialect.identifier_preparer
        columns = ", ".join(quote.quote(table.c[k].name) for k in keys)
        with conn.connection.dbapi_connection.cursor() as cursor, \
                cursor.copy(f"COPY {quote.format_table(table)} ({columns}) FROM STDIN") as copy:
            for v in values:
                copy.write_row(v)
        return
    conn.exec_driver_sql(sql, values if positional else [dict(zip(keys, v, strict=True)) for v in values])


@cache
def _insert_plan(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, list[str], list[Any], bool]:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    order = list(compiled.positiontup) if compiled.positional else list(keys)
    processors = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order]
    return str(compiled), order, processors, compiled.positional


class _TextList(TypeDecorator[list[str]]):
    """A list of strings bound as one value, a JSON array (encoded in C by orjson) on every engine."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> Any:
        return value if value is None else orjson.dumps(value).decode()


class among(ColumnElement[bool]):
    """``column IN values`` for a text column, the values bound as one parameter, a JSON array:
    SQLite reads it with ``json_each``, PostgreSQL with ``jsonb_array_elements_text`` into
    ``= ANY(array)`` (the same index scan as an array parameter). Why: an IN of a batch's
    thousand event ids was a thousand parameters, each rendered (on PostgreSQL cast) and bound
    at every execution; with one, the ledger lookup of a batch on SQLite took 1.0 ms, not 2.4,
    and ingest on PostgreSQL stored a median 16 % more events a second. A list bound as an
    array was dumped element by element in Python by the driver: 3.6 µs an id against 0.8 µs
    as JSON (4,000 ids against a temporary table)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison already: no "= 1" where booleans are integers
    _traverse_internals: ClassVar[list[tuple[str, InternalTraversal]]] = [
        ("column", InternalTraversal.dp_clauseelement), ("values", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[str], values: Iterable[str]) -> None:
        self.column = coercions.expect(roles.ExpressionElementRole, column)
        self.values = bindparam(None, list(values), type_=_TextList())


@compiles(among)
def _among_json_each(element: among, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} IN "
            f"(SELECT value FROM json_each({compiler.process(element.values, **kw)}))")


@compiles(among, "postgresql")
def _among_postgresql(element: among, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} = "
            f"ANY(ARRAY(SELECT jsonb_array_elements_text(CAST({compiler.process(element.values, **kw)} AS jsonb))))")
