"""The `groupbuy` commands: db upgrade, demo, import-orders, cutoff. Each is one unit of work."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from fulfilment.cutoff import cut_off_wave
from fulfilment.db import session_scope
from fulfilment.deadlines import latest_due_delivery_date, refresh_cutoff_statistics
from fulfilment.errors import FulfilmentError
from fulfilment.importer import ImportFailed, import_file
from fulfilment.migrate import upgrade
from fulfilment.models import Region
from fulfilment.sites import get_region

from .api_commands import api_client, offer_demo_deals

log = logging.getLogger("groupbuy")
RESETTABLE_ENVS = ("demo", "dev", "test")  # `demo --reset` drops every table: never in production


def _sessions():
    return current_app.extensions["groupbuy"]["sessions"]


def _engine():
    return current_app.extensions["groupbuy"]["engine"]


def _fail(err: Exception) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(1)


db = AppGroup("db", help="Database schema (Alembic migrations).")


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Bring the database schema up to date."""
    upgrade(_engine(), revision)
    click.echo(f"database at {revision}: {_engine().url.render_as_string(hide_password=True)}")


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@click.command("cutoff")
@click.option("--region", "region_code", required=True, help="Region code, e.g. SH.")
@click.option(
    "--date", "delivery", help="Delivery date YYYY-MM-DD (default: the latest wave due now)."
)
@click.option(
    "--actor", default="system", show_default=True, help="Who runs it, for the audit log."
)
@with_appcontext
def cutoff_command(region_code: str, delivery: str | None, actor: str) -> None:
    """Cut off the region's wave: lock orders, settle groups and tiers, build the pick lists."""
    now = datetime.now(UTC)
    refresh_cutoff_statistics(_engine())
    try:
        with session_scope(_sessions()) as session:
            region = get_region(session, region_code)
            day = _parse_date(delivery) or latest_due_delivery_date(session, region=region, now=now)
            wave, summary = cut_off_wave(
                session, region=region, delivery_date=day, now=now, actor=actor
            )
    except (FulfilmentError, ValueError) as err:
        _fail(err)
    state = "was already cut off" if summary.already_cut_off else "cut off"
    click.echo(
        f"wave {region_code} {day.isoformat()} {state}: {summary.orders_locked} orders, "
        f"{summary.lines_locked} lines locked; {summary.deals_cancelled} deals below their "
        f"group size cancelled ({summary.orders_cancelled} orders to refund)"
    )


@click.command("import-orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--region", "region_code", help="Region code (default: the only region).")
@click.option("--skip-bad", is_flag=True, help="Import the good orders and report each bad row.")
@click.option(
    "--actor", default="system", show_default=True, help="Who imports, for the audit log."
)
@with_appcontext
def import_orders_command(file: Path, region_code: str | None, skip_bad: bool, actor: str) -> None:
    """Import orders from a shop platform's CSV export (UTF-8 or GBK)."""
    try:
        with session_scope(_sessions()) as session:
            region = get_region(session, region_code) if region_code else _only_region(session)
            report = import_file(session, region=region, path=file, skip_bad=skip_bad, actor=actor)
    except ImportFailed as err:
        for row in err.errors:
            click.echo(f"  {file.name}:{row}", err=True)
        _fail(
            f"nothing imported from {file.name}: {len(err.errors)} bad row(s); "
            "fix them or use --skip-bad"
        )
    except FulfilmentError as err:
        _fail(err)
    for row in report.skipped:
        click.echo(f"skipped {file.name}:{row}", err=True)
    click.echo(
        f"imported {report.orders_imported} orders ({report.lines_imported} lines); "
        f"{report.orders_already_present} already present; {len(report.skipped)} bad rows skipped"
    )


def _only_region(session) -> Region:
    from sqlalchemy import select

    regions = session.scalars(select(Region)).all()
    if len(regions) != 1:
        raise FulfilmentError(f"{len(regions)} regions exist: name one with --region")
    return regions[0]


@click.command("demo")
@click.option("--seed", default=7, show_default=True)
@click.option("--leaders", default=60, show_default=True)
@click.option("--orders", default=1500, show_default=True)
@click.option(
    "--reset", is_flag=True, help="Drop the existing data first (SQLite file or all tables)."
)
@click.option("--no-cutoff", is_flag=True, help="Leave the demo wave open.")
@click.option("--serve", is_flag=True, help="Then serve the app on http://127.0.0.1:5000.")
@with_appcontext
def demo_command(
    seed: int, leaders: int, orders: int, reset: bool, no_cutoff: bool, serve: bool
) -> None:
    """Build a demo city with a day of orders, cut off its wave, and (--serve) serve it."""
    from sqlalchemy import select

    from fulfilment.accounts import add_demo_accounts
    from fulfilment.demo import build_demo
    from fulfilment.models import Base

    engine = _engine()
    if reset:
        env = current_app.config["GROUPBUY_SETTINGS"].env
        if env not in RESETTABLE_ENVS:
            _fail(
                f"refusing to drop every table with GROUPBUY_ENV={env}: --reset runs only when "
                f"GROUPBUY_ENV is one of {', '.join(RESETTABLE_ENVS)}"
            )
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(engine)
    with session_scope(_sessions()) as session:
        if session.scalar(select(Region.id).limit(1)) is not None:
            click.echo("demo data already present (use --reset to rebuild)")
            summary, logins = None, []
        else:
            summary = build_demo(session, seed=seed, leaders=leaders, orders=orders)
            logins = add_demo_accounts(session, region_code=summary.region_code)
    if summary is not None:
        click.echo(
            f"built region {summary.region_code}: {summary.stations} grid stations, "
            f"{summary.leaders} leaders, {summary.members} members, {summary.orders} orders "
            f"({summary.lines} lines) for delivery on {summary.delivery_date.isoformat()}"
        )
        if not no_cutoff:
            refresh_cutoff_statistics(engine)
            with session_scope(_sessions()) as session:
                region = get_region(session, summary.region_code)
                _, cut = cut_off_wave(
                    session,
                    region=region,
                    delivery_date=summary.delivery_date,
                    now=datetime.now(UTC),
                    actor="demo",
                )
            click.echo(
                f"cut off: {cut.orders_locked} orders locked, {cut.deals_cancelled} deals "
                f"below group size cancelled"
            )
    click.echo(offer_demo_deals(_sessions()))
    click.echo("")
    click.echo("Open http://127.0.0.1:5000/login")
    if logins:
        click.echo("Demo logins (shown once; passwords are random):")
        for login in logins:
            click.echo(
                f"  {login.username:<12} {login.password:<14} {login.role.value} {login.scope}"
            )
    else:
        click.echo("Demo logins were printed when the demo was built (or use create-user).")
    if serve:
        # app.run() refuses to run inside the flask CLI; serve the same app with Werkzeug directly.
        from werkzeug.serving import run_simple

        run_simple(
            "127.0.0.1", 5000, current_app._get_current_object(), use_reloader=False, threaded=True
        )


def register_commands(group: click.Group) -> None:
    from .night_commands import COMMANDS as NIGHT_COMMANDS
    from .portal_commands import PORTAL_COMMANDS

    commands = (db, cutoff_command, import_orders_command, demo_command, api_client)
    for command in (*commands, *PORTAL_COMMANDS, *NIGHT_COMMANDS):
        group.add_command(command)
