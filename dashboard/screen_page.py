"""The big screen (/screen): the command center's wall, always on, read from across a room.

Dark, no controls, no scrollbars at 1920×1080 or 3840×2160 (sizes in viewport units), a
clock, the same layers and panels as the map, optional rotation of focus between
committees, and urgent alerts that interrupt without taking over: assets/screen.js queues
them, shows one banner (or one for a group) between OPSMAP_SCREEN_BANNER_MIN_S and
OPSMAP_SCREEN_BANNER_S seconds, and keeps the overview up at least OPSMAP_SCREEN_OVERVIEW_S
between banners; the camera follows through the store ``screen-camera``.
"""

from __future__ import annotations

import datetime as dt
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
    by_slot,
    camera,
    layer_control,
    layer_sources,
    live_events,
    message_version,
    register_panels,
    register_sources,
    source_stores,
    street_viewport,
)
from data.access import policy
from data.domain import rules
from data.models import Committee, Street
from data.pipeline import streams
from data.settings import Config

PAGE = "screen"
CLOCK = "%Y-%m-%d %H:%M:%S"
#: the slots assets/panels.js draws from the store ``screen-panels``
SLOTS = ("screen-cases", "screen-work", "screen-feed", "screen-headline")


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
        html.Div(id="screen-headline", className="screen-headline"),
        html.Div(className="screen-body", children=[
            dl.Map(id="screen-map", className="screen-map", center=SHANGHAI_CENTRE, zoom=11, zoomSnap=0.25,
                   zoomControl=False,
                   children=[*tiles, layer_control(PAGE, config.language)]),
            html.Aside(className="screen-panels", children=[
                html.Div(id="screen-cases"), html.Div(id="screen-work"), html.Div(id="screen-feed")]),
        ]),
        html.Div(id="screen-banner", className="screen-banner hidden", role="alert", **{
            "data-min-s": config.screen_banner_min_s, "data-max-s": config.screen_banner_s,
            "data-overview-s": config.screen_overview_s, "data-rotate-s": config.screen_rotate_s,
            "data-tag": tr("紧急", config.language), "data-group": tr("紧急预警 {n} 起", config.language)}),
        dcc.Store(id="screen-street", data=street.id if street else None), dcc.Store(id="screen-panels"),
        dcc.Store(id="screen-camera"),
        *live_events("screen-events"), *source_stores(PAGE, opening_sources(config, street and street.id)),
        dcc.Interval(id="screen-tick", interval=1000),
    ])


def register(app: Dash, sessions: sessionmaker[Session], config: Config, redis_url: str | None) -> None:
    """The screen's callbacks: layers, panels, urgent interrupts, clock, rotation."""

    register_sources(app, PAGE)

    register_panels(app, "screen-panels")

    @app.callback(Output("screen-panels", "data"), Output("screen-events-ack", "children"),
                  Input("screen-street", "data"), Input("screen-events", "data"))
    def refresh_panels(street_id: str | None, message: str | None) -> tuple[Any, ...]:
        """The numbers, work, feed and headline, as plain data by their slots (components.plain)."""
        if not access.may_view(street_id):
            return by_slot(SLOTS), ack()
        seen = int(message_version(message)) if ctx.triggered_id == "screen-events" else 0
        numbers = summary_at(street_id, dt.datetime.now(dt.UTC), False, seen)
        feed = policy.feed_items(access.actor(), streams.feed(streams.connect(redis_url), 12)) if redis_url else []
        lang = config.language
        return by_slot(SLOTS, (components.cases_panel(numbers, lang), components.work_panel(numbers, lang),
                               components.feed_panel(feed, lang), components.headline(numbers, lang))), ack()

    @app.callback(Output("screen-map", "viewport"), Output("screen-focus", "children"),
                  Input("screen-camera", "data"), State("screen-street", "data"), prevent_initial_call=True)
    def aim(wanted: dict[str, Any] | None, street_id: str | None) -> tuple[Any, ...]:
        """Where assets/screen.js wants the camera — an alert's point, the next committee, the
        street — as a viewport in the tiles' coordinates."""
        if not wanted or not street_id:
            return no_update, no_update
        if wanted.get("point"):
            lng, lat = (float(v) for v in wanted["point"][:2])
            return camera(config, point=(lng, lat)), tr("紧急处置", config.language)
        with sessions() as session:
            street = session.get(Street, street_id)
            committees = session.scalars(select(Committee).where(Committee.street_id == street_id)
                                         .order_by(Committee.id)).all()
        if "rotate" in wanted and committees:
            com = committees[int(wanted["rotate"]) % len(committees)]
            return camera(config, com.geom.bounds, transition="flyToBounds", padding=24), com.name
        return street_viewport(config, street), tr("全街道", config.language)

    @app.callback(Output("screen-clock", "children"), Output("screen-staleness", "className"),
                  Output("screen-staleness", "children"), Input("screen-tick", "n_intervals"))
    def tick(n: int | None) -> tuple[Any, ...]:
        """The clock every second; freshness (which asks Redis) every fifth second."""
        if (n or 0) % 5:
            return dt.datetime.now(rules.SHANGHAI).strftime(CLOCK), no_update, no_update
        return components.clock_and_freshness(redis_url, config, CLOCK, age=True)
