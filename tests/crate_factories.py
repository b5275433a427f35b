"""A small cut-off wave with crates in every zone, and its plan published (crates on routes)."""

from __future__ import annotations

from datetime import UTC, datetime

from factories import DELIVERY, World, make_world
from night_factories import add_small_fleet
from sqlalchemy.orm import Session, sessionmaker

from fulfilment.core.db import session_scope
from fulfilment.core.models import Wave
from fulfilment.night.planning import PlanningOptions, solve_wave
from fulfilment.night.plans import RoutePlan, finish_plan, publish_plan
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.crates import ensure_crates
from fulfilment.waves.cutoff import cut_off_wave
from routing import LocalRunner

NOW = datetime(2026, 3, 9, 20, 0, tzinfo=UTC)
FAST = PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5)
# per leader L1, L2, L3: (apples of 1.5 L, milk of 1 L, prawns of 0.7 L), for each of two members
BASKETS = [(60, 5, 2), (10, 0, 1), (1, 40, 0)]


def crate_wave(session: Session, **fleet: object) -> tuple[World, Wave]:
    """Three points, two members each; L1 fills 5 ambient crates of 40 L. Cut off, packed."""
    world = make_world(session, leaders=3)
    add_small_fleet(session, world.region, **fleet)
    for i, (apples, milk, prawns) in enumerate(BASKETS):
        lines = [LineRequest("APPLE", apples), LineRequest("MILK", milk)]
        lines.append(LineRequest("PRAWN", prawns))
        for member in range(2):
            place_order(
                session,
                region=world.region,
                leader_code=f"L{i + 1}",
                member=MemberRef(f"m{i}-{member}", f"会员{i}{member}", f"1380000{i}{member:03d}"),
                lines=[x for x in lines if x.quantity],
                placed_at=world.before_cutoff(),
            )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    ensure_crates(session, wave)
    return world, wave


def publish(sessions: sessionmaker[Session], wave_id: int, *, now: datetime = NOW) -> int:
    """Plan the wave, finish and publish the plan (its crates get their routes); its id."""
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=LocalRunner(1), options=FAST, now=lambda: now
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get(RoutePlan, plan_id), actor="test", now=now)
    with session_scope(sessions) as s:
        publish_plan(s, wave=s.get(Wave, wave_id), actor="test", now=now)
    return plan_id
