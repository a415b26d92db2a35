"""rul: work-order states and SLA clocks, observation days, three-zone tiers."""

from __future__ import annotations

import datetime as dt

import pytest

from data.domain import rules

T0 = dt.datetime(2022, 4, 10, 8, 0, tzinfo=rules.SHANGHAI)
M = dt.timedelta(minutes=1)


def test_rul001_happy_path_and_every_illegal_step():
    state = None
    for action in ("create", "dispatch", "accept", "arrive", "resolve", "close"):
        state = rules.next_state(state, action)
    assert state == "closed"
    with pytest.raises(rules.IllegalTransition, match="cannot resolve an order in state created"):
        rules.next_state("created", "resolve")  # never dispatched
    with pytest.raises(rules.IllegalTransition, match="cannot create an order in state dispatched"):
        rules.next_state("dispatched", "create")
    assert rules.next_state("closed", "reopen") == "reopened"
    assert rules.next_state("reopened", "dispatch") == "dispatched"
    with pytest.raises(rules.IllegalTransition):
        rules.next_state("cancelled", "dispatch")


def test_rul002_urgent_sla_clocks_at_any_moment():
    sla = rules.parse_sla("dispatch=5m,arrive=30m,resolve=2h")
    milestones = {"dispatch": T0 + 7 * M}
    at = T0 + 40 * M
    clocks = {c.milestone: c for c in rules.sla_clocks(T0, sla, milestones, at)}
    assert clocks["dispatch"].overdue_by == 2 * M  # met late: stays 2 min late
    assert clocks["arrive"].overdue_by == 10 * M  # not met, 10 min past deadline
    assert not clocks["resolve"].overdue
    earlier = {c.milestone: c for c in rules.sla_clocks(T0, sla, milestones, T0 + 6 * M)}
    assert earlier["dispatch"].overdue_by == 1 * M and earlier["dispatch"].met_at is None
    closed = {c.milestone: c for c in rules.sla_clocks(T0, sla, {}, T0 + 5 * 60 * M, closed_at=T0 + 3 * 60 * M)}
    assert closed["resolve"].overdue_by == 60 * M  # the clock stopped when the order closed


def test_rul003_sla_setting_is_parsed_strictly():
    assert rules.parse_sla("dispatch=30m,resolve=24h")["resolve"] == dt.timedelta(hours=24)
    with pytest.raises(ValueError, match="bad SLA entry"):
        rules.parse_sla("dispatch=5 minutes")


def test_rul004_observation_day_and_end():
    start = dt.datetime(2022, 4, 1, 21, 0, tzinfo=rules.SHANGHAI)
    assert rules.observation_day(start, start) == 1
    assert rules.observation_day(start, start + dt.timedelta(hours=23)) == 1
    assert rules.observation_day(start, start + dt.timedelta(hours=24)) == 2
    end = rules.planned_end(start)
    assert end == start + dt.timedelta(days=14)
    assert rules.observation_day(start, end - dt.timedelta(seconds=1)) == 14
    assert rules.observation_active(start, end, None, end - M)
    assert not rules.observation_active(start, end, None, end)
    assert not rules.observation_active(start, end, start + dt.timedelta(days=3), start + dt.timedelta(days=4))


@pytest.mark.parametrize(("ages", "tier"), [([0], "sealed"), ([6], "sealed"), ([7], "controlled"),
                                            ([13], "controlled"), ([14], "precaution"), ([], "precaution"),
                                            ([20, 3], "sealed"), ([-1], "precaution")])
def test_rul005_three_zone_tiers(ages, tier):
    day = dt.date(2022, 4, 10)
    assert rules.tier([day - dt.timedelta(days=a) for a in ages], day) == tier


def test_rul006_returnee_origin():
    assert rules.is_outside_shanghai("江苏苏州")
    assert not rules.is_outside_shanghai("上海浦东")
    assert not rules.is_outside_shanghai(None)
