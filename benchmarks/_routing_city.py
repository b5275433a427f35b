"""Product-shaped problems from a seed: the demo city (Shanghai, around People's Square), pickup
points clustered around grid stations, three temperature zones, two windows on some points, breaks
on some vehicles, fixed costs, and one case with too small a fleet.

    python -m benchmarks.routing --product --seconds 20

Each case runs the planner's default and OR-Tools alone (one core each, side by side), then the
planner on two cores; every plan is re-checked (`routing.recheck`), and every stop must be served
or unassigned with a reason. Cases with breaks take the default's break path (PyVRP without the
breaks, each break fitted, then OR-Tools below 1,000 drops: routing/breaks.py); the "fits" cases
have no break, so the default runs PyVRP there.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import time
from dataclasses import dataclass

from routing import (
    Break,
    Depot,
    LatLon,
    Load,
    Plan,
    Problem,
    Stop,
    TempZone,
    TimeWindow,
    Vehicle,
    build_matrices,
    plan_routes,
    recheck,
)
from routing.parallel import plan_routes_on_cores

CENTRE = (31.2304, 121.4737)  # People's Square, as in fulfilment/demo.py
HOUR = 3600


@dataclass(frozen=True)
class Case:
    name: str
    points: int
    breaks: bool
    fleet_share: float  # 1.0: enough vans; below: too small a fleet


CASES = (
    Case("city-50", 50, True, 1.0),
    Case("city-200", 200, True, 1.0),
    Case("city-200-fits", 200, False, 1.0),
    Case("city-200-small-fleet", 200, False, 0.5),
    Case("city-1000", 1000, True, 1.0),
    Case("city-1000-fits", 1000, False, 1.0),
)


def _offset(km_north: float, km_east: float, centre=CENTRE) -> LatLon:
    lat = centre[0] + km_north / 110.574
    lon = centre[1] + km_east / (111.320 * math.cos(math.radians(centre[0])))
    return LatLon(round(lat, 6), round(lon, 6))


def city(case: Case, seed: int) -> Problem:
    """Pickup points around 8 stations within ~15 km; two depots (a warehouse in the west, a
    cold store in the south-east); vans ambient, chilled+ambient, or freezer+chilled+ambient."""
    rng = random.Random(f"{case.name}/{seed}")
    stations = [
        (12 * math.sin(a), 12 * math.cos(a))
        for a in (2 * math.pi * k / 8 + rng.uniform(-0.2, 0.2) for k in range(8))
    ]
    stops = []
    for i in range(case.points):
        sn, se = stations[i % len(stations)]
        where = _offset(sn + rng.gauss(0, 1.8), se + rng.gauss(0, 1.8))
        drops = {
            TempZone.AMBIENT: Load(
                rng.randint(2_000, 30_000), rng.randint(5_000, 60_000), rng.randint(1, 4)
            )
        }
        if rng.random() < 0.45:
            drops[TempZone.CHILLED] = Load(rng.randint(1_000, 8_000), rng.randint(2_000, 15_000), 1)
        if rng.random() < 0.25:
            drops[TempZone.FROZEN] = Load(rng.randint(1_000, 6_000), rng.randint(2_000, 10_000), 1)
        r = rng.random()
        if r < 0.2:  # before and after the leader's day job
            windows = (TimeWindow(7 * HOUR, 9 * HOUR), TimeWindow(16 * HOUR, 19 * HOUR))
        elif r < 0.6:
            start = rng.choice((7, 8, 9, 10)) * HOUR
            windows = (TimeWindow(start, start + 3 * HOUR),)
        else:
            windows = ()
        stops.append(Stop(f"p{i:04d}", where, drops, windows, rng.choice((180, 240, 300))))
    depots = (Depot("warehouse", _offset(2, -18)), Depot("cold", _offset(-10, 8)))
    kinds = [
        (frozenset({TempZone.AMBIENT}), Load(900_000, 3_000_000, 90), 0, "warehouse", 30.0, "van"),
        (
            frozenset({TempZone.AMBIENT, TempZone.CHILLED}),
            Load(700_000, 2_400_000, 70),
            0,
            "warehouse",
            30.0,
            "van",
        ),
        (
            frozenset({TempZone.AMBIENT, TempZone.CHILLED, TempZone.FROZEN}),
            Load(500_000, 1_800_000, 50),
            1,
            "cold",
            25.0,
            "reefer",
        ),
    ]
    n_vans = max(3, round(case.points / 14 * case.fleet_share))
    vehicles = []
    for k in range(n_vans):
        zones, cap, _, depot, speed, profile = kinds[k % 3]
        brk = Break(11 * HOUR, 13 * HOUR, 30 * 60) if case.breaks and k % 4 == 0 else None
        vehicles.append(
            Vehicle(
                f"van{k:03d}",
                depot,
                cap,
                shift_start_s=6 * HOUR,
                shift_end_s=20 * HOUR,
                max_duration_s=11 * HOUR,
                break_=brk,
                fixed_cost=20_000 if k % 3 == 2 else 12_000,
                zones=zones,
                speed_kmh=speed,
                profile=profile,
            )
        )
    return Problem(depots, tuple(stops), tuple(vehicles))


def _verdict(problem: Problem, plan: Plan) -> str:
    dist, times = build_matrices(problem)
    problems = recheck(problem, plan, dist, times)
    served = {v.stop_id for r in plan.routes for v in r.visits}
    told = {u.stop_id for u in plan.unassigned}
    lost = {s.id for s in problem.stops} - served - told
    if lost:
        problems.append(f"{len(lost)} stops neither served nor unassigned")
    if any(not u.reason for u in plan.unassigned):
        problems.append("an unassigned stop without a reason")
    return "ok" if not problems else "FAIL: " + "; ".join(problems[:2])


def _child(case: Case, seed: int, seconds: float, engine: str, conn) -> None:
    try:
        problem = city(case, seed)
        t0 = time.perf_counter()
        plan = plan_routes(problem, time_limit_s=seconds, seed=seed, engine=engine)
        wall = time.perf_counter() - t0
        conn.send((plan, wall, _verdict(problem, plan)))
    except BaseException as exc:
        conn.send(repr(exc))
    finally:
        conn.close()


def _line(label: str, plan: Plan, wall: float, verdict: str) -> str:
    reasons: dict[str, int] = {}
    for u in plan.unassigned:
        reasons[str(u.reason)] = reasons.get(str(u.reason), 0) + 1
    first = plan.time_to_first_solution_s
    return (
        f"  {label:<18} cost {plan.cost.total:>10,} dist {plan.cost.distance_m / 1000:>8.1f} km "
        f"vans {plan.cost.vehicles_used:>3} unassigned {len(plan.unassigned):>3} "
        f"{reasons or ''} first {first if first is None else round(first, 2)} s "
        f"wall {wall:.1f} s {plan.engine} {plan.status} re-check {verdict}"
    )


def run_product(seconds: float, seed: int, only: list[str] | None = None) -> int:
    ctx = mp.get_context("spawn")
    print(
        f"# product-shaped problems, {seconds:g} s each, seed {seed}, "
        f"load at start {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    never_dearer = True
    for case in CASES:
        if only and case.name not in only:
            continue
        problem = city(case, seed)
        n_drops = sum(
            max(1, sum(1 for x in s.drops.values() if not x.is_zero())) for s in problem.stops
        )
        print(
            f"{case.name}: {case.points} points, {n_drops} drops, {len(problem.vehicles)} vans,"
            f" breaks {case.breaks}, two windows on "
            f"{sum(1 for s in problem.stops if len(s.windows) == 2)}",
            flush=True,
        )
        out = {}
        running = []
        for engine in ("auto", "ortools"):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(case, seed, seconds, engine, send), daemon=True)
            proc.start()
            send.close()
            running.append((engine, proc, recv))
        for engine, proc, recv in running:
            out[engine] = recv.recv() if recv.poll(seconds + 300) else "no answer"
            proc.join(10)
        load_pair = os.getloadavg()[0]
        t0 = time.perf_counter()
        two = plan_routes_on_cores(problem, time_limit_s=seconds, cores=2, seed=seed)
        out["cores"] = (two, time.perf_counter() - t0, _verdict(problem, two))
        for key, label in (
            ("auto", "default (1 core)"),
            ("ortools", "OR-Tools alone"),
            ("cores", "default (2 cores)"),
        ):
            got = out[key]
            print(_line(label, *got) if isinstance(got, tuple) else f"  {label}: {got}", flush=True)
        if isinstance(out["auto"], tuple) and isinstance(out["ortools"], tuple):
            a, o = out["auto"][0], out["ortools"][0]
            ok = (len(a.unassigned), a.cost.total) <= (len(o.unassigned), o.cost.total)
            never_dearer &= ok
            diff = (a.cost.total - o.cost.total) / o.cost.total * 100 if o.cost.total else 0.0
            print(
                f"  default vs OR-Tools alone: "
                f"{'not dearer' if ok else 'DEARER'} ({diff:+.2f} % cost)  "
                f"[load {load_pair:.2f} / {os.getloadavg()[0]:.2f}]",
                flush=True,
            )
    print(f"# default never dearer than OR-Tools alone: {never_dearer}")
    return 0
