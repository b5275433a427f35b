"""CSV order import from a mini-program shop platform's export (one row per order line).

All-or-nothing per file by default; with skip_bad, the good orders go in and every bad row is
reported with its line number and field. Re-importing a file changes nothing: each order's
idempotency key is `csv:<order number>`, scoped to the region's imports (`csv:<region code>`), so
two cities' exports with overlapping order numbers both import; an order number seen before with
other contents is a row error, never a silent replay of the earlier order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import String
from sqlalchemy.orm import Session

from fulfilment.core.csvimport import ImportFailed, RowError, decode
from fulfilment.core.errors import FulfilmentError, IdempotencyConflict, InvalidInput, SoldOut
from fulfilment.core.models import Leader, Member, Product, Region
from fulfilment.waves.cycle import region_zone

from .intake import LineRequest, MemberRef, find_replay, place_order, request_fingerprint

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
# The longest value each field may hold: what its column stores.


def _width(column: Any) -> int:
    return int(cast(String, column.type).length or 0)


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
    member: MemberRef
    lines: list[LineRequest] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)

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


def parse_rows(region: Region, text: str) -> tuple[list[_PendingOrder], list[RowError]]:
    """Group rows into orders; collect one error per bad row (line number and field)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("file", "header", "the file is empty") from None
    columns = _header_map(header)
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
            for key in REQUIRED:
                if not cell(key):
                    raise InvalidInput("row", key, "empty")
            for key, limit in MAX_LENGTH.items():
                if len(cell(key)) > limit:
                    raise InvalidInput(
                        "row", key, f"{len(cell(key))} characters, longer than {limit}"
                    )
            try:
                placed_at = parse_time(region, cell("order_time"))
            except ValueError:
                raise InvalidInput(
                    "row", "order_time", f"{cell('order_time')!r} is not a date and time"
                ) from None
            try:
                quantity = int(cell("quantity"))
            except ValueError:
                raise InvalidInput(
                    "row", "quantity", f"{cell('quantity')!r} is not a whole number"
                ) from None
            if quantity <= 0:
                raise InvalidInput("row", "quantity", f"{quantity} must be positive")
        except InvalidInput as err:
            errors.append(RowError(line_no, err.field, err.message))
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


def import_orders(
    session: Session,
    *,
    region: Region,
    data: bytes,
    skip_bad: bool = False,
    actor: str = "import",
) -> ImportReport:
    """Place every order of the file. Raises ImportFailed (nothing written) unless skip_bad."""
    orders, errors = parse_rows(region, decode(data))
    report = ImportReport()
    scope = import_scope(region)
    for order in orders:
        key = f"{KEY_PREFIX}{order.order_no}"
        fingerprint = order.fingerprint(region)
        try:
            with session.begin_nested():  # a bad order leaves nothing behind
                if find_replay(session, key=key, scope=scope, fingerprint=fingerprint):
                    report.orders_already_present += 1
                    continue
                place_order(
                    session,
                    region=region,
                    leader_code=order.leader_code,
                    member=order.member,
                    lines=order.lines,
                    placed_at=order.placed_at,
                    idempotency_key=key,
                    idempotency_scope=scope,
                    fingerprint=fingerprint,
                    source="csv",
                    actor=actor,
                )
        except InvalidInput as err:
            errors.append(RowError(_line_of(order, err), err.field, err.message))
            continue
        except IdempotencyConflict:
            errors.append(
                RowError(
                    order.first_line,
                    "order_no",
                    f"order {order.order_no} was imported before with other contents",
                )
            )
            continue
        except SoldOut as err:
            errors.append(RowError(order.first_line, "quantity", str(err)))
            continue
        except FulfilmentError as err:
            errors.append(RowError(order.first_line, "order_no", str(err)))
            continue
        report.orders_imported += 1
        report.lines_imported += len(order.lines)
    errors.sort(key=lambda e: e.line)
    if errors and not skip_bad:
        raise ImportFailed(errors)
    report.skipped = errors
    return report


def _line_of(order: _PendingOrder, err: InvalidInput) -> int:
    """The file line an order-level error points at (its nth line when the record names one)."""
    marker = " line "
    if marker in err.record:
        try:
            return order.line_numbers[int(err.record.rsplit(marker, 1)[1]) - 1]
        except (ValueError, IndexError):
            pass
    return order.first_line


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
