"""`groupbuy commission`: rates set and listed, a settlement run once per region and day, a
statement exported once (CSV with BOM, XLSX) and paid once, an after-sales refund recorded."""

import csv
import io

from commission_factories import collect, make_commission_world
from openpyxl import load_workbook
from sqlalchemy import func, select

from fulfilment.commission.models import CommissionRate, Statement
from fulfilment.core.db import session_scope
from fulfilment.core.models import AuditEntry


def _world(app, collect_orders=("M3", "M1")):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_commission_world(s, collect_orders=())
        return world


def test_rates_settle_export_and_pay_through_the_cli(app, runner, tmp_path):
    """The admin sets a 5 % default and a MILK override, the lines are collected; `settle`
    (long after the window) settles them, a second `settle` of the day is told it was done;
    `export` writes one statement, a second export finds nothing; `pay` once, then refused."""
    world = _world(app)
    ok = runner.invoke(args=["commission", "rate", "set", "--region", "SH", "500"])
    assert ok.exit_code == 0 and "500 bps (5 %)" in ok.output
    milk = runner.invoke(
        args=["commission", "rate", "set", "--region", "SH", "--product", "MILK", "1000"]
    )
    assert milk.exit_code == 0, milk.output
    bad = runner.invoke(args=["commission", "rate", "set", "--region", "SH", "10001"])
    assert bad.exit_code == 1 and "rate_bps" in bad.output
    listed = runner.invoke(args=["commission", "rate", "list", "--region", "SH"]).output
    assert "SH\tregion\t\t\t\t500" in listed and "SH\tproduct\tMILK\t\t\t1000" in listed
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        collect(s, world.portal, "M1")  # APPLE 2 × 900 at 5 % = 90, MILK 1000 at 10 % = 100
    settled = runner.invoke(args=["commission", "settle", "--region", "SH", "--date", "2026-12-04"])
    assert settled.exit_code == 0, settled.output
    assert "settled, 2 lines, ¥1.90 settled" in settled.output
    again = runner.invoke(args=["commission", "settle", "--region", "SH", "--date", "2026-12-04"])
    assert "already_settled" in again.output
    out = tmp_path / "statements.csv"
    period = ["--region", "SH", "--from", "2026-12-01", "--to", "2026-12-31"]
    exported = runner.invoke(
        args=["commission", "export", *period, "--format", "csv", "--output", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    assert "L1 2 lines ¥1.90" in exported.output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert sorted(int(r["settled_cents"]) for r in rows) == [90, 100]
    statement_id = rows[0]["statement_id"]
    nothing = runner.invoke(
        args=["commission", "export", *period, "--output", str(tmp_path / "again.csv")]
    )
    assert "nothing to export" in nothing.output and not (tmp_path / "again.csv").exists()
    book = tmp_path / "again.xlsx"
    relisted = runner.invoke(
        args=["commission", "export", *period, "--format", "xlsx", "--output", str(book)]
        + ["--statement", statement_id]
    )
    assert relisted.exit_code == 0, relisted.output
    assert load_workbook(book)["statements"].cell(row=2, column=8).value == 190
    paid = runner.invoke(args=["commission", "pay", statement_id, "--actor", "cashier"])
    assert paid.exit_code == 0 and "¥1.90" in paid.output
    twice = runner.invoke(args=["commission", "pay", statement_id])
    assert twice.exit_code == 1 and "paid already" in twice.output and "cashier" in twice.output
    shown = runner.invoke(args=["commission", "statements", "--region", "SH"]).output
    assert f"{statement_id}\tSH\tL1" in shown and "cashier" in shown


def test_an_after_sales_refund_through_the_cli(app, runner):
    """`refunds owe` records the refund; more than the line paid is refused naming the field."""
    world = _world(app)
    line = world.line("M2 APPLE")
    ok = runner.invoke(args=["refunds", "owe", "--line", str(line), "--cents", "300"])
    assert ok.exit_code == 0 and "300 cents" in ok.output
    too_much = runner.invoke(args=["refunds", "owe", "--line", str(line), "--cents", "701"])
    assert too_much.exit_code == 1 and "amount_cents" in too_much.output


TOO_BIG = "99999999999"  # beyond an `integer` column
REFUSED_OPTIONS = [
    (["commission", "pay", TOO_BIG], "STATEMENT_ID"),
    (["commission", "rate", "set", "--region", "SH", "--deal", TOO_BIG, "300"], "--deal"),
    (["commission", "rate", "set", "--region", "SH", "--product", "MI\x00LK", "300"], "--product"),
    (["commission", "rate", "set", "--region", "SH", "--product", "M" * 65, "300"], "--product"),
    (["commission", "rate", "set", "--region", "S\x00H", "300"], "--region"),
    (["commission", "rate", "set", "--region", "SH", "300", "--actor", "a" * 65], "--actor"),
    (["commission", "rate", "set", "--region", "SH", "300", "--actor", "a\x00b"], "--actor"),
    (["commission", "rate", "list", "--region", "S\x00H"], "--region"),
    (["commission", "statements", "--region", "S\x00H"], "--region"),
    (
        ["commission", "settle", "--region", "SH", "--date", "2026-03-18", "--actor", "a" * 65],
        "--actor",
    ),
    (["refunds", "owe", "--line", TOO_BIG, "--cents", "1"], "--line"),
    (["refunds", "owe", "--line", "1", "--cents", "1", "--actor", "a" * 65], "--actor"),
    (["refunds", "export", "--wave", TOO_BIG], "--wave"),
    (["refunds", "export", "--wave", "1", "--batch", "ab\x00cd"], "--batch"),
]


def test_values_the_database_cannot_hold_are_refused_naming_the_option(app, runner, tmp_path):
    """An id beyond an `integer` column, a NUL in a code, SKU or actor, an actor longer than
    its column: a usage error (exit 2) naming the option, never a driver's error, and nothing
    written."""
    _world(app)
    export = ["commission", "export", "--region", "SH", "--from", "2026-03-01", "--to"]
    cases = REFUSED_OPTIONS + [
        (
            [*export, "2026-03-31", "--statement", TOO_BIG, "--output", str(tmp_path / "a.csv")],
            "--statement",
        ),
    ]
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        audited = s.scalar(select(func.count()).select_from(AuditEntry))
    for args, option in cases:
        result = runner.invoke(args=args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert f"Invalid value for '{option}'" in result.output, (args, result.output)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audited
        assert s.scalar(select(func.count()).select_from(CommissionRate)) == 3


def test_an_export_period_beyond_the_calendar_is_refused_naming_the_date(app, runner, tmp_path):
    """`--to 9999-12-31` (its day's end is past the last date there is) and `--from 0001-01-01`
    (its local midnight is before it in UTC) are refused naming `to` and `from`: exit 1, no
    statement, no file."""
    world = _world(app)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        collect(s, world.portal, "M1")
    runner.invoke(args=["commission", "settle", "--region", "SH", "--date", "2026-12-04"])
    for since, until, field in (
        ("2026-01-01", "9999-12-31", "to"),
        ("0001-01-01", "2026-12-31", "from"),
    ):
        out = tmp_path / f"{field}.csv"
        result = runner.invoke(
            args=["commission", "export", "--region", "SH", "--from", since, "--to", until]
            + ["--output", str(out)]
        )
        assert result.exit_code == 1, (result.output, result.exception)
        assert f"commission export SH: {field}:" in result.output
        assert not out.exists()
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(Statement)) == 0


def test_an_export_to_a_folder_that_cannot_take_it_claims_nothing(app, runner, tmp_path):
    """`--output` in a folder that does not exist: refused before anything is claimed (exit 1,
    naming the folder), so the same export to a good path afterwards writes the statement;
    before, the entries were claimed and committed, and the file was never written."""
    world = _world(app)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        collect(s, world.portal, "M1")
    runner.invoke(args=["commission", "settle", "--region", "SH", "--date", "2026-12-04"])
    period = ["--region", "SH", "--from", "2026-12-01", "--to", "2026-12-31"]
    missing = tmp_path / "no-such-folder" / "statements.csv"
    refused = runner.invoke(args=["commission", "export", *period, "--output", str(missing)])
    assert refused.exit_code == 1 and "no-such-folder" in refused.output, refused.output
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(Statement)) == 0
    out = tmp_path / "statements.csv"
    exported = runner.invoke(args=["commission", "export", *period, "--output", str(out)])
    assert exported.exit_code == 0 and "L1 2 lines ¥1.59" in exported.output, exported.output
    assert out.exists() and not list(tmp_path.glob(".*.part"))


def test_a_settlement_day_after_the_next_nights_is_refused_and_claims_nothing(app, runner):
    """`commission settle --date` a year ahead (a typo) would take that night's settlement
    before it came; it is refused naming --date, and the day the next night settles is not."""
    from datetime import UTC, datetime, timedelta

    from fulfilment.catalogue.sites import get_region
    from fulfilment.commission.models import SettlementRun
    from fulfilment.waves.cycle import delivery_date_for

    _world(app)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        tonight = delivery_date_for(get_region(s, "SH"), datetime.now(UTC))
    ahead = tonight + timedelta(days=365)
    refused = runner.invoke(args=["commission", "settle", "--region", "SH", "--date", str(ahead)])
    assert refused.exit_code == 2 and "'--date'" in refused.output, refused.output
    assert f"{ahead.isoformat()} is after the next night's day" in refused.output
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(SettlementRun)) == 0
    done = runner.invoke(args=["commission", "settle", "--region", "SH", "--date", str(tonight)])
    assert done.exit_code == 0 and "settled" in done.output, done.output
