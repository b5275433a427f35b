"""Scanning crates at each handover, exactly once per (crate, step), and marking a route loaded.

A scan names a crate by its id (the label's QR code, `GBC:<id>`) or by its code (typed, or a USB
scanner typing into the field). It is checked against where it happens: the truck route being
loaded (the published plan's trunk route of the crate), the grid station receiving, the pickup
point. A crate of another wave, route, station or point is refused with what it is and where it
belongs; a crate scanned before is refused with when and by whom. Never a second record: the
handover goes in with `INSERT … ON CONFLICT (crate, step) DO NOTHING`, so of 20 scans at once
exactly one records it and the others are told it was done.

A route is marked loaded once, only when each of its crates is scanned loaded or recorded
missing with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfilment.accounts.models import User
from fulfilment.core.audit import record_change
from fulfilment.core.db import insert_ignore
from fulfilment.core.errors import FulfilmentError, InvalidInput, NotFound
from fulfilment.core.models import GridStation, Leader, OrderLine, Wave
from fulfilment.night.crate_routes import CrateView, crates_of_route, crates_of_wave
from fulfilment.night.loading import CrateLoad
from fulfilment.night.plans import Echelon, PlanRoute, PlanStatus, RoutePlan
from fulfilment.waves.crates import Crate, CrateItem, read_scan

from .models import Handover, MissingCrate, RouteLoaded, Step

MAX_REASON = 300


class Refusal(StrEnum):
    UNKNOWN = "unknown"  # no crate has this id or code
    OTHER_WAVE = "other_wave"
    OTHER_ROUTE = "other_route"
    OTHER_STATION = "other_station"
    OTHER_POINT = "other_point"
    NOT_ON_ROUTE = "not_on_route"  # the published plan has no truck for the crate
    ALREADY = "already"  # scanned at this step before
    ROUTE_LOADED = "route_loaded"  # the route was marked loaded: nothing more goes on
    MISSING_RECORDED = "missing_recorded"  # recorded missing at loading: not scanned after


class ScanRefused(FulfilmentError):
    """A scan that records nothing, with what the view needs to say why in the user's language:
    the crate's code, where it belongs (a vehicle, station or point name), and for a second scan
    when and by whom the first was recorded."""

    http_status = 409

    def __init__(
        self,
        refusal: Refusal,
        *,
        code: str = "",
        belongs: str = "",
        at: datetime | None = None,
        by: str = "",
    ) -> None:
        self.refusal, self.code, self.belongs, self.at, self.by = refusal, code, belongs, at, by
        where = f" (it belongs to {belongs})" if belongs else ""
        when = f" at {at.isoformat()} by {by}" if at is not None else ""
        super().__init__(f"crate {code or '?'}: {refusal.value}{where}{when}")


class RouteNotLoaded(FulfilmentError):
    """A route cannot be marked loaded: these crates are neither scanned nor recorded missing."""

    http_status = 409

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(f"not scanned and not recorded missing: {', '.join(missing)}")


@dataclass(frozen=True, slots=True)
class Scanned:
    """A scan recorded: the crate, its handover, and (loading) its place on the truck."""

    crate: Crate
    handover: Handover
    load: CrateLoad | None = None


def _find(session: Session, scanned: str, *, wave_id: int) -> tuple[Crate, str]:
    """The crate a scan names, and how it was named ("qr" or "code"). A code is looked up in
    the wave first (codes repeat a year later), then anywhere (to say it is another wave's)."""
    ref = read_scan(scanned)
    if ref.crate_id is not None:
        crate = session.get(Crate, ref.crate_id)
        method = "qr"
    else:
        crate = session.scalars(
            select(Crate).where(Crate.code == ref.code).order_by(Crate.wave_id != wave_id).limit(1)
        ).first()
        method = "code"
    if crate is None:
        raise ScanRefused(Refusal.UNKNOWN, code=(ref.code or scanned.strip())[:40])
    if crate.wave_id != wave_id:
        wave = session.get(Wave, crate.wave_id)
        raise ScanRefused(
            Refusal.OTHER_WAVE,
            code=crate.code,
            belongs=wave.delivery_date.isoformat() if wave else "",
        )
    return crate, method


def _record(
    session: Session,
    *,
    crate: Crate,
    step: Step,
    user: User,
    now: datetime,
    method: str,
    route_id: int | None = None,
    station_id: int | None = None,
    leader_id: int | None = None,
) -> Handover:
    """Claim the (crate, step) with a unique insert; the loser is told who won and when."""
    handover_id = insert_ignore(
        session,
        Handover.__table__,
        {
            "crate_id": crate.id,
            "step": step.value,
            "at": now,
            "user_id": user.id,
            "route_id": route_id,
            "station_id": station_id,
            "leader_id": leader_id,
            "method": method,
        },
        ["crate_id", "step"],
        returning=Handover.id,
    )
    if handover_id is None:
        first, by = session.execute(
            select(Handover, User.username)
            .join(User, User.id == Handover.user_id)
            .where(Handover.crate_id == crate.id, Handover.step == step)
        ).one()
        raise ScanRefused(Refusal.ALREADY, code=crate.code, at=first.at, by=by)
    record_change(
        session,
        actor=user.actor,
        action=f"crate.{step.value}",
        entity="crate",
        entity_id=crate.id,
        after={
            "code": crate.code,
            "route": route_id,
            "station": station_id,
            "leader": leader_id,
            "method": method,
        },
        at=now,
    )
    return Handover(  # as inserted, without reading it back
        id=handover_id,
        crate_id=crate.id,
        step=step,
        at=now,
        user_id=user.id,
        route_id=route_id,
        station_id=station_id,
        leader_id=leader_id,
        method=method,
    )


# ---------------------------------------------------------------------------------------------
# Loading at the warehouse


def get_loading_route(session: Session, *, route_id: int, user: User) -> tuple[PlanRoute, Wave]:
    """A truck route of a published plan in the user's region, or NotFound."""
    row = session.execute(
        select(PlanRoute, Wave)
        .join(RoutePlan, RoutePlan.id == PlanRoute.plan_id)
        .join(Wave, Wave.id == RoutePlan.wave_id)
        .where(
            PlanRoute.id == route_id,
            PlanRoute.echelon == Echelon.TRUNK,
            RoutePlan.status == PlanStatus.PUBLISHED,
        )
    ).first()
    if row is None or not user.sees_region(row[1].region_id):
        raise NotFound(f"route {route_id} is not a truck route of a published plan")
    return row[0], row[1]


def list_loading_routes(session: Session, *, wave: Wave) -> list[tuple[PlanRoute, int, int, bool]]:
    """The published plan's truck routes: (route, crates, loaded scans, marked loaded)."""
    rows = session.execute(
        select(PlanRoute)
        .join(RoutePlan, RoutePlan.id == PlanRoute.plan_id)
        .where(
            RoutePlan.wave_id == wave.id,
            RoutePlan.status == PlanStatus.PUBLISHED,
            PlanRoute.echelon == Echelon.TRUNK,
        )
        .order_by(PlanRoute.start_at, PlanRoute.vehicle_code)
    ).scalars()
    out = []
    for route in rows:
        crates = session.scalar(select(func.count()).where(CrateLoad.trunk_route_id == route.id))
        scanned = session.scalar(
            select(func.count())
            .select_from(Handover)
            .join(CrateLoad, CrateLoad.crate_id == Handover.crate_id)
            .where(CrateLoad.trunk_route_id == route.id, Handover.step == Step.LOADED)
        )
        loaded = session.scalar(select(RouteLoaded.id).where(RouteLoaded.route_id == route.id))
        out.append((route, crates or 0, scanned or 0, loaded is not None))
    return out


def scan_loaded(
    session: Session, *, route_id: int, scanned: str, user: User, now: datetime
) -> Scanned:
    """A crate scanned onto its truck at the warehouse: one `loaded` handover, or ScanRefused."""
    route, wave = get_loading_route(session, route_id=route_id, user=user)
    crate, method = _find(session, scanned, wave_id=wave.id)
    # what decides the scan, in one read: the crate's place in the plan, the truck marked
    # loaded, a missing record
    decided = session.execute(
        select(
            CrateLoad,
            select(RouteLoaded.id).where(RouteLoaded.route_id == route.id).scalar_subquery(),
            select(MissingCrate.id)
            .where(MissingCrate.crate_id == crate.id, MissingCrate.step == Step.LOADED)
            .scalar_subquery(),
        ).where(CrateLoad.plan_id == route.plan_id, CrateLoad.crate_id == crate.id)
    ).first()
    load, loaded, missing = decided if decided is not None else (None, None, None)
    if loaded is not None or (decided is None and find_route_loaded(session, route_id=route.id)):
        raise ScanRefused(Refusal.ROUTE_LOADED, code=crate.code, belongs=route.vehicle_code)
    if load is None or load.trunk_route_id is None:
        raise ScanRefused(Refusal.NOT_ON_ROUTE, code=crate.code)
    if load.trunk_route_id != route.id:
        other = session.get(PlanRoute, load.trunk_route_id)
        raise ScanRefused(
            Refusal.OTHER_ROUTE, code=crate.code, belongs=other.vehicle_code if other else ""
        )
    if missing is not None:
        raise ScanRefused(Refusal.MISSING_RECORDED, code=crate.code)
    handover = _record(
        session, crate=crate, step=Step.LOADED, user=user, now=now, method=method, route_id=route.id
    )
    return Scanned(crate, handover, load)


def record_missing(
    session: Session, *, route_id: int, crate_id: int, reason: str, user: User, now: datetime
) -> MissingCrate:
    """A crate of the route that is not there at loading, with the reason; once per crate."""
    route, wave = get_loading_route(session, route_id=route_id, user=user)
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput(f"crate {crate_id}", "reason", "say why the crate is missing")
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            f"crate {crate_id}", "reason", f"at most {MAX_REASON} characters", limit=MAX_REASON
        )
    crate = session.get(Crate, crate_id)
    load = session.get(CrateLoad, (route.plan_id, crate_id))
    if crate is None or load is None or load.trunk_route_id != route.id:
        raise NotFound(f"crate {crate_id} is not on route {route.id}")
    if session.scalar(select(RouteLoaded.id).where(RouteLoaded.route_id == route.id)):
        raise ScanRefused(Refusal.ROUTE_LOADED, code=crate.code, belongs=route.vehicle_code)
    done = session.execute(
        select(Handover, User.username)
        .join(User, User.id == Handover.user_id)
        .where(Handover.crate_id == crate.id, Handover.step == Step.LOADED)
    ).first()
    if done is not None:
        raise ScanRefused(Refusal.ALREADY, code=crate.code, at=done[0].at, by=done[1])
    missing_id = insert_ignore(
        session,
        MissingCrate.__table__,
        {
            "crate_id": crate.id,
            "step": Step.LOADED.value,
            "route_id": route.id,
            "reason": reason,
            "at": now,
            "user_id": user.id,
        },
        ["crate_id", "step"],
        returning=MissingCrate.id,
    )
    if missing_id is None:
        raise ScanRefused(Refusal.MISSING_RECORDED, code=crate.code)
    record_change(
        session,
        actor=user.actor,
        action="crate.missing_at_loading",
        entity="crate",
        entity_id=crate.id,
        after={"code": crate.code, "route": route.id, "reason": reason},
        at=now,
    )
    return session.get_one(MissingCrate, missing_id)


def mark_route_loaded(
    session: Session, *, route_id: int, user: User, now: datetime
) -> tuple[RouteLoaded, bool]:
    """Mark the truck route loaded: every crate scanned or recorded missing, else RouteNotLoaded
    naming the others. Once: marking again returns the first mark (and False)."""
    route, _ = get_loading_route(session, route_id=route_id, user=user)
    existing = session.scalars(select(RouteLoaded).where(RouteLoaded.route_id == route.id)).first()
    if existing is not None:
        return existing, False
    states = loading_states(session, route_id=route.id)
    waiting = [c.code for c, state in states if state is None]
    if waiting:
        raise RouteNotLoaded(waiting)
    scanned = sum(1 for _, s in states if isinstance(s, Handover))
    mark_id = insert_ignore(
        session,
        RouteLoaded.__table__,
        {
            "route_id": route.id,
            "at": now,
            "user_id": user.id,
            "scanned": scanned,
            "missing": len(states) - scanned,
        },
        ["route_id"],
        returning=RouteLoaded.id,
    )
    if mark_id is None:
        return session.scalars(
            select(RouteLoaded).where(RouteLoaded.route_id == route.id)
        ).one(), False
    record_change(
        session,
        actor=user.actor,
        action="route.loaded",
        entity="route_plan_route",
        entity_id=route.id,
        after={"scanned": scanned, "missing": len(states) - scanned},
        at=now,
    )
    return session.get_one(RouteLoaded, mark_id), True


def loading_states(
    session: Session, *, route_id: int
) -> list[tuple[CrateView, Handover | MissingCrate | None]]:
    """The route's crates in load order, each with its `loaded` handover, its missing record,
    or None while still to be scanned."""
    crates = crates_of_route(session, route_id)
    ids = [c.id for c in crates]
    done = {
        h.crate_id: h
        for h in session.scalars(
            select(Handover).where(Handover.crate_id.in_(ids), Handover.step == Step.LOADED)
        )
    }
    missing = {
        m.crate_id: m
        for m in session.scalars(
            select(MissingCrate).where(
                MissingCrate.crate_id.in_(ids), MissingCrate.step == Step.LOADED
            )
        )
    }
    return [(c, done.get(c.id) or missing.get(c.id)) for c in crates]


def find_route_loaded(session: Session, *, route_id: int) -> RouteLoaded | None:
    return session.scalars(select(RouteLoaded).where(RouteLoaded.route_id == route_id)).first()


# ---------------------------------------------------------------------------------------------
# Receiving at a grid station, delivering at a pickup point


# Where a crate is scanned after loading: the crate's column naming its place at that step, the
# place's table and the name a refusal shows, and the refusal for another place's crate.
_PLACES: dict[Step, tuple[str, type[GridStation] | type[Leader], str, Refusal]] = {
    Step.RECEIVED: ("station_id", GridStation, "name", Refusal.OTHER_STATION),
    Step.DELIVERED: ("leader_id", Leader, "pickup_name", Refusal.OTHER_POINT),
}


def _scan_at(
    session: Session,
    step: Step,
    *,
    place_id: int,
    wave: Wave,
    scanned: str,
    user: User,
    now: datetime,
) -> Scanned:
    """A crate scanned at its own place (station or point): one handover of the step, or
    ScanRefused naming the place the crate belongs to."""
    column, table, name, refusal = _PLACES[step]
    crate, method = _find(session, scanned, wave_id=wave.id)
    belongs_to = getattr(crate, column)
    if belongs_to != place_id:
        other = session.get(table, belongs_to)
        raise ScanRefused(refusal, code=crate.code, belongs=getattr(other, name) if other else "")
    handover = _record(
        session, crate=crate, step=step, user=user, now=now, method=method, **{column: place_id}
    )
    return Scanned(crate, handover)


def scan_received(
    session: Session, *, wave: Wave, station: GridStation, scanned: str, user: User, now: datetime
) -> Scanned:
    """A crate off the truck at its grid station: one `received` handover, or ScanRefused."""
    if not user.sees_region(station.region_id) or wave.region_id != station.region_id:
        raise NotFound(f"station {station.code}")
    return _scan_at(
        session, Step.RECEIVED, place_id=station.id, wave=wave, scanned=scanned, user=user, now=now
    )


def scan_delivered(
    session: Session, *, wave: Wave, leader: Leader, scanned: str, user: User, now: datetime
) -> Scanned:
    """A crate arrived at its pickup point, scanned by the leader: one `delivered` handover."""
    if not user.sees_leader(leader):
        raise NotFound(f"leader {leader.code}")
    return _scan_at(
        session, Step.DELIVERED, place_id=leader.id, wave=wave, scanned=scanned, user=user, now=now
    )


def step_states(session: Session, *, crates: list[CrateView], step: Step) -> dict[int, Handover]:
    """The handovers of these crates at one step, by crate id."""
    return {
        h.crate_id: h
        for h in session.scalars(
            select(Handover).where(
                Handover.crate_id.in_([c.id for c in crates]), Handover.step == step
            )
        )
    }


@dataclass(frozen=True, slots=True)
class PointCrates:
    """A point's crates in a wave and which of them were scanned delivered."""

    crates: list[CrateView]
    delivered: dict[int, Handover]

    @property
    def scanned(self) -> int:
        return len(self.delivered)


def point_crates(session: Session, *, wave: Wave, leader: Leader) -> PointCrates:
    crates = crates_of_wave(session, wave.id, leader=leader.id, contents=False)
    return PointCrates(crates, step_states(session, crates=crates, step=Step.DELIVERED))


def units_not_delivered(session: Session, *, wave: Wave, leader: Leader) -> dict[int, int]:
    """Per product, the units in the point's crates not scanned delivered: what the arrival
    count starts short by. Empty until the first crate is scanned (a point that does not scan
    counts from what is expected)."""
    delivered = (
        select(Handover.crate_id)
        .join(Crate, Crate.id == Handover.crate_id)
        .where(
            Handover.step == Step.DELIVERED,
            Crate.wave_id == wave.id,
            Crate.leader_id == leader.id,
        )
    )
    if not session.scalar(select(func.count()).select_from(delivered.subquery())):
        return {}
    rows = session.execute(
        select(OrderLine.product_id, func.sum(CrateItem.quantity))
        .join(Crate, Crate.id == CrateItem.crate_id)
        .join(OrderLine, OrderLine.id == CrateItem.order_line_id)
        .where(
            Crate.wave_id == wave.id,
            Crate.leader_id == leader.id,
            Crate.id.not_in(delivered),
        )
        .group_by(OrderLine.product_id)
    ).all()
    return {product_id: int(units) for product_id, units in rows}
