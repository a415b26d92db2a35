"""opsmap: the command-line entry point (``opsmap load | serve | ingest | briefing …``) and ``server``.

``gunicorn app:server`` serves the app on the configured engines; running this file
(``python app.py``) is ``opsmap serve``.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import signal
import sys
import threading
from typing import Any

from data import settings
from data.pipeline.events import STREAMS

log = logging.getLogger("opsmap")


def _load(config: settings.Config, args: argparse.Namespace) -> int:
    from data.sources.geodata import DatasetError, UnknownStreet
    from data.sources.loader import load_street
    from data.store import is_empty, make_engine

    engine = make_engine(config.sqlalchemy_url)
    if args.if_empty and not is_empty(engine):
        log.info("database already holds a street; nothing loaded (--if-empty)")
        return 0
    try:
        data = load_street(engine, settings.datasets_path(config), config.street, config.seed,
                           show_progress=sys.stderr.isatty() or args.progress)
    except UnknownStreet as exc:
        print(f"opsmap load: {exc}", file=sys.stderr)
        return 2
    except DatasetError as exc:
        print(f"opsmap load: bad dataset: {exc}; nothing was loaded", file=sys.stderr)
        return 3
    counts = ", ".join(f"{k} {v}" for k, v in data.summary().items())
    print(f"loaded {data.street.district} {data.street.name} ({data.street.id}): {counts}")
    if args.demo_users:
        _demo_users(config, engine, data.street.id, [c.id for c in data.committees[:2]])
    return 0


def _demo_users(config: settings.Config, engine: Any, street_id: str, committees: list[str]) -> None:
    """Demo accounts of the loaded street, each printed once with its one-time sign-in link."""
    from data.access import accounts
    from data.access.policy import Role

    demo = (("zhihui", "街道指挥", [Role("commander", street_id)]),
            *((f"wangge{i:02d}", f"网格员 {cid}", [Role("officer", street_id, cid)])
              for i, cid in enumerate(committees, 1)),
            ("guancha", "观察员", [Role("viewer", street_id)]))
    known = {a.name for a in accounts.accounts(engine)}
    for name, display, roles in demo:
        if name in known:
            print(f"demo account {name} exists already (a new link: opsmap user link {name})")
            continue
        accounts.add_user(engine, name, roles, display)
        print(f"demo account {name} ({', '.join(map(str, roles))}): {_link(config, engine, name)}")


def _streets(config: settings.Config, args: argparse.Namespace) -> int:
    from data.sources.geodata import read_townships

    for t in sorted(read_townships(settings.datasets_path(config)), key=lambda t: (t.district, t.name)):
        print(f"{t.district}\t{t.name}")
    return 0


def _exit_on_signals() -> threading.Event:
    """SIGINT and SIGTERM raise SystemExit in the main thread, having set the event returned.
    Why the event too: an exception a signal handler raises while a ``__del__`` or a weakref
    callback runs is printed as "Exception ignored" and dropped, and the command ran on
    (a simulator outlived its SIGTERM in CI); the loops that run long watch the event."""
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()
        raise SystemExit(0)

    for sig in (signal.SIGINT, signal.SIGTERM):  # explicit: a backgrounded job ignores SIGINT otherwise
        signal.signal(sig, stop)
    return stopping


def _serve(config: settings.Config, args: argparse.Namespace) -> int:
    from dashboard.app import create_app, warm
    from data import retention
    from data.pipeline import notify, streams
    from data.pipeline.ingest import run_workers
    from data.pipeline.redis_server import redis_url

    stop = _exit_on_signals()
    with redis_url(config) as url:
        app = create_app(config, url)
        app.logger.setLevel(logging.getLogger().level)  # Dash sets its own logger to INFO
        _how_to_sign_in(config, app.server.config["OPSMAP_ENGINE"])
        threading.Thread(target=retention.keep, name="opsmap-retention", daemon=True,
                         args=(app.server.config["OPSMAP_ENGINE"], streams.connect(url), config, stop)).start()
        warm(app, config)
        workers = []
        if config.ingest_in_serve:
            workers = run_workers(app.server.config["OPSMAP_ENGINE"], url, config, stop)
            notify.run_sender(app.server.config["OPSMAP_ENGINE"], config, stop)
        try:
            _http(app, config, stop)
        finally:
            stop.set()
            for worker in workers:  # a batch's Redis side done before the embedded Redis stops (≤ 1 s
                worker.join(timeout=10)  # of blocking read), not taken for an outage and replayed
    return 0


def _http(app: Any, config: settings.Config, stop: threading.Event) -> None:
    """Serve HTTP (werkzeug's threaded server) until ``stop`` is set. Why not Dash's ``app.run``:
    it ends only by the signal handler's SystemExit, which Python drops when the signal lands in
    a ``__del__``; the server then went on serving while its ingest had stopped. Debug mode
    turns on Dash's dev tools, not werkzeug's interactive debugger (code run for whoever reaches
    the port)."""
    from werkzeug.serving import make_server

    app.enable_dev_tools(debug=config.debug, dev_tools_disable_version_check=True)  # as app.run did
    server = make_server(config.host, config.http_port, app.server, threaded=True)

    def shut() -> None:
        stop.wait()
        server.shutdown()  # serve_forever returns within its poll interval

    threading.Thread(target=shut, name="opsmap-http-stop", daemon=True).start()
    log.info("serving on http://%s:%s", config.host, config.http_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _how_to_sign_in(config: settings.Config, engine: Any) -> None:
    """On the terminal (never in a log): a first start makes an admin and prints its one-time link."""
    from data.access import accounts
    from data.access.policy import Role
    from data.read import queries
    from data.store import session_factory

    if accounts.has_accounts(engine):
        print(f"sign in at {config.base_url}/signin (a new one-time link: opsmap user link NAME)", flush=True)
        return
    with session_factory(engine)() as session:
        streets = [s.id for s in queries.streets(session)]
    accounts.add_user(engine, "admin", [Role("admin"), *(Role("commander", s) for s in streets)], "管理员")
    link = _link(config, engine, "admin")
    print(f"first start: an account 'admin' was made (admin, commander of {', '.join(streets) or 'no street yet'}).\n"
          f"sign in once with this link (valid 24 h), then set a password:\n  {link}", flush=True)


def _access(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap user|token|screen …``: accounts, producer tokens and screens (each change audited)."""
    from data.access import accounts, audit
    from data.store import make_engine, migrate

    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    try:
        target, printed = {"user": _user, "token": _token, "screen": _screen}[args.command](config, engine, args)
    except accounts.AccessError as exc:
        print(f"opsmap {args.command} {args.verb}: {exc}", file=sys.stderr)
        return 2
    if target is not None:  # a change, not a listing
        audit.record(engine, f"cli:{getpass.getuser()}", f"{args.command}.{args.verb}", target)
    print(printed)
    return 0


def _link(config: settings.Config, engine: Any, name: str) -> str:
    from data.access import accounts

    return f"{config.base_url}/signin/link/{accounts.issue_link(engine, name)}"


def _user(config: settings.Config, engine: Any, args: argparse.Namespace) -> tuple[str | None, str]:
    """What ``opsmap user <verb>`` changed (None for a listing) and what it prints."""
    from data.access import accounts
    from data.store import session_factory

    if args.verb == "list":
        return None, "\n".join(
            "\t".join([a.name, a.display_name, " ".join(f"{g.role}:{g.committee_id or g.street_id or '*'}"
                                                        for g in a.grants),
                       "disabled" if a.disabled else "enabled", "sso" if a.oidc_subject else "local"])
            for a in accounts.accounts(engine)) or "no accounts"
    if args.verb == "add":
        with session_factory(engine)() as session:
            roles = accounts.parse_roles(session, args.role, _list(config.street), _list(args.committee))
        accounts.add_user(engine, args.name, roles, args.display)
        return args.name, (f"added {args.name} ({', '.join(map(str, roles))}); one-time sign-in link:\n  "
                           f"{_link(config, engine, args.name)}")
    if args.verb == "passwd":
        if sys.stdin.isatty():
            first, again = getpass.getpass("new password: "), getpass.getpass("again: ")
            if first != again:
                raise accounts.AccessError("password: the two entries differ")
        else:
            first = sys.stdin.readline().rstrip("\n")
        accounts.set_password(engine, args.name, first)
        return args.name, f"password of {args.name} set"
    if args.verb == "link":
        return args.name, f"one-time sign-in link for {args.name} (valid 24 h):\n  {_link(config, engine, args.name)}"
    accounts.set_disabled(engine, args.name, args.verb == "disable")
    return args.name, f"{args.verb}d {args.name}" + ("; its sessions ended" if args.verb == "disable" else "")


def _token(config: settings.Config, engine: Any, args: argparse.Namespace) -> tuple[str | None, str]:
    from data.access import devices

    if args.verb == "list":
        return None, "\n".join(f"{t.name}\t{t.streams}\t{t.street_id or '*'}\t{'revoked' if t.revoked_at else 'valid'}"
                               for t in devices.tokens(engine)) or "no tokens"
    if args.verb == "create":
        token = devices.create_token(engine, args.name, _list(args.streams), args.setting_street)
        return args.name, f"token {args.name} (shown once: put it in the producer's configuration):\n  {token}"
    devices.revoke_token(engine, args.name)
    return args.name, f"revoked token {args.name}"


def _screen(config: settings.Config, engine: Any, args: argparse.Namespace) -> tuple[str | None, str]:
    from data.access import devices

    if args.verb == "list":
        return None, "\n".join(
            f"{d.id}\t{d.name}\t{d.street_id}\t{'revoked' if d.revoked_at else 'paired' if d.paired_at else 'waiting'}"
            for d in devices.screens(engine)) or "no screens"
    if args.verb == "add":
        device, code = devices.add_screen(engine, args.name, config.street)
        return f"screen:{device.id}", (f"screen {device.id} ({device.name}, {device.street_id}): open this link "
                                       f"once on the screen (valid 24 h):\n  {config.base_url}/screen/pair/{code}")
    devices.revoke_screen(engine, args.id)
    return f"screen:{args.id}", f"revoked screen {args.id}; its cookie no longer works"


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _audit(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap audit``: the audit trail, newest last."""
    import datetime as dt

    from data.access import audit
    from data.store import make_engine, migrate

    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    try:
        since = dt.datetime.fromisoformat(args.since).astimezone(dt.UTC) if args.since else None
    except ValueError as exc:
        print(f"opsmap audit: --since: {exc}", file=sys.stderr)
        return 2
    for entry in reversed(audit.entries(engine, since, args.user, args.action, args.limit)):
        print(audit.line(entry))
    return 0


def _purge(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap purge --before DATE``: the person-level retention, by hand."""
    import datetime as dt

    from data import retention
    from data.access import audit
    from data.domain.rules import SHANGHAI
    from data.pipeline import streams
    from data.pipeline.redis_server import redis_url
    from data.store import make_engine, migrate

    try:
        before = dt.datetime.combine(dt.date.fromisoformat(args.before), dt.time(), SHANGHAI)
    except ValueError as exc:
        print(f"opsmap purge: --before: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    done = retention.anonymise(engine, before)
    with redis_url(config) as url:
        done["feed"] = retention.anonymise_feed(streams.connect(url), before)
    audit.record(engine, f"cli:{getpass.getuser()}", "purge", f"before:{args.before}", **done)
    print(f"before {args.before} (Shanghai): " + ", ".join(f"{k} {v}" for k, v in done.items()))
    return 0


def _ingest(config: settings.Config, args: argparse.Namespace) -> int:
    from data.pipeline import notify, streams
    from data.pipeline.ingest import Worker
    from data.pipeline.redis_server import redis_url
    from data.store import make_engine, migrate

    stop = _exit_on_signals()
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    notify.run_sender(engine, config, stop)
    with redis_url(config) as url:
        worker = Worker(engine, streams.connect(url), config, consumer=args.consumer)
        try:
            worker.run(stop)
        finally:
            stop.set()
    return 0


def _dead(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap dead list|replay``: what was parked and why; feed it back once the cause is fixed."""
    import datetime as dt

    from data.domain import rules
    from data.pipeline import dead, streams
    from data.pipeline.redis_server import redis_url

    with redis_url(config) as url:
        client = streams.connect(url)
        if args.verb == "replay":
            sent, skipped = dead.replay(client, args.reason, args.stream)
            print(f"sent {sent} parked events back" + (f"; {skipped} unreadable ones stay" if skipped else ""))
            return 0
        for letter in dead.letters(client, args.reason, args.stream):
            parked = dt.datetime.fromtimestamp(letter.parked_at, rules.SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{letter.id}\t{parked}\t{letter.stream}\t{letter.reason}\t{letter.event}")
    return 0


def _notify(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap notify add|list|remove|resend``: where each committee's dispatches, 催办 and 督办 go."""
    import datetime as dt

    from sqlalchemy import select

    from data.models import Committee, Notification, NotifyTarget
    from data.pipeline import notify
    from data.store import make_engine, migrate, session_factory

    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    if args.verb == "resend":
        print(f"{notify.resend(engine)} undelivered messages are due again now")
        return 0
    with session_factory(engine, write=True)() as session, session.begin():
        if args.verb == "add":
            if session.get(Committee, args.committee) is None:
                print(f"opsmap notify add: no committee {args.committee!r}", file=sys.stderr)
                return 2
            kind, url = ("wecom", args.wecom) if args.wecom else ("json", args.json)
            if not url.startswith(("https://", "http://")):
                print(f"opsmap notify add: the URL must start with https:// (got {url[:40]!r})", file=sys.stderr)
                return 2
            target = NotifyTarget(committee_id=args.committee, kind=kind, url=url, secret=args.secret,
                                  created_at=dt.datetime.now(dt.UTC))
            session.add(target)
            session.flush()
            print(f"target {target.id}: {kind} for committee {args.committee}")
        elif args.verb == "remove":
            target = session.get(NotifyTarget, args.id)
            if target is None:
                print(f"opsmap notify remove: no target {args.id}", file=sys.stderr)
                return 2
            session.delete(target)
        else:
            for t in session.scalars(select(NotifyTarget).order_by(NotifyTarget.committee_id, NotifyTarget.id)):
                print(f"{t.id}\t{t.committee_id}\t{t.kind}\t{t.url.split('?')[0]}")  # the key stays out of sight
            for n in session.scalars(select(Notification).where(Notification.delivered_at.is_(None))
                                     .order_by(Notification.created_at)):
                print(f"undelivered\t{n.key}\t{n.kind}\t{n.order_id}\ttries {n.attempts}\t{n.last_error or ''}")
    return 0


def _roster(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap roster import FILE``: a week's gate duty from a workbook, as duty events."""
    import datetime as dt
    import json
    from pathlib import Path

    from data.domain.privacy import Hasher
    from data.pipeline import streams
    from data.pipeline.redis_server import redis_url
    from data.sources import roster

    path = Path(args.file)
    try:
        docs = roster.events(path, f"排班表 {path.name}", dt.datetime.now(dt.UTC), Hasher.from_config(config))
    except (ValueError, OSError) as exc:
        print(f"opsmap roster import: {exc}", file=sys.stderr)
        return 2
    with redis_url(config) as url:
        streams.append(streams.connect(url), "duty", [json.dumps(d, ensure_ascii=False) for d in docs])
    print(f"sent {len(docs)} shifts of {path.name}")
    return 0


def _simulate(config: settings.Config, args: argparse.Namespace) -> int:
    from data.pipeline import streams
    from data.pipeline.redis_server import redis_url
    from data.sources.simulator import simulate
    from data.store import make_engine

    stop = _exit_on_signals()
    with redis_url(config) as url:
        sent = simulate(make_engine(config.sqlalchemy_url), streams.connect(url), config.street, args.rate,
                        args.duration, config.seed, args.malformed, stop=stop)
    print(f"sent {sent} events")
    return 0


def _replay(config: settings.Config, args: argparse.Namespace) -> int:
    import datetime as dt

    from data.pipeline import streams
    from data.pipeline.redis_server import redis_url
    from data.sources.simulator import replay_2022
    from data.store import make_engine

    _exit_on_signals()
    start, end = dt.date.fromisoformat(args.date_from), dt.date.fromisoformat(args.date_to)
    with redis_url(config) as url:
        total = 0
        engine, datasets = make_engine(config.sqlalchemy_url), settings.datasets_path(config)
        for day, n in replay_2022(engine, streams.connect(url), datasets, config.street, start, end, args.speed):
            total += n
            print(f"{day}: {n} confirmed-case events")
    print(f"sent {total} events")
    return 0


def _export(config: settings.Config, args: argparse.Namespace) -> int:
    """``opsmap briefing`` (PDF) and ``opsmap tables`` (workbook), frozen at the cut-off."""
    import datetime as dt
    import time
    from pathlib import Path

    from dashboard import briefing
    from data.read.report import cutoff_at
    from data.store import make_engine, migrate

    try:
        day, cut = dt.date.fromisoformat(args.date), dt.time.fromisoformat(args.cutoff)
    except ValueError as exc:
        print(f"opsmap {args.command}: --date/--cutoff: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    try:
        street = briefing.street_id_of(engine, config)
    except LookupError as exc:
        print(f"opsmap {args.command}: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    report = briefing.make(engine, config, street, cutoff_at(day, cut))
    body = briefing.pdf(engine, config, report) if args.command == "briefing" else briefing.workbook(report)
    out = briefing.write(Path(args.out), body)
    print(f"wrote {out} ({len(body):,} bytes, {report.street['name']} {day} as of {cut:%H:%M}, "
          f"{time.perf_counter() - start:.2f} s)")
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    settings.add_arguments(common)
    root = argparse.ArgumentParser(prog="opsmap", description="Real-time operations map of a subdistrict.")
    sub = root.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", parents=[common], help="load a street's geography into the database")
    load.add_argument("--if-empty", action="store_true", help="load only when no street is loaded yet")
    load.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    load.add_argument("--demo-users", action="store_true",
                      help="also make demo accounts (commander, two officers, viewer) and print their one-time links")
    load.set_defaults(run=_load)
    sub.add_parser("streets", parents=[common], help="list the 214 townships that can be loaded"
                   ).set_defaults(run=_streets)
    sub.add_parser("serve", parents=[common], help="serve the web app (embedded Redis unless REDIS_URL)"
                   ).set_defaults(run=_serve)
    ingest = sub.add_parser("ingest", parents=[common], help="consume the event streams into the database")
    ingest.add_argument("--consumer", help="consumer name in the opsmap-ingest group (default host-pid)")
    ingest.set_defaults(run=_ingest)
    sim = sub.add_parser("simulate", parents=[common], help="send realistic live traffic for the loaded street")
    sim.add_argument("--rate", type=float, default=20.0, help="events per second, daily average (default 20)")
    sim.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    sim.add_argument("--malformed", type=float, default=0.01, help="share of malformed events (default 0.01)")
    sim.set_defaults(run=_simulate)
    rep = sub.add_parser("replay-2022", parents=[common],
                         help="send the published 2022 case-address lists of the loaded street as case events")
    rep.add_argument("--from", dest="date_from", default="2022-03-19", help="first date (default 2022-03-19)")
    rep.add_argument("--to", dest="date_to", default="2022-05-31", help="last date (default 2022-05-31)")
    rep.add_argument("--speed", type=float, default=None,
                     help="days per day of real time (e.g. 86400 = one day per second); default: no pacing")
    rep.set_defaults(run=_replay)
    for name, default, what in (("briefing", "briefing.pdf", "the A4 morning briefing (PDF)"),
                                ("tables", "tables.xlsx", "the summary tables per committee (xlsx)")):
        export = sub.add_parser(name, parents=[common], help=f"write {what}, frozen at the cut-off")
        export.add_argument("--date", required=True, help="the briefing's date, e.g. 2022-04-10")
        export.add_argument("--cutoff", default="07:00", help="data up to this Shanghai time (default 07:00)")
        export.add_argument("--out", default=default, help=f"output file (default {default})")
        export.set_defaults(run=_export)
    dead = sub.add_parser("dead", help="dead letters: list, replay (after a fix)").add_subparsers(
        dest="verb", required=True)
    for verb, what in (("list", "list the parked events with their reasons"),
                       ("replay", "send the parked events back to their streams, each once")):
        cmd = dead.add_parser(verb, parents=[common], help=what)
        cmd.add_argument("--reason", help="only those whose reason contains this text")
        cmd.add_argument("--stream", choices=STREAMS, help="only those of this stream")
        cmd.set_defaults(run=_dead)
    notify = sub.add_parser("notify", help="messages to committees: add, list, remove, resend").add_subparsers(
        dest="verb", required=True)
    add = notify.add_parser("add", parents=[common], help="send a committee's dispatches, 催办 and 督办 to a webhook")
    add.add_argument("--committee", required=True, help="committee id (opsmap notify list shows the targets)")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--wecom", help="URL of a WeCom/政务微信 group robot (…/cgi-bin/webhook/send?key=…)")
    where.add_argument("--json", help="URL that receives signed JSON (X-Opsmap-Signature: sha256=HMAC)")
    add.add_argument("--secret", help="the HMAC key of a --json target")
    notify.add_parser("list", parents=[common], help="list the targets and the undelivered messages")
    notify.add_parser("remove", parents=[common], help="remove a target").add_argument("id", type=int)
    notify.add_parser("resend", parents=[common], help="try every undelivered message again now")
    for cmd in notify.choices.values():
        cmd.set_defaults(run=_notify)
    roster = sub.add_parser("roster", help="gate duty rosters").add_subparsers(dest="verb", required=True)
    imp = roster.add_parser("import", parents=[common],
                            help="send a week's roster: a workbook with columns 出入口编号, 开始, 结束, 值守人员")
    imp.add_argument("file")
    imp.set_defaults(run=_roster)
    _access_parsers(sub, common)
    return root


def _access_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``opsmap user``, ``token``, ``screen`` and ``audit``."""
    user = sub.add_parser("user", help="people: add, list, passwd, link, disable, enable").add_subparsers(
        dest="verb", required=True)
    add = user.add_parser("add", parents=[common], help="add an account and print its one-time sign-in link "
                          "(--street: the street(s) of a commander or viewer, comma-separated)")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="admin | commander | officer | viewer")
    add.add_argument("--committee", help="committee id(s) of an officer, comma-separated")
    add.add_argument("--display", help="the name shown and recorded as the actor (default: NAME)")
    user.add_parser("list", parents=[common], help="list the accounts")
    for verb, what in (("passwd", "set a password (asked twice on a terminal, else one line on stdin)"),
                       ("link", "print a new one-time sign-in link"), ("disable", "disable; ends its sessions"),
                       ("enable", "enable again")):
        user.add_parser(verb, parents=[common], help=what).add_argument("name")
    token = sub.add_parser("token", help="producer tokens: create, list, revoke").add_subparsers(
        dest="verb", required=True)
    create = token.add_parser("create", parents=[common], help="create a token and print it once "
                              "(--street: only events placed in that street; default any)")
    create.add_argument("--name", required=True)
    create.add_argument("--streams", required=True, help="streams it may post to, comma-separated")
    token.add_parser("list", parents=[common], help="list the tokens")
    token.add_parser("revoke", parents=[common], help="revoke a token").add_argument("name")
    screen = sub.add_parser("screen", help="kiosk screens: add, list, revoke").add_subparsers(
        dest="verb", required=True)
    pair = screen.add_parser("add", parents=[common], help="add a screen of --street and print its one-time "
                             "pairing URL")
    pair.add_argument("--name", default="大屏")
    screen.add_parser("list", parents=[common], help="list the screens")
    screen.add_parser("revoke", parents=[common], help="revoke a screen").add_argument("id", type=int)
    for group in (user, token, screen):
        for parser_ in group.choices.values():
            parser_.set_defaults(run=_access)
    purge = sub.add_parser("purge", parents=[common],
                           help="anonymise check-ins, registrations, alerts and the feed, delete health check-ins, "
                                "before a date")
    purge.add_argument("--before", required=True, help="a date (Shanghai), e.g. 2022-05-01")
    purge.set_defaults(run=_purge)
    audit = sub.add_parser("audit", parents=[common], help="print the audit trail")
    audit.add_argument("--since", help="from this moment (ISO 8601, e.g. 2026-12-01)")
    audit.add_argument("--user", help="one actor (name, or kind:name)")
    audit.add_argument("--action", help="actions starting with this (signin, action., export.)")
    audit.add_argument("--limit", type=int, default=1000)
    audit.set_defaults(run=_audit)


def private_files(config: settings.Config) -> None:
    """Everything opsmap writes is its own: files 600, directories 700 (the SQLite file, the
    embedded Redis's append-only file, keys), the var directory's existing files included.
    A file another process removes meanwhile (SQLite's journal, as gunicorn's workers start
    together) is skipped; a symbolic link is not followed out of the directory."""
    os.umask(0o077)
    var = config.var_path
    if var.exists():
        var.chmod(0o700)
        for path in var.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if not path.is_symlink():
                    path.chmod(0o700 if path.is_dir() else 0o600)


def _cannot(config: settings.Config, exc: BaseException) -> tuple[str, str] | None:
    """A failure to start as (cause, fix), one line each; None for what is not a start-up problem."""
    import redis
    from sqlalchemy import exc as sa_exc

    from data.pipeline.redis_server import EmbeddedRedisError, shown

    if isinstance(exc, PermissionError | OSError) and getattr(exc, "filename", None) and exc.errno in (1, 13, 30):
        return (f"{exc.filename} is not writable ({exc.strerror})",
                "make it writable by this user, or set OPSMAP_VAR_DIR to a directory that is")
    if isinstance(exc, EmbeddedRedisError):
        return str(exc), "free disk space or fix the var directory, or set REDIS_URL to a running Redis"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.AuthenticationError):
        return (f"Redis at {shown(config.redis_url)} does not answer ({str(exc)[:160]})",
                "start that Redis or correct REDIS_URL (unset, opsmap starts its own)")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        where = "the SQLite file" if not config.database_url else "the database at DATABASE_URL"
        first = str(exc.orig or exc).strip().splitlines()[0][:160]
        return f"{where} cannot be used ({first})", "start the database or correct DATABASE_URL"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = settings.load(args)
    try:
        return _main(config, args)
    except Exception as exc:
        said = _cannot(config, exc)
        if said is None:
            raise
        print(f"opsmap {args.command}: {said[0]}\n  fix: {said[1]}", file=sys.stderr)
        return 2


def _main(config: settings.Config, args: argparse.Namespace) -> int:
    private_files(config)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "weasyprint", "fontTools"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    # werkzeug's request log sets itself to INFO unless a level is set: it follows OPSMAP_LOG_LEVEL
    logging.getLogger("werkzeug").setLevel(logging.getLogger().level)
    return int(args.run(config, args))


def __getattr__(name: str) -> Any:
    """``app.server`` for gunicorn, built on first access from the environment's settings."""
    if name == "server":
        from dashboard.app import create_app, warm

        config = settings.load()
        private_files(config)
        app = create_app(config, config.redis_url or None)
        warm(app, config)
        return app.server
    raise AttributeError(name)


if __name__ == "__main__":  # `python app.py [--flags]` serves; `python app.py load …` runs that command
    argv = sys.argv[1:]
    sys.exit(main(argv if argv and not argv[0].startswith("-") else ["serve", *argv]))
