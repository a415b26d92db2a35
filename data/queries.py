"""Read-side questions about a street that panels and the API share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from data.models import Committee, Compound, Gate, Shop, Site, Street


def streets(session: Session) -> list[Street]:
    """Loaded streets, by name."""
    return list(session.scalars(select(Street).order_by(Street.name)))


def _counts(session: Session, column: Any, *where: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).where(*where).group_by(column))
    return {str(k): int(n) for k, n in rows}


def street_summary(session: Session, street_id: str) -> dict[str, Any]:
    """How many committees, compounds, gates (by status), shops (by status) and sites (by kind)."""
    compound_ids = select(Compound.id).where(Compound.street_id == street_id)
    return {
        "committees": session.scalar(select(func.count()).where(Committee.street_id == street_id)),
        "compounds": session.scalar(select(func.count()).where(Compound.street_id == street_id)),
        "households": session.scalar(select(func.coalesce(func.sum(Compound.households), 0))
                                     .where(Compound.street_id == street_id)),
        "gates": _counts(session, Gate.status, Gate.compound_id.in_(compound_ids)),
        "shops": _counts(session, Shop.status, Shop.street_id == street_id),
        "sites": _counts(session, Site.kind, Site.street_id == street_id),
    }
