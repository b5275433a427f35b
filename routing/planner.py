"""`plan_routes`: which engine runs, for how long, and which re-checked plan comes back.

One call, one wall-clock budget (`time_limit_s`), matrices and re-checks included. When the
problem fits PyVRP (`pyvrp_engine.misfit`) and PyVRP finds a plan serving every drop (within half
of the budget), PyVRP runs to the end; if a plan leaves drops a vehicle could take, OR-Tools
starts from its routes and inserts them (when PyVRP has no plan at all, for at least `FALLBACK_MIN_S`, even
past the deadline). When a driver break is all that does not fit,
`breaks.plan_with_breaks` runs: PyVRP on the problem with each break's time reserved instead,
each break fitted into its route (stops that keep it from fitting taken out and put back where
they can go), then, below 1,000 drops, OR-Tools from those routes with the breaks for the last
tenth (`Engine.PYVRP_RELAXED`, `Engine.PYVRP_RELAXED_ORTOOLS`); if PyVRP finds nothing in half of
the budget, OR-Tools alone has the rest. Otherwise (soft windows, a lock, a fleet too small)
OR-Tools runs (with decomposition on large problems). Every plan an engine returns is re-checked
(`check.recheck`) and one that fails is discarded and named in `Plan.discarded`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

from .breaks import plan_with_breaks
from .check import recheck
from .decompose import can_decompose, improve_by_route_groups
from .matrix import MatrixCache, build_matrices
from .model import Engine, Plan, PlanStatus, Problem, RoutingInputError, UnassignedReason
from .prepare import Prepared, drops_of, empty_plan, prepare
from .pyvrp_engine import BREAKS_ONLY, misfit, solve_pyvrp
from .search import DEFAULT_SEARCH, SearchConfig
from .solver import solve_ortools

__all__ = ["ENGINES", "better", "plan_routes"]

ENGINES = ("auto", "ortools", "pyvrp")
# When PyVRP comes back with no plan at all, OR-Tools runs for at least this long, even if
# PyVRP's try ended at or past the deadline (a loaded machine can deschedule the process): a
# plan a little late beats no plan.
FALLBACK_MIN_S = 0.25


def better(a: Plan, b: Plan) -> bool:
    """Fewer unassigned drops first, then the lower cost."""
    return (len(a.unassigned), a.cost.total) < (len(b.unassigned), b.cost.total)


def plan_routes(
    problem: Problem,
    *,
    time_limit_s: float,
    seed: int = 0,
    search: SearchConfig | None = None,
    solution_limit: int | None = None,
    locked: Mapping[str, str] | None = None,
    initial_routes: Mapping[str, Sequence[str]] | None = None,
    cache: MatrixCache | None = None,
    engine: str = "auto",
) -> Plan:
    """Routes for every vehicle, and every stop that could not be served with its reason.

    `time_limit_s` is the whole call's wall-clock budget. `locked` keeps a stop on one vehicle
    (stop id -> vehicle id); `initial_routes` (vehicle id -> stop ids in order, e.g. from a
    previous plan) is where the search starts. `engine`: "auto" (PyVRP where the problem fits,
    else OR-Tools), "ortools" or "pyvrp" (only for a problem that fits). `seed` seeds both
    engines (OR-Tools: the ruin-and-recreate generator); `solution_limit` is OR-Tools' and makes
    "auto" choose OR-Tools.
    """
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    if engine not in ENGINES:
        raise RoutingInputError(
            f"unknown engine {engine!r}, expected one of {ENGINES}",
            record="plan_routes",
            field="engine",
        )
    why_not = misfit(problem, locked)
    if engine == "pyvrp" and why_not is not None:
        raise RoutingInputError(
            f"the problem does not fit PyVRP ({why_not})", record="plan_routes", field="engine"
        )
    config = search or DEFAULT_SEARCH
    dist_rows, time_rows = build_matrices(problem, cache)
    prep = prepare(problem, dist_rows, time_rows, locked)
    if not prep.candidates or not problem.vehicles:
        plan = empty_plan(
            prep,
            engine=Engine.NONE,
            engine_status="nothing to search",
            solve_s=time.perf_counter() - t0,
            found=True,
        )
        found_empty: list[Plan] = []
        discarded_empty: list[str] = []
        _keep(prep, plan, found_empty, discarded_empty)
        return _choose(prep, found_empty, discarded_empty, t0)
    start = _start_drops(prep, initial_routes)
    use_pyvrp = engine == "pyvrp" or (
        engine == "auto" and why_not is None and solution_limit is None
    )
    found: list[Plan] = []
    discarded: list[str] = []
    if use_pyvrp:
        pv = _pyvrp(
            prep, t0, deadline, seed, start, found, discarded, allow_optional=engine == "pyvrp"
        )
        if engine == "auto":
            left = pv is None or any(
                u.reason == UnassignedReason.FLEET_EXHAUSTED for u in pv.unassigned
            )
            # without any plan yet, OR-Tools gets its floor even past the deadline
            until = deadline if pv is not None else time.perf_counter() + FALLBACK_MIN_S
            if left and max(deadline, until) - time.perf_counter() > 0.05:
                warm = drops_of(prep, pv) if pv is not None else start
                ot = solve_ortools(
                    prep, t0=t0, deadline=max(deadline, until), seed=seed, config=config, start=warm
                )
                if pv is not None:
                    ot = replace(ot, engine=Engine.PYVRP_ORTOOLS)
                _keep(prep, ot, found, discarded)
    elif engine == "auto" and why_not == BREAKS_ONLY and solution_limit is None:

        def keep(plan: Plan) -> Plan | None:
            return _keep(prep, plan, found, discarded)

        if not plan_with_breaks(
            prep, t0=t0, deadline=deadline, seed=seed, config=config, keep=keep, start=start
        ):
            discarded.append(f"{Engine.PYVRP_RELAXED}: no feasible plan without the breaks")
            ot = solve_ortools(
                prep, t0=t0, deadline=deadline, seed=seed, config=config, start=start
            )
            _keep(prep, ot, found, discarded)
    elif (
        config.decompose_threshold is not None
        and len(problem.stops) >= config.decompose_threshold
        and not locked
        and not initial_routes
        and solution_limit is None
        and can_decompose(problem)
    ):
        sub_config = replace(config, decompose_threshold=None)
        whole = solve_ortools(
            prep,
            t0=t0,
            deadline=t0 + time_limit_s * config.decompose_first,
            seed=seed,
            config=sub_config,
        )
        if whole.routes:
            whole = improve_by_route_groups(
                problem,
                whole,
                solve=partial(plan_routes, engine="ortools"),
                deadline=deadline,
                seed=seed,
                config=config,
                cache=cache,
            )
        _keep(prep, whole, found, discarded)
    else:
        ot = solve_ortools(
            prep,
            t0=t0,
            deadline=deadline,
            seed=seed,
            config=config,
            solution_limit=solution_limit,
            locked=locked,
            start=start,
        )
        _keep(prep, ot, found, discarded)
    return _choose(prep, found, discarded, t0)


def _pyvrp(
    prep: Prepared,
    t0: float,
    deadline: float,
    seed: int,
    start: Mapping[int, Sequence[int]] | None,
    found: list[Plan],
    discarded: list[str],
    *,
    allow_optional: bool,
) -> Plan | None:
    plan = solve_pyvrp(
        prep, t0=t0, deadline=deadline, seed=seed, start=start, allow_optional=allow_optional
    )
    if plan is None and allow_optional:
        discarded.append("pyvrp: no feasible solution in the time limit")
    if plan is None:
        return None
    return _keep(prep, plan, found, discarded)


def _keep(prep: Prepared, plan: Plan, found: list[Plan], discarded: list[str]) -> Plan | None:
    """Re-check an engine's plan; keep it if it passes, else name it in `discarded`."""
    if plan.status == PlanStatus.TIMED_OUT:
        discarded.append(f"{plan.engine}: no plan in the time limit ({plan.engine_status})")
        return None
    problems = recheck(prep.problem, plan, prep.dist_rows, prep.time_rows)
    if problems:
        discarded.append(f"{plan.engine}: failed the re-check: " + "; ".join(problems[:5]))
        return None
    found.append(plan)
    return plan


def _choose(prep: Prepared, found: list[Plan], discarded: list[str], t0: float) -> Plan:
    solve_s = time.perf_counter() - t0
    if not found:
        status = (
            PlanStatus.TIMED_OUT
            if all("no plan" in d or "no feasible" in d for d in discarded)
            else PlanStatus.REJECTED
        )
        plan = empty_plan(
            prep,
            engine=Engine.NONE,
            engine_status="; ".join(discarded),
            solve_s=solve_s,
            found=False,
        )
        return replace(plan, status=status, discarded=tuple(discarded))
    best = found[0]
    for plan in found[1:]:
        if better(plan, best):
            best = plan
    firsts = [p.time_to_first_solution_s for p in found if p.time_to_first_solution_s is not None]
    completes = [
        p.time_to_first_complete_s for p in found if p.time_to_first_complete_s is not None
    ]
    return replace(
        best,
        solve_s=solve_s,
        rechecked=True,
        discarded=tuple(discarded),
        time_to_first_solution_s=min(firsts) if firsts else None,
        time_to_first_complete_s=min(completes) if completes else None,
    )


def _start_drops(
    prep: Prepared, initial: Mapping[str, Sequence[str]] | None
) -> dict[int, list[int]] | None:
    """`initial_routes` (vehicle id -> stop ids) as vehicle index -> candidate drop numbers."""
    if not initial:
        return None
    vehicle_no = {v.id: i for i, v in enumerate(prep.problem.vehicles)}
    drops_of_stop: dict[str, list[int]] = {}
    for k in prep.candidates:
        drops_of_stop.setdefault(prep.problem.stops[prep.drops[k].stop_index].id, []).append(k)
    used: set[int] = set()
    out: dict[int, list[int]] = {}
    for vid, stop_ids in initial.items():
        if vid not in vehicle_no:
            continue
        seq = []
        zones = prep.problem.vehicles[vehicle_no[vid]].zones
        for sid in stop_ids:
            for k in drops_of_stop.get(sid, []):
                # a stop on two vehicles (one per zone) lists on each only what it can carry
                if k not in used and prep.drops[k].zone in zones:
                    used.add(k)
                    seq.append(k)
        out[vehicle_no[vid]] = seq
    return out
