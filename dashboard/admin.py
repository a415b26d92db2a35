"""The admin page (/admin): the audit trail with filters, and the accounts, producer tokens and
screens with their revocation. Plain server-rendered HTML, every value escaped; the guard
(``dashboard.access``) lets only admins in and checks the CSRF token of every form.

Making accounts, tokens and screens stays on the command line (``opsmap user|token|screen``),
where a secret is printed once to the person who made it, not into a page.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, redirect, request
from markupsafe import Markup, escape

from dashboard import access
from dashboard.signin import page
from data.access import accounts, audit, devices

routes = Blueprint("opsmap_admin", __name__)
SHOWN = 300


def _rows(head: list[str], rows: list[list[object]]) -> Markup:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else escape(str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return Markup(f"<table><tr>{cells}</tr>{body}</table>")


def _button(action: str, label: str) -> Markup:
    csrf = escape(access.actor().csrf or "")
    return Markup(f'<form method="post" action="{escape(action)}" style="margin:0">'
                  f'<input type="hidden" name="csrf" value="{csrf}"><button style="margin:0;padding:2px 8px">'
                  f"{escape(label)}</button></form>")


@routes.get("/admin")
def overview() -> Response:
    engine = current_app.config["OPSMAP_ENGINE"]
    who, since_text = request.args.get("actor", "")[:96], request.args.get("since", "")[:32]
    action = request.args.get("action", "")[:48]
    try:
        since = dt.datetime.fromisoformat(since_text).astimezone(dt.UTC) if since_text else None
    except ValueError:
        since = None
    lines = audit.entries(engine, since, who or None, action or None, SHOWN)
    filters = (f'<form method="get"><label>操作者 <input type="text" name="actor" value="{escape(who)}"></label>'
               f'<label>操作 <input type="text" name="action" value="{escape(action)}"></label>'
               f'<label>起始 <input type="text" name="since" placeholder="2026-12-01" value="{escape(since_text)}">'
               f"</label><button>筛选</button></form>")
    people = _rows(["账号", "姓名", "角色", "登录方式", "状态", ""], [
        [a.name, a.display_name, " ".join(f"{g.role}:{g.committee_id or g.street_id or ''}".rstrip(":")
                                         for g in a.grants),
         "SSO" if a.oidc_subject else ("密码" if a.password_hash else "一次性链接"),
         "停用" if a.disabled else "启用",
         "" if a.disabled else _button(f"/admin/users/{a.name}/disable", "停用")] for a in accounts.accounts(engine)])
    tokens = _rows(["名称", "数据流", "街道", "创建", "状态", ""], [
        [t.name, t.streets, t.street_id or "全部", f"{t.created_at:%Y-%m-%d}", "已吊销" if t.revoked_at else "有效",
         "" if t.revoked_at else _button(f"/admin/tokens/{t.name}/revoke", "吊销")] for t in devices.tokens(engine)])
    screens = _rows(["编号", "名称", "街道", "配对", "状态", ""], [
        [s.id, s.name, s.street_id, f"{s.paired_at:%Y-%m-%d %H:%M}" if s.paired_at else "待配对",
         "已吊销" if s.revoked_at else "有效",
         "" if s.revoked_at else _button(f"/admin/screens/{s.id}/revoke", "吊销")] for s in devices.screens(engine)])
    trail = _rows(["时间 (UTC)", "操作者", "操作", "对象", "结果", "地址", "详情"], [
        [f"{e.ts:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target or "", "成功" if e.ok else "拒绝", e.address or "",
         " ".join(f"{k}={v}" for k, v in (e.detail or {}).items())] for e in lines])
    body = Markup(f'<p><a href="/">返回地图</a></p><h2>审计记录（最近 {SHOWN} 条）</h2>{filters}{trail}'
                  f"<h2>账号</h2>{people}<h2>数据接入令牌</h2>{tokens}<h2>大屏</h2>{screens}"
                  "<p>新建账号、令牌和大屏：<code>opsmap user add</code>、<code>opsmap token create</code>、"
                  "<code>opsmap screen add</code>（密钥只显示一次）。</p>")
    access.record("view.audit", who or "*")
    return page("opsmap 管理", body, width=1100)


@routes.post("/admin/<kind>/<key>/<verb>")
def change(kind: str, key: str, verb: str) -> Response:
    """Disable an account, revoke a token or a screen (each recorded in the trail)."""
    engine = current_app.config["OPSMAP_ENGINE"]
    verbs = {("users", "disable"): lambda: accounts.set_disabled(engine, key),
             ("tokens", "revoke"): lambda: devices.revoke_token(engine, key),
             ("screens", "revoke"): lambda: devices.revoke_screen(engine, int(key) if key.isdigit() else -1)}
    run = verbs.get((kind, verb))
    if run is None:
        return page("opsmap 管理", Markup("<p>没有这个操作</p>"), 404)
    try:
        run()
    except accounts.AccessError as exc:
        access.record(f"{kind}.{verb}", key, False, problem=str(exc))
        return page("opsmap 管理", Markup(f'<p class="msg error">{escape(str(exc))}</p>'), 400)
    access.record(f"{kind}.{verb}", key)
    return redirect("/admin", 303)
