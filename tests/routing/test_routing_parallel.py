"""Solving in other processes: deadline and cancellation, both engines on two cores."""

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
    plan_routes,
    plan_routes_on_cores,
    solve_in_subprocess,
)


def _problem(n=40, seed=1):
    rng = random.Random(seed)
    stops = [
        (f"s{i}", (rng.randint(-50, 50), rng.randint(-50, 50)), Load(1, 0, 0)) for i in range(n)
    ]
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
    plan = plan_routes_on_cores(problem, time_limit_s=6.0, cores=2)  # spawning comes out of it
    assert plan.engine in (Engine.PYVRP, Engine.ORTOOLS)
    assert plan.rechecked and not plan.unassigned
    first = plan_routes(problem, time_limit_s=5.0, engine="ortools", solution_limit=1)
    assert plan.cost.total <= first.cost.total
