"""`groupbuy commission`: rates set and listed, a settlement run once per region and day, a
statement exported once (CSV with BOM, XLSX) and paid once, an after-sales refund recorded."""

import csv
import io

from commission_factories import collect, make_commission_world
from openpyxl import load_workbook

from fulfilment.core.db import session_scope


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
