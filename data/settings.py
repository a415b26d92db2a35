"""One table of settings: every knob is declared once with its default and help.

Why: the README table, the command-line flags and the environment variables all come
from this list, so a setting cannot exist without being documented (a test checks the
README) and precedence is the same everywhere: command line > environment > default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.domain.rules import parse_sla

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value
    return parse


def _between(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if not low <= number <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}, got {value!r}")
        return number
    return parse


def _checked(kind: str) -> Callable[[str], str]:
    """A value the deadlines module parses (checked at start-up, so a typo names its setting)."""
    def parse(value: str) -> str:
        from data.domain import deadlines
        from data.pipeline.events import WORK_ORDER_CATEGORIES

        {"sla": parse_sla, "deadlines": lambda v: deadlines.parse_rules(v, WORK_ORDER_CATEGORIES),
         "span": deadlines.parse_span, "office": deadlines.OfficeHours.parse}[kind](value)
        return value
    return parse


@dataclass(frozen=True)
class Setting:
    """A setting: its environment name is the key; the CLI flag is derived from it."""

    env: str
    default: str
    help: str
    parse: Callable[[str], Any] = str

    @property
    def flag(self) -> str:
        """``OPSMAP_HTTP_PORT`` → ``--http-port``; ``DATABASE_URL`` → ``--database-url``."""
        return "--" + self.env.removeprefix("OPSMAP_").lower().replace("_", "-")

    @property
    def attr(self) -> str:
        return self.env.removeprefix("OPSMAP_").lower()


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "",
            "SQLAlchemy URL of the database. Empty: a SQLite file `opsmap.db` in the var "
            "directory. `postgresql://user@host/db` selects PostgreSQL (driver psycopg 3)."),
    Setting("REDIS_URL", "",
            "URL of a Redis server (`redis://host:6379/0`). Empty: opsmap starts its own "
            "redis-server (append-only persistence, Unix socket in the var directory) and "
            "stops it on exit."),
    Setting("OPSMAP_VAR_DIR", "var",
            "Directory for the SQLite file, the embedded Redis data and generated keys; "
            "relative paths are taken from the project root."),
    Setting("OPSMAP_DATASETS_DIR", "data/datasets",
            "Directory of the shipped public datasets `opsmap load` reads (see its SOURCE.md); "
            "relative paths are taken from the project root."),
    Setting("OPSMAP_STREET", "南京东路",
            "Township (街道/镇) that `opsmap load` loads when `--street` is not given, "
            "and that `make run` loads into an empty database."),
    Setting("OPSMAP_SEED", "20220410",
            "Seed for the synthetic parts of the geography (committees, gates, guards, "
            "shops, sites, households); the same seed gives the same data.", int),
    Setting("OPSMAP_HMAC_KEY", "",
            "Secret key for the keyed hashes of ID and phone numbers (at least 16 characters). "
            "Empty: generated once into `hmac.key` in the var directory. Processes sharing a "
            "database must share it."),
    Setting("OPSMAP_PUBLIC_URL", "",
            "Address people reach the app at (`https://opsmap.example.gov.cn`), for the sign-in and pairing "
            "links the commands print. Empty: `http://OPSMAP_HOST:OPSMAP_HTTP_PORT`."),
    Setting("OPSMAP_SECRET_KEY", "",
            "Key that signs the short-lived single-sign-on state cookie (at least 16 characters). Empty: generated "
            "once into `secret.key` in the var directory. App processes behind one address must share it."),
    Setting("OPSMAP_SESSION_HOURS", "12", "Hours a person's sign-in lasts (then sign in again).", float),
    Setting("OPSMAP_SCREEN_DAYS", "365", "Days a paired screen's device cookie lasts, unless revoked sooner.", float),
    Setting("OPSMAP_COOKIE_SECURE", "auto",
            "Send the session cookies only over HTTPS: `true`, `false`, or `auto` (true unless the app is "
            "reached on a loopback address, as `make run` is).", _choice("auto", "true", "false")),
    Setting("OPSMAP_SIGNIN_LIMIT_ACCOUNT", "5 per 15 minutes",
            "Failed sign-ins allowed per account name (flask-limiter syntax); then it is locked for the rest "
            "of the period. Counters live in the same Redis."),
    Setting("OPSMAP_SIGNIN_LIMIT_ADDRESS", "20 per 15 minutes", "Failed sign-ins allowed per client address."),
    Setting("OPSMAP_TOKEN_RATE_LIMIT", "600 per second", "Intake requests allowed per producer token."),
    Setting("OPSMAP_OIDC_ISSUER", "",
            "Issuer URL of an OpenID Connect provider; with the client id and secret it adds "
            "\"single sign-on\" to the sign-in page. Empty: local accounts only."),
    Setting("OPSMAP_OIDC_CLIENT_ID", "", "Client id of opsmap at the OpenID Connect provider."),
    Setting("OPSMAP_OIDC_CLIENT_SECRET", "", "Client secret of opsmap at the OpenID Connect provider."),
    Setting("OPSMAP_OIDC_ROLES_CLAIM", "opsmap_roles",
            "Claim (ID token or userinfo) whose values become roles: `admin`, `commander:<street>`, "
            "`viewer:<street>`, `officer:<committee id>`; a person with none is refused."),
    Setting("OPSMAP_AUDIT_RETENTION_DAYS", "365",
            "Days the audit trail is kept; older lines are purged once a day by `opsmap serve`.", float),
    Setting("OPSMAP_HMAC_KEY_FILE", "",
            "File holding the HMAC key (instead of OPSMAP_HMAC_KEY, so the key never shows in a process list "
            "or an environment dump)."),
    Setting("OPSMAP_MAX_FUTURE_MINUTES", "10",
            "An event stamped more than this many minutes ahead of now is refused, with the reason "
            "(past times are always accepted: history can be replayed).", float),
    Setting("OPSMAP_PII_RETENTION_DAYS", "28",
            "Person-level rows (gate check-ins, health check-ins, returnee registrations) older than this are "
            "anonymised once a day (counts kept): two 14-day observation periods, the longest a contact "
            "trace looks back.", float),
    Setting("OPSMAP_ALLOWED_HOSTS", "",
            "Host names the app answers to (comma-separated), against DNS rebinding. Empty: localhost, "
            "127.0.0.1, ::1, OPSMAP_HOST and the host of OPSMAP_PUBLIC_URL."),
    Setting("OPSMAP_STREAMS_PER_PROCESS", "24",
            "Change streams (server-sent events) one app process holds open at most; more get 503 with "
            "Retry-After. Keep it below the process's threads (gunicorn.conf.py: 32).", int),
    Setting("OPSMAP_STREAMS_PER_SESSION", "4", "Change streams one session holds open at most.", int),
    Setting("OPSMAP_STREAM_KEEPALIVE_S", "15",
            "Seconds (1-15) a change stream waits for a notice before it sends a keep-alive: a page that went "
            "away gives its stream back at the next one. Shorter behind a proxy that closes idle connections "
            "sooner.", _between(1, 15)),  # 15: data.pipeline.streams.LONGEST_BLOCK_S, its socket's limit
    Setting("OPSMAP_INGEST_BATCH", "500", "Events an ingest worker reads and commits per batch while it keeps up.",
            int),
    Setting("OPSMAP_INGEST_BATCH_MAX", "4000",
            "Events per batch a worker grows to while it catches up on a backlog: each full batch doubles the "
            "next while that one would take under 0.1 s and a tenth of OPSMAP_INGEST_CLAIM_IDLE_MS; the first "
            "short one returns it to OPSMAP_INGEST_BATCH.", int),
    Setting("OPSMAP_INGEST_CLAIM_IDLE_MS", "30000",
            "A pending event idle this long (its worker presumably dead) is claimed by a live worker.", int),
    Setting("OPSMAP_INGEST_MAX_TRIES", "5",
            "Failures of its own after which an event is parked in `opsmap:dead` (an outage of the database "
            "or Redis counts for none).", int),
    Setting("OPSMAP_INGEST_BACKOFF_MAX_S", "30",
            "Longest wait between tries while the database or Redis is out of service (the waits double "
            "from 0.2 s); /healthz and the staleness indicator say the worker waits, and why.", float),
    Setting("OPSMAP_INGEST_IN_SERVE", "true",
            "`opsmap serve` runs an ingest worker in the background.", _bool),
    Setting("OPSMAP_FEED_LENGTH", "200", "Entries kept per stream in the live feed.", int),
    Setting("OPSMAP_HEALTH_CHECKIN_HOUR", "10",
            "Hour (Shanghai time) by which a person under home observation must have checked in; "
            "later, a missed check-in alert is raised.", int),
    Setting("OPSMAP_SLA_URGENT", "dispatch=5m,arrive=30m",
            "Targets of urgent work orders for dispatch and arrival, counted from creation (the deadline to "
            "resolve goes by the order's kind: OPSMAP_ORDER_DEADLINES).", _checked("sla")),
    Setting("OPSMAP_SLA_NORMAL", "dispatch=30m", "Targets of normal work orders, counted from creation.",
            _checked("sla")),
    Setting("OPSMAP_ORDER_DEADLINES",
            "quarantine_violation=2h,medical_need=2h,supplies=1wd,gate=1wd,shop=3wd,sanitation=3wd,enquiry=3wd,"
            "complaint=5wd,other=5wd",
            "12345 deadline to resolve (办结时限) of each order kind: `m`, `h`, `d` of clock time from creation, or "
            "`wd` working days of China's official calendar (holidays and swapped working weekends, 调休), the day "
            "of receipt not counted, due at the end of office hours. At the deadline the owner gets a 催办.",
            _checked("deadlines")),
    Setting("OPSMAP_SUPERVISE_AFTER", "1wd",
            "An order still open this long after its 催办 goes up to 督办 (the street's supervision).",
            _checked("span")),
    Setting("OPSMAP_OFFICE_HOURS", "09:00-17:00",
            "Office hours of the street office (Shanghai time): a working-day deadline falls due at their end.",
            _checked("office")),
    Setting("OPSMAP_SWEEP_S", "30",
            "How often an ingest worker applies the rules of the clock: 催办 and 督办 at the deadlines, silent "
            "gates, missed health check-ins.", float),
    Setting("OPSMAP_NOTIFY_BACKOFF_MAX_S", "300",
            "Longest wait between two tries of a message a committee's webhook did not take (the waits double "
            "from 1 s); it is tried until delivered.", float),
    Setting("OPSMAP_GATE_SILENT_MINUTES", "60",
            "An open gate with no scan for this many minutes within OPSMAP_GATE_HOURS greys out on the map and "
            "raises one alert (scanner down, or nobody there); its next scan brings it back.", float),
    Setting("OPSMAP_GATE_HOURS", "07:00-21:00",
            "Hours (Shanghai time) in which an open gate is expected to see scans.", _checked("office")),
    Setting("OPSMAP_GATE_STALE_HOURS", "24",
            "A gate whose status was last confirmed longer ago than this is marked on the map.", float),
    Setting("OPSMAP_ALERT_WINDOW_MINUTES", "60", "Alerts of this many recent minutes show on the map.", float),
    Setting("OPSMAP_CASE_WINDOW_DAYS", "14", "Case reports of this many recent days show on the map.", float),
    Setting("OPSMAP_MAP_REFRESH_S", "60",
            "Layers that change with time alone (overdue orders, stale gates, the alert window, missed "
            "check-ins) lag the clock by at most this many seconds: pages re-ask them twice per period and "
            "receive only changed features. 0: they change only on events.", float),
    Setting("OPSMAP_STALE_AFTER_S", "300",
            "The staleness indicator turns red when no event has arrived for this many seconds …", float),
    Setting("OPSMAP_STALE_LAG", "1000", "… or when more events than this wait to be ingested.", int),
    Setting("OPSMAP_SCREEN_BANNER_S", "10",
            "On /screen, the longest an urgent banner stays (a group of alerts: half a second more per alert "
            "beyond the first, up to this).", float),
    Setting("OPSMAP_SCREEN_BANNER_MIN_S", "6", "On /screen, the shortest an urgent banner stays (to be read).",
            float),
    Setting("OPSMAP_SCREEN_OVERVIEW_S", "20",
            "On /screen, the overview (the street, its numbers, the feed) stays at least this long between two "
            "banners; alerts arriving meanwhile are shown together in the next one.", float),
    Setting("OPSMAP_SCREEN_ROTATE_S", "0",
            "On /screen, seconds between moves of focus from one committee to the next; 0 keeps the whole street.",
            float),
    Setting("OPSMAP_HOST", "127.0.0.1", "Address the web app listens on."),
    Setting("OPSMAP_HTTP_PORT", "8050", "Port the web app listens on.", int),
    Setting("OPSMAP_TILE_URL", "",
            "Raster tile URL template (`https://…/{z}/{x}/{y}.png`) drawn under the map. "
            "Empty: the map uses only its own vector basemap from shipped data."),
    Setting("OPSMAP_TILE_CRS", "wgs84",
            "Coordinate system of the tiles at OPSMAP_TILE_URL: `wgs84` (OSM, 天地图) or `gcj02` "
            "(AutoNavi/Gaode, Tencent: every feature is then shifted for display; stored data stays WGS-84).",
            _choice("wgs84", "gcj02")),
    Setting("OPSMAP_LANGUAGE", "zh", "UI language: `zh` (Chinese) or `en` (English).", _choice("zh", "en")),
    Setting("OPSMAP_DEBUG", "false", "Run Dash in debug mode (hot reload, dev tools; no interactive debugger).", _bool),
    Setting("OPSMAP_LOG_LEVEL", "INFO", "Python logging level."),
)


@dataclass(frozen=True)
class Config:
    """Resolved settings, read-only; ``config.database_url`` etc."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def var_path(self) -> Path:
        path = Path(self.values["var_dir"])
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def base_url(self) -> str:
        """Where people reach the app: for the links commands print and messages carry."""
        return self.values["public_url"].rstrip("/") or f"http://{self.values['host']}:{self.values['http_port']}"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver named, so a plain ``postgresql://`` uses psycopg 3."""
        url: str = self.values["database_url"]
        if not url:
            return f"sqlite:///{self.var_path / 'opsmap.db'}"
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url.removeprefix(plain)
        return url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Give the parser one flag per setting; unset flags stay ``None`` so env/default apply."""
    group = parser.add_argument_group("settings (command line > environment > default)")
    for s in SETTINGS:
        group.add_argument(s.flag, dest=f"setting_{s.attr}", default=None, metavar=s.env,
                           help=f"{s.help} [env {s.env}, default {s.default!r}]")


def load(args: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Resolve every setting: command line > environment > default; bad values name the setting."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = getattr(args, f"setting_{s.attr}", None) if args is not None else None
        if raw is None:
            raw = environ.get(s.env, s.default)
        try:
            values[s.attr] = s.parse(raw)
        except ValueError as exc:
            raise SystemExit(f"setting {s.env}: {exc}") from None
    return Config(values)


def datasets_path(config: Config) -> Path:
    """The shipped datasets directory (OPSMAP_DATASETS_DIR, relative to the project root)."""
    path = Path(config.datasets_dir)
    return path if path.is_absolute() else PROJECT_ROOT / path
