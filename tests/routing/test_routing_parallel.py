"""Solving in other processes: deadline and cancellation, and two echelons in parallel."""

from __future__ import annotations

import os
import random

import pytest
from routing_fixtures import planar_problem, van

from routing import (
    Engine,
    Load,
    SolveCancelled,
    SolveDeadlineExceeded,
    TempZone,
    UnassignedReason,
    plan_routes,
    plan_routes_on_cores,
    plan_two_echelons,
    solve_in_subprocess,
)


def _problem(n=40, seed=1):
    rng = random.Random(seed)
    stops = [(f"s{i}", (rng.randint(-50, 50), rng.randint(-50, 50)), Load(1, 0, 0))
             for i in range(n)]
    return planar_problem((0, 0), stops, [van(f"v{i}", Load(15, 100, 100)) for i in range(4)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_subprocess_solve_returns_a_plan():
    """A solve in a child process comes back as a normal Plan."""
    with solve_in_subprocess(_problem(), time_limit_s=0.5, deadline_s=30) as handle:
        plan = handle.result(timeout=30)
    assert not plan.unassigned
    assert sum(len(r.visits) for r in plan.routes) == 40


def test_cancel_terminates_the_child():
    """Cancelling a long solve ends the child process at once; result() then says cancelled."""
    handle = solve_in_subprocess(_problem(), time_limit_s=60)
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.5)
    handle.cancel()
    assert not _alive(handle.pid)
    with pytest.raises(SolveCancelled):
        handle.result()


def test_deadline_ends_a_solve_that_runs_too_long():
    """A 60 s solve with a 1.5 s deadline: SolveDeadlineExceeded and the child is gone."""
    handle = solve_in_subprocess(_problem(), time_limit_s=60, deadline_s=1.5)
    with pytest.raises(SolveDeadlineExceeded):
        handle.result()
    assert not _alive(handle.pid)


def test_two_cores_run_both_engines_and_return_a_rechecked_plan():
    """On two cores a problem that fits runs PyVRP on one core and OR-Tools (then PyVRP from its
    plan) on the other: the plan that comes back is one of theirs, passed the re-check, serves
    every stop, and costs no more than the first plan OR-Tools builds alone (which either engine
    can only improve on)."""
    problem = _problem()
    plan = plan_routes_on_cores(problem, time_limit_s=3.0, cores=2)
    assert plan.engine in (Engine.PYVRP, Engine.ORTOOLS)
    assert plan.rechecked and not plan.unassigned
    first = plan_routes(problem, time_limit_s=5.0, engine="ortools", solution_limit=1)
    assert plan.cost.total <= first.cost.total


def test_two_echelons_last_mile_starts_after_trunk_arrival_plus_handling():
    """Trunk first (a station needing two trucks is split over them), then each station's last
    mile, solved in worker processes, leaves no earlier than its last truck's arrival + 30 min."""
    # trunk: warehouse at 0; stations A (demand 150 > truck 100) and B (demand 50)
    trunk = planar_problem(
        (0, 0),
        [("A", (0, 600), Load(150, 0, 0)), ("B", (800, 0), Load(50, 0, 0)),
         ("C", (0, -100), Load(10, 0, 0))],
        [van(f"truck{i}", Load(100, 100, 100), shift_start_s=3600) for i in range(3)])
    last_a = planar_problem((0, 0), [("a1", (0, 30), Load(1, 0, 0)), ("a2", (30, 0), Load(1, 0, 0))],
                            [van("vanA", shift_start_s=0)])
    last_b = planar_problem((0, 0), [("b1", (0, 50), Load(1, 0, 0))], [van("vanB")])
    result = plan_two_echelons(trunk, {"A": last_a, "B": last_b}, time_limit_s=0.5, workers=2)
    a_trucks = [r.vehicle_id for r in result.trunk.routes if "A" in r.stop_ids]
    assert len(a_trucks) == 2
    delivered_a = sum(v.delivered.weight_g for r in result.trunk.routes for v in r.visits
                      if v.stop_id == "A")
    assert delivered_a == 150
    for station, plan in result.last_mile.items():
        arrivals = [v.arrival_s for r in result.trunk.routes for v in r.visits
                    if v.stop_id == station]
        assert result.ready_s[station] == max(arrivals) + 1800
        assert not plan.unassigned
        for route in plan.routes:
            assert route.start_s >= max(arrivals) + 1800


def test_unsupplied_station_reports_its_stops():
    """A station no truck can reach leaves its pickup points unassigned with that reason."""
    trunk = planar_problem((0, 0), [("far", (0, 10**6), Load(1, 0, 0))],
                           [van("truck", shift_end_s=1000)])
    last = planar_problem((0, 0), [("p1", (0, 5), {TempZone.CHILLED: Load(1, 0, 0)})],
                          [van("v", zones=frozenset({TempZone.CHILLED}))])
    result = plan_two_echelons(trunk, {"far": last}, time_limit_s=0.2, workers=1)
    assert result.ready_s["far"] is None
    (u,) = result.last_mile["far"].unassigned
    assert (u.stop_id, u.zone, u.reason) == ("p1", TempZone.CHILLED,
                                              UnassignedReason.STATION_NOT_SUPPLIED)
