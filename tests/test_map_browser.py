"""map: the real app, started as `make run` starts it, shows 南京东路 in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from data.settings import PROJECT_ROOT
from tests.conftest import free_port, wait_healthy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium missing: run `make test`")]


@pytest.fixture(scope="module")
def app_var(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="module")
def app_url(app_var: Path) -> Iterator[str]:
    """`opsmap load --if-empty` then `opsmap serve` on embedded defaults in a fresh var dir."""
    var = app_var
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(var), "OPSMAP_HTTP_PORT": str(free_port())}
    opsmap = [sys.executable, str(PROJECT_ROOT / "app.py")]
    subprocess.run([*opsmap, "load", "--if-empty"], env=env, check=True, timeout=300, cwd=PROJECT_ROOT)
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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_map001_street_boundary_and_compounds_show_without_errors(app_url, browser, artifacts):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('.opsmap-compound').length >= 200", timeout=30_000)
    page.wait_for_selector("path[stroke='#e8590c']", state="attached")  # the street boundary
    assert page.locator(".opsmap-compound").count() == 344
    assert page.locator("#map-title").inner_text() == "南京东路 战疫图"
    panel = page.locator("#map-panel").inner_text()
    assert "小区" in panel and "344" in panel
    page.screenshot(path=str(artifacts / "map.png"))
    assert errors == []


def test_map002_layer_api_serves_geojson(app_url):
    with urllib.request.urlopen(app_url + "/api/v1/layers/compounds?street=S194", timeout=10) as resp:
        fc = json.load(resp)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 344
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(app_url + "/api/v1/layers/nope?street=S194", timeout=10)
    assert err.value.code == 404


def test_map003_serve_ingests_posted_events_in_the_background(app_url, app_var):
    import sqlite3

    db = app_var / "opsmap.db"
    gate = sqlite3.connect(db).execute("SELECT id, status FROM gate ORDER BY id LIMIT 1").fetchone()
    new = "closed" if gate[1] != "closed" else "open"
    event = {"event_id": f"map003-{time.time()}", "ts": "2022-04-10T09:00:00+08:00", "facility_id": gate[0],
             "status": new, "guards_on_duty": 2, "reporter": "测试"}
    req = urllib.request.Request(app_url + "/api/v1/events/facilities", data=json.dumps(event).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202
    deadline = time.monotonic() + 10
    while sqlite3.connect(db).execute("SELECT status FROM gate WHERE id = ?", (gate[0],)).fetchone()[0] != new:
        assert time.monotonic() < deadline, "the background ingest worker did not apply the event"
        time.sleep(0.1)
