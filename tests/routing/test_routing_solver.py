"""plan_routes on hand-made instances: optima, constraints, unassigned reasons, reported costs."""

from __future__ import annotations

import math
import random

import pytest
from routing_fixtures import SQUARE, planar_problem, van

from routing import (
    UNREACHABLE,
    Break,
    Depot,
    Engine,
    Load,
    PlanStatus,
    Problem,
    Stop,
    TempZone,
    UnassignedReason,
    Vehicle,
    plan_routes,
)

FAST = {"time_limit_s": 1.0}
# the model as each engine sees it: every constraint below holds whichever engine runs
ENGINES = ["ortools", "pyvrp"]


def test_square_tour_is_optimal():
    """Four stops on a 10x10 square's corners and edge: one van, the optimum 40 is found."""
    plan = plan_routes(planar_problem((0, 0), SQUARE, [van("v1")]), **FAST)
    assert plan.cost.distance_m == 40
    assert plan.cost.vehicles_used == 1
    assert sorted(plan.routes[0].stop_ids) == ["a", "b", "c", "d"]
    assert not plan.unassigned
    assert plan.status == PlanStatus.SOLVED
    assert plan.engine == Engine.PYVRP  # plain problem: fits PyVRP
    assert plan.rechecked and not plan.discarded


@pytest.mark.parametrize("engine", ENGINES)
def test_capacity_forces_two_routes(engine):
    """Two stops on opposite sides, each filling a van: two out-and-back routes, 40 in all."""
    stops = [("n", (0, 10), Load(0, 0, 5)), ("s", (0, -10), Load(0, 0, 5))]
    vans = [van("v1", Load(100, 100, 5)), van("v2", Load(100, 100, 5))]
    plan = plan_routes(planar_problem((0, 0), stops, vans), engine=engine, **FAST)
    assert plan.cost.distance_m == 40
    assert plan.cost.vehicles_used == 2


@pytest.mark.parametrize("dim", [0, 1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_capacity_holds_in_every_dimension(dim, engine):
    """Each load dimension alone binds: three stops of 40 in one dimension, vans of 100 there."""

    def load(x):
        return Load(*[x if i == dim else 0 for i in range(3)])

    stops = [(f"s{i}", (i + 1, 0), load(40)) for i in range(3)]
    cap = Load(*[100 if i == dim else 10_000 for i in range(3)])
    plan = plan_routes(
        planar_problem((0, 0), stops, [van("v1", cap), van("v2", cap)]), engine=engine, **FAST
    )
    assert not plan.unassigned
    assert plan.cost.vehicles_used == 2
    for route in plan.routes:
        assert route.load_at_start.fits_in(cap)
        for visit in route.visits:
            assert visit.load_after.fits_in(cap)
            assert min(visit.load_after.as_tuple()) >= 0
        assert route.visits[-1].load_after.is_zero()


@pytest.mark.parametrize("engine", ENGINES)
def test_frozen_drop_never_rides_in_an_ambient_van(engine):
    """A stop with ambient and frozen goods: the frozen drop goes on the freezer van only, the
    ambient one may go on either, and both are delivered."""
    stops = [
        ("mixed", (5, 5), {TempZone.AMBIENT: Load(1, 0, 0), TempZone.FROZEN: Load(2, 0, 0)}),
        ("dry", (-5, 5), {TempZone.AMBIENT: Load(1, 0, 0)}),
        ("ice", (5, -5), {TempZone.FROZEN: Load(1, 0, 0)}),
    ]
    vans = [
        van("ambient", zones=frozenset({TempZone.AMBIENT})),
        van("freezer", zones=frozenset({TempZone.FROZEN})),
    ]
    plan = plan_routes(planar_problem((0, 0), stops, vans), engine=engine, **FAST)
    assert not plan.unassigned
    for route in plan.routes:
        for visit in route.visits:
            if route.vehicle_id == "ambient":
                assert TempZone.FROZEN not in visit.zones
            else:
                assert visit.zones == (TempZone.FROZEN,)
    delivered = {(v.stop_id, z) for r in plan.routes for v in r.visits for z in v.zones}
    assert delivered == {
        ("mixed", TempZone.AMBIENT),
        ("mixed", TempZone.FROZEN),
        ("dry", TempZone.AMBIENT),
        ("ice", TempZone.FROZEN),
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_drops_of_one_stop_on_one_vehicle_share_one_visit(engine):
    """A van equipped for both zones serves a two-zone stop as one visit with one service time."""
    stops = [
        (
            "mixed",
            (0, 10),
            {TempZone.AMBIENT: Load(1, 0, 0), TempZone.CHILLED: Load(1, 0, 0)},
            (),
            60,
        )
    ]
    v = van("both", zones=frozenset({TempZone.AMBIENT, TempZone.CHILLED}))
    plan = plan_routes(planar_problem((0, 0), stops, [v]), engine=engine, **FAST)
    (visit,) = plan.routes[0].visits
    assert set(visit.zones) == {TempZone.AMBIENT, TempZone.CHILLED}
    assert visit.departure_s - visit.arrival_s == 60
    assert plan.routes[0].duration_s == 10 + 60 + 10


@pytest.mark.parametrize("engine", ENGINES)
def test_windows_decide_the_order(engine):
    """The far stop closes early and the near one opens late: far first, near second."""
    stops = [
        ("near", (0, 10), Load(1, 0, 0), [(50, 100)]),
        ("far", (0, 20), Load(1, 0, 0), [(0, 25)]),
    ]
    plan = plan_routes(planar_problem((0, 0), stops, [van("v1")]), engine=engine, **FAST)
    (route,) = plan.routes
    assert route.stop_ids == ["far", "near"]
    far, near = route.visits
    assert far.arrival_s <= 25
    assert 50 <= near.arrival_s <= 100


@pytest.mark.parametrize("engine", ENGINES)
def test_second_window_used_when_first_is_missed(engine):
    """A stop with windows [0, 5] and [50, 60] ten seconds away is served at 50, not between."""
    stops = [("two", (0, 10), Load(1, 0, 0), [(0, 5), (50, 60)])]
    plan = plan_routes(
        planar_problem((0, 0), stops, [van("v1", shift_start_s=0)]), engine=engine, **FAST
    )
    arrival = plan.routes[0].visits[0].arrival_s
    assert 50 <= arrival <= 60 or arrival <= 5
    assert not 5 < arrival < 50


@pytest.mark.parametrize("engine", ENGINES)
def test_shift_and_max_duration_need_a_second_vehicle(engine):
    """Two stops far apart: one van could do both, but its maximum duration (50 s) forbids it."""
    stops = [("e", (20, 0)), ("w", (-20, 0))]
    vans = [van("v1", max_duration_s=50), van("v2", max_duration_s=50)]
    plan = plan_routes(planar_problem((0, 0), stops, vans), engine=engine, **FAST)
    assert plan.cost.vehicles_used == 2
    for route in plan.routes:
        assert route.duration_s <= 50


@pytest.mark.parametrize("engine", ENGINES)
def test_shift_end_leaves_a_stop_unassigned_with_its_reason(engine):
    """A stop 100 s away cannot be reached and returned from in a 150 s shift."""
    stops = [("near", (0, 10)), ("far", (0, 100))]
    plan = plan_routes(
        planar_problem((0, 0), stops, [van("v1", shift_end_s=150)]), engine=engine, **FAST
    )
    assert [r.stop_ids for r in plan.routes] == [["near"]]
    assert [(u.stop_id, u.reason) for u in plan.unassigned] == [
        ("far", UnassignedReason.WINDOW_UNREACHABLE)
    ]


def test_break_is_taken_during_the_route():
    """A 5 s break starting at 11 while the van must be at the stop at 10..12: it is taken on the
    way back, so the van returns at 25 or later instead of 20."""
    stops = [("s", (0, 10), Load(1, 0, 0), [(10, 12)])]
    v = van("v1", break_=Break(11, 11, 5), shift_end_s=100)
    plan = plan_routes(planar_problem((0, 0), stops, [v]), **FAST)
    (route,) = plan.routes
    assert 10 <= route.visits[0].arrival_s <= 12
    assert route.end_s - route.start_s >= 25


def _reasons(plan):
    return {u.stop_id: u.reason for u in plan.unassigned}


@pytest.mark.parametrize("engine", ENGINES)
def test_every_unassigned_reason_from_a_constructed_case(engine):
    """Each reason comes from the check that fits the case, and the rest are fleet_exhausted."""
    stops = [
        ("ok", (0, 5), Load(60, 0, 0)),
        ("heavy", (0, 6), Load(1000, 0, 0)),
        ("frozen", (0, 7), {TempZone.FROZEN: Load(1, 0, 0)}),
        ("late", (0, 8), Load(1, 0, 0), [(0, 3)]),
        ("island", (0, 9), Load(1, 0, 0)),
        ("crowded", (0, 4), Load(60, 0, 0)),
    ]
    p = planar_problem((0, 0), stops, [van("v1", Load(100, 100, 100))])
    dist = p.distance_m.copy()
    island = 1 + 4
    dist[island, :] = UNREACHABLE
    dist[:, island] = UNREACHABLE
    dist[island, island] = 0
    p2 = Problem(p.depots, p.stops, p.vehicles, distance_m=dist, travel_s=dist)
    plan = plan_routes(p2, engine=engine, **FAST)
    served = {s for r in plan.routes for s in r.stop_ids}
    reasons = _reasons(plan)
    assert reasons.pop("heavy") == UnassignedReason.DEMAND_EXCEEDS_EVERY_VEHICLE
    assert reasons.pop("frozen") == UnassignedReason.NO_VEHICLE_FOR_ZONE
    assert reasons.pop("late") == UnassignedReason.WINDOW_UNREACHABLE
    assert reasons.pop("island") == UnassignedReason.UNREACHABLE_LOCATION
    # one of the two 60 g stops fits the 100 g van; the other is left for want of vehicles
    assert list(reasons.values()) == [UnassignedReason.FLEET_EXHAUSTED]
    assert len(served & {"ok", "crowded"}) == 1
    assert served | set(_reasons(plan)) == {s.id for s in p.stops}


@pytest.mark.parametrize("engine", ENGINES)
def test_too_small_fleet_gives_unassigned_stops_not_an_error(engine):
    """Fifty stops and one small van: a plan comes back in time, every stop routed or reported."""
    rng = random.Random(7)
    stops = [
        (f"s{i}", (rng.randint(-50, 50), rng.randint(-50, 50)), Load(10, 0, 0)) for i in range(50)
    ]
    plan = plan_routes(
        planar_problem((0, 0), stops, [van("v1", Load(100, 100, 100))]),
        time_limit_s=1.0,
        engine=engine,
    )
    served = [s for r in plan.routes for s in r.stop_ids]
    assert len(served) == 10
    assert len(plan.unassigned) == 40
    assert {u.reason for u in plan.unassigned} == {UnassignedReason.FLEET_EXHAUSTED}
    assert plan.status == PlanStatus.PARTIAL


@pytest.mark.parametrize("engine", ENGINES)
def test_reported_cost_equals_cost_recomputed_from_the_matrices(engine):
    """Distances per route, their sum, fixed costs and the solver's own objective all agree."""
    rng = random.Random(3)
    stops = [
        (
            f"s{i}",
            (rng.randint(-30, 30), rng.randint(-30, 30)),
            Load(rng.randint(1, 9), 0, 0),
            [(0, 1000)],
            2,
        )
        for i in range(30)
    ]
    vans = [van(f"v{i}", Load(40, 100, 100), fixed_cost=100) for i in range(5)]
    p = planar_problem((0, 0), stops, vans)
    plan = plan_routes(p, engine=engine, **FAST)
    row = {s.id: 1 + i for i, s in enumerate(p.stops)}
    total = 0
    for route in plan.routes:
        path = [0] + [row[s] for s in route.stop_ids] + [0]
        d = sum(int(p.distance_m[a, b]) for a, b in zip(path, path[1:], strict=False))
        assert d == route.distance_m
        total += d
        # times are consistent with the matrix: arrival >= previous departure + travel
        t = route.start_s
        for prev, visit in zip(path, route.visits, strict=False):
            assert visit.arrival_s >= t + int(p.travel_s[prev, row[visit.stop_id]])
            t = visit.departure_s
    assert total == plan.cost.distance_m
    assert plan.cost.fixed_cost == 100 * len(plan.routes)
    assert plan.cost.total == total + plan.cost.fixed_cost
    assert plan.solver_objective == plan.cost.total  # nothing dropped: no penalty inside


def test_soft_windows_report_lateness():
    """With soft windows, a stop that cannot be reached in time is served late, not dropped, and
    the lateness is reported and priced into the cost."""
    stops = [("late", (0, 20), Load(1, 0, 0), [(0, 10)])]
    p = planar_problem((0, 0), stops, [van("v1")], soft_windows=True, lateness_cost_per_s=3)
    plan = plan_routes(p, **FAST)
    (visit,) = plan.routes[0].visits
    assert visit.lateness_s == visit.arrival_s - 10 == 10
    assert plan.cost.lateness_s == 10
    assert plan.cost.total == 40 + 30


@pytest.mark.parametrize("engine", ENGINES)
def test_vehicles_from_two_depots(engine):
    """Each stop is served from the depot next to it."""
    stops = [("west", (-100, 1)), ("east", (100, 1))]
    vans = [van("w", start_depot="D"), van("e", start_depot="E")]
    p = planar_problem((-100, 0), stops, vans, extra_depots=[("E", (100, 0))])
    plan = plan_routes(p, engine=engine, **FAST)
    assert {r.vehicle_id: r.stop_ids for r in plan.routes} == {"w": ["west"], "e": ["east"]}
    assert plan.cost.distance_m == 4


def test_locations_use_the_default_matrix_builder():
    """With lat/lon only, great-circle x circuity builds the matrices; two stops 1.1 km apart."""
    from routing import LatLon, TimeWindow

    depot = Depot("wh", LatLon(31.0, 121.0))
    stops = (
        Stop(
            "a",
            LatLon(31.01, 121.0),
            {TempZone.AMBIENT: Load(1, 0, 0)},
            (TimeWindow(0, 86_400),),
            0,
        ),
    )
    p = Problem((depot,), stops, (Vehicle("v", "wh", Load(9, 9, 9), speed_kmh=36.0),))
    plan = plan_routes(p, **FAST)
    one_way = math.ceil(1111.95 * 1.3)
    assert abs(plan.cost.distance_m - 2 * one_way) <= 2
    assert plan.routes[0].duration_s == pytest.approx(2 * one_way / 10, abs=2)


def test_route_group_decomposition_keeps_every_stop_and_a_true_cost():
    """With decomposition switched on (whole solve, then groups of close routes re-solved), every
    stop is still served once and the reported distance is the matrix distance of the routes."""
    from dataclasses import replace as _replace

    from routing import DEFAULT_SEARCH

    rng = random.Random(21)
    stops = [
        (f"s{i}", (rng.randint(-80, 80), rng.randint(-80, 80)), Load(rng.randint(1, 9), 0, 0))
        for i in range(60)
    ]
    p = planar_problem((0, 0), stops, [van(f"v{i}", Load(40, 100, 100)) for i in range(12)])
    config = _replace(
        DEFAULT_SEARCH,
        decompose_threshold=10,
        decompose_first=0.3,
        decompose_routes=3,
        decompose_sub_s=0.3,
    )
    plan = plan_routes(p, time_limit_s=2.0, search=config, engine="ortools")
    served = sorted(s for r in plan.routes for s in r.stop_ids)
    assert served == sorted(s.id for s in p.stops)
    row = {s.id: 1 + i for i, s in enumerate(p.stops)}
    total = 0
    for route in plan.routes:
        path = [0] + [row[s] for s in route.stop_ids] + [0]
        assert route.distance_m == sum(
            int(p.distance_m[a, b]) for a, b in zip(path, path[1:], strict=False)
        )
        assert route.load_at_start.weight_g <= 40
        total += route.distance_m
    assert plan.cost.distance_m == total == plan.cost.total
