"""The read-only demo pages and the commands, end to end through the app."""

import re
from datetime import UTC, datetime

from portal_factories import PASSWORD, login
from sqlalchemy import select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.db import session_scope
from fulfilment.core.models import Member, Wave, WaveStatus
from fulfilment.demo.city import build_demo

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def demo(app, **kw):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return build_demo(
            s, seed=2, leaders=kw.get("leaders", 12), orders=kw.get("orders", 200), now=NOW
        )


def test_cutoff_command_then_pick_list_pages(app, client, runner):
    """`groupbuy cutoff` cuts the wave; the three pick lists render it with personal data masked."""
    summary = demo(app)
    result = runner.invoke(
        args=["cutoff", "--region", "SH", "--date", summary.delivery_date.isoformat()]
    )
    assert result.exit_code == 0, result.output
    locked, refunded = map(
        int, re.search(r"cut off: (\d+) orders.*\((\d+) orders to refund", result.output).groups()
    )
    assert locked + refunded == 200
    again = runner.invoke(
        args=["cutoff", "--region", "SH", "--date", summary.delivery_date.isoformat()]
    )
    assert "already cut off" in again.output

    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        wave = s.scalars(select(Wave).where(Wave.status == WaveStatus.CUT_OFF)).one()
        phones = [m.phone for m in s.scalars(select(Member))]
        create_user(s, username="wh", password=PASSWORD, role=Role.WAREHOUSE, region_code="SH")
    login(client, "wh")
    index = client.get("/")
    assert index.status_code == 200 and f"/waves/{wave.id}" in index.text
    warehouse = client.get(f"/waves/{wave.id}")
    assert warehouse.status_code == 200 and "VEG-001" in warehouse.text
    assert client.get(f"/waves/{wave.id}/stations").status_code == 200
    leaders = client.get(f"/waves/{wave.id}/leaders")
    assert leaders.status_code == 200
    assert re.search(r"1\d\d\*\*\*\*\d{4}", leaders.text)
    assert not any(p in leaders.text for p in phones)  # never a full phone number
    api = client.get(f"/api/waves/{wave.id}/picks/warehouse").get_json()
    assert sum(r["quantity"] for r in api) > 0


def test_unknown_wave_is_404(app, client):
    """A wave id that does not exist is a plain 404 (for a signed-in admin)."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        create_user(s, username="root", password=PASSWORD, role=Role.ADMIN)
    login(client, "root")
    assert client.get("/waves/999").status_code == 404


def test_cutoff_command_reports_errors_with_nonzero_exit(app, runner):
    """An unknown region is a message and exit code 1, not a traceback."""
    result = runner.invoke(args=["cutoff", "--region", "NOPE", "--date", "2026-03-10"])
    assert result.exit_code == 1 and "NOPE" in result.output


def test_import_command_all_or_nothing_and_skip_bad(app, runner, tmp_path):
    """`groupbuy import-orders` refuses a file with a bad row and imports the good ones with --skip-bad."""
    summary = demo(app, orders=10)
    day = summary.delivery_date.replace(
        day=summary.delivery_date.day
    )  # orders for the next open wave
    del day
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_no,order_time,leader_code,member_id,sku,quantity\n"
        "X1,2026-11-24 10:00,L00001,MX1,VEG-001,2\n"
        "X2,2026-11-24 10:05,L00001,MX2,VEG-001,zero\n",
        encoding="utf-8",
    )
    refused = runner.invoke(args=["import-orders", str(path)])
    assert refused.exit_code == 1 and "orders.csv:line 3: quantity" in refused.output
    done = runner.invoke(args=["import-orders", str(path), "--skip-bad"])
    assert done.exit_code == 0 and "imported 1 orders" in done.output


def test_healthz(client):
    """The health check answers when the database does."""
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_db_upgrade_command_creates_the_schema(tmp_path):
    """`groupbuy db upgrade` on an empty SQLite file creates every table at the head revision."""
    from sqlalchemy import inspect

    from fulfilment.core.migrate import current_revision
    from fulfilment.core.models import Base
    from web import create_app

    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
        }
    )
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = app.extensions["groupbuy"]["engine"]
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    from alembic.script import ScriptDirectory

    from fulfilment.core.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert current_revision(engine) == head  # one linear history, applied to its head
    engine.dispose()
