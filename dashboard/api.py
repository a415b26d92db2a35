"""HTTP routes beside the Dash pages: health and the read API the map fetches layers from.

Why layers by URL: the browser fetches (and caches) GeoJSON instead of receiving it as
a large callback property.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import redis
from flask import Blueprint, Response, abort, current_app, jsonify, request
from redis.exceptions import RedisClusterException
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

import layers
from dashboard import access
from dashboard.answers import GZIP_MIN_BYTES, Encoded, Growth
from dashboard.gzipping import accepted, encode
from data.access import policy
from data.domain import deadlines
from data.domain.crs import to_gcj02
from data.pipeline import notify, streams
from data.pipeline.events import DEAD, STREAMS, EventError, sealed, validate
from data.pipeline.ingest import waiting as waiting_workers
from data.read.cache import Cache, added_since, data_version
from data.read.summary import summary
from data.settings import Config, datasets_path
from data.store import is_empty
from layers.base import Growing, Query

api = Blueprint("opsmap_api", __name__)


@api.after_request
def compress(response: Response) -> Response:
    """Gzip large JSON answers (layers with many points) for clients that accept it."""
    if response.direct_passthrough or response.mimetype != "application/json" or not accepted(response,
                                                                                               GZIP_MIN_BYTES):
        return response
    encode(response, gzip.compress(response.get_data(), compresslevel=5))
    return response


MAX_BATCH = 1000
T = TypeVar("T")
#: after a message, what arrives within this many seconds goes out merged as the next one: at most 10
#: messages a second per page, and under steady traffic a change waits at most this long
COALESCE_S = 0.1
#: a live layer that time alone does not change (only its window of days slides) is kept this long per version
UNTIMED_MAX_AGE_S = 600.0


def _sessions() -> sessionmaker[Any]:
    return current_app.config["OPSMAP_SESSIONS"]


def fail(status: int, message: str) -> NoReturn:
    """Refuse with a JSON error (never the request's input as HTML)."""
    abort(Response(json.dumps({"error": message}, ensure_ascii=False), status=status, mimetype="application/json"))


def parse_moment(value: str | None) -> dt.datetime:
    """``as_of`` as an aware datetime (ISO 8601; a time without zone is Shanghai time)."""
    if not value:
        return dt.datetime.now(dt.UTC)
    value = value.replace(" ", "+")  # an unencoded "+08:00" arrives as " 08:00"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(400, f"as_of: not an ISO 8601 time: {value[:40]!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _config() -> Config:
    return current_app.config["OPSMAP_CONFIG"]


def _street_arg() -> str:
    street = request.args.get("street")
    if not street:
        fail(400, "street: required (a street id such as S194)")
    return street


def _client() -> streams.Client | None:
    url = current_app.config.get("OPSMAP_REDIS_URL")
    return streams.connect(url) if url else None


def _json(obj: Any) -> bytes:
    # plain json.dumps: Flask's provider sorts keys, which costs seconds on 100,000 features
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def cached(kind: str, params: tuple[Any, ...], at_is_past: bool, compute: Callable[[int], T],
           min_version: int = 0, topics: frozenset[str] | None = None) -> T:
    """A computed answer from the cache: past moments for an hour, live ones as data/read/cache.py
    describes (at most a second behind the data). An answer that depends on change-notice
    ``topics`` alone is keyed by their version; unless it changes with the clock, it then
    stays fresh for UNTIMED_MAX_AGE_S. ``compute`` is given the data version the answer is
    for (0 for a past moment, -1 when Redis cannot say)."""
    cache: Cache = current_app.config["OPSMAP_CACHE"]
    if at_is_past:
        return cache.get((kind, *params), 3600, lambda: compute(0))
    version = data_version(_client(), topics)
    if version < 0:
        return compute(version)
    # the answer need include no more than its topics' newest change (a merged notice may name a
    # later version; a forged one would pin the answer)
    min_version = min(min_version, version)
    max_age = UNTIMED_MAX_AGE_S if topics is not None and "clock" not in topics else None
    return cache.get_live((kind, *params), version, lambda: compute(version), min_version, max_age)


def summary_at(street: str, at: dt.datetime, at_is_past: bool, min_version: int = 0) -> dict[str, Any]:
    """The panel numbers (data.read.summary), shared through the cache by the API and the pages."""
    config = _config()

    def compute(_version: int) -> dict[str, Any]:
        with _sessions()() as session:
            return summary(session, street, at, datasets_path(config), deadlines.of(config))

    return cached("summary", (street, at.isoformat() if at_is_past else "live"), at_is_past, compute, min_version)


def _min_version() -> int:
    """``v`` = the data version a change notice named: the answer must include that change."""
    v = request.args.get("v", "")
    return int(v) if v.isdigit() else 0


def _is_past(at: dt.datetime) -> bool:
    return bool(request.args.get("as_of")) and at < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def shown(fc: dict[str, Any], gcj02: bool) -> dict[str, Any]:
    """Features as the map draws them: shifted to GCJ-02 when the tiles are (stored data is WGS-84)."""
    return to_gcj02(fc) if gcj02 else fc


@dataclass(frozen=True)
class LayerRows:
    """A growing layer (layers.base.Growing) at one query, as dashboard.answers.Growth reads it."""

    layer: Growing
    query: Query
    gcj02: bool
    client: streams.Client | None
    version: int

    def _features(self, ids: list[int] | None) -> list[Any]:
        with _sessions()() as session:
            return shown(self.layer.features(session, self.query, ids), self.gcj02)["features"]

    def whole(self) -> list[Any]:
        return self._features(None)

    def among(self, ids: list[int]) -> list[Any]:
        return self._features(ids)

    def until(self, feature: Any) -> float:
        return self.layer.shown_until(feature, self.query).timestamp()

    def added(self, base: int) -> list[int] | None:
        return None if self.client is None else added_since(self.client, base, self.version, self.layer.grows_by)


@api.get("/api/v1/layers/<layer_id>")
def layer_features(layer_id: str) -> Response:
    """A layer's GeoJSON for a street at ``as_of`` (default now), optionally one committee;
    with ``base=<version>`` (the X-Opsmap-Version of an earlier answer), a patch of what changed;
    with ``form=columns``, a layer of points whole in columns (dashboard.answers.columnar)."""
    layer = layers.BY_ID.get(layer_id)
    if layer is None:
        fail(404, f"no layer {layer_id[:40]!r}")
    config, street = _config(), _street_arg()
    access.require_street(street)
    query = Query.from_config(config, street, parse_moment(request.args.get("as_of")),
                              request.args.get("committee") or None)
    past = _is_past(query.at)
    params = (layer_id, query.street_id, query.committee_id, query.at.isoformat() if past else "live")
    who, personal = access.actor(), False
    if hasattr(layer, "public"):  # person-level features: one answer per scope (data.access.policy)
        scope = who.person_scope(street)
        params, personal = (*params, scope.key), scope.any
        if personal:
            access.record_layer_view(layer_id, street)
    if hasattr(layer, "grows_by") and not past:
        growth: Growth = current_app.config["OPSMAP_GROWTH"]

        def compute(version: int) -> Encoded:
            rows = LayerRows(layer, query, config.tile_crs == "gcj02", _client(), version)
            return growth.answer(params, version, rows, query.at.timestamp()).encoded
    else:
        def compute(_version: int) -> Encoded:
            with _sessions()() as session:
                fc = policy.features(who, layer, street, layer.features(session, query))
            return Encoded.of(shown(fc, config.tile_crs == "gcj02"))

    encoded = cached("layer", params, past, compute, _min_version(), layer.changed_by)
    base = request.args.get("base")
    response = None
    if base:  # a page that shows version ``base``: only what changed since, when that version is known here
        cache: Cache = current_app.config["OPSMAP_CACHE"]
        patch = cache.get(("patch", base, encoded.etag), 600, lambda: encoded.patch(base))
        if patch is not None:
            response = patch.response(None)
    if response is None and request.args.get("form") == "columns" and encoded.columns is not None:
        encoded = encoded.columns  # a clustered layer as the cluster worker loads it whole
    # a past moment never changes: browsers may keep it; the present is revalidated by its ETag
    response = response or encoded.response(3600 if past else 0)
    if personal:  # persons in it: no copy in any cache (a page patches by version, not by the browser's cache)
        response.headers["Cache-Control"] = "no-store"
    return response


@api.get("/api/v1/entities/<kind>/<entity_id>")
def entity(kind: str, entity_id: str) -> Response:
    """One entity's drill-down at ``as_of`` (default now); ``kind`` is a layer id (gates, shops …)."""
    layer = layers.BY_ID.get(kind)
    if layer is None:
        fail(404, f"no entity kind {kind[:40]!r}; one of {', '.join(layers.BY_ID)}")
    found = access.detail(layer, entity_id, parse_moment(request.args.get("as_of")), request.args.get("street"))
    if found is None:  # unknown, or in a street not the reader's: the same answer, so ids cannot be probed
        fail(404, f"no {kind} {entity_id[:64]!r}")
    response = jsonify(found)
    response.headers["Cache-Control"] = "no-store"
    return response


@api.get("/api/v1/summary")
def summary_numbers() -> Response:
    """The panel numbers of a street at ``as_of`` (default now)."""
    at, street = parse_moment(request.args.get("as_of")), _street_arg()
    access.require_street(street)
    try:
        return Response(_json(summary_at(street, at, _is_past(at))), mimetype="application/json")
    except LookupError as exc:
        fail(404, str(exc))


@api.post("/api/v1/events/<stream>")
def post_events(stream: str) -> tuple[Response, int]:
    """Validate and append one event or an array of up to 1,000 (the public contract, docs/events.md).

    202 when all were appended; 422 when any was refused — the answer then lists exactly
    which were accepted (with stream ids) and, per refused event, each field and its problem.
    """
    if stream not in STREAMS:
        return jsonify({"error": f"unknown stream {stream!r}", "streams": list(STREAMS)}), 404
    body = request.get_json(silent=True)
    if body is None:
        return jsonify({"error": "body: not JSON"}), 400
    items = body if isinstance(body, list) else [body]
    if not 1 <= len(items) <= MAX_BATCH:
        return jsonify({"error": f"body: 1 to {MAX_BATCH} events per request (got {len(items)})"}), 413
    hasher, producer = current_app.config["OPSMAP_HASHER"], access.actor()
    future = dt.timedelta(minutes=_config().max_future_minutes)
    good, rejected = [], []
    with _sessions()() as session:
        for i, item in enumerate(items):
            try:
                ev = validate(stream, item if isinstance(item, dict) else json.dumps(item), hasher, future)
            except EventError as exc:
                rejected.append({"index": i, "event_id": item.get("event_id") if isinstance(item, dict) else None,
                                 "errors": [{"field": e.field, "problem": e.problem} for e in exc.errors]})
                continue
            street = policy.event_street(session, stream, ev.data) if producer.scoped else None
            if not producer.may_post(stream, street):
                return jsonify({"error": f"event {i}: outside the street of token {producer.name!r}",
                                "index": i, "event_id": ev.event_id}), 403
            good.append((i, ev.event_id, sealed(ev)))
    url = current_app.config.get("OPSMAP_REDIS_URL")
    if good and not url:
        return jsonify({"error": "no Redis configured"}), 503
    ids = streams.append(streams.connect(url), stream, [raw for _, _, raw in good], sealed=True) if good else []
    accepted = [{"index": i, "event_id": eid, "id": sid} for (i, eid, _), sid in zip(good, ids, strict=True)]
    return jsonify({"accepted": accepted, "rejected": rejected}), 422 if rejected else 202


class StreamSlots:
    """Change streams held open by this process, in all and per session: each holds a thread
    (gunicorn gthread, the development server), so past OPSMAP_STREAMS_PER_PROCESS they would
    starve /healthz and the pages; past OPSMAP_STREAMS_PER_SESSION one browser hogs them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all = 0
        self._by: dict[str, int] = {}

    def take(self, who: str, per_process: int, per_session: int) -> bool:
        with self._lock:
            if self._all >= per_process or self._by.get(who, 0) >= per_session:
                return False
            self._all += 1
            self._by[who] = self._by.get(who, 0) + 1
            return True

    def give_back(self, who: str) -> None:
        with self._lock:
            self._all -= 1
            self._by[who] -= 1
            if not self._by[who]:
                del self._by[who]


@api.get("/api/v1/stream")
def change_stream() -> Response:
    """Server-sent change notices (which streams, entity kinds and layers changed, urgent
    alerts), so pages ask for what changed without polling. Each message carries the id of the last
    notice in it; a reconnect (Last-Event-ID) or ``since=<id>`` resumes after it, so a page
    misses nothing between its render and its connection or across a network blip. The
    first notice goes out at once; what follows within COALESCE_S is merged into one."""
    client = _client()
    if client is None:
        fail(503, "no Redis configured")
    who, sessions, config = access.actor(), _sessions(), _config()
    slots: StreamSlots = current_app.config["OPSMAP_STREAM_SLOTS"]
    holder = who.session_id or who.label
    if not slots.take(holder, config.streams_per_process, config.streams_per_session):
        refused = Response(json.dumps({"error": "too many open change streams; retry shortly"}), status=503,
                           mimetype="application/json")
        refused.headers["Retry-After"] = "5"
        return refused
    since = request.headers.get("Last-Event-ID") or request.args.get("since") or ""
    if not re.fullmatch(r"\d+-\d+", since):
        since = streams.changes_top(client)

    def events() -> Iterator[str]:
        last = since
        yield "retry: 2000\n\n"
        while True:
            notices = streams.changes_since(client, last, int(config.stream_keepalive_s * 1000))
            if not access.still_valid(who, sessions):  # signed out, disabled or revoked meanwhile
                return
            if not notices:
                yield ": keep-alive\n\n"
                continue
            last = notices[-1][0]
            merged = streams.merge_notices([n for _, n in notices])
            merged["urgent"] = policy.feed_items(who, merged.get("urgent") or [])
            sent = {**merged, "layers": layers.affected(merged), "sent": time.time()}  # "sent": stage timing
            yield f"id: {last}\ndata: {json.dumps(sent)}\n\n"
            time.sleep(COALESCE_S)  # a busy ingest: the next message merges what came meanwhile

    response = Response(events(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(lambda: slots.give_back(holder))  # also when the stream never started
    return response


@api.get("/api/v1/feed")
def live_feed() -> Response:
    """The live feed (实时播报), newest first; ``n`` items (default 50, at most 500)."""
    url = current_app.config.get("OPSMAP_REDIS_URL")
    n = min(max(request.args.get("n", 50, type=int), 1), 500)
    response = jsonify(policy.feed_items(access.actor(), streams.feed(streams.connect(url), n)) if url else [])
    response.headers["Cache-Control"] = "no-store"
    return response


@api.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Database and Redis reachability, ingest lag and workers waiting out an outage (with the
    cause), and whether the shown street's layers are computed yet; 503 when either is down,
    a worker waits or the layers are still being computed after a start."""
    checks: dict[str, str] = {}
    messages: dict[str, Any] = {}
    try:
        with _sessions()() as session:
            session.execute(text("SELECT 1"))
            empty = is_empty(current_app.config["OPSMAP_ENGINE"])
            messages = {} if empty else notify.undelivered(session)
        checks["database"] = "ok" if not empty else "empty"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        checks["database"] = f"error: {type(exc).__name__}"
    url = current_app.config.get("OPSMAP_REDIS_URL")
    ingest: dict[str, int] = {}
    client = None
    try:  # a client of its own with a short timeout: a hung Redis must not hang the health check
        client = streams.client_for(url, socket_timeout=1)[0] if url else None
        checks["redis"] = "ok" if client is not None and client.ping() else "not configured"
        if client is not None:
            lags = streams.lag(client).values()
            ingest = {"lag": sum(v["lag"] for v in lags), "pending": sum(v["pending"] for v in lags),
                      "dead": int(client.xlen(DEAD)),
                      "waiting": waiting_workers(client, current_app.config["OPSMAP_CONFIG"].ingest_backoff_max_s)}
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    finally:
        if client is not None:
            client.close()
    warmed = current_app.config.get("OPSMAP_WARMED")  # set by dashboard.app.warm where a start warms the layers
    checks["layers"] = "computing" if warmed is not None and not warmed.is_set() else "ok"
    healthy = checks["database"] != "empty" and all(v == "ok" or v == "empty" for v in checks.values()) \
        and not ingest.get("waiting")
    body: dict[str, Any] = {"status": "ok" if healthy else "degraded", **checks,
                            "calendar": deadlines.CALENDAR.health(dt.datetime.now(dt.UTC)), "notifications": messages}
    if ingest:
        body["ingest"] = ingest
    return jsonify(body), 200 if healthy else 503
