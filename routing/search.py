"""How OR-Tools searches: every tunable choice of the planner lives here, in one place.

`DEFAULT_SEARCH` is what `plan_routes` uses; `PORTFOLIO` lists the variants run side by side when
more than one core is given. Change them here after measuring (see docs/routing.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from google.protobuf.duration_pb2 import Duration
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

__all__ = ["DEFAULT_SEARCH", "PORTFOLIO", "SearchConfig", "search_parameters"]

_FS = routing_enums_pb2.FirstSolutionStrategy
_LS = routing_enums_pb2.LocalSearchMetaheuristic


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """One search strategy. Names are OR-Tools enum names, so configs print and compare plainly."""

    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    gls_lambda: float = 0.1
    use_iterated_local_search: bool = False
    # local search operators switched on/off beyond OR-Tools' defaults, e.g. {"use_or_opt": True}
    operators: dict[str, bool] = field(default_factory=dict)
    # first solutions on many nodes: consider only the nearest neighbours of each node
    neighbors_ratio: float = 1.0
    min_neighbors: int = 1
    # larger instances: a cheaper construction keeps the first plan within seconds
    large_first_solution: str = "PATH_CHEAPEST_ARC"
    large_threshold: int = 400
    log_search: bool = False

    def __hash__(self) -> int:
        return hash((self.first_solution, self.metaheuristic, self.gls_lambda,
                     tuple(sorted(self.operators.items()))))


DEFAULT_SEARCH = SearchConfig()

# Run side by side on separate cores (best plan wins); the first entry is DEFAULT_SEARCH.
PORTFOLIO: tuple[SearchConfig, ...] = (
    DEFAULT_SEARCH,
    replace(DEFAULT_SEARCH, first_solution="SAVINGS", gls_lambda=0.2),
)


def search_parameters(config: SearchConfig, *, time_limit_s: float, num_nodes: int,
                      solution_limit: int | None = None):
    """The RoutingSearchParameters for `config` on a model with `num_nodes` nodes."""
    params = pywrapcp.DefaultRoutingSearchParameters()
    first = config.first_solution if num_nodes < config.large_threshold else config.large_first_solution
    params.first_solution_strategy = getattr(_FS, first)
    params.local_search_metaheuristic = getattr(_LS, config.metaheuristic)
    params.guided_local_search_lambda_coefficient = config.gls_lambda
    if config.use_iterated_local_search:
        params.use_iterated_local_search = True
    ops = params.local_search_operators
    for name, on in config.operators.items():
        setattr(ops, name, 3 if on else 2)  # OptionalBoolean: BOOL_TRUE=3, BOOL_FALSE=2
    gci = params.global_cheapest_insertion_first_solution_parameters
    gci.neighbors_ratio = config.neighbors_ratio
    gci.min_neighbors = config.min_neighbors
    params.time_limit.CopyFrom(_duration(time_limit_s))
    if solution_limit is not None:
        params.solution_limit = solution_limit
    params.log_search = config.log_search
    return params


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(max(1, int(seconds * 1e9)))
    return d
