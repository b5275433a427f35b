"""Driver breaks through PyVRP (routing/breaks.py): a break-relaxed solve, each break fitted into
its route, what does not fit taken out and put back where it can go."""

from __future__ import annotations

import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routing_fixtures import planar_problem, van

from routing import (
    Break,
    Engine,
    Load,
    Plan,
    Problem,
    TempZone,
    UnassignedReason,
    build_matrices,
    plan_routes,
    recheck,
)
from routing.breaks import fit_breaks, relax_breaks
from routing.parallel import plan_routes_on_cores
from routing.prepare import prepare

RELAXED = (Engine.PYVRP_RELAXED, Engine.PYVRP_RELAXED_ORTOOLS)
BREAK = Break(4 * 3600, 5 * 3600, 1800)  # 30 min starting between 4 h and 5 h into the day


def _depot_town(n: int, seed: int) -> Problem:
    """`n` points within ~50 min of the depot (speed 1: distance = seconds), a third with a
    window, a third with a chilled drop besides the ambient one; eight vans, ambient or
    ambient+chilled, three of them with a 30 min break between 4 h and 5 h, 10 h shifts."""
    rng = random.Random(seed)
    stops = []
    for i in range(n):
        drops = {TempZone.AMBIENT: Load(rng.randint(1, 5), 0, 0)}
        if rng.random() < 1 / 3:
            drops[TempZone.CHILLED] = Load(rng.randint(1, 3), 0, 0)
        r = rng.random()
        if r < 1 / 6:
            windows = [(0, 3 * 3600), (6 * 3600, 9 * 3600)]
        elif r < 1 / 3:
            begin = rng.choice((1, 2, 3, 4)) * 3600
            windows = [(begin, begin + 2 * 3600)]
        else:
            windows = []
        stops.append(
            (f"s{i:03d}", (rng.randint(-1500, 1500), rng.randint(-1500, 1500)), drops, windows, 120)
        )
    chilled = frozenset({TempZone.AMBIENT, TempZone.CHILLED})
    vans = [
        van(
            f"v{k}",
            Load(60, 100, 100),
            shift_end_s=10 * 3600,
            zones=chilled if k % 2 else frozenset({TempZone.AMBIENT}),
            break_=BREAK if k % 3 == 0 else None,
            fixed_cost=5_000,
        )
        for k in range(8)
    ]
    return planar_problem((0, 0), stops, vans)


def _break_has_room(problem: Problem, plan: Plan, vehicle_id: str) -> bool:
    """The break starts within its window before the route, after it, or in one leg whose slack
    holds it (the rule, restated here on the plan's own times)."""
    vehicle = next(v for v in problem.vehicles if v.id == vehicle_id)
    route = plan.route_of(vehicle_id)
    brk = vehicle.break_
    assert route is not None and brk is not None
    if brk.earliest_start_s + brk.duration_s <= route.start_s or brk.latest_start_s >= route.end_s:
        return True
    dist, times = build_matrices(problem)
    rows = {s.id: len(problem.depots) + i for i, s in enumerate(problem.stops)}
    path = [0] + [rows[v.stop_id] for v in route.visits] + [0]
    free = [route.start_s] + [v.departure_s for v in route.visits]
    until = [v.arrival_s for v in route.visits] + [route.end_s]
    for i in range(len(path) - 1):
        drive = int(times["van"][path[i], path[i + 1]])
        begin = max(free[i], brk.earliest_start_s)
        if begin <= brk.latest_start_s and begin + brk.duration_s + drive <= until[i]:
            return True
    return False


def test_break_vans_on_a_mid_size_problem_take_the_relaxed_path():
    """90 points with windows and zones, three break vans: the default planner takes the
    relaxed path, the plan passes the re-check, every stop is served or unassigned with a
    reason, and every break van that drives leaves room for its break."""
    problem = _depot_town(90, seed=3)
    plan = plan_routes(problem, time_limit_s=6.0, seed=1)
    dist, times = build_matrices(problem)
    assert plan.engine in RELAXED
    assert plan.rechecked and recheck(problem, plan, dist, times) == []
    served = {v.stop_id for r in plan.routes for v in r.visits}
    told = {u.stop_id for u in plan.unassigned if u.reason}
    assert served | told == {s.id for s in problem.stops}
    breakers = [v.id for v in problem.vehicles if v.break_ is not None]
    driving = [vid for vid in breakers if plan.route_of(vid) is not None]
    assert driving, "no break van was used: the case does not test the fitting"
    assert all(_break_has_room(problem, plan, vid) for vid in driving)


def test_two_cores_run_the_break_path_too():
    """On two cores a problem whose only misfit is a break runs the relaxed path (each core
    with its own seed), not the OR-Tools portfolio, and the plan passed the re-check."""
    problem = _depot_town(40, seed=7)
    plan = plan_routes_on_cores(problem, time_limit_s=8.0, cores=2, seed=1)
    assert plan.engine in RELAXED and plan.rechecked


# One van whose break must start at exactly 100 and lasts 50: a is served at 40, b at 100..110,
# c at 130..140 (speed 1, on a line). With all three the break fits nowhere; without c it is
# taken on the way back from b; without a or b it still fits nowhere.
_LINE = [
    ("a", (0, 40), Load(1, 0, 0), [(40, 40)]),
    ("b", (0, 100), Load(1, 0, 0), [(100, 110)]),
    ("c", (0, 130), Load(1, 0, 0), [(130, 140)]),
]
_TIGHT = Break(100, 100, 50)


def _fit(problem: Problem, routes: dict[int, list[str]]) -> Plan:
    dist, times = build_matrices(problem)
    prep = prepare(problem, dist, times)
    number = {problem.stops[prep.drops[k].stop_index].id: k for k in prep.candidates}
    plan = fit_breaks(
        prep,
        {v: [number[s] for s in ids] for v, ids in routes.items()},
        t0=time.perf_counter(),
        status="hand-built",
    )
    assert recheck(problem, plan, dist, times) == []
    return plan


def test_a_break_that_fits_nowhere_costs_the_stop_whose_removal_makes_room():
    """The route a, b, c leaves the break no room: c is taken out (the only removal that makes
    room), the break is taken after b, and c comes back unassigned, fleet exhausted (the van
    alone could serve it; only the break keeps it off this route)."""
    problem = planar_problem((0, 0), _LINE, [van("v1", break_=_TIGHT, shift_end_s=1000)])
    plan = _fit(problem, {0: ["a", "b", "c"]})
    assert [r.stop_ids for r in plan.routes] == [["a", "b"]]
    assert [(u.stop_id, u.reason) for u in plan.unassigned] == [
        ("c", UnassignedReason.FLEET_EXHAUSTED)
    ]
    (route,) = plan.routes
    assert route.end_s >= 100 + 50 + 100  # the break on the way back from b


def test_a_stop_taken_out_for_a_break_goes_to_another_van_where_it_fits():
    """Same route, a second van without a break: c, taken out of the first van's route, is
    inserted into the second van's, so nothing is left."""
    problem = planar_problem(
        (0, 0), _LINE, [van("v1", break_=_TIGHT, shift_end_s=1000), van("v2", shift_end_s=1000)]
    )
    plan = _fit(problem, {0: ["a", "b", "c"]})
    assert {r.vehicle_id: r.stop_ids for r in plan.routes} == {"v1": ["a", "b"], "v2": ["c"]}
    assert not plan.unassigned


def test_relaxing_reserves_the_break_off_the_shift_and_the_duration():
    """A van with a break loses its duration from its maximum duration and from the end of its
    shift, and has no break; a van without one is unchanged."""
    problem = planar_problem(
        (0, 0), _LINE, [van("v1", break_=_TIGHT, shift_end_s=1000, max_duration_s=600), van("v2")]
    )
    one, two = relax_breaks(problem).vehicles
    assert (one.break_, one.shift_end_s, one.max_duration_s) == (None, 950, 550)
    assert two == problem.vehicles[1]


def test_default_is_not_dearer_than_ortools_alone_with_breaks():
    """On a fixed 60-point case with breaks, the default (relaxed path) serves as many drops as
    OR-Tools alone and costs no more (OR-Tools alone stops after 300 solutions, well past its
    first plan; the default has a budget generous for 60 points)."""
    problem = _depot_town(60, seed=5)
    default = plan_routes(problem, time_limit_s=5.0, seed=1)
    alone = plan_routes(problem, time_limit_s=30.0, seed=1, engine="ortools", solution_limit=300)
    assert default.engine in RELAXED and alone.engine == Engine.ORTOOLS
    assert default.rechecked and alone.rechecked
    assert (len(default.unassigned), default.cost.total) <= (
        len(alone.unassigned),
        alone.cost.total,
    )


@st.composite
def _routes_on_a_small_problem(draw):
    """A small problem with breaks on some vans, and routes for it that respect zones and
    capacity but not necessarily windows, shifts or breaks (drops dealt out in a drawn order)."""
    zones = [TempZone.AMBIENT, TempZone.CHILLED]
    stops = []
    for i in range(draw(st.integers(1, 10))):
        xy = (draw(st.integers(-60, 60)), draw(st.integers(-60, 60)))
        drops = {
            z: Load(draw(st.integers(1, 30)), 0, 0)
            for z in draw(st.lists(st.sampled_from(zones), min_size=1, max_size=2, unique=True))
        }
        open_s = draw(st.integers(0, 300))
        windows = [(open_s, open_s + draw(st.integers(0, 150)))] if draw(st.booleans()) else []
        stops.append((f"s{i}", xy, drops, windows, draw(st.integers(0, 20))))
    vans = []
    for i in range(draw(st.integers(1, 3))):
        brk = None
        if draw(st.booleans()):
            earliest = draw(st.integers(0, 300))
            brk = Break(earliest, earliest + draw(st.integers(0, 100)), draw(st.integers(0, 60)))
        vans.append(
            van(
                f"v{i}",
                Load(draw(st.integers(20, 90)), 100, 100),
                zones=frozenset(
                    draw(st.lists(st.sampled_from(zones), min_size=1, max_size=2, unique=True))
                ),
                shift_end_s=draw(st.integers(200, 600)),
                break_=brk,
                max_duration_s=draw(st.sampled_from([None, 250, 400])),
            )
        )
    problem = planar_problem((0, 0), stops, vans)
    dist, times = build_matrices(problem)
    prep = prepare(problem, dist, times)
    order = draw(st.permutations(prep.candidates))
    room = {v: problem.vehicles[v].capacity for v in range(len(vans))}
    routes: dict[int, list[int]] = {}
    for k in order:
        drop = prep.drops[k]
        v = draw(st.integers(0, len(vans) - 1))
        if drop.zone in problem.vehicles[v].zones and drop.load.fits_in(room[v]):
            room[v] = room[v] - drop.load
            routes.setdefault(v, []).append(k)
    return problem, prep, routes


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(case=_routes_on_a_small_problem())
def test_fitted_routes_always_pass_the_recheck(case):
    """Whatever routes come in (zones and capacity kept, anything else possibly broken),
    fitting gives a plan that passes the re-check: each drop on a route or unassigned with its
    reason, windows, shifts, maximum durations and every break kept."""
    problem, prep, routes = case
    plan = fit_breaks(prep, routes, t0=time.perf_counter(), status="drawn")
    assert recheck(problem, plan, prep.dist_rows, prep.time_rows) == []
