"""The delivery day as the dispatcher watches it: each route of the published plan with its stops,
planned against actual.

A stop counts as delivered when its leader confirmed the arrival (`arrivals`), or, without a
confirmation, at the first bag collected there (a point cannot hand over what has not come). A
stop is late when it was delivered more than `LATE_AFTER` after its ETA, or is still waiting that
long after it. A route has left once its start time has passed. (Crate handover scans, where the
warehouse records them, are the finer source; this reads what every point records.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfilment.core.models import GridStation, Leader, Order, Wave
from fulfilment.night.plans import Echelon, PlanRoute, PlanStop, find_published_plan

from .arrivals import Arrival
from .point import Pickup

LATE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class StopProgress:
    seq: int
    stop_code: str
    point_name: str
    eta: datetime
    delivered_at: datetime | None
    late: bool

    @property
    def delay_min(self) -> int | None:
        if self.delivered_at is None:
            return None
        return round((self.delivered_at - self.eta).total_seconds() / 60)


@dataclass(frozen=True)
class RouteProgress:
    vehicle: str
    station: str
    start_at: datetime
    left: bool
    stops: list[StopProgress]

    @property
    def delivered(self) -> int:
        return sum(1 for s in self.stops if s.delivered_at is not None)

    @property
    def late(self) -> int:
        return sum(1 for s in self.stops if s.late)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def delivery_day(session: Session, *, wave: Wave, now: datetime) -> list[RouteProgress]:
    """The published plan's last-mile routes with each stop's planned and actual time (empty
    when nothing is published). Three reads, whatever the number of stops."""
    plan = find_published_plan(session, wave_id=wave.id)
    if plan is None:
        return []
    now = _utc(now)
    confirmed = dict(
        session.execute(
            select(Arrival.leader_id, func.min(Arrival.confirmed_at))
            .where(Arrival.wave_id == wave.id)
            .group_by(Arrival.leader_id)
        ).all()
    )
    first_pickup = dict(
        session.execute(
            select(Pickup.leader_id, func.min(Pickup.verified_at))
            .join(Order, Order.id == Pickup.order_id)
            .where(Order.wave_id == wave.id)
            .group_by(Pickup.leader_id)
        ).all()
    )
    rows = session.execute(
        select(PlanRoute, PlanStop, Leader.pickup_name)
        .join(PlanStop, PlanStop.route_id == PlanRoute.id)
        .join(Leader, Leader.id == PlanStop.leader_id)
        .where(PlanRoute.plan_id == plan.id, PlanRoute.echelon == Echelon.LAST_MILE)
        .order_by(PlanRoute.vehicle_code, PlanStop.seq)
    ).all()
    stations = dict(session.execute(select(GridStation.id, GridStation.code)).all())
    routes: dict[int, RouteProgress] = {}
    for route, stop, name in rows:
        progress = routes.get(route.id)
        if progress is None:
            progress = routes[route.id] = RouteProgress(
                vehicle=route.vehicle_code,
                station=stations.get(route.station_id or 0, ""),
                start_at=_utc(route.start_at),
                left=_utc(route.start_at) <= now,
                stops=[],
            )
        leader = stop.leader_id or 0
        seen = [t for t in (confirmed.get(leader), first_pickup.get(leader)) if t]
        delivered = min(_utc(t) for t in seen) if seen else None
        eta = _utc(stop.arrival_at)
        late = (delivered or now) > eta + LATE_AFTER
        progress.stops.append(StopProgress(stop.seq, stop.stop_code, name, eta, delivered, late))
    return sorted(routes.values(), key=lambda r: (r.station, r.vehicle))


@dataclass(frozen=True)
class PointFigures:
    """What the points have reported for a wave so far."""

    arrivals_confirmed: int  # points that confirmed their delivery
    units_short: int  # reported short on arrival (shortages)
    orders_collected: int
    orders_to_collect: int  # placed orders of the wave


def point_figures(session: Session, *, wave: Wave) -> PointFigures:
    """Arrivals, shortages and pickups of the wave, in four counts."""
    from fulfilment.core.models import OrderStatus

    from .arrivals import Discrepancy, DiscrepancyKind

    arrivals = session.scalar(
        select(func.count(func.distinct(Arrival.leader_id))).where(Arrival.wave_id == wave.id)
    )
    short = session.scalar(
        select(func.coalesce(func.sum(Discrepancy.quantity), 0))
        .join(Arrival, Arrival.id == Discrepancy.arrival_id)
        .where(Arrival.wave_id == wave.id, Discrepancy.kind == DiscrepancyKind.SHORTAGE)
    )
    collected = session.scalar(
        select(func.count(Pickup.id))
        .join(Order, Order.id == Pickup.order_id)
        .where(Order.wave_id == wave.id)
    )
    placed = session.scalar(
        select(func.count(Order.id)).where(
            Order.wave_id == wave.id, Order.status == OrderStatus.PLACED
        )
    )
    return PointFigures(int(arrivals or 0), int(short or 0), int(collected or 0), int(placed or 0))
