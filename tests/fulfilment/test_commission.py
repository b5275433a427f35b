"""Leader commission: accrual on what was handed over at the final price, reversal by a refund
in the after-sales window, settlement after it, rates, statements (docs/commission.md)."""

import csv
import io
from datetime import date, timedelta

import pytest
from commission_factories import (
    COLLECTED,
    MILK_BPS,
    PRAWN_DEAL_BPS,
    REGION_BPS,
    WINDOW_DAYS,
    collect,
    make_commission_world,
)
from sqlalchemy import func, select

from fulfilment.commission.ledger import accrue_collected, commission_of, settle_region
from fulfilment.commission.models import CommissionEntry, EntryKind, Statement
from fulfilment.commission.rates import list_rates, set_rate
from fulfilment.commission.statements import (
    COLUMNS,
    AlreadyPaid,
    export_statements,
    list_statements,
    pay_statement,
    statement_lines,
    write_csv,
    write_xlsx,
)
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import AuditEntry, Product, Region
from fulfilment.orders.refunds import owe_after_sales_refund
from fulfilment.points.pickups import PickupRefused, Refusal

AFTER_WINDOW = COLLECTED + timedelta(days=WINDOW_DAYS, minutes=1)


def entries(session, kind=None):
    query = select(CommissionEntry).order_by(CommissionEntry.id)
    if kind is not None:
        query = query.where(CommissionEntry.kind == kind)
    return session.scalars(query).all()


def by_line(session, kind):
    return {e.order_line_id: e for e in entries(session, kind)}


def region_id(session):
    return session.scalar(select(Region.id).where(Region.code == "SH"))


def test_rounding_is_down_to_the_cent_never_above_rate_times_amount():
    """base × bps / 10000 rounded down: 1800 at 3.33 % is 59 (59.94), never 60."""
    assert commission_of(1800, 333) == 59
    assert commission_of(1999, 333) == 66
    assert commission_of(1000, 250) == 25
    assert all(commission_of(b, 333) <= b * 333 / 10000 for b in range(0, 5000, 7))


def test_collected_and_short_lines_accrue_at_the_final_price_of_what_was_handed_over(session):
    """M3 collected 2 of 3 APPLE (one arrived short) at the final tier price 900 (paid 1000):
    it earns 3.33 % of 1800 = 59; its PRAWN earns the deal's 2.5 % of 1000 = 25; M1's MILK the
    product's 10 % of 1000 = 100. M2, not collected, earns nothing. The pickup's audit entry
    carries the cents."""
    world = make_commission_world(session)
    accrued = by_line(session, EntryKind.ACCRUED)
    got = {line: (e.base_cents, e.rate_bps, e.amount_cents) for line, e in accrued.items()}
    assert got == {
        world.line("M3 APPLE"): (1800, REGION_BPS, 59),
        world.line("M3 PRAWN"): (1000, PRAWN_DEAL_BPS, 25),
        world.line("M1 APPLE"): (1800, REGION_BPS, 59),
        world.line("M1 MILK"): (1000, MILK_BPS, 100),
    }
    assert world.line("M2 APPLE") not in accrued
    e = accrued[world.line("M3 APPLE")]
    assert e.collected_at == COLLECTED
    assert e.settle_after == COLLECTED + timedelta(days=WINDOW_DAYS)
    audit = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "order.collected").order_by(AuditEntry.id)
    ).first()
    assert audit.after["commission_cents"] == {
        str(world.line("M3 APPLE")): 59,
        str(world.line("M3 PRAWN")): 25,
    }


def test_a_line_accrues_once_whatever_runs_again(session):
    """Verifying a collected code again is refused and writes nothing; accruing the same lines
    again (a retry) writes nothing either."""
    world = make_commission_world(session)
    before = len(entries(session))
    with pytest.raises(PickupRefused) as refused:
        collect(session, world.portal, "M3")
    assert refused.value.reason == Refusal.ALREADY_COLLECTED
    again = accrue_collected(
        session,
        handed={world.line("M3 APPLE"): 2},
        collected_at=COLLECTED + timedelta(hours=1),
        after_sales_days=WINDOW_DAYS,
        actor="t",
    )
    assert again == [] and len(entries(session)) == before


def test_a_refund_in_the_window_reverses_the_commission_on_the_refunded_amount(session):
    """An after-sales refund of one APPLE (900) on M1's line a day after the handover takes
    back 30 cents at once (59 on 1800 less 29 on 900); after the window the line settles 29:
    settled + reversed = accrued. A refund after the window changes nothing."""
    world = make_commission_world(session)
    apple = world.line("M1 APPLE")
    owe_after_sales_refund(
        session,
        order_line_id=apple,
        amount_cents=900,
        actor="admin",
        now=COLLECTED + timedelta(days=1),
    )
    rev = entries(session, EntryKind.REVERSED)
    assert [(e.order_line_id, e.base_cents, e.amount_cents) for e in rev] == [(apple, 900, 30)]
    assert rev[0].refund_id is not None
    settle_region(
        session, region_id=region_id(session), day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t"
    )
    settled = by_line(session, EntryKind.SETTLED)
    assert (settled[apple].base_cents, settled[apple].amount_cents) == (900, 29)
    assert settled[world.line("M1 MILK")].amount_cents == 100
    late = owe_after_sales_refund(
        session,
        order_line_id=world.line("M1 MILK"),
        amount_cents=500,
        actor="admin",
        now=AFTER_WINDOW + timedelta(days=1),
    )
    assert late.id and len(entries(session, EntryKind.REVERSED)) == 1


def test_two_refunds_then_a_whole_refund_never_take_back_more_than_accrued(session):
    """Two refunds on M3's APPLE (500, then 1300: more than what is left) take back 59 in
    all; the line never settles (wholly reversed). PRAWN refunded whole reverses its 25."""
    world = make_commission_world(session)
    apple, prawn = world.line("M3 APPLE"), world.line("M3 PRAWN")
    day = COLLECTED + timedelta(days=2)
    owe_after_sales_refund(session, order_line_id=apple, amount_cents=500, actor="a", now=day)
    owe_after_sales_refund(session, order_line_id=apple, amount_cents=1300, actor="a", now=day)
    owe_after_sales_refund(session, order_line_id=prawn, amount_cents=1000, actor="a", now=day)
    reversed_ = {}
    for e in entries(session, EntryKind.REVERSED):
        reversed_[e.order_line_id] = reversed_.get(e.order_line_id, 0) + e.amount_cents
    assert reversed_ == {apple: 59, prawn: 25}
    settle_region(
        session, region_id=region_id(session), day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t"
    )
    settled = by_line(session, EntryKind.SETTLED)
    assert apple not in settled and prawn not in settled
    assert set(settled) == {world.line("M1 APPLE"), world.line("M1 MILK")}


def test_an_after_sales_refund_is_refused_beyond_what_the_line_paid(session):
    """M1's MILK paid 1000 and carries no refund: 1001 is refused naming the field, nothing
    written."""
    world = make_commission_world(session)
    with pytest.raises(InvalidInput) as err:
        owe_after_sales_refund(
            session, order_line_id=world.line("M1 MILK"), amount_cents=1001, actor="a"
        )
    assert err.value.field == "amount_cents" and err.value.limit == 1000
    assert entries(session, EntryKind.REVERSED) == []


def test_settlement_waits_for_the_window_and_runs_once_per_region_and_day(session):
    """Six days after the handover nothing settles; the same day again is `already_settled`
    and writes nothing; the first run after the window settles every line once, and a run on
    a later day finds nothing more to settle."""
    make_commission_world(session)
    rid = region_id(session)
    early = settle_region(
        session, region_id=rid, day=date(2026, 3, 16), now=COLLECTED + timedelta(days=6), actor="t"
    )
    assert (early.state, early.lines) == ("settled", 0)
    again = settle_region(
        session, region_id=rid, day=date(2026, 3, 16), now=AFTER_WINDOW, actor="t"
    )
    assert again.state == "already_settled" and entries(session, EntryKind.SETTLED) == []
    due = settle_region(session, region_id=rid, day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t")
    assert (due.state, due.lines, due.settled_cents) == ("settled", 4, 59 + 25 + 59 + 100)
    later = settle_region(
        session,
        region_id=rid,
        day=date(2026, 3, 19),
        now=AFTER_WINDOW + timedelta(days=1),
        actor="t",
    )
    assert later.lines == 0 and len(entries(session, EntryKind.SETTLED)) == 4
    audit = select(func.count()).where(AuditEntry.action == "commission.settled")
    assert session.scalar(audit) == 3


def test_rates_are_checked_listed_and_audited(session):
    """A rate past 100 %, a product and a deal at once, an unknown SKU: refused naming the
    field. Setting a rate again is audited with the rate before."""
    world = make_commission_world(session, collect_orders=())
    cases = [
        ({"rate_bps": 10001}, "rate_bps"),
        ({"rate_bps": 10, "sku": "MILK", "deal_id": world.portal.world.deals["MILK"].id}, "scope"),
        ({"rate_bps": 10, "sku": "NOPE"}, "product"),
        ({"rate_bps": 10, "deal_id": 99999}, "deal"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as err:
            set_rate(session, region_code="SH", actor="admin", **kwargs)
        assert err.value.field == field
    set_rate(session, region_code="SH", sku="MILK", rate_bps=800, actor="boss")
    last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (last.action, last.actor, last.before, last.after["rate_bps"]) == (
        "commission.rate_set",
        "boss",
        {"rate_bps": MILK_BPS},
        800,
    )
    rows = list_rates(session, region_code="SH")
    assert [(r.scope, r.sku, r.rate_bps) for r in rows] == [
        ("region", None, REGION_BPS),
        ("product", "MILK", 800),
        ("deal", "PRAWN", PRAWN_DEAL_BPS),
    ]


def _settled_world(session):
    world = make_commission_world(session)
    settle_region(
        session, region_id=region_id(session), day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t"
    )
    return world


def test_a_statement_is_exported_once_and_paid_once(session):
    """Exporting the period makes one statement for L1 with its four settled lines (243
    cents); exporting again makes none; paying twice is refused the second time."""
    _settled_world(session)
    period = {"region_code": "SH", "date_from": date(2026, 3, 1), "date_to": date(2026, 3, 31)}
    made = export_statements(session, actor="admin", **period)
    assert [(s.lines, s.amount_cents) for s in made] == [(4, 243)]
    assert export_statements(session, actor="admin", **period) == []
    assert session.scalar(select(func.count()).select_from(Statement)) == 1
    paid = pay_statement(session, statement_id=made[0].id, actor="cashier", now=AFTER_WINDOW)
    assert paid.paid_by == "cashier"
    with pytest.raises(AlreadyPaid) as err:
        pay_statement(session, statement_id=made[0].id, actor="other")
    assert err.value.paid_by == "cashier"
    rows = list_statements(session, region_code="SH")
    assert [(r.leader_code, r.leader, r.paid_by) for r in rows] == [("L1", "L*******", "cashier")]


def test_an_export_outside_the_period_takes_nothing(session):
    """Settled on 18 March (local): a February export finds nothing; from > to is refused."""
    _settled_world(session)
    feb = export_statements(
        session, region_code="SH", date_from=date(2026, 2, 1), date_to=date(2026, 2, 28), actor="a"
    )
    assert feb == []
    with pytest.raises(InvalidInput) as err:
        export_statements(
            session,
            region_code="SH",
            date_from=date(2026, 3, 2),
            date_to=date(2026, 3, 1),
            actor="a",
        )
    assert err.value.field == "from"


def test_statement_files_write_formula_like_text_as_text(session):
    """A product named like a formula is written with a leading apostrophe in the CSV (UTF-8
    with BOM) and as a string cell, never a formula, in the XLSX; amounts stay numbers."""
    from openpyxl import load_workbook

    _settled_world(session)
    apple = session.scalar(select(Product).where(Product.sku == "APPLE"))
    apple.name = '=HYPERLINK("http://x","苹果")'
    session.flush()
    made = export_statements(
        session, region_code="SH", date_from=date(2026, 3, 1), date_to=date(2026, 3, 31), actor="a"
    )
    ids = [s.id for s in made]
    rows = statement_lines(session, ids)
    raw = io.BytesIO()
    write_csv(rows, raw)
    data = raw.getvalue()
    assert data.startswith(b"\xef\xbb\xbf")
    parsed = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert list(parsed[0]) == COLUMNS
    apples = [r for r in parsed if r["sku"] == "APPLE"]
    assert {r["product"] for r in apples} == {"'" + apple.name}
    assert sum(int(r["settled_cents"]) for r in parsed) == 243
    book_bytes = io.BytesIO()
    write_xlsx(rows, list_statements(session, ids=ids), book_bytes)
    book = load_workbook(io.BytesIO(book_bytes.getvalue()))
    assert book.sheetnames == ["statements", "lines"]
    sheet = book["lines"]
    product_col = COLUMNS.index("product") + 1
    cells = [sheet.cell(row=r, column=product_col) for r in range(2, sheet.max_row + 1)]
    formula_like = [c for c in cells if str(c.value).startswith("'=")]
    assert formula_like and all(c.data_type == "s" for c in formula_like)
    assert book["statements"].cell(row=2, column=8).value == 243


def test_a_handover_accrues_in_one_statement_whatever_its_lines(session):
    """The pickup pays one INSERT … SELECT for the commission of all its lines (the rates are
    read inside it): M2's one line and M3's two lines each cost one commission statement."""
    from sqlalchemy import event

    world = make_commission_world(session, collect_orders=())
    engine = session.get_bind()
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    counts = {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        for key in ("M2", "M3"):
            seen.clear()
            collect(session, world.portal, key)
            session.flush()
            counts[key] = [s for s in seen if "commission_" in s]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    for touching in counts.values():
        assert len(touching) == 1 and touching[0].lstrip().upper().startswith("INSERT")
    assert len(entries(session, EntryKind.ACCRUED)) == 3


def test_an_after_sales_refund_before_the_handover_is_out_of_the_base(session):
    """An after-sales refund of one APPLE (900) recorded on M1's line before M1 collects:
    the pickup accrues on what is left (3.33 % of 900 = 29, not 59), the refund is not
    reversed again, and the line settles 29, the commission on what the member kept."""
    world = make_commission_world(session, collect_orders=("M3",))
    apple = world.line("M1 APPLE")
    owe_after_sales_refund(
        session,
        order_line_id=apple,
        amount_cents=900,
        actor="admin",
        now=COLLECTED - timedelta(minutes=30),
    )
    collect(session, world.portal, "M1")
    accrued = by_line(session, EntryKind.ACCRUED)[apple]
    assert (accrued.base_cents, accrued.amount_cents) == (900, 29)
    settle_region(
        session, region_id=region_id(session), day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t"
    )
    assert apple not in by_line(session, EntryKind.REVERSED)
    assert by_line(session, EntryKind.SETTLED)[apple].amount_cents == 29
