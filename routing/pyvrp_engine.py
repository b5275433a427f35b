"""The PyVRP engine: a prepared problem that fits PyVRP's model, mapped to it without loss.

Fits: no break, no soft windows, no locked stop. The mapping (docs/routing.md, "Two engines"):
- one location per depot and stop (the matrix rows as they are, passed as arrays), one client per
  candidate (stop, zone) drop at its stop's location;
- capacity dimensions that some drop uses, then one dimension per zone that some vehicle lacks:
  each drop of that zone needs 1, an equipped vehicle holds every drop, an unequipped one 0. PyVRP
  penalises load excess during the search and reports a solution with excess as infeasible, so a
  returned feasible solution never carries a zone its vehicle lacks (an edge profile forbidding
  the zone would only make the edges dear, never infeasible);
- a stop with several windows: one client per window in a mutually exclusive, optional group;
- every drop optional, its prize the same penalty OR-Tools pays for leaving it out -- or, when the
  fleet looks large enough (`_fleet_may_suffice`), first every drop required: PyVRP searches
  required clients 2-3 times faster (measured: RC208 and X-n101 at 5 s, 0.00-0.16 % against
  0.44-0.86 % optional). If that finds no feasible plan by `required_try_until` (a share of the
  time, less on a small problem), the rest of it goes to the optional model (started from nothing
  served, which is feasible) -- or, with `allow_optional=False` (the planner's default engine),
  back to the caller: on a fleet too small PyVRP's optional model is far behind OR-Tools
  (city-200-small-fleet at 5 s: 317 of 361 drops left out, OR-Tools 66);
- one vehicle type per group of vehicles alike in depots, capacity, zones, shift, maximum
  duration, fixed cost and profile; one PyVRP profile (distance, duration matrix) per profile;
- service time folded into the duration matrix exactly as the OR-Tools model does (service at the
  from-location, 0 between drops of one stop).

`search_routes` runs the same all-required model and gives back only the routes (drop numbers),
for a caller that finishes them itself: the break path (routing/breaks.py).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .model import UNREACHABLE, Engine, Plan, Problem, TempZone
from .prepare import Prepared, build_plan, build_route, schedule

__all__ = ["BREAKS_ONLY", "misfit", "search_routes", "solve_pyvrp"]

# what `misfit` says when a driver break is the only thing PyVRP cannot express
BREAKS_ONLY = "driver breaks"


def misfit(problem: Problem, locked: Mapping[str, str] | None = None) -> str | None:
    """Why the problem does not fit PyVRP's model, or None when it does."""
    if locked:
        return "locked stops"
    if problem.soft_windows:
        return "soft windows"
    if any(v.break_ is not None for v in problem.vehicles):
        return BREAKS_ONLY
    return None


class _Mapped:
    """The ProblemData and how to read PyVRP's clients and vehicle types back."""

    def __init__(self, p: Prepared, *, required: bool):
        import pyvrp

        problem = p.problem
        n_depots = p.n_depots
        n_rows = p.dist_rows.shape[0]
        cand = [p.drops[k] for k in p.candidates]
        dims = [d for d in range(3) if any(dr.load.as_tuple()[d] for dr in cand)]
        zone_dims = [
            z
            for z in TempZone
            if any(dr.zone == z for dr in cand) and any(z not in v.zones for v in problem.vehicles)
        ]
        self.profiles = sorted({v.profile for v in problem.vehicles})
        locations = []
        points = [d.location for d in problem.depots] + [s.location for s in problem.stops]
        for pt in points:
            locations.append(
                pyvrp.Location(pt.lon, pt.lat) if pt is not None else pyvrp.Location(0, 0)
            )
        depots = [pyvrp.Depot(i) for i in range(n_depots)]
        # service folded in: leaving a stop's row costs its service time, the depot's nothing
        service_row = np.zeros(n_rows, dtype=np.int64)
        service_row[n_depots:] = [s.service_s for s in problem.stops]
        dist = np.minimum(p.dist_rows, UNREACHABLE).astype(np.int64)
        np.fill_diagonal(dist, 0)  # a stop to itself; PyVRP insists
        durations: list[Any] = []
        for profile in self.profiles:
            t = p.time_rows[profile]
            dur = np.where(t >= UNREACHABLE, UNREACHABLE, t + service_row[:, None])
            np.fill_diagonal(dur, 0)
            durations.append(dur.astype(np.int64))
        self.client_drop: list[int] = []  # PyVRP client -> drop number
        self.client_window: list[tuple[int, int] | None] = []
        clients: list[Any] = []
        groups: list[Any] = []
        count = len(cand)
        horizon = max(v.shift_end_s for v in problem.vehicles)
        for k in p.candidates:
            drop = p.drops[k]
            stop = problem.stops[drop.stop_index]
            load = drop.load.as_tuple()
            delivery = [load[d] for d in dims] + [1 if drop.zone == z else 0 for z in zone_dims]
            windows: list[tuple[int, int] | None] = [
                (w.open_s, w.close_s) for w in sorted(stop.windows, key=lambda w: w.open_s)
            ]
            members = []
            for w in windows or [None]:
                early, late = w if w is not None else (0, horizon)
                members.append(len(clients))
                grouped = len(windows) > 1
                clients.append(
                    pyvrp.Client(
                        n_depots + drop.stop_index,
                        delivery=delivery,
                        tw_early=int(early),
                        tw_late=int(late),
                        prize=0 if required else int(p.penalty),
                        required=required and not grouped,
                        group=len(groups) if grouped else None,
                    )
                )
                self.client_drop.append(k)
                self.client_window.append(w)
            if len(windows) > 1:
                groups.append(pyvrp.ClientGroup(members, required=required))
        kinds: dict[tuple, list[int]] = {}
        for i, v in enumerate(problem.vehicles):
            key = (
                v.start_depot,
                v.end,
                v.capacity,
                v.zones,
                v.shift_start_s,
                v.shift_end_s,
                v.max_duration_s,
                v.fixed_cost,
                v.profile,
            )
            kinds.setdefault(key, []).append(i)
        depot_no = {d.id: i for i, d in enumerate(problem.depots)}
        self.type_vehicles: list[list[int]] = []
        types = []
        for members_v in kinds.values():
            v = problem.vehicles[members_v[0]]
            cap = v.capacity.as_tuple()
            capacity = [cap[d] for d in dims] + [count if z in v.zones else 0 for z in zone_dims]
            kw: dict[str, Any] = {}
            if v.max_duration_s is not None:
                kw["shift_duration"] = int(v.max_duration_s)
            types.append(
                pyvrp.VehicleType(
                    num_available=len(members_v),
                    capacity=capacity,
                    start_depot=depot_no[v.start_depot],
                    end_depot=depot_no[v.end],
                    fixed_cost=int(v.fixed_cost),
                    tw_early=int(v.shift_start_s),
                    tw_late=int(v.shift_end_s),
                    profile=self.profiles.index(v.profile),
                    **kw,
                )
            )
            self.type_vehicles.append(members_v)
        matrices: list[Any] = [dist] * len(self.profiles)
        self.data = pyvrp.ProblemData(
            locations, clients, depots, types, matrices, list(durations), groups
        )
        self.first_client_of_drop: dict[int, int] = {}
        for c, k in enumerate(self.client_drop):
            self.first_client_of_drop.setdefault(k, c)

    def initial(self, p: Prepared, start: Mapping[int, Sequence[int]]):
        """A PyVRP solution from routes of drop numbers (vehicle index -> drops), or None."""
        import pyvrp

        type_of = {v: t for t, vs in enumerate(self.type_vehicles) for v in vs}
        node_of = p.node_of()
        routes = []
        seen: set[int] = set()
        for v, drops in start.items():
            kept = [k for k in drops if k in self.first_client_of_drop and k not in seen]
            seen.update(kept)
            # a stop with several windows: the copy for the window the route reaches it in
            times, _ = schedule(
                p, v, [node_of[k] for k in kept], p.problem.vehicles[v].shift_start_s
            )
            clients = [
                pyvrp.Activity(pyvrp.ActivityType.CLIENT, self._client(k, at))
                for k, at in zip(kept, times, strict=True)
            ]
            if clients:
                routes.append(pyvrp.Route(self.data, clients, type_of[v]))
        try:
            return pyvrp.Solution(self.data, routes) if routes else None
        except RuntimeError:
            return None

    def _client(self, k: int, at: int) -> int:
        """Drop `k`'s client whose window holds `at` (its first when none does)."""
        first = c = self.first_client_of_drop[k]
        while c < len(self.client_drop) and self.client_drop[c] == k:
            window = self.client_window[c]
            if window is not None and window[0] <= at <= window[1]:
                return c
            c += 1
        return first


# Every drop required: how long to look for a first feasible plan before giving up. At most a
# share of the budget (a quarter was too little on 1,706 drops on two cores: first feasible at
# ~4 s of ~18 s), and no longer than a fleet that can serve everything needs: a floor plus a time
# per drop (first feasible at <= 0.3 s on Solomon and X up to 1,001 drops; 2.4 s on
# city-1000-fits, 1,706 drops, 7.0 s on a loaded machine). Past that the fleet is taken to be too
# small and the rest of the budget is the caller's (city-200-small-fleet, 361 drops, at 20 s:
# half the budget spent before OR-Tools began made the plan 16.7 % dearer than OR-Tools alone).
REQUIRED_TRY_SHARE = 0.5
REQUIRED_TRY_MIN_S = 1.5
REQUIRED_TRY_PER_DROP_S = 0.005


def required_try_until(began: float, deadline: float, drops: int) -> float:
    """When the all-required search stops if it has no feasible plan yet (perf_counter)."""
    return began + min(
        REQUIRED_TRY_SHARE * (deadline - began),
        max(REQUIRED_TRY_MIN_S, REQUIRED_TRY_PER_DROP_S * drops),
    )


def _fleet_may_suffice(p: Prepared) -> bool:
    """Per zone and capacity dimension, the equipped fleet holds everything (a necessary
    condition only: windows and shifts may still leave drops out)."""
    problem = p.problem
    for zone in TempZone:
        need = [0, 0, 0]
        for k in p.candidates:
            if p.drops[k].zone == zone:
                need = [a + b for a, b in zip(need, p.drops[k].load.as_tuple(), strict=True)]
        have = [0, 0, 0]
        for v in problem.vehicles:
            if zone in v.zones:
                have = [a + b for a, b in zip(have, v.capacity.as_tuple(), strict=True)]
        if any(n > h for n, h in zip(need, have, strict=True)):
            return False
    return True


def solve_pyvrp(
    p: Prepared,
    *,
    t0: float,
    deadline: float,
    seed: int,
    start: Mapping[int, Sequence[int]] | None = None,
    optional_deadline: float | None = None,
    allow_optional: bool = True,
) -> Plan | None:
    """PyVRP until `deadline` (perf_counter); None when it found no feasible solution. When the
    all-required model finds nothing (or the fleet cannot hold everything), the optional model
    runs until `optional_deadline` (default `deadline`) if `allow_optional`, else None."""
    from pyvrp.stop import MaxRuntime

    began = time.perf_counter()
    if _fleet_may_suffice(p):
        mapped = _Mapped(p, required=True)
        initial = mapped.initial(p, start) if start else None
        # one uninterrupted run: restarting from the first feasible plan was measured worse
        # (R208 at 10 s: 716.1 against 702.5 in one run)
        stop = _FeasibleInTime(required_try_until(began, deadline, len(p.candidates)), deadline)
        result = _run(mapped, stop, seed, initial)
        if result.best.is_feasible():
            first = _first_feasible(result, began - t0)
            return _read(p, mapped, result, t0, first, "all drops required")
    if not allow_optional:
        return None
    mapped = _Mapped(p, required=False)
    initial = mapped.initial(p, start) if start else None
    if initial is None:  # nothing served is feasible here: PyVRP never ends without a plan
        import pyvrp

        initial = pyvrp.Solution(mapped.data, [])
    until = optional_deadline if optional_deadline is not None else deadline
    result = _run(mapped, MaxRuntime(max(0.05, until - time.perf_counter())), seed, initial)
    first = _first_feasible(result, began - t0)
    if not result.best.is_feasible():
        return None
    return _read(p, mapped, result, t0, first, "drops optional")


# what CostEvaluator.cost returns for an infeasible solution is "a very large number"
_INFEASIBLE_COST = 2**62


class _FeasibleInTime:
    """Stop at `deadline`, or at `give_up_at` while the best solution is still infeasible."""

    def __init__(self, give_up_at: float, deadline: float):
        self.give_up_at = give_up_at
        self.deadline = deadline

    def __call__(self, best_cost: float) -> bool:
        now = time.perf_counter()
        return now >= self.deadline or (now >= self.give_up_at and best_cost >= _INFEASIBLE_COST)


def _run(mapped: _Mapped, stop, seed: int, initial, params: Any = None):
    import pyvrp
    from pyvrp.exceptions import PenaltyBoundWarning

    extra = {} if params is None else {"params": params}
    with warnings.catch_warnings():
        # the all-required model of a problem that cannot serve everything warns before giving
        # up; that outcome is expected and handled (the caller falls back)
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        return pyvrp.solve(
            mapped.data,
            stop=stop,
            seed=seed,
            collect_stats=True,
            display=False,
            initial_solution=initial,
            **extra,
        )


def _first_feasible(result, offset: float) -> float | None:
    elapsed = offset
    for spent, datum in zip(result.stats.runtimes, result.stats.data, strict=False):
        elapsed += spent
        if datum.best_feas:
            return elapsed
    return None


def _read(p: Prepared, mapped: _Mapped, result, t0: float, first: float | None, mode: str) -> Plan:
    best = result.best
    free = {t: list(vs) for t, vs in enumerate(mapped.type_vehicles)}
    routes_by_vehicle = {}
    served: set[int] = set()
    node_of = p.node_of()
    for route in best.routes():
        v = free[route.vehicle_type()].pop(0)
        clients = [a.idx for a in route if a.is_client()]
        nodes = [node_of[mapped.client_drop[c]] for c in clients]
        windows = [mapped.client_window[c] for c in clients]
        times, end = schedule(p, v, nodes, int(route.start_time()), windows)
        served.update(mapped.client_drop[c] for c in clients)
        routes_by_vehicle[v] = build_route(
            p, v, list(zip(nodes, times, strict=True)), int(route.start_time()), end
        )
    routes = [routes_by_vehicle[v] for v in sorted(routes_by_vehicle)]
    status = f"feasible ({mode}), {result.num_iterations} iterations"
    return build_plan(
        p,
        routes,
        served,
        engine=Engine.PYVRP,
        engine_status=status,
        first_s=first,
        solve_s=time.perf_counter() - t0,
        first_complete_s=first if len(served) == len(p.candidates) else None,
    )


# ---------------------------------------------------------------------------------------------
# Routes only, for a caller that finishes them itself (routing/breaks.py)


def search_routes(
    p: Prepared,
    *,
    give_up_at: float,
    deadline: float,
    seed: int,
    start: Mapping[int, Sequence[int]] | None = None,
    on_first_feasible: Callable[[dict[int, list[int]]], None] | None = None,
) -> tuple[dict[int, list[int]], str] | None:
    """PyVRP on the all-required model: its best routes as vehicle index -> drop numbers in
    order, and its status; None when the fleet cannot hold everything or no feasible solution
    came before `give_up_at` (perf_counter), else it runs until `deadline`. `on_first_feasible`
    is called once, inside the search, with the routes of the first feasible solution (the
    search waits for it)."""
    from pyvrp import IteratedLocalSearchParams, SolveParams
    from pyvrp.IteratedLocalSearch import IteratedLocalSearchCallbacks

    if not _fleet_may_suffice(p):
        return None
    mapped = _Mapped(p, required=True)
    initial = mapped.initial(p, start) if start else None
    params = None
    if on_first_feasible is not None:
        report = on_first_feasible

        class _First(IteratedLocalSearchCallbacks):
            done = False

            def on_best(self, best) -> None:
                if not self.done and best.is_feasible():
                    self.done = True
                    report(_drop_routes(mapped, best))

        params = SolveParams(ils=IteratedLocalSearchParams(callbacks=_First()))
    result = _run(mapped, _FeasibleInTime(give_up_at, deadline), seed, initial, params)
    if not result.best.is_feasible():
        return None
    return (
        _drop_routes(mapped, result.best),
        f"feasible (all drops required), {result.num_iterations} iterations",
    )


def _drop_routes(mapped: _Mapped, solution) -> dict[int, list[int]]:
    """A PyVRP solution's routes as vehicle index -> drop numbers, vehicles numbered as `_read`
    does (each vehicle type's vehicles in order)."""
    free = {t: list(vs) for t, vs in enumerate(mapped.type_vehicles)}
    out: dict[int, list[int]] = {}
    for route in solution.routes():
        v = free[route.vehicle_type()].pop(0)
        out[v] = [mapped.client_drop[a.idx] for a in route if a.is_client()]
    return out
