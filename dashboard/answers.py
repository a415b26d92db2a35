"""JSON answers ready to send, and patches between versions of a layer.

Why: twenty screens asking for the same layer should cost one encoding, not twenty; and
after an event a screen should receive the features that changed, not the whole layer
again. A FeatureCollection whose features all carry distinct ids is encoded one part per
feature; each version remembers the digests of its parts (by ETag, in a bounded history),
so a later version can answer "what changed since version X" without X's body.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Response, request

GZIP_MIN_BYTES = 8192
#: feature digests kept over all remembered versions (about 100 bytes each)
HISTORY_FEATURES = 500_000
#: the version (ETag without quotes or encoding suffix) of a full layer answer
VERSION_HEADER = "X-Opsmap-Version"
_HEAD = b'{"type":"FeatureCollection","features":['


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; orjson, since the standard encoder takes a second per 100,000 features."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)


class _History:
    """Feature digests (id → hash of its encoded part) of recent versions, by ETag."""

    def __init__(self, max_features: int) -> None:
        self._versions: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._count = 0
        self._max = max_features
        self._lock = threading.Lock()

    def remember(self, etag: str, parts: Mapping[str, bytes]) -> None:
        digests = {fid: hash(part) for fid, part in parts.items()}
        with self._lock:
            if etag in self._versions:
                self._versions.move_to_end(etag)
                return
            self._versions[etag] = digests
            self._count += len(digests)
            while self._count > self._max and len(self._versions) > 1:
                self._count -= len(self._versions.popitem(last=False)[1])

    def get(self, etag: str) -> dict[str, int] | None:
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


@dataclass(frozen=True)
class Encoded:
    """A JSON answer ready to send — body, ETag and gzip made once — so a cached layer
    costs a lookup per request, not an encoding, a compression and a hash of megabytes."""

    body: bytes
    etag: str
    parts: Mapping[str, bytes] | None = None  # a FeatureCollection's features by id, as in the body

    @functools.cached_property
    def gz(self) -> bytes | None:
        """The gzipped body (bodies of GZIP_MIN_BYTES or more), made when first asked: a version
        that only ever answers patches never pays for compressing megabytes."""
        return gzip.compress(self.body, compresslevel=5) if len(self.body) >= GZIP_MIN_BYTES else None

    @classmethod
    def of(cls, obj: Any) -> Encoded:
        parts = _parts(obj)
        body = _HEAD + b",".join(parts.values()) + b"]}" if parts is not None else dumps(obj)
        encoded = cls._of_body(body, parts)
        if parts is not None:
            _history.remember(encoded.etag, parts)
        return encoded

    @classmethod
    def _of_body(cls, body: bytes, parts: Mapping[str, bytes] | None = None) -> Encoded:
        return cls(body, hashlib.blake2b(body, digest_size=16).hexdigest(), parts)

    def patch(self, base: str) -> Encoded | None:
        """What changed since version ``base``: ``{"type": "Patch", "base", "version", "upsert":
        [features new or changed], "remove": [ids gone]}``; None when ``base`` is not a version
        this process remembers (the caller then sends the whole answer)."""
        if self.parts is None or (old := _history.get(base)) is None:
            return None
        upsert = [part for fid, part in self.parts.items() if old.get(fid) != hash(part)]
        remove = [fid for fid in old if fid not in self.parts]
        return Encoded._of_body(b'{"type":"Patch","base":' + dumps(base) + b',"version":' + dumps(self.etag)
                                + b',"upsert":[' + b",".join(upsert) + b'],"remove":' + dumps(remove) + b"}")

    def response(self, max_age: int | None) -> Response:
        """The answer in the encoding the client accepts, conditional on its ETag; ``max_age``
        None: not to be stored (a patch is only meaningful to the client that asked)."""
        zipped = self.gz is not None and "gzip" in request.headers.get("Accept-Encoding", "")
        response = Response(self.gz if zipped else self.body, mimetype="application/json")
        if zipped:
            response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept-Encoding")
        if max_age is None:
            response.cache_control.no_store = True
            return response
        response.headers[VERSION_HEADER] = self.etag
        response.set_etag(self.etag + ("-gz" if zipped else ""))
        response.cache_control.max_age = max_age
        response.cache_control.public = True
        return response.make_conditional(request)
