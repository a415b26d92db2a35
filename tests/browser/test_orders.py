"""ord: the 12345 practice in the real app — an order left alone reminded and supervised on the map,
the supervision list and the briefing; its link opening it on the officer's phone, which the browser
notifies of new work; a gate with no scans greying out until a scan (tests/conftest.py BROWSER_CLOCK)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time

from data.domain.rules import SHANGHAI
from tests.conftest import BROWSER, person_id, post_event, sign_in

pytestmark = BROWSER
PHONE = {"width": 360, "height": 800}


def _compound(app_var) -> tuple[float, float, str, str]:
    return sqlite3.connect(app_var / "opsmap.db").execute(
        "SELECT c.lat, c.lng, c.committee_id, m.name FROM compound c JOIN committee m ON m.id = c.committee_id "
        "ORDER BY c.id LIMIT 1 OFFSET 7").fetchone()


def _order(app_url: str, app_var, oid: str, created: dt.datetime) -> str:
    """An order of kind ``other`` dispatched to the committee of its compound; returns the committee name."""
    lat, lng, committee, name = _compound(app_var)
    post_event(app_url, "workorders", {"event_id": f"{oid}-c", "ts": created.isoformat(), "order_id": oid,
                                       "action": "create", "category": "other", "priority": "normal",
                                       "description": "邻居居家观察期间外出遛狗", "lat": lat, "lng": lng})
    post_event(app_url, "workorders", {"event_id": f"{oid}-d", "ts": (created + dt.timedelta(minutes=5)).isoformat(),
                                       "order_id": oid, "action": "dispatch", "committee_id": committee,
                                       "assignee": "王干部"})
    return name


def test_ord001_an_order_left_alone_goes_to_supervision_on_map_list_briefing_and_phone(app_url, app_var, browser,
                                                                                      chromium):
    errors: list[str] = []
    oid = f"ord001-{int(time.time() * 1000)}"
    committee = _order(app_url, app_var, oid, dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    page.wait_for_selector(f"path.opsmap-id-{oid}.opsmap-supervised", state="attached", timeout=20_000)
    page.wait_for_function(f"(document.querySelector('#panel-supervision') || {{}}).innerText?.includes('{oid}')",
                           timeout=20_000)
    line = page.locator("#panel-supervision .opsmap-supervised", has_text=oid).inner_text()
    assert line.startswith("督办") and committee in line and "超时" in line
    now = dt.datetime.now(SHANGHAI)
    page.goto(f"{app_url}/briefing?date={now:%Y-%m-%d}&cutoff={now:%H:%M}")
    actions = page.locator("ol.actions li").first.inner_text()
    assert actions.startswith("督办工单") and oid in actions

    # the message's link on the officer's phone: the order opens under its committee, 督办 first
    context = chromium.new_context(bypass_csp=True, permissions=["notifications"])
    sign_in(context, app_url)
    context.add_init_script("""(() => {  // every notification the page shows is recorded
        const Real = window.Notification;
        window.__shown = [];
        window.Notification = class extends Real {
            constructor(title, options) { super(title, options); window.__shown.push(title); }
        };
    })();""")
    phone = context.new_page()
    phone.set_viewport_size(PHONE)
    phone.on("pageerror", lambda e: errors.append(str(e)))
    try:
        phone.goto(f"{app_url}/officer?order={oid}")
        detail = phone.locator(f".officer-detail[data-id='{oid}']")
        detail.wait_for(timeout=20_000)
        assert "督办" in detail.inner_text() and "超时" in detail.inner_text()
        # the list is the committee's other callback: it may come after the detail
        phone.locator(".officer-item.reason-supervised", has_text="其他").first.wait_for(timeout=20_000)
        # new work for the committee while the page is open: the browser says so
        fresh = f"ord001n-{int(time.time() * 1000)}"
        _order(app_url, app_var, fresh, dt.datetime.now(dt.UTC))
        phone.wait_for_function("window.__shown.length > 0", timeout=20_000)
        assert any("待办工单" in t and "其他" in t for t in phone.evaluate("window.__shown"))
    finally:
        context.close()
    assert errors == []


def test_ord002_a_gate_without_scans_greys_out_raises_one_alert_and_a_scan_brings_it_back(app_url, app_var, browser):
    db = sqlite3.connect(app_var / "opsmap.db")
    gate = db.execute("SELECT id FROM gate WHERE id NOT IN (SELECT DISTINCT gate_id FROM checkin) "
                      "ORDER BY id DESC LIMIT 1").fetchone()[0]
    now, tag = dt.datetime.now(dt.UTC), f"ord002-{int(time.time() * 1000)}"

    def scan(n: int, at: dt.datetime) -> None:
        post_event(app_url, "checkins", {"event_id": f"{tag}-{n}", "ts": at.isoformat(), "gate_id": gate,
                                         "direction": "in", "person_id": person_id(n),
                                         "category": "resident", "temperature": 36.5})

    post_event(app_url, "facilities", {"event_id": f"{tag}-f", "ts": now.isoformat(), "facility_id": gate,
                                       "status": "open", "reporter": "巡查"})
    scan(1, now - dt.timedelta(minutes=90))  # silent for half an hour past the 60 minutes
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(app_url)
    page.wait_for_selector(f"path.opsmap-id-{gate}.opsmap-silent", state="attached", timeout=20_000)
    def alerts() -> int:
        return db.execute("SELECT count(*) FROM alert WHERE kind = 'silent_gate' AND entity_id = ?",
                          (gate,)).fetchone()[0]

    deadline = time.monotonic() + 20
    while not alerts():
        assert time.monotonic() < deadline, "no alert for the silent gate"
        time.sleep(0.2)
    scan(2, dt.datetime.now(dt.UTC))
    page.wait_for_selector(f"path.opsmap-id-{gate}:not(.opsmap-silent)", state="attached", timeout=20_000)
    assert alerts() == 1  # one alert for the one silence, however many sweeps saw it


def test_ord003_healthz_says_which_years_count_weekends_only_and_what_is_undelivered(app_url):
    import json
    import urllib.request

    from data.domain.deadlines import CALENDAR

    with urllib.request.urlopen(app_url + "/healthz", timeout=10) as resp:
        health = json.load(resp)
    year = dt.datetime.now(dt.UTC).year
    unknown = [y for y in (year, year + 1) if y > CALENDAR.known[1]]
    assert health["calendar"]["known"] == f"{CALENDAR.known[0]}-{CALENDAR.known[1]}"
    assert set(unknown) <= set(health["calendar"]["weekends_only"])
    assert health["notifications"]["undelivered"] == 0  # no committee has a webhook in the app under test
