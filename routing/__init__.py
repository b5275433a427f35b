"""groupbuy route planner: plain frozen data in (`Problem`), plain data out (`Plan`); OR-Tools and
PyVRP inside, every plan re-checked.

Knows nothing of the database or Flask; see docs/routing.md.
"""

from .check import recheck
from .echelon import DEFAULT_HANDLING_S, TwoEchelonPlan, plan_two_echelons
from .matrix import GreatCircleSource, MatrixCache, OsrmError, OsrmTable, build_matrices, geodesic_m
from .model import (
    UNREACHABLE,
    Break,
    Depot,
    Drop,
    Engine,
    LatLon,
    Load,
    Plan,
    PlanCost,
    PlanStatus,
    Problem,
    Route,
    RoutingInputError,
    Stop,
    TempZone,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Vehicle,
    Visit,
    expand_drops,
)
from .parallel import (
    SolveCancelled,
    SolveDeadlineExceeded,
    SolveFailed,
    SolveHandle,
    plan_routes_on_cores,
    solve_in_subprocess,
    solve_many,
)
from .planner import ENGINES, plan_routes
from .replan import PlanChanges, compare_plans, replan
from .search import DEFAULT_SEARCH, SearchConfig

__all__ = [
    "DEFAULT_HANDLING_S",
    "DEFAULT_SEARCH",
    "ENGINES",
    "Drop",
    "Engine",
    "PlanStatus",
    "expand_drops",
    "recheck",
    "PlanChanges",
    "SolveCancelled",
    "SolveDeadlineExceeded",
    "SolveFailed",
    "SolveHandle",
    "TwoEchelonPlan",
    "compare_plans",
    "plan_routes_on_cores",
    "plan_two_echelons",
    "replan",
    "solve_in_subprocess",
    "solve_many",
    "UNREACHABLE",
    "Break",
    "Depot",
    "GreatCircleSource",
    "LatLon",
    "Load",
    "MatrixCache",
    "OsrmError",
    "OsrmTable",
    "Plan",
    "PlanCost",
    "Problem",
    "Route",
    "RoutingInputError",
    "SearchConfig",
    "Stop",
    "TempZone",
    "TimeWindow",
    "Unassigned",
    "UnassignedReason",
    "Vehicle",
    "Visit",
    "build_matrices",
    "geodesic_m",
    "plan_routes",
]
