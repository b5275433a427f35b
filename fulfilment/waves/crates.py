"""Crates (周转箱) as records: a wave's goods packed per (leader, temperature zone), once.

Packed right after the cutoff, in a transaction of their own (`ensure_crates`: the night's plan
step does it before it counts crates; `groupbuy cutoff` does it after the cutoff commits), and
by whatever asks first for the crates of a wave that has none (a wave cut off before crates
were records, a crate list, a loading page). Exactly once: the packer takes the wave's row lock
and re-checks that the wave has no crates; a second packer waits, finds them, and packs nothing.
Not in the cutoff's own transaction: packing reads every line of the wave and writes its
contents, which would make the 100,000-order cutoff several times slower (measured: see
docs/warehouse.md), while the cutoff's deadline is the one that cannot slip.

Packing is first-fit decreasing by volume: the units of a (leader, zone) sorted by unit volume
(largest first, then order and line for a stable tie), each placed in the first crate it fits;
a unit larger than a crate is a crate of its own, marked oversize. The lines are read in one
query and the crates and their contents written in bulk (COPY on PostgreSQL).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    event,
    exists,
    func,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from fulfilment.core.audit import record_change
from fulfilment.core.db import fetch_rows, insert_rows
from fulfilment.core.errors import CutoffNotReached
from fulfilment.core.models import (
    Base,
    Leader,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Region,
    TempZone,
    Wave,
    WaveStatus,
    _enum,
    _never_delete,
)

# One crate (周转箱) holds this much. The night's PlanningOptions.crate_volume_ml defaults to it
# and the planner packs with its setting, so the planner and the packer share one size.
DEFAULT_CRATE_VOLUME_ML = 40_000

# The zone in a crate code: one Latin letter, readable aloud and typed on any keyboard.
ZONE_LETTER = {TempZone.AMBIENT: "A", TempZone.CHILLED: "C", TempZone.FROZEN: "F"}

QR_PREFIX = "GBC:"  # a crate label's QR code carries "GBC:<crate id>"


class Crate(Base):
    """One crate of one wave for one leader's point in one temperature zone: n of N.

    Never changed once packed. Its route, stop and load sequence belong to a plan version
    (`night.loading.CrateLoad`); its handovers to `handovers`."""

    __tablename__ = "crate"
    __table_args__ = (
        UniqueConstraint("wave_id", "leader_id", "zone", "seq"),
        UniqueConstraint("code", "wave_id"),  # looked up by code (a scan), in a wave
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"))
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("grid_station.id"))  # when packed
    zone: Mapped[TempZone] = mapped_column(_enum(TempZone))
    seq: Mapped[int]  # n of N
    of_n: Mapped[int]  # N: the leader's crates in this zone
    code: Mapped[str] = mapped_column(String(100))
    volume_ml: Mapped[int]  # what it holds
    capacity_ml: Mapped[int]  # the crate size it was packed with
    oversize: Mapped[bool] = mapped_column(Boolean, default=False)


class CrateItem(Base):
    """Units of one order line (one member's bag) in one crate. A line may span crates."""

    __tablename__ = "crate_item"
    __table_args__ = {"sqlite_with_rowid": False}  # stored in key order, one B-tree

    crate_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_line_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign keys (like PickLine): the packer writes them with their crates, from the
    # wave's own lines; a key check per row would double the cost of a 100,000-order cutoff.
    order_id: Mapped[int]
    quantity: Mapped[int]


crates_t = cast(Table, Crate.__table__)
items_t = cast(Table, CrateItem.__table__)


# ---------------------------------------------------------------------------------------------
# Packing


@dataclass(slots=True)
class PackedCrate:
    """A crate as the packer fills it: (order id, line id, units) and the volume used."""

    volume_ml: int = 0
    oversize: bool = False
    contents: list[tuple[int, int, int]] = field(default_factory=list)


def first_fit_decreasing(lines: Iterable[Sequence[Any]], *, capacity_ml: int) -> list[PackedCrate]:
    """Pack units into crates of `capacity_ml`: `lines` end with (unit volume, order id, line
    id, units), sorted by unit volume descending (then order, line); the volume may be given
    negated (the packer's own rows sort ascending). Each unit goes into the first crate with
    room; a unit larger than a crate gets a crate of its own, marked oversize. The units of one
    line are placed together as far as they fit (the same as one at a time, since they are
    consecutive in the order). Always at least one crate when there is a line."""
    crates: list[PackedCrate] = []
    for line in lines:
        unit_ml, order_id, line_id, units = line[-4:]
        unit_ml = abs(unit_ml)
        if unit_ml > capacity_ml:
            crates.extend(
                PackedCrate(unit_ml, True, [(order_id, line_id, 1)]) for _ in range(units)
            )
            continue
        left = units
        for crate in crates:
            if crate.oversize:
                continue
            room = capacity_ml - crate.volume_ml
            if unit_ml > room:
                continue
            fit = left if unit_ml == 0 else min(left, room // unit_ml)
            crate.contents.append((order_id, line_id, fit))
            crate.volume_ml += fit * unit_ml
            left -= fit
            if not left:
                break
        while left:
            fit = left if unit_ml == 0 else min(left, capacity_ml // unit_ml)
            crates.append(PackedCrate(fit * unit_ml, False, [(order_id, line_id, fit)]))
            left -= fit
    return crates


def crate_code(
    region_code: str, wave: Wave, leader_code: str, zone: TempZone, n: int, of_n: int
) -> str:
    """The code printed and read aloud: region, delivery date (MMDD), point, zone, n/N."""
    date = wave.delivery_date
    return f"{region_code}-{date:%m%d}-{leader_code}-{ZONE_LETTER[zone]}-{n}/{of_n}".upper()


def normalise_code(typed: str) -> str:
    """A code as typed or scanned: full-width characters folded (NFKC), spaces dropped, upper case."""
    return "".join(unicodedata.normalize("NFKC", typed).split()).upper()


def pack_wave(
    session: Session, wave: Wave, *, crate_volume_ml: int = DEFAULT_CRATE_VOLUME_ML
) -> int:
    """Pack the cut-off wave's active lines into crates; returns how many. The caller holds the
    wave's row lock and has checked the wave has no crates yet (`ensure_crates`)."""
    if crate_volume_ml <= 0:
        raise ValueError("crate_volume_ml must be positive")
    lines_t, orders_t = cast(Table, OrderLine.__table__), cast(Table, Order.__table__)
    products_t = cast(Table, Product.__table__)
    # Read straight from the driver (no row objects: 166,000 lines in the demo) and sorted
    # here, in the packer's order: leader, zone, unit volume descending, order, line.
    rows = fetch_rows(
        session,
        select(
            orders_t.c.leader_id,
            type_coerce(products_t.c.zone, String),
            -products_t.c.volume_ml,
            lines_t.c.order_id,
            lines_t.c.id,
            lines_t.c.quantity,
        )
        .select_from(
            lines_t.join(orders_t, orders_t.c.id == lines_t.c.order_id).join(
                products_t, products_t.c.id == lines_t.c.product_id
            )
        )
        .where(
            orders_t.c.wave_id == wave.id,
            orders_t.c.status == OrderStatus.PLACED.value,
            lines_t.c.status == LineStatus.ACTIVE.value,
        ),
    )
    if not rows:
        return 0
    rows.sort()
    groups: dict[tuple[int, str], list[tuple]] = {}
    for (leader_id, zone), group in groupby(rows, key=itemgetter(0, 1)):
        groups[(leader_id, zone)] = list(group)
    leaders = {
        i: (code, station)
        for i, code, station in session.execute(
            select(Leader.id, Leader.code, Leader.station_id).where(
                Leader.id.in_({k[0] for k in groups})
            )
        )
    }
    region_code = session.scalar(select(Region.code).where(Region.id == wave.region_id)) or ""
    packed_groups = []
    for leader_id, zone_value in sorted(groups, key=lambda k: (leaders[k[0]][0], k[1])):
        packed = first_fit_decreasing(groups[(leader_id, zone_value)], capacity_ml=crate_volume_ml)
        packed_groups.append((leader_id, TempZone(zone_value), packed))
    ids = iter(_new_crate_ids(session, sum(len(p) for _, _, p in packed_groups)))
    crate_rows: list[tuple] = []
    item_rows: list[tuple[int, int, int, int]] = []
    for leader_id, zone, packed in packed_groups:
        code, station_id = leaders[leader_id]
        for n, crate in enumerate(packed, start=1):
            crate_id = next(ids)
            crate_rows.append(
                (
                    crate_id,
                    wave.id,
                    leader_id,
                    station_id,
                    zone.value,
                    n,
                    len(packed),
                    crate_code(region_code, wave, code, zone, n, len(packed)),
                    crate.volume_ml,
                    crate_volume_ml,
                    crate.oversize,
                )
            )
            # a line is in a crate once: its units go in together as far as they fit
            item_rows.extend(
                (crate_id, line_id, order_id, units) for order_id, line_id, units in crate.contents
            )
    insert_rows(session, crates_t, CRATE_COLUMNS, crate_rows)
    insert_rows(session, items_t, ITEM_COLUMNS, item_rows)
    return len(crate_rows)


CRATE_COLUMNS = [
    "id",
    "wave_id",
    "leader_id",
    "station_id",
    "zone",
    "seq",
    "of_n",
    "code",
    "volume_ml",
    "capacity_ml",
    "oversize",
]
ITEM_COLUMNS = ["crate_id", "order_line_id", "order_id", "quantity"]


def _new_crate_ids(session: Session, n: int) -> list[int]:
    """Ids for n new crates, taken ahead so that crates and contents go in without RETURNING:
    from the sequence on PostgreSQL; after the largest on SQLite, whose one writer at a time is
    this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        return sorted(
            session.scalars(
                text("SELECT nextval('crate_id_seq') FROM generate_series(1, :n)"), {"n": n}
            )
        )
    last = session.scalar(select(func.coalesce(func.max(Crate.id), 0))) or 0
    return list(range(last + 1, last + 1 + n))


def ensure_crates(
    session: Session,
    wave: Wave,
    *,
    crate_volume_ml: int = DEFAULT_CRATE_VOLUME_ML,
    actor: str = "system",
) -> None:
    """The cut-off wave's crates, packed now if it has none yet (once: under the wave's row
    lock, re-checked; audited as `wave.packed`). Refused for a wave not cut off yet."""
    if wave.status != WaveStatus.CUT_OFF:
        raise CutoffNotReached(f"wave {wave.id} is not cut off yet: its goods are not packed")
    if _has_crates(session, wave.id):
        return
    session.execute(select(Wave.id).where(Wave.id == wave.id).with_for_update())
    if _has_crates(session, wave.id):
        return  # another packer got there first
    crates = pack_wave(session, wave, crate_volume_ml=crate_volume_ml)
    record_change(
        session,
        actor=actor,
        action="wave.packed",
        entity="wave",
        entity_id=wave.id,
        after={"crates": crates, "crate_volume_ml": crate_volume_ml},
    )


def _has_crates(session: Session, wave_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Crate.wave_id == wave_id))))


# ---------------------------------------------------------------------------------------------
# Reading


def crate_counts(session: Session, *, wave_id: int) -> dict[tuple[int, TempZone], int]:
    """Crates per (leader id, zone): what the planner and the night's figures count."""
    return {
        (leader_id, TempZone(zone)): n
        for leader_id, zone, n in session.execute(
            select(Crate.leader_id, Crate.zone, func.count())
            .where(Crate.wave_id == wave_id)
            .group_by(Crate.leader_id, Crate.zone)
        )
    }


def qr_payload(crate_id: int) -> str:
    """What a crate label's QR code carries."""
    return f"{QR_PREFIX}{crate_id}"


@dataclass(frozen=True, slots=True)
class CrateRef:
    """What a scan names: a crate id (from the QR code) or a code (typed, or a USB scanner)."""

    crate_id: int | None
    code: str | None


def read_scan(scanned: str) -> CrateRef:
    """A scanned or typed text as a crate reference: `GBC:<id>` is the QR code's, anything else
    a crate code."""
    text_ = normalise_code(scanned)
    if text_.startswith(QR_PREFIX) and text_[len(QR_PREFIX) :].isdigit():
        return CrateRef(int(text_[len(QR_PREFIX) :]), None)
    return CrateRef(None, text_)


for _cls in (Crate, CrateItem):
    event.listen(_cls, "before_delete", _never_delete)
