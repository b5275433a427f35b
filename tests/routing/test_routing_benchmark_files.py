"""The benchmark reads VRPLIB VRPTW as VRPTW, and its re-check (which reads the file on its own)
refuses plans built on a mis-reading. On a small file written for the tests: Solomon R101's
depot and first 12 customers in VRPLIB layout (data/R101-12.vrp)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks._routing_check import below_bks, read_file, verify
from benchmarks._routing_instances import load, to_problem
from routing import TimeWindow, plan_routes

FILE = Path(__file__).parent / "data" / "R101-12.vrp"


def test_vrplib_vrptw_is_read_with_windows_service_and_the_solomon_convention():
    """TYPE VRPTW: windows and the scalar SERVICE_TIME are kept, ×10, the depot serves nothing;
    distances are floor(10·euclid) (customer 1 at (41, 49) from the depot (35, 35): 152)."""
    inst = load(FILE)
    assert inst.kind == "vrptw" and inst.scale == 10
    assert inst.windows is not None
    assert tuple(inst.windows[0]) == (0, 2300) and tuple(inst.windows[1]) == (1610, 1710)
    assert inst.service[0] == 0 and set(inst.service[1:]) == {100}
    assert inst.dist[0, 1] == 152  # sqrt(36 + 196) = 15.23...
    problem = to_problem(inst)
    assert problem.stops[0].windows == (TimeWindow(1610, 1710),)
    assert problem.stops[0].service_s == 100


def test_the_recheck_reads_the_file_itself():
    """The re-check's own parser finds the same windows, service times and distances."""
    f = read_file(FILE)
    assert f.timed and f.capacity == 200 and f.vehicles == 6
    assert (f.ready[1], f.due[1]) == (1610, 1710)
    assert f.service[0] == 0 and f.service[5] == 100
    assert f.dist(0, 1) == 152


def test_a_plan_on_the_right_reading_passes_and_one_on_a_cvrp_reading_fails():
    """Planned with its windows, every route passes the independent re-check; planned as if the
    file were plain CVRP (windows dropped, the old mis-reading), the plan is shorter but the
    re-check refuses it for the windows it misses."""
    inst = load(FILE)
    problem = to_problem(inst)
    plan = plan_routes(problem, time_limit_s=1.0, seed=1)
    routes = [[int(s) for s in r.stop_ids] for r in plan.routes]
    ok, why, cost = verify(FILE, routes)
    assert ok, why
    assert cost == plan.cost.distance_m / 10

    no_windows = replace(problem, stops=tuple(replace(s, windows=()) for s in problem.stops))
    cvrp = plan_routes(no_windows, time_limit_s=1.0, seed=1)
    cvrp_routes = [[int(s) for s in r.stop_ids] for r in cvrp.routes]
    ok, why, cvrp_cost = verify(FILE, cvrp_routes)
    assert not ok and "due" in why
    assert cvrp_cost < cost


def test_a_cost_below_the_best_known_beyond_rounding_is_an_error():
    """Half a unit of the last printed digit is rounding; anything lower cannot be true."""
    assert not below_bks(1637.7, 1637.7, 10)
    assert not below_bks(1637.66, 1637.7, 10)
    assert below_bks(1637.6, 1637.7, 10)
    assert below_bks(27590, 27591, 1)
    assert not below_bks(100.0, None, 1)
