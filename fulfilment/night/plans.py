"""Stored route plans: versioned per wave, never overwritten (draft → published → superseded).

A plan is stored in parts, one per echelon problem (the trunk, then each station's last mile),
each part exactly once (unique per plan and part), so that a solve retried after a lost worker
cannot store its routes twice. A stored plan reads back into `routing.Plan`s for warm starts.
Times are UTC; `day_start_at` (local midnight of the delivery date) converts them to the
planner's seconds of the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, cast

from sqlalchemy import (
    ForeignKey,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from fulfilment.core.audit import record_change
from fulfilment.core.db import insert_ignore
from fulfilment.core.errors import CutoffNotReached, NotFound
from fulfilment.core.models import Base, Leader, OrderStatus, Wave, WaveStatus, _enum
from fulfilment.events.models import EventType
from fulfilment.events.outbox import (
    emit_select,
    has_listeners,
    json_iso_utc,
    json_text,
    order_event_rows,
    orders_t,
    platform_orders_of_wave,
)

from .loading import StopRow, write_crate_loads

if TYPE_CHECKING:  # the planner (OR-Tools) is loaded only where plans are read back
    import routing

TRUNK_PART = "trunk"


class PlanStatus(StrEnum):
    PLANNING = "planning"  # parts are being stored; not readable as a plan yet
    DRAFT = "draft"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


class Echelon(StrEnum):
    TRUNK = "trunk"
    LAST_MILE = "last_mile"


class RoutePlan(Base):
    """One version of a wave's routes, with the search outcome and the cost parts."""

    __tablename__ = "route_plan"
    __table_args__ = (UniqueConstraint("wave_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"), index=True)
    version: Mapped[int]
    status: Mapped[PlanStatus] = mapped_column(_enum(PlanStatus), default=PlanStatus.PLANNING)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(64))
    day_start_at: Mapped[datetime]  # local midnight of the delivery date, in UTC
    time_limit_s: Mapped[float]  # per problem
    seed: Mapped[int] = mapped_column(default=0)
    search_status: Mapped[str] = mapped_column(String(200), default="")
    distance_m: Mapped[int] = mapped_column(default=0)
    vehicles_used: Mapped[int] = mapped_column(default=0)
    fixed_cost: Mapped[int] = mapped_column(default=0)
    lateness_s: Mapped[int] = mapped_column(default=0)
    cost_total: Mapped[int] = mapped_column(default=0)
    solve_s: Mapped[float] = mapped_column(default=0.0)
    unassigned_count: Mapped[int] = mapped_column(default=0)
    # a dispatcher's correction: the version it was made from, what changed, and the rules the
    # plan breaks as arranged (one a line; a plan that breaks any cannot be published)
    based_on_id: Mapped[int | None] = mapped_column(ForeignKey("route_plan.id"))
    change_note: Mapped[str] = mapped_column(String(200), default="")
    broken: Mapped[str] = mapped_column(Text, default="")

    wave: Mapped[Wave] = relationship()


class PlanPart(Base):
    """One solved problem of a plan (the trunk, or one station's last mile), stored once."""

    __tablename__ = "route_plan_part"
    __table_args__ = (UniqueConstraint("plan_id", "part"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plan.id"), index=True)
    part: Mapped[str] = mapped_column(String(64))  # "trunk" or the station code
    echelon: Mapped[Echelon] = mapped_column(_enum(Echelon))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"))
    search_status: Mapped[str] = mapped_column(String(64))
    distance_m: Mapped[int]
    vehicles_used: Mapped[int]
    fixed_cost: Mapped[int]
    lateness_s: Mapped[int]
    cost_total: Mapped[int]
    solve_s: Mapped[float]
    stored_at: Mapped[datetime]


class PlanRoute(Base):
    """A vehicle's route in a plan part."""

    __tablename__ = "route_plan_route"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plan.id"), index=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("route_plan_part.id"), index=True)
    echelon: Mapped[Echelon] = mapped_column(_enum(Echelon))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"))
    vehicle_code: Mapped[str] = mapped_column(String(32))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    distance_m: Mapped[int]
    duration_s: Mapped[int]
    start_weight_g: Mapped[int]
    start_volume_ml: Mapped[int]
    start_crates: Mapped[int]

    stops: Mapped[list[PlanStop]] = relationship(order_by="PlanStop.seq")


class PlanStop(Base):
    """A visit in a route, in order: a grid station (trunk) or a leader's pickup point."""

    __tablename__ = "route_plan_stop"
    __table_args__ = (UniqueConstraint("route_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("route_plan_route.id"), index=True)
    seq: Mapped[int]
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("leader.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"))
    stop_code: Mapped[str] = mapped_column(String(32))
    zones: Mapped[str] = mapped_column(String(64))
    arrival_at: Mapped[datetime]
    departure_at: Mapped[datetime]
    lateness_s: Mapped[int] = mapped_column(default=0)
    delivered_weight_g: Mapped[int]
    delivered_volume_ml: Mapped[int]
    delivered_crates: Mapped[int]
    after_weight_g: Mapped[int]
    after_volume_ml: Mapped[int]
    after_crates: Mapped[int]


class PlanLock(Base):
    """A stop the dispatcher locked to its vehicle in a version; every later version made from
    it keeps the lock (a re-plan moves it nowhere else)."""

    __tablename__ = "route_plan_lock"
    __table_args__ = (UniqueConstraint("plan_id", "stop_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plan.id"), index=True)
    stop_code: Mapped[str] = mapped_column(String(32))
    vehicle_code: Mapped[str] = mapped_column(String(32))


class PlanUnassigned(Base):
    """A (stop, zone) no route serves, with the planner's reason."""

    __tablename__ = "route_plan_unassigned"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plan.id"), index=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("route_plan_part.id"), index=True)
    echelon: Mapped[Echelon] = mapped_column(_enum(Echelon))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("leader.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"))
    stop_code: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    weight_g: Mapped[int]
    volume_ml: Mapped[int]
    crates: Mapped[int]


class CorrectionKind(StrEnum):
    MOVE = "move"  # a stop to a van: at `position`, or (no position) where the planner finds best
    LOCK = "lock"  # a stop to the van it is on
    TAKE_OFF = "take_off"  # a stop off the plan (unassigned, reason taken_off)
    ADD_LATE = "add_late"  # every stop with goods the plan does not serve yet
    REPLAN = "replan"  # a station's last mile again, around its locks and started routes


class CorrectionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PlanCorrection(Base):
    """One requested change to a plan version, and the draft version it made."""

    __tablename__ = "route_plan_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"), index=True)
    base_plan_id: Mapped[int] = mapped_column(ForeignKey("route_plan.id"))
    kind: Mapped[CorrectionKind] = mapped_column(_enum(CorrectionKind))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"))
    stop_code: Mapped[str | None] = mapped_column(String(32))
    vehicle_code: Mapped[str | None] = mapped_column(String(32))
    position: Mapped[int | None]  # 1-based, on the target route after the stop left its own
    status: Mapped[CorrectionStatus] = mapped_column(
        _enum(CorrectionStatus), default=CorrectionStatus.QUEUED
    )
    result_plan_id: Mapped[int | None] = mapped_column(ForeignKey("route_plan.id"))
    error: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


# ---------------------------------------------------------------------------------------------
# Writing


def start_plan(
    session: Session,
    *,
    wave: Wave,
    day_start_at: datetime,
    time_limit_s: float,
    now: datetime,
    actor: str,
    seed: int = 0,
) -> RoutePlan:
    """A new version for the wave, in PLANNING until its parts are stored. The version is
    unique per wave (`UniqueConstraint(wave_id, version)`): two plans started at once cannot
    share one (the second insert fails and its caller's step is retried)."""
    last = session.scalar(select(func.max(RoutePlan.version)).where(RoutePlan.wave_id == wave.id))
    plan = RoutePlan(
        wave_id=wave.id,
        version=(last or 0) + 1,
        status=PlanStatus.PLANNING,
        created_at=now,
        created_by=actor,
        day_start_at=day_start_at,
        time_limit_s=time_limit_s,
        seed=seed,
    )
    session.add(plan)
    session.flush()
    return plan


def stored_parts(session: Session, plan: RoutePlan) -> dict[str, PlanPart]:
    return {p.part: p for p in session.scalars(select(PlanPart).where(PlanPart.plan_id == plan.id))}


def store_part(
    session: Session,
    *,
    plan: RoutePlan,
    part: str,
    result: routing.Plan,
    stations: dict[str, int],
    leaders: dict[str, int],
    now: datetime,
) -> bool:
    """Store one solved problem of the plan, once: False if that part was stored already.

    Exactly once: the part row goes in with `INSERT … ON CONFLICT (plan, part) DO NOTHING`; a
    concurrent store of the same part waits on the key and, once the first commits, inserts
    nothing and returns False (no error); the routes are written only by the store that
    inserted the part, in its transaction.

    `stations` and `leaders` map the planner's ids (codes) to database ids."""
    echelon = Echelon.TRUNK if part == TRUNK_PART else Echelon.LAST_MILE
    if session.scalar(
        select(PlanPart.id).where(PlanPart.plan_id == plan.id, PlanPart.part == part)
    ):
        return False  # stored before: nothing to write (the insert below settles a race)
    part_id = insert_ignore(
        session,
        PlanPart.__table__,
        {
            "plan_id": plan.id,
            "part": part,
            "echelon": echelon,
            "station_id": None if echelon == Echelon.TRUNK else stations[part],
            "search_status": result.status.value,
            "distance_m": result.cost.distance_m,
            "vehicles_used": result.cost.vehicles_used,
            "fixed_cost": result.cost.fixed_cost,
            "lateness_s": result.cost.lateness_s,
            "cost_total": result.cost.total,
            "solve_s": result.solve_s,
            "stored_at": now,
        },
        ["plan_id", "part"],
        returning=PlanPart.id,
    )
    if part_id is None:  # stored already (or being stored by a transaction that then committed)
        return False
    row = session.get_one(PlanPart, part_id)
    at = _clock(plan)
    for r in result.routes:
        route = PlanRoute(
            plan_id=plan.id,
            part_id=row.id,
            echelon=echelon,
            station_id=row.station_id,
            vehicle_code=r.vehicle_id,
            start_at=at(r.start_s),
            end_at=at(r.end_s),
            distance_m=r.distance_m,
            duration_s=r.duration_s,
            start_weight_g=r.load_at_start.weight_g,
            start_volume_ml=r.load_at_start.volume_ml,
            start_crates=r.load_at_start.crates,
        )
        for seq, v in enumerate(r.visits, start=1):
            route.stops.append(
                PlanStop(
                    seq=seq,
                    leader_id=leaders.get(v.stop_id) if echelon == Echelon.LAST_MILE else None,
                    station_id=stations.get(v.stop_id) if echelon == Echelon.TRUNK else None,
                    stop_code=v.stop_id,
                    zones=",".join(str(z) for z in v.zones),
                    arrival_at=at(v.arrival_s),
                    departure_at=at(v.departure_s),
                    lateness_s=v.lateness_s,
                    delivered_weight_g=v.delivered.weight_g,
                    delivered_volume_ml=v.delivered.volume_ml,
                    delivered_crates=v.delivered.crates,
                    after_weight_g=v.load_after.weight_g,
                    after_volume_ml=v.load_after.volume_ml,
                    after_crates=v.load_after.crates,
                )
            )
        session.add(route)
    for u in result.unassigned:
        session.add(
            PlanUnassigned(
                plan_id=plan.id,
                part_id=row.id,
                echelon=echelon,
                leader_id=leaders.get(u.stop_id) if echelon == Echelon.LAST_MILE else None,
                station_id=stations.get(u.stop_id) if echelon == Echelon.TRUNK else None,
                stop_code=u.stop_id,
                zone=None if u.zone is None else str(u.zone),
                reason=str(u.reason),
                weight_g=u.demand.weight_g,
                volume_ml=u.demand.volume_ml,
                crates=u.demand.crates,
            )
        )
    session.flush()
    return True


def finish_plan(session: Session, *, plan: RoutePlan, actor: str, now: datetime) -> RoutePlan:
    """Every part is stored: sum the cost parts and make the plan a draft.

    Exactly once: the plan's row is locked (`FOR UPDATE`) and re-read; only a plan still
    PLANNING is drafted (one `route_plan.drafted` audit entry), so a second finish, at once or
    later, changes nothing, and a published plan is never turned back into a draft. In the
    night it commits with the plan step's ledger mark, under the run's claim."""
    locked = session.scalars(
        select(RoutePlan)
        .where(RoutePlan.id == plan.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if locked.status != PlanStatus.PLANNING:
        return locked
    plan = locked
    parts = list(stored_parts(session, plan).values())
    plan.distance_m = sum(p.distance_m for p in parts)
    plan.vehicles_used = sum(p.vehicles_used for p in parts)
    plan.fixed_cost = sum(p.fixed_cost for p in parts)
    plan.lateness_s = sum(p.lateness_s for p in parts)
    plan.cost_total = sum(p.cost_total for p in parts)
    plan.solve_s = sum(p.solve_s for p in parts)
    statuses = sorted({p.search_status for p in parts})
    plan.search_status = ",".join(statuses)[:200]
    plan.unassigned_count = (
        session.scalar(
            select(func.count())
            .select_from(PlanUnassigned)
            .where(PlanUnassigned.plan_id == plan.id)
        )
        or 0
    )
    plan.status = PlanStatus.DRAFT
    session.flush()
    record_change(
        session,
        actor=actor,
        action="route_plan.drafted",
        entity="route_plan",
        entity_id=plan.id,
        after={"wave": plan.wave_id, "version": plan.version, "cost_total": plan.cost_total},
        at=now,
    )
    return plan


def publish_plan(session: Session, *, wave: Wave, actor: str, now: datetime) -> RoutePlan:
    """Publish the wave's latest draft; the plan published before it becomes superseded.

    Exactly once: the latest draft's row is locked (`FOR UPDATE`); a concurrent publish waits on
    it, then finds no draft (PostgreSQL re-checks the row's status) and returns the plan now
    published without writing anything: one published version, one `route_plan.published`
    audit entry. Publishing again with no new draft is a no-op. In the night it commits with
    the publish step's mark and the run's success, under the run's claim."""
    draft = session.scalars(
        select(RoutePlan)
        .where(RoutePlan.wave_id == wave.id, RoutePlan.status == PlanStatus.DRAFT)
        .order_by(RoutePlan.version.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if draft is None:
        current = find_published_plan(session, wave_id=wave.id)
        if current is not None:
            return current  # publishing again changes nothing
        raise NotFound(f"wave {wave.id} has no draft plan to publish")
    return supersede_and_publish(session, wave=wave, draft=draft, actor=actor, now=now)


def supersede_and_publish(
    session: Session, *, wave: Wave, draft: RoutePlan, actor: str, now: datetime
) -> RoutePlan:
    """Make `draft` (locked by the caller) the published version; every other published or draft
    version of the wave becomes superseded, each audited."""
    for old in session.scalars(
        select(RoutePlan).where(
            RoutePlan.wave_id == wave.id,
            RoutePlan.status.in_([PlanStatus.PUBLISHED, PlanStatus.DRAFT]),
            RoutePlan.id != draft.id,
        )
    ):
        before = old.status
        old.status = PlanStatus.SUPERSEDED
        record_change(
            session,
            actor=actor,
            action="route_plan.superseded",
            entity="route_plan",
            entity_id=old.id,
            before={"status": before.value},
            after={"status": PlanStatus.SUPERSEDED.value, "by_version": draft.version},
            at=now,
        )
    draft.status = PlanStatus.PUBLISHED
    draft.published_at = now
    draft.published_by = actor
    session.flush()
    _give_crates_their_routes(session, draft)
    record_change(
        session,
        actor=actor,
        action="route_plan.published",
        entity="route_plan",
        entity_id=draft.id,
        before={"status": PlanStatus.DRAFT.value},
        after={"status": PlanStatus.PUBLISHED.value, "version": draft.version},
        at=now,
    )
    emit_plan_published(session, plan=draft, wave=wave, now=now)
    return draft


def _give_crates_their_routes(session: Session, plan: RoutePlan) -> None:
    """The published version's routes, stops and load sequences for every crate (loading.py)."""
    stops = session.execute(
        select(
            PlanStop.route_id,
            PlanStop.seq,
            PlanStop.leader_id,
            PlanStop.station_id,
            PlanStop.zones,
            PlanStop.delivered_crates,
            PlanRoute.echelon,
        )
        .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
        .where(PlanRoute.plan_id == plan.id)
    ).all()
    rows = {e: [StopRow(*s[:6]) for s in stops if s.echelon == e] for e in Echelon}
    write_crate_loads(
        session,
        plan_id=plan.id,
        wave_id=plan.wave_id,
        van_stops=rows[Echelon.LAST_MILE],
        truck_stops=rows[Echelon.TRUNK],
    )


# ---------------------------------------------------------------------------------------------
# What a published plan tells the shop platforms: `plan.published`, one event per platform order
# of the wave with its pickup point's ETA (null: the plan leaves the point unserved), in one
# INSERT … SELECT in the publish's transaction.

_leaders_t = cast(Table, Leader.__table__)


def emit_plan_published(session: Session, *, plan: RoutePlan, wave: Wave, now: datetime) -> None:
    if not has_listeners(session):
        return
    eta = (
        select(PlanStop.leader_id, func.max(PlanStop.arrival_at).label("eta"))
        .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
        .where(PlanRoute.plan_id == plan.id, PlanStop.leader_id.is_not(None))
        .group_by(PlanStop.leader_id)
        .subquery()
    )
    emit_select(
        session,
        EventType.PLAN_PUBLISHED,
        order_event_rows(
            session,
            leader=_leaders_t.c.code,
            delivery_date=json_text(wave.delivery_date.isoformat()),
            plan_version=literal(plan.version),
            eta=json_iso_utc(session, eta.c.eta),
        )
        .select_from(
            orders_t.join(_leaders_t, _leaders_t.c.id == orders_t.c.leader_id).outerjoin(
                eta, eta.c.leader_id == orders_t.c.leader_id
            )
        )
        .where(
            platform_orders_of_wave(wave.id),
            orders_t.c.status == OrderStatus.PLACED.value,
        ),
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# Reading


def find_published_plan(session: Session, *, wave_id: int) -> RoutePlan | None:
    return session.scalars(
        select(RoutePlan).where(
            RoutePlan.wave_id == wave_id, RoutePlan.status == PlanStatus.PUBLISHED
        )
    ).first()


def find_latest_plan(session: Session, *, wave_id: int) -> RoutePlan | None:
    """The newest version that is readable (not still planning)."""
    return session.scalars(
        select(RoutePlan)
        .where(RoutePlan.wave_id == wave_id, RoutePlan.status != PlanStatus.PLANNING)
        .order_by(RoutePlan.version.desc())
        .limit(1)
    ).first()


def get_plan_for_show(session: Session, *, wave: Wave) -> RoutePlan:
    plan = find_published_plan(session, wave_id=wave.id) or find_latest_plan(
        session, wave_id=wave.id
    )
    if plan is None:
        raise NotFound(f"wave {wave.id} has no stored plan")
    return plan


def published_eta_select(*, leader_id, wave_id) -> Select:
    """The query behind `find_published_eta`; ids may be columns, to embed it in a larger read."""
    return (
        select(func.max(PlanStop.arrival_at))
        .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
        .join(RoutePlan, RoutePlan.id == PlanRoute.plan_id)
        .where(
            RoutePlan.wave_id == wave_id,
            RoutePlan.status == PlanStatus.PUBLISHED,
            PlanStop.leader_id == leader_id,
        )
    )


def find_published_eta(session: Session, *, leader_id: int, wave_id: int) -> datetime | None:
    """When the published plan brings the wave's goods to a leader's pickup point (UTC), or None.

    A leader served by several vans (zones split) gets the latest arrival: the goods are
    complete then."""
    return session.scalar(published_eta_select(leader_id=leader_id, wave_id=wave_id))


def list_routes(session: Session, plan: RoutePlan) -> list[PlanRoute]:
    return list(
        session.scalars(
            select(PlanRoute)
            .where(PlanRoute.plan_id == plan.id)
            .order_by(PlanRoute.echelon.desc(), PlanRoute.station_id, PlanRoute.vehicle_code)
        )
    )


def list_unassigned(session: Session, plan: RoutePlan) -> list[PlanUnassigned]:
    return list(
        session.scalars(
            select(PlanUnassigned)
            .where(PlanUnassigned.plan_id == plan.id)
            .order_by(PlanUnassigned.echelon.desc(), PlanUnassigned.stop_code)
        )
    )


@dataclass(frozen=True, slots=True)
class StoredPlans:
    """A stored plan as the planner's own results: the trunk and each station's last mile."""

    trunk: routing.Plan | None
    last_mile: dict[str, routing.Plan]


def load_plan(session: Session, plan: RoutePlan) -> StoredPlans:
    """Read a stored plan back into `routing.Plan`s (e.g. to warm-start a re-plan)."""
    import routing

    seconds = _seconds(plan)
    parts = stored_parts(session, plan)
    routes_of: dict[int, list[routing.Route]] = {}
    for r in list_routes(session, plan):
        visits = tuple(
            routing.Visit(
                stop_id=s.stop_code,
                zones=tuple(routing.TempZone(z) for z in s.zones.split(",") if z),
                delivered=routing.Load(
                    s.delivered_weight_g, s.delivered_volume_ml, s.delivered_crates
                ),
                arrival_s=seconds(s.arrival_at),
                departure_s=seconds(s.departure_at),
                load_after=routing.Load(s.after_weight_g, s.after_volume_ml, s.after_crates),
                lateness_s=s.lateness_s,
            )
            for s in r.stops
        )
        routes_of.setdefault(r.part_id, []).append(
            routing.Route(
                vehicle_id=r.vehicle_code,
                start_s=seconds(r.start_at),
                end_s=seconds(r.end_at),
                visits=visits,
                distance_m=r.distance_m,
                duration_s=r.duration_s,
                load_at_start=routing.Load(r.start_weight_g, r.start_volume_ml, r.start_crates),
            )
        )
    unassigned_of: dict[int, list[routing.Unassigned]] = {}
    for u in list_unassigned(session, plan):
        unassigned_of.setdefault(u.part_id, []).append(
            routing.Unassigned(
                stop_id=u.stop_code,
                zone=None if u.zone is None else routing.TempZone(u.zone),
                reason=routing.UnassignedReason(u.reason),
                demand=routing.Load(u.weight_g, u.volume_ml, u.crates),
            )
        )
    out: dict[str, routing.Plan] = {}
    for name, part in parts.items():
        out[name] = routing.Plan(
            routes=tuple(sorted(routes_of.get(part.id, []), key=lambda r: r.vehicle_id)),
            unassigned=tuple(unassigned_of.get(part.id, [])),
            cost=routing.PlanCost(
                part.distance_m,
                part.vehicles_used,
                part.fixed_cost,
                part.lateness_s,
                part.cost_total,
            ),
            status=routing.PlanStatus(part.search_status),
            time_to_first_solution_s=None,
            solve_s=part.solve_s,
        )
    trunk = out.pop(TRUNK_PART, None)
    return StoredPlans(trunk, out)


def _clock(plan: RoutePlan):
    start = plan.day_start_at
    return lambda s: start + timedelta(seconds=int(s))


def _seconds(plan: RoutePlan):
    start = plan.day_start_at
    return lambda at: int((at - start).total_seconds())


def ensure_wave_cut_off(wave: Wave) -> None:
    if wave.status != WaveStatus.CUT_OFF:
        raise CutoffNotReached(f"wave {wave.id} is not cut off yet: it is planned after its cutoff")
