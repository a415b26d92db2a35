"""Producers: live synthetic traffic for the loaded street, and the real 2022 case lists.

Why a simulator in the product: the command center trains and the screen is demonstrated
on realistic traffic — a daily curve of gate scans, returnees, a few fevers, somebody
under observation walking out, 12345 orders moving through their states — and the
pipeline is tested against a configurable share of malformed events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.privacy import id_check_char
from data.models import Committee, Compound, CompoundAddress, Gate, Shop, Site, Street
from data.pipeline import streams
from data.sources import geodata
from data.store import session_factory

log = logging.getLogger(__name__)
ORIGINS_OUTSIDE = ("江苏苏州", "浙江杭州", "安徽合肥", "湖北武汉", "北京朝阳", "广东深圳")
ORIGINS_INSIDE = ("上海浦东", "上海徐汇", "上海静安")
#: relative traffic by hour of day, Shanghai time (morning and evening peaks)
HOURLY = np.array([.2, .1, .1, .1, .2, .5, 1.2, 2.0, 1.8, 1.1, 1.0, 1.1, 1.3, 1.0, .9, 1.0, 1.3, 1.9, 2.0, 1.5,
                   1.2, .9, .6, .3])


def resident_id(rng: np.random.Generator, district_code: str = "310101") -> str:
    """A valid-looking (check digit correct) resident ID for a synthetic person."""
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 65)))
    first = f"{district_code}{birth:%Y%m%d}{int(rng.integers(0, 1000)):03d}"
    return first + id_check_char(first)


def stable_id(*parts: str) -> str:
    """A resident ID derived from text (the 2022 lists name addresses, not people)."""
    digest = int(hashlib.sha256("|".join(parts).encode()).hexdigest(), 16)
    return resident_id(np.random.default_rng(digest % 2**63))


@dataclass
class StreetView:
    """The loaded street as the simulator needs it."""

    gates: list[str]
    gate_compound: dict[str, str]
    compounds: list[str]
    points: dict[str, tuple[float, float]]  # compound → (lng, lat)
    committees: list[str]
    facilities: list[tuple[str, str]]  # (id, kind)
    residents: dict[str, list[str]]  # compound → resident IDs (held only in memory)


def _street(session: Session, street_id: str, rng: np.random.Generator) -> StreetView:
    comps = session.execute(select(Compound.id, Compound.households, Compound.lng, Compound.lat)
                            .where(Compound.street_id == street_id).order_by(Compound.id)).all()
    gates = session.execute(select(Gate.id, Gate.compound_id).join(Compound)
                            .where(Compound.street_id == street_id).order_by(Gate.id)).all()
    facilities = [(g, "gate") for g, _ in gates]
    facilities += [(s, "shop") for s in session.scalars(select(Shop.id).where(Shop.street_id == street_id))]
    facilities += [(s, "site") for s in session.scalars(select(Site.id).where(Site.street_id == street_id))]
    return StreetView(gates=[g for g, _ in gates], gate_compound=dict(gates), compounds=[c for c, *_ in comps],
                      points={c: (lng, lat) for c, _, lng, lat in comps},
                   committees=list(session.scalars(select(Committee.id).where(Committee.street_id == street_id))),
                   facilities=facilities,
                   residents={c: [resident_id(rng) for _ in range(min(max(h // 10, 2), 40))] for c, h, *_ in comps})


@dataclass
class _Order:
    order_id: str
    steps: list[dict]
    due: float


@dataclass
class Simulator:
    """Generates a realistic mix of events for one street; ``events()`` yields (stream, json)."""

    street: StreetView
    rng: np.random.Generator
    malformed: float = 0.01
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(rules.SHANGHAI)
    seq: int = 0
    observed: dict[str, str] = field(default_factory=dict)  # person → compound
    orders: list[_Order] = field(default_factory=list)

    def _eid(self, kind: str) -> str:
        self.seq += 1
        return f"sim-{kind}-{int(time.time() * 1000)}-{self.seq}"

    def _ts(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    def event(self) -> tuple[str, str]:
        """One event: mostly gate scans, then work, orders, facilities, cases, health."""
        if self.rng.uniform() < self.malformed:
            return self._malformed()
        r = self.rng.uniform()
        if r < 0.80:
            return "checkins", json.dumps(self._checkin())
        if r < 0.84:
            return "work", json.dumps(self._work())
        if r < 0.87:
            return "facilities", json.dumps(self._facility())
        if r < 0.90:
            return self._order_step()
        if r < 0.93:
            return "cases", json.dumps(self._case())
        if r < 0.97 and self.observed:
            return "health", json.dumps(self._health())
        return "checkins", json.dumps(self._checkin())

    def _checkin(self) -> dict:
        gate = self.street.gates[int(self.rng.integers(len(self.street.gates)))]
        compound = self.street.gate_compound[gate]
        if self.observed and self.rng.uniform() < 0.01:  # the seed story: an observed person walks out
            person = list(self.observed)[int(self.rng.integers(len(self.observed)))]
            direction, category = "out", "resident"
        else:
            people = self.street.residents[compound]
            person = people[int(self.rng.integers(len(people)))]
            direction = "in" if self.rng.uniform() < 0.5 else "out"
            category = str(self.rng.choice(["resident", "returnee", "visitor", "courier", "staff"],
                                           p=[0.8, 0.04, 0.06, 0.08, 0.02]))
        event = {"event_id": self._eid("c"), "ts": self._ts(), "gate_id": gate, "direction": direction,
                 "person_id": person, "category": category,
                 "temperature": round(float(self.rng.normal(36.5, 0.25)) + (1.2 if self.rng.uniform() < 0.004 else 0),
                                      1),
                 "health_code": str(self.rng.choice(["green", "yellow", "red"], p=[0.985, 0.012, 0.003]))}
        if category == "returnee":
            event["origin"] = str(self.rng.choice(ORIGINS_OUTSIDE if self.rng.uniform() < 0.4 else ORIGINS_INSIDE))
        if self.rng.uniform() < 0.3:
            event["phone"] = f"13{int(self.rng.integers(5, 10))}{int(self.rng.integers(0, 10**8)):08d}"
        return event

    def _work(self) -> dict:
        task = str(self.rng.choice(["screening", "disinfection", "mask_reservation", "mask_distribution",
                                    "key_person_visit"]))
        target = (self.street.compounds[int(self.rng.integers(len(self.street.compounds)))]
                  if task in ("screening", "mask_distribution", "key_person_visit")
                  else self.street.committees[int(self.rng.integers(len(self.street.committees)))])
        count = {"screening": 12, "disinfection": 3, "mask_reservation": 20, "mask_distribution": 60,
                 "key_person_visit": 2}[task]
        return {"event_id": self._eid("w"), "ts": self._ts(), "task": task, "target_id": target,
                "count": int(self.rng.integers(1, count + 1)), "reporter": "居委工作人员"}

    def _facility(self) -> dict:
        fid, kind = self.street.facilities[int(self.rng.integers(len(self.street.facilities)))]
        options = {"gate": ["open", "closed", "restricted"], "shop": ["open", "closed", "unverified"],
                   "site": ["open", "closed"]}[kind]
        event = {"event_id": self._eid("f"), "ts": self._ts(), "facility_id": fid,
                 "status": str(self.rng.choice(options)), "reporter": "巡查员"}
        if kind == "gate":
            event["guards_on_duty"] = int(self.rng.integers(0, 4))
        return event

    def _case(self) -> dict:
        compound = self.street.compounds[int(self.rng.integers(len(self.street.compounds)))]
        category = str(self.rng.choice(["home_observation", "close_contact", "suspected", "confirmed", "released"],
                                       p=[0.5, 0.2, 0.1, 0.1, 0.1]))
        if category == "released" and self.observed:
            person = next(iter(self.observed))
            compound = self.observed.pop(person)
        else:
            person = self.street.residents[compound][int(self.rng.integers(len(self.street.residents[compound])))]
            if category == "home_observation":
                self.observed[person] = compound
        return {"event_id": self._eid("k"), "ts": self._ts(), "person_id": person, "category": category,
                "compound_id": compound, "source": "simulator"}

    def _health(self) -> dict:
        person = list(self.observed)[int(self.rng.integers(len(self.observed)))]
        return {"event_id": self._eid("h"), "ts": self._ts(), "person_id": person,
                "temperature": round(float(self.rng.normal(36.6, 0.3)), 1)}

    def _order_step(self) -> tuple[str, str]:
        """Advance an order whose next step is due, or open a new one with its whole lifecycle."""
        now = time.monotonic()
        due = [o for o in self.orders if o.due <= now]
        if due:
            order = due[0]
            step = order.steps.pop(0)
            if not order.steps:
                self.orders.remove(order)
            else:
                order.due = now + float(self.rng.uniform(5, 60))
            return "workorders", json.dumps({"event_id": self._eid("o"), "ts": self._ts(),
                                             "order_id": order.order_id, **step})
        order_id = f"12345-{int(time.time())}-{self.seq}"
        compound = self.street.compounds[int(self.rng.integers(len(self.street.compounds)))]
        category = str(self.rng.choice(["medical_need", "supplies", "gate", "shop", "sanitation", "other"]))
        priority = "urgent" if category == "medical_need" or self.rng.uniform() < 0.1 else "normal"
        committee = self.street.committees[int(self.rng.integers(len(self.street.committees)))]
        steps = [{"action": "dispatch", "committee_id": committee, "assignee": "网格员"}, {"action": "accept"}]
        steps += [{"action": "arrive"}] if priority == "urgent" else []
        steps += [{"action": "resolve", "note": "已处理"}, {"action": "close"}]
        if self.rng.uniform() < 0.2:
            steps = steps[: int(self.rng.integers(1, len(steps)))]  # some stay open
        self.orders.append(_Order(order_id, steps, now + float(self.rng.uniform(5, 60))))
        lng, lat = self.street.points[compound]
        return "workorders", json.dumps({"event_id": self._eid("o"), "ts": self._ts(), "order_id": order_id,
                                         "action": "create", "category": category, "priority": priority,
                                         "lng": lng, "lat": lat, "description": "市民来电诉求"}, ensure_ascii=False)

    def _malformed(self) -> tuple[str, str]:
        kind = int(self.rng.integers(4))
        if kind == 0:
            return "checkins", '{"event_id": "broken'
        if kind == 1:
            return "checkins", json.dumps({**self._checkin(), "temperature": "high"})
        if kind == 2:
            ev = self._checkin()
            return "checkins", json.dumps({**ev, "person_id": ev["person_id"][:17] + "Q"})
        return "workorders", json.dumps({"event_id": self._eid("o"), "ts": self._ts(), "order_id": "nope",
                                         "action": "resolve"})


def hourly_rate(rate: float, hour: int) -> float:
    """Events/s at ``hour`` (Shanghai) for a street whose day averages ``rate``: peaks at the
    morning and evening commute, a tenth of it at night."""
    return float(rate * HOURLY[hour] / HOURLY.mean())


def simulate(engine: Engine, client: redis.Redis, street_name: str, rate: float, duration: float,
             seed: int, malformed: float, hour: int | None = None, stop: threading.Event | None = None) -> int:
    """Send about ``hourly_rate(rate, hour)`` events/s for ``duration`` s, or until ``stop`` is set;
    ``hour`` None follows the clock in Shanghai (a demo at night is quiet, as the street is)."""
    stop = stop or threading.Event()
    with session_factory(engine)() as session:
        street = session.scalar(select(Street).where(Street.name == street_name)) or session.scalar(select(Street))
        if street is None:
            raise LookupError("no street loaded: run `opsmap load` first")
        sim = Simulator(_street(session, street.id, np.random.default_rng(seed)), np.random.default_rng(seed + 1),
                        malformed)
    streams.ensure_group(client)
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < duration and not stop.is_set():
        now_hour = dt.datetime.now(rules.SHANGHAI).hour if hour is None else hour
        target = hourly_rate(rate, now_hour) * elapsed
        batch: dict[str, list[str]] = {}
        for _ in range(max(0, math.floor(target) - sent)):
            stream, payload = sim.event()
            batch.setdefault(stream, []).append(payload)
            sent += 1
        for stream, payloads in batch.items():
            streams.append(client, stream, payloads)
        stop.wait(0.05)
    return sent


def replay_2022(engine: Engine, client: redis.Redis, datasets: Path, street_name: str,
                start: dt.date, end: dt.date, speed: float | None) -> Iterator[tuple[dt.date, int]]:
    """The published 2022 addresses of the loaded street as ``positive`` case events: the lists
    gave the addresses of confirmed and asymptomatic cases alike (阳性感染者), so calling them
    confirmed would put the street above its district's official confirmed count.

    One event per address per day, at its compound, stamped 00:00 Shanghai time of the list's
    date; event ids are derived from (street, date, address), so replaying twice adds nothing.
    ``speed`` > 0 paces one day per 86400/speed seconds; None sends as fast as possible.
    """
    with session_factory(engine)() as session:
        street = session.scalar(select(Street).where(Street.name == street_name))
        if street is None:
            raise LookupError(f"street {street_name!r} is not loaded: run `opsmap load --street {street_name}`")
        compound_of = dict(session.execute(select(CompoundAddress.address, CompoundAddress.compound_id)
                                           .join(Compound).where(Compound.street_id == street.id)).all())
        boundary = street.geom
    rows = geodata.read_case_addresses(datasets, boundary)
    rows = rows[(rows["date"] >= start) & (rows["date"] <= end)].drop_duplicates(["date", "address"])
    streams.ensure_group(client)
    for day, group in rows.sort_values(["date", "address"]).groupby("date", sort=True):
        ts = dt.datetime.combine(day, dt.time(), rules.SHANGHAI).isoformat()
        events = [json.dumps({"event_id": f"replay2022:{street.id}:{day}:{a}", "ts": ts,
                              "person_id": stable_id(street.id, str(day), a), "category": "positive",
                              "compound_id": compound_of[a], "address": a, "source": "上海发布 2022"},
                             ensure_ascii=False)
                  for a in group["address"] if a in compound_of]
        streams.append(client, "cases", events)
        yield day, len(events)
        if speed:
            time.sleep(86400 / speed)
