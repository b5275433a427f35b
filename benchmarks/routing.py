"""Route planner benchmark: the planner's default, OR-Tools alone, PyVRP alone (the peer), one core
each in the same run, and the planner on two cores in a column of its own.

    python -m benchmarks.routing solomon/R101.txt x/X-n101-k25.vrp --seconds 30 [--json out.json]
    python -m benchmarks.routing solomon --seconds 30            # a whole directory
    python -m benchmarks.routing "solomon/RC1*" --seconds 10 --columns default,pyvrp
    python -m benchmarks.routing "solomon/R1*" --seconds 10 --columns ortools --ortools-search no-inactive
    python -m benchmarks.routing --scaling                       # first plan, 100 and 1,000 stops
    python -m benchmarks.routing --product --seconds 20          # demo-city problems (_routing_city)
    python -m benchmarks.routing --product city-1000-fits        # one of them

Relative paths are tried as given, then under ../shared/benchmarks/. Columns: `default`
(`plan_routes`, engine chosen by the planner), `ortools` (`engine="ortools"`), `pyvrp` (PyVRP
0.14.1 on the instance's own integers, not through the planner), `cores` (`plan_routes_on_cores`,
2 cores). One-core columns run two at a time in child processes, one core each; `cores` runs
alone afterwards. Every plan is re-checked by `_routing_check.verify`, which reads the instance
file on its own; a gap below the best-known by more than rounding is an ERROR, not a result. The
1-minute load average is printed with every instance: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks._routing_check import below_bks, verify
from benchmarks._routing_instances import Instance, find, gap, load, to_problem
from routing import DEFAULT_SEARCH, SearchConfig, plan_routes
from routing.parallel import plan_routes_on_cores
from routing.search import ALL_OPERATORS_SEARCH, NO_INACTIVE_OPERATORS

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
COLUMNS = ("default", "ortools", "pyvrp", "cores")
LABELS = {
    "default": "default (1 core)",
    "ortools": "OR-Tools alone",
    "pyvrp": "PyVRP peer",
    "cores": "default (2 cores)",
}

# OR-Tools variants measured for issue 12 (docs/routing.md, "Choosing the search")
# neighbour lists: each node looks at its 45 nearest (the ratio alone, 1.0 by default, is all)
_NEIGHBORS_45 = "ls_operator_neighbors_ratio: 0.01 ls_operator_min_neighbors: 45"
ORTOOLS_SEARCHES: dict[str, SearchConfig] = {
    "default": DEFAULT_SEARCH,  # = no-inactive since issue 12
    "all-operators": ALL_OPERATORS_SEARCH,
    "no-inactive": replace(ALL_OPERATORS_SEARCH, operators=NO_INACTIVE_OPERATORS),
    "neighbors45": replace(ALL_OPERATORS_SEARCH, extra=_NEIGHBORS_45),
    "no-inactive+neighbors45": replace(
        ALL_OPERATORS_SEARCH, operators=NO_INACTIVE_OPERATORS, extra=_NEIGHBORS_45
    ),
}


def _planner(inst: Instance, seconds: float, seed: int, column: str, search: str) -> dict:
    t0 = time.perf_counter()
    problem = to_problem(inst)
    if column == "cores":
        plan = plan_routes_on_cores(problem, time_limit_s=seconds, cores=2, seed=seed)
    elif column == "ortools":
        plan = plan_routes(
            problem,
            time_limit_s=seconds,
            seed=seed,
            engine="ortools",
            search=ORTOOLS_SEARCHES[search],
        )
    else:
        plan = plan_routes(problem, time_limit_s=seconds, seed=seed)
    return {
        "routes": [[int(s) for s in r.stop_ids] for r in plan.routes],
        "first_s": plan.time_to_first_complete_s,
        "wall_s": time.perf_counter() - t0,
        "engine": str(plan.engine),
        "status": str(plan.status),
        "unassigned": len(plan.unassigned),
        "discarded": list(plan.discarded),
    }


def _pyvrp(inst: Instance, seconds: float, seed: int) -> dict:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    t0 = time.perf_counter()
    if inst.kind == "x":
        data = pyvrp.read(str(inst.path), round_func="round")
    else:  # same integer data as ours (×10 truncated): build it, never trust a reader's rounding
        m = pyvrp.Model()
        locs = [m.add_location(float(x), float(y)) for x, y in inst.coords]
        assert inst.windows is not None
        depot = m.add_depot(
            locs[0], tw_early=int(inst.windows[0, 0]), tw_late=int(inst.windows[0, 1])
        )
        m.add_vehicle_type(
            num_available=inst.num_vehicles,
            capacity=inst.capacity,
            start_depot=depot,
            end_depot=depot,
            tw_early=int(inst.windows[0, 0]),
            tw_late=int(inst.windows[0, 1]),
        )
        for c in range(1, inst.customers + 1):
            m.add_client(
                locs[c],
                delivery=int(inst.demand[c]),
                service_duration=int(inst.service[c]),
                tw_early=int(inst.windows[c, 0]),
                tw_late=int(inst.windows[c, 1]),
            )
        for i, a in enumerate(locs):
            for j, b in enumerate(locs):
                m.add_edge(a, b, distance=int(inst.dist[i, j]), duration=int(inst.dist[i, j]))
        data = m.data()
    built = time.perf_counter() - t0
    res = pyvrp.solve(data, stop=MaxRuntime(max(0.1, seconds - built)), seed=seed, display=False)
    # activities number clients from 0; the instance numbers them after its depot(s)
    routes = [[a.idx + data.num_depots for a in r if a.is_client()] for r in res.best.routes()]
    first = None
    elapsed = built
    for runtime, datum in zip(res.stats.runtimes, res.stats.data, strict=False):
        elapsed += runtime
        if datum.best_feas:
            first = elapsed
            break
    return {
        "routes": routes,
        "first_s": first,
        "wall_s": time.perf_counter() - t0,
        "engine": "pyvrp (peer)",
        "status": "feasible" if res.is_feasible() else "infeasible",
        "unassigned": 0,
        "discarded": [],
    }


def _child(column: str, inst: Instance, seconds: float, seed: int, search: str, conn) -> None:
    try:
        if column == "pyvrp":
            conn.send(_pyvrp(inst, seconds, seed))
        else:
            conn.send(_planner(inst, seconds, seed, column, search))
    except BaseException as exc:  # report, do not hang the parent
        conn.send({"error": repr(exc)})
    finally:
        conn.close()


def _run_side_by_side(
    columns: list[str], inst: Instance, seconds: float, seed: int, search: str
) -> dict[str, dict]:
    """One-core columns, two at a time, each in its own process (one core each)."""
    ctx = mp.get_context("spawn")
    out: dict[str, dict] = {}
    for i in range(0, len(columns), 2):
        running = []
        for column in columns[i : i + 2]:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_child, args=(column, inst, seconds, seed, search, send), daemon=True
            )
            proc.start()
            send.close()
            running.append((column, proc, recv))
        for column, proc, recv in running:
            out[column] = recv.recv() if recv.poll(seconds + 180) else {"error": "no answer"}
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
    return out


def _judge(inst: Instance, r: dict) -> dict:
    """The independent verdict on one column's routes, and the gap only when it can be true."""
    if "error" in r:
        return r
    feasible, why, cost = verify(inst.path, r["routes"])
    r.update(
        feasible=feasible, why=why, cost=cost, vehicles=len(r["routes"]), gap=None, below_bks=False
    )
    if feasible:
        if below_bks(cost, inst.bks, inst.scale):
            r["below_bks"] = True
            r["why"] = f"ERROR: {cost:.1f} below the best known {inst.bks} by more than rounding"
        else:
            r["gap"] = gap(cost, inst.bks)
    return r


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _row(r: dict) -> str:
    if "error" in r:
        return f"error: {r['error']}"
    if r["below_bks"]:
        flag = r["why"]
    else:
        flag = "ok" if r["feasible"] else f"INFEASIBLE ({r['why']})"
    return (
        f"{r['vehicles']:>3} {r['cost']:>10.1f} {_fmt(r['gap'], '>6.2f')}% "
        f"{_fmt(r['first_s'], '>6.2f')}s {r.get('engine', ''):<13} {flag}"
    )


def run(args: argparse.Namespace) -> int:
    paths = find(args.instances or ["solomon"], DEFAULT_ROOT)
    columns = [c.strip() for c in args.columns.split(",")]
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise SystemExit(f"unknown columns {sorted(unknown)}; choose from {COLUMNS}")
    one_core = [c for c in columns if c != "cores"]
    print(
        f"# routing benchmark: {len(paths)} instances, {args.seconds:g} s each, seed {args.seed},"
        f" columns {','.join(columns)}, OR-Tools search {args.ortools_search!r}, "
        f"{os.cpu_count()} cpus, load at start {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(
        f"{'instance':<14}{'BKS':>10} | {'column':<18} {'veh':>3} {'distance':>10} {'gap':>7} "
        f"{'first':>7} {'engine':<13} check",
        flush=True,
    )
    results: dict[str, dict] = {}
    t_start = time.time()
    for path in paths:
        inst = load(path)
        entry: dict = {"instance": inst.name, "bks": inst.bks}
        entry.update(
            _run_side_by_side(one_core, inst, args.seconds, args.seed, args.ortools_search)
        )
        load_one = os.getloadavg()[0]
        if "cores" in columns:
            entry["cores"] = _planner(inst, args.seconds, args.seed, "cores", "default")
            load_one = max(load_one, os.getloadavg()[0])
        for c in columns:
            entry[c] = _judge(inst, entry[c])
        entry["load1"] = load_one
        results[inst.name] = entry
        for k, c in enumerate(columns):
            head = f"{inst.name:<14}{_fmt(inst.bks, '>10.1f')}" if k == 0 else " " * 24
            tail = f"  [load {load_one:.2f}]" if k == 0 else ""
            print(f"{head} | {LABELS[c]:<18} {_row(entry[c])}{tail}", flush=True)
    _summary(results, columns)
    loads = [e["load1"] for e in results.values()]
    print(
        f"# {len(results)} instances in {(time.time() - t_start) / 60:.1f} min; load average "
        f"(1 min) per instance: mean {statistics.fmean(loads):.2f}, max {max(loads):.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        print(f"# routes written to {args.json}")
    return 0


def _summary(results: dict[str, dict], columns: list[str]) -> None:
    print()
    for c in columns:
        gaps, firsts, infeasible, errors = [], [], [], []
        worst = (None, -1e9)
        for name, e in results.items():
            r = e.get(c)
            if r is None or "error" in r:
                errors.append(name)
                continue
            if r["below_bks"]:
                errors.append(name)
                continue
            if not r["feasible"]:
                infeasible.append(name)
                continue
            if r["gap"] is not None:
                gaps.append(r["gap"])
                if r["gap"] > worst[1]:
                    worst = (name, r["gap"])
            if r["first_s"] is not None:
                firsts.append(r["first_s"])
        mean = statistics.fmean(gaps) if gaps else float("nan")
        worst_text = f"{worst[1]:6.2f}% ({worst[0]})" if worst[0] else "-"
        print(
            f"{LABELS[c]:<18} mean gap {mean:6.3f}%  worst {worst_text}  "
            f"feasible {len(results) - len(infeasible) - len(errors)}/{len(results)}"
            f"{'  INFEASIBLE: ' + ','.join(infeasible) if infeasible else ''}"
            f"{'  ERRORS: ' + ','.join(errors) if errors else ''}  "
            f"first feasible max {max(firsts) if firsts else float('nan'):.2f}s",
            flush=True,
        )


def scaling(seed: int) -> int:
    """Time to the first complete plan for 100 and 1,000 stops from lat/lon, matrix included."""
    from routing import Depot, LatLon, Load, Problem, Stop, TempZone, TimeWindow, Vehicle

    print(f"# first plan, load at start {os.getloadavg()[0]:.2f}")
    for n in (100, 1000):
        rng = np.random.default_rng(seed)
        offsets = rng.uniform(-0.15, 0.15, size=(n, 2))
        stops = tuple(
            Stop(
                f"s{i}",
                LatLon(31.23 + a, 121.47 + b),
                {TempZone.AMBIENT: Load(int(rng.integers(1_000, 20_000)), 1_000, 1)},
                (TimeWindow(6 * 3600, 11 * 3600),),
                180,
            )
            for i, (a, b) in enumerate(offsets)
        )
        vehicles = tuple(
            Vehicle(
                f"v{i}",
                "wh",
                Load(300_000, 100_000, 40),
                shift_start_s=5 * 3600,
                shift_end_s=13 * 3600,
            )
            for i in range(max(2, n // 12))
        )
        t0 = time.perf_counter()
        problem = Problem((Depot("wh", LatLon(31.23, 121.47)),), stops, vehicles)
        plan = plan_routes(problem, time_limit_s=30, seed=seed, solution_limit=1)
        wall = time.perf_counter() - t0
        served = sum(len(r.visits) for r in plan.routes)
        print(
            f"{n:>5} stops: first plan {plan.time_to_first_solution_s:.2f} s "
            f"(wall incl. validation and re-check {wall:.2f} s), served {served}/{n}, "
            f"{plan.cost.vehicles_used} vehicles, {plan.status} via {plan.engine}, "
            f"load {os.getloadavg()[0]:.2f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.routing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("instances", nargs="*", help="files, directories or globs")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write every route (customer numbers) here")
    parser.add_argument(
        "--columns", default=",".join(COLUMNS), help=f"comma-separated, from {COLUMNS}"
    )
    parser.add_argument(
        "--ortools-search",
        default="default",
        choices=sorted(ORTOOLS_SEARCHES),
        help="the OR-Tools variant for the `ortools` column",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="time to first plan for 100 and 1,000 lat/lon stops, then exit",
    )
    parser.add_argument(
        "--product",
        action="store_true",
        help="demo-city problems (50, 200, 1,000 pickup points), then exit",
    )
    args = parser.parse_args(argv)
    if args.scaling:
        return scaling(args.seed)
    if args.product:
        from benchmarks._routing_city import run_product

        return run_product(args.seconds, args.seed, args.instances or None)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
