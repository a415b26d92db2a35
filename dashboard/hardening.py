"""What every answer of the app carries, whatever route made it: security headers, errors that
never reflect input as HTML, bounded request bodies and the host names the app answers to.

Why one module: a header forgotten on one route is the route an attacker uses. The
Content-Security-Policy allows only this origin's scripts plus the hashes of Dash's own inline
scripts (``Dash.csp_hashes``), so a value that slipped into a page as markup still cannot run.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from dash import Dash
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from data.settings import Config

#: request bodies larger than this are refused with 413 (the intake's 1,000 events fit well within)
MAX_BODY_BYTES = 8 * 1024 * 1024
PERSONAL_PATHS = ("/api/v1/entities/", "/api/v1/feed", "/_dash-update-component", "/briefing", "/admin")


def allowed_hosts(config: Config) -> list[str]:
    """OPSMAP_ALLOWED_HOSTS, or loopback names, OPSMAP_HOST and the host of OPSMAP_PUBLIC_URL."""
    if config.allowed_hosts:
        return [h.strip() for h in config.allowed_hosts.split(",") if h.strip()]
    hosts = {"localhost", "127.0.0.1", "::1", "[::1]", config.host}
    if config.public_url:
        hosts.add(urlsplit(config.public_url).hostname or "")
    return sorted(h for h in hosts if h and h != "0.0.0.0")


def policy(app: Dash, config: Config) -> str:
    """The Content-Security-Policy of every answer."""
    def origin(url: str) -> str:  # a tile template's {s} subdomain becomes a wildcard
        parts = urlsplit(url.replace("{s}", "*"))
        return f" {parts.scheme}://{parts.netloc}" if url else ""

    tiles, sso = origin(config.tile_url), origin(config.oidc_issuer)
    return "; ".join([
        "default-src 'self'", "script-src 'self' " + " ".join(app.csp_hashes()),
        "style-src 'self' 'unsafe-inline'",  # Leaflet and Dash set style attributes
        f"img-src 'self' data: blob:{tiles}", "connect-src 'self'", "worker-src 'self'", "font-src 'self' data:",
        "object-src 'none'", "base-uri 'self'", f"form-action 'self'{sso}", "frame-ancestors 'none'"])


def install(app: Dash, config: Config) -> None:
    """Headers, JSON errors for the API, body limit and allowed hosts on the app's server. (Routes
    that refuse with a ready answer — ``abort(Response)`` — give JSON or plain text themselves.)"""
    server: Flask = app.server
    server.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, TRUSTED_HOSTS=allowed_hosts(config))
    csp: list[str] = []  # computed on the first answer: every callback is registered by then

    @server.after_request
    def headers(response: Response) -> Response:
        if not csp:
            csp.append(policy(app, config))
        response.headers.setdefault("Content-Security-Policy", csp[0])
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith(PERSONAL_PATHS) or response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response

    @server.errorhandler(HTTPException)
    def as_json_or_text(exc: HTTPException) -> Response:
        """Errors as JSON for the API and Dash, as escaped text for pages: never the input as HTML."""
        if request.path.startswith(("/api/", "/_dash-")):
            return Response(json.dumps({"error": exc.description}, ensure_ascii=False), status=exc.code or 500,
                            mimetype="application/json")
        return Response(f"{exc.code} {exc.name}: {exc.description}", status=exc.code or 500, mimetype="text/plain")
