"""Two echelons: the trunk first, then each station's last mile from what the trunk brings it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from routing_fixtures import planar_problem, van

from routing import (
    TRUNK_KEY,
    Load,
    PlanStatus,
    PoolRunner,
    RoutingInputError,
    TempZone,
    UnassignedReason,
    plan_routes,
    plan_two_echelons,
    station_jobs,
)

HANDLING_S = 1800
NOT_SUPPLIED = UnassignedReason.STATION_NOT_SUPPLIED


class RecordingRunner:
    """Solves in this process and records what it was asked: (keys, time limit, tag) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], float, str]] = []
        self.pool = PoolRunner(1)

    def solve(self, problems, *, time_limit_s, seed, tag=""):
        self.calls.append((sorted(problems), time_limit_s, tag))
        yield from self.pool.solve(problems, time_limit_s=time_limit_s, seed=seed, tag=tag)


def _station_a():
    """Station A's last mile: leaders a1 (80 kg), a2 (40 kg), a3 (30 kg), one 200 kg van."""
    return planar_problem(
        (0, 0),
        [
            ("a1", (0, 30), Load(80, 0, 0)),
            ("a2", (30, 0), Load(40, 0, 0)),
            ("a3", (-30, 0), Load(30, 0, 0)),
        ],
        [van("vanA", Load(200, 200, 200))],
    )


def _trunk_to_a():
    """Only station A (150 kg, 10 min unloading) and one 100 kg truck."""
    return planar_problem(
        (0, 0),
        [("A", (0, 600), Load(150, 0, 0), (), 600)],
        [van("truck0", Load(100, 100, 100), shift_start_s=3600)],
    )


def _two_stations():
    """Warehouse at 0; station A (150 kg) and B (50 kg), 10 min unloading each, three 100 kg
    trucks; B's leader b1 (50 kg) and its van."""
    trunk = planar_problem(
        (0, 0),
        [("A", (0, 600), Load(150, 0, 0), (), 600), ("B", (800, 0), Load(50, 0, 0), (), 600)],
        [van(f"truck{i}", Load(100, 100, 100), shift_start_s=3600) for i in range(3)],
    )
    last_b = planar_problem((0, 0), [("b1", (0, 50), Load(50, 0, 0))], [van("vanB")])
    return trunk, {"A": _station_a(), "B": last_b}


def _last_departure(trunk_plan, station):
    return max(v.departure_s for r in trunk_plan.routes for v in r.visits if v.stop_id == station)


def _routed(plan):
    return {(v.stop_id, z) for r in plan.routes for v in r.visits for z in v.zones}


def test_last_mile_starts_after_the_trunk_leaves_plus_handling():
    """A station needing two trucks is split over them; every station's vans leave no earlier
    than its last truck's departure (after unloading) plus the handling time."""
    trunk, last_mile = _two_stations()
    result = plan_two_echelons(trunk, last_mile, time_limit_s=1.0, workers=2, handling_s=HANDLING_S)
    a_trucks = [r.vehicle_id for r in result.trunk.routes if "A" in r.stop_ids]
    assert len(a_trucks) == 2
    delivered_a = sum(
        v.delivered.weight_g for r in result.trunk.routes for v in r.visits if v.stop_id == "A"
    )
    assert delivered_a == 150
    for station, plan in result.last_mile.items():
        ready = _last_departure(result.trunk, station) + HANDLING_S
        assert result.ready_s[station] == ready
        assert plan.status == PlanStatus.SOLVED and not plan.unassigned
        assert plan.routes and all(route.start_s >= ready for route in plan.routes)


def test_a_partly_supplied_station_routes_only_what_arrives():
    """One 100 kg truck for station A's 150 kg: 75 kg do not arrive. The largest leader (a1,
    80 kg) is left out as station_not_supplied, a2 and a3 (70 kg) are routed; nothing is lost,
    the plan is partial, and the vans leave after the truck plus handling."""
    result = plan_two_echelons(
        _trunk_to_a(), {"A": _station_a()}, time_limit_s=1.0, workers=1, handling_s=HANDLING_S
    )
    delivered = sum(v.delivered.weight_g for r in result.trunk.routes for v in r.visits)
    assert delivered == 75 and result.trunk.unassigned
    plan = result.last_mile["A"]
    assert plan.status == PlanStatus.PARTIAL
    assert [(u.stop_id, u.zone, u.reason, u.demand) for u in plan.unassigned] == [
        ("a1", TempZone.AMBIENT, NOT_SUPPLIED, Load(80, 0, 0))
    ]
    assert _routed(plan) == {("a2", TempZone.AMBIENT), ("a3", TempZone.AMBIENT)}
    assert sum(v.delivered.weight_g for r in plan.routes for v in r.visits) <= delivered
    ready = _last_departure(result.trunk, "A") + HANDLING_S
    assert all(route.start_s >= ready for route in plan.routes)


def test_a_trimmed_problem_keeps_the_distances_of_the_stops_it_keeps():
    """Leaving a leader out of a problem with explicit matrices keeps the depot's and the other
    stops' rows and columns, and the vans' shifts start at the ready time."""
    trunk = _trunk_to_a()
    trunk_plan = plan_routes(replace(trunk, split_oversized=True), time_limit_s=0.3)
    station = _station_a()
    job = station_jobs(trunk, trunk_plan, {"A": station}, handling_s=HANDLING_S)["A"]
    assert [s.id for s in job.problem.stops] == ["a2", "a3"]
    assert [(u.stop_id, u.reason) for u in job.not_supplied] == [("a1", NOT_SUPPLIED)]
    original = station.distance_m
    assert job.problem.distance_m.tolist() == [
        [original[i][j] for j in (0, 2, 3)] for i in (0, 2, 3)
    ]
    assert job.ready_s == _last_departure(trunk_plan, "A") + HANDLING_S
    assert all(v.shift_start_s == job.ready_s for v in job.problem.vehicles)


def test_a_station_no_truck_reaches_has_every_drop_not_supplied():
    """A station no truck can reach: no ready time, every pickup point's drop unassigned as
    station_not_supplied, and nothing is searched for it."""
    trunk = planar_problem(
        (0, 0), [("far", (0, 10**6), Load(1, 0, 0))], [van("truck", shift_end_s=1000)]
    )
    last = planar_problem(
        (0, 0),
        [("p1", (0, 5), {TempZone.CHILLED: Load(1, 0, 0)})],
        [van("v", zones=frozenset({TempZone.CHILLED}))],
    )
    runner = RecordingRunner()
    result = plan_two_echelons(trunk, {"far": last}, time_limit_s=0.5, runner=runner)
    assert result.ready_s["far"] is None
    assert [(u.stop_id, u.zone, u.reason) for u in result.last_mile["far"].unassigned] == [
        ("p1", TempZone.CHILLED, NOT_SUPPLIED)
    ]
    assert result.last_mile["far"].routes == ()
    assert [keys for keys, _, _ in runner.calls] == [[TRUNK_KEY]]


def test_a_station_without_vans_has_its_drops_unassigned_for_lack_of_a_vehicle():
    """Goods arrive at B but no van is based there: b1's drop is no_vehicle_for_zone and B is
    not given to the runner; A is planned as usual."""
    trunk, last_mile = _two_stations()
    last_mile["B"] = planar_problem((0, 0), [("b1", (0, 50), Load(50, 0, 0))], [])
    runner = RecordingRunner()
    result = plan_two_echelons(trunk, last_mile, time_limit_s=1.0, runner=runner)
    assert [(u.stop_id, u.zone, u.reason, u.demand) for u in result.last_mile["B"].unassigned] == [
        ("b1", TempZone.AMBIENT, UnassignedReason.NO_VEHICLE_FOR_ZONE, Load(50, 0, 0))
    ]
    assert result.last_mile["B"].status == PlanStatus.INFEASIBLE_INPUT
    assert [keys for keys, _, _ in runner.calls] == [[TRUNK_KEY], ["A"]]
    assert result.last_mile["A"].status == PlanStatus.SOLVED


def test_resuming_solves_neither_the_given_trunk_nor_the_stations_done():
    """With the trunk plan given and A done, the runner is asked for B only, `on_part` hears of
    B only, and the trunk plan returned is the one given."""
    trunk, last_mile = _two_stations()
    trunk_plan = plan_routes(replace(trunk, split_oversized=True), time_limit_s=0.5)
    runner = RecordingRunner()
    parts = []
    result = plan_two_echelons(
        trunk,
        last_mile,
        trunk_time_limit_s=5.0,
        station_time_limit_s=0.3,
        runner=runner,
        trunk_plan=trunk_plan,
        done={"A"},
        on_part=lambda key, plan: parts.append(key),
    )
    assert runner.calls == [(["B"], 0.3, "")]
    assert parts == ["B"]
    assert result.trunk is trunk_plan and set(result.last_mile) == {"B"}


def test_a_runner_of_ones_own_solves_the_trunk_then_the_stations_with_their_limits():
    """Fixed per-part limits reach the runner as they are, with the tag; every part is reported
    once, the trunk first."""
    trunk, last_mile = _two_stations()
    runner = RecordingRunner()
    parts = []
    result = plan_two_echelons(
        trunk,
        last_mile,
        trunk_time_limit_s=0.5,
        station_time_limit_s=0.25,
        runner=runner,
        tag="v7",
        on_part=lambda key, plan: parts.append((key, plan)),
    )
    assert runner.calls == [([TRUNK_KEY], 0.5, "v7"), (["A", "B"], 0.25, "v7")]
    assert [key for key, _ in parts][0] == TRUNK_KEY
    assert sorted(key for key, _ in parts) == sorted([TRUNK_KEY, "A", "B"])
    assert dict(parts) == {TRUNK_KEY: result.trunk, **result.last_mile}


def test_a_whole_budget_is_divided_between_the_trunk_and_rounds_of_stations():
    """With only `time_limit_s`, the trunk gets its share and each station at most what is left
    divided by the rounds of `workers` (two stations on one worker: two rounds)."""
    trunk, last_mile = _two_stations()
    runner = RecordingRunner()
    plan_two_echelons(trunk, last_mile, time_limit_s=2.0, runner=runner, workers=1)
    (_, trunk_limit, _), (_, station_limit, _) = runner.calls
    assert trunk_limit == pytest.approx(0.6)
    assert 0.1 <= station_limit <= 2.0 / 2  # what is left after the trunk, in two rounds


def test_a_call_without_any_budget_is_refused():
    """Neither the whole budget nor both per-part limits: a RoutingInputError naming the field."""
    trunk, last_mile = _two_stations()
    with pytest.raises(RoutingInputError) as err:
        plan_two_echelons(trunk, last_mile, station_time_limit_s=1.0)
    assert err.value.field == "time_limit_s"
