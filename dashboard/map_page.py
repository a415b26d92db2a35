"""The command map page (/): every layer on the street's own basemap, the panels beside it,
a committee filter, an "as of" moment to replay the past, and a drill-down on click.

Live: the page listens to server-sent events (/api/v1/stream); assets/layers.js loads the
layers from the URLs a callback gives and patches the ones a notice names with only their
changed features. Callbacks stay thin: they parse inputs and call ``layers`` and
``data``; everything they show is computed there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any
from urllib.parse import urlencode

import dash_leaflet as dl
import redis
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash_extensions.javascript import Namespace
from flask import current_app
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import layers
from dashboard import access, components
from dashboard.api import shown, summary_at
from dashboard.i18n import tr
from data.access import policy
from data.domain import rules
from data.domain.crs import wgs84_to_gcj02
from data.models import Committee, Compound, Street
from data.pipeline import streams
from data.read import queries
from data.settings import Config

ns = Namespace("opsmap", "map")
SHANGHAI_CENTRE = [31.23, 121.47]
PAGE = "map"
CLOCK = "%H:%M:%S"  # the header clock
#: layers clustered by assets/worker/clusters.js (their components receive the view's clusters), with its settings
CLUSTERED: dict[str, dict[str, Any]] = {layers.cases.id: layers.cases.CLUSTER}


def layer_id(layer_key: Any, page: str = "map") -> dict[str, Any]:
    """Pattern-matching id of a layer's GeoJSON on a page (each page its own namespace)."""
    return {"type": f"{page}-layer", "id": layer_key}


def parse_as_of(value: str | None) -> dt.datetime | None:
    """The as-of input in Shanghai time (``2022-04-10 08:00``, ``2022-04-10T08:00``, or a date,
    meaning its end); empty or unreadable means live."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(23, 59, 59), rules.SHANGHAI)
        return dt.datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=rules.SHANGHAI)
    except ValueError:
        return None


#: the timeline under the header: an hour of the days up to its end (now, or the moment typed)
TIMELINE_DAYS = 14


def timeline_marks(end: dt.datetime | None, lang: str) -> dict[int, str]:
    """A date every second day back from the timeline's end; the end itself reads 实时 when live."""
    last = (end or dt.datetime.now(dt.UTC)).astimezone(rules.SHANGHAI)
    marks = {-24 * k: f"{last - dt.timedelta(days=k):%m-%d}" for k in range(TIMELINE_DAYS, 0, -2)}
    return {**marks, 0: tr("实时", lang) if end is None else f"{last:%m-%d %H:%M}"}


def timeline_moment(end: dt.datetime | None, hours: int) -> str:
    """The as-of text of the timeline's position ``hours`` (≤ 0) from its end; empty: live."""
    if end is None and hours == 0:
        return ""
    moment = (end or dt.datetime.now(dt.UTC)) + dt.timedelta(hours=hours)
    return f"{moment.astimezone(rules.SHANGHAI):%Y-%m-%d %H:%M}"


def live_events(store_id: str, paused_by: str = "") -> list[Any]:
    """The page's live change notices: assets/live.js keeps one SSE connection open for the
    marker element and puts each message into the store ``store_id`` (callbacks read its data).
    The marker names the newest notice at render time, so the connection starts from there
    and nothing that happens between the render and the connection is missed.

    Never starving the callbacks that read the store: live.js sets it again only after they
    answered (they write ``ack(…)`` into the element ``<store_id>-ack``), holding the newest
    notice meanwhile — Dash drops an answer still in flight when its inputs change again, so
    notices faster than the answer would otherwise keep a panel empty. While the input
    ``paused_by`` holds a value (a moment typed or picked), notices do not touch the store."""
    url = current_app.config.get("OPSMAP_REDIS_URL")
    try:
        since = streams.changes_top(streams.connect(url)) if url else ""
    except (redis.RedisError, OSError):  # Redis down: the page still renders; the stream starts from now
        since = ""
    return [dcc.Store(id=store_id), html.Div(id=f"{store_id}-ack", hidden=True),
            html.Div(hidden=True, **{"data-opsmap-stream": "/api/v1/stream", "data-store": store_id,
                                     "data-since": since, "data-ack": f"{store_id}-ack",
                                     "data-paused-by": paused_by})]


def ack() -> str:
    """What a callback reading a live store writes into its ack element: the page may send the next notice."""
    return f"{time.monotonic():.6f}"


def unless_drawn(drawn: str | None, outputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """``outputs`` and their digest, or ``no_update`` for each (the digest too) when ``drawn`` is
    their digest: the page shows them already. Most change notices are of other places; redrawing
    an unchanged list cost a phone's main thread tens of milliseconds a notice under traffic."""
    text = json.dumps(outputs, cls=PlotlyJSONEncoder, sort_keys=True, ensure_ascii=False)
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return (no_update,) * (len(outputs) + 1) if digest == drawn else (*outputs, digest)


def layer_url(key: str, street_id: str, committee: str | None, as_of: dt.datetime | None) -> str:
    params = {"street": street_id, **({"committee": committee} if committee else {}),
              **({"as_of": as_of.isoformat()} if as_of else {})}
    return f"/api/v1/layers/{key}?{urlencode(params)}"


def layer_sources(page: str, config: Config, street_id: str | None, committee: str | None = None,
                  as_of: dt.datetime | None = None, keys: tuple[str, ...] = tuple(layers.BY_ID)) -> dict[str, Any]:
    """What assets/layers.js loads into a page's layers (the data of the store ``<page>-sources``):
    each layer's URL (every layer unless ``keys`` says; a layer nothing changes — geography — names
    no moment, so moving in time keeps it drawn), whether it is live (then patched after
    change notices), how often the layers that change with time alone are checked, and which
    layers the cluster worker holds."""
    return {"page": page, "live": as_of is None, "refresh_s": config.map_refresh_s, "timely": list(layers.TIMELY),
            "layers": {k: layer_url(k, street_id, committee, as_of if layers.BY_ID[k].changed_by else None)
                       if street_id else None for k in keys},
            "cluster": {k: CLUSTERED[k] for k in keys if k in CLUSTERED}}


def opening_sources(config: Config, street_id: str | None) -> dict[str, Any]:
    """The layers the page opens on: the shown street, live, every layer. The layout carries
    them, so they load as soon as the page is drawn rather than after its first callbacks, and
    dashboard/app.py puts them in the page's HTML, so they are fetched while Dash boots."""
    return layer_sources(PAGE, config, street_id)


def source_stores(page: str, sources: dict[str, Any] | None) -> list[dcc.Store]:
    """A page's layer sources (store ``<page>-sources``, set in its layout to what it opens on)
    and the store ``<page>-shown`` that assets/layers.js answers into: Dash does not run a
    callback without an output when the page is drawn, only on later changes."""
    return [dcc.Store(id=f"{page}-sources", data=sources), dcc.Store(id=f"{page}-shown")]


def register_sources(app: Dash, page: str) -> None:
    """Hand the page's layer sources to assets/layers.js when the page is drawn and whenever set,
    and the view of its map (``<page>-map``) whenever it moves: clustered layers are drawn for it."""
    app.clientside_callback(ClientsideFunction("opsmap", "showLayers"), Output(f"{page}-shown", "data"),
                            Input(f"{page}-sources", "data"), Input(f"{page}-map", "bounds"),
                            Input(f"{page}-map", "zoom"))


def layer_control(page: str, lang: str, shown: tuple[Any, ...] = layers.LAYERS) -> dl.LayersControl:
    """Layers (all registered ones by default) as toggleable overlays (names passed explicitly:
    dash ≥ 4.2 needs them)."""
    def overlay(layer: Any) -> dl.Overlay:
        return dl.Overlay(name=tr(layer.title, lang), checked=True, children=dl.GeoJSON(
            id=layer_id(layer.id, page), style=ns("style"), pointToLayer=ns("point"), onEachFeature=ns("tooltip"),
            hideout={"layer": layer.id, "colours": {e.key: e.colour for e in layer.legend()}}))

    return dl.LayersControl([overlay(layer) for layer in shown],
                            overlays=[tr(layer.title, lang) for layer in shown], collapsed=page != "map")


def camera(config: Config, bounds: tuple[float, float, float, float] | None = None,
           point: tuple[float, float] | None = None, transition: str = "", padding: int = 16) -> dict[str, Any]:
    """A map viewport on ``bounds`` (minx, miny, maxx, maxy) or on ``point`` (lng, lat), stored in
    WGS-84, in the tiles' coordinates: under GCJ-02 tiles every feature is drawn shifted, so the
    camera must be too, or it lands ~500 m beside its target."""
    shift = wgs84_to_gcj02 if config.tile_crs == "gcj02" else (lambda lng, lat: (lng, lat))
    if point is not None:
        lng, lat = shift(*point)
        return {"center": [lat, lng], "zoom": 18, "transition": transition or "flyTo"}
    assert bounds is not None
    (x0, y0), (x1, y1) = shift(bounds[0], bounds[1]), shift(bounds[2], bounds[3])
    return {"bounds": [[y0, x0], [y1, x1]], "options": {"padding": [padding, padding]},
            "transition": transition or "fitBounds"}


def street_viewport(config: Config, street: Street) -> dict[str, Any]:
    return camera(config, street.geom.bounds)


def opening_camera(config: Config, street: Street | None) -> dict[str, Any]:
    """The map's props to open on ``street`` (on Shanghai without one), rather than on Shanghai
    until a callback moves it: the clusters are drawn for the view, so a moved view draws twice.
    Bounds and a centre, no zoom: Leaflet's map takes a zoom with a centre over the bounds, and
    dash-leaflet's view tracking needs the centre."""
    if street is None:
        return {"center": SHANGHAI_CENTRE, "zoom": 11}
    view = street_viewport(config, street)
    (south, west), (north, east) = view["bounds"]
    return {"bounds": view["bounds"], "boundsOptions": view["options"],
            "center": [(south + north) / 2, (west + east) / 2]}


def compound_options(session: Session, street_id: str, committee: str | None) -> list[dict[str, str]]:
    return [{"label": c.name, "value": c.id} for c in queries.compounds_of(session, street_id, committee)]


def committee_options(session: Session, street_id: str) -> list[dict[str, str]]:
    return [{"label": c.name, "value": c.id} for c in session.scalars(
        select(Committee).where(Committee.street_id == street_id).order_by(Committee.id))]


def signed_in_as(lang: str) -> html.Div:
    """Who is signed in, and the sign-out button (a form with the session's CSRF token)."""
    who = access.actor()
    return html.Div(className="signed-in", children=[
        html.Span(who.display or who.name, className="signed-in-name", title=" ".join(map(str, who.roles))),
        *([html.A(tr("管理", lang), href="/admin", className="signed-in-admin")] if who.is_admin else []),
        html.Form(method="post", action="/signin/out", className="signout", children=[
            dcc.Input(type="hidden", name="csrf", value=who.csrf or ""),
            html.Button(tr("退出", lang), type="submit", className="signout-button")])])


#: the slots beside the map that assets/panels.js draws from the store ``map-panels``
PANEL_SLOTS = ("panel-cases-slot", "panel-work-slot", "panel-feed-slot")


def panels(config: Config, street_id: str | None, as_of: dt.datetime | None,
           min_version: int = 0) -> tuple[str, dict[str, list[Any]]]:
    """The title and the panels beside the map (numbers, work, feed) at ``as_of`` (None: live),
    each as plain data by the slot it is drawn in (components.plain)."""
    lang = config.language
    if not access.may_view(street_id):
        return tr("opsmap：尚未加载街道（运行 opsmap load）", lang), by_slot(PANEL_SLOTS)
    now = dt.datetime.now(dt.UTC)
    past = as_of is not None and as_of < now - dt.timedelta(minutes=5)
    numbers = summary_at(street_id, as_of or now, past, min_version)
    feed = live_feed() if as_of is None else []
    title = f"{numbers['street']['name']} {tr('战疫图', lang)}" + (
        f"（{tr('回放', lang)} {as_of:%Y-%m-%d %H:%M}）" if as_of else "")
    return title, by_slot(PANEL_SLOTS, (components.cases_panel(numbers, lang), components.work_panel(numbers, lang),
                                        components.feed_panel(feed, lang)))


def by_slot(slots: tuple[str, ...], panels: tuple[Any, ...] | None = None) -> dict[str, list[Any]]:
    """What a panels store holds: each panel as plain data (components.plain) by the slot it is
    drawn in; without ``panels``, every slot emptied."""
    return {slot: components.plain(panel) for slot, panel in zip(slots, panels or (None,) * len(slots), strict=True)}


def register_panels(app: Dash, *stores: str) -> None:
    """Draw the panels the stores ``stores`` hold into their slots (assets/panels.js), whenever one changes."""
    app.clientside_callback(ClientsideFunction("opsmap", "drawPanels"), *(Input(store, "data") for store in stores))


def live_feed() -> list[dict[str, Any]]:
    """The newest feed items as the reader may read them; none while Redis cannot be read (the
    page still opens, its staleness indicator says why)."""
    url = current_app.config.get("OPSMAP_REDIS_URL")
    try:
        items = streams.feed(streams.connect(url), 30) if url else []
    except (redis.RedisError, OSError):
        return []
    return policy.feed_items(access.actor(), items)


def clock(config: Config) -> tuple[str, str, str]:
    """The header's clock and staleness indicator (class, label)."""
    return components.clock_and_freshness(current_app.config.get("OPSMAP_REDIS_URL"), config, CLOCK)


def layout(sessions: sessionmaker[Session], config: Config) -> html.Div:
    """The page as it opens, its panels, compounds and clock included: computed by callbacks on
    the page's first round, they cost three round trips and three passes of Dash's renderer over
    their answers while the map was being drawn."""
    with sessions() as session:
        loaded = [s for s in queries.streets(session) if access.may_view(s.id)]
        chosen = queries.shown_street(loaded, config.street)
        opening_view = opening_camera(config, chosen)
        committees = committee_options(session, chosen.id) if chosen else []
        compounds = compound_options(session, chosen.id, None) if chosen else []
    tiles = [dl.TileLayer(url=config.tile_url, maxZoom=19)] if config.tile_url else []
    lang = config.language
    events = live_events("map-events", paused_by="map-asof")  # before the panels: no change between is missed
    title, drawn = panels(config, chosen and chosen.id, None)
    now, freshness, stale = clock(config)
    return html.Div(className="opsmap", children=[
        html.Header(className="opsmap-header", children=[
            html.H1(id="map-title", children=title),
            dcc.Dropdown(id="map-street", className="street-select", clearable=False,
                         options=[{"label": f"{s.district} · {s.name}", "value": s.id} for s in loaded],
                         value=chosen.id if chosen else None),
            dcc.Dropdown(id="map-committee", className="committee-select", options=committees,
                         placeholder=tr("全部居委", lang)),
            dcc.Dropdown(id="map-compound", className="compound-select", options=compounds,
                         placeholder=tr("小区", lang)),
            html.Label([tr("时点 ", lang), dcc.Input(id="map-asof", type="text", debounce=True, size="22",
                                                   placeholder=tr("实时（或 2022-04-10 08:00）", lang))],
                       className="asof"),
            html.Button(tr("实时", lang), id="map-live", className="live-button"),
            html.Span(now, id="map-clock", className="clock"),
            html.Span(stale, id="map-staleness", className=freshness, title=tr("数据新鲜度", lang)),
            signed_in_as(lang),
        ]),
        html.Div(className="opsmap-timeline", title=tr("拖动回放过去 14 天", lang), children=[
            dcc.Slider(id="map-slider", min=-24 * TIMELINE_DAYS, max=0, step=1, value=0, allow_direct_input=False,
                       marks=timeline_marks(None, lang), updatemode="mouseup", className="timeline-slider"),
            dcc.Store(id="map-timeline-end")]),
        html.Div(className="opsmap-body", children=[
            html.Div(className="opsmap-mapbox", children=[
                dl.Map(id="map-map", className="opsmap-map", zoomSnap=0.25, **opening_view,
                       children=[*tiles, layer_control("map", lang),
                                 dl.GeoJSON(id="map-chosen", pointToLayer=ns("chosen"))]),
                components.legend(layers.LAYERS, lang)]),
            html.Aside(className="opsmap-panel", children=[
                *(html.Div(id=slot) for slot in ("panel-detail-slot", *PANEL_SLOTS))]),
        ]),
        dcc.Store(id="map-panels", data=drawn), dcc.Store(id="map-detail"),
        *events,
        *source_stores(PAGE, opening_sources(config, chosen and chosen.id)),
        dcc.Interval(id="map-tick", interval=10_000),
    ])


def register(app: Dash, sessions: sessionmaker[Session], config: Config, redis_url: str | None) -> None:
    """The page's callbacks; each one reads its inputs and calls layers/data."""
    lang = config.language

    @app.callback(Output("map-committee", "options"), Output("map-committee", "value"),
                  Output("map-map", "viewport"), Input("map-street", "value"), prevent_initial_call=True)
    def choose_street(street_id: str | None) -> tuple[Any, ...]:
        """Another street: its committees, none chosen, the map on it. Not when the page opens:
        its layout shows the street already (committees included), and Dash holds back every
        callback downstream of one that may still run — the layers' hand-over among them."""
        if not access.may_view(street_id):
            return [], None, no_update
        with sessions() as session:
            street = session.get(Street, street_id)
            options = committee_options(session, street_id)
        return options, None, street_viewport(config, street)

    @app.callback(Output("map-asof", "value"), Output("map-slider", "value"), Output("map-slider", "marks"),
                  Output("map-timeline-end", "data"), Input("map-live", "n_clicks"), Input("map-asof", "value"),
                  Input("map-slider", "value"), State("map-timeline-end", "data"), prevent_initial_call=True)
    def move_in_time(_: int | None, typed: str | None, hours: int | None, end: str | None) -> tuple[Any, ...]:
        """The moment shown has one home, the as-of text: a moment typed there becomes the
        timeline's end; the timeline picks an hour of the 14 days before its end; 实时 goes live."""
        if ctx.triggered_id == "map-live":
            return "", 0, timeline_marks(None, lang), None
        if ctx.triggered_id == "map-asof":
            moment = parse_as_of(typed)
            return no_update, 0, timeline_marks(moment, lang), moment and moment.isoformat()
        return timeline_moment(dt.datetime.fromisoformat(end) if end else None, int(hours or 0)), *[no_update] * 3

    register_sources(app, PAGE)

    @app.callback(Output("map-sources", "data"),
                  Input("map-street", "value"), Input("map-committee", "value"), Input("map-asof", "value"),
                  prevent_initial_call=True)
    def choose_layers(street_id: str | None, committee: str | None, as_of_text: str | None) -> dict[str, Any]:
        """The layers for another street, filter or moment (live ones are then kept current in the browser)."""
        shown = street_id if access.may_view(street_id) else None
        return layer_sources(PAGE, config, shown, committee, parse_as_of(as_of_text))

    register_panels(app, "map-panels", "map-detail")

    @app.callback(Output("map-title", "children"), Output("map-panels", "data"), Output("map-events-ack", "children"),
                  Input("map-street", "value"), Input("map-asof", "value"), Input("map-events", "data"),
                  prevent_initial_call=True)
    def refresh_panels(street_id: str | None, as_of_text: str | None, message: str | None) -> tuple[Any, ...]:
        """The numbers beside the map and the feed, for another street, moment or change (the
        page opens with them: ``layout``)."""
        as_of = parse_as_of(as_of_text)
        if as_of is not None and ctx.triggered_id == "map-events":
            return no_update, no_update, ack()
        live_change = ctx.triggered_id == "map-events"
        return (*panels(config, street_id, as_of, int(message_version(message)) if live_change else 0), ack())

    def detail_of(layer: Any, entity: str, street_id: str | None, as_of_text: str | None) -> dict[str, list[Any]]:
        """The drill-down of one entity, for the moment shown (as the reader may see it), by its slot."""
        detail = access.detail(layer, entity, parse_as_of(as_of_text) or dt.datetime.now(dt.UTC), street_id)
        return by_slot(("panel-detail-slot",), (components.detail_panel(layer.id, layer.title, detail,
                                                                         config.language),))

    @app.callback(Output("map-detail", "data"), Input(layer_id(ALL), "clickData"),
                  State("map-street", "value"), State("map-asof", "value"), prevent_initial_call=True)
    def drill_down(_: list[Any], street_id: str | None, as_of_text: str | None) -> Any:
        trigger = ctx.triggered_id
        clicked = ctx.triggered[0]["value"] if ctx.triggered else None
        if not trigger or not clicked or clicked.get("properties", {}).get("cluster"):
            return no_update
        entity = clicked.get("id") or clicked.get("properties", {}).get("id")
        if entity is None:
            return no_update
        return detail_of(layers.BY_ID[trigger["id"]], str(entity), street_id, as_of_text)

    @app.callback(Output("map-compound", "options"), Input("map-street", "value"), Input("map-committee", "value"),
                  prevent_initial_call=True)
    def choose_compounds(street_id: str | None, committee: str | None) -> list[dict[str, str]]:
        """The last step of street → committee → compound: the compounds to choose from."""
        if not access.may_view(street_id):
            return []
        with sessions() as session:
            return compound_options(session, street_id, committee)

    # in the browser, when the list arrives: a compound chosen meanwhile from the list before
    # stays chosen if the new list has it (the server, asked before the choice, would clear it)
    app.clientside_callback(ClientsideFunction("opsmap", "offered"), Output("map-compound", "value"),
                            Input("map-compound", "options"), State("map-compound", "value"),
                            prevent_initial_call=True)

    @app.callback(Output("map-map", "viewport", allow_duplicate=True),
                  Output("map-detail", "data", allow_duplicate=True), Output("map-chosen", "data"),
                  Input("map-compound", "value"), State("map-street", "value"), State("map-asof", "value"),
                  prevent_initial_call=True)
    def choose_compound(compound_id: str | None, street_id: str | None, as_of_text: str | None) -> tuple[Any, ...]:
        """A chosen compound: the map flies to it, rings it and opens its drill-down."""
        with sessions() as session:
            found = session.get(Compound, compound_id) if compound_id else None
            if found is None or not access.may_view(found.street_id):
                return no_update, no_update, None
            point = (found.lng, found.lat)
        ring = shown({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": compound_id, "geometry": {"type": "Point", "coordinates": list(point)},
             "properties": {"id": compound_id}}]}, config.tile_crs == "gcj02")
        return (camera(config, point=point),
                detail_of(layers.compounds, compound_id, street_id, as_of_text), ring)

    @app.callback(Output("map-map", "viewport", allow_duplicate=True), Input("map-committee", "value"),
                  State("map-street", "value"), prevent_initial_call=True)
    def zoom_to_committee(committee_id: str | None, street_id: str | None) -> Any:
        """A chosen committee fills the map; cleared, the whole street does."""
        if not access.may_view(street_id):
            return no_update
        with sessions() as session:
            committee = session.get(Committee, committee_id) if committee_id else None
            if committee is not None and committee.street_id == street_id:
                return camera(config, committee.geom.bounds)
            street = session.get(Street, street_id)
            return street_viewport(config, street) if street is not None else no_update

    @app.callback(Output("map-clock", "children"), Output("map-staleness", "className"),
                  Output("map-staleness", "children"), Input("map-tick", "n_intervals"), prevent_initial_call=True)
    def tick(_: int | None) -> tuple[str, str, str]:
        return clock(config)


def message_version(message: str | None) -> str:
    """The data version a change notice names, as the ``v`` of the refetch URLs."""
    try:
        return str(json.loads(message or "{}").get("version") or 0)
    except ValueError:
        return "0"
