"""Two engines: which one runs, what each keeps of the model, the status a caller reads, and the
independent re-check that every plan passes before it is returned."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np
import pytest
from routing_fixtures import SQUARE, planar_problem, van

from routing import (
    Break,
    Depot,
    Engine,
    Load,
    PlanStatus,
    Problem,
    RoutingInputError,
    Stop,
    TempZone,
    UnassignedReason,
    build_matrices,
    plan_routes,
    recheck,
    replan,
)
from routing.parallel import pick
from routing.search import DEFAULT_SEARCH, search_parameters

FAST = {"time_limit_s": 1.0}


def _scatter(n: int, seed: int, load: Load | None = None):
    load = load or Load(1, 0, 0)
    rng = random.Random(seed)
    return [(f"s{i}", (rng.randint(-50, 50), rng.randint(-50, 50)), load) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Which engine


def test_plain_problem_goes_to_pyvrp_and_the_rest_to_ortools():
    """PyVRP runs where the model fits; a break alone sends the problem to PyVRP without the
    break, then the break fitted (routing/breaks.py); soft windows, a lock or an OR-Tools
    solution limit send it to OR-Tools, which expresses all of them."""
    plain = planar_problem((0, 0), SQUARE, [van("v1"), van("v2")])
    assert plan_routes(plain, **FAST).engine == Engine.PYVRP
    breaks = planar_problem((0, 0), SQUARE, [van("v1", break_=Break(0, 1000, 5))])
    assert plan_routes(breaks, **FAST).engine in (
        Engine.PYVRP_RELAXED,
        Engine.PYVRP_RELAXED_ORTOOLS,
    )
    assert plan_routes(breaks, engine="ortools", **FAST).engine == Engine.ORTOOLS
    soft = planar_problem((0, 0), SQUARE, [van("v1")], soft_windows=True)
    assert plan_routes(soft, **FAST).engine == Engine.ORTOOLS
    assert plan_routes(plain, locked={"a": "v2"}, **FAST).engine == Engine.ORTOOLS
    assert plan_routes(plain, time_limit_s=1.0, solution_limit=5).engine == Engine.ORTOOLS


def test_asking_pyvrp_for_a_problem_it_cannot_express_is_an_input_error():
    """engine="pyvrp" with a driver break, or an unknown engine name, is refused by name."""
    breaks = planar_problem((0, 0), SQUARE, [van("v1", break_=Break(0, 1000, 5))])
    with pytest.raises(RoutingInputError) as err:
        plan_routes(breaks, engine="pyvrp", **FAST)
    assert err.value.field == "engine" and "break" in str(err.value)
    with pytest.raises(RoutingInputError) as err:
        plan_routes(breaks, engine="vroom", **FAST)
    assert err.value.field == "engine"


@pytest.mark.parametrize("engine", ["ortools", "pyvrp"])
def test_each_vehicle_drives_on_its_own_profile(engine):
    """A stop 20 away closes at 15: the van (1 unit/s) cannot make it, the bike (2 units/s, its
    own matrix) can; the stop rides the bike whichever engine runs."""
    dist = np.array([[0, 20, 5], [20, 0, 20], [5, 20, 0]])
    drops = {TempZone.AMBIENT: Load(1, 0, 0)}
    from routing import TimeWindow

    stops = (Stop("tight", None, drops, (TimeWindow(0, 15),)), Stop("easy", None, drops))
    vehicles = (van("van", profile="van"), van("bike", profile="bike"))
    p = Problem(
        (Depot("D"),),
        stops,
        vehicles,
        distance_m=dist,
        travel_s={"van": dist, "bike": -(-dist // 2)},
    )
    plan = plan_routes(p, engine=engine, **FAST)
    assert plan.vehicle_of()["tight"] == "bike"
    assert not plan.unassigned


@pytest.mark.parametrize("engine", ["ortools", "pyvrp"])
def test_fixed_cost_picks_the_cheaper_vehicle(engine):
    """Two identical vans but one costs 1,000 to use: the free one drives, the cost says so."""
    vans = [van("dear", fixed_cost=1000), van("free", fixed_cost=0)]
    plan = plan_routes(planar_problem((0, 0), SQUARE, vans), engine=engine, **FAST)
    assert [r.vehicle_id for r in plan.routes] == ["free"]
    assert plan.cost.fixed_cost == 0 and plan.cost.total == 40


def test_too_small_a_fleet_goes_to_ortools_and_every_stop_is_accounted_for():
    """A fleet that cannot hold every drop goes to OR-Tools (PyVRP's prize-collecting model was
    measured far behind there); the plan passed the re-check and every stop is served or
    unassigned with a reason. Asked for explicitly, PyVRP's optional model gives a plan too."""
    stops = _scatter(30, seed=8, load=Load(10, 0, 0))
    p = planar_problem((0, 0), stops, [van("v1", Load(100, 100, 100)), van("v2", Load(60, 9, 9))])
    explicit = plan_routes(p, time_limit_s=1.0, engine="pyvrp")
    assert explicit.engine == Engine.PYVRP and explicit.rechecked
    assert len({s for r in explicit.routes for s in r.stop_ids}) == 16
    plan = plan_routes(p, time_limit_s=2.0)
    assert plan.engine == Engine.ORTOOLS
    assert plan.rechecked and plan.status == PlanStatus.PARTIAL
    served = {s for r in plan.routes for s in r.stop_ids}
    assert len(served) == 16
    assert {u.stop_id for u in plan.unassigned} == {s.id for s in p.stops} - served
    assert {u.reason for u in plan.unassigned} == {UnassignedReason.FLEET_EXHAUSTED}


# ---------------------------------------------------------------------------------------------
# Status


def test_status_tells_solved_partial_and_infeasible_input_apart():
    """A plan serving all is solved; one leaving stops out is partial; no vehicle at all, or no
    stop any vehicle could take, is infeasible input. The engine's own word is kept beside."""
    solved = plan_routes(planar_problem((0, 0), SQUARE, [van("v1")]), engine="ortools", **FAST)
    assert solved.status == PlanStatus.SOLVED and solved.engine_status.startswith("ROUTING_")
    no_fleet = plan_routes(planar_problem((0, 0), SQUARE, []), **FAST)
    assert no_fleet.status == PlanStatus.INFEASIBLE_INPUT
    assert {u.reason for u in no_fleet.unassigned} == {UnassignedReason.NO_VEHICLE_FOR_ZONE}
    heavy = [(sid, xy, Load(500, 0, 0)) for sid, xy in SQUARE]
    too_big = plan_routes(planar_problem((0, 0), heavy, [van("v1")]), **FAST)
    assert too_big.status == PlanStatus.INFEASIBLE_INPUT
    empty = plan_routes(planar_problem((0, 0), [], [van("v1")]), **FAST)
    assert empty.status == PlanStatus.SOLVED and not empty.routes


# ---------------------------------------------------------------------------------------------
# Locks


def test_lock_to_a_vehicle_without_the_zone_or_room_has_its_own_reason():
    """A frozen stop locked to an ambient van, and a heavy stop locked to a small van, come back
    locked_vehicle_unfit (another vehicle could have served them); other locks hold."""
    stops = [
        ("ice", (0, 10), {TempZone.FROZEN: Load(1, 0, 0)}),
        ("heavy", (10, 0), Load(80, 0, 0)),
        ("ok", (-10, 0), Load(1, 0, 0)),
    ]
    vans = [
        van("small", Load(50, 100, 100)),
        van("big", Load(100, 100, 100), zones=frozenset({TempZone.AMBIENT, TempZone.FROZEN})),
    ]
    p = planar_problem((0, 0), stops, vans)
    plan = plan_routes(p, locked={"ice": "small", "heavy": "small", "ok": "small"}, **FAST)
    assert {u.stop_id: u.reason for u in plan.unassigned} == {
        "ice": UnassignedReason.LOCKED_VEHICLE_UNFIT,
        "heavy": UnassignedReason.LOCKED_VEHICLE_UNFIT,
    }
    assert plan.vehicle_of() == {"ok": "small"}


def test_lock_naming_an_unknown_stop_is_an_input_error():
    """A lock on a stop that is not in the problem is refused, naming the stop."""
    p = planar_problem((0, 0), SQUARE, [van("v1")])
    with pytest.raises(RoutingInputError) as err:
        plan_routes(p, locked={"ghost": "v1"}, **FAST)
    assert (err.value.record, err.value.field) == ("ghost", "locked")


# ---------------------------------------------------------------------------------------------
# The re-check


def _solved():
    stops = [
        ("a", (0, 10), Load(30, 0, 0), [(0, 100)], 5),
        ("b", (10, 10), {TempZone.FROZEN: Load(30, 0, 0)}),
        ("c", (10, 0), Load(30, 0, 0)),
    ]
    vans = [
        van(
            "v1",
            Load(100, 100, 100),
            zones=frozenset({TempZone.AMBIENT, TempZone.FROZEN}),
            fixed_cost=7,
        )
    ]
    p = planar_problem((0, 0), stops, vans)
    plan = plan_routes(p, **FAST)
    dist, times = build_matrices(p)
    assert recheck(p, plan, dist, times) == []
    return p, plan, dist, times


def _tamper(plan, **visit_changes):
    route = plan.routes[0]
    first = replace(route.visits[0], **visit_changes)
    return replace(plan, routes=(replace(route, visits=(first,) + route.visits[1:]),))


def test_recheck_finds_every_kind_of_broken_plan():
    """A plan that passes is made wrong one way at a time: a stop served twice, a frozen drop
    on a van without a freezer, a capacity too small, a window missed, a time the road cannot
    give, a cost that does not add up. The re-check names each."""
    p, plan, dist, times = _solved()
    route = plan.routes[0]

    twice = replace(plan, routes=(replace(route, visits=route.visits + route.visits[:1]),))
    assert any("appears 2 times" in x for x in recheck(p, twice, dist, times))

    ambient_only = replace(
        p, vehicles=(replace(p.vehicles[0], zones=frozenset({TempZone.AMBIENT})),)
    )
    assert any("equipped for" in x for x in recheck(ambient_only, plan, dist, times))

    small = replace(p, vehicles=(replace(p.vehicles[0], capacity=Load(50, 100, 100)),))
    assert any("exceeds capacity" in x for x in recheck(small, plan, dist, times))

    a_at = next(i for i, v in enumerate(route.visits) if v.stop_id == "a")
    late = route.visits[a_at]
    shifted = replace(late, arrival_s=late.arrival_s + 500, departure_s=late.departure_s + 500)
    visits = route.visits[:a_at] + (shifted,) + route.visits[a_at + 1 :]
    missed = replace(plan, routes=(replace(route, visits=visits),))
    assert any("outside" in x for x in recheck(p, missed, dist, times))

    teleport = _tamper(
        plan, arrival_s=0, departure_s=route.visits[0].departure_s - route.visits[0].arrival_s
    )
    assert any("cannot be there before" in x for x in recheck(p, teleport, dist, times))

    cheap = replace(plan, cost=replace(plan.cost, total=plan.cost.total - 1))
    assert any("recomputed" in x for x in recheck(p, cheap, dist, times))


def test_every_returned_plan_passed_the_recheck():
    """Whatever engine answered, the plan says it passed the re-check and nothing was
    discarded; recomputing the re-check outside agrees."""
    p, plan, dist, times = _solved()
    assert plan.rechecked and plan.discarded == ()
    assert plan.cost.fixed_cost == 7


# ---------------------------------------------------------------------------------------------
# Seeds, warm starts, two cores


def test_ortools_seed_does_not_reach_ruin_and_recreate():
    """Pinned limitation (OR-Tools 9.15): ILS's ruin-and-recreate keeps its own generator, so
    under a solution limit two seeds give the same plan. If this starts failing, OR-Tools began
    honouring the seed: update docs/routing.md ("Seeds")."""
    stops = _scatter(40, seed=4, load=Load(5, 0, 0))
    p = planar_problem((0, 0), stops, [van(f"v{i}", Load(40, 100, 100)) for i in range(6)])
    one = plan_routes(p, time_limit_s=60, seed=1, engine="ortools", solution_limit=300)
    two = plan_routes(p, time_limit_s=60, seed=2, engine="ortools", solution_limit=300)
    assert [r.stop_ids for r in one.routes] == [r.stop_ids for r in two.routes]


def test_warm_start_runs_a_metaheuristic_not_plain_descent():
    """OR-Tools cannot run ILS from given routes; a warm start must then run guided local search
    (greedy descent stopped at the first local optimum, 0.04 s of a 4 s budget)."""
    from ortools.constraint_solver import routing_enums_pb2

    params = search_parameters(DEFAULT_SEARCH, time_limit_s=4, num_nodes=50, warm_start=True)
    gls = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    assert params.local_search_metaheuristic == gls
    assert not params.use_iterated_local_search


def test_replan_without_locks_warm_starts_pyvrp_and_with_locks_ortools():
    """Freeing the vehicles (no locks) lets PyVRP start from the previous routes; keeping them
    (locks) goes to OR-Tools. Both serve the late stop."""
    stops = _scatter(30, seed=6)
    vans = [van(f"v{i}", Load(12, 100, 100)) for i in range(3)]
    first = plan_routes(planar_problem((0, 0), stops, vans), **FAST)
    late = planar_problem((0, 0), stops + [("late", (1, 1), Load(1, 0, 0))], vans)
    free, _ = replan(late, first, time_limit_s=1.0, keep_vehicles=False)
    assert free.engine == Engine.PYVRP and not free.unassigned
    kept, changes = replan(late, first, time_limit_s=1.0)
    assert kept.engine == Engine.ORTOOLS and not kept.unassigned
    assert changes.changed_vehicle == ()


def test_pick_prefers_fewer_unassigned_then_cost_and_never_an_unchecked_plan():
    """Of several runs' plans: fewer unassigned drops beats a lower cost; a plan that did not pass
    the re-check never wins, however cheap."""
    stops = _scatter(12, seed=3, load=Load(10, 0, 0))
    p = planar_problem((0, 0), stops, [van("v1", Load(100, 100, 100))])
    full = plan_routes(p, **FAST)
    short = plan_routes(replace(p, vehicles=(van("v1", Load(50, 100, 100)),)), **FAST)
    assert short.cost.total < full.cost.total and len(short.unassigned) > len(full.unassigned)
    assert pick([short, full]) is full
    cheaper = replace(full, cost=replace(full.cost, total=full.cost.total - 10))
    assert pick([full, cheaper]) is cheaper
    unchecked = replace(cheaper, rechecked=False)
    assert pick([unchecked, full]) is full


def test_pyvrp_gives_up_on_an_all_served_plan_that_windows_forbid():
    """The fleet holds every drop, but two stops on opposite sides must both be served at 10:
    the all-required PyVRP model can never be feasible, so after its share of the time the
    default hands the problem to OR-Tools, which serves one and reports the other; asked for
    explicitly, PyVRP's optional model does the same."""
    stops = [("n", (0, 10), Load(1, 0, 0), [(10, 10)]), ("s", (0, -10), Load(1, 0, 0), [(10, 10)])]
    p = planar_problem((0, 0), stops, [van("v1")])
    plan = plan_routes(p, **FAST)
    assert plan.engine == Engine.ORTOOLS and plan.rechecked
    assert [u.reason for u in plan.unassigned] == [UnassignedReason.FLEET_EXHAUSTED]
    explicit = plan_routes(p, engine="pyvrp", **FAST)
    assert explicit.engine == Engine.PYVRP and len(explicit.unassigned) == 1


def test_or_tools_still_plans_when_pyvrp_overran_the_whole_budget(monkeypatch):
    """On a loaded machine PyVRP's fruitless all-required try can end after the call's deadline
    (the process was not scheduled in time). The fallback must still run, for its own short
    floor, rather than return no plan at all."""
    import routing.planner as planner

    solve = planner.solve_pyvrp

    def overran(prep, *, deadline, **kw):
        plan = solve(prep, deadline=deadline, **kw)
        time.sleep(max(0.0, deadline - time.perf_counter()) + 0.02)  # past the deadline
        return plan

    monkeypatch.setattr(planner, "solve_pyvrp", overran)
    stops = [("n", (0, 10), Load(1, 0, 0), [(10, 10)]), ("s", (0, -10), Load(1, 0, 0), [(10, 10)])]
    plan = plan_routes(planar_problem((0, 0), stops, [van("v1")]), time_limit_s=0.5)
    assert plan.engine == Engine.ORTOOLS and plan.rechecked
    assert [u.reason for u in plan.unassigned] == [UnassignedReason.FLEET_EXHAUSTED]
    assert plan.solve_s < 0.5 + 2 * planner.FALLBACK_MIN_S


def test_the_all_required_try_gives_up_sooner_on_a_small_problem():
    """PyVRP's all-required search looks for a first feasible plan for at most half the budget,
    and on a small problem for less (a floor plus a time per drop), so that when the fleet is too
    small the rest of the budget is OR-Tools'."""
    from routing.pyvrp_engine import required_try_until

    assert required_try_until(0.0, 20.0, 50) == pytest.approx(1.5)
    assert required_try_until(0.0, 20.0, 361) == pytest.approx(1.805)
    assert required_try_until(0.0, 20.0, 1_706) == pytest.approx(8.53)
    assert required_try_until(0.0, 20.0, 3_000) == pytest.approx(10.0)
    assert required_try_until(5.0, 6.0, 200) == pytest.approx(5.5)


def test_a_warm_start_serves_a_two_window_stop_in_the_window_the_route_reaches_it_in():
    """A route reaching a stop in its second window starts PyVRP from a feasible solution: the
    copy of the stop for that window, not its first (an infeasible start cost PyVRP its warm
    start: a plan from OR-Tools stayed infeasible under PyVRP for a whole search)."""
    from routing import TimeWindow
    from routing.prepare import prepare
    from routing.pyvrp_engine import _Mapped

    stops = [
        ("near", (0, 10), Load(1, 0, 0), [(0, 15)]),
        ("both", (0, 50), Load(1, 0, 0), [(0, 20), (40, 90)]),
    ]
    p = planar_problem((0, 0), stops, [van("v1")])
    assert p.stops[1].windows == (TimeWindow(0, 20), TimeWindow(40, 90))
    prep = prepare(p, *build_matrices(p))
    drop = {prep.drops[k].stop_index: k for k in prep.candidates}
    mapped = _Mapped(prep, required=True)
    start = mapped.initial(prep, {0: [drop[0], drop[1]]})  # "both" reached at 50
    assert start is not None and start.is_feasible()
    plan = plan_routes(p, initial_routes={"v1": ["near", "both"]}, engine="pyvrp", **FAST)
    assert plan.rechecked and not plan.unassigned


def test_a_plans_routes_read_back_as_drops_take_each_part_of_a_split_stop_once():
    """A stop too big for one van is split over two; reading the plan back into drop numbers
    (a warm start, the break path's OR-Tools finish) gives each part to the van that carries
    it, once, with the load that van delivers there."""
    from routing.prepare import drops_of, prepare

    stops = [("big", (0, 10), Load(150, 0, 0)), ("small", (10, 0), Load(10, 0, 0))]
    vans = [van("v1", Load(100, 100, 100)), van("v2", Load(100, 100, 100))]
    p = planar_problem((0, 0), stops, vans, split_oversized=True)
    plan = plan_routes(p, engine="ortools", **FAST)
    prep = prepare(p, *build_matrices(p))
    assert len([k for k in prep.candidates if prep.drops[k].stop_index == 0]) == 2
    routes = drops_of(prep, plan)
    taken = [k for seq in routes.values() for k in seq]
    assert sorted(taken) == sorted(prep.candidates)
    by_vehicle = {r.vehicle_id: r for r in plan.routes}
    for v, seq in routes.items():
        route = by_vehicle[p.vehicles[v].id]
        big = [prep.drops[k].load.weight_g for k in seq if prep.drops[k].stop_index == 0]
        delivered = [x.delivered.weight_g for x in route.visits if x.stop_id == "big"]
        assert sum(big) == sum(delivered)
