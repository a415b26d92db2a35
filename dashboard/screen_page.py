"""The big screen (/screen): the command center's wall, always on, read from across a room.

Dark, no controls, no scrollbars at 1920×1080 or 3840×2160 (sizes in viewport units), a
clock, the same layers and panels as the map, optional rotation of focus between
committees, and an urgent alert that interrupts: the map flies to its point and a banner
stays for OPSMAP_SCREEN_BANNER_S seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import dash_leaflet as dl
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dashboard import access, components
from dashboard.api import summary_at
from dashboard.i18n import tr
from dashboard.map_page import (
    SHANGHAI_CENTRE,
    ack,
    camera,
    layer_control,
    layer_sources,
    live_events,
    message_version,
    register_sources,
    source_stores,
    street_viewport,
)
from data import rules, streams
from data.access import policy
from data.models import Committee, Street
from data.settings import Config

PAGE = "screen"
CLOCK = "%Y-%m-%d %H:%M:%S"


def opening_sources(config: Config, street_id: str | None) -> dict[str, Any]:
    """The screen's layers: every layer of the shown street, live; it never shows another
    (the layout carries them; dashboard/app.py puts them in the page's HTML)."""
    return layer_sources(PAGE, config, street_id)


def layout(sessions: sessionmaker[Session], config: Config) -> html.Div:
    with sessions() as session:
        street = access.shown_street(session, config)
    tiles = [dl.TileLayer(url=config.tile_url, maxZoom=19)] if config.tile_url else []
    return html.Div(className="opsmap-screen", children=[
        html.Header(className="screen-header", children=[
            html.H1(f"{street.name if street else ''} {tr('战疫图', config.language)}", id="screen-title"),
            html.Span(tr("全街道", config.language), id="screen-focus", className="screen-focus"),
            html.Span(id="screen-staleness", className="staleness"),
            html.Span(id="screen-clock", className="screen-clock"),
        ]),
        html.Div(className="screen-body", children=[
            dl.Map(id="screen-map", className="screen-map", center=SHANGHAI_CENTRE, zoom=11, zoomSnap=0.25,
                   zoomControl=False,
                   children=[*tiles, layer_control(PAGE, config.language)]),
            html.Aside(className="screen-panels", children=[
                html.Div(id="screen-cases"), html.Div(id="screen-work"), html.Div(id="screen-feed")]),
        ]),
        html.Div(id="screen-banner", className="screen-banner hidden"),
        dcc.Store(id="screen-street", data=street.id if street else None),
        dcc.Store(id="screen-banner-until", data=0),
        *live_events("screen-events"), *source_stores(PAGE, opening_sources(config, street and street.id)),
        dcc.Interval(id="screen-tick", interval=1000),
    ])


def register(app: Dash, sessions: sessionmaker[Session], config: Config, redis_url: str | None) -> None:
    """The screen's callbacks: layers, panels, urgent interrupts, clock, rotation."""

    register_sources(app, PAGE)

    @app.callback(Output("screen-cases", "children"), Output("screen-work", "children"),
                  Output("screen-feed", "children"), Output("screen-events-ack", "children"),
                  Input("screen-street", "data"), Input("screen-events", "data"))
    def refresh_panels(street_id: str | None, message: str | None) -> tuple[Any, ...]:
        if not access.may_view(street_id):
            return [], [], [], ack()
        seen = int(message_version(message)) if ctx.triggered_id == "screen-events" else 0
        numbers = summary_at(street_id, dt.datetime.now(dt.UTC), False, seen)
        feed = policy.feed_items(access.actor(), streams.feed(streams.connect(redis_url), 12)) if redis_url else []
        lang = config.language
        return (components.cases_panel(numbers, lang), components.work_panel(numbers, lang),
                components.feed_panel(feed, lang), ack())

    # Two callbacks on the same outputs, not one on both inputs: Dash drops the result of a
    # callback still in flight when the same callback is triggered again, so a clock tick
    # arriving during an urgent alert's round trip would lose its banner.
    banner = (Output("screen-banner", "children", allow_duplicate=True),
              Output("screen-banner", "className", allow_duplicate=True),
              Output("screen-banner-until", "data", allow_duplicate=True),
              Output("screen-map", "viewport", allow_duplicate=True),
              Output("screen-focus", "children", allow_duplicate=True))

    @app.callback(*banner, Input("screen-events", "data"), prevent_initial_call=True)
    def interrupt(message: str | None) -> tuple[Any, ...]:
        """An urgent alert takes the screen: a banner for OPSMAP_SCREEN_BANNER_S, the map on its point."""
        urgent = json.loads(message or "{}").get("urgent") or []
        if not urgent:
            return (no_update,) * 5
        alert = urgent[-1]
        view = camera(config, point=(alert["lng"], alert["lat"])) if alert.get("lng") is not None else no_update
        return ([html.Span(tr("紧急", config.language), className="banner-tag"), html.Span(alert["text"])],
                "screen-banner", dt.datetime.now(dt.UTC).timestamp() + config.screen_banner_s, view,
                tr("紧急处置", config.language))

    @app.callback(*banner, Input("screen-tick", "n_intervals"), State("screen-banner-until", "data"),
                  State("screen-street", "data"), prevent_initial_call=True)
    def rotate(tick: int | None, until: float, street_id: str | None) -> tuple[Any, ...]:
        """At the first tick, and when a banner's time is up, the whole street (or, rotating, the
        next committee). Why the first tick: the map's initial bounds are not applied by
        dash-leaflet (it opened on zoom 11, the street a speck); a viewport set after mount is."""
        if not street_id or (until and dt.datetime.now(dt.UTC).timestamp() < until):
            return (no_update,) * 5
        return _idle(sessions, config, street_id, tick or 0, bool(until) or (tick or 0) <= 1)

    @app.callback(Output("screen-clock", "children"), Output("screen-staleness", "className"),
                  Output("screen-staleness", "children"), Input("screen-tick", "n_intervals"))
    def tick(n: int | None) -> tuple[Any, ...]:
        """The clock every second; freshness (which asks Redis) every fifth second."""
        if (n or 0) % 5:
            return dt.datetime.now(rules.SHANGHAI).strftime(CLOCK), no_update, no_update
        return components.clock_and_freshness(redis_url, config, CLOCK)


def _idle(sessions: sessionmaker[Session], config: Config, street_id: str, tick: int,
          banner_ended: bool) -> tuple[Any, ...]:
    """Without an alert: back to the whole street when a banner's time is up, and every
    ``rotate_s`` seconds the next committee. A tick never hides a banner it has not seen end:
    its ``banner_ended`` may be read before an urgent message's callback has returned."""
    rotate_s, lang = config.screen_rotate_s, config.language
    rotating = rotate_s > 0
    due = rotating and tick > 0 and tick % int(rotate_s) == 0
    if not banner_ended and not due:
        return (no_update,) * 5
    banner = ([], "screen-banner hidden", 0) if banner_ended else (no_update,) * 3
    with sessions() as session:
        street = session.get(Street, street_id)
        if not rotating:
            return (*banner, street_viewport(config, street), tr("全街道", lang))
        committees = session.scalars(select(Committee).where(Committee.street_id == street_id)
                                     .order_by(Committee.id)).all()
    com = committees[(tick // int(rotate_s)) % len(committees)]
    return (*banner, camera(config, com.geom.bounds, transition="flyToBounds", padding=24), com.name)
