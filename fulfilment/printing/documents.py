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
    """A crate of the leader's goods and the bags (or parts of bags) packed in it. Before the
    wave's crates are packed, one block per zone, without a code."""

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
    product_zone = dict(session.execute(select(Product.sku, Product.zone)).all())
    sheets = []
    for s in lists:
        by_zone: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        who: dict[int, tuple[str, str]] = {}
        for m in s.members:
            zone = product_zone[m.sku].value
            by_zone[zone][m.bag_no].append(BagLine(m.sku, m.name, m.quantity))
            who[m.bag_no] = (m.member, m.phone)
        zones = [z.value for z in ZONES if z.value in by_zone]
        crates = tuple(
            CrateBlock(
                None,
                zone,
                n + 1,
                len(zones),
                False,
                tuple(
                    Bag(no, *who[no], tuple(lines)) for no, lines in sorted(by_zone[zone].items())
                ),
            )
            for n, zone in enumerate(zones)
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
