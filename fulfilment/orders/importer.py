"""CSV order import from a mini-program shop platform's export (one row per order line).

All-or-nothing per file by default; with skip_bad, the good orders go in and every bad row is
reported with its line number and field. Re-importing a file changes nothing: each order's
idempotency key is `csv:<order number>`, scoped to the region's imports (`csv:<region code>`), so
two cities' exports with overlapping order numbers both import; an order number seen before with
other contents is a row error, never a silent replay of the earlier order. Members are stored as
`csv:<region code>:<member id>`: SH's member 1001 and BJ's member 1001 are two people, and an id
that starts like another source's (`p1:…`, `csv:…`) is refused.

An import never holds the shop up. The whole file is read and checked first with plain reads and
no lock (leaders, the SKUs each order's wave offers, quantities, lengths, times, replays and
conflicts, stock); a file refused is refused before anything is written. Only then is it placed,
in a few set-based statements: the members in one INSERT, the orders, their lines and their
audit entries each in one executemany, and last the stock, taken with one conditional UPDATE per
deal (not per row). The deals' row locks, which API orders for the same SKUs wait on, are held
only from those UPDATEs to the commit.

A line's unit price is the deal's tier at the units sold when the file is placed plus the
file's earlier lines; an API order placed in the same instant is not counted, so a line may pay
a tier above (never below) the one strict one-by-one placing would give, and the cutoff's final
tier price refunds the difference (退差价) as it does for every line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import String, Table, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from fulfilment.core.csvimport import (
    ImportFailed,
    ImportPreview,
    PreviewRow,
    RowError,
    decode,
    text_fault,
)
from fulfilment.core.db import advisory_xact_lock, is_postgres
from fulfilment.core.errors import InvalidInput, SoldOut
from fulfilment.core.models import (
    AuditEntry,
    Deal,
    DealStatus,
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Region,
    Wave,
    WaveStatus,
    tier_price,
    utcnow,
)
from fulfilment.core.privacy import mask_name
from fulfilment.waves.cycle import cutoff_for_delivery, delivery_date_for, ensure_wave, region_zone
from fulfilment.waves.deadlines import accepts_orders_at

from .intake import (
    _TAKE_STOCK,
    MAX_QUANTITY_PER_LINE,
    LineRequest,
    MemberRef,
    _Offer,
    _read_offers,
    check_raw_member_id,
    codes_in_use,
    csv_member_id,
    new_pickup_code,
    request_fingerprint,
)

# Each field, with the header names the platform exports are known to use.
COLUMNS: dict[str, tuple[str, ...]] = {
    "order_no": ("order_no", "订单号", "订单编号"),
    "order_time": ("order_time", "下单时间"),
    "leader_code": ("leader_code", "团长编号", "团长编码"),
    "member_id": ("member_id", "会员编号", "会员ID"),
    "member_name": ("member_name", "会员昵称", "收货人"),
    "phone": ("phone", "手机号", "联系电话"),
    "sku": ("sku", "商品编码", "SKU"),
    "quantity": ("quantity", "数量", "购买数量"),
}
REQUIRED = ("order_no", "order_time", "leader_code", "member_id", "sku", "quantity")
KEY_PREFIX = "csv:"
# Keys looked up per statement (PostgreSQL takes at most 65,535 parameters).
_CHUNK = 5_000
# How many delivery days after its own an order may still find an open wave.
_WAVE_HORIZON_DAYS = 60
_ORDERS = cast(Table, Order.__table__)
_LINES = cast(Table, OrderLine.__table__)
_MEMBERS = cast(Table, Member.__table__)
_AUDIT = cast(Table, AuditEntry.__table__)
_DEALS = cast(Table, Deal.__table__)


def _width(column: Any) -> int:
    return int(cast(String, column.type).length or 0)


# The longest value each field may hold: what its column stores. The member id is stored with
# its namespace (`csv:<region>:`), whose length max_lengths() takes off for the region.
MAX_LENGTH: dict[str, int] = {
    "order_no": 128 - len(KEY_PREFIX),
    "leader_code": _width(Leader.__table__.c.code),
    "member_id": _width(Member.__table__.c.external_id),
    "member_name": _width(Member.__table__.c.name),
    "phone": _width(Member.__table__.c.phone),
    "sku": _width(Product.__table__.c.sku),
    "order_time": 40,
    "quantity": 12,
}


def max_lengths(region: Region) -> dict[str, int]:
    """MAX_LENGTH for one region's file: the member id leaves room for its namespace."""
    return {**MAX_LENGTH, "member_id": MAX_LENGTH["member_id"] - len(csv_member_id(region, ""))}


@dataclass
class ImportReport:
    orders_imported: int = 0
    orders_already_present: int = 0
    lines_imported: int = 0
    skipped: list[RowError] = field(default_factory=list)


@dataclass
class _PendingOrder:
    order_no: str
    first_line: int
    placed_at: datetime
    leader_code: str
    member: MemberRef  # the member id as the file has it (the fingerprint keeps it so)
    lines: list[LineRequest] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    # Found while the file is checked:
    leader_id: int = 0
    delivery_date: date | None = None
    late: bool = False

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.order_no}"

    def wanted(self) -> dict[str, int]:
        """Units per SKU (two rows of one SKU add up), in the file's order."""
        merged: dict[str, int] = {}
        for line in self.lines:
            merged[line.sku] = merged.get(line.sku, 0) + line.quantity
        return merged

    def line_of(self, sku: str) -> int:
        """The file line of the order's (first) row for a SKU."""
        for line, number in zip(self.lines, self.line_numbers, strict=True):
            if line.sku == sku:
                return number
        return self.first_line

    def fingerprint(self, region: Region) -> str:
        """What the order says, so that a re-import is a replay and a changed order a conflict."""
        return request_fingerprint(
            {
                "source": "csv",
                "region": region.code,
                "placed_at": self.placed_at.isoformat(),
                "leader": self.leader_code,
                "member": [self.member.external_id, self.member.name, self.member.phone],
                "lines": [[line.sku, line.quantity] for line in self.lines],
            }
        )


def import_scope(region: Region) -> str:
    """The idempotency scope of a region's CSV imports."""
    return f"csv:{region.code}"


def parse_time(region: Region, value: str) -> datetime:
    """ISO 8601; a time without an offset is the region's wall clock."""
    text = value.strip().replace("/", "-")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=region_zone(region))
    return moment


def _header_map(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        clean = name.strip()
        for key, aliases in COLUMNS.items():
            if clean in aliases or clean.lower() == key:
                found.setdefault(key, index)
    missing = [k for k in REQUIRED if k not in found]
    if missing:
        raise InvalidInput(
            "file header",
            missing[0],
            f"missing column(s) {', '.join(missing)}; expected e.g. {', '.join(REQUIRED)}",
        )
    return found


def _whole_number(record: str, field: str, value: str, *, largest: int) -> int:
    """An ASCII whole number from 1 to `largest` (not "²", not "1e3", not "+5")."""
    if not (value.isascii() and value.isdigit()):
        raise InvalidInput(record, field, f"{value!r} is not a whole number")
    number = int(value)
    if not 0 < number <= largest:
        raise InvalidInput(record, field, f"{number} is not between 1 and {largest}", limit=largest)
    return number


def parse_rows(region: Region, text: str) -> tuple[list[_PendingOrder], list[RowError]]:
    """Group rows into orders; collect one error per bad row (line number and field)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("file", "header", "the file is empty") from None
    columns = _header_map(header)
    limits = max_lengths(region)
    pending: dict[str, _PendingOrder] = {}
    errors: list[RowError] = []
    broken: set[str] = set()  # orders with a bad row are skipped whole, never imported in part
    line_no = 1
    while True:
        line_no += 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # e.g. a field over the csv module's size limit
            errors.append(
                RowError(line_no, _oversized_field(text, reader.line_num, columns), str(err))
            )
            continue
        if not any(cell.strip() for cell in row):
            continue

        def cell(key: str, row: list[str] = row) -> str:
            index = columns.get(key)
            return row[index].strip() if index is not None and index < len(row) else ""

        try:
            if len(row) > len(header):
                raise InvalidInput(
                    "row",
                    "row",
                    f"{len(row)} cells, more than the header's {len(header)}",
                    limit=len(header),
                )
            for key in COLUMNS:
                if key in columns and (why := text_fault(cell(key))):
                    raise InvalidInput("row", key, why)
            for key in REQUIRED:
                if not cell(key):
                    raise InvalidInput("row", key, "empty")
            for key, limit in limits.items():
                if len(cell(key)) > limit:
                    raise InvalidInput(
                        "row",
                        key,
                        f"{len(cell(key))} characters, longer than {limit}",
                        limit=limit,
                    )
            check_raw_member_id("row", "member_id", cell("member_id"))
            try:
                placed_at = parse_time(region, cell("order_time"))
            except ValueError:
                raise InvalidInput(
                    "row", "order_time", f"{cell('order_time')!r} is not a date and time"
                ) from None
            quantity = _whole_number(
                "row", "quantity", cell("quantity"), largest=MAX_QUANTITY_PER_LINE
            )
        except InvalidInput as err:
            errors.append(RowError.of(line_no, err))
            broken.add(cell("order_no"))
            continue
        order_no = cell("order_no")
        order = pending.get(order_no)
        if order is None:
            order = pending[order_no] = _PendingOrder(
                order_no,
                line_no,
                placed_at,
                cell("leader_code"),
                MemberRef(cell("member_id"), cell("member_name"), cell("phone")),
            )
        elif order.leader_code != cell("leader_code") or order.member.external_id != cell(
            "member_id"
        ):
            errors.append(
                RowError(
                    line_no,
                    "order_no",
                    f"order {order_no} has rows for different leaders or members",
                )
            )
            broken.add(order_no)
            continue
        order.lines.append(LineRequest(cell("sku"), quantity))
        order.line_numbers.append(line_no)
    return [o for no, o in pending.items() if no not in broken], errors


@dataclass
class _Plan:
    """What the file would place: its orders checked, and each order's lines priced."""

    orders: list[_PendingOrder]
    offers: dict[date, dict[str, _Offer]]
    replays: int = 0


def import_orders(
    session: Session,
    *,
    region: Region,
    data: bytes,
    skip_bad: bool = False,
    actor: str = "import",
) -> ImportReport:
    """Place every order of the file. Raises ImportFailed (nothing written) unless skip_bad.

    Exactly once: each order's idempotency key (`csv:<order number>` in the scope
    `csv:<region>`) with the fingerprint of its contents: an order already imported is counted
    as present, one imported with other contents is a row error. Two imports into one region
    are serialised for their short placement (a transaction-scoped advisory lock on PostgreSQL,
    SQLite's single writer), and the keys are read again under it, so the same file imported
    twice at once places each order once and takes its stock once; the (scope, key) unique
    constraint stands behind it. Stock is taken with one conditional UPDATE per deal under the
    deal's row lock, so an import and API orders together never oversell.
    """
    orders, errors = parse_rows(region, decode(data))
    scope = import_scope(region)
    plan = _check(session, region=region, orders=orders, errors=errors)
    if errors and not skip_bad:
        raise ImportFailed(sorted(errors, key=lambda e: e.line))
    report = _place(
        session,
        region=region,
        scope=scope,
        plan=plan,
        errors=errors,
        skip_bad=skip_bad,
        actor=actor,
    )
    errors.sort(key=lambda e: e.line)
    if errors and not skip_bad:  # found only under the locks (sold out meanwhile, a cutoff)
        raise ImportFailed(errors)
    report.skipped = errors
    return report


def preview_orders(session: Session, *, region: Region, data: bytes) -> tuple[ImportPreview, int]:
    """What an import of the file would place, and every error by line and field, checked as
    `import_orders` checks a file before placing it (plain reads: nothing is written, no lock is
    taken). Returns the preview (one row per order, at its first line; the member masked) and
    how many orders of the file were imported before (replays, which an import skips)."""
    orders, errors = parse_rows(region, decode(data))
    plan = _check(session, region=region, orders=orders, errors=errors)
    preview = ImportPreview(errors=sorted(errors, key=lambda e: e.line))
    for order in plan.orders:
        values = {
            "leader_code": order.leader_code,
            "member": mask_name(order.member.name) or order.member.external_id,
            "lines": ", ".join(f"{sku} × {qty}" for sku, qty in order.wanted().items()),
            "delivery_date": cast(date, order.delivery_date).isoformat(),
            "late": "yes" if order.late else "",
        }
        preview.rows.append(PreviewRow(order.first_line, order.order_no, "add", values))
    return preview, plan.replays


def _check(
    session: Session, *, region: Region, orders: list[_PendingOrder], errors: list[RowError]
) -> _Plan:
    """Check every order with plain reads (no lock): leader, wave, SKUs offered, replays, stock.

    Orders at fault are dropped from the plan and reported on the line at fault."""
    orders = _known_leaders(session, region, orders, errors)
    kept = _replays_dropped(session, import_scope(region), region, orders, errors)
    replays = kept.count(None)
    live = [o for o in kept if o is not None]
    live = _waves_chosen(session, region, live, errors)
    offers = {
        day: _read_offers(
            session,
            region_id=region.id,
            delivery_date=day,
            skus={sku for o in live if o.delivery_date == day for sku in o.wanted()},
        )
        for day in sorted({cast(date, o.delivery_date) for o in live})
    }
    checked = []
    for order in live:
        fault = _offer_fault(region, order, offers[cast(date, order.delivery_date)])
        if fault is not None:
            errors.append(fault)
        else:
            checked.append(order)
    plan = _Plan(checked, offers, replays)
    stock = _read_stock(session, plan, lock=False)
    plan.orders = _priced(plan, stock, errors=errors)[0]
    return plan


def _known_leaders(
    session: Session, region: Region, orders: list[_PendingOrder], errors: list[RowError]
) -> list[_PendingOrder]:
    codes = sorted({o.leader_code for o in orders})
    leaders = {
        row.code: row
        for start in range(0, len(codes), _CHUNK)
        for row in session.execute(
            select(Leader.code, Leader.id, Leader.region_id, Leader.active).where(
                Leader.code.in_(codes[start : start + _CHUNK])
            )
        )
    }
    known = []
    for order in orders:
        leader = leaders.get(order.leader_code)
        if leader is None or leader.region_id != region.id or not leader.active:
            errors.append(
                RowError(
                    order.first_line,
                    "leader_code",
                    f"no active leader {order.leader_code!r} in region {region.code}",
                )
            )
            continue
        order.leader_id = leader.id
        known.append(order)
    return known


def _stored_keys(session: Session, scope: str, keys: list[str]) -> dict[str, str | None]:
    """The keys of the scope already used, with the fingerprint stored under each."""
    found: dict[str, str | None] = {}
    for start in range(0, len(keys), _CHUNK):
        rows = session.execute(
            select(Order.idempotency_key, Order.request_fingerprint).where(
                Order.idempotency_scope == scope,
                Order.idempotency_key.in_(keys[start : start + _CHUNK]),
            )
        )
        found.update({cast(str, key): fingerprint for key, fingerprint in rows})
    return found


def _replays_dropped(
    session: Session,
    scope: str,
    region: Region,
    orders: list[_PendingOrder],
    errors: list[RowError],
) -> list[_PendingOrder | None]:
    """The orders, with None for each one already imported (a replay); an order imported
    before with other contents is a row error and dropped."""
    stored = _stored_keys(session, scope, [o.key for o in orders])
    kept: list[_PendingOrder | None] = []
    for order in orders:
        if order.key not in stored:
            kept.append(order)
            continue
        fingerprint = stored[order.key]
        if fingerprint is None or fingerprint == order.fingerprint(region):
            kept.append(None)
            continue
        errors.append(
            RowError(
                order.first_line,
                "order_no",
                f"order {order.order_no} was imported before with other contents",
            )
        )
    return kept


def _waves_chosen(
    session: Session, region: Region, orders: list[_PendingOrder], errors: list[RowError]
) -> list[_PendingOrder]:
    """Each order's delivery date: its own wave's, or the next open one's (marked late), read
    from the waves as they stand (a wave not created yet is open until its deadline)."""
    if not orders:
        return []
    first = min(delivery_date_for(region, o.placed_at) for o in orders)
    waves = {
        wave.delivery_date: wave
        for wave in session.scalars(
            select(Wave).where(Wave.region_id == region.id, Wave.delivery_date >= first)
        )
    }
    chosen = []
    for order in orders:
        own = delivery_date_for(region, order.placed_at)
        late = False
        for days_later in range(_WAVE_HORIZON_DAYS):
            day = own + timedelta(days=days_later)
            wave = waves.get(day)
            if wave is None:
                wave = waves[day] = Wave(
                    region_id=region.id,
                    delivery_date=day,
                    status=WaveStatus.OPEN,
                    cutoff_due_at=cutoff_for_delivery(region, day),
                )
            if accepts_orders_at(wave, order.placed_at):
                order.delivery_date, order.late = day, late
                chosen.append(order)
                break
            late = late or wave.status == WaveStatus.CUT_OFF
        else:
            errors.append(
                RowError(
                    order.first_line,
                    "order_time",
                    f"no open wave within {_WAVE_HORIZON_DAYS} days of {own.isoformat()}",
                    _WAVE_HORIZON_DAYS,
                )
            )
    return chosen


def _offer_fault(
    region: Region, order: _PendingOrder, offers: dict[str, _Offer]
) -> RowError | None:
    """The first line of the order whose SKU is unknown or not on offer for its wave."""
    for line, number in zip(order.lines, order.line_numbers, strict=True):
        offer = offers.get(line.sku)
        if offer is None:
            return RowError(number, "sku", f"unknown SKU {line.sku!r}")
        if offer.deal_id is None or offer.deal_status != DealStatus.OPEN:
            day = cast(date, order.delivery_date).isoformat()
            return RowError(
                number, "sku", f"{line.sku} is not on offer in {region.code} for delivery on {day}"
            )
    return None


@dataclass
class _Stock:
    sold: int
    cap: int | None
    open: bool


def _deal_ids(plan: _Plan) -> list[int]:
    return sorted(
        {
            cast(int, plan.offers[cast(date, o.delivery_date)][sku].deal_id)
            for o in plan.orders
            for sku in o.wanted()
        }
    )


def _read_stock(session: Session, plan: _Plan, *, lock: bool) -> dict[int, _Stock]:
    """The deals' units sold and caps; with lock, under their row locks taken in id order (the
    order every path takes them in, so an import and an API order never deadlock)."""
    ids = _deal_ids(plan)
    query = (
        select(_DEALS.c.id, _DEALS.c.sold_qty, _DEALS.c.stock_cap, _DEALS.c.status)
        .where(_DEALS.c.id.in_(ids))
        .order_by(_DEALS.c.id)
    )
    if lock and is_postgres(session):
        query = query.with_for_update()
    return {
        deal_id: _Stock(sold, cap, status == DealStatus.OPEN.value)
        for deal_id, sold, cap, status in session.execute(query)
    }


@dataclass(frozen=True, slots=True)
class _PricedLine:
    deal_id: int
    product_id: int
    quantity: int
    unit_price_cents: int


def _priced(
    plan: _Plan, stock: dict[int, _Stock], *, errors: list[RowError]
) -> tuple[list[_PendingOrder], dict[int, list[_PricedLine]], dict[int, int]]:
    """Take each order's units from its deals in file order, as if placed one by one: an order
    whose units are not all left is a row error (on the line of the SKU short); each line is
    priced by the deal's tier at the units sold before it. Returns the orders that fit, their
    lines (by position in that list) and the units taken per deal."""
    fitting: list[_PendingOrder] = []
    lines: dict[int, list[_PricedLine]] = {}
    taken: dict[int, int] = {}
    for order in plan.orders:
        offers = plan.offers[cast(date, order.delivery_date)]
        wanted = order.wanted()
        short = None
        for sku, qty in wanted.items():
            deal = stock[cast(int, offers[sku].deal_id)]
            if not deal.open or (deal.cap is not None and deal.sold + qty > deal.cap):
                left = None if deal.cap is None else max(deal.cap - deal.sold, 0)
                short = RowError(order.line_of(sku), "quantity", str(SoldOut(sku, qty, left)), left)
                break
        if short is not None:
            errors.append(short)
            continue
        priced = []
        for sku, qty in wanted.items():
            offer = offers[sku]
            deal_id = cast(int, offer.deal_id)
            deal = stock[deal_id]
            price = tier_price(offer.base_price_cents, offer.tiers, deal.sold)
            deal.sold += qty
            taken[deal_id] = taken.get(deal_id, 0) + qty
            priced.append(_PricedLine(deal_id, offer.product_id, qty, price))
        lines[len(fitting)] = priced
        fitting.append(order)
    return fitting, lines, taken


def _place(
    session: Session,
    *,
    region: Region,
    scope: str,
    plan: _Plan,
    errors: list[RowError],
    skip_bad: bool,
    actor: str,
) -> ImportReport:
    """Write the checked orders in one short, set-based pass (see import_orders for the locks)."""
    report = ImportReport(orders_already_present=plan.replays)
    if not plan.orders:
        return report
    advisory_xact_lock(session, f"import:{scope}")
    # Under the lock, an import that ran meanwhile may have placed some of these orders.
    again = _replays_dropped(session, scope, region, plan.orders, errors)
    report.orders_already_present += again.count(None)
    checked = {id(o) for o in again if o is not None}
    plan.orders = [o for o in plan.orders if id(o) in checked]
    waves = {
        day: ensure_wave(session, region, day, lock="share")
        for day in sorted({cast(date, o.delivery_date) for o in plan.orders})
    }
    still_open = []
    for order in plan.orders:
        if accepts_orders_at(waves[cast(date, order.delivery_date)], order.placed_at):
            still_open.append(order)
        else:  # cut off between the check and now: the file's next import places it
            errors.append(
                RowError(
                    order.first_line,
                    "order_time",
                    "its wave was cut off during the import; import the file again",
                )
            )
    plan.orders = still_open
    if not plan.orders:
        return report
    # Fast path: price from the units sold now (no lock), write every row, and only then take
    # the stock, one conditional UPDATE per deal: the deals' row locks are held from there to
    # the commit. Should a deal have sold out meanwhile, the writes are undone (a savepoint)
    # and the file is allocated again under the deals' locks.
    for locked in (False, True):
        found: list[RowError] = []
        stock = _read_stock(session, plan, lock=locked)
        orders, lines, taken = _priced(plan, stock, errors=found)
        if not orders or (found and not skip_bad):
            errors.extend(found)
            return report
        savepoint = session.begin_nested()
        _write(
            session,
            region=region,
            scope=scope,
            orders=orders,
            lines=lines,
            waves=waves,
            actor=actor,
        )
        if _take_stock(session, taken):
            savepoint.commit()
            errors.extend(found)
            report.orders_imported = len(orders)
            report.lines_imported = sum(len(o.lines) for o in orders)
            return report
        savepoint.rollback()
    raise RuntimeError("stock changed under the deals' row locks")  # pragma: no cover


def _take_stock(session: Session, taken: dict[int, int]) -> bool:
    """Add each deal's units with one conditional UPDATE per deal, in deal-id order (the order
    every path locks deals in); False, and nothing to keep, when a deal no longer has them."""
    sold_after: dict[int, int] = {}
    for deal_id, qty in sorted(taken.items()):
        sold = session.execute(_TAKE_STOCK, {"deal_id": deal_id, "qty": qty}).scalar()
        if sold is None:
            return False
        sold_after[deal_id] = sold
    for deal_id, sold in sold_after.items():
        deal = session.identity_map.get(session.identity_key(Deal, deal_id))
        if deal is not None:  # keep a Deal the caller has loaded in step with the row
            set_committed_value(deal, "sold_qty", sold)
    return True


def _write(
    session: Session,
    *,
    region: Region,
    scope: str,
    orders: list[_PendingOrder],
    lines: dict[int, list[_PricedLine]],
    waves: dict[date, Wave],
    actor: str,
) -> None:
    """The members, orders, lines and audit entries of the orders placed, a statement each."""
    member_ids = _ensure_members(session, region, orders)
    codes = _pickup_codes(session, orders, waves)
    now = utcnow()
    rows = [
        {
            "region_id": region.id,
            "leader_id": order.leader_id,
            "member_id": member_ids[csv_member_id(region, order.member.external_id)],
            "wave_id": waves[cast(date, order.delivery_date)].id,
            "placed_at": order.placed_at,
            "received_at": now,
            "status": OrderStatus.PLACED,
            "late": order.late,
            "pickup_code": code,
            "idempotency_key": order.key,
            "idempotency_scope": scope,
            "request_fingerprint": order.fingerprint(region),
            "source": "csv",
            "total_cents": sum(line.unit_price_cents * line.quantity for line in lines[n]),
        }
        for n, (order, code) in enumerate(zip(orders, codes, strict=True))
    ]
    order_ids = (
        session.execute(insert(_ORDERS).returning(_ORDERS.c.id, sort_by_parameter_order=True), rows)
        .scalars()
        .all()
    )
    session.execute(
        insert(_LINES),
        [
            {
                "order_id": order_id,
                "deal_id": line.deal_id,
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
                "status": LineStatus.ACTIVE,
            }
            for n, order_id in enumerate(order_ids)
            for line in lines[n]
        ],
    )
    session.execute(
        insert(_AUDIT),
        [
            {
                "at": now,
                "actor": actor,
                "action": "order.placed",
                "entity": "order",
                "entity_id": order_id,
                "before": None,
                "after": {
                    "wave": cast(date, order.delivery_date).isoformat(),
                    "late": order.late,
                    "lines": order.wanted(),
                    "total_cents": row["total_cents"],
                    "source": "csv",
                },
            }
            for order_id, order, row in zip(order_ids, orders, rows, strict=True)
        ],
    )


def _ensure_members(
    session: Session, region: Region, orders: list[_PendingOrder]
) -> dict[str, int]:
    """Each member's id by its stored id, the new ones added in one INSERT … ON CONFLICT DO
    NOTHING (a member known before keeps its row, name and phone; a race resolves to one row)."""
    rows: dict[str, dict[str, Any]] = {}
    for order in orders:
        external_id = csv_member_id(region, order.member.external_id)
        rows.setdefault(
            external_id,
            {
                "region_id": region.id,
                "leader_id": order.leader_id,
                "external_id": external_id,
                "name": order.member.name or order.member.external_id,
                "phone": order.member.phone,
            },
        )
    _insert_ignore_many(session, _MEMBERS, list(rows.values()), ["external_id"])
    ids = sorted(rows)
    found: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        rows_found = session.execute(
            select(Member.external_id, Member.id).where(
                Member.external_id.in_(ids[start : start + _CHUNK])
            )
        )
        found.update({external_id: member_id for external_id, member_id in rows_found})
    return found


def _insert_ignore_many(
    session: Session, table: Table, rows: list[dict[str, Any]], conflict_columns: list[str]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING for many rows, as one executemany."""
    from sqlalchemy.dialects import postgresql, sqlite

    if not rows:
        return
    dialect = postgresql if is_postgres(session) else sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    session.execute(stmt, rows)


def _pickup_codes(
    session: Session, orders: list[_PendingOrder], waves: dict[date, Wave]
) -> list[str]:
    """A pickup code per order, free at its point: not used in its wave, nor by a live order of
    the point in any wave, nor by another order of this file (see intake._insert_order)."""
    taken = codes_in_use(
        session,
        leader_ids={o.leader_id for o in orders},
        wave_ids={w.id for w in waves.values()},
    )
    codes = []
    for order in orders:
        code = new_pickup_code()
        while (order.leader_id, code) in taken:
            code = new_pickup_code()
        taken.add((order.leader_id, code))
        codes.append(code)
    return codes


def _oversized_field(text: str, physical_line: int, columns: dict[str, int]) -> str:
    """The field of the line the csv module refused: the column whose text is too long."""
    lines = text.splitlines()
    if not 0 < physical_line <= len(lines):
        return "row"
    cells = lines[physical_line - 1].split(",")
    longest = max(range(len(cells)), key=lambda i: len(cells[i]))
    if len(cells[longest]) < csv.field_size_limit():
        return "row"
    names = {index: key for key, index in columns.items()}
    return names.get(longest, f"column {longest + 1}")


def import_file(
    session: Session, *, region: Region, path: Path, skip_bad: bool = False, actor: str = "import"
) -> ImportReport:
    return import_orders(
        session, region=region, data=path.read_bytes(), skip_bad=skip_bad, actor=actor
    )


def write_csv(rows: Iterable[dict[str, object]]) -> str:
    """A CSV in the import layout (used by tests and examples)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()
