"""The data of every printed document of a wave, read in a few set-based queries, personal data
masked here (nothing below sees a full name, a full phone or a pickup code).

A document is plain frozen data: the renderers (PDF, HTML, tables, thermal) only lay it out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.errors import FulfilmentError, NotFound
from fulfilment.core.models import (
    GridStation,
    PickLevel,
    PickLine,
    Product,
    Region,
    TempZone,
    Wave,
    WaveStatus,
    utcnow,
)
from fulfilment.night.crate_routes import CrateView, crates_of_wave
from fulfilment.night.plans import Echelon, PlanRoute, RoutePlan, find_published_plan
from fulfilment.waves.picklists import PickRow, list_sorting_lists, list_station_picks

ZONES = (TempZone.AMBIENT, TempZone.CHILLED, TempZone.FROZEN)


class NotPrintable(FulfilmentError):
    """The wave lacks what the document is made from (its cutoff, or a published plan)."""

    http_status = 409

    def __init__(self, wave_id: int, missing: str, message: str) -> None:
        self.wave_id, self.missing = wave_id, missing
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Heading:
    """What every printed page says on top: the wave and when it was printed."""

    wave_id: int
    region_code: str
    region_name: str
    tz: str
    delivery_date: date
    printed_at: datetime  # UTC; shown in the region's zone


def bin_walk_key(bin_code: str) -> tuple:
    """`A-03-2` → ('A', 3, 2): aisles by letter, bays and shelves by number (B-10 after B-9)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[-\s]+", bin_code.strip()))


def walk_order(rows: list[PickRow]) -> list[PickRow]:
    """Rows by temperature zone (ambient, chilled, frozen), then along the bin walk."""
    rank = {z.value: n for n, z in enumerate(ZONES)}
    return sorted(rows, key=lambda r: (rank.get(r.zone, 9), bin_walk_key(r.bin_code), r.sku))


def get_printable_wave(session: Session, wave_id: int) -> Wave:
    """The wave, cut off; else NotFound, or NotPrintable naming the missing cutoff."""
    wave = session.get(Wave, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    if wave.status != WaveStatus.CUT_OFF:
        raise NotPrintable(
            wave_id,
            "cutoff",
            f"wave {wave_id} is not cut off yet: its lists print after the cutoff",
        )
    return wave


def heading(session: Session, wave: Wave, *, now: datetime | None = None) -> Heading:
    region = session.get(Region, wave.region_id)
    assert region is not None
    return Heading(
        wave.id, region.code, region.name, region.tz, wave.delivery_date, now or utcnow()
    )


# ---------------------------------------------------------------------------------------------
# Pick lists


@dataclass(frozen=True, slots=True)
class PickList:
    """The warehouse pick list, or one station's: SKU totals in walking order."""

    heading: Heading
    station_code: str | None
    station_name: str | None
    rows: tuple[PickRow, ...]


def warehouse_picklist(session: Session, wave: Wave, *, now: datetime | None = None) -> PickList:
    """SKU totals for the whole wave, by zone and along the bin walk, with a check column."""
    rows = [
        PickRow(r.sku, r.name, r.zone.value, r.bin_code, r.quantity, r.weight_g, r.volume_ml)
        for r in session.execute(
            select(
                Product.sku,
                Product.name,
                PickLine.zone,
                PickLine.bin_code,
                PickLine.quantity,
                PickLine.weight_g,
                PickLine.volume_ml,
            )
            .join(Product, Product.id == PickLine.product_id)
            .where(PickLine.wave_id == wave.id, PickLine.level == PickLevel.WAREHOUSE)
        )
    ]
    return PickList(heading(session, wave, now=now), None, None, tuple(walk_order(rows)))


def station_picklists(
    session: Session, wave: Wave, *, station_code: str | None = None, now: datetime | None = None
) -> list[PickList]:
    """One list per grid station (in code order): what leaves the warehouse for it."""
    head = heading(session, wave, now=now)
    names = dict(
        session.execute(
            select(GridStation.code, GridStation.name).where(
                GridStation.region_id == wave.region_id
            )
        ).all()
    )
    if station_code is not None and station_code not in names:
        raise NotFound(f"station {station_code} is not in wave {wave.id}'s region")
    return [
        PickList(head, code, names.get(code), tuple(walk_order(rows)))
        for code, rows in list_station_picks(session, wave).items()
        if station_code in (None, code)
    ]


# ---------------------------------------------------------------------------------------------
# Sorting lists (按团长分拣)


@dataclass(frozen=True, slots=True)
class BagLine:
    sku: str
    name: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Bag:
    """A member's bag: its short number at the point and the masked member name (never the
    pickup code), with its lines."""

    bag_no: int
    member: str  # masked
    phone: str  # masked
    lines: tuple[BagLine, ...]


@dataclass(frozen=True, slots=True)
class CrateBlock:
    """A crate of the leader's goods (waves.crates, packed at cutoff) and the bags, or the
    parts of bags, packed in it."""

    code: str | None
    zone: str
    n: int
    of: int
    oversize: bool
    bags: tuple[Bag, ...]


@dataclass(frozen=True, slots=True)
class SortingSheet:
    """One leader's sorting list: totals by SKU, then crate by crate, bag by bag."""

    heading: Heading
    station_code: str
    leader_code: str
    leader: str  # masked
    pickup_name: str
    rows: tuple[PickRow, ...]
    crates: tuple[CrateBlock, ...]

    @property
    def bag_count(self) -> int:
        return len({b.bag_no for c in self.crates for b in c.bags})


def sorting_sheets(
    session: Session,
    wave: Wave,
    *,
    station_code: str | None = None,
    leader_code: str | None = None,
    now: datetime | None = None,
) -> list[SortingSheet]:
    """Every leader's sorting list (of one station, or one leader), by station and leader code."""
    head = heading(session, wave, now=now)
    lists = list_sorting_lists(session, wave, station_code=station_code, leader_code=leader_code)
    if not lists:
        return []
    station_id = None
    if station_code is not None:
        station_id = session.scalar(select(GridStation.id).where(GridStation.code == station_code))
    crates_by_leader: dict[str, list[CrateView]] = defaultdict(list)
    for crate in crates_of_wave(session, wave.id, station=station_id, contents=True):
        crates_by_leader[crate.leader_code].append(crate)
    sheets = []
    for s in lists:
        phones = {m.bag_no: m.phone for m in s.members}
        crates = tuple(
            CrateBlock(
                c.code,
                c.zone.value,
                c.seq,
                c.of_n,
                c.oversize,
                tuple(
                    Bag(
                        b.bag_no,
                        b.member_masked,
                        phones.get(b.bag_no, ""),
                        tuple(BagLine(x.sku, x.product_name, x.quantity) for x in b.lines),
                    )
                    for b in c.contents
                ),
            )
            for c in sorted(
                crates_by_leader.get(s.leader_code, ()),
                key=lambda c: (ZONES.index(c.zone), c.seq),
            )
        )
        sheets.append(
            SortingSheet(
                head,
                s.station_code,
                s.leader_code,
                s.leader_name,
                s.pickup_name,
                tuple(walk_order(s.rows)),
                crates,
            )
        )
    return sheets


# ---------------------------------------------------------------------------------------------
# Purchase list (以销定采)


@dataclass(frozen=True, slots=True)
class PurchaseGroup:
    supplier: str | None  # None: products without a supplier
    rows: tuple[PickRow, ...]


@dataclass(frozen=True, slots=True)
class PurchaseList:
    heading: Heading
    groups: tuple[PurchaseGroup, ...]


def purchase_list(session: Session, wave: Wave, *, now: datetime | None = None) -> PurchaseList:
    """The wave's SKU totals grouped by supplier (suppliers by name, the unassigned last)."""
    supplier = dict(session.execute(select(Product.sku, Product.supplier)).all())
    groups: dict[str | None, list[PickRow]] = defaultdict(list)
    for row in warehouse_picklist(session, wave, now=now).rows:
        groups[supplier.get(row.sku)].append(row)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    return PurchaseList(
        heading(session, wave, now=now),
        tuple(
            PurchaseGroup(name, tuple(sorted(rows, key=lambda r: r.sku))) for name, rows in ordered
        ),
    )


# ---------------------------------------------------------------------------------------------
# What needs the published plan: crate labels, route sheets, the loading list


def get_published_plan(session: Session, wave: Wave) -> RoutePlan:
    """The wave's published plan, else NotPrintable naming it."""
    plan = find_published_plan(session, wave_id=wave.id)
    if plan is None:
        raise NotPrintable(
            wave.id,
            "published plan",
            f"wave {wave.id} has no published plan yet: crate labels, route sheets and the"
            " loading list print once a plan is published",
        )
    return plan


@dataclass(frozen=True, slots=True)
class Labels:
    heading: Heading
    crates: tuple[CrateView, ...]  # leader masked; no member data on a label


def crate_labels(
    session: Session, wave: Wave, *, station_code: str | None = None, now: datetime | None = None
) -> Labels:
    """Every crate's label (one station's, if given), in station, route and load order."""
    get_published_plan(session, wave)
    station_id = None
    if station_code is not None:
        station_id = session.scalar(select(GridStation.id).where(GridStation.code == station_code))
        if station_id is None:
            raise NotFound(f"station {station_code} does not exist")
    crates = crates_of_wave(session, wave.id, station=station_id, contents=False)
    crates.sort(key=lambda c: (c.station_code, c.vehicle_code or "~", c.load_seq or 0, c.code))
    return Labels(heading(session, wave, now=now), tuple(crates))


@dataclass(frozen=True, slots=True)
class RouteStopLine:
    seq: int
    eta: datetime
    place_code: str
    name: str
    address: str
    contact: str  # masked phone
    crates: tuple[CrateView, ...]  # to hand over here, in load order


@dataclass(frozen=True, slots=True)
class RouteSheet:
    """One route of the published plan: a truck (warehouse → stations) or a van (station →
    pickup points), its stops in order with what to hand over at each."""

    heading: Heading
    route_id: int
    trunk: bool
    vehicle_code: str
    station_code: str | None  # the van's station (None: a trunk route from the warehouse)
    start_at: datetime
    end_at: datetime
    plan_version: int
    stops: tuple[RouteStopLine, ...]

    @property
    def crates_in_load_order(self) -> list[tuple[int, CrateView]]:
        """(LOAD number, crate), first in first: the reverse of the stop order."""
        loads = [
            ((c.trunk_load_seq if self.trunk else c.load_seq) or 0, c)
            for stop in self.stops
            for c in stop.crates
        ]
        return sorted(loads, key=lambda lc: (lc[0], lc[1].code))


def route_sheets(
    session: Session, wave: Wave, *, station_code: str | None = None, now: datetime | None = None
) -> list[RouteSheet]:
    """One sheet per route of the published plan (trunk first, then the vans by station and
    vehicle); with a station, that station's vans."""
    from fulfilment.core.models import Leader
    from fulfilment.core.privacy import mask_phone

    plan = get_published_plan(session, wave)
    head = heading(session, wave, now=now)
    stations = {
        sid: (code, name)
        for sid, code, name in session.execute(
            select(GridStation.id, GridStation.code, GridStation.name).where(
                GridStation.region_id == wave.region_id
            )
        )
    }
    crates = crates_of_wave(session, wave.id, contents=False)
    at_point: dict[tuple[int, int], list[CrateView]] = defaultdict(list)
    at_station: dict[tuple[int, int], list[CrateView]] = defaultdict(list)
    for c in crates:
        if c.route_id is not None:
            at_point[(c.route_id, c.leader_id)].append(c)
        if c.trunk_route_id is not None:
            at_station[(c.trunk_route_id, c.station_id)].append(c)
    routes = session.scalars(
        select(PlanRoute)
        .where(PlanRoute.plan_id == plan.id)
        .order_by(PlanRoute.echelon.desc(), PlanRoute.station_id, PlanRoute.vehicle_code)
    ).all()
    leader_ids = {st.leader_id for r in routes for st in r.stops if st.leader_id is not None}
    leaders = {
        lid: (code, pickup, address, phone)
        for lid, code, pickup, address, phone in session.execute(
            select(Leader.id, Leader.code, Leader.pickup_name, Leader.address, Leader.phone).where(
                Leader.id.in_(leader_ids)
            )
        )
    }
    sheets = []
    for r in routes:
        trunk = r.echelon == Echelon.TRUNK
        station = stations[r.station_id][0] if r.station_id in stations else None
        if station_code is not None and station != station_code:
            continue
        lines = []
        for st in r.stops:
            if st.leader_id is not None:
                code, pickup, address, phone = leaders[st.leader_id]
                here = at_point.get((r.id, st.leader_id), [])
                lines.append(
                    RouteStopLine(
                        st.seq,
                        st.arrival_at,
                        code,
                        pickup,
                        address,
                        mask_phone(phone),
                        tuple(sorted(here, key=lambda c: (c.load_seq or 0, c.code))),
                    )
                )
            elif st.station_id is not None:
                code, name = stations[st.station_id]
                here = at_station.get((r.id, st.station_id), [])
                lines.append(
                    RouteStopLine(
                        st.seq,
                        st.arrival_at,
                        code,
                        name,
                        "",
                        "",
                        tuple(sorted(here, key=lambda c: (c.trunk_load_seq or 0, c.code))),
                    )
                )
        sheets.append(
            RouteSheet(
                head,
                r.id,
                trunk,
                r.vehicle_code,
                station,
                r.start_at,
                r.end_at,
                plan.version,
                tuple(lines),
            )
        )
    return sheets
