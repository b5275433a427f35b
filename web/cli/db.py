"""`groupbuy db upgrade` and `groupbuy demo`: the schema, and a demo city on it."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import session_scope
from fulfilment.core.migrate import upgrade
from fulfilment.core.models import Region
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.deadlines import refresh_cutoff_statistics

from .api import offer_demo_deals
from .context import app_engine, app_sessions, fail

RESETTABLE_ENVS = ("demo", "dev", "test")  # `demo --reset` drops every table: never in production

db = AppGroup("db", help="Database schema (Alembic migrations).")


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Bring the database schema up to date."""
    upgrade(app_engine(), revision)
    click.echo(f"database at {revision}: {app_engine().url.render_as_string(hide_password=True)}")


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

    from fulfilment.core.models import Base
    from fulfilment.demo.accounts import add_demo_accounts
    from fulfilment.demo.city import build_demo

    engine = app_engine()
    if reset:
        env = current_app.config["GROUPBUY_SETTINGS"].env
        if env not in RESETTABLE_ENVS:
            fail(
                f"refusing to drop every table with GROUPBUY_ENV={env}: --reset runs only when "
                f"GROUPBUY_ENV is one of {', '.join(RESETTABLE_ENVS)}"
            )
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(engine)
    with session_scope(app_sessions()) as session:
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
            with session_scope(app_sessions()) as session:
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
    click.echo(offer_demo_deals(app_sessions()))
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
        import threading

        from werkzeug.serving import run_simple

        from fulfilment.events.delivery import Courier

        # the webhooks' courier beside the app (`groupbuy webhooks run` in production)
        courier = Courier(app_sessions())
        threading.Thread(target=courier.run, name="webhooks", daemon=True).start()
        click.echo("Webhooks are delivered meanwhile (groupbuy api-client webhook add …).")

        run_simple(
            "127.0.0.1",
            5000,
            current_app._get_current_object(),  # type: ignore[attr-defined]
            use_reloader=False,
            threaded=True,
        )


COMMANDS = (db, demo_command)
