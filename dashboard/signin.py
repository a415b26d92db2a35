"""Sign-in pages: password, one-time link, single sign-on (OpenID Connect), sign-out, pairing
a screen and changing one's password — plain server-rendered HTML, every value escaped.

Forms that open a session cannot carry a session's CSRF token yet: they carry a random value
that must also be in a short-lived cookie (double submit) and come from this origin. Failed
password sign-ins are counted per account name and per address (flask-limiter, counters in the
app's Redis); past the limit the page says so and for how long.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, Response, current_app, redirect, request
from flask_limiter import Limiter, RateLimitExceeded
from markupsafe import escape

from dashboard import access
from dashboard.i18n import tr
from data.access import accounts, devices
from data.settings import Config

PRE_COOKIE = "opsmap_form"
NEXT_MAX = 512
STYLE = """body{font:16px/1.5 system-ui,'Noto Sans CJK SC',sans-serif;background:#0b1d33;color:#102a43;margin:0}
main{max-width:420px;margin:10vh auto;background:#fff;border-radius:8px;padding:28px 32px;box-shadow:0 6px 30px #0006}
h1{font-size:22px;margin:0 0 16px}label{display:block;margin:10px 0 4px}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:10px;font-size:16px;
border:1px solid #9fb3c8;border-radius:4px}button,.sso{display:block;width:100%;margin-top:16px;padding:11px;
font-size:16px;border:0;border-radius:4px;background:#1c7ed6;color:#fff;cursor:pointer;text-align:center;
text-decoration:none}.sso{background:#495057}.msg{padding:10px;border-radius:4px;background:#fff3bf}
.msg.error{background:#ffe3e3;color:#c92a2a}table{border-collapse:collapse;font-size:14px}
td,th{border-bottom:1px solid #d9e2ec;padding:4px 8px;text-align:left}"""


def _lang() -> str:
    return current_app.config["OPSMAP_CONFIG"].language


def page(title: str, body: str, status: int = 200, width: int = 420) -> Response:
    """A small HTML page; ``body`` must already be escaped."""
    html = (f'<!doctype html><html lang="{_lang()}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><main style="max-width:{width}px">'
            f'<h1>{escape(title)}</h1>{body}</main></body></html>')
    return Response(html, status=status, mimetype="text/html",
                    headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


def message_page(message: str, status: int) -> Response:
    """A refusal as a page (401/403/503 of a page request)."""
    link = f'<p><a href="/signin">{escape(tr("登录", _lang()))}</a></p>' if status == 401 else ""
    return page(tr("无法打开", _lang()), f'<p class="msg error">{escape(message)}</p>{link}', status)


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never ``//host`` or a scheme): an open redirect sends no one away."""
    target = (target or "/")[:NEXT_MAX]
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _form_token() -> tuple[str, str]:
    """The double-submit value of a pre-session form: the cookie's, or a new one."""
    known = request.cookies.get(PRE_COOKIE, "")
    return (known, "") if len(known) >= 20 else (secrets.token_urlsafe(18),) * 2


def _with_form_cookie(response: Response, new: str) -> Response:
    if new:
        response.set_cookie(PRE_COOKIE, new, max_age=3600, httponly=True, samesite="Strict",
                            secure=access.cookie_secure(current_app.config["OPSMAP_CONFIG"]), path="/")
    return response


def _form_ok() -> bool:
    sent, kept = request.form.get("form", ""), request.cookies.get(PRE_COOKIE, "")
    return bool(kept) and hmac.compare_digest(sent, kept) and access.same_origin()


def _signed_in(account: Any, how: str, target: str) -> Response:
    config: Config = current_app.config["OPSMAP_CONFIG"]
    opened = accounts.open_session(current_app.config["OPSMAP_ENGINE"], dt.timedelta(hours=config.session_hours),
                                   account_id=account.id, address=access.address())
    access.record("signin", account.name, True, who=f"user:{account.name}", how=how)
    return access.set_session_cookies(redirect(_safe_next(target), 303), opened)


def blueprint(server: Flask, config: Config, redis_url: str | None) -> Blueprint:
    """The sign-in routes of one app, with its rate limits and (when configured) its OIDC client."""
    routes = Blueprint("opsmap_signin", __name__)
    limiter = server.extensions["opsmap_limiter"]
    oauth = _oauth(server, config)
    lang = config.language

    def signin_form(message: str = "", error: bool = False, status: int = 200, name: str = "") -> Response:
        value, new = _form_token()
        target = _safe_next(request.values.get("next"))
        sso = (f'<a class="sso" href="/signin/sso?next={escape(target)}">{escape(tr("统一身份认证登录", lang))}</a>'
               if oauth is not None else "")
        note = f'<p class="msg{" error" if error else ""}" role="alert">{escape(message)}</p>' if message else ""
        body = (f'{note}<form method="post" action="/signin">'
                f'<input type="hidden" name="form" value="{escape(value)}">'
                f'<input type="hidden" name="next" value="{escape(target)}">'
                f'<label for="name">{escape(tr("账号", lang))}</label>'
                f'<input type="text" id="name" name="name" autocomplete="username" maxlength="64" '
                f'value="{escape(name)}" required>'
                f'<label for="password">{escape(tr("密码", lang))}</label>'
                f'<input type="password" id="password" name="password" autocomplete="current-password" '
                f'maxlength="256" required>'
                f'<button type="submit">{escape(tr("登录", lang))}</button></form>{sso}')
        return _with_form_cookie(page(tr("opsmap 登录", lang), body, status), new)

    @routes.get("/signin")
    def signin_page() -> Response:
        return signin_form()

    def _account_key() -> str:
        return "signin-account:" + request.form.get("name", "").strip()[:64]

    def _address_key() -> str:
        return "signin-address:" + access.address()

    def _failed(response: Response) -> bool:
        return response.status_code == 401

    @routes.post("/signin")
    @limiter.limit(lambda: config.signin_limit_address, key_func=_address_key, deduct_when=_failed)
    @limiter.limit(lambda: config.signin_limit_account, key_func=_account_key, deduct_when=_failed)
    def signin() -> Response:
        name, password = request.form.get("name", "").strip()[:64], request.form.get("password", "")[:256]
        if not _form_ok():
            return signin_form(tr("表单已过期，请重新登录", lang), True, 403, name)
        account = accounts.verify_password(current_app.config["OPSMAP_ENGINE"], name, password) if name else None
        if account is None:
            access.record("signin", name or "-", False, who=f"user:{name or '-'}", how="password")
            return signin_form(tr("账号或密码不正确", lang), True, 401, name)
        return _signed_in(account, "password", request.form.get("next", "/"))

    @routes.errorhandler(RateLimitExceeded)
    def locked(exc: RateLimitExceeded) -> Response:
        name = request.form.get("name", "").strip()[:64]
        access.record("signin.locked", name or "-", False, who=f"user:{name or '-'}", limit=str(exc.limit.limit))
        window = exc.limit.limit.get_expiry() // 60
        message = tr("登录失败次数过多，已暂时锁定：请 {n} 分钟后再试", lang).format(n=max(window, 1))
        response = signin_form(message, True, 429, name)
        response.headers["Retry-After"] = str(exc.limit.limit.get_expiry())
        return response

    def confirm(title: str, text: str, button: str) -> Response:
        """A one-time link's page: it asks for a press, so a link preview cannot spend the link."""
        value, new = _form_token()
        body = (f'<form method="post"><input type="hidden" name="form" value="{escape(value)}">'
                f'<p>{escape(tr(text, lang))}</p><button type="submit">{escape(tr(button, lang))}</button></form>')
        return _with_form_cookie(page(tr(title, lang), body), new)

    @routes.get("/signin/link/<secret>")
    def link_page(secret: str) -> Response:
        return confirm("opsmap 登录", "此链接只能使用一次。", "登录")

    @routes.post("/signin/link/<secret>")
    @limiter.limit(lambda: config.signin_limit_address, key_func=_address_key, deduct_when=_failed)
    def link(secret: str) -> Response:
        if not _form_ok():
            return signin_form(tr("表单已过期，请重新登录", lang), True, 403)
        account = accounts.redeem_link(current_app.config["OPSMAP_ENGINE"], secret[:128])
        if account is None:
            access.record("signin", "-", False, how="link")
            return signin_form(tr("链接无效、已使用或已过期", lang), True, 401)
        return _signed_in(account, "link", "/" if account.password_hash else "/signin/password")

    @routes.route("/signin/password", methods=["GET", "POST"])
    def password() -> Response:
        """Set one's own password (after a one-time link, or any time signed in)."""
        who = _current()
        if who is None:
            return redirect("/signin?next=/signin/password")
        message, error = "", False
        if request.method == "POST":
            if not access.csrf_ok(who):
                return message_page("CSRF", 403)
            new = request.form.get("password", "")[:256]
            if new != request.form.get("again", "")[:256]:
                message, error = tr("两次输入不一致", lang), True
            else:
                try:
                    accounts.set_password(current_app.config["OPSMAP_ENGINE"], who.name, new)
                except accounts.AccessError as exc:
                    message, error = str(exc), True
                else:
                    access.record("user.passwd", who.name, True, who=who.label)
                    return redirect("/", 303)
        note = f'<p class="msg{" error" if error else ""}" role="alert">{escape(message)}</p>' if message else ""
        body = (f'{note}<form method="post"><input type="hidden" name="csrf" value="{escape(who.csrf or "")}">'
                f'<label for="password">{escape(tr("新密码（至少 10 位）", lang))}</label>'
                f'<input type="password" id="password" name="password" autocomplete="new-password" required>'
                f'<label for="again">{escape(tr("再输入一次", lang))}</label>'
                f'<input type="password" id="again" name="again" autocomplete="new-password" required>'
                f'<button type="submit">{escape(tr("设置密码", lang))}</button></form>'
                f'<p><a href="/">{escape(tr("以后再说", lang))}</a></p>')
        return page(tr("设置密码", lang), body)

    @routes.post("/signin/out")
    def signout() -> Response:
        who = _current()
        if who is not None and not access.csrf_ok(who):  # a cross-site form cannot sign anyone out
            return message_page("CSRF", 403)
        if who is not None and who.session_id:
            accounts.close_session(current_app.config["OPSMAP_ENGINE"], who.session_id)
            access.record("signout", who.name, True, who=who.label)
        return access.clear_session_cookies(redirect("/signin", 303))

    @routes.get("/screen/pair/<code>")
    def pair_page(code: str) -> Response:
        return confirm("大屏配对", "将本设备配对为指挥中心大屏。", "配对")

    @routes.post("/screen/pair/<code>")
    @limiter.limit(lambda: config.signin_limit_address, key_func=_address_key, deduct_when=_failed)
    def pair(code: str) -> Response:
        if not _form_ok():
            return message_page(tr("表单已过期，请重新打开配对链接", lang), 403)
        engine = current_app.config["OPSMAP_ENGINE"]
        device = devices.pair_screen(engine, code[:128])
        if device is None:
            access.record("screen.pair", "-", False, who="screen:-")
            return message_page(tr("配对码无效、已使用或已过期", lang), 401)
        opened = accounts.open_session(engine, dt.timedelta(days=config.screen_days), screen_id=device.id,
                                       address=access.address())
        access.record("screen.pair", f"screen:{device.id}", True, who=f"screen:{device.id}-{device.name}")
        return access.set_session_cookies(redirect("/screen", 303), opened)

    if oauth is not None:
        _sso_routes(routes, oauth, config)
    return routes


def _current() -> Any:
    """The signed-in actor of a route the guard leaves open (the sign-in pages)."""
    return access.session_actor(current_app.config["OPSMAP_SESSIONS"])


def _oauth(server: Flask, config: Config) -> Any:
    """The OpenID Connect client when OPSMAP_OIDC_ISSUER and its client are configured."""
    if not (config.oidc_issuer and config.oidc_client_id and config.oidc_client_secret):
        return None
    oauth = OAuth(server)
    issuer = config.oidc_issuer.rstrip("/")
    return oauth.register("sso", client_id=config.oidc_client_id, client_secret=config.oidc_client_secret,
                          server_metadata_url=f"{issuer}/.well-known/openid-configuration",
                          client_kwargs={"scope": "openid profile email"})


def _sso_routes(routes: Blueprint, client: Any, config: Config) -> None:
    lang = config.language

    @routes.get("/signin/sso")
    def sso() -> Response:
        from flask import session, url_for

        session["opsmap_next"] = _safe_next(request.args.get("next"))
        return client.authorize_redirect(url_for("opsmap_signin.sso_back", _external=True))

    @routes.get("/signin/sso/back")
    def sso_back() -> Response:
        from authlib.integrations.base_client import OAuthError
        from flask import session

        from data.store import session_factory

        try:
            token = client.authorize_access_token()
            claims = {**client.userinfo(token=token), **(token.get("userinfo") or {})}
        except OAuthError as exc:
            access.record("signin", "-", False, how="sso", error=str(exc.error))
            return message_page(tr("统一身份认证失败", lang) + f"：{exc.error}", 401)
        subject = f"{config.oidc_issuer.rstrip('/')}|{claims['sub']}"
        values = claims.get(config.oidc_roles_claim) or []
        values = [values] if isinstance(values, str) else list(values)
        engine = current_app.config["OPSMAP_ENGINE"]
        try:
            with session_factory(engine)() as s:
                roles = [r for v in values for r in _claim_roles(s, str(v))]
        except accounts.AccessError as exc:
            roles, problem = [], str(exc)
        else:
            problem = "" if roles else f"{config.oidc_roles_claim}: no opsmap role"
        name = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        if problem:
            access.record("signin", name, False, who=f"user:{name}", how="sso", problem=problem)
            return message_page(tr("统一身份认证成功，但没有 opsmap 角色", lang) + f"（{problem}）", 403)
        account = accounts.provision_sso(engine, subject, name, str(claims.get("name") or name), roles)
        return _signed_in(account, "sso", session.pop("opsmap_next", "/"))


def _claim_roles(session: Any, value: str) -> list[Any]:
    """``admin``, ``commander:<street>``, ``viewer:<street>``, ``officer:<committee>`` → roles."""
    role, _, scope = value.partition(":")
    if role == "officer":
        return accounts.parse_roles(session, role, committees=[scope])
    return accounts.parse_roles(session, role, streets=[scope])


def limiter_for(server: Flask, config: Config, redis_url: str | None) -> Limiter:
    """Rate limits with their counters in the app's Redis (in memory without one): sign-in
    attempts (see ``blueprint``) and the intake per producer token."""
    from data.pipeline import streams

    storage = "memory://"
    if redis_url:
        client, _ = streams.client_for(redis_url)
        clustered = streams.is_cluster(client)
        client.close()
        storage = f"redis+cluster://{urlsplit(redis_url).netloc}" if clustered else redis_url

    def token_key() -> str:
        return f"token:{access.actor().name}"

    limiter = Limiter(key_func=token_key, app=server, storage_uri=storage, strategy="fixed-window",
                      default_limits=[lambda: config.token_rate_limit],
                      default_limits_exempt_when=lambda: not request.path.startswith("/api/v1/events/"),
                      key_prefix="opsmap:limits", swallow_errors=True)
    server.extensions["opsmap_limiter"] = limiter
    return limiter
