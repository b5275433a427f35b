"""Settlement statements (结算单): a leader's settled commission of a period, exported once as
CSV or XLSX and marked paid once.

An export claims, per leader, the settled entries of the period that no statement holds yet:
one INSERT … SELECT of statement items, unique on the entry, inside a savepoint. Two exports
at once on PostgreSQL: the second waits on the entries the first claimed and, once it commits,
finds them taken (its empty statements are rolled back), so no entry is ever in two
statements. Paying is one conditional UPDATE (`WHERE paid_at IS NULL`): a second payment is
told when and by whom the statement was paid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, exists, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from fulfilment.catalogue.sites import get_region
from fulfilment.core.audit import record_change
from fulfilment.core.errors import FulfilmentError, InvalidInput, NotFound
from fulfilment.core.models import Leader, OrderLine, Product, Region, Wave, utcnow
from fulfilment.core.privacy import mask_name

from .models import CommissionEntry, EntryKind, Statement, StatementItem

FORMATS = ("csv", "xlsx")
COLUMNS = [
    "statement_id",
    "region",
    "leader_code",
    "leader",
    "period_from",
    "period_to",
    "delivery_date",
    "order_id",
    "order_line_id",
    "sku",
    "product",
    "collected_at",
    "settled_at",
    "base_cents",
    "rate_bps",
    "accrued_cents",
    "reversed_cents",
    "settled_cents",
    "settled_yuan",
]
# OWASP's CSV-injection rule: a cell starting with one of these is written as text.
# (A local helper: no shared one for the printed sheets is on main yet.)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AlreadyPaid(FulfilmentError):
    """The statement was marked paid before: it is paid exactly once."""

    http_status = 409

    def __init__(self, statement_id: int, paid_at: datetime, paid_by: str) -> None:
        self.statement_id, self.paid_at, self.paid_by = statement_id, paid_at, paid_by
        super().__init__(
            f"statement {statement_id} was paid already, at {paid_at.isoformat()} by {paid_by}"
        )


def as_text(value: Any) -> Any:
    """A string a spreadsheet would read as a formula gets a leading apostrophe (text)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def yuan(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _period(
    region: Region, date_from: date, date_to: date, record: str
) -> tuple[datetime, datetime]:
    """From the start of `date_from` to the end of `date_to` in the region's zone, in UTC; a
    day whose bound is beyond the calendar (9999-12-31's end, 0001-01-01's midnight east of
    UTC) is refused naming it."""
    zone = ZoneInfo(region.tz)
    try:
        start = datetime.combine(date_from, time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise InvalidInput(record, "from", f"{date_from} is beyond the calendar") from None
    try:
        end = datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=zone)
        end = end.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(record, "to", f"{date_to} is beyond the calendar") from None
    return start, end


def export_statements(
    session: Session,
    *,
    region_code: str,
    date_from: date,
    date_to: date,
    actor: str,
    now: datetime | None = None,
) -> list[Statement]:
    """One statement per leader of the region with settled commission in the period (settled
    on a local day from `date_from` to `date_to`, inclusive) that no statement holds yet.
    Returns the new statements (none when everything was exported before). Audited
    (`commission.statement_exported`, one entry per statement)."""
    now = now or utcnow()
    region = get_region(session, region_code)
    record = f"commission export {region_code}"
    if date_from > date_to:
        raise InvalidInput(record, "from", f"{date_from} is after {date_to}")
    start, end = _period(region, date_from, date_to, record)
    e = CommissionEntry
    unclaimed = (
        e.region_id == region.id,
        e.kind == EntryKind.SETTLED,
        e.created_at >= start,
        e.created_at < end,
        ~exists().where(StatementItem.entry_id == e.id),
    )
    leaders = session.scalars(
        select(e.leader_id).where(*unclaimed).group_by(e.leader_id).order_by(e.leader_id)
    ).all()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    items = StatementItem.__table__
    out = []
    for leader_id in leaders:
        savepoint = session.begin_nested()
        statement = Statement(
            region_id=region.id,
            leader_id=leader_id,
            period_from=date_from,
            period_to=date_to,
            lines=0,
            amount_cents=0,
            exported_at=now,
            exported_by=actor,
        )
        session.add(statement)
        session.flush()
        claim = (
            insert(items)  # type: ignore[arg-type]
            .from_select(
                ["statement_id", "entry_id"],
                select(literal(statement.id, Integer()), e.id).where(
                    e.leader_id == leader_id, *unclaimed
                ),
            )
            .on_conflict_do_nothing()
            .returning(items.c.entry_id)  # type: ignore[attr-defined]
        )
        claimed = session.scalars(claim).all()
        if not claimed:  # another export took them meanwhile
            savepoint.rollback()
            continue
        total = session.scalar(
            select(func.coalesce(func.sum(e.amount_cents), 0))
            .join(StatementItem, StatementItem.entry_id == e.id)
            .where(StatementItem.statement_id == statement.id)
        )
        statement.lines, statement.amount_cents = len(claimed), int(total or 0)
        savepoint.commit()
        record_change(
            session,
            actor=actor,
            action="commission.statement_exported",
            entity="commission_statement",
            entity_id=statement.id,
            after={
                "region": region_code,
                "leader_id": leader_id,
                "from": date_from.isoformat(),
                "to": date_to.isoformat(),
                "lines": statement.lines,
                "amount_cents": statement.amount_cents,
            },
            at=now,
        )
        out.append(statement)
    session.flush()
    return out


def get_statement(session: Session, statement_id: int) -> Statement:
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound(f"statement {statement_id} does not exist")
    return statement


def pay_statement(
    session: Session, *, statement_id: int, actor: str, now: datetime | None = None
) -> Statement:
    """Mark a statement paid, exactly once: one `UPDATE … WHERE paid_at IS NULL`; a statement
    paid before raises AlreadyPaid (with when and by whom). Audited (`commission.paid`)."""
    now = now or utcnow()
    statement = get_statement(session, statement_id)
    done = session.execute(
        update(Statement)
        .where(Statement.id == statement_id, Statement.paid_at.is_(None))
        .values(paid_at=now, paid_by=actor)
        .execution_options(synchronize_session=False)
    )
    session.refresh(statement)
    if done.rowcount != 1:  # type: ignore[attr-defined]
        assert statement.paid_at is not None and statement.paid_by is not None
        raise AlreadyPaid(statement_id, statement.paid_at, statement.paid_by)
    record_change(
        session,
        actor=actor,
        action="commission.paid",
        entity="commission_statement",
        entity_id=statement_id,
        before={"paid_at": None},
        after={"paid_at": now.isoformat(), "amount_cents": statement.amount_cents},
        at=now,
    )
    return statement


@dataclass(frozen=True, slots=True)
class StatementRow:
    statement_id: int
    region: str
    leader_code: str
    leader: str  # masked
    period_from: str
    period_to: str
    lines: int
    amount_cents: int
    exported_at: datetime
    paid_at: datetime | None
    paid_by: str | None


def list_statements(
    session: Session, *, region_code: str | None = None, ids: Iterable[int] | None = None
) -> list[StatementRow]:
    query = (
        select(Statement, Region.code, Leader.code, Leader.name)
        .join(Region, Region.id == Statement.region_id)
        .join(Leader, Leader.id == Statement.leader_id)
        .order_by(Statement.id)
    )
    if region_code is not None:
        query = query.where(Region.code == region_code)
    if ids is not None:
        query = query.where(Statement.id.in_(list(ids)))
    return [
        StatementRow(
            s.id,
            region,
            code,
            mask_name(name),
            s.period_from.isoformat(),
            s.period_to.isoformat(),
            s.lines,
            s.amount_cents,
            s.exported_at,
            s.paid_at,
            s.paid_by,
        )
        for s, region, code, name in session.execute(query)
    ]


def statement_lines(session: Session, statement_ids: list[int]) -> list[list[Any]]:
    """The rows of statements as exported (COLUMNS): one per settled line, with the line's
    accrual and reversals beside its settlement. Times in the region's zone, ISO 8601."""
    if not statement_ids:
        return []
    settled, accrued = CommissionEntry, aliased(CommissionEntry)
    back = aliased(CommissionEntry)
    reversed_cents = (
        select(func.coalesce(func.sum(back.amount_cents), 0))
        .where(back.order_line_id == settled.order_line_id, back.kind == EntryKind.REVERSED)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Statement,
            Region,
            Leader.code,
            Leader.name,
            Wave.delivery_date,
            OrderLine.order_id,
            settled,
            Product.sku,
            Product.name,
            accrued.base_cents,
            accrued.amount_cents,
            reversed_cents,
        )
        .select_from(StatementItem)
        .join(Statement, Statement.id == StatementItem.statement_id)
        .join(settled, settled.id == StatementItem.entry_id)
        .join(
            accrued,
            (accrued.order_line_id == settled.order_line_id) & (accrued.kind == EntryKind.ACCRUED),
        )
        .join(Region, Region.id == Statement.region_id)
        .join(Leader, Leader.id == Statement.leader_id)
        .join(Wave, Wave.id == settled.wave_id)
        .join(OrderLine, OrderLine.id == settled.order_line_id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(StatementItem.statement_id.in_(statement_ids))
        .order_by(Statement.id, Wave.delivery_date, OrderLine.order_id, settled.order_line_id)
    )
    out = []
    for st, region, code, name, delivery, order_id, entry, sku, product, base, acc, rev in rows:
        zone = ZoneInfo(region.tz)
        out.append(
            [
                st.id,
                region.code,
                code,
                mask_name(name),
                st.period_from.isoformat(),
                st.period_to.isoformat(),
                delivery.isoformat(),
                order_id,
                entry.order_line_id,
                sku,
                product,
                entry.collected_at.astimezone(zone).isoformat(timespec="seconds"),
                entry.created_at.astimezone(zone).isoformat(timespec="seconds"),
                base,
                entry.rate_bps,
                acc,
                int(rev),
                entry.amount_cents,
                yuan(entry.amount_cents),
            ]
        )
    return out


def write_csv(rows: list[list[Any]], out: BinaryIO) -> None:
    """UTF-8 with a byte-order mark (spreadsheets then read the Chinese right); formula-like
    text cells written as text."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([as_text(v) for v in row])
    out.write(text.getvalue().encode("utf-8-sig"))


def write_xlsx(rows: list[list[Any]], statements: list[StatementRow], out: BinaryIO) -> None:
    """Two sheets: the statements (one row each, with the total) and their lines. Text cells
    are stored as strings, never formulas."""
    from openpyxl import Workbook

    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "statements"
    head = ["statement_id", "region", "leader_code", "leader", "period_from", "period_to"]
    head += ["lines", "amount_cents", "amount_yuan"]
    _append(summary, head)
    for s in statements:
        _append(
            summary,
            [s.statement_id, s.region, s.leader_code, s.leader, s.period_from, s.period_to]
            + [s.lines, s.amount_cents, yuan(s.amount_cents)],
        )
    lines = book.create_sheet("lines")
    _append(lines, COLUMNS)
    for row in rows:
        _append(lines, row)
    book.save(out)


def _append(sheet: Any, values: list[Any]) -> None:
    sheet.append([as_text(v) for v in values])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"  # openpyxl would take a leading '=' for a formula
