"""brf: the morning briefing and its tables are frozen at the cut-off, agree with the summary
API and with each other, and the 2022 replay gives the source CSV's counts per committee."""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from sqlalchemy import select

from dashboard import briefing
from data.models import Compound, CompoundAddress
from data.pipeline import streams
from data.pipeline.ingest import Worker
from data.read.report import COMMITTEE_COLUMNS, cutoff_at
from data.settings import PROJECT_ROOT
from data.sources.geodata import read_case_addresses
from data.sources.loader import load_street
from data.sources.simulator import replay_2022
from data.store import session_factory
from tests.conftest import DATASETS, ENGINES, SEED, _engine, config_for, person_id, phone, signed_in

DAY = dt.date(2022, 4, 10)
CUTOFF = cutoff_at(DAY)
TZ = dt.timezone(dt.timedelta(hours=8))
ID_OR_PHONE = re.compile(r"\d{17}[\dXx]|1[3-9]\d{9}")


def _apply(engine, client, config, consumer: str) -> None:
    worker = Worker(engine, client, config, consumer=consumer)
    while worker.step(block_ms=50):
        pass


def _send(client, stream: str, events: list[dict]) -> None:
    streams.append(client, stream, [json.dumps(e, ensure_ascii=False) for e in events])


def _day_before(data) -> dict[str, list[dict]]:
    """Work of 2022-04-09 besides the published cases: observations, check-ins, a returnee,
    orders (one overdue), a gate closed: so every table of the briefing has rows."""
    t = lambda h, m=0: dt.datetime(2022, 4, 9, h, m, tzinfo=TZ).isoformat()  # noqa: E731
    c = data.compounds
    obs = [{"event_id": f"b-o{i}", "ts": t(8) if i else "2022-03-28T09:00:00+08:00", "person_id": person_id(600 + i),
            "category": "home_observation", "compound_id": c[i * 30].id} for i in range(4)]
    return {
        "cases": obs,
        "health": [{"event_id": f"b-h{i}", "ts": t(9, i), "person_id": person_id(600 + i), "temperature": 36.6}
                   for i in (1, 2)],
        "checkins": [{"event_id": "b-r1", "ts": t(10), "gate_id": data.gates[5].id, "direction": "in",
                      "person_id": person_id(700), "phone": phone(700), "category": "returnee", "temperature": 36.5,
                      "origin": "江苏省苏州市"}],
        "workorders": [
            {"event_id": "b-w1", "ts": t(11), "order_id": "B-1", "action": "create", "category": "supplies",
             "priority": "normal", "description": "缺米面", "lat": c[3].lat, "lng": c[3].lng},
            {"event_id": "b-w2", "ts": t(11, 10), "order_id": "B-1", "action": "dispatch",
             "committee_id": c[3].committee_id, "assignee": "居委"},
            {"event_id": "b-w3", "ts": t(20), "order_id": "B-2", "action": "create", "category": "medical_need",
             "priority": "urgent", "description": "透析", "lat": c[9].lat, "lng": c[9].lng}],
        "facilities": [{"event_id": "b-f1", "ts": t(12), "facility_id": data.gates[8].id, "status": "closed",
                        "guards_on_duty": 2, "reporter": "巡查"},
                       {"event_id": "b-f2", "ts": t(12), "facility_id": data.shops[2].id, "status": "closed",
                        "reporter": "巡查"}],
    }


@pytest.fixture(scope="module", params=ENGINES)
def replayed(request, tmp_path_factory, redis_url):
    """A street with the published lists of 2022-03-25 … 04-12 and a day of work, all ingested."""
    import redis

    tmp = tmp_path_factory.mktemp(f"brf-{request.param}")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    for engine in _engine(request.param, tmp, request):
        url = engine.url.render_as_string(hide_password=False)
        config = config_for(tmp, engine)
        data = load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
        list(replay_2022(engine, client, DATASETS, "南京东路", dt.date(2022, 3, 25), dt.date(2022, 4, 12), None))
        for stream, events in _day_before(data).items():
            _send(client, stream, events)
        _apply(engine, client, config, f"brf-{request.param}")
        yield {"engine": engine, "data": data, "config": config, "client": client, "tmp": tmp, "url": url}
    client.flushdb()


def _opsmap(rp, *args: str) -> subprocess.CompletedProcess:
    """The ``opsmap`` command on the replayed street's database (no Redis needed)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"DATABASE_URL": rp["url"], "OPSMAP_VAR_DIR": str(rp["tmp"])}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _pdf_text(body: bytes, tmp) -> str:
    path = tmp / "b.pdf"
    path.write_bytes(body)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def _committee_rows(text: str) -> dict[str, list[int]]:
    """The committee table of section 三 as read back from the PDF's text (up to its category table)."""
    part = text[text.index("三、"):text.index("（近7天）")]
    rows = re.finditer(r"^(合计|\S.*?居委会)\s+(-?\d+(?:\s+-?\d+)*)\s*$", part, re.M)
    return {m[1]: [int(v) for v in m[2].split()] for m in rows}


def test_brf001_2022_replay_gives_the_csv_count_per_committee(replayed, tmp_path):
    rp = replayed
    with session_factory(rp["engine"])() as s:
        committee_of = dict(s.execute(select(CompoundAddress.address, Compound.committee_id).join(Compound)).all())
        street = rp["data"].street
        names = {c.id: c.name for c in rp["data"].committees}
    csv = read_case_addresses(DATASETS, street.geom)
    expected = {name: 0 for name in names.values()}
    for address in set(csv[csv["date"] == DAY]["address"]):
        expected[names[committee_of[address]]] += 1
    assert sum(expected.values()) > 20  # the lists of that day are long in 南京东路

    out = tmp_path / "briefing.pdf"
    done = _opsmap(rp, "briefing", "--date", "2022-04-10", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = _committee_rows(_pdf_text(out.read_bytes(), tmp_path))
    assert {name: rows[name][0] for name in expected} == expected
    assert rows["合计"][0] == sum(expected.values())


def test_brf002_pdf_holds_the_summary_api_numbers_and_renders_chinese(replayed, tmp_path, artifacts, caplog):
    from dashboard.app import create_app

    rp = replayed
    caplog.set_level("WARNING", logger="weasyprint")
    web = signed_in(create_app(rp["config"], None).server)
    api = web.get(f"/api/v1/summary?street={rp['data'].street.id}&as_of={CUTOFF.isoformat()}").get_json()
    got = web.get(f"/briefing.pdf?date={DAY}&cutoff=07:00")
    assert got.status_code == 200 and got.mimetype == "application/pdf"
    text = _pdf_text(got.data, tmp_path)
    labels = {"confirmed": "确诊", "suspected": "疑似", "close_contact": "密接", "home_observation": "居家观察",
              "released": "解除观察"}
    for key, label in labels.items():
        c = api["cases"]["street"][key]
        assert f"{label}：24小时新增 {c['new_24h']}，累计 {c['total']}" in text
    o = api["work_orders"]
    assert f"24小时新开 {o['opened_24h']}，24小时关闭 {o['closed_24h']}，在办 {o['open']}，超时 {o['overdue']}" in text
    g, sh = api["facilities"]["gates"], api["facilities"]["shops"]
    assert f"关闭 {g['closed']}，限制通行 {g['restricted']}，值守不足 {g['understaffed']}" in text
    assert f"关闭 {sh['closed']}，待核实 {sh['unverified']}，营业 {sh['open']}" in text
    assert f"在观 {api['work']['key_person_visit']['target']}" in text
    assert f"共 {sum(api['alerts_24h'].values())} 条" in text
    assert api["cases"]["street"]["positive"]["new_24h"] > 0 and o["open"] == 2 and o["overdue"] == 1
    assert api["cases"]["street"]["confirmed"]["total"] == 0  # the lists published positives, not confirmed
    fonts = subprocess.run(["pdffonts", str(tmp_path / "b.pdf")], capture_output=True, text=True).stdout
    assert "CJK" in fonts  # the Chinese text is set in an embedded CJK font, not missing-glyph boxes
    assert "Serif" not in fonts  # the page numbers too are in the document's sans (the root carries it)
    # the CJK font is cut to its used glyphs by HarfBuzz (``make`` installs it): weasyprint's fallback,
    # fontTools, took ten seconds over Noto Sans CJK for one briefing
    assert not [r for r in caplog.records if "fontTools" in r.getMessage()]
    subprocess.run(["pdftoppm", "-r", "70", "-png", str(tmp_path / "b.pdf"), str(artifacts / "briefing-page")],
                   check=True)
    assert (artifacts / "briefing-page-1.png").stat().st_size > 20_000
    page = web.get(f"/briefing?date={DAY}")
    assert page.status_code == 200 and b'id="briefing-pdf"' in page.data and b'id="briefing-xlsx"' in page.data
    assert b"@media print" in page.data and not ID_OR_PHONE.search(page.data.decode())


def _numbers(rp) -> tuple[dict, dict]:
    r = briefing.make(rp["engine"], rp["config"], rp["data"].street.id, CUTOFF)
    frames = {k: getattr(r, k).to_dict("records") for k in ("committees", "trend", "orders_by_category",
                                                               "longest_open", "gates", "observations_started",
                                                               "observations_ending", "missed_checkins", "shops",
                                                               "alerts", "registrations", "observations", "orders",
                                                               "committee_trend", "overdue", "tier_changes",
                                                               "shop_summary")}
    return {k: v for k, v in r.summary.items()}, frames


def test_brf003_same_numbers_when_regenerated_after_later_events(replayed, tmp_path):
    rp = replayed
    before = _numbers(rp)
    pdf_before = _pdf_text(briefing.pdf(rp["engine"], rp["config"], briefing.make(
        rp["engine"], rp["config"], rp["data"].street.id, CUTOFF)), tmp_path)
    later = lambda m: (CUTOFF + dt.timedelta(minutes=m)).isoformat()  # noqa: E731
    c = rp["data"].compounds
    _send(rp["client"], "cases", [{"event_id": "late-1", "ts": later(5), "person_id": person_id(900),
                                   "category": "confirmed", "compound_id": c[0].id}])
    _send(rp["client"], "workorders", [{"event_id": "late-2", "ts": later(6), "order_id": "B-1", "action": "accept"},
                                       {"event_id": "late-3", "ts": later(7), "order_id": "B-1", "action": "resolve",
                                        "note": "已送达"}])
    _send(rp["client"], "facilities", [{"event_id": "late-4", "ts": later(8), "facility_id": rp["data"].gates[8].id,
                                        "status": "open", "guards_on_duty": 3, "reporter": "巡查"}])
    _send(rp["client"], "health", [{"event_id": "late-5", "ts": later(9), "person_id": person_id(600),
                                    "temperature": 36.4}])
    _apply(rp["engine"], rp["client"], rp["config"], "brf-late")
    with session_factory(rp["engine"])() as s:
        from data.models import HomeObservation

        obs = s.scalars(select(HomeObservation).order_by(HomeObservation.id)).first()
    _send(rp["client"], "observations", [{"event_id": "late-6", "ts": later(10), "observation_id": obs.id,
                                          "action": "extend", "days": 3, "reporter": "居委"}])
    _apply(rp["engine"], rp["client"], rp["config"], "brf-late")
    after = _numbers(rp)
    assert {k: v for k, v in after[0].items() if before[0].get(k) != v} == {}
    assert {k: v for k, v in after[1].items() if before[1].get(k) != v} == {}
    pdf_after = _pdf_text(briefing.pdf(rp["engine"], rp["config"], briefing.make(
        rp["engine"], rp["config"], rp["data"].street.id, CUTOFF)), tmp_path)
    strip = lambda t: re.sub(r"生成于 \S+ \S+", "", t)  # noqa: E731 - only the generation time differs
    assert strip(pdf_after) == strip(pdf_before)
    now = briefing.make(rp["engine"], rp["config"], rp["data"].street.id, CUTOFF + dt.timedelta(hours=1))
    assert now.summary["cases"]["street"]["confirmed"]["total"] == before[0]["cases"]["street"]["confirmed"][
        "total"] + 1  # the later events are there: they only do not count before their time


def test_brf004_workbook_totals_equal_the_pdf(replayed, tmp_path):
    rp = replayed
    r = briefing.make(rp["engine"], rp["config"], rp["data"].street.id, CUTOFF)
    body = briefing.workbook(r)
    sheets = pd.read_excel(io.BytesIO(body), sheet_name=None)
    assert list(sheets) == ["汇总", "返沪登记", "居家观察", "工单", "商铺", "说明"]
    summary = sheets["汇总"].set_index("居委")
    total = summary.loc["合计"]
    pdf_rows = _committee_rows(_pdf_text(briefing.pdf(rp["engine"], rp["config"], r), tmp_path))
    headings = [h for k, h in COMMITTEE_COLUMNS.items() if k != "committee"]
    assert [int(total[h]) for h in headings] == pdf_rows["合计"]
    for name, row in summary.drop(index="合计").iterrows():
        assert [int(row[h]) for h in headings] == pdf_rows[name]
    assert int(total["返沪登记（14天）"]) == len(sheets["返沪登记"]) == 1
    assert int(total["居家观察在观"]) == len(sheets["居家观察"]) == 4
    assert int(total["在办工单"]) == int((sheets["工单"]["时限"] != "已关闭").sum()) == 2
    assert int(total["昨日未打卡"]) == 1  # the observation from 03-28 without a check-in on 04-09
    flat = "\n".join(df.to_csv() for df in sheets.values())
    assert not ID_OR_PHONE.search(flat), "an unmasked ID or phone number in the workbook"
    assert "****" in sheets["返沪登记"]["电话（脱敏）"].iloc[0]


def test_brf005_cli_writes_the_workbook(replayed, tmp_path):
    out = tmp_path / "t.xlsx"
    done = _opsmap(replayed, "tables", "--date", "2022-04-10", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert pd.read_excel(out, sheet_name="汇总").iloc[-1]["居委"] == "合计"
    bad = _opsmap(replayed, "tables", "--date", "2022-13-01")
    assert bad.returncode == 2 and "--date" in bad.stderr


def test_brf006_action_items_a_head_can_assign(replayed, tmp_path):
    """二、今日行动事项: the overdue order with its owner and how late; the compounds whose tier
    changes that day (by the published lists, read from the CSV here); per-committee categories
    with their 7-day lines; shops counted per committee, named only in the workbook."""
    from data.domain import rules

    rp = replayed
    r = briefing.make(rp["engine"], rp["config"], rp["data"].street.id, CUTOFF)
    text = _pdf_text(briefing.pdf(rp["engine"], rp["config"], r), tmp_path)
    actions = text[text.index("二、今日行动事项"):text.index("三、")]
    assert "超时工单 1 件" in actions and "B-2" in actions and "（未派）" in actions  # the order, its owner
    late = r.overdue.iloc[0]  # the urgent one created at 20:00 and never dispatched: 10 h 55 min late at 07:00
    assert late["order"] == "B-2" and late["owner"] == "（未派）" and late["late"] == "10 小时 55 分"

    with session_factory(rp["engine"])() as s:
        compound_of = dict(s.execute(select(CompoundAddress.address, Compound.name)
                                     .join(Compound, Compound.id == CompoundAddress.compound_id)).all())
    csv = read_case_addresses(DATASETS, rp["data"].street.geom)
    newest: dict[str, dt.date] = {}
    for day, address in zip(csv["date"], csv["address"], strict=True):
        if address in compound_of and dt.date(2022, 3, 25) <= day <= DAY:
            newest[compound_of[address]] = max(day, newest.get(compound_of[address], day))
    expected = {name for name, d in newest.items()
                if rules.tier([d], DAY) != rules.tier([d], DAY - dt.timedelta(days=1))}
    assert expected, "04-10 has compounds whose tier changes"
    assert set(r.tier_changes[r.tier_changes["when"] == "今日"]["compound"]) == expected
    assert f"今日、明日分区变化的小区 {len(r.tier_changes)} 个" in actions

    positive_today = r.committee_trend[r.committee_trend["category"] == "positive"]
    assert sum(days[-1] for days in positive_today["days"]) == r.summary["cases"]["street"]["positive"]["new_24h"]
    assert "阳性感染者（近7天）" in text

    shop = next(s for s in rp["data"].shops if s.id == rp["data"].shops[2].id)
    assert shop.name not in text and "商铺" in pd.read_excel(io.BytesIO(briefing.workbook(r)), sheet_name=None)
    assert int(r.shop_summary["closed"].sum()) == r.summary["facilities"]["shops"]["closed"]


def test_brf007_the_briefing_in_english_with_opsmap_language_en(replayed):
    """OPSMAP_LANGUAGE=en: headings, column names, sentences and codes of the briefing in English
    (names of places and people stay as they are: they are names)."""
    from data.settings import Config

    rp = replayed
    config = Config({**rp["config"].values, "language": "en"})
    r = briefing.make(rp["engine"], config, rp["data"].street.id, CUTOFF)
    html = briefing.render(rp["engine"], config, r)
    cjk = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
    framing = re.findall(r"<(h2|th)>(.*?)</\1>", html) + re.findall(r'<p class="(facts|meta)">(.*?)</p>', html)
    names = (r.street["district"], r.street["name"])
    assert [text for _, text in framing if cjk.search(re.sub("|".join(names), "", text))] == []
    assert "2. Today's actions" in html and "<b>1</b> overdue orders" in html and "Positive cases" in html
    cells = re.findall(r"<td>(.*?)</td>", html)
    assert "Medical need" in cells and "To dispatch" in cells  # codes by their English names
    assert "10 h 55 min" in cells  # how late, in English words


def widths(html: str) -> list[float]:
    return [float(w) for w in re.findall(r'width:([\d.]+)%', html)]


def test_brf008_column_widths_follow_the_text_like_an_automatic_layout():
    """Fixed table layout (the PDF's speed) with widths from the text: the columns fill the line;
    when all fit, each is as wide as its longest line; when not, a long column gives way, the
    first never wraps and none is narrower than its longest unbreakable word."""
    fits = widths(briefing.colgroup([["居委", "01 居委会"], ["在办", "300"]]))
    assert sum(fits) == pytest.approx(100, abs=0.3)
    assert fits[0] / fits[1] == pytest.approx((briefing.text_em("01 居委会") + briefing.CELL_PAD_EM)
                                              / (briefing.text_em("在办") + briefing.CELL_PAD_EM), rel=0.02)
    long_text = "居民反映小区门口物资配送点排队时间过长，希望增加配送人员并分时段发放" * 2
    first = "2022-04-20 09:15 南京东路街道"
    tight = widths(briefing.colgroup([[first], ["x"], [long_text], ["W-000000000000000000001 a"]]))
    assert sum(tight) == pytest.approx(100, abs=0.3)
    line = briefing.LINE_EM
    em = [w / 100 * line for w in tight]
    assert em[0] >= briefing.text_em(first) + briefing.CELL_PAD_EM - 0.05  # the first column keeps its line
    assert em[2] < briefing.text_em(long_text) / 2  # the long one wraps
    assert em[3] >= briefing.text_em("W-000000000000000000001") + briefing.CELL_PAD_EM - 0.05


def _boxes(document) -> list[tuple]:
    """Every box of a rendered document: its kind, position and size (the layout, box for box)."""
    def walk(box):
        yield (box.element_tag, type(box).__name__, *(round(v, 3) if isinstance(v, float) else v for v in (
            box.position_x, box.position_y, box.width, box.height)))
        for child in getattr(box, "children", ()):
            yield from walk(child)
    return [b for page in document.pages for b in walk(page._page_box)]


def test_brf009_the_printer_lays_out_the_briefing_as_weasyprint_does(replayed, caplog):
    """The PDF is made with weasyprint's HTML less the user-agent rules a briefing never uses
    (footnotes, notes, markers off list items: a tenth of its time): every box where weasyprint's
    own would put it, list markers included; with the installed weasyprint that printer is in use,
    and making it says nothing (a start makes it: its log stays clean)."""
    import weasyprint

    rp = replayed
    html = briefing.render(rp["engine"], rp["config"], briefing.make(rp["engine"], rp["config"],
                                                                     rp["data"].street.id, CUTOFF))
    caplog.set_level("WARNING", logger="weasyprint")
    briefing._printer.cache_clear()
    printer = briefing._printer()
    assert not caplog.records
    assert printer is not weasyprint.HTML and issubclass(printer, weasyprint.HTML)
    ours, theirs = printer(string=html).render(), weasyprint.HTML(string=html).render()
    assert len(ours.pages) == len(theirs.pages) > 1
    boxes = _boxes(ours)
    assert boxes == _boxes(theirs)
    assert any(tag == "li::marker" for tag, *_ in boxes)  # the action items keep their bullets


def _statements(engine, run) -> list[str]:
    from sqlalchemy import event

    said: list[str] = []
    listen = lambda conn, cursor, statement, *rest: said.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return said


def test_brf010_one_reading_whatever_the_rows_and_the_map_marks_what_the_tables_count(replayed):
    """The report asks the database the same questions however many observations there are (not one
    more per row); the orders are read once for the headline, the tables and the map; and the
    map marks the overdue orders and active observations the tables count."""
    rp = replayed

    def made(at: dt.datetime):
        got = []
        said = _statements(rp["engine"], lambda: got.append(briefing.make(rp["engine"], rp["config"],
                                                                          rp["data"].street.id, at)))
        return got[0], said

    early, said_early = made(cutoff_at(dt.date(2022, 3, 30)))
    r, said = made(CUTOFF)
    assert len(early.observations) == 1 and len(r.observations) == 4
    in_list = re.compile(r"IN \((?:[^()]|\([^()]*\))*\)(?: AND \(1 != 1\))?")  # IN lists alike, empty ones too
    shape, shape_early = (collections.Counter(in_list.sub("IN (…)", s) for s in x) for x in (said, said_early))
    more = shape - shape_early  # only loads that had no rows to load early (an order's steps), no repeats
    assert more.keys() and not more.keys() & shape_early.keys(), more
    orders = [s for s in said if re.search(r"\bFROM work_order\b(?!_)", s)]
    assert len(orders) == 1, orders
    assert len(r.marks["workorders"]) == len(r.overdue) == r.summary["work_orders"]["overdue"] == 1
    assert len(r.marks["observations"]) == len(r.observations) == 4
    html = briefing.render(rp["engine"], rp["config"], r)
    assert "超时工单 1" in html and "居家观察 4" in html
