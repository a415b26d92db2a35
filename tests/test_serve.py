"""srv: the same app under gunicorn on shared engines (REDIS_URL set, no embedded Redis)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from dashboard import briefing
from dashboard.app import create_app, warm
from data.access import accounts
from data.access.policy import Role
from data.pipeline.redis_server import redis_url as resolve_redis
from data.settings import PROJECT_ROOT, load
from data.store import make_engine
from layers import LAYERS
from tests.conftest import DROPPED_SIGTERM, free_port, shared_deployment, signed_in, wait_healthy

GUNICORN = Path(sys.executable).with_name("gunicorn")


def test_srv001_redis_url_setting_starts_no_embedded_server(tmp_path, redis_url):
    cfg = load(environ={"REDIS_URL": redis_url, "OPSMAP_VAR_DIR": str(tmp_path)})
    with resolve_redis(cfg) as url:
        assert url == redis_url
    assert not (tmp_path / "redis").exists()


def test_srv002_gunicorn_serves_app_server_on_shared_engines(tmp_path, redis_url):
    env = shared_deployment(tmp_path, redis_url)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as said:
        proc = subprocess.Popen([str(GUNICORN), "--no-control-socket", "-k", "gthread", "-w", "2",
                                 "-b", f"127.0.0.1:{port}", "app:server"], env=env, cwd=PROJECT_ROOT,
                                stdout=subprocess.DEVNULL, stderr=said)
    try:
        url = f"http://127.0.0.1:{port}"
        health = wait_healthy(url, proc, log=log)
        assert {k: health[k] for k in ("status", "database", "redis")} == {"status": "ok", "database": "ok",
                                                                           "redis": "ok"}
        assert set(health["ingest"]) == {"lag", "pending", "dead", "waiting"}
        engine = make_engine(env["DATABASE_URL"])
        account = accounts.add_user(engine, "srv", [Role("viewer", "S195")])
        opened = accounts.open_session(engine, dt.timedelta(hours=1), account_id=account.id)
        req = urllib.request.Request(url + "/api/v1/layers/boundaries?street=S195",
                                     headers={"Cookie": f"opsmap_session={opened.secret}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            fc = json.load(resp)
        assert fc["features"][0]["properties"]["name"] == "外滩"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not (tmp_path / "redis").exists()


def test_srv003_a_start_is_ready_when_the_shown_streets_layers_are_computed(loaded, redis_url, client, tmp_path):
    """opsmap serve warms every layer of the shown street and the summary through the routes
    the pages use; until it has, /healthz answers 503 ``layers: computing`` (so a first page
    after a start does not wait for a 100,000-point layer), then 200 with the layers in the cache
    and the briefing's PDF renderer loaded (its first PDF does not load weasyprint, Pango and fonts)."""
    engine, _ = loaded
    cfg = load(environ={"OPSMAP_VAR_DIR": str(tmp_path), "DATABASE_URL": engine.url.render_as_string(False)})
    app = create_app(cfg, redis_url)
    web, cache = app.server.test_client(), app.server.config["OPSMAP_CACHE"]
    assert web.get("/healthz").get_json()["layers"] == "ok"  # nothing to warm (gunicorn workers warm too)
    briefing._printer.cache_clear()
    with cache._lock:  # the warming requests wait at the cache, as on a start with a large street
        warm(app, cfg)
        held = web.get("/healthz")
        assert (held.status_code, held.get_json()["layers"], held.get_json()["status"]) == \
            (503, "computing", "degraded")
    assert app.server.config["OPSMAP_WARMED"].wait(120)
    ready = web.get("/healthz")
    assert (ready.status_code, ready.get_json()["layers"]) == (200, "ok")
    with cache._lock:
        kept = {key[1] for key in cache._items if key[0] == "layer"}
    assert kept == {layer.id for layer in LAYERS} and any(key[0] == "summary" for key in cache._items)
    assert briefing._printer.cache_info().currsize == 1


def test_srv005_a_stop_lets_ingest_finish_before_the_embedded_redis_goes(tmp_path):
    """SIGTERM to ``opsmap serve`` on embedded defaults: its ingest worker ends its read before the
    Redis it started stops, so the stop is not taken for an outage (nor a batch left to replay)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(tmp_path), "OPSMAP_HTTP_PORT": str(free_port()), "OPSMAP_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "app.py"), "serve"], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{env['OPSMAP_HTTP_PORT']}", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, said = proc.communicate(timeout=30)
    assert proc.returncode == 0, said[-2000:]
    assert "ingest worker" in said and "stopped" in said  # it was running, and it ended
    assert " waits: " not in said and "ConnectionError" not in said, said[-2000:]


#: ``opsmap serve`` whose SIGTERM is dropped in its HTTP loop (tests.conftest.DROPPED_SIGTERM),
#: once the file named by argv[1] exists
DROPPED_EXIT = DROPPED_SIGTERM + """
import socketserver

flag, real, fired = sys.argv[1], socketserver.BaseServer.service_actions, []

def service_actions(self):  # the HTTP loop's step, in the main thread
    if not fired and os.path.exists(flag):
        fired.append(True)
        Dropped()
        print("signalled", flush=True)
    real(self)

socketserver.BaseServer.service_actions = service_actions
sys.exit(app.main(["serve"]))
"""


def test_srv006_serve_stops_at_sigterm_even_when_python_drops_its_exit(tmp_path):
    """The HTTP loop ends on the event the signal handler sets, not only on its SystemExit: with
    the exit dropped, ``opsmap serve`` still stops serving, its ingest stopped first as at any stop
    (Dash's own loop served on, with its ingest gone)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(tmp_path), "OPSMAP_HTTP_PORT": str(free_port()), "OPSMAP_LOG_LEVEL": "INFO"}
    flag = tmp_path / "signal-now"
    proc = subprocess.Popen([sys.executable, "-c", DROPPED_EXIT, str(flag)], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{env['OPSMAP_HTTP_PORT']}", proc)
        flag.touch()
        out, said = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # it served on: a second SIGTERM, not dropped, stops it and its Redis
            proc.terminate()
            proc.wait(timeout=30)
    assert "Exception ignored" in said and "SystemExit" in said  # the exit was dropped
    assert "signalled" in out and proc.returncode == 0, said[-2000:]
    assert "ingest worker" in said and "stopped" in said


def test_srv007_scripts_and_assets_come_gzipped_once_and_revalidate(loaded, redis_url, tmp_path):
    """Dash's scripts and our assets come gzipped to a browser that accepts it (the same bytes once
    unzipped, under an ETag of their own), plain to one that does not; a revalidation of the
    gzipped asset answers 304 (it came whole again before: the ETag it named was not the file's)."""
    import gzip
    import re

    engine, _ = loaded
    cfg = load(environ={"OPSMAP_VAR_DIR": str(tmp_path), "DATABASE_URL": engine.url.render_as_string(False)})
    web = signed_in(create_app(cfg, redis_url).server)
    page = web.get("/").get_data(as_text=True)
    scripts = [src for src in re.findall(r'src="([^"]+)"', page)
               if "dash_core_components.v" in src or src.startswith("/assets/layers.js")]
    assert len(scripts) == 2, scripts
    for src in scripts:
        plain = web.get(src)
        zipped = web.get(src, headers={"Accept-Encoding": "gzip, deflate"})
        assert plain.status_code == zipped.status_code == 200 and "Content-Encoding" not in plain.headers
        assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
        assert gzip.decompress(zipped.data) == plain.data and len(zipped.data) < len(plain.data) / 2
        if "ETag" in plain.headers:  # our assets (no-cache): revalidated at every load
            assert zipped.headers["ETag"] == plain.headers["ETag"][:-1] + '-gz"'
            again = web.get(src, headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
            assert again.status_code == 304 and again.data == b""
