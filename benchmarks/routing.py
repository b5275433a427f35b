"""Route planner benchmark: `plan_routes` on Solomon and X instances, beside PyVRP in the same run.

    python -m benchmarks.routing solomon/R101.txt x/X-n101-k25.vrp --seconds 30 [--json out.json]
    python -m benchmarks.routing solomon --seconds 30            # a whole directory
    python -m benchmarks.routing "solomon/RC1*" --seconds 10 --no-pyvrp --cores 2
    python -m benchmarks.routing --scaling                       # first plan, 100 and 1,000 stops

Relative paths are tried as given, then under ../shared/benchmarks/. One core per solver: PyVRP
runs in a child process at the same time as ours, each with the same time limit. `--cores 2`
adds a column for our planner using both cores (run alone afterwards, never mixed in).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._routing_instances import Instance, check, find, gap, load, to_problem
from routing import plan_routes
from routing.parallel import plan_routes_on_cores

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


def _ours(inst: Instance, seconds: float, seed: int, cores: int) -> dict:
    t0 = time.perf_counter()
    problem = to_problem(inst)
    if cores == 1:
        plan = plan_routes(problem, time_limit_s=seconds, seed=seed)
    else:
        plan = plan_routes_on_cores(problem, time_limit_s=seconds, cores=cores, seed=seed)
    wall = time.perf_counter() - t0
    routes = [[int(s) for s in r.stop_ids] for r in plan.routes]
    feasible, why, cost = check(inst, routes)
    first = plan.time_to_first_complete_s
    return {"routes": routes, "vehicles": len(routes), "cost": cost, "feasible": feasible,
            "why": why or ("; ".join(f"{u.stop_id}:{u.reason}" for u in plan.unassigned[:3])),
            "first_s": first, "wall_s": wall, "status": plan.status}


def _pyvrp_child(inst: Instance, seconds: float, seed: int, conn) -> None:
    try:
        conn.send(_pyvrp(inst, seconds, seed))
    except BaseException as exc:  # report, do not hang the parent
        conn.send({"error": repr(exc)})
    finally:
        conn.close()


def _pyvrp(inst: Instance, seconds: float, seed: int) -> dict:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    t0 = time.perf_counter()
    if inst.kind == "x":
        data = pyvrp.read(str(inst.path), round_func="round")
    else:  # same integer data as ours: build it, rather than trust a reader's rounding
        m = pyvrp.Model()
        locs = [m.add_location(int(x), int(y)) for x, y in inst.coords]
        depot = m.add_depot(locs[0], tw_early=int(inst.windows[0, 0]),
                            tw_late=int(inst.windows[0, 1]))
        m.add_vehicle_type(num_available=inst.num_vehicles, capacity=inst.capacity,
                           start_depot=depot, end_depot=depot,
                           tw_early=int(inst.windows[0, 0]), tw_late=int(inst.windows[0, 1]))
        for c in range(1, inst.customers + 1):
            m.add_client(locs[c], delivery=int(inst.demand[c]), service_duration=int(inst.service[c]),
                         tw_early=int(inst.windows[c, 0]), tw_late=int(inst.windows[c, 1]))
        for i, a in enumerate(locs):
            for j, b in enumerate(locs):
                m.add_edge(a, b, distance=int(inst.dist[i, j]), duration=int(inst.dist[i, j]))
        data = m.data()
    built = time.perf_counter() - t0
    res = pyvrp.solve(data, stop=MaxRuntime(seconds), seed=seed, display=False)
    # activities number clients from 0; the instance numbers them after its depot(s)
    routes = [[a.idx + data.num_depots for a in r if a.is_client()] for r in res.best.routes()]
    first = None
    elapsed = built
    for runtime, datum in zip(res.stats.runtimes, res.stats.data, strict=False):
        elapsed += runtime
        if datum.best_feas:
            first = elapsed
            break
    feasible, why, cost = check(inst, routes)
    return {"routes": routes, "vehicles": len(routes), "cost": cost, "feasible": feasible,
            "why": why, "first_s": first, "wall_s": time.perf_counter() - t0}


def _start_pyvrp(inst: Instance, seconds: float, seed: int):
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_pyvrp_child, args=(inst, seconds, seed, send), daemon=True)
    proc.start()
    send.close()
    return proc, recv


def _finish_pyvrp(proc, recv, seconds: float) -> dict:
    if recv.poll(seconds + 120):
        out = recv.recv()
    else:
        out = {"error": "PyVRP did not answer in time"}
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
    return out


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _row(name: str, bks: float | None, r: dict | None) -> str:
    if r is None:
        return ""
    if "error" in r:
        return f"  error: {r['error']}"
    g = gap(r["cost"], bks) if r["feasible"] else None
    flag = "ok" if r["feasible"] else f"INFEASIBLE ({r['why']})"
    return (f"{r['vehicles']:>3} {r['cost']:>10.1f} {_fmt(g, '>6.2f')}% "
            f"{_fmt(r['first_s'], '>6.2f')}s {flag}")


def run(args: argparse.Namespace) -> int:
    paths = find(args.instances or ["solomon"], DEFAULT_ROOT)
    results: dict[str, dict] = {}
    header = (f"{'instance':<14}{'BKS':>10} | {'ours: veh':>9} {'distance':>10} {'gap':>7} "
              f"{'first':>7} check")
    print(f"# routing benchmark: {len(paths)} instances, {args.seconds:g} s each, seed {args.seed}"
          f"{'' if args.no_pyvrp else ', PyVRP 0.14.1 beside (one core each)'}", flush=True)
    print(header, flush=True)
    for path in paths:
        inst = load(path)
        entry: dict = {"instance": inst.name, "bks": inst.bks, "bks_vehicles": inst.bks_routes}
        pv = None if args.no_pyvrp else _start_pyvrp(inst, args.seconds, args.seed)
        if not args.cores_only:
            entry["ours"] = _ours(inst, args.seconds, args.seed, 1)
        if pv is not None:
            entry["pyvrp"] = _finish_pyvrp(*pv, args.seconds)
        if args.cores > 1:
            entry["ours_cores"] = _ours(inst, args.seconds, args.seed, args.cores)
        entry["load1"] = os.getloadavg()[0]
        results[inst.name] = entry
        line = (f"{inst.name:<14}{_fmt(inst.bks, '>10.1f')} | ours {_row(inst.name, inst.bks, entry.get('ours'))}"
                f"  [load {entry['load1']:.1f}]")
        print(line, flush=True)
        if "pyvrp" in entry:
            print(f"{'':<14}{'':>10} | pyvrp {_row(inst.name, inst.bks, entry['pyvrp'])}", flush=True)
        if "ours_cores" in entry:
            print(f"{'':<14}{'':>10} | ours×{args.cores} {_row(inst.name, inst.bks, entry['ours_cores'])}",
                  flush=True)
    _summary(results, args)
    if args.json:
        out = {name: {k: ({"routes": v["routes"], "cost": v["cost"], "vehicles": v["vehicles"],
                           "feasible": v["feasible"], "first_s": v["first_s"]}
                          if isinstance(v, dict) and "routes" in v else v)
                      for k, v in e.items()} for name, e in results.items()}
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"# routes written to {args.json}")
    return 0


def _summary(results: dict[str, dict], args: argparse.Namespace) -> None:
    print()
    for key, label in (("ours", "ours (1 core)"), ("pyvrp", "PyVRP (1 core)"),
                       ("ours_cores", f"ours ({args.cores} cores)")):
        gaps, firsts, infeasible = [], [], []
        worst = (None, -1e9)
        for name, e in results.items():
            r = e.get(key)
            if r is None or "error" in r:
                continue
            if not r["feasible"]:
                infeasible.append(name)
                continue
            g = gap(r["cost"], e["bks"])
            if g is not None:
                gaps.append(g)
                if g > worst[1]:
                    worst = (name, g)
            if r["first_s"] is not None:
                firsts.append(r["first_s"])
        if not gaps and not infeasible:
            continue
        mean = statistics.fmean(gaps) if gaps else float("nan")
        worst_text = f"{worst[1]:6.2f}% ({worst[0]})" if worst[0] else "-"
        print(f"{label:<16} mean gap {mean:6.2f}%  worst {worst_text}  "
              f"feasible {len(results) - len(infeasible)}/{len(results)}"
              f"{'  INFEASIBLE: ' + ','.join(infeasible) if infeasible else ''}  "
              f"first feasible max {max(firsts) if firsts else float('nan'):.2f}s")


def scaling(seed: int) -> int:
    """Time to the first complete plan for 100 and 1,000 stops from lat/lon, matrix included."""
    from routing import Depot, LatLon, Load, Problem, Stop, TempZone, TimeWindow, Vehicle

    for n in (100, 1000):
        rng = np.random.default_rng(seed)
        offsets = rng.uniform(-0.15, 0.15, size=(n, 2))
        stops = tuple(Stop(f"s{i}", LatLon(31.23 + a, 121.47 + b),
                           {TempZone.AMBIENT: Load(int(rng.integers(1_000, 20_000)), 1_000, 1)},
                           (TimeWindow(6 * 3600, 11 * 3600),), 180)
                      for i, (a, b) in enumerate(offsets))
        vehicles = tuple(Vehicle(f"v{i}", "wh", Load(300_000, 100_000, 40), shift_start_s=5 * 3600,
                                 shift_end_s=13 * 3600) for i in range(max(2, n // 12)))
        t0 = time.perf_counter()
        problem = Problem((Depot("wh", LatLon(31.23, 121.47)),), stops, vehicles)
        plan = plan_routes(problem, time_limit_s=30, seed=seed, solution_limit=1)
        wall = time.perf_counter() - t0
        served = sum(len(r.visits) for r in plan.routes)
        print(f"{n:>5} stops: first plan {plan.time_to_first_solution_s:.2f} s "
              f"(wall incl. validation {wall:.2f} s), served {served}/{n}, "
              f"{plan.cost.vehicles_used} vehicles, {plan.status}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("instances", nargs="*", help="files, directories or globs")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write every route (customer numbers) here")
    parser.add_argument("--no-pyvrp", action="store_true")
    parser.add_argument("--cores", type=int, default=1,
                        help="also run our planner on this many cores, in its own column")
    parser.add_argument("--cores-only", action="store_true",
                        help="with --cores N: skip the one-core run (e.g. with --no-pyvrp)")
    parser.add_argument("--scaling", action="store_true",
                        help="time to first plan for 100 and 1,000 lat/lon stops, then exit")
    args = parser.parse_args(argv)
    if args.scaling:
        return scaling(args.seed)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
