"""Re-planning: locked stops stay put, a late stop does not reshuffle the plan, changes counted."""

from __future__ import annotations

import random
from dataclasses import replace

from routing_fixtures import planar_problem, van

from routing import Load, compare_plans, plan_routes, replan


def _city(n: int, seed: int = 11):
    rng = random.Random(seed)
    return [
        (f"s{i}", (rng.randint(-100, 100), rng.randint(-100, 100)), Load(1, 0, 0)) for i in range(n)
    ]


def test_one_late_stop_keeps_at_least_90_percent_on_their_vehicle():
    """200 stops on 10 vans are planned; one stop arrives late. The re-plan serves it and keeps
    at least 90 % of the earlier stops on their vehicle (here: all of them)."""
    stops = _city(200)
    vans = [van(f"v{i}", Load(25, 100, 100)) for i in range(10)]
    first = plan_routes(planar_problem((0, 0), stops, vans), time_limit_s=1.5)
    assert not first.unassigned
    late = stops + [("late", (3, 4), Load(1, 0, 0))]
    second, changes = replan(planar_problem((0, 0), late, vans), first, time_limit_s=1.5)
    assert not second.unassigned
    assert changes.added == ("late",)
    assert changes.kept_vehicle_share >= 0.9
    assert changes.common == 200


def test_locked_stop_moves_to_its_vehicle_and_others_stay():
    """A stop locked to another van is moved there; the rest stay on their vans."""
    stops = _city(30, seed=5)
    vans = [van(f"v{i}", Load(20, 100, 100)) for i in range(3)]
    problem = planar_problem((0, 0), stops, vans)
    first = plan_routes(problem, time_limit_s=0.5)
    before = first.vehicle_of()
    target = next(v.id for v in problem.vehicles if v.id != before["s0"])
    second, changes = replan(problem, first, time_limit_s=0.5, locked={"s0": target})
    after = second.vehicle_of()
    assert after["s0"] == target
    assert changes.changed_vehicle == ("s0",)


def test_removed_stops_are_reported_and_the_rest_warm_started():
    """Removing stops leaves them out of the new plan; compare_plans lists them as dropped."""
    stops = _city(20, seed=2)
    vans = [van("v0", Load(50, 100, 100))]
    first = plan_routes(planar_problem((0, 0), stops, vans), time_limit_s=0.5)
    second, changes = replan(planar_problem((0, 0), stops[2:], vans), first, time_limit_s=0.5)
    assert changes.dropped == ("s0", "s1")
    assert changes.changed_vehicle == ()
    assert len(second.routes[0].visits) == 18


def test_compare_plans_counts_order_changes():
    """Reversing a route changes every stop's predecessor: all count as reordered, none moved."""
    stops = _city(6, seed=9)
    first = plan_routes(planar_problem((0, 0), stops, [van("v0")]), time_limit_s=0.3)
    route = first.routes[0]
    flipped = replace(first, routes=(replace(route, visits=tuple(reversed(route.visits))),))
    changes = compare_plans(first, flipped)
    assert changes.changed_vehicle == ()
    assert len(changes.changed_order) == 6


def test_a_stop_split_over_two_vehicles_by_zone_stays_served_on_both():
    """A stop whose ambient drop rides the ambient van and its frozen drop the freezer: a re-plan
    keeping vehicles serves both drops again, each on the vehicle equipped for it (it is not
    locked to one vehicle, which would leave the other zone out)."""
    from routing import TempZone

    stops = [
        ("mixed", (5, 5), {TempZone.AMBIENT: Load(1, 0, 0), TempZone.FROZEN: Load(1, 0, 0)}),
        ("dry", (-5, 5), Load(1, 0, 0)),
    ]
    vans = [
        van("amb", zones=frozenset({TempZone.AMBIENT})),
        van("ice", zones=frozenset({TempZone.FROZEN})),
    ]
    problem = planar_problem((0, 0), stops, vans)
    first = plan_routes(problem, time_limit_s=0.5)
    assert not first.unassigned
    late = planar_problem((0, 0), stops + [("late", (1, 1), Load(1, 0, 0))], vans)
    second, changes = replan(late, first, time_limit_s=0.5)
    assert not second.unassigned
    zones_on = {
        (r.vehicle_id, z)
        for r in second.routes
        for v in r.visits
        if v.stop_id == "mixed"
        for z in v.zones
    }
    assert zones_on == {("amb", TempZone.AMBIENT), ("ice", TempZone.FROZEN)}
    assert changes.added == ("late",)
