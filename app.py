"""opsmap: the command-line entry point (``opsmap load | serve | ingest | briefing …``) and ``server``.

``gunicorn app:server`` serves the app on the configured engines; running this file
(``python app.py``) is ``opsmap serve``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from data import settings

log = logging.getLogger("opsmap")


def _load(config: settings.Config, args: argparse.Namespace) -> int:
    from data.geodata import DatasetError, UnknownStreet
    from data.loader import load_street
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
    return 0


def _streets(config: settings.Config, args: argparse.Namespace) -> int:
    from data.geodata import read_townships

    for t in sorted(read_townships(settings.datasets_path(config)), key=lambda t: (t.district, t.name)):
        print(f"{t.district}\t{t.name}")
    return 0


def _exit_on_signals() -> None:
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGINT, signal.SIGTERM):  # explicit: a backgrounded job ignores SIGINT otherwise
        signal.signal(sig, stop)


def _serve(config: settings.Config, args: argparse.Namespace) -> int:
    import threading

    from dashboard.app import create_app, warm
    from data.ingest import run_workers
    from data.redis_server import redis_url

    _exit_on_signals()
    stop = threading.Event()
    with redis_url(config) as url:
        app = create_app(config, url)
        app.logger.setLevel(logging.getLogger().level)  # Dash sets its own logger to INFO
        warm(app, config)
        if config.ingest_in_serve:
            run_workers(app.server.config["OPSMAP_ENGINE"], url, config, stop)
        log.info("serving on http://%s:%s", config.host, config.http_port)
        try:
            app.run(host=config.host, port=config.http_port, debug=config.debug,
                    dev_tools_disable_version_check=True, use_reloader=False)
        finally:
            stop.set()
    return 0


def _ingest(config: settings.Config, args: argparse.Namespace) -> int:
    import threading

    from data import streams
    from data.ingest import Worker
    from data.redis_server import redis_url
    from data.store import make_engine, migrate

    _exit_on_signals()
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    stop = threading.Event()
    with redis_url(config) as url:
        worker = Worker(engine, streams.connect(url), config, consumer=args.consumer)
        try:
            worker.run(stop)
        finally:
            stop.set()
    return 0


def _simulate(config: settings.Config, args: argparse.Namespace) -> int:
    from data import streams
    from data.redis_server import redis_url
    from data.simulator import simulate
    from data.store import make_engine

    _exit_on_signals()
    with redis_url(config) as url:
        sent = simulate(make_engine(config.sqlalchemy_url), streams.connect(url), config.street, args.rate,
                        args.duration, config.seed, args.malformed)
    print(f"sent {sent} events")
    return 0


def _replay(config: settings.Config, args: argparse.Namespace) -> int:
    import datetime as dt

    from data import streams
    from data.redis_server import redis_url
    from data.simulator import replay_2022
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
    from data.report import cutoff_at
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
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = settings.load(args)
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
        app = create_app(config, config.redis_url or None)
        warm(app, config)
        return app.server
    raise AttributeError(name)


if __name__ == "__main__":  # `python app.py [--flags]` serves; `python app.py load …` runs that command
    argv = sys.argv[1:]
    sys.exit(main(argv if argv and not argv[0].startswith("-") else ["serve", *argv]))
