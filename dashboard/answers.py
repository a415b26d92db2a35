"""JSON answers ready to send, and patches between versions of a layer.

Why: twenty screens asking for the same layer should cost one encoding, not twenty; and
after an event a screen should receive the features that changed, not the whole layer
again. A FeatureCollection whose features all carry distinct ids is encoded one part per
feature, each with a digest; its version (ETag) is made of the digests, not of the body,
so it names the set of features whatever their order, the same in every process, and a
version grown from the previous one (``Growth``) costs its new parts, not a hash of
megabytes. Each version remembers its digests (by ETag, in a bounded history), so a later
version can answer "what changed since version X" without X's body.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from flask import Response, request

from dashboard.gzipping import accepted, encode

GZIP_MIN_BYTES = 8192
#: feature digests kept over all remembered versions (about 100 bytes each)
HISTORY_FEATURES = 500_000
#: the version (ETag without quotes or encoding suffix) of a full layer answer
VERSION_HEADER = "X-Opsmap-Version"
_HEAD = b'{"type":"FeatureCollection","features":['
_MASK = (1 << 128) - 1


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; orjson, since the standard encoder takes a second per 100,000 features."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)


def digest(part: bytes) -> int:
    """A feature's digest (its encoding holds its id); the same in every process."""
    return int.from_bytes(hashlib.blake2b(part, digest_size=16).digest(), "big")


def _version(total: int, count: int) -> str:
    """The ETag of a collection whose part digests add up to ``total`` (mod 2**128)."""
    return hashlib.blake2b(total.to_bytes(16, "big") + count.to_bytes(8, "big"), digest_size=16).hexdigest()


class _History:
    """Feature digests (id → digest of its encoded part) of recent versions, by ETag."""

    def __init__(self, max_features: int) -> None:
        self._versions: OrderedDict[str, Mapping[str, int]] = OrderedDict()
        self._count = 0
        self._max = max_features
        self._lock = threading.Lock()

    def remember(self, etag: str, digests: Mapping[str, int]) -> None:
        with self._lock:
            if etag in self._versions:
                self._versions.move_to_end(etag)
                return
            self._versions[etag] = digests
            self._count += len(digests)
            while self._count > self._max and len(self._versions) > 1:
                self._count -= len(self._versions.popitem(last=False)[1])

    def get(self, etag: str) -> Mapping[str, int] | None:
        with self._lock:
            return self._versions.get(etag)


_history = _History(HISTORY_FEATURES)


def _parts(obj: Any) -> dict[str, bytes] | None:
    """A plain FeatureCollection's features by id, each encoded; None if any id is missing or repeated."""
    if not isinstance(obj, dict) or obj.keys() != {"type", "features"} or obj["type"] != "FeatureCollection":
        return None
    parts: dict[str, bytes] = {}
    for feature in obj["features"]:
        fid = feature.get("id")
        if fid is None or str(fid) in parts:
            return None
        parts[str(fid)] = dumps(feature)
    return parts


class Overlay(Mapping[str, Any]):
    """A mapping that shares a plain dict (its base, never changed) and holds only what differs
    from it: keys set since (new or changed; they iterate last, in the order set) and keys gone.
    Why: a growing layer's next version is its last one and a few changes, and copying three
    dicts of 100,000 entries per version was most of the time a new case took to be fetched.
    Only the version that makes an overlay changes it (``set``, ``pop``), before sharing it;
    ``edited`` starts the next one, folding the changes into a new base once they are many."""

    __slots__ = ("_base", "_gone", "_set", "_shadowed")

    def __init__(self, base: dict[str, Any]) -> None:
        self._base, self._set, self._gone, self._shadowed = base, {}, set(), 0  # shadowed: set keys in the base

    def edited(self) -> Overlay:
        if len(self._set) + len(self._gone) > max(1024, len(self._base) // 16):
            return Overlay(dict(self.items()))
        new = Overlay(self._base)
        new._set, new._gone, new._shadowed = dict(self._set), set(self._gone), self._shadowed
        return new

    def set(self, key: str, value: Any) -> None:
        """``key`` to ``value``, iterating last (a changed key moves to the end)."""
        self.pop(key)
        self._set[key] = value
        if key in self._base:
            self._gone.discard(key)
            self._shadowed += 1

    def pop(self, key: str) -> Any:
        """Remove ``key`` (if present); returns its value, or None."""
        if key in self._set:
            self._shadowed -= key in self._base
            value = self._set.pop(key)
        elif key in self._base and key not in self._gone:
            value = self._base[key]
        else:
            return None
        if key in self._base:
            self._gone.add(key)
        return value

    def __getitem__(self, key: str) -> Any:
        if key in self._set:
            return self._set[key]
        if key in self._gone:
            raise KeyError(key)
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        return key in self._set or (key in self._base and key not in self._gone)

    def __len__(self) -> int:
        return len(self._base) - len(self._gone) + len(self._set) - self._shadowed

    def __iter__(self) -> Any:
        return (k for k, _ in self.items())

    def items(self) -> Any:  # type: ignore[override]
        """In order without a lookup per key: a whole answer joins 100,000 parts."""
        hidden = self._gone.union(self._set) if self._shadowed or self._gone else ()
        kept = self._base.items() if not hidden else ((k, v) for k, v in self._base.items() if k not in hidden)
        yield from kept
        yield from self._set.items()

    def values(self) -> Any:  # type: ignore[override]
        return (v for _, v in self.items())


@dataclass(frozen=True)
class Delta:
    """How a grown version differs from the one it was grown from."""

    base: str
    upsert: Sequence[str]
    remove: Sequence[str]


@dataclass(frozen=True)
class Encoded:
    """A JSON answer ready to send — body, ETag and gzip made once, the body of a collection
    only when a whole answer is asked — so a cached layer costs a lookup per request, not an
    encoding, a compression and a hash of megabytes."""

    etag: str
    raw: bytes | None = None  # the body of an answer that is not a collection of parts
    parts: Mapping[str, bytes] | None = None  # a FeatureCollection's features by id, in body order
    digests: Mapping[str, int] | None = None  # of the parts, by id
    total: int = 0  # the digests' sum (mod 2**128), which the ETag is made of
    delta: Delta | None = None  # when grown from another version
    version: str | None = None  # the layer version it is a form of (``columns``), when not its ETag
    mimetype: str = "application/json"

    @functools.cached_property
    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        assert self.parts is not None
        return _HEAD + b",".join(self.parts.values()) + b"]}"

    @functools.cached_property
    def gz(self) -> bytes | None:
        """The gzipped body (bodies of GZIP_MIN_BYTES or more), made when first asked: a version
        that only ever answers patches never pays for compressing megabytes."""
        return gzip.compress(self.body, compresslevel=5) if len(self.body) >= GZIP_MIN_BYTES else None

    @functools.cached_property
    def columns(self) -> Encoded | None:
        """The collection in columns (``columnar``), made when first asked; None unless every
        feature is a point with the same properties."""
        if self.parts is None:
            return None
        body = columnar([orjson.loads(part) for part in self.parts.values()])
        return None if body is None else Encoded(self.etag + "c", body, version=self.etag,
                                                 mimetype="application/octet-stream")

    @classmethod
    def of(cls, obj: Any) -> Encoded:
        parts = _parts(obj)
        if parts is None:
            return cls._of_body(dumps(obj))
        return cls.of_parts(parts, {fid: digest(part) for fid, part in parts.items()})

    @classmethod
    def of_parts(cls, parts: Mapping[str, bytes], digests: Mapping[str, int], total: int | None = None,
                 delta: Delta | None = None) -> Encoded:
        """A FeatureCollection of encoded features by id with their digests (remembered, so later
        versions can patch from it); ``total``, their sum when the caller kept it up to date."""
        total = (sum(digests.values()) if total is None else total) & _MASK
        encoded = cls(_version(total, len(parts)), None, parts, digests, total, delta)
        _history.remember(encoded.etag, digests)
        return encoded

    @classmethod
    def _of_body(cls, body: bytes) -> Encoded:
        return cls(hashlib.blake2b(body, digest_size=16).hexdigest(), body)

    def patch(self, base: str) -> Encoded | None:
        """What changed since version ``base``: ``{"type": "Patch", "base", "version", "upsert":
        [features new or changed], "remove": [ids gone]}``; None when ``base`` is not a version
        this process remembers (the caller then sends the whole answer)."""
        if base == self.etag:  # any answer, a collection or not (the basemap): nothing changed
            upsert, remove = [], []
        elif self.parts is None or self.digests is None:
            return None
        elif self.delta is not None and self.delta.base == base:  # grown from it: the change is known
            upsert, remove = [self.parts[fid] for fid in self.delta.upsert], list(self.delta.remove)
        elif (old := _history.get(base)) is not None:
            upsert = [self.parts[fid] for fid, d in self.digests.items() if old.get(fid) != d]
            remove = [fid for fid in old if fid not in self.parts]
        else:
            return None
        return Encoded._of_body(b'{"type":"Patch","base":' + dumps(base) + b',"version":' + dumps(self.etag)
                                + b',"upsert":[' + b",".join(upsert) + b'],"remove":' + dumps(remove) + b"}")

    def response(self, max_age: int | None) -> Response:
        """The answer in the encoding the client accepts, conditional on its ETag; ``max_age``
        None: not to be stored (a patch is only meaningful to the client that asked)."""
        response = Response(self.body, mimetype=self.mimetype)
        zipped = self.gz is not None and accepted(response, GZIP_MIN_BYTES)
        if zipped:
            encode(response, self.gz)
        response.vary.add("Accept-Encoding")  # a cache keeps each encoding apart
        if max_age is None:
            response.cache_control.no_store = True
            return response
        response.headers[VERSION_HEADER] = self.version or self.etag
        response.set_etag(self.etag + ("-gz" if zipped else ""))
        response.cache_control.max_age = max_age
        response.cache_control.public = True
        return response.make_conditional(request)


#: the first bytes of a layer in columns (``columnar``), naming its format and revision
COLUMNS_MAGIC = b"OPSCOL01"
_CODES = (("u8", "<u1", 1 << 8), ("u16", "<u2", 1 << 16), ("u32", "<u4", 1 << 32))


def columnar(features: list[Any]) -> bytes | None:
    """Point features as binary columns, for the cluster worker (assets/worker/clusters.js
    makes the features again, the same as the GeoJSON); None when a feature is not a point or
    its properties differ in names from the first's.

    Why: 100,000 cases are 27 MB of GeoJSON, every feature repeating its keys and its
    compound's name; as JSON columns 5.8 MB, whose parsing alone took the worker ~75 ms of the
    CPU that the page's first paint shares on a small machine. Typed arrays are read in place.

    Layout: ``COLUMNS_MAGIC``, the header's length (uint32, little-endian), the header (UTF-8
    JSON), zeros up to a multiple of 8, then the arrays, each at a multiple of 8 from there.
    The header is ``{"count", "ids", "lng", "lat", "properties": {name: column}}``; a column is
    ``{"array": "f64" | "i32" | "u8" | "u16" | "u32", "at": offset}`` — numbers, or with
    ``"values": [...]`` codes into those values (a column of repeated texts), or with
    ``"text": true`` texts of decimal digits kept as their numbers (ids) — or ``{"same":
    "ids"}`` (a property that repeats the id), or ``{"list": [...]}`` (anything else, as JSON)."""
    names = list(features[0]["properties"]) if features else []
    if any(f["geometry"]["type"] != "Point" or list(f["properties"]) != names for f in features):
        return None
    arrays: list[bytes] = []
    ids = [f["id"] for f in features]

    def column(values: list[Any]) -> dict[str, Any]:
        kind, array = _typed(values)
        if array is None:
            return {"list": values}
        at = sum(len(a) for a in arrays)
        arrays.append(array + bytes(-len(array) % 8))
        return {**kind, "at": at}

    header = {"count": len(features), "ids": column(ids),
              "lng": column([f["geometry"]["coordinates"][0] for f in features]),
              "lat": column([f["geometry"]["coordinates"][1] for f in features]),
              "properties": {name: {"same": "ids"} if (values := [f["properties"][name] for f in features]) == ids
                             else column(values) for name in names}}
    head = dumps(header)
    start = len(COLUMNS_MAGIC) + 4 + len(head)
    return b"".join([COLUMNS_MAGIC, len(head).to_bytes(4, "little"), head, bytes(-start % 8), *arrays])


def _typed(values: list[Any]) -> tuple[dict[str, Any], bytes | None]:
    """A column's kind and its array: numbers as they are, repeated texts as codes, decimal
    texts as their numbers; (…, None) for a column none of these fits."""
    if values and all(type(v) is int for v in values) and min(values) >= -(1 << 31) and max(values) < 1 << 31:
        return {"array": "i32"}, np.array(values, "<i4").tobytes()
    if values and all(type(v) in (int, float) for v in values):
        floats = np.array(values, "<f8")
        if not np.isfinite(floats).all() or floats.tolist() != values:  # an integer beyond 2**53
            return {}, None
        fixed = np.round(floats * 1e7)  # coordinates of 7 decimals (1 cm): as integers, half the bytes
        if np.abs(fixed).max() < 1 << 31 and (fixed / 1e7 == floats).all():
            return {"array": "i32", "scale": 1e7}, fixed.astype("<i4").tobytes()
        return {"array": "f64"}, floats.tobytes()
    if all(isinstance(v, str) for v in values) and all(v.isascii() and v.isdigit() and (v == "0" or v[0] != "0")
                                                       and len(v) <= 9 for v in values):
        return {"array": "u32", "text": True}, np.array([int(v) for v in values], "<u4").tobytes()
    distinct = list(dict.fromkeys(values))
    if len(distinct) * 4 <= len(values) and all(isinstance(v, str | None) for v in distinct):
        name, dtype = next((name, dtype) for name, dtype, limit in _CODES if len(distinct) <= limit)
        codes = {v: i for i, v in enumerate(distinct)}
        return {"array": name, "values": distinct}, np.array([codes[v] for v in values], dtype).tobytes()
    return {}, None


class Rows(Protocol):
    """What growing an answer needs of a layers.base.Growing layer at one moment and filter."""

    def whole(self) -> list[Any]:
        """Every feature (a whole build)."""

    def among(self, ids: list[int]) -> list[Any]:
        """The features among these rows."""

    def until(self, feature: Any) -> float:
        """When (epoch seconds) the feature leaves the layer."""

    def added(self, base: int) -> list[int] | None:
        """Rows added after data version ``base`` up to the one asked; None if unknown."""


@dataclass(frozen=True)
class Grown:
    """A growing layer's answer at a data version, with when each feature leaves it."""

    encoded: Encoded  # its delta names the version it was grown from (None: built whole)
    version: int
    until: Mapping[str, float]  # by feature id, epoch seconds
    leaving: Sequence[tuple[float, str]]  # (until, id) as a heap: the next to leave first
    built: float  # time.monotonic() of the whole build it descends from


class Growth:
    """The newest answer of each growing layer (by the caller's key), so that the next data
    version is grown from it: its features less those whose time is up, plus the rows ingest
    says the versions between added. Why: rebuilding a 100,000-point layer to find the one
    new case took 3 s; growing it costs the new rows and copies of its indexes (~10 ms).
    A whole build is made when there is no earlier answer, Redis no longer holds what the
    versions between added (or they added more than MAX_ROWS), and after REBUILD_S, so that
    rows written outside ingest still show within that time. Calls for one key must not run
    concurrently (the cache computes one key at a time)."""

    REBUILD_S = 600.0
    MAX_ROWS = 10_000

    def __init__(self, size: int = 32) -> None:
        self._states: OrderedDict[Any, Grown] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def answer(self, key: Any, version: int, rows: Rows, now: float) -> Grown:
        """The answer at data ``version`` (< 0: unknown, built whole and not kept) at epoch ``now``."""
        with self._lock:
            prev = self._states.get(key)
        ids = None
        if prev is not None and 0 <= prev.version <= version and time.monotonic() - prev.built < self.REBUILD_S:
            ids = rows.added(prev.version)
        if prev is not None and ids is not None and len(ids) <= self.MAX_ROWS:
            grown = self._grown(prev, version, rows, ids, now)
        else:
            grown = self._whole(version, rows)
        if version >= 0:
            with self._lock:
                self._states[key] = grown
                self._states.move_to_end(key)
                while len(self._states) > self._size:
                    self._states.popitem(last=False)
        return grown

    @staticmethod
    def _whole(version: int, rows: Rows) -> Grown:
        parts, digests, until = {}, {}, {}
        for feature in rows.whole():
            fid = _id_of(feature)
            parts[fid] = part = dumps(feature)
            digests[fid], until[fid] = digest(part), rows.until(feature)
        leaving = [(t, fid) for fid, t in until.items()]
        heapq.heapify(leaving)
        return Grown(Encoded.of_parts(Overlay(parts), Overlay(digests)), version, Overlay(until), leaving,
                     time.monotonic())

    @staticmethod
    def _grown(prev: Grown, version: int, rows: Rows, ids: list[int], now: float) -> Grown:
        assert isinstance(prev.encoded.parts, Overlay) and isinstance(prev.encoded.digests, Overlay)
        assert isinstance(prev.until, Overlay)
        parts, digests, until = prev.encoded.parts.edited(), prev.encoded.digests.edited(), prev.until.edited()
        leaving, total, removed, upserted = list(prev.leaving), prev.encoded.total, [], []
        while leaving and leaving[0][0] <= now:
            t, fid = heapq.heappop(leaving)
            if until.get(fid) == t:  # not an entry left by a feature since replaced
                parts.pop(fid), until.pop(fid)
                total -= digests.pop(fid)
                removed.append(fid)
        for feature in rows.among(ids) if ids else []:
            fid = _id_of(feature)
            if fid in parts:
                total -= digests[fid]
            parts.set(fid, part := dumps(feature))  # a changed feature moves to the end, as a new one
            digests.set(fid, d := digest(part))
            until.set(fid, t := rows.until(feature))
            total += d
            heapq.heappush(leaving, (t, fid))
            upserted.append(fid)
        delta = Delta(prev.encoded.etag, list(dict.fromkeys(upserted)), [fid for fid in removed if fid not in parts])
        return Grown(Encoded.of_parts(parts, digests, total, delta), version, until, leaving, prev.built)


def _id_of(feature: Any) -> str:
    if feature.get("id") is None:
        raise ValueError("a growing layer's features need ids")
    return str(feature["id"])
