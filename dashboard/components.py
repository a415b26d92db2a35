"""Panels beside the map, rendered from plain data (data.read.summary, the feed, a drill-down).

Why components take plain dicts: the same numbers serve the API and the briefing; these
functions only lay them out. The map's and the big screen's panels and the officer's list and
drill-down (its forms included: ``Control``) are not mounted as Dash components: ``plain`` turns
them into data that assets/panels.js draws. All text stays text, never HTML.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from dash import html
from dash.development.base_component import Component

from dashboard.i18n import tr
from data.domain import rules
from data.domain.labels import CODED
from data.domain.labels import label as name_of
from data.pipeline import streams
from data.pipeline.events import CASE_LABELS
from data.pipeline.ingest import waiting as waiting_workers
from data.settings import Config

UNIT_LABELS = {"households": "户", "masks": "只", "places": "处", "persons": "人"}
FIELD_LABELS = {"name": "名称", "place": "地点", "status": "状态", "compound": "小区", "guards_on_duty": "在岗人数",
                "guards_required": "应岗人数", "roster": "排班", "confirmed_at": "最近确认", "history": "状态记录",
                "checkins": "最近扫码", "alerts": "预警", "address": "地址", "households": "户数", "gates": "出入口",
                "addresses": "公布地址", "category": "类别", "priority": "紧急程度", "state": "状态",
                "committee_id": "居委",
                "committee": "居委", "refused": "未生效（原因）",
                "assignee": "处置人", "description": "诉求", "created_at": "创建时间",
                "timeline": "处置过程", "reports": "上报记录", "start_at": "开始", "planned_end_at": "计划解除",
                "day": "第N天", "kind": "类型", "label": "类型", "message": "内容", "ts": "时间",
                "reported_at": "报告时间", "source": "来源", "severity": "级别", "last_report_at": "最近上报",
                "sla": "时限", "person": "观察对象", "active": "观察中", "checked_in_today": "今日已打卡",
                "days": "计划天数", "milestone": "节点", "deadline": "期限", "met_at": "完成时间", "overdue": "超时",
                "overdue_minutes": "超时分钟", "ended_at": "结束时间",
                "action": "动作", "to_state": "新状态", "note": "备注", "temperature": "体温", "symptoms": "症状",
                "corrected_from": "更正前体温", "corrects": "更正",
                "tier": "分区", "tier_history": "分区记录", "cases": "病例", "observations": "居家观察",
                "date": "日期", "at": "时间", "reporter": "上报人", "direction": "方向", "phone": "电话",
                "health_code": "健康码", "on_duty": "当班人员", "shift": "当班时段", "level": "催办/督办",
                "remaining": "剩余时限"}
HIDDEN = {"id", "synthetic", "source_ref", "compound_id", "has_outline", "end_reason", "entity", "committee_id"}


#: legend keys drawn as a coloured ring round the marker, not as its fill (see assets/map.js)
RINGS = frozenset({"understaffed", "stale", "missing", "overdue", "chosen", "reminded", "supervised"})


def legend(shown: Sequence[Any], lang: str = "zh") -> html.Div:
    """The map's legend: every layer's colours with the mark it is drawn as (dot, ring, line or
    area), from each layer's ``legend()`` — the same entries the client colours features by.

    Why one element with its entries as data (drawn by assets/map.js): as two hundred Dash
    components it made Dash's handling of every callback answer on the page 300 ms slower."""
    def mark(layer_id: str, key: str) -> str:
        if key in RINGS:
            return "ring"
        if layer_id == "basemap":
            return "area" if key == "water" else "line"
        return "line" if layer_id == "boundaries" else "dot"

    entries = [{"title": tr(layer.title, lang),
                "entries": [[mark(layer.id, e.key), e.colour, tr(e.label, lang)] for e in layer.legend()]}
               for layer in shown]
    return html.Div(id="map-legend", className="opsmap-legend",
                    **{"data-title": tr("图例", lang), "data-legend": json.dumps(entries, ensure_ascii=False)})


#: what assets/panels.js draws: these tags, with these props (``data-*`` and ``aria-*`` too) and
#: custom CSS properties (``--share``) as their only style; anything else is refused here
PLAIN_TAGS = frozenset({"div", "span", "p", "strong", "h2", "h3", "ul", "li", "table", "thead", "tbody", "tr", "th",
                        "td", "button", "fieldset", "legend", "label"})
PLAIN_PROPS = {"id": "id", "className": "class", "title": "title", "role": "role", "colSpan": "colspan"}
#: the inputs of the officer's forms (``Control``): these types, with these attributes and ``data-*``
CONTROL_TYPES = frozenset({"text", "radio", "checkbox"})
CONTROL_ATTRIBUTES = frozenset({"class", "name", "value", "inputmode", "maxlength"})


@dataclass(frozen=True)
class Control:
    """An ``<input>`` for plain data (dash.html has no input element): a form drawn by
    assets/panels.js, read by the page's own script — so a tapped point's detail, forms and all,
    is one prop, not fifty Dash components (see ``plain``)."""

    type: str
    attributes: dict[str, str | int]  # drawn as text

    def node(self) -> list[Any]:
        wrong = [k for k in self.attributes if k not in CONTROL_ATTRIBUTES and not k.startswith("data-")]
        if self.type not in CONTROL_TYPES or wrong:
            raise TypeError(f"Control: no input of type {self.type!r} with {wrong} is drawn as plain data")
        return ["input", {"type": self.type, **{k: str(v) for k, v in self.attributes.items()}}, {}, []]


def plain(children: Any) -> list[Any]:
    """Html components (a panel, a list of them, text) as plain data that assets/panels.js draws
    into a slot: text, or ``[tag, attributes, custom CSS properties, children]``.

    Why panels are not Dash components: Dash applies an answer in time that grows with every
    component on the page times each new one the answer brings (each dispatches to all the
    others' selectors). The panels' ~100 made a typed moment block the map page's main thread
    100–200 ms, and every live answer paid the same; drawn as data, an answer costs one prop."""
    if children is None:
        return []
    if isinstance(children, (list, tuple)):
        return [node for child in children for node in plain(child)]
    if isinstance(children, (str, int, float)):
        return [str(children)]
    if isinstance(children, Control):
        return [children.node()]
    if not isinstance(children, Component) or children._namespace != "dash_html_components" \
            or children._type.lower() not in PLAIN_TAGS:
        raise TypeError(f"{type(children).__name__} is not drawn as plain data (assets/panels.js)")
    props = children.to_plotly_json()["props"]
    attributes, style = {}, props.get("style") or {}
    if any(not name.startswith("--") for name in style):
        raise TypeError(f"{children._type}: only custom CSS properties are drawn, not {sorted(style)}")
    for name, value in props.items():
        if name in PLAIN_PROPS:
            attributes[PLAIN_PROPS[name]] = str(value)
        elif name.startswith(("data-", "aria-")):
            attributes[name] = str(value)
        elif name not in {"children", "style"}:
            raise TypeError(f"{children._type}: the prop {name} is not drawn as plain data")
    return [[children._type.lower(), attributes, {k: str(v) for k, v in style.items()}, plain(props.get("children"))]]


def _num(n: int) -> html.Td:
    return html.Td(f"{n:,}", className="num")


def positive(counts: dict[str, dict[str, int]], key: str) -> int:
    """Positive infections (rules.POSITIVE: confirmed, and the 2022 lists' 阳性感染者) in ``key``."""
    return sum(counts[c][key] for c in rules.POSITIVE)


def cases_panel(summary: dict[str, Any], lang: str = "zh") -> html.Div:
    """疫情发展: new today and cumulative, street by category, district and city officially —
    with their 阳性感染者 (confirmed + asymptomatic), the figure the street's own lists compare to."""
    street = summary["cases"]["street"]
    rows = [html.Tr([html.Td(tr(CASE_LABELS[c], lang)), _num(v["new"]), _num(v["total"])]) for c, v in street.items()]
    official = []
    for scope, label in (("district", summary["street"]["district"]), ("city", tr("上海市", lang))):
        data = summary["cases"][scope]
        if data is None:
            continue
        for name, key in (("确诊", "confirmed"), ("无症状", "asymptomatic")):
            official.append(html.Tr([html.Td(f"{label} {tr(name, lang)}"), _num(data[key]["new"]),
                                     _num(data[key]["total"])]))
        official.append(html.Tr(className="sum", children=[
            html.Td(f"{label} {tr('阳性感染者', lang)}"),
            *(_num(data["confirmed"][k] + data["asymptomatic"][k]) for k in ("new", "total"))]))
    tiers = summary["tiers"]
    return html.Div(className="opsmap-card", id="panel-cases", children=[
        html.H2(tr("疫情发展", lang)),
        html.Table([html.Thead(html.Tr([html.Th(""), html.Th(tr("今日新增", lang)), html.Th(tr("累计", lang))])),
                    html.Tbody([*rows, *official])]),
        html.P([tr("今日有阳性感染者的小区 ", lang),
                html.Strong(f"{summary['compounds_with_cases_today']}", id="compounds-today")],
               className="opsmap-compounds-today"),
        html.Div(className="opsmap-tiers", children=[
            html.Span(f"{tr('封控', lang)} {tiers['sealed']}", className="tier sealed"),
            html.Span(f"{tr('管控', lang)} {tiers['controlled']}", className="tier controlled"),
            html.Span(f"{tr('防范', lang)} {tiers['precaution']}", className="tier precaution")]),
    ])


#: why a figure may pass its target (shown beside it: a bar above 100 % is never left unexplained)
OVER_TARGET = {"key_person_visit": "同一人当日多次走访", "mask_reservation": "含目标外居民预约",
               "mask_distribution": "含目标外居民领取"}


def _progress(label: str, done: int, target: int, unit: str | None, new: int | None = None,
              lang: str = "zh", task: str = "") -> html.Div:
    """A figure against its target: its name, the numbers, and a bar (drawn by CSS from ``--share``)."""
    share = min(done / target, 1.0) if target else 0.0
    extra = f"（{tr('今日', lang)} +{new:,}）" if new else ""
    over = html.Span(tr("超出目标 {n}：{why}", lang).format(n=f"{done - target:,}",
                                                          why=tr(OVER_TARGET.get(task, "超额完成"), lang)),
                     className="opsmap-over") if target and done > target else None
    return html.Div(className="opsmap-progress", style={"--share": f"{share:.0%}"}, children=[
        html.Span(tr(label, lang)),
        html.Span(f"{done:,} / {target:,} {tr(UNIT_LABELS.get(unit or '', ''), lang)}{extra}"),
        *([over] if over else []),
    ])


def headline(summary: dict[str, Any], lang: str = "zh") -> list[html.Div]:
    """The big screen's numbers to read from across the room: today's and all positive cases,
    alerts of the last 24 h, overdue orders, understaffed gates (red when not zero)."""
    street = summary["cases"]["street"]
    figures = (("今日新增阳性", positive(street, "new"), True), ("累计阳性感染者", positive(street, "total"), False),
               ("24小时预警", sum(summary["alerts_24h"].values()), True),
               ("超时工单", summary["work_orders"]["overdue"], True),
               ("值守不足出入口", summary["facilities"]["gates"]["understaffed"], True))
    return [html.Div(className="headline-figure" + (" alarm" if alarming and n else ""), children=[
        html.Span(f"{n:,}", className="headline-number"), html.Span(tr(name, lang), className="headline-label")])
        for name, n, alarming in figures]


def work_panel(summary: dict[str, Any], lang: str = "zh") -> html.Div:
    """重要工作: daily work against its targets, closed compounds, sites and shops checked."""
    work, fac = summary["work"], summary["facilities"]
    closed = summary["tiers"]["sealed"] + summary["tiers"]["controlled"]
    total_compounds = sum(summary["tiers"].values())
    items = [_progress(f"{name_of(t)} {tr('今日', lang)}" if v.get("daily") else name_of(t), v["total"], v["target"],
                       v["unit"], None if v.get("daily") else v["new"], lang, t) for t, v in work.items()]
    items.append(_progress("封闭管理小区", closed, total_compounds, None, lang=lang))
    items.append(_progress("工地 今日巡查", fac["sites"]["construction_site"]["checked_today"],
                           fac["sites"]["construction_site"]["total"], "places", lang=lang))
    items.append(_progress("养老机构 今日巡查", fac["sites"]["elderly_care"]["checked_today"],
                           fac["sites"]["elderly_care"]["total"], "places", lang=lang))
    items.append(_progress("商铺 今日核查", fac["shops"]["checked_today"], fac["shops"]["total"], "places", lang=lang))
    gates, orders = fac["gates"], summary["work_orders"]
    facts = html.Div(className="opsmap-facts", children=[
        html.Span(f"{tr('出入口', lang)} {tr('开', lang)}{gates['open']} {tr('关', lang)}{gates['closed']} "
                  f"{tr('限', lang)}{gates['restricted']} · {tr('值守不足', lang)} {gates['understaffed']}"),
        html.Span(f"{tr('工单 在办', lang)}{orders['open']} · {tr('超时', lang)} {orders['overdue']}",
                  className="overdue" if orders["overdue"] else ""),
    ])
    return html.Div(className="opsmap-card", id="panel-work",
                    children=[html.H2(tr("重要工作", lang)), *items, facts, supervision(orders["marked"], lang)])


def supervision(marked: list[dict[str, Any]], lang: str) -> html.Div:
    """督办/催办: the open orders past their deadline, 督办 first — what the street's leadership
    follows up (one element a line, as the feed: every component costs each live answer)."""
    lines = [html.Div(f"{name_of(m['level'])} · {name_of(m['category'])} {m['order']} · "
                      f"{m['committee'] or tr('未派单', lang)} · {m['remaining']}",
                      className=f"opsmap-marked opsmap-{m['level']}") for m in marked[:12]]
    more = [html.Div(tr("另有 {n} 件", lang).format(n=len(marked) - 12))] if len(marked) > 12 else []
    return html.Div(id="panel-supervision", className="opsmap-supervision",
                    children=[html.H3(tr("督办与催办", lang)), *(lines or [html.Div(tr("无", lang))]), *more])


def _local_time(ts: str) -> str:
    """An event time as HH:MM in Shanghai, whatever offset the producer used."""
    return dt.datetime.fromisoformat(ts).astimezone(rules.SHANGHAI).strftime("%H:%M")


def feed_panel(items: list[dict[str, Any]], lang: str = "zh") -> html.Div:
    """实时播报: the newest feed items, newest first. One element an item, its time drawn by CSS
    from ``data-time``: Dash's handling of every answer on a page grows with its components, and
    a live feed redrawn each second was the page's largest part."""
    rows = [html.Li(item["text"], className=f"feed-item {item.get('severity', '')}",
                    **{"data-time": _local_time(item["ts"])}) for item in items]
    return html.Div(className="opsmap-card", id="panel-feed", children=[
        html.H2(tr("实时播报", lang)),
        html.Ul(rows or [html.Li(tr("暂无", lang), className="feed-item")], className="feed")])


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _scalar(value: Any, lang: str, field: str = "") -> str:
    """A drill-down value as read on a screen: times in Shanghai to the minute, yes/no, codes by name."""
    if value is None:
        return ""
    if field in CODED and isinstance(value, str):
        return tr(name_of(value, field), lang)
    if isinstance(value, bool):
        return tr("是" if value else "否", lang)
    if isinstance(value, str) and ISO_TIME.match(value):
        return dt.datetime.fromisoformat(value).astimezone(rules.SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _value(value: Any, lang: str, field: str = "") -> Any:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = [k for k in dict.fromkeys(k for row in value[:20] for k in row) if k not in HIDDEN]  # any row's
        return html.Table(className="opsmap-subtable", children=[
            html.Thead(html.Tr([html.Th(tr(FIELD_LABELS.get(k, k), lang)) for k in keys])),
            html.Tbody([html.Tr([html.Td(_scalar(row.get(k), lang, k)) for k in keys]) for row in value[:20]])])
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return _scalar(value, lang, field)


def detail_panel(kind: str, title: str, detail: dict[str, Any] | None, lang: str = "zh") -> html.Div:
    """A drill-down: every field of the entity, lists as small tables (masked data only)."""
    if detail is None:
        return html.Div(className="opsmap-card", id="panel-detail",
                        children=[html.H2(tr(title, lang)), html.P(tr("无详情", lang))])
    rows = [html.Tr([html.Th(tr(FIELD_LABELS.get(k, k), lang)), html.Td(_value(v, lang, k))])
            for k, v in detail.items() if k not in HIDDEN]
    return html.Div(className="opsmap-card", id="panel-detail", **{"data-kind": kind}, children=[
        html.H2(f"{tr(title, lang)} · {detail.get('name') or detail.get('label') or detail.get('id')}"),
        html.Table(html.Tbody(rows), className="opsmap-detail")])


#: the contract's problems (English, for producers) as an officer reads them: pattern → words
PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), t) for p, t in (
    (r"^required", "必填"), (r"^enter your name first", "请先填写您的姓名"),
    (r"^must be a non-empty string", "不能为空"), (r"^longer than (\d+) characters", "不能超过 {0} 个字"),
    (r"^must be between (\S+) and (\S+) \(got (\S+)\)", "应在 {0} 至 {1} 之间（填写的是 {2}）"),
    (r"^must be a whole number", "应为整数"), (r"^must be a number", "应为数字"),
    (r"^must be a finite number", "数字过大"), (r"^contains the control character", "含有不可见的控制字符"),
    (r"^must be one of", "不是可选的值"), (r"^may not contain spaces", "不能含空格或 #"),
    (r"^no home observation is active", "此人当前不在居家观察中"),
    (r"^home observation \d+ has (\w+) at ts", "该居家观察已结束"), (r"^unknown ", "不存在（可能已删除）"),
    (r"^more than .* in the future", "时间晚于当前时间"),
))


def problem_text(message: str, lang: str = "zh", labels: dict[str, str] | None = None) -> str:
    """A refusal (``field: problem; …``, the contract's words) for a person: the field by its
    label (``labels``, as the form names it, else the drill-down's), the problem in Chinese;
    text already in Chinese (a fold's refusal) stays as it is."""
    if lang == "en":
        return message
    out = []
    for part in filter(None, (p.strip() for p in message.split("; "))):
        field, sep, problem = part.partition(": ")
        if not sep:
            field, problem = "", part
        if not re.search(r"[\u4e00-\u9fff]", problem):
            problem = next((t.format(*m.groups()) for p, t in PROBLEMS if (m := p.search(problem))), "填写有误，请核对")
        name = (labels or {}).get(field) or FIELD_LABELS.get(field, "该项")
        out.append(f"{name}：{problem}" if field else problem)
    return "；".join(out)


def clock_and_freshness(redis_url: str | None, config: Config, clock_format: str,
                        age: bool = False) -> tuple[str, str, str]:
    """The clock text and the staleness indicator (class, label): red when no event has
    arrived for OPSMAP_STALE_AFTER_S, more than OPSMAP_STALE_LAG wait to be ingested, or an
    ingest worker waits out an outage of the database or Redis (then it says so). Without Redis
    (none configured, or it cannot be read): 无实时数据."""
    now = dt.datetime.now(rules.SHANGHAI)
    try:
        client = streams.connect(redis_url) if redis_url else None
        fresh = streams.freshness(client, now) if client else None
        waiting = client is not None and waiting_workers(client, config.ingest_backoff_max_s)
    except (redis.RedisError, OSError):
        fresh, waiting = None, False
    if fresh is None:
        return now.strftime(clock_format), "staleness unknown", tr("无实时数据", config.language)
    if waiting:
        return now.strftime(clock_format), "staleness stale", tr("入库暂停", config.language)
    stale = fresh["age_s"] is None or fresh["age_s"] > config.stale_after_s or fresh["lag"] > config.stale_lag
    label = tr("数据延迟" if stale else "实时", config.language)
    if age and fresh["age_s"] is not None:  # the big screen says how fresh: "最近事件 12 秒前"
        label = f"{label} · " + tr("最近事件 {s} 前", config.language).format(s=_ago(fresh["age_s"], config.language))
    return now.strftime(clock_format), f"staleness {'stale' if stale else 'fresh'}", label


def _ago(seconds: float, lang: str) -> str:
    if seconds < 60:
        return tr("{n} 秒", lang).format(n=int(seconds))
    if seconds < 3600:
        return tr("{n} 分钟", lang).format(n=int(seconds // 60))
    return tr("{n} 小时", lang).format(n=int(seconds // 3600))
