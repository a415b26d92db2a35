"""Answers gzipped for clients that accept it: the read API's large JSON (``api.compress``)
and Dash's scripts and our assets, each file once.

Why the files: a page's first load brings 1.5 MB of scripts (Dash's renderer and component
libraries, dash-leaflet, ours), which Flask sends as they are on disk — a phone on a mobile
network waits for every byte. Gzipped they are about a quarter. Each file version is compressed
once and kept (the files are few and fixed), so a request costs a lookup, not a compression; an
asset's ETag gets a suffix of its own per encoding, and a revalidation of the gzipped one still
answers 304.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

from flask import Flask, Response, request

#: the paths of static files: Dash's component suites (fingerprinted) and the assets folder
STATIC_PREFIXES = ("/_dash-component-suites/", "/assets/")
ZIPPED_TYPES = frozenset({"text/javascript", "application/javascript", "text/css", "application/json",
                          "image/svg+xml"})
MIN_BYTES = 1024
KEPT = 256  # file versions kept gzipped (a deployment serves ~30 files)


class _Zipped:
    """Gzipped bodies by file version (path, ETag, Last-Modified, length), least recently used out."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], response: Response) -> bytes:
        """The gzipped body of ``response`` (a file version's), compressed when first asked."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        response.direct_passthrough = False  # a file response streams its file: read it this once
        zipped = gzip.compress(response.get_data(), compresslevel=9, mtime=0)  # the same bytes in every process
        with self._lock:
            self._items[key] = zipped
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return zipped


def accepted(response: Response, min_bytes: int) -> bool:
    """Whether ``response`` may go gzipped: a whole answer (200) of ``min_bytes`` or more, not
    encoded yet, to a client that accepts gzip."""
    return (response.status_code == 200 and "Content-Encoding" not in response.headers
            and (response.content_length or 0) >= min_bytes
            and "gzip" in request.headers.get("Accept-Encoding", ""))


def encode(response: Response, zipped: bytes) -> None:
    """Make ``zipped`` (its body, gzipped) the body of ``response``."""
    response.set_data(zipped)
    response.headers["Content-Encoding"] = "gzip"
    response.headers.pop("Accept-Ranges", None)  # byte ranges of the plain body, not of this one
    response.vary.add("Accept-Encoding")


def install(server: Flask) -> None:
    """Gzip static files for clients that accept it (Flask ``after_request``)."""
    zipped = _Zipped(KEPT)

    @server.after_request
    def gzip_static(response: Response) -> Response:
        if (request.method != "GET" or not request.path.startswith(STATIC_PREFIXES)
                or response.mimetype not in ZIPPED_TYPES or not accepted(response, MIN_BYTES)):
            return response
        etag, _ = response.get_etag()
        key = (request.path, etag or "", response.headers.get("Last-Modified", ""), str(response.content_length))
        source = response.response
        encode(response, zipped.get(key, response))
        if hasattr(source, "close"):  # the file send_file opened, not read when the body was kept
            source.close()
        if etag:
            response.set_etag(f"{etag}-gz")
            response.make_conditional(request)  # If-None-Match names the gzipped version: 304
        return response
