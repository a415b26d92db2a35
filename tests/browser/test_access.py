"""accb: each role at its page in headless Chromium, signed in the way a person would be —
first start, one-time links, a paired screen — on the real app with its embedded Redis."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from data.access import accounts
from data.access.policy import Role
from data.domain.privacy import mask_id, mask_phone
from data.settings import PROJECT_ROOT
from data.store import make_engine
from tests.conftest import BROWSER, free_port, person_id, phone, post_event, wait_healthy

pytestmark = BROWSER
PHONE = {"width": 360, "height": 800}


@pytest.fixture
def stranger(chromium):
    """New browsers that have never signed in (each its own cookie jar, the Content-Security-Policy
    in force), closed after the test, which fails if a page broke the policy."""
    made = []

    problems: list[str] = []

    def page(viewport: dict[str, int]):
        made.append(chromium.new_context(viewport=viewport))  # the Content-Security-Policy applies
        opened = made[-1].new_page()
        opened.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
        return opened

    yield page
    for context in made:
        context.close()
    assert problems == [], "the pages broke their own Content-Security-Policy"


def _follow_link(page, link: str) -> None:
    """Open a one-time link and press its button, as a person does."""
    page.goto(link)
    page.get_by_role("button").click()


def test_accb001_first_start_prints_a_link_that_opens_the_map(tmp_path, stranger, artifacts):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(tmp_path), "OPSMAP_HTTP_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    opsmap = [sys.executable, str(PROJECT_ROOT / "app.py")]
    subprocess.run([*opsmap, "load", "--if-empty"], env=env, check=True, timeout=300, cwd=PROJECT_ROOT,
                   capture_output=True)
    proc = subprocess.Popen([*opsmap, "serve"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{env['OPSMAP_HTTP_PORT']}"
    try:
        printed, link = [], None
        deadline = time.monotonic() + 60
        while link is None and time.monotonic() < deadline:
            printed.append(proc.stdout.readline())
            found = re.search(r"(http://\S+/signin/link/\S+)", printed[-1])
            link = found and found.group(1)
        assert link, f"no sign-in link printed: {printed}"
        assert "first start" in "".join(printed)
        wait_healthy(url, proc)
        page = stranger({"width": 1600, "height": 1000})
        page.goto(url)
        assert page.url.startswith(f"{url}/signin")
        assert page.request.get(f"{url}/api/v1/summary?street=S194").status == 401
        _follow_link(page, link)
        page.wait_for_url(f"{url}/signin/password")
        page.get_by_role("link", name="以后再说").click()
        page.locator("#map-title", has_text="南京东路").wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "first-start-map.png"))
        again = stranger(PHONE)
        _follow_link(again, link)  # the link worked once
        assert "链接无效" in again.content()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _two_committees(app_var) -> tuple[tuple, tuple]:
    db = sqlite3.connect(app_var / "opsmap.db")
    rows = db.execute("SELECT c.id, c.address, c.lat, c.lng, c.committee_id, m.name FROM compound c "
                      "JOIN committee m ON m.id = c.committee_id ORDER BY c.id").fetchall()
    first = rows[30]
    return first, next(r for r in rows if r[4] != first[4])


def _observe(app_url: str, compound: tuple, n: int, home: str) -> str:
    pid = person_id(n, "19750101")
    post_event(app_url, "cases", {"event_id": f"accb-{n}-{time.time()}", "person_id": pid,
                                  "ts": (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat(),
                                  "category": "home_observation", "compound_id": compound[0], "address": home})
    return pid


def _wait_observed(app_var, home: str) -> int:
    db = sqlite3.connect(app_var / "opsmap.db")
    deadline = time.monotonic() + 20
    while (row := db.execute("SELECT id FROM home_observation WHERE address = ?", (home,)).fetchone()) is None:
        assert time.monotonic() < deadline, "the observation was not ingested"
        time.sleep(0.1)
    return row[0]


def _account(app_var, name: str, roles: list[Role]) -> str:
    engine = make_engine(f"sqlite:///{app_var / 'opsmap.db'}")
    accounts.add_user(engine, name, roles, name)
    return accounts.issue_link(engine, name)


def _forged_act(page, action: str, layer: str, entity: str, note: str) -> str:
    """The officer page's own callback request, made by script from the signed-in page (with
    its CSRF cookie, as an attacker holding the session would)."""
    return page.evaluate("""async ([action, layer, entity, note]) => {
        const csrf = document.cookie.split('; ').find(c => c.startsWith('_csrf_token=')).split('=')[1];
        const body = {output: '..officer-msg.children...officer-msg.className...officer-done.data..',
          outputs: [{id: 'officer-msg', property: 'children'}, {id: 'officer-msg', property: 'className'},
                    {id: 'officer-done', property: 'data'}],
          inputs: [{id: 'officer-submit', property: 'data', value: {action, values: {note}, n: 1}}],
          changedPropIds: ['officer-submit.data'],
          state: [{id: 'officer-selected', property: 'data', value: {layer, id: entity}},
                  {id: 'officer-done', property: 'data', value: 0}]};
        const r = await fetch('/_dash-update-component', {method: 'POST', body: JSON.stringify(body),
          headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf}});
        return r.status + ' ' + await r.text();
    }""", [action, layer, entity, note])


def test_accb002_an_officer_sees_own_committee_in_full_and_is_refused_elsewhere(app_url, app_var, stranger,
                                                                                 artifacts):
    mine, theirs = _two_committees(app_var)
    tag = int(time.time()) % 100_000
    home_mine, home_theirs = f"{mine[1]}{tag}号楼101室", f"{theirs[1]}{tag}号楼202室"
    p_mine = _observe(app_url, mine, tag % 900, home_mine)
    _observe(app_url, theirs, tag % 900 + 1, home_theirs)
    order = f"accb002-{tag}"
    now = dt.datetime.now(dt.UTC).isoformat()
    post_event(app_url, "workorders", {"event_id": f"{order}-c", "ts": now, "order_id": order, "action": "create",
                                       "category": "medical_need", "priority": "normal", "description": "缺药",
                                       "lat": theirs[2], "lng": theirs[3]})
    post_event(app_url, "workorders", {"event_id": f"{order}-d", "ts": now, "order_id": order, "action": "dispatch",
                                       "committee_id": theirs[4], "assignee": "居委值班"})
    obs_theirs = _wait_observed(app_var, home_theirs)
    _wait_observed(app_var, home_mine)
    name = f"officer-{tag}"
    link = _account(app_var, name, [Role("officer", "S194", mine[4])])
    page = stranger(PHONE)
    _follow_link(page, f"{app_url}/signin/link/{link}")
    page.goto(app_url + "/officer")
    page.locator(".officer-committee", has_text=mine[5]).wait_for(timeout=15_000)  # own committee, chosen
    page.locator("#officer-committee").click()
    assert page.locator(".dash-dropdown-content").get_by_role("option").all_inner_texts() == [mine[5]]  # and no other
    page.keyboard.press("Escape")
    item = page.locator(".officer-item.reason-missed_checkin", has_text=home_mine)
    item.wait_for(timeout=15_000)
    item.click()
    detail = page.locator(".officer-detail", has_text=mask_id(p_mine))
    detail.wait_for(timeout=10_000)
    assert page.locator(".officer-detail .officer-action").count() > 0  # own point: actions offered
    page.screenshot(path=str(artifacts / "access-officer.png"), full_page=True)
    layer = page.request.get(f"{app_url}/api/v1/layers/observations?street=S194").text()
    assert home_mine in layer and home_theirs not in layer
    other = page.request.get(f"{app_url}/api/v1/entities/observations/{obs_theirs}").json()
    assert "address" not in other and "person" not in other
    answer = _forged_act(page, "accept", "workorders", order, "我来")
    assert answer.startswith("200") and "无权操作：该点位不属于您负责的居委" in answer
    db = sqlite3.connect(app_var / "opsmap.db")
    assert db.execute("SELECT state FROM work_order WHERE id = ?", (order,)).fetchone()[0] == "dispatched"
    assert db.execute("SELECT ok FROM audit_entry WHERE actor = ? AND action = 'action.accept' AND target = ?",
                      (f"user:{name}", f"workorders:{order}")).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM audit_entry WHERE actor = ? AND action = 'view.person'",
                      (f"user:{name}",)).fetchone()[0] >= 1


def test_accb003_a_viewer_reads_but_has_no_action(app_url, app_var, stranger):
    mine, _ = _two_committees(app_var)
    tag = int(time.time()) % 100_000
    order = f"accb003-{tag}"
    now = dt.datetime.now(dt.UTC).isoformat()
    post_event(app_url, "workorders", {"event_id": f"{order}-c", "ts": now, "order_id": order, "action": "create",
                                       "category": "supplies", "priority": "normal", "description": f"需要米 {tag}",
                                       "lat": mine[2], "lng": mine[3]})
    post_event(app_url, "workorders", {"event_id": f"{order}-d", "ts": now, "order_id": order, "action": "dispatch",
                                       "committee_id": mine[4], "assignee": "居委值班"})
    link = _account(app_var, f"viewer-{tag}", [Role("viewer", "S194")])
    page = stranger(PHONE)
    _follow_link(page, f"{app_url}/signin/link/{link}")
    page.goto(app_url + "/officer")
    page.locator("#officer-committee").click()
    page.get_by_role("option", name=mine[5], exact=True).click()
    # the orders alone: after a busy day (other tests' cases and alerts) the order may fall past the first page
    page.locator("#officer-filter").get_by_text("工单", exact=True).click()
    item = page.locator(".officer-item", has_text="生活物资").first
    item.wait_for(timeout=15_000)
    item.click()
    page.locator(".officer-detail").wait_for(timeout=10_000)
    assert page.locator(".officer-detail .officer-action").count() == 0
    assert page.locator(".officer-detail button").count() == 0
    assert "无权操作" in _forged_act(page, "accept", "workorders", order, "我来")
    assert page.request.post(f"{app_url}/api/v1/events/workorders", data={}).status == 401


def test_accb004_a_paired_screen_shows_no_person(app_url, app_var, stranger, artifacts):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"OPSMAP_VAR_DIR": str(app_var), "OPSMAP_HTTP_PORT": app_url.rsplit(":", 1)[1]}
    out = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "screen", "add", "--street", "南京东路",
                          "--name", "指挥大厅"], env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stderr
    pairing = re.search(r"(http://\S+/screen/pair/\S+)", out.stdout).group(1)
    page = stranger({"width": 1920, "height": 1080})
    bodies: list[bytes] = []
    page.on("response", lambda r: bodies.append(r.body()) if "/api/v1/stream" not in r.url
            and r.request.method in ("GET", "POST") and r.status == 200 else None)
    _follow_link(page, pairing)
    page.wait_for_url(f"{app_url}/screen")
    page.locator(".opsmap-gates").nth(399).wait_for(state="attached", timeout=30_000)
    mine, _ = _two_committees(app_var)
    tag = int(time.time()) % 100_000
    home, mobile = f"{mine[1]}{tag}号楼303室", phone(60_000_000 + tag)
    pid = _observe(app_url, mine, tag % 900 + 2, home)
    _wait_observed(app_var, home)
    gate = sqlite3.connect(app_var / "opsmap.db").execute(
        "SELECT id, name FROM gate WHERE compound_id = ? ORDER BY id", (mine[0],)).fetchone()
    now = dt.datetime.now(dt.UTC).isoformat()
    post_event(app_url, "checkins", {"event_id": f"accb004-{tag}-{time.time()}", "ts": now,
                                     "gate_id": gate[0], "direction": "out", "person_id": pid, "phone": mobile,
                                     "category": "resident", "temperature": 36.7})
    banner = page.locator("#screen-banner:not(.hidden)")
    banner.wait_for(timeout=20_000)
    assert f"居家观察外出：{gate[1]}" in banner.inner_text()
    page.wait_for_timeout(1500)  # the panels' redraw after the banner
    page.screenshot(path=str(artifacts / "access-screen.png"))
    seen = b"".join(bodies) + page.content().encode()
    for secret in (mask_id(pid), mask_phone(mobile), mobile, home):
        assert secret.encode() not in seen, f"the screen received {secret}"
    assert page.request.get(f"{app_url}/officer", max_redirects=0).status == 302
