"""Re-planning late in the evening: keep what drivers were told, start from the previous plan.

`replan` warm-starts from the previous plan's routes and, by default, keeps every stop that is
still there on its previous vehicle (order may change): locks, so OR-Tools, from the previous
routes, with guided local search for the whole budget (ILS cannot start from routes). If that
leaves stops the fleet could otherwise serve, it tries again with the vehicles free (locked stops
stay locked), keeping whichever plan serves more; if not, it goes on improving from its own plan
until the budget is spent. With `keep_vehicles=False` and no locks, the problem may fit PyVRP,
which then starts from the previous routes. `compare_plans` counts what changed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from .matrix import MatrixCache
from .model import Plan, Problem, UnassignedReason
from .planner import better, plan_routes
from .search import SearchConfig

__all__ = ["PlanChanges", "compare_plans", "replan"]

# the first, vehicles-kept search's share of the budget; the rest improves or frees the vehicles
_KEPT_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class PlanChanges:
    """What a re-plan changed, stop by stop, against the previous plan."""

    changed_vehicle: tuple[str, ...]  # served before and after, on another vehicle
    changed_order: tuple[str, ...]  # same vehicle, another predecessor among the common stops
    added: tuple[str, ...]  # served now, not before
    dropped: tuple[str, ...]  # served before, not now
    kept_vehicle: int  # served before and after on the same vehicle
    common: int  # served before and after

    @property
    def kept_vehicle_share(self) -> float:
        return self.kept_vehicle / self.common if self.common else 1.0


def compare_plans(before: Plan, after: Plan) -> PlanChanges:
    """Stops that changed vehicle or order between two plans (split stops count by first vehicle)."""
    old_vehicle, new_vehicle = before.vehicle_of(), after.vehicle_of()
    common = set(old_vehicle) & set(new_vehicle)
    changed_vehicle = sorted(s for s in common if old_vehicle[s] != new_vehicle[s])
    old_prev, new_prev = _predecessors(before, common), _predecessors(after, common)
    changed_order = sorted(
        s for s in common if old_vehicle[s] == new_vehicle[s] and old_prev[s] != new_prev[s]
    )
    return PlanChanges(
        changed_vehicle=tuple(changed_vehicle),
        changed_order=tuple(changed_order),
        added=tuple(sorted(set(new_vehicle) - set(old_vehicle))),
        dropped=tuple(sorted(set(old_vehicle) - set(new_vehicle))),
        kept_vehicle=len(common) - len(changed_vehicle),
        common=len(common),
    )


def _predecessors(plan: Plan, among: set[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for route in plan.routes:
        prev: str | None = None
        for sid in dict.fromkeys(route.stop_ids):
            if sid in among:
                out.setdefault(sid, prev)
                prev = sid
    return out


def replan(
    problem: Problem,
    previous: Plan,
    *,
    time_limit_s: float,
    seed: int = 0,
    locked: Mapping[str, str] | None = None,
    keep_vehicles: bool = True,
    search: SearchConfig | None = None,
    cache: MatrixCache | None = None,
) -> tuple[Plan, PlanChanges]:
    """A new plan for `problem` (stops added or removed since `previous`), and what changed.

    `locked` (stop id -> vehicle id) always holds. With `keep_vehicles`, stops served before stay
    on their vehicle as long as that costs no stop its place.
    """
    t0 = time.perf_counter()
    stop_ids = {s.id for s in problem.stops}
    vehicle_ids = {v.id for v in problem.vehicles}
    start = {
        r.vehicle_id: [s for s in r.stop_ids if s in stop_ids]
        for r in previous.routes
        if r.vehicle_id in vehicle_ids
    }
    hard = dict(locked or {})
    if not keep_vehicles:
        plan = plan_routes(
            problem,
            time_limit_s=time_limit_s,
            locked=hard,
            search=search,
            cache=cache,
            seed=seed,
            initial_routes=start,
        )
        return plan, compare_plans(previous, plan)
    on: dict[str, set[str]] = {}
    for vid, sids in start.items():
        for sid in sids:
            on.setdefault(sid, set()).add(vid)
    # a stop whose zones rode on several vehicles cannot be locked to one: it stays free
    kept = {sid: next(iter(vids)) for sid, vids in on.items() if len(vids) == 1}
    kept.update(hard)
    plan = plan_routes(
        problem,
        time_limit_s=time_limit_s * _KEPT_SHARE,
        locked=kept,
        search=search,
        cache=cache,
        seed=seed,
        initial_routes=start,
    )
    remaining = time_limit_s - (time.perf_counter() - t0)
    if remaining > 0.05:
        warm = {r.vehicle_id: r.stop_ids for r in plan.routes}
        if any(u.reason == UnassignedReason.FLEET_EXHAUSTED for u in plan.unassigned):
            # vehicles free (locks hold): may serve what keeping them could not
            more = plan_routes(
                problem,
                time_limit_s=remaining,
                locked=hard,
                search=search,
                cache=cache,
                seed=seed,
                initial_routes=warm,
            )
        else:  # the rest of the budget goes on improving the kept plan
            more = plan_routes(
                problem,
                time_limit_s=remaining,
                locked=kept,
                search=search,
                cache=cache,
                seed=seed + 1,
                initial_routes=warm,
            )
        if more.rechecked and better(more, plan):
            plan = more
    return plan, compare_plans(previous, plan)
