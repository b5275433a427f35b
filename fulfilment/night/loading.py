"""Where each crate rides in a published plan: its routes, stops and load sequences.

Stored per plan version (`crate_load`, one row per plan and crate), written when the version is
published (`plans.publish_plan` calls `write_crate_loads`), never changed afterwards: a label or
route sheet printed from version 3 can be told from one of version 4, the loading page of a
route follows the version in force, and the crates themselves never change.

A crate rides twice: on a truck from the warehouse to its grid station (the trunk), then on a
van from the station to its pickup point (the last mile). On each route the load sequence is the
reverse of the stop order: what is delivered last goes in first. On a van the crates of the last
stop come first; on a truck the crates of the last station, grouped by the van that takes them
on, in that van's load order. A station split over several trucks (by zone, or by size) gets
its crates shared out in the trucks' stop order, each visit up to the crates it delivers.

This module sits below `plans` (which calls it on publish): it takes the plan's stops as plain
rows, so that it need not import the plan tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import ForeignKey, Index, Table, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from fulfilment.core.db import insert_rows
from fulfilment.core.models import Base, Leader
from fulfilment.waves.crates import Crate


class CrateLoad(Base):
    """One crate in one plan version: its van (route, stop, load number) and its truck."""

    __tablename__ = "crate_load"
    __table_args__ = (
        Index("ix_crate_load_route_id", "route_id"),
        Index("ix_crate_load_trunk_route_id", "trunk_route_id"),
    )

    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plan.id"), primary_key=True)
    crate_id: Mapped[int] = mapped_column(ForeignKey("crate.id"), primary_key=True)
    # the last mile: the van to the pickup point (None: the point is unassigned in this plan)
    route_id: Mapped[int | None] = mapped_column(ForeignKey("route_plan_route.id"))
    stop_no: Mapped[int | None]
    load_seq: Mapped[int | None]
    # the trunk: the truck from the warehouse to the crate's grid station
    trunk_route_id: Mapped[int | None] = mapped_column(ForeignKey("route_plan_route.id"))
    trunk_stop_no: Mapped[int | None]
    trunk_load_seq: Mapped[int | None]


loads_t = cast(Table, CrateLoad.__table__)


@dataclass(frozen=True, slots=True)
class StopRow:
    """A visit of a stored route, as `plans` hands it over: a pickup point (last mile, with
    `leader_id`) or a grid station (trunk, with `station_id`)."""

    route_id: int
    seq: int
    leader_id: int | None
    station_id: int | None
    zones: str  # comma-separated, as stored
    delivered_crates: int


def write_crate_loads(
    session: Session,
    *,
    plan_id: int,
    wave_id: int,
    van_stops: Iterable[StopRow],
    truck_stops: Iterable[StopRow],
) -> int:
    """Give every crate of the wave its routes, stops and load sequences in this plan version,
    once (a version published again writes nothing). Returns the rows written."""
    if session.scalar(select(CrateLoad.crate_id).where(CrateLoad.plan_id == plan_id).limit(1)):
        return 0
    crates = session.execute(
        select(Crate.id, Crate.leader_id, Crate.station_id, Crate.zone, Crate.seq, Leader.code)
        .join(Leader, Leader.id == Crate.leader_id)
        .where(Crate.wave_id == wave_id)
        .order_by(Leader.code, Crate.zone, Crate.seq)
    ).all()
    van_of: dict[tuple[int, str], tuple[int, int]] = {}  # (leader, zone) -> (route, stop)
    for s in sorted(van_stops, key=lambda s: (s.route_id, s.seq)):
        for zone in filter(None, s.zones.split(",")):
            van_of.setdefault((cast(int, s.leader_id), zone), (s.route_id, s.seq))
    van: dict[int, tuple[int, int]] = {}
    for crate_id, leader_id, _, zone, _, _ in crates:
        if (leader_id, str(zone)) in van_of:
            van[crate_id] = van_of[(leader_id, str(zone))]
    van_load = _reverse_stop_order(van, order=[c[0] for c in crates])

    visits: dict[int, list[StopRow]] = defaultdict(list)  # station -> its truck visits in order
    for s in sorted(truck_stops, key=lambda s: (s.route_id, s.seq)):
        visits[cast(int, s.station_id)].append(s)
    room = {(s.route_id, s.seq): s.delivered_crates for ss in visits.values() for s in ss}
    truck: dict[int, tuple[int, int]] = {}
    # a station's crates in the order its vans take them, so one van's crates ride together
    by_van = sorted(
        crates, key=lambda c: (van.get(c[0], (1 << 62, 0))[0], van_load.get(c[0], 0), c[0])
    )
    for crate_id, _, station_id, zone, _, _ in by_van:
        fits = [s for s in visits.get(station_id, ()) if str(zone) in s.zones.split(",")]
        if not fits:
            continue
        visit = next((s for s in fits if room[(s.route_id, s.seq)] > 0), fits[-1])
        room[(visit.route_id, visit.seq)] -= 1
        truck[crate_id] = (visit.route_id, visit.seq)
    truck_load = _reverse_stop_order(truck, order=[c[0] for c in by_van])

    rows = [
        (
            plan_id,
            crate_id,
            van.get(crate_id, (None, None))[0],
            van.get(crate_id, (None, None))[1],
            van_load.get(crate_id),
            truck.get(crate_id, (None, None))[0],
            truck.get(crate_id, (None, None))[1],
            truck_load.get(crate_id),
        )
        for crate_id, *_ in crates
    ]
    insert_rows(session, loads_t, LOAD_COLUMNS, rows)
    return len(rows)


LOAD_COLUMNS = [
    "plan_id",
    "crate_id",
    "route_id",
    "stop_no",
    "load_seq",
    "trunk_route_id",
    "trunk_stop_no",
    "trunk_load_seq",
]


def _reverse_stop_order(placed: dict[int, tuple[int, int]], *, order: list[int]) -> dict[int, int]:
    """Load numbers 1, 2, … per route: the last stop's crates first; within a stop, `order`."""
    rank = {crate_id: i for i, crate_id in enumerate(order)}
    by_route: dict[int, list[int]] = defaultdict(list)
    for crate_id, (route_id, _) in placed.items():
        by_route[route_id].append(crate_id)
    out: dict[int, int] = {}
    for crate_ids in by_route.values():
        crate_ids.sort(key=lambda c: (-placed[c][1], rank[c]))
        out.update((c, n) for n, c in enumerate(crate_ids, start=1))
    return out
