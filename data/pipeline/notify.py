"""Dispatches, 催办 and 督办 sent to the committee they concern: a WeCom/政务微信 group robot or a
signed JSON webhook, configured per committee (`opsmap notify add`).

How none is lost or doubled: ingest writes one ``notification`` row per step and target in the
transaction that applies the step (an outbox, keyed by the step's event id: a redelivered event
writes none again). A sender holds a due row by moving its ``next_at`` on (one conditional
UPDATE: two senders never hold the same row), posts it, and records the delivery; a failure is
retried with doubling waits up to OPSMAP_NOTIFY_BACKOFF_MAX_S, for as long as it takes — an
undelivered message stays visible (`opsmap notify list`, /healthz) and is re-sent. Left: a sender
killed after the receiver accepted and before its record commits sends that one again; the signed
webhook carries ``X-Opsmap-Delivery`` so a receiver can tell (a WeCom robot cannot).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from data.domain import deadlines, rules
from data.domain.labels import label
from data.models import Committee, Notification, NotifyTarget, WorkOrder, WorkOrderEvent
from data.settings import Config
from data.store import session_factory

log = logging.getLogger(__name__)
KINDS = ("wecom", "json")
#: the steps a committee is told of, and how the message opens
TOLD = {"dispatch": "派单", "remind": "催办", "supervise": "督办"}
TIMEOUT_S = 10
LEASE = dt.timedelta(seconds=2 * TIMEOUT_S)  # a sender that dies holding a row frees it after this


def order_link(config: Config, order_id: str) -> str:
    """The order opened in /officer (sign-in first when the phone has no session)."""
    return f"{config.base_url}/officer?order={quote(order_id, safe='')}"


def message(session: Session, config: Config, order: WorkOrder, step: WorkOrderEvent) -> str:
    """What the officer reads: the step, the order's kind and place, who, and the deadline — never
    the resident's words or address (they stay behind the sign-in the link leads to)."""
    policy = deadlines.of(config)
    committee = session.get(Committee, order.committee_id) if order.committee_id else None
    due = policy.due(order.category, order.created_at).astimezone(rules.SHANGHAI)
    head = f"【{TOLD[step.action]}】{label(order.category)}工单 {order.id}"
    who = f"{committee.name if committee else '居委'}{' ' + order.assignee if order.assignee else ''}"
    tail = {"dispatch": f"请 {who} 处置，办结时限 {due:%m-%d %H:%M}。",
            "remind": f"已到办结时限（{due:%m-%d %H:%M}），请 {who} 尽快办结。",
            "supervise": f"超过办结时限（{due:%m-%d %H:%M}）仍未办结，已报街道督办，请 {who} 即办。"}[step.action]
    return f"{head}：{tail}"


def enqueue(session: Session, config: Config, order: WorkOrder, step: WorkOrderEvent) -> int:
    """One message per target of the committee the step concerns (a dispatch: the committee it
    names; a 催办/督办: the order's owner), in the caller's transaction."""
    committee = step.committee_id if step.action == "dispatch" else order.committee_id
    if committee is None:  # never dispatched: the committee where it happened
        committee = session.scalar(select(WorkOrderEvent.committee_id).where(
            WorkOrderEvent.order_id == order.id, WorkOrderEvent.action == "create"))
    targets = session.scalars(select(NotifyTarget).where(NotifyTarget.committee_id == committee)).all()
    if not targets:
        return 0
    text, link = message(session, config, order, step), order_link(config, order.id)
    for target in targets:
        session.add(Notification(key=f"{step.event_id}>{target.id}", target_id=target.id, order_id=order.id,
                                 kind=step.action, text=text, link=link, created_at=step.ts,
                                 next_at=dt.datetime.now(dt.UTC), attempts=0))
    return len(targets)


# --- sending ------------------------------------------------------------------------------------


def body_of(target: NotifyTarget, note: Notification) -> tuple[bytes, dict[str, str]]:
    """The request body and headers for ``target``'s kind: WeCom's group-robot markdown message,
    or opsmap's JSON signed with HMAC-SHA256 over ``<timestamp>.<body>``."""
    if target.kind == "wecom":
        doc = {"msgtype": "markdown", "markdown": {"content": f"{note.text}\n[在 opsmap 中打开]({note.link})"}}
        return json.dumps(doc, ensure_ascii=False).encode(), {"Content-Type": "application/json"}
    body = json.dumps({"delivery": note.key, "kind": note.kind, "order_id": note.order_id, "text": note.text,
                       "link": note.link, "at": note.created_at.isoformat()}, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    signature = hmac.new((target.secret or "").encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Opsmap-Delivery": note.key,
                  "X-Opsmap-Timestamp": stamp, "X-Opsmap-Signature": f"sha256={signature}"}


def post(target: NotifyTarget, note: Notification) -> str | None:
    """Send one message; None when the receiver took it, else why not."""
    body, headers = body_of(target, note)
    req = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            answer = resp.read(4096)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    if target.kind == "wecom":  # the robot answers 200 with an error code of its own
        try:
            code = json.loads(answer).get("errcode")
        except (ValueError, AttributeError):
            return "WeCom answered no JSON"
        if code != 0:
            return f"WeCom errcode {code}"
    return None


class Sender:
    """Sends the due messages; several processes may run one each."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.sessions = session_factory(engine, write=True)
        self.reads = session_factory(engine)  # looking for due messages takes no write lock
        self.cap = dt.timedelta(seconds=config.notify_backoff_max_s)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                busy = self.step()
            except Exception:
                log.exception("notification step failed")
                busy = False
            stop.wait(0.05 if busy else 0.5)

    def step(self, limit: int = 20) -> int:
        """Hold, send and record up to ``limit`` due messages; how many were tried."""
        now = dt.datetime.now(dt.UTC)
        with self.reads() as session:
            due = session.execute(select(Notification.id, Notification.next_at).where(
                Notification.delivered_at.is_(None), Notification.next_at <= now)
                .order_by(Notification.next_at).limit(limit)).all()
        if not due:
            return 0
        with self.sessions() as session, session.begin():
            held = [nid for nid, next_at in due if session.execute(
                update(Notification).where(Notification.id == nid, Notification.next_at == next_at)
                .values(next_at=now + LEASE)).rowcount == 1]
        for nid in held:
            with self.sessions() as session:
                note = session.get(Notification, nid)
                target = session.get(NotifyTarget, note.target_id) if note is not None else None
                problem = post(target, note) if target is not None else None
            with self.sessions() as session, session.begin():
                attempts = (note.attempts if note is not None else 0) + 1
                values: dict[str, Any] = {"attempts": attempts}
                if problem is None:
                    values["delivered_at"] = dt.datetime.now(dt.UTC)
                else:
                    wait = min(self.cap, dt.timedelta(seconds=2 ** min(attempts - 1, 20)))
                    values |= {"last_error": problem, "next_at": dt.datetime.now(dt.UTC) + wait}
                    log.warning("notification %s not delivered (try %d): %s; again in %s", nid, attempts, problem,
                                wait)
                session.execute(update(Notification).where(Notification.id == nid).values(**values))
        return len(held)


def run_sender(engine: Engine, config: Config, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=Sender(engine, config).run, args=(stop,), name="opsmap-notify", daemon=True)
    thread.start()
    return thread


def undelivered(session: Session) -> dict[str, Any]:
    """What /healthz shows: messages not delivered yet, the oldest, and the last reason."""
    count, oldest = session.execute(select(func.count(), func.min(Notification.created_at))
                                    .where(Notification.delivered_at.is_(None))).one()
    reason = session.scalar(select(Notification.last_error).where(Notification.delivered_at.is_(None),
                                                                  Notification.last_error.is_not(None))
                            .order_by(Notification.next_at.desc()).limit(1))
    return {"undelivered": count, **({"oldest": oldest.isoformat()} if oldest else {}),
            **({"last_error": reason} if reason else {})}


def resend(engine: Engine) -> int:
    """Every undelivered message due now (after the cause is fixed: no wait for the backoff)."""
    with session_factory(engine, write=True)() as session, session.begin():
        return session.execute(update(Notification).where(Notification.delivered_at.is_(None))
                               .values(next_at=dt.datetime.now(dt.UTC))).rowcount
