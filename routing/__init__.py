"""groupbuy route planner: plain frozen data in (`Problem`), plain data out (`Plan`), OR-Tools inside.

Knows nothing of the database or Flask; see docs/routing.md.
"""

from .matrix import GreatCircleSource, MatrixCache, OsrmError, OsrmTable, build_matrices, geodesic_m
from .model import (
    UNREACHABLE,
    Break,
    Depot,
    LatLon,
    Load,
    Plan,
    PlanCost,
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
)
from .search import DEFAULT_SEARCH, SearchConfig
from .solver import plan_routes

__all__ = [
    "DEFAULT_SEARCH",
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
