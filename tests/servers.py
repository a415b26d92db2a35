"""Throwaway servers for the suite, so it never skips for a missing one: a PostgreSQL cluster
(Debian's ``postgresql`` package: ``initdb`` into a temporary directory) when none answers at
the configured URL, and a Redis 7 (Debian's ``redis-server``) beside the embedded 6.2.

Why not reuse a machine's services blindly: a fresh machine (CI) has neither; these start in
seconds, listen on loopback only, and vanish with the session."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from data.pipeline.redis_server import free_port

DEBIAN_REDIS = "/usr/bin/redis-server"


def reachable(url: str) -> bool:
    try:
        with sa.create_engine(url, connect_args={"connect_timeout": 2}).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means: not here
        return False


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no {name}: install Debian's postgresql package (make test does)")
    return found[-1]


class Postgres:
    """A PostgreSQL cluster in a directory of its own, run as the ``postgres`` user when we are
    root (initdb refuses root; so the directory is not under pytest's, which only root may
    enter), trust authentication on 127.0.0.1 only."""

    def __init__(self, fsync: bool = False) -> None:
        self.directory, self.port = Path(tempfile.mkdtemp(prefix="opsmap-test-pg-")), free_port()
        self.data = self.directory / "data"
        self.fsync = fsync  # off for the tests (speed); on for benchmarks (commits cost what they cost)

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*user, *cmd], capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> str:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.directory, pw.pw_uid, pw.pw_gid)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "pg.log"), "-w", "-t", "60",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} "
                        f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200", "start")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text("CREATE DATABASE test"))
        return url.removesuffix("/postgres") + "/test"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
                            _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60, cwd="/")
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_version(url: str) -> str | None:
    try:
        return str(redis.Redis.from_url(url, socket_connect_timeout=1).info("server")["redis_version"])
    except (redis.RedisError, OSError):
        return None


def redis_ready(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):  # not up, or LOADING
        return False


class RedisServer:
    """A redis-server (Debian's 7.x unless told) on a free loopback port, data in ``directory``."""

    def __init__(self, directory: Path, binary: str = DEBIAN_REDIS, appendonly: bool = True) -> None:
        self.directory, self.binary, self.appendonly = directory, binary, appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"no {self.binary}: install Debian's redis-server package (make test does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not redis_ready(self.url):  # answering, and done loading its append-only file
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        return self.url

    def kill(self) -> None:
        """kill -9: what a crash or the OOM killer does."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None


class Proxy:
    """A TCP relay on loopback to ``target`` that a test can cut off (every connection closed,
    new ones refused: what a database restart or a network cut does) and restore on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self.port

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut off
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.start()
