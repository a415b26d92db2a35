"""The 8 a.m. morning briefing: HTML (``/briefing``, print styles), A4 PDF and the summary workbook.

Why one HTML for page and PDF: what the street reads on screen at 8:00 and what it prints
are the same document, so they cannot differ. The numbers come from ``data.read.report`` (frozen
at the cut-off); this module only lays them out. Only masked personal data reaches it.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Blueprint, Response, abort, current_app, request
from shapely.geometry import mapping, shape
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dashboard import access
from dashboard.i18n import tr
from data.domain import deadlines, rules
from data.domain.labels import CODED
from data.domain.labels import label as name_of
from data.models import Committee
from data.pipeline.events import CASE_LABELS
from data.read import queries, report
from data.read.report import COMMITTEE_COLUMNS, Report
from data.settings import Config, datasets_path
from data.store import session_factory
from layers import basemap, boundaries, cases, gates, observations, workorders
from layers.base import Query

MAP_W, MAP_H = 640.0, 420.0
LIST_LIMIT = 30
ACTION_LIMIT = 10  # rows per action item: the first page is for deciding, the lists follow
HEADINGS = {"committee": "居委", "compound": "小区", "address": "地址", "person": "人员（脱敏）", "start": "开始",
            "planned_end": "计划解除", "ends": "期满", "day": "第N天", "checked_in_today": "今日已打卡",
            "last_checkin": "最近打卡", "phone": "电话（脱敏）", "origin": "来源地", "status": "状态", "gate": "出入口",
            "created": "时间", "order": "工单号", "category": "类别", "priority": "紧急程度", "state": "状态",
            "open_hours": "已开（小时）", "sla": "时限", "description": "诉求", "guards": "在岗/应岗", "shop": "商铺",
            "last_report": "最近核实", "time": "时间", "kind": "类型", "severity": "级别", "message": "内容",
            "opened_24h": "24小时新开", "closed_24h": "24小时关闭", "open": "在办", "overdue": "超时",
            "owner": "承办人", "level": "催办/督办",
            "late": "超时", "when": "生效", "from_tier": "原分区", "to_tier": "新分区",
            "closed": "关闭", "unverified": "待核实",
            **COMMITTEE_COLUMNS}
SHEETS = {"返沪登记": "registrations", "居家观察": "observations", "工单": "orders", "商铺": "shops"}
CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt; } }
/* on the root, not the body: the page's margin boxes (its page numbers) inherit from the root */
html { font-family: "Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", sans-serif; }
body { font-size: 9.5pt; color: #212529; margin: 0; }
.briefing { max-width: 190mm; margin: 0 auto; }
h1 { font-size: 17pt; color: #c92a2a; margin: 0 0 2mm; }
h2 { font-size: 12pt; border-left: 4px solid #c92a2a; padding-left: 2mm; margin: 5mm 0 2mm; break-after: avoid; }
.meta { color: #495057; font-size: 8.5pt; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm; break-inside: auto; table-layout: fixed; }
th, td { border: 0.5pt solid #adb5bd; padding: 0.8mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child { white-space: nowrap; }
tr.total td { font-weight: 700; background: #fff5f5; }
.headline { display: grid; grid-template-columns: repeat(6, 1fr); gap: 2mm; margin: 2mm 0; }
.headline div { border: 0.5pt solid #ced4da; border-radius: 2mm; padding: 1.5mm; text-align: center; }
.headline b { display: block; font-size: 15pt; color: #c92a2a; }
.facts { margin: 1mm 0; }
svg { width: 100%; height: auto; border: 0.5pt solid #dee2e6; }
svg.spark { width: 16mm; height: 4mm; border: none; vertical-align: middle; margin-left: 1mm; }
.actions li { margin: 0.6mm 0; }
.actions b { color: #c92a2a; }
.toolbar { display: flex; gap: 3mm; align-items: center; padding: 3mm; background: #f1f3f5; margin-bottom: 4mm;
           flex-wrap: wrap; font-family: sans-serif; }
.toolbar a { padding: 1.5mm 3mm; background: #1c7ed6; color: #fff; border-radius: 1mm; text-decoration: none; }
@media print { .toolbar { display: none; } }
"""


def make(engine: Engine, config: Config, street_id: str, cutoff: dt.datetime) -> Report:
    """The report of a street at ``cutoff`` from the configured database, with its map's points
    read in the same session and reading of the orders (the map shows what the tables count)."""
    with session_factory(engine)() as session, queries.one_reading(session):
        r = report.build(session, street_id, cutoff, datasets_path(config), deadlines.of(config))
        return replace(r, marks=_marks(session, Query.from_config(config, street_id, cutoff)))


def _marks(session: Session, q: Query) -> dict[str, list[tuple[float, float]]]:
    """What the briefing's map marks: the day's positive cases, active observations, gates closed or
    short of guards, overdue orders."""
    day_q = Query(q.street_id, q.at, case_window=dt.timedelta(days=1), policy=q.policy)
    chosen = {"cases": [f for f in cases.features(session, day_q)["features"]
                        if f["properties"]["kind"] in rules.POSITIVE],
              "observations": [f for f in observations.features(session, q)["features"]
                               if f["properties"]["kind"] == "active"],
              "gates": [f for f in gates.features(session, q)["features"]
                        if f["properties"]["kind"] == "closed" or f["properties"]["understaffed"]],
              "workorders": [f for f in workorders.features(session, q)["features"] if f["properties"]["overdue"]]}
    return {layer: [tuple(f["geometry"]["coordinates"][:2]) for f in found] for layer, found in chosen.items()}


def street_id_of(engine: Engine, config: Config, name: str | None = None,
                 among: Collection[str] | None = None) -> str:
    """The street to report on: the one named, else the configured one, else the only one loaded
    (of the streets ``among``, when given: the reader's)."""
    with session_factory(engine)() as session:
        loaded = [s for s in queries.streets(session) if among is None or s.id in among]
    wanted = name or config.street
    chosen = next((s for s in loaded if wanted in (s.name, s.id)), loaded[0] if loaded and not name else None)
    if chosen is None:
        raise LookupError(f"street {wanted!r} is not loaded (loaded: {', '.join(s.name for s in loaded) or 'none'})")
    return chosen.id


# --- HTML -----------------------------------------------------------------------------------


def words(lang: str) -> Callable[..., str]:
    """The briefing's text in the UI language: ``t("在观 {n}", n=4)`` (dashboard/i18n.py holds the English)."""
    def t(text: str, **values: Any) -> str:
        return tr(text, lang).format(**values)
    return t


#: words the report's rows carry (data/read/report.py writes them in Chinese), as the reader's language names them
DURATION = re.compile(r"(\d+) (天|小时|分钟|分)")
WORKING_DAYS = re.compile(r"剩余 (\d+) 个工作日")


def _said(value: str, lang: str) -> str:
    if lang != "en":
        return value
    value = WORKING_DAYS.sub(r"\1 working days left", tr(value, lang))
    value = value.replace("超时 ", "overdue ").replace("剩余 ", "left: ")
    return DURATION.sub(lambda m: f"{m[1]} {tr(m[2], lang)}", value)


def _shown(value: Any, lang: str) -> tuple[str, bool]:
    """A cell's text as the reader sees it, and whether it is a number (set right)."""
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return tr("是" if value else "否", lang), False
    if isinstance(value, int | float):
        return ("", False) if pd.isna(value) else (f"{value:g}", True)
    return ("" if value is None else _said(str(value), lang)), False


def _td(text: str, number: bool) -> str:
    return f'<td class="n">{text}</td>' if number else f"<td>{escape(text)}</td>"


#: the printed line in em of the body's 9.5 pt: A4 less its margins, 186 mm
LINE_EM = 186 / (9.5 * 25.4 / 72)
CELL_PAD_EM = 1.0  # 1.5 mm padding each side and the rule
UNBROKEN = re.compile(r"[^\s\u2e80-\u9fff\uff00-\uffef]+")  # what a line cannot break inside (CJK breaks anywhere)


def text_em(text: str) -> float:
    """About how wide ``text`` is set in Noto Sans CJK: a CJK character is 1 em, the rest about 0.6."""
    return sum(1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.6 for ch in text)


def colgroup(columns: list[list[str]], extra_em: list[float] | None = None) -> str:
    """Column widths worked out from the text, for ``table-layout: fixed``. Why: weasyprint's
    automatic layout sets every cell's text twice more with Pango (its narrowest and widest
    line) before laying it out — a seventh of the PDF's time. As that layout would: every column
    as wide as its longest line when all fit; else the narrow ones keep theirs and the wide ones
    share the rest, never below their longest unbreakable word. The first column never wraps."""
    extra = extra_em or [0.0] * len(columns)
    want = [max(map(text_em, col), default=1.0) + CELL_PAD_EM + e for col, e in zip(columns, extra, strict=True)]
    floor = [want[0]] + [max((text_em(w) for c in col for w in UNBROKEN.findall(c)), default=1.0) + CELL_PAD_EM + e
                         for col, e in zip(columns[1:], extra[1:], strict=True)]
    room, left, widths = LINE_EM, len(want), list(want)
    for i in sorted(range(len(want)), key=want.__getitem__):
        share = room / left
        widths[i] = max(floor[i], min(want[i], share))
        room, left = room - widths[i], left - 1
    total = sum(widths)
    return "<colgroup>" + "".join(f'<col style="width:{100 * w / total:.1f}%">' for w in widths) + "</colgroup>"


def named(df: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """The frame with every coded column (status, category, state …) in words (data/domain/labels.py)."""
    coded = [c for c in df.columns if c in CODED]
    if not coded:
        return df
    return df.assign(**{c: df[c].map(lambda v, c=c: tr(name_of(v, c), lang) if isinstance(v, str) else v)
                        for c in coded})


def table(df: pd.DataFrame, total: dict[str, Any] | None = None, limit: int | None = None, lang: str = "zh") -> str:
    """A DataFrame as an HTML table with headings and codes named (escaped), optionally a 合计 row."""
    t = words(lang)
    if df.empty:
        return f'<p class="facts">{t("无")}</p>'
    df = named(df, lang)
    shown = df if limit is None else df.head(limit)
    heads = [t(HEADINGS.get(c, c)) for c in df.columns]
    cells = [[_shown(v, lang) for v in r] for r in shown.itertuples(index=False)]
    if total is not None:
        cells.append([_shown(total.get(c, "合计" if i == 0 else ""), lang) for i, c in enumerate(df.columns)])
    widths = colgroup([[h] + [row[i][0] for row in cells] for i, h in enumerate(heads)])
    rows = ["<tr>" + "".join(_td(*c) for c in row) + "</tr>" for row in cells[:len(shown)]]
    if total is not None:
        rows.append('<tr class="total">' + "".join(_td(*c) for c in cells[-1]) + "</tr>")
    more = f'<p class="meta">{t("另有 {n} 条未列出。", n=len(df) - len(shown))}</p>' if len(shown) < len(df) else ""
    return (f'<table>{widths}<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{more}')


OFFICIAL = ("{place}（{date} 官方通报）：确诊新增 {c}，无症状新增 {a}；累计确诊 {ct}，累计无症状 {at}，"
            "累计阳性感染者 {pt}")


def _headline(r: Report, t: Callable[..., str]) -> str:
    street = r.summary["cases"]["street"]
    boxes = "".join(f"<div>{t(CASE_LABELS[c])}<b>{street[c]['new_24h']}</b>{t('累计 {n}', n=street[c]['total'])}</div>"
                    for c in CASE_LABELS)
    lines = "".join("<li>" + t("{name}：24小时新增 {new}，累计 {total}", name=t(CASE_LABELS[c]),
                               new=street[c]["new_24h"], total=street[c]["total"]) + "</li>" for c in CASE_LABELS)
    official = ""
    for key, label in (("district", r.street["district"]), ("city", t("上海市"))):
        o = r.summary["cases"][key]
        if o:
            c, a = o["confirmed"], o["asymptomatic"]
            official += "<li>" + t(OFFICIAL, place=escape(label), date=o["date"], c=c["new"], a=a["new"],
                                   ct=c["total"], at=a["total"], pt=c["total"] + a["total"]) + "</li>"
    tiers = r.summary["tiers"]
    zones = t("封控区 {s}、管控区 {c}、防范区 {p}（小区数）", s=tiers["sealed"], c=tiers["controlled"],
              p=tiers["precaution"])
    return f'<div class="headline">{boxes}</div><ul class="facts">{lines}{official}<li>{zones}</li></ul>'



def _trend(r: Report, t: Callable[..., str], lang: str) -> str:
    """Positive cases (rules.POSITIVE) per day over 14 days (bars), and 7- and 14-day sums per category."""
    trend = r.trend
    daily = sum(trend[c] for c in rules.POSITIVE)
    top = max(1, int(daily.max()))
    w, h, bw = 640, 140, 640 / 14
    bars = "".join(
        f'<rect x="{i * bw + 4:.1f}" y="{h - 20 - v / top * (h - 40):.1f}" width="{bw - 8:.1f}" '
        f'height="{v / top * (h - 40):.1f}" fill="#c92a2a"/><text x="{i * bw + bw / 2:.1f}" '
        f'y="{h - 24 - v / top * (h - 40):.1f}" font-size="10" text-anchor="middle">{v}</text>'
        f'<text x="{i * bw + bw / 2:.1f}" y="{h - 6}" font-size="9" text-anchor="middle">{d:%m-%d}</text>'
        for i, (d, v) in enumerate(zip(trend["day"], daily, strict=True)))
    sums = pd.DataFrame([{"category": t(CASE_LABELS[c]), "last_7": int(trend[c].tail(7).sum()),
                          "last_14": int(trend[c].sum())} for c in CASE_LABELS])
    sums.columns = [t("类别"), t("近7天"), t("近14天")]
    chart = f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="{t("阳性感染者趋势")}">{bars}</svg>'
    return chart + table(sums, lang=lang)


SPARK_EM = 17 / (9.5 * 25.4 / 72)  # a sparkline and its margin: 17 mm


def sparkline(days: list[int]) -> str:
    """A day-by-day count as a small inline line (oldest left), scaled to its own peak."""
    top, step = max(1, *days), 60 / max(1, len(days) - 1)
    points = " ".join(f"{i * step:.1f},{14 - v / top * 12:.1f}" for i, v in enumerate(days))
    return (f'<svg class="spark" viewBox="0 0 60 16" role="img" aria-label="{"、".join(map(str, days))}">'
            f'<polyline points="{points}" fill="none" stroke="#c92a2a" stroke-width="1.5"/></svg>')


def _committee_categories(r: Report, t: Callable[..., str]) -> str:
    """Every case category per committee over the last 7 days: the count and its daily line."""
    if r.committee_trend.empty:
        return f'<p class="facts">{t("近7天无病例报告。")}</p>'
    shown = [c for c in CASE_LABELS if c in set(r.committee_trend["category"])]
    cells = {(row.committee, row.category): row.days for row in r.committee_trend.itertuples(index=False)}
    heads = [t("居委")] + [t("{name}（近7天）", name=t(CASE_LABELS[c])) for c in shown]
    committees = list(dict.fromkeys(r.committee_trend["committee"]))
    rows = "".join(
        f"<tr><td>{escape(t(committee))}</td>" + "".join(
            f'<td class="n">{sum(cells[committee, c])}{sparkline(cells[committee, c])}</td>'
            if (committee, c) in cells else '<td class="n">0</td>' for c in shown) + "</tr>"
        for committee in committees)
    widths = colgroup([[heads[0], *map(t, committees)]] + [[h, "0000"] for h in heads[1:]],
                      [0.0] + [SPARK_EM] * len(shown))
    return (f'<table>{widths}<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _actions(r: Report, t: Callable[..., str], lang: str) -> str:
    """今日行动事项: what the morning meeting must assign — each with who and how late."""
    s = r.summary
    items = [
        (t("督办工单 <b>{n}</b> 件（超过时限仍未办结，晨会逐件过）", n=len(r.supervised)),
         table(r.supervised, limit=ACTION_LIMIT, lang=lang)),
        (t("超时工单 <b>{n}</b> 件（按超时长短）", n=len(r.overdue)), table(r.overdue, limit=ACTION_LIMIT, lang=lang)),
        (t("昨日未健康打卡 <b>{n}</b> 人（名单见第八部分）", n=len(r.missed_checkins)), ""),
        (t("值守不足的出入口 <b>{n}</b> 个", n=len(r.understaffed)),
         table(r.understaffed, limit=ACTION_LIMIT, lang=lang)),
        (t("今日、明日分区变化的小区 <b>{n}</b> 个", n=len(r.tier_changes)),
         table(r.tier_changes, limit=ACTION_LIMIT, lang=lang)),
        (t("今日期满解除观察 <b>{n}</b> 人，在观 {m} 人", n=r.ending_today(),
           m=s["work"]["key_person_visit"]["target"]), ""),
    ]
    return '<ol class="actions">' + "".join(f"<li>{head}{body}</li>" for head, body in items) + "</ol>"


def _shops(r: Report, t: Callable[..., str], lang: str) -> str:
    """Shops summarised per committee (the list itself is in the workbook)."""
    shops = r.summary["facilities"]["shops"]
    total = {"committee": "合计", **{c: int(r.shop_summary[c].sum()) for c in ("closed", "unverified", "open")}} \
        if not r.shop_summary.empty else None
    facts = t("关闭 {c}，待核实 {u}，营业 {o}（共 {n} 家；关闭和待核实的商铺名单见汇总表“商铺”）。",
              c=shops["closed"], u=shops["unverified"], o=shops["open"], n=shops["total"])
    return f'<p class="facts">{facts}</p>' + table(r.shop_summary, total, lang=lang)


BASEMAP_NOTE = "。底图：OpenStreetMap（ODbL）；居委辖区为合成数据。"


def _svg_map(engine: Engine, config: Config, r: Report, t: Callable[..., str]) -> str:
    """A static map of the street at the cut-off: roads, water, committees, the day's points."""
    q = Query.from_config(config, r.street["id"], r.cutoff)
    with session_factory(engine)() as s:
        base, bounds = basemap.features(s, q), boundaries.features(s, q)
    street = shape(bounds["features"][0]["geometry"])
    minx, miny, maxx, maxy = street.bounds
    kx = 0.8660  # cos(30°): metres per degree of longitude against latitude near Shanghai
    scale = min(MAP_W / ((maxx - minx) * kx), MAP_H / (maxy - miny)) * 0.96
    half_px = 0.5 / scale  # degrees: what the print cannot show is left out

    def px(lng: float, lat: float) -> tuple[float, float]:
        return (lng - minx) * kx * scale + 8, (maxy - lat) * scale + 8

    def xy(lng: float, lat: float) -> str:
        return "{:.1f},{:.1f}".format(*px(lng, lat))

    def path(geom: dict[str, Any]) -> str:
        simple = mapping(shape(geom).simplify(half_px))
        kind, coords = simple["type"], simple["coordinates"]
        lines = {"LineString": [coords], "MultiLineString": coords, "Polygon": coords,
                 "MultiPolygon": [ring for poly in coords for ring in poly]}.get(kind, [])
        return " ".join("M" + " L".join(xy(*c[:2]) for c in line) for line in lines)

    # one <path> per look, not per feature: the PDF renderer's time goes by SVG elements
    # (a path per road and a circle per point made the map a third of the briefing's time)
    looks: dict[tuple[str, ...], list[str]] = {}
    for f in base["features"]:
        water = f["properties"]["kind"] == "water"
        look = ("#d0ebff" if water and "Polygon" in f["geometry"]["type"] else "none",
                "#a5d8ff" if water else "#dee2e6", "2" if water else "1", "")
        looks.setdefault(look, []).append(path(f["geometry"]))
    for f in bounds["features"]:
        street_edge = f["properties"]["kind"] == "street"
        look = ("none", "#e8590c" if street_edge else "#4dabf7", "2.5" if street_edge else "1",
                "" if street_edge else "4 3")
        looks.setdefault(look, []).append(path(f["geometry"]))
    style = {"cases": ("#c92a2a", 4), "observations": ("#7048e8", 3.5), "gates": ("#212529", 3),
             "workorders": ("#1c7ed6", 4)}
    # a dot is a zero-length line with round caps: PDF paints it as a filled circle, while the
    # renderer turns each arc of a drawn circle into Bézier curves in Python (a tenth of the PDF)
    dots: dict[tuple[str, float], list[str]] = {}
    for layer, marks in r.marks.items():
        dots.setdefault(style[layer], []).extend("M{:.1f},{:.1f}l0,0".format(*px(*at)) for at in marks)
    parts = [f'<path d="{" ".join(ds)}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
             + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
             for (fill, stroke, width, dash), ds in looks.items()]
    parts += [f'<path d="{" ".join(ds)}" fill="none" stroke="{colour}" stroke-width="{2 * r}" stroke-linecap="round"'
              ' stroke-opacity="0.85"/>' for (colour, r), ds in dots.items()]
    counts = {k: len(r.marks.get(k, ())) for k in style}
    legend = t("　").join(f'<span style="color:{style[k][0]}">●</span> {t(label)} {counts[k]}' for k, label in
                      (("cases", "24小时阳性感染者"), ("observations", "居家观察"), ("gates", "关闭/值守不足出入口"),
                       ("workorders", "超时工单")))
    return (f'<svg viewBox="0 0 {MAP_W + 16:.0f} {MAP_H + 16:.0f}" role="img" aria-label="{t("街道示意图")}">'
            f'{"".join(parts)}</svg><p class="meta">{legend}{t(BASEMAP_NOTE)}</p>')


META = "{district} · {day} · 数据截至 {cut}（此后的事件不计入，重新生成结果相同） · 生成于 {made}"


def render(engine: Engine, config: Config, r: Report, toolbar: str = "", exported_by: str = "") -> str:
    """The whole briefing as one HTML document (the page and the PDF), in the UI language."""
    lang = config.language
    t = words(lang)
    s = r.summary
    orders, gates_now = s["work_orders"], s["facilities"]["gates"]
    alerts_24h = sum(s["alerts_24h"].values())
    ending_today = r.ending_today()
    cut = r.cutoff.astimezone(rules.SHANGHAI)
    order_sums = {c: int(r.orders_by_category[c].sum()) for c in ("opened_24h", "closed_24h", "open", "overdue")}
    sections = [
        f"<h1>{t('{street} 疫情防控晨报', street=escape(r.street['name']))}</h1>",
        '<p class="meta">' + t(META, district=escape(r.street["district"]), day=f"{r.day:%Y-%m-%d}",
                               cut=f"{cut:%Y-%m-%d %H:%M}", made=f"{dt.datetime.now(rules.SHANGHAI):%Y-%m-%d %H:%M}")
        + (t(" · 导出人 {who}", who=escape(exported_by)) if exported_by else "") + "</p>",
        f"<h2>{t('一、疫情概况（24小时新增 / 累计）')}</h2>", _headline(r, t),
        f"<h2>{t('二、今日行动事项')}</h2>", _actions(r, t, lang),
        f"<h2>{t('三、分居委情况（较前一日）')}</h2>",
        table(r.committees, {"committee": "合计", **r.totals()}, lang=lang),
        _committee_categories(r, t),
        f"<h2>{t('四、近7天、14天趋势（阳性感染者，按日）')}</h2>", _trend(r, t, lang),
        f"<h2>{t('五、街道示意图（截至发布时点）')}</h2>", _svg_map(engine, config, r, t),
        f"<h2>{t('六、12345 工单')}</h2>",
        '<p class="facts">' + t("24小时新开 {a}，24小时关闭 {b}，在办 {c}，超时 {d}。", a=orders["opened_24h"],
                                b=orders["closed_24h"], c=orders["open"], d=orders["overdue"]) + "</p>",
        table(r.orders_by_category, {"category": "合计", **order_sums}, lang=lang),
        f'<p class="facts">{t("在办时间最长的工单：")}</p>',
        table(r.longest_open[["committee", "order", "category", "state", "open_hours", "sla", "description"]],
              lang=lang),
        f"<h2>{t('七、小区出入口')}</h2>",
        '<p class="facts">' + t("关闭 {c}，限制通行 {r}，值守不足 {u}（共列出 {n} 个关闭或值守不足的出入口）。",
                                c=gates_now["closed"], r=gates_now["restricted"], u=gates_now["understaffed"],
                                n=len(r.gates)) + "</p>",
        table(r.gates, limit=LIST_LIMIT, lang=lang),
        f"<h2>{t('八、居家观察')}</h2>",
        '<p class="facts">' + t("在观 {a}，24小时新增 {b}，今日期满 {c}，明日期满 {d}，昨日未打卡 {e}。",
                                a=s["work"]["key_person_visit"]["target"], b=len(r.observations_started),
                                c=ending_today, d=len(r.observations_ending) - ending_today,
                                e=len(r.missed_checkins)) + "</p>",
        f'<p class="facts">{t("今日、明日期满：")}</p>', table(r.observations_ending, limit=LIST_LIMIT, lang=lang),
        f'<p class="facts">{t("昨日未打卡：")}</p>', table(r.missed_checkins, limit=LIST_LIMIT, lang=lang),
        f"<h2>{t('九、沿街商铺')}</h2>", _shops(r, t, lang),
        f"<h2>{t('十、近24小时预警')}</h2>", f'<p class="facts">{t("共 {n} 条。", n=alerts_24h)}</p>',
        table(r.alerts, limit=LIST_LIMIT, lang=lang),
    ]
    return (f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8"><title>'
            f'{t("{street} 晨报 {day}", street=escape(r.street["name"]), day=r.day)}</title><style>{CSS}</style></head>'
            f'<body>{toolbar}<main class="briefing">{"".join(sections)}</main></body></html>')


def pdf(engine: Engine, config: Config, r: Report, exported_by: str = "") -> bytes:
    """The briefing as an A4 PDF (weasyprint; needs a CJK font such as Debian's fonts-noto-cjk),
    stamped with who exported it and when."""
    return _printer()(string=render(engine, config, r, exported_by=exported_by)).write_pdf()


def warm() -> None:
    """Make a one-line PDF in the briefing's style: it imports weasyprint and Pango and loads the
    CJK font (~0.6 s), so the first briefing after a start is as fast as the next."""
    _printer()(string=f'<html lang="zh-CN"><style>{CSS}</style><h1>晨报 0</h1><td class="n">1</td>').write_pdf()


#: rules of weasyprint's user-agent stylesheet for what a briefing never has: footnotes, notes,
#: and list markers on elements other than list items (``li``)
UNUSED_UA = re.compile(r"^::(?:footnote|note)-[\w-]+ \{[^}\n]*\}\n", re.M)


@cache
def _printer() -> type:
    """weasyprint's HTML, its user-agent stylesheet without ``UNUSED_UA`` (imported here: it loads
    Pango, which only the briefing needs). Why: those rules match every element, so each of the
    briefing's ~1,500 elements had six pseudo-elements styled — a tenth of the PDF's time. The
    layout is the same box for box (tests/read/test_briefing.py). Where a weasyprint version's
    stylesheet does not read as expected, its own HTML is used unchanged."""
    from weasyprint import CSS, HTML

    try:
        from weasyprint.css.counters import CounterStyle
        from weasyprint.html import UA
    except ImportError:
        return HTML
    trimmed, found = UNUSED_UA.subn("", UA)
    if found != 5 or UA.count("\n::marker {") != 1 or not hasattr(HTML, "_ua_stylesheets"):
        return HTML
    # its @counter-style rules go to a dictionary of their own: weasyprint's holds them already (and
    # warns at a second disc or decimal); a document is counted with weasyprint's, as before
    sheet = CSS(string=trimmed.replace("\n::marker {", "\nli::marker {"), counter_style=CounterStyle())

    class Printer(HTML):  # type: ignore[misc]
        def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
            return [sheet]

    return Printer


#: cell text a spreadsheet would run as a formula (or a DDE command): written as text instead
#: how long an export of a past cut-off is kept per reader (it cannot change)
EXPORT_KEEP_S = 3600.0
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def workbook(r: Report, exported_by: str = "") -> bytes:
    """The summary tables: 汇总 (the briefing's committee table) and one sheet per table, by
    committee. No cell is a formula: text that looks like one (a resident's words) stays text."""
    out = io.BytesIO()
    summary_sheet = pd.concat([r.committees, pd.DataFrame([{"committee": "合计", **r.totals()}])], ignore_index=True)
    with pd.ExcelWriter(out, engine="openpyxl") as xl:
        frames = {"汇总": summary_sheet, **{name: getattr(r, attr).sort_values("committee", kind="stable")
                                          for name, attr in SHEETS.items()}}
        for name, df in frames.items():
            named(df).rename(columns=HEADINGS).to_excel(xl, sheet_name=name, index=False)
            sheet = xl.sheets[name]
            sheet.freeze_panes = "A2"
            for row in sheet.iter_rows():
                for cell in row:
                    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                        cell.data_type = "s"  # openpyxl took it for a formula
            for col in sheet.columns:
                sheet.column_dimensions[col[0].column_letter].width = min(
                    40, max(8, *(len(str(c.value or "")) * 1.8 for c in col[:50])))
        exported = f"{exported_by or '-'} · {dt.datetime.now(rules.SHANGHAI):%Y-%m-%d %H:%M}"
        about = pd.DataFrame({"项目": ["街道", "日期", "数据截至", "导出", "说明"],
                              "内容": [r.street["name"], r.day.isoformat(), r.cutoff.isoformat(), exported,
                                     "身份证号、电话均已脱敏；数据按截至时点冻结，与晨报一致"]})
        about.to_excel(xl, sheet_name="说明", index=False)
    return out.getvalue()


# --- routes ----------------------------------------------------------------------------------

routes = Blueprint("opsmap_briefing", __name__)


def _requested() -> tuple[Engine, Config, str, dt.datetime]:
    """The street and cut-off a request asks for (refused as plain text when unreadable)."""
    engine, config = current_app.config["OPSMAP_ENGINE"], current_app.config["OPSMAP_CONFIG"]
    try:
        day = dt.date.fromisoformat(request.args.get("date") or dt.datetime.now(rules.SHANGHAI).date().isoformat())
        cut = dt.time.fromisoformat(request.args.get("cutoff") or "07:00")
    except ValueError as exc:
        abort(Response(f"date/cutoff: {exc} (use date=2022-04-10&cutoff=07:00)", status=400, mimetype="text/plain"))
    try:
        street = street_id_of(engine, config, request.args.get("street"), access.actor().streets)
    except LookupError as exc:
        abort(Response(str(exc), status=404, mimetype="text/plain"))
    access.require_street(street)
    return engine, config, street, report.cutoff_at(day, cut)


def _report(engine: Engine, config: Config, street: str, cutoff: dt.datetime) -> Report:
    """The report as the reader may see it: person-level cells only of the reader's committees."""
    r = make(engine, config, street, cutoff)
    scope = access.actor().person_scope(street)
    if not scope.everything:
        with session_factory(engine)() as session:
            names = {c.name for c in session.scalars(select(Committee).where(Committee.id.in_(scope.committees)))}
        r = r.withheld(names)
    return r


def _export(kind: str, make_body: Callable[[Engine, Config, Report, str], bytes]) -> tuple[bytes, Report]:
    """An export, made once per reader, street and cut-off and kept (a past cut-off never changes:
    ten people asking at 8 a.m. cost one rendering), recorded in the audit trail."""
    engine, config, street, cutoff = _requested()
    who = access.actor()
    frozen = cutoff < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    key = (kind, street, cutoff.isoformat(), who.person_scope(street).key, who.label)

    def build() -> tuple[bytes, Report]:
        rep = _report(engine, config, street, cutoff)
        return make_body(engine, config, rep, who.display or who.name), rep

    body, r = current_app.config["OPSMAP_CACHE"].get(key, EXPORT_KEEP_S if frozen else 30, build)
    access.record(f"export.{kind}", f"{kind}:{street}:{r.day}", cutoff=cutoff.isoformat())
    return body, r


@routes.get("/briefing")
def page() -> Response:
    """The briefing on screen, with a date/cut-off form and the PDF and workbook downloads."""
    engine, config, street, cutoff = _requested()
    r = _report(engine, config, street, cutoff)
    params = f"street={r.street['id']}&date={r.day}&cutoff={r.cutoff.astimezone(rules.SHANGHAI):%H:%M}"
    toolbar = (f'<form class="toolbar" method="get"><input type="hidden" name="street" value="{r.street["id"]}">'
               f'<label>日期 <input type="date" name="date" value="{r.day}"></label>'
               f'<label>截至 <input type="time" name="cutoff" value="{r.cutoff.astimezone(rules.SHANGHAI):%H:%M}">'
               f'</label><button type="submit">生成</button>'
               f'<a id="briefing-pdf" href="/briefing.pdf?{params}">下载 PDF</a>'
               f'<a id="briefing-xlsx" href="/briefing.xlsx?{params}">下载汇总表</a></form>')
    return Response(render(engine, config, r, toolbar), mimetype="text/html")


@routes.get("/briefing.pdf")
def pdf_download() -> Response:
    body, r = _export("pdf", lambda engine, config, rep, who: pdf(engine, config, rep, who))
    return _attachment(body, "application/pdf", f"briefing-{r.street['id']}-{r.day}.pdf")


@routes.get("/briefing.xlsx")
def xlsx_download() -> Response:
    body, r = _export("xlsx", lambda engine, config, rep, who: workbook(rep, who))
    return _attachment(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       f"tables-{r.street['id']}-{r.day}.xlsx")


def _attachment(body: bytes, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def write(path: Path, body: bytes) -> Path:
    """Write an export atomically (a half-written briefing is never left at ``path``)."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(body)
    tmp.replace(path)
    return path
