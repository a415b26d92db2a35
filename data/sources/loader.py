"""``opsmap load``: one street's real and synthetic geography into the database.

Why it is shaped this way: the whole street is built in memory first (reading and
validating every file), then written in one transaction — so a bad file or a failure
halfway leaves the database exactly as it was. Entity ids are deterministic, and rows
that exist are updated in place without touching the state events have given them, so
loading again is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point
from sqlalchemy import Engine, delete, inspect, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from data.models import (
    Base,
    Committee,
    Compound,
    CompoundAddress,
    Gate,
    GateStatus,
    Shop,
    ShopStatus,
    Site,
    StateChange,
    Street,
    WorkTarget,
    WorkTask,
)
from data.sources import geodata, synthetic
from data.store import migrate, record_changes, transaction

log = logging.getLogger(__name__)

#: initial states are valid from the start of the 2022 outbreak data, so replay sees them
EPOCH = dt.datetime(2022, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MASKS_PER_HOUSEHOLD = 5


@dataclass
class StreetData:
    """Everything one street load writes, as unsaved ORM objects plus their initial states."""

    street: Street
    committees: list[Committee] = field(default_factory=list)
    compounds: list[Compound] = field(default_factory=list)
    addresses: list[CompoundAddress] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    shops: list[Shop] = field(default_factory=list)
    targets: list[WorkTarget] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"committees": len(self.committees), "compounds": len(self.compounds),
                "addresses": len(self.addresses),
                "outlines": sum(c.has_outline for c in self.compounds), "gates": len(self.gates),
                "sites": len(self.sites), "shops": len(self.shops), "targets": len(self.targets)}


def build(datasets: Path, street_name: str, seed: int, progress: tqdm | None = None) -> StreetData:
    """Read and validate the datasets and build one street, touching no database."""
    def step(label: str) -> None:
        if progress is not None:
            progress.set_description(label)
            progress.update(1)

    step("townships")
    town = geodata.find_township(geodata.read_townships(datasets), street_name)
    step("case addresses")
    addresses = geodata.read_case_addresses(datasets, town.geom)
    step("estate outlines")
    real = geodata.derive_compounds(addresses, geodata.read_estates(datasets, town.geom))
    step("points of interest")
    pois = geodata.read_pois(datasets, town.geom)

    step("committees")
    sid = town.street_id
    boundary_m = synthetic.metric(town.geom)
    area_km2 = boundary_m.area / 1e6
    street = Street(id=sid, name=town.name, district=town.district, geom=town.geom,
                    area_km2=round(area_km2, 4), seed=seed, loaded_at=dt.datetime.now(dt.UTC))
    out = StreetData(street)
    anchors = np.array([synthetic.metric(c.point).coords[0] for c in real]).reshape(-1, 2)
    cells = synthetic.partition(boundary_m, anchors, synthetic.committee_count(area_km2),
                                synthetic.rng_for(seed, sid, "committees"))
    out.committees = [Committee(id=f"{sid}-J{i + 1:02d}", street_id=sid, name=f"{i + 1:02d} 居委会",
                                geom=synthetic.wgs84(cell).intersection(town.geom), synthetic=True)
                      for i, cell in enumerate(cells)]

    def committee_of(pt_m: Point) -> str:
        """The committee whose area holds the point (nearest area for points on an edge)."""
        for com, cell in zip(out.committees, cells, strict=True):
            if cell.contains(pt_m):
                return com.id
        return out.committees[int(np.argmin([cell.distance(pt_m) for cell in cells]))].id

    step("compounds and gates")
    plots = synthetic.plots(real, boundary_m)
    rng = synthetic.rng_for(seed, sid, "compounds")
    for i, (rc, plot) in enumerate(zip(real, plots, strict=True)):
        cid = f"{sid}-C{i + 1:03d}"
        households = synthetic.households(rc, plot, rng)
        comp = Compound(id=cid, street_id=sid, committee_id=committee_of(synthetic.metric(rc.point)),
                        name=rc.name, address=rc.key, road=rc.road, lane_no=rc.lane_no,
                        geom=rc.outline if rc.outline is not None else synthetic.wgs84(synthetic.metric(rc.point)),
                        footprint=synthetic.wgs84(plot).intersection(town.geom), has_outline=rc.outline is not None,
                        outline_name=rc.outline_name, households=households,
                        lng=round(rc.point.x, 7), lat=round(rc.point.y, 7))
        out.compounds.append(comp)
        out.addresses += [CompoundAddress(compound_id=cid, address=a, lng=lng, lat=lat)
                          for a, (lng, lat) in sorted(rc.addresses.items())]
        n_gates = 1 if households < 60 else 2 if households < 200 else 3
        for g, pt in enumerate(synthetic.gates_on(plot, boundary_m, n_gates, rng)):
            status = rng.choice([s.value for s in GateStatus], p=[0.7, 0.1, 0.2])
            required = 1 if status == GateStatus.CLOSED else 2
            on_duty = required - int(rng.uniform() < 0.15)
            out.gates.append(Gate(id=f"{cid}-G{g + 1}", compound_id=cid, name=f"{rc.name} {g + 1}号门",
                                  geom=pt, status=str(status), guards_on_duty=on_duty,
                                  guards_required=required, confirmed_at=EPOCH, synthetic=True,
                                  roster=[synthetic.person_name(rng) for _ in range(2 * required)]))
        out.targets += [
            WorkTarget(street_id=sid, task=WorkTask.SCREENING.value, target_kind="compound",
                       target_id=cid, target=households, unit="households"),
            WorkTarget(street_id=sid, task=WorkTask.MASK_DISTRIBUTION.value, target_kind="compound",
                       target_id=cid, target=households * MASKS_PER_HOUSEHOLD, unit="masks"),
        ]

    step("sites and shops")
    taken = shapely.union_all(plots)
    for i, poi in enumerate(pois[pois["kind"] != "cafe"].itertuples()):
        pt = Point(poi.lng, poi.lat)
        out.sites.append(Site(id=f"{sid}-X{i + 1:03d}", street_id=sid, kind=poi.kind, name=poi.name,
                              committee_id=committee_of(synthetic.metric(pt)), geom=pt,
                              status="open", source_ref=poi.id, synthetic=False))
    for plan in synthetic.sites(boundary_m, taken, area_km2, synthetic.rng_for(seed, sid, "sites")):
        out.sites.append(Site(id=f"{sid}-X{len(out.sites) + 1:03d}", street_id=sid, kind=plan.kind,
                              name=plan.name, committee_id=committee_of(synthetic.metric(plan.geom)),
                              geom=plan.geom, status="open", source_ref=None, synthetic=True))
    for i, poi in enumerate(pois[pois["kind"] == "cafe"].itertuples()):
        pt = Point(poi.lng, poi.lat)
        out.shops.append(Shop(id=f"{sid}-P{i + 1:03d}", street_id=sid, name=poi.name, category="cafe",
                              committee_id=committee_of(synthetic.metric(pt)), geom=pt,
                              status=ShopStatus.UNVERIFIED.value, last_report_at=None,
                              source_ref=poi.id, synthetic=False))
    shop_rng = synthetic.rng_for(seed, sid, "shops")
    for plan in synthetic.shops(boundary_m, taken, area_km2, shop_rng):
        status = shop_rng.choice([s.value for s in ShopStatus], p=[0.55, 0.3, 0.15])
        out.shops.append(Shop(id=f"{sid}-P{len(out.shops) + 1:03d}", street_id=sid, name=plan.name,
                              category=plan.kind, committee_id=committee_of(synthetic.metric(plan.geom)),
                              geom=plan.geom, status=str(status),
                              last_report_at=None if status == ShopStatus.UNVERIFIED else EPOCH,
                              source_ref=None, synthetic=True))

    for com in out.committees:
        members = [c for c in out.compounds if c.committee_id == com.id]
        places = sum(s.committee_id == com.id for s in (*out.sites, *out.shops))
        out.targets += [
            WorkTarget(street_id=sid, task=WorkTask.MASK_RESERVATION.value, target_kind="committee",
                       target_id=com.id, target=sum(c.households for c in members), unit="households"),
            WorkTarget(street_id=sid, task=WorkTask.DISINFECTION.value, target_kind="committee",
                       target_id=com.id, target=places + len(members), unit="places"),
        ]
    return out


def initial_states(data: StreetData) -> Iterable[tuple[str, list[tuple[str, dt.datetime, dict[str, Any]]]]]:
    """The first entry of each map entity's state history, valid from EPOCH."""
    def iso(t: dt.datetime | None) -> str | None:
        return None if t is None else t.isoformat()

    yield "gate", [(g.id, EPOCH, {"status": g.status, "guards_on_duty": g.guards_on_duty,
                                  "confirmed_at": iso(g.confirmed_at)}) for g in data.gates]
    yield "shop", [(s.id, EPOCH, {"status": s.status, "last_report_at": iso(s.last_report_at)})
                   for s in data.shops]
    yield "site", [(s.id, EPOCH, {"status": s.status}) for s in data.sites]
    yield "compound", [(c.id, EPOCH, {"households": c.households}) for c in data.compounds]


def _upsert(session: Session, rows: list[Base], existing: dict[Any, Base]) -> None:
    """Insert new rows; in existing ones refresh static columns, keep the event-driven ones."""
    for row in rows:
        mapper = inspect(type(row))
        old = existing.pop(mapper.primary_key_from_instance(row)[0], None)
        if old is None:
            session.add(row)
            continue
        for col in mapper.columns:
            if not col.primary_key and col.key not in row.DYNAMIC:
                setattr(old, col.key, getattr(row, col.key))
    for stale in existing.values():
        session.delete(stale)


def write(session: Session, data: StreetData) -> None:
    """Write one built street into an open transaction (replacing a previous load of it)."""
    sid = data.street.id
    old_street = session.get(Street, sid)
    if old_street is None:
        session.add(data.street)
    else:
        data.street.loaded_at = old_street.loaded_at  # content unchanged: keep the row stable
        session.merge(data.street)
    session.flush()

    def current(model: type[Base], *where: Any) -> dict[Any, Base]:
        return {row.id: row for row in session.scalars(select(model).where(*where))}

    compound_ids = select(Compound.id).where(Compound.street_id == sid)
    session.execute(delete(CompoundAddress).where(CompoundAddress.compound_id.in_(compound_ids)))
    session.execute(delete(WorkTarget).where(WorkTarget.street_id == sid))
    session.flush()
    old_gates = current(Gate, Gate.compound_id.in_(compound_ids))
    _upsert(session, data.committees, current(Committee, Committee.street_id == sid))
    session.flush()
    _upsert(session, data.compounds, current(Compound, Compound.street_id == sid))
    session.flush()
    session.add_all(data.addresses)
    _upsert(session, data.gates, old_gates)
    _upsert(session, data.sites, current(Site, Site.street_id == sid))
    _upsert(session, data.shops, current(Shop, Shop.street_id == sid))
    session.add_all(data.targets)
    session.flush()

    for kind, changes in initial_states(data):
        ids = [entity_id for entity_id, _, _ in changes]
        session.execute(delete(StateChange).where(StateChange.entity_kind == kind,
                                                  StateChange.source == "load",
                                                  StateChange.entity_id.in_(ids)))
        record_changes(session, kind, changes, source="load")


def load_street(engine: Engine, datasets: Path, street_name: str, seed: int,
                show_progress: bool = True) -> StreetData:
    """Migrate, build and write one street in a single transaction; returns what was written."""
    with tqdm(total=8, disable=not show_progress, unit="step", leave=False) as bar:
        data = build(datasets, street_name, seed, bar)
        migrate(engine)
        with transaction(engine) as session:
            write(session, data)
    log.info("loaded %s (%s): %s", data.street.name, data.street.id, data.summary())
    return data
