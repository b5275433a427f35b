"""Properties of every plan on random small problems: nothing silently dropped, no rule broken."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routing_fixtures import planar_problem, van

from routing import Load, TempZone, build_matrices, plan_routes, recheck

ZONES = [TempZone.AMBIENT, TempZone.CHILLED, TempZone.FROZEN]


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    stops = []
    for i in range(n):
        xy = (draw(st.integers(-60, 60)), draw(st.integers(-60, 60)))
        zones = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True))
        drops = {
            z: Load(draw(st.integers(0, 40)), draw(st.integers(0, 40)), draw(st.integers(0, 3)))
            for z in zones
        }
        open_s = draw(st.integers(0, 300))
        windows = [(open_s, open_s + draw(st.integers(0, 200)))] if draw(st.booleans()) else []
        stops.append((f"s{i}", xy, drops, windows, draw(st.integers(0, 20))))
    vans = []
    for i in range(draw(st.integers(1, 3))):
        zones = frozenset(
            draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True))
        )
        vans.append(
            van(
                f"v{i}",
                Load(draw(st.integers(20, 120)), 100, 6),
                zones=zones,
                shift_end_s=draw(st.integers(200, 600)),
            )
        )
    return planar_problem((0, 0), stops, vans)


@pytest.mark.parametrize("engine", ["ortools", "pyvrp"])
@settings(
    max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(problem=problems())
def test_every_drop_is_routed_or_reported_once_and_rules_hold(engine, problem):
    """Each (stop, zone) drop is either on exactly one route or unassigned with a reason, never
    both or neither; loads stay within capacity in every dimension, zones match the vehicle,
    service starts inside a window, and every route fits its shift; the re-check agrees."""
    plan = plan_routes(problem, time_limit_s=0.3, engine=engine)
    dist, times = build_matrices(problem)
    assert plan.rechecked and recheck(problem, plan, dist, times) == []
    vehicles = {v.id: v for v in problem.vehicles}
    stops = {s.id: s for s in problem.stops}
    seen: list[tuple[str, TempZone]] = []
    for route in plan.routes:
        vehicle = vehicles[route.vehicle_id]
        assert route.load_at_start.fits_in(vehicle.capacity)
        assert vehicle.shift_start_s <= route.start_s <= route.end_s <= vehicle.shift_end_s
        for visit in route.visits:
            assert set(visit.zones) <= vehicle.zones
            assert visit.load_after.fits_in(vehicle.capacity)
            stop = stops[visit.stop_id]
            if stop.windows:
                assert any(w.open_s <= visit.arrival_s <= w.close_s for w in stop.windows)
            seen.extend((visit.stop_id, z) for z in visit.zones)
    seen.extend((u.stop_id, u.zone) for u in plan.unassigned)
    expected = [
        (s.id, z) for s in problem.stops for z, load in s.drops.items() if not load.is_zero()
    ]
    expected += [
        (s.id, TempZone.AMBIENT)
        for s in problem.stops
        if all(load.is_zero() for load in s.drops.values())
    ]
    assert sorted(seen) == sorted(expected)
