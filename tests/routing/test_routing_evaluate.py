"""A plan arranged by hand: timed and loaded as asked, and the rules it breaks named."""

from __future__ import annotations

from dataclasses import replace

import pytest
from routing_fixtures import planar_problem, van

from routing import Load, RoutingInputError, evaluate, plan_routes


def _problem(capacity: Load | None = None):
    capacity = capacity or Load(10, 100, 100)
    stops = [
        ("a", (10, 0), Load(3, 0, 0)),
        ("b", (20, 0), Load(3, 0, 0)),
        ("c", (0, 10), Load(3, 0, 0)),
        ("d", (0, 20), Load(3, 0, 0)),
    ]
    return planar_problem((0, 0), stops, [van("v1", capacity), van("v2", capacity)])


def test_the_order_given_is_the_order_driven_and_a_solved_plan_reads_back_the_same():
    problem = _problem()
    solved = plan_routes(problem, time_limit_s=0.5)
    again, broken = evaluate(problem, {r.vehicle_id: r.stop_ids for r in solved.routes})
    assert broken == [] and again.rechecked
    assert again.cost.distance_m == solved.cost.distance_m
    by_hand, broken = evaluate(problem, {"v1": ["b", "c"], "v2": ["d", "a"]})
    assert broken == []
    assert by_hand.route_of("v1").stop_ids == ["b", "c"]
    assert by_hand.route_of("v2").stop_ids == ["d", "a"]
    assert by_hand.cost.distance_m > solved.cost.distance_m  # crossing the city drives further
    assert by_hand.route_of("v1").load_at_start == Load(6, 0, 0)


def test_a_stop_left_out_is_unassigned_and_an_overload_is_named():
    problem = _problem()
    plan, broken = evaluate(problem, {"v1": ["a", "b"], "v2": ["c"]})
    assert [u.stop_id for u in plan.unassigned] == ["d"] and broken == []
    plan, broken = evaluate(problem, {"v1": ["a", "b", "c", "d"]})
    assert not plan.rechecked
    assert broken and all("v1" in b for b in broken)


def test_unknown_vehicles_and_stops_are_refused_by_name():
    problem = _problem()
    with pytest.raises(RoutingInputError, match="unknown vehicle"):
        evaluate(problem, {"v9": ["a"]})
    with pytest.raises(RoutingInputError, match="not in the problem"):
        evaluate(problem, {"v1": ["zz"]})
    with pytest.raises(RoutingInputError, match="twice"):
        evaluate(problem, {"v1": ["a", "b", "a"]})


def test_a_stop_split_over_two_vans_gives_each_the_zones_it_carries():
    """As the planner splits a stop's zones over an ambient van and a cold van, a plan arranged
    by hand lists it on both: each serves the drops of its own zones, and nothing breaks."""
    from routing import TempZone

    stops = [("a", (10, 0), Load(3, 0, 0)), ("b", (0, 10), Load(3, 0, 0))]
    cold = van("cold", Load(10, 100, 100), zones=frozenset({TempZone.CHILLED}))
    warm = van("warm", Load(10, 100, 100))
    problem = planar_problem((0, 0), stops, [warm, cold])
    split = problem.stops[0]
    problem = replace(
        problem,
        stops=(
            replace(
                split, drops={TempZone.AMBIENT: Load(2, 0, 0), TempZone.CHILLED: Load(1, 0, 0)}
            ),
            problem.stops[1],
        ),
    )
    plan, broken = evaluate(problem, {"warm": ["a", "b"], "cold": ["a"]})
    assert broken == [] and not plan.unassigned
    assert plan.route_of("cold").visits[0].zones == (TempZone.CHILLED,)
    assert plan.route_of("warm").load_at_start == Load(5, 0, 0)
