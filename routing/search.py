"""How OR-Tools searches: every tunable choice of the planner lives here, in one place.

`DEFAULT_SEARCH` is what `plan_routes` uses; `PORTFOLIO` lists the variants run side by side when
more than one core is given. Change them here after measuring (see docs/routing.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from google.protobuf import text_format
from google.protobuf.duration_pb2 import Duration
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

__all__ = [
    "ALL_OPERATORS_SEARCH",
    "DEFAULT_SEARCH",
    "GLS_SEARCH",
    "NO_INACTIVE_OPERATORS",
    "PORTFOLIO",
    "SearchConfig",
    "search_parameters",
]

_FS = routing_enums_pb2.FirstSolutionStrategy
_LS = routing_enums_pb2.LocalSearchMetaheuristic


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """One search strategy. Names are OR-Tools enum names, so configs print and compare plainly."""

    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    # with iterated local search set below, this is ignored (GLS would never give ILS a turn)
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    gls_lambda: float = 0.1
    # text-format body of `iterated_local_search_parameters`; when set, the solve runs through
    # RoutingModel.SolveWithIteratedLocalSearch (SolveWithParameters ignores ILS).
    iterated_local_search: str | None = None
    # A warm start (SolveFromAssignmentWithParameters, used by replan and after PyVRP) cannot run
    # ILS: OR-Tools has no ILS entry point taking an assignment, and with ILS switched on the
    # metaheuristic was left unset, i.e. greedy descent, which stopped at the first local optimum
    # (0.04 s of a 4 s budget). A warm start therefore runs this metaheuristic for its whole limit.
    warm_metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    # local search operators switched on/off beyond OR-Tools' defaults, e.g. {"use_or_opt": True}
    operators: dict[str, bool] = field(default_factory=dict)
    # first solutions on many nodes: consider only the nearest neighbours of each node
    neighbors_ratio: float = 1.0
    min_neighbors: int = 1
    # larger instances: a cheaper construction keeps the first plan within seconds
    large_first_solution: str = "PATH_CHEAPEST_ARC"
    large_threshold: int = 400
    # large problems: whole solve for `decompose_first` of the time, then groups of close routes
    # re-solved for `decompose_sub_s` each (routing/decompose.py); None switches it off
    decompose_threshold: int | None = None
    decompose_first: float = 0.4
    decompose_routes: int = 6
    decompose_sub_s: float = 3.0
    # anything else, as text-format RoutingSearchParameters merged last (e.g. operator switches)
    extra: str = ""
    log_search: bool = False

    def __hash__(self) -> int:
        return hash(
            (
                self.first_solution,
                self.metaheuristic,
                self.gls_lambda,
                self.warm_metaheuristic,
                self.iterated_local_search,
                self.extra,
                self.decompose_threshold,
                tuple(sorted(self.operators.items())),
            )
        )


# Ruin (SISR) and recreate, simulated-annealing acceptance: measured against the alternatives
# (docs/routing.md, "Choosing the search"): well ahead of guided local search on Solomon.
ILS_SISR_SA = """
perturbation_strategy: RUIN_AND_RECREATE
ruin_recreate_parameters {
  ruin_strategies { sisr { max_removed_sequence_size: 10 avg_num_removed_visits: 10
                           bypass_factor: 0.01 } }
  recreate_strategy { heuristic: LOCAL_CHEAPEST_INSERTION }
}
improve_perturbed_solution: true
reference_solution_acceptance_strategy {
  simulated_annealing { cooling_schedule_strategy: EXPONENTIAL automatic_temperatures: true } }
best_solution_acceptance_strategy { greedy_descent {} }
"""

# Inside ILS, the operators that make nodes inactive and the insertion LNS operators off: at 5 s on
# six hard Solomon instances 2.49 % mean against 3.66 % with them (docs/routing.md, "Choosing the
# search"). Neighbour lists (`ls_operator_min_neighbors` 45) were measured and are not used: with
# them ILS stops improving the first plan (38 % mean), with the minimum at 1 as before (16-18 %).
NO_INACTIVE_OPERATORS: dict[str, bool] = {
    name: False
    for name in (
        "use_make_inactive",
        "use_make_chain_inactive",
        "use_inactive_lns",
        "use_global_cheapest_insertion_path_lns",
        "use_local_cheapest_insertion_path_lns",
        "use_relocate_path_global_cheapest_insertion_insert_unperformed",
        "use_global_cheapest_insertion_expensive_chain_lns",
        "use_local_cheapest_insertion_expensive_chain_lns",
        "use_global_cheapest_insertion_close_nodes_lns",
        "use_local_cheapest_insertion_close_nodes_lns",
    )
}

GLS_SEARCH = SearchConfig()
# Measured (docs/routing.md): ILS from parallel cheapest insertion; at 200 stops and more, a whole
# solve for 30 % of the time and then groups of 4 close routes re-solved 1.5 s each
# (X-n401 at 60 s: 1.7 % against 2.3 % without; X-n1001: 6.8 % against ~10 %).
DEFAULT_SEARCH = SearchConfig(
    iterated_local_search=ILS_SISR_SA,
    decompose_threshold=200,
    decompose_first=0.3,
    decompose_routes=4,
    decompose_sub_s=1.5,
    operators=NO_INACTIVE_OPERATORS,
)
# before issue 12: every default operator on (kept for measuring against)
ALL_OPERATORS_SEARCH = replace(DEFAULT_SEARCH, operators={})

# Run side by side on separate cores (best plan wins); the first entry is DEFAULT_SEARCH.
PORTFOLIO: tuple[SearchConfig, ...] = (
    DEFAULT_SEARCH,
    replace(DEFAULT_SEARCH, first_solution="PARALLEL_SAVINGS"),
)


def search_parameters(
    config: SearchConfig,
    *,
    time_limit_s: float,
    num_nodes: int,
    solution_limit: int | None = None,
    warm_start: bool = False,
):
    """The RoutingSearchParameters for `config` on a model with `num_nodes` nodes; with
    `warm_start`, for SolveFromAssignmentWithParameters (no ILS: `warm_metaheuristic`)."""
    params = pywrapcp.DefaultRoutingSearchParameters()
    first = (
        config.first_solution if num_nodes < config.large_threshold else config.large_first_solution
    )
    params.first_solution_strategy = getattr(_FS, first)
    params.guided_local_search_lambda_coefficient = config.gls_lambda
    if warm_start:
        params.local_search_metaheuristic = getattr(_LS, config.warm_metaheuristic)
    elif config.iterated_local_search is not None:
        params.use_iterated_local_search = True
        text_format.Merge(config.iterated_local_search, params.iterated_local_search_parameters)
    else:
        params.local_search_metaheuristic = getattr(_LS, config.metaheuristic)
    ops = params.local_search_operators
    for name, on in config.operators.items():
        setattr(ops, name, 3 if on else 2)  # OptionalBoolean: BOOL_TRUE=3, BOOL_FALSE=2
    gci = params.global_cheapest_insertion_first_solution_parameters
    gci.neighbors_ratio = config.neighbors_ratio
    gci.min_neighbors = config.min_neighbors
    if config.extra:
        text_format.Merge(config.extra, params)
    params.time_limit.CopyFrom(_duration(time_limit_s))
    if solution_limit is not None:
        params.solution_limit = solution_limit
    params.log_search = config.log_search
    return params


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(max(1, int(seconds * 1e9)))
    return d
