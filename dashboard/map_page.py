"""The command map page: the street, its committees and compounds on a vector basemap.

Callbacks stay thin: they read settings and call ``data.queries`` / ``layers``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash_leaflet as dl
from dash import Dash, Input, Output, dcc, html
from dash_extensions.javascript import Namespace
from sqlalchemy.orm import Session, sessionmaker

import layers
from data import queries
from data.models import Street

ns = Namespace("opsmap", "map")
SHANGHAI = [31.23, 121.47]
SITE_KIND_LABELS = {"metro_entrance": "地铁出入口", "park": "公园", "construction_site": "工地",
                    "elderly_care": "养老机构", "office_building": "办公楼", "market": "菜场"}
STATUS_LABELS = {"open": "开放", "closed": "关闭", "restricted": "限制通行", "unverified": "未核实"}


def layer_url(layer_id: str, street_id: str) -> str:
    return f"/api/v1/layers/{layer_id}?{urlencode({'street': street_id})}"


def bounds(street: Street) -> list[list[float]]:
    minx, miny, maxx, maxy = street.geom.bounds
    return [[miny, minx], [maxy, maxx]]


def layout(sessions: sessionmaker[Session], default_street: str, tile_url: str) -> html.Div:
    with sessions() as session:
        loaded = queries.streets(session)
    options = [{"label": f"{s.district} · {s.name}", "value": s.id} for s in loaded]
    chosen = next((s for s in loaded if s.name == default_street), loaded[0] if loaded else None)
    basemap = [dl.TileLayer(url=tile_url, maxZoom=19)] if tile_url else []
    return html.Div(className="opsmap", children=[
        html.Header(className="opsmap-header", children=[
            html.H1(id="map-title"),
            dcc.Dropdown(id="map-street", className="street-select", options=options,
                         value=chosen.id if chosen else None, clearable=False),
        ]),
        html.Div(className="opsmap-body", children=[
            dl.Map(id="map-map", className="opsmap-map", center=SHANGHAI, zoom=11, zoomSnap=0.25,
                   children=[*basemap,
                             dl.GeoJSON(id="map-boundaries", style=ns("areaStyle"), onEachFeature=ns("tooltip")),
                             dl.GeoJSON(id="map-compounds", style=ns("areaStyle"), pointToLayer=ns("compoundPoint"),
                                        onEachFeature=ns("tooltip"))]),
            html.Aside(id="map-panel", className="opsmap-panel"),
        ]),
    ])


def panel(summary: dict[str, Any]) -> list[Any]:
    """The side panel: what the street holds, and which parts are synthetic."""
    def row(label: str, value: int) -> html.Tr:
        return html.Tr([html.Td(label), html.Td(f"{value:,}", className="num")])

    rows = [row("居委会", summary["committees"]), row("小区", summary["compounds"]),
            row("户数（合成）", summary["households"])]
    rows += [row(f"出入口 · {STATUS_LABELS.get(k, k)}", v) for k, v in sorted(summary["gates"].items())]
    rows += [row(f"商铺 · {STATUS_LABELS.get(k, k)}", v) for k, v in sorted(summary["shops"].items())]
    rows += [row(SITE_KIND_LABELS.get(k, k), v) for k, v in sorted(summary["sites"].items())]
    legend = [html.Div([html.Span(className="opsmap-legend-swatch", style={"background": e.colour}), e.label])
              for layer in layers.LAYERS for e in layer.legend()]
    return [html.H2("街道概况"), html.Table(html.Tbody(rows)), html.H2("图例", style={"marginTop": "1rem"}),
            *legend,
            html.P("小区位置来自 2022 年公布的病例居住地址；居委划分、出入口、门岗、户数及部分商铺与场所为合成数据。",
                   className="opsmap-note")]


def register(app: Dash, sessions: sessionmaker[Session]) -> None:
    @app.callback(Output("map-title", "children"), Output("map-map", "viewport"),
                  Output("map-boundaries", "url"), Output("map-compounds", "url"),
                  Output("map-panel", "children"), Input("map-street", "value"))
    def show_street(street_id: str | None) -> tuple[Any, ...]:
        if not street_id:
            return "opsmap：尚未加载街道（运行 opsmap load）", None, None, None, []
        with sessions() as session:
            street = session.get(Street, street_id)
            summary = queries.street_summary(session, street_id)
        viewport = {"bounds": bounds(street), "options": {"padding": [16, 16]}, "transition": "fitBounds"}
        return (f"{street.name} 战疫图", viewport, layer_url("boundaries", street_id),
                layer_url("compounds", street_id), panel(summary))
