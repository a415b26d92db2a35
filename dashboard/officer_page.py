"""The street officer's phone view (/officer): one committee's points, most urgent first, and
one tap to act on them.

Phone first (360×800): a list, a small map of the same points, and under a tapped point
its facts and the actions it allows. Every action goes through ``data.pipeline.actions`` — the
event contract and the ingest pipeline — so the big screen sees it live. A refused action
shows why and leaves the form as typed (only the message is redrawn).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs

import dash_leaflet as dl
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from sqlalchemy.orm import Session, sessionmaker

import layers
from dashboard import access, components
from dashboard.i18n import tr
from dashboard.map_page import (
    SHANGHAI_CENTRE,
    ack,
    by_slot,
    camera,
    layer_control,
    layer_id,
    layer_sources,
    live_events,
    register_panels,
    register_sources,
    signed_in_as,
    source_stores,
    unless_drawn,
)
from data.access import policy
from data.models import Committee, WorkOrder
from data.pipeline import actions, streams
from data.pipeline.events import EventError
from data.settings import Config
from layers.base import Query
from layers.worklist import worklist

PAGE = "officer"
PAGE_SIZE = 30
#: the slot assets/panels.js draws the list in, from the store ``officer-panels``
LIST = ("officer-list",)
#: the slot of a tapped point's detail and forms, from the store ``officer-detail-panel``
DETAIL = ("officer-detail",)
#: the list's filter: all, or the items of one layer
FILTERS = {"all": "全部", "workorders": "工单", "alerts": "预警", "observations": "居家观察", "gates": "出入口"}
#: what an officer needs on the small map, bottom to top
SHOWN_IDS = ("basemap", "boundaries", "compounds", "shops", "gates", "observations", "workorders", "alerts")
SHOWN = tuple(layers.BY_ID[k] for k in SHOWN_IDS)


def opening_sources(config: Config, street_id: str | None) -> None:
    """None: which layers the page opens on depends on the committee the phone remembers."""
    return None


def _committees(session: Session) -> list[Committee]:
    """The committees the signed-in person works with (own ones for an officer; every one of
    their streets for commanders and viewers)."""
    who = access.actor()
    return [c for street in sorted(who.streets) for c in who.committees_in(session, street)]


#: how pressing an order on the list is: the phone announces an order new to the list, or one that rises
ANNOUNCED = {"order": 0, "overdue": 1, "supervised": 2}


def layout(sessions: sessionmaker[Session], config: Config) -> html.Div:
    lang = config.language
    with sessions() as session:
        committees = [(c.id, c.name) for c in _committees(session)]
    return html.Div(className="opsmap-officer", children=[
        html.Header(className="officer-header", children=[
            html.H1(tr("网格员 · 今日待办", lang)),
            dcc.Dropdown(id="officer-committee", className="officer-committee", clearable=False,
                         persistence=True, persistence_type="local", placeholder=tr("选择居委", lang),
                         options=[{"label": name, "value": cid} for cid, name in committees],
                         value=committees[0][0] if len(committees) == 1 else None),
            signed_in_as(lang),
        ]),
        html.Div(id="officer-msg", className="officer-msg", role="status"),
        html.Div(id="officer-detail"),  # drawn from officer-detail-panel (assets/panels.js), forms and all
        dcc.Store(id="officer-detail-panel"),
        dcc.Store(id="officer-submit"),  # an action's form as tapped (assets/officer.js)
        dcc.RadioItems(id="officer-filter", className="officer-filter", inline=True, value="all",
                       options=[{"label": tr(text, lang), "value": key} for key, text in FILTERS.items()]),
        html.Ul(id="officer-list", className="officer-list"),  # drawn from officer-panels (assets/panels.js)
        dcc.Store(id="officer-panels"),
        html.Div(id="officer-orders", hidden=True),  # every order of the list, for assets/officer.js to announce
        dcc.Store(id="officer-list-drawn"),  # the digest of the list drawn: an unchanged one is not redrawn
        html.Button(id="officer-more", className="officer-more", n_clicks=0, hidden=True),
        dl.Map(id="officer-map", className="officer-map", center=SHANGHAI_CENTRE, zoom=15, zoomSnap=0.25,
               children=[layer_control(PAGE, lang, SHOWN)]),
        dcc.Store(id="officer-selected"),
        dcc.Store(id="officer-done", data=0),
        *live_events("officer-events"), *source_stores(PAGE, None),
    ])


def _form(action: actions.Action, lang: str) -> html.Fieldset:
    """One action's inputs and its button, for plain data (components.plain): assets/officer.js
    reads the fieldset's inputs when its button is tapped and hands them to the store officer-submit."""
    def control(f: actions.Field) -> Any:
        field = {"data-field": f.name}
        if f.kind == "choice":
            return html.Span(className="officer-choice", children=[
                html.Label([components.Control("radio", {"name": f"{action.id}.{f.name}", "value": v, **field}),
                            tr(label, lang)]) for v, label in f.options])
        if f.kind == "check":
            return html.Span(className="officer-choice", children=[
                html.Label([components.Control("checkbox", {"value": "yes", **field}), tr("是", lang)])])
        return components.Control("text", {"class": "officer-input", "maxlength": actions.FORM_TEXT_MAX,
                                           "inputmode": "decimal" if f.kind == "number" else "text", **field})
    return html.Fieldset(className="officer-action", **{"data-action": action.id}, children=[
        html.Legend(tr(action.label, lang)),
        *[html.Label([tr(f.label, lang) + ("*" if f.required else ""), control(f)]) for f in action.fields],
        html.Button(tr(action.label, lang), className="officer-button")])


def _item(item: Any, lang: str) -> html.Li:
    """One line of the list, as plain data (components.plain): a tap on it is handed to the
    store officer-selected by assets/officer.js, which reads the point from its data attributes."""
    return html.Li(html.Button(
        className=f"officer-item reason-{item.reason}", **{"data-layer": item.layer, "data-id": item.entity_id},
        children=[html.Span(tr(item.label, lang), className="officer-reason"),
                  html.Span(item.title, className="officer-title"), html.Span(item.note, className="officer-note")]))


def chosen(selected: Any) -> tuple[str, str]:
    """The point the store officer-selected names (layer id, entity id), as the page's script
    sets it or as a request forges it: at most 80 characters each, empty when it names none."""
    if not isinstance(selected, dict):
        return "", ""
    layer, entity = (str(selected.get(k) or "")[:80] for k in ("layer", "id"))
    return layer, entity


def register(app: Dash, sessions: sessionmaker[Session], config: Config, redis_url: str | None) -> None:
    """The page's callbacks: list, map, selection, drill-down with actions, and submitting them."""
    lang = config.language
    engine = app.server.config["OPSMAP_ENGINE"]

    def query(committee: str | None) -> Query | None:
        """Now, for one committee; None when it is not loaded (a phone may remember an old one)
        or not one the signed-in person works with."""
        with sessions() as session:
            found = next((c for c in _committees(session) if c.id == committee), None) if committee else None
        return Query.from_config(config, found.street_id, dt.datetime.now(dt.UTC), committee) if found else None

    register_sources(app, PAGE)
    register_panels(app, "officer-panels", "officer-detail-panel")

    @app.callback(Output("officer-sources", "data"), Output("officer-map", "viewport"),
                  Input("officer-committee", "value"))
    def choose_layers(committee: str | None) -> tuple[Any, ...]:
        """The committee's layers (then kept current in the browser), and the map on its area."""
        q = query(committee)
        if q is None:
            return layer_sources(PAGE, config, None, keys=SHOWN_IDS), no_update
        with sessions() as session:
            bounds = session.get(Committee, committee).geom.bounds
        return layer_sources(PAGE, config, q.street_id, committee, keys=SHOWN_IDS), camera(config, bounds, padding=0)

    @app.callback(Output("officer-panels", "data"), Output("officer-more", "children"),
                  Output("officer-more", "hidden"), Output("officer-orders", "children"),
                  Output("officer-list-drawn", "data"), Output("officer-events-ack", "children"),
                  Input("officer-committee", "value"), Input("officer-filter", "value"),
                  Input("officer-more", "n_clicks"), Input("officer-events", "data"), Input("officer-done", "data"),
                  State("officer-list-drawn", "data"))
    def refresh(committee: str | None, only: str | None, more: int, _: str | None, __: int,
                drawn: str | None) -> tuple[Any, ...]:
        """The work list, redrawn on change notices (one in flight at a time) and after each action,
        when it changed."""
        return (*unless_drawn(drawn, list_of(committee, only, more)), ack())

    def list_of(committee: str | None, only: str | None, more: int) -> tuple[Any, ...]:
        """One kind of item or all, a page at a time (a phone cannot draw an afternoon's 700 lines)."""
        q = query(committee)
        if q is None:
            return by_slot(LIST, ([html.Li(tr("请先选择居委", lang), className="officer-empty")],)), "", True, "{}"
        who = access.actor()
        with sessions() as session:
            items = worklist(session, q, lambda layer, fc: policy.features(who, layer, q.street_id, fc))
        orders = {i.entity_id: [ANNOUNCED.get(i.reason, 0), tr(i.label, lang), i.title, i.note]
                  for i in items if i.layer == "workorders"}  # on any page: a new order is news wherever it falls
        items = [i for i in items if only in (None, "all") or i.layer == only]
        shown = items[:PAGE_SIZE * (1 + (more or 0))]
        rest = len(items) - len(shown)
        lines = [_item(i, lang) for i in shown] or [html.Li(tr("暂无待办", lang), className="officer-empty")]
        return (by_slot(LIST, (lines,)),
                tr("再显示 {n} 项（共 {total} 项）", lang).format(n=min(rest, PAGE_SIZE), total=len(items)),
                rest <= 0, json.dumps(orders, ensure_ascii=False))

    @app.callback(Output("officer-selected", "data"), Input(layer_id(ALL, PAGE), "clickData"),
                  prevent_initial_call=True)
    def select_point(_: list[Any]) -> Any:
        """A point tapped on the map (one tapped on the list: assets/officer.js)."""
        trigger, value = ctx.triggered_id, ctx.triggered[0]["value"] if ctx.triggered else None
        if not trigger or not value:  # a layer redrawn, not a tap
            return no_update
        props = value.get("properties", {})
        entity = value.get("id") or props.get("id")
        return no_update if entity is None or props.get("cluster") else {"layer": trigger["id"], "id": str(entity)}

    @app.callback(Output("officer-committee", "value"), Output("officer-selected", "data", allow_duplicate=True),
                  Input("page-url", "search"), prevent_initial_call="initial_duplicate")
    def open_linked(search: str | None) -> tuple[Any, ...]:
        """``/officer?order=<id>`` — the link a dispatch, 催办 or 督办 message carries — opens that
        order under its committee, when the person may see that committee's list."""
        order_id = parse_qs((search or "").lstrip("?")).get("order", [""])[0][:80]
        with sessions() as session:
            order = session.get(WorkOrder, order_id) if order_id else None
            committee = order.committee_id if order is not None else None
        if committee is None or query(committee) is None:  # not one of the person's committees
            return no_update, no_update
        return committee, {"layer": "workorders", "id": order_id}

    @app.callback(Output("officer-detail-panel", "data"), Input("officer-selected", "data"),
                  Input("officer-done", "data"), State("officer-committee", "value"), prevent_initial_call=True)
    def show(selected: Any, _: int, committee: str | None) -> dict[str, list[Any]]:
        """A tapped point's facts and the actions it allows, as plain data: as fifty-odd Dash
        components they held a phone's main thread 150–400 ms a tap (CPU throttled 4×)."""
        q, (layer_key, entity) = query(committee), chosen(selected)
        layer = layers.BY_ID.get(layer_key) if q is not None else None
        if layer is None:
            return by_slot(DETAIL)
        detail = access.detail(layer, entity, q.at, q.street_id)
        with sessions() as session:
            place = policy.place_of(session, layer.id, entity)
        allowed = detail is not None and access.may_act(place)
        forms = [_form(a, lang) for a in actions.available(layer.id, detail)] if allowed else []
        panel = html.Div(className="officer-detail", **{"data-layer": layer.id, "data-id": entity},
                         children=[components.detail_panel(layer.id, layer.title, detail, lang), *forms])
        return by_slot(DETAIL, ([panel],))

    @app.callback(Output("officer-msg", "children"), Output("officer-msg", "className"),
                  Output("officer-done", "data"), Input("officer-submit", "data"),
                  State("officer-selected", "data"), State("officer-done", "data"), prevent_initial_call=True)
    def act(submitted: Any, selected: Any, done: int) -> tuple[Any, ...]:
        """An action's form as tapped (``{"action", "values", "n"}``), or as forged: the same checks."""
        entity = chosen(selected)[1]
        if not isinstance(submitted, dict) or not entity:
            return no_update, no_update, no_update
        if not redis_url:
            return tr("无实时数据", lang), "officer-msg error", no_update
        action_id = str(submitted.get("action"))[:40]
        action = actions.BY_ID.get(action_id)
        who = access.actor()
        with sessions() as session:
            place = policy.place_of(session, action.layer, entity) if action else None
        if action is None or not who.may_act(place):  # a forged callback is refused like a real tap
            access.record(f"action.{action_id}", f"{action.layer if action else '?'}:{entity}", False,
                          problem="outside the actor's committees")
            return tr("无权操作：该点位不属于您负责的居委", lang), "officer-msg error", no_update
        try:
            result = actions.submit(engine, streams.connect(redis_url), config, action.id, entity,
                                    actions.read_form(action, submitted.get("values")), who.display or who.name)
        except EventError as exc:  # the form itself out of bounds (a script's, not one typed)
            result = actions.Result(False, str(exc))
        access.record(f"action.{action.id}", f"{action.layer}:{entity}", result.ok,
                      event_id=result.event_id, problem="" if result.ok else result.message)
        if not result.ok:  # the form keeps what was typed: only the message changes
            named = {f.name: tr(f.label, lang) for f in action.fields} | {"reporter": tr("我的姓名", lang)}
            refused = components.problem_text(result.message, lang, named)
            return f"{tr('未完成', lang)}：{refused}", "officer-msg error", no_update
        return tr(result.message, lang), "officer-msg ok" + (" pending" if result.pending else ""), done + 1
