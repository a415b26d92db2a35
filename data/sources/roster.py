"""A week's gate duty roster from a workbook, as `duty` events (`opsmap roster import`).

Why events: the roster then takes effect like any other report — validated by the contract,
kept in history (a gate's roster as it stood at a moment), and a later import replaces a shift
from its own time on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from data.domain import rules
from data.domain.privacy import Hasher
from data.pipeline.events import EventError, validate

#: the workbook's columns: gate id, shift start and end (Shanghai time), the guards' names
COLUMNS = {"出入口编号": "gate_id", "开始": "starts_at", "结束": "ends_at", "值守人员": "guards"}


def _moment(value: Any) -> str:
    t = pd.Timestamp(value).to_pydatetime()
    return (t if t.tzinfo else t.replace(tzinfo=rules.SHANGHAI)).isoformat()


def events(path: Path, reporter: str, now: dt.datetime, hasher: Hasher) -> list[dict[str, Any]]:
    """One valid ``duty`` event per row, or ValueError naming each bad row and field."""
    sheet = pd.read_excel(path, dtype=str)
    missing = [c for c in COLUMNS if c not in sheet.columns]
    if missing:
        raise ValueError(f"{path.name}: no column {', '.join(missing)} (needs {', '.join(COLUMNS)})")
    out, problems = [], []
    for i, row in enumerate(sheet.itertuples(index=False), start=2):  # row 1 holds the headers
        cells = dict(zip(sheet.columns, row, strict=True))
        try:
            doc: dict[str, Any] = {"ts": now.isoformat(), "reporter": reporter, "gate_id": cells["出入口编号"],
                                   "starts_at": _moment(cells["开始"]), "ends_at": _moment(cells["结束"])}
        except (ValueError, TypeError) as exc:
            problems.append(f"row {i}: 开始/结束: {exc}")
            continue
        if isinstance(cells["值守人员"], str) and cells["值守人员"].strip():
            doc["guards"] = cells["值守人员"]
        doc["event_id"] = "roster." + hashlib.sha256(json.dumps(doc, ensure_ascii=False, sort_keys=True)
                                                     .encode()).hexdigest()[:40]
        try:
            validate("duty", doc, hasher)
        except EventError as exc:
            problems += [f"row {i}: {e}" for e in exc.errors]
            continue
        out.append(doc)
    if problems:
        raise ValueError("; ".join(problems[:20]))
    return out
