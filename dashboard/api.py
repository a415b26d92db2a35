"""HTTP routes beside the Dash pages: health and the read API the map fetches layers from.

Why layers by URL: the browser fetches (and caches) GeoJSON instead of receiving it as
a large callback property.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from flask import Blueprint, Response, abort, current_app, jsonify, request
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

import layers
from data.store import is_empty
from layers.base import Query

api = Blueprint("opsmap_api", __name__)


def _sessions() -> sessionmaker[Any]:
    return current_app.config["OPSMAP_SESSIONS"]


def parse_moment(value: str | None) -> dt.datetime:
    """``as_of`` as an aware datetime (ISO 8601; a time without zone is Shanghai time)."""
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        abort(Response(f"as_of: not an ISO 8601 time: {value!r}", status=400))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


@api.get("/api/v1/layers/<layer_id>")
def layer_features(layer_id: str) -> Response:
    layer = layers.BY_ID.get(layer_id)
    if layer is None:
        abort(404, f"no layer {layer_id!r}")
    street = request.args.get("street")
    if not street:
        abort(Response("street: required", status=400))
    query = Query(street_id=street, at=parse_moment(request.args.get("as_of")),
                  committee_id=request.args.get("committee") or None)
    with _sessions()() as session:
        return jsonify(layer.features(session, query))


@api.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Database and Redis reachability; 503 when either is down."""
    checks: dict[str, str] = {}
    try:
        with _sessions()() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok" if not is_empty(current_app.config["OPSMAP_ENGINE"]) else "empty"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        checks["database"] = f"error: {type(exc).__name__}"
    url = current_app.config.get("OPSMAP_REDIS_URL")
    try:
        checks["redis"] = "ok" if url and redis.Redis.from_url(url, socket_timeout=1).ping() else "not configured"
    except (redis.RedisError, OSError) as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = checks["database"] != "empty" and all(v == "ok" or v == "empty" for v in checks.values())
    return jsonify({"status": "ok" if healthy else "degraded", **checks}), 200 if healthy else 503
