"""`groupbuy import-orders` and `groupbuy cutoff`. Each is one unit of work."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click
from flask.cli import with_appcontext

from fulfilment.catalogue.sites import get_region
from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.core.models import Region, Wave
from fulfilment.orders.importer import import_file
from fulfilment.waves.crates import crate_counts, ensure_crates
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.deadlines import latest_due_delivery_date, refresh_cutoff_statistics

from .context import app_engine, app_sessions, fail


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
    refresh_cutoff_statistics(app_engine())
    try:
        with session_scope(app_sessions()) as session:
            region = get_region(session, region_code)
            day = _parse_date(delivery) or latest_due_delivery_date(session, region=region, now=now)
            wave, summary = cut_off_wave(
                session, region=region, delivery_date=day, now=now, actor=actor
            )
        with session_scope(app_sessions()) as session:  # the crates, once, in their own step
            wave = session.get_one(Wave, wave.id)
            ensure_crates(session, wave, actor=actor)
            crates = sum(crate_counts(session, wave_id=wave.id).values())
    except (FulfilmentError, ValueError) as err:
        fail(err)
    state = "was already cut off" if summary.already_cut_off else "cut off"
    click.echo(
        f"wave {region_code} {day.isoformat()} {state}: {summary.orders_locked} orders, "
        f"{summary.lines_locked} lines locked; {summary.deals_cancelled} deals below their "
        f"group size cancelled ({summary.orders_cancelled} orders to refund); {crates} crates"
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
        with session_scope(app_sessions()) as session:
            region = get_region(session, region_code) if region_code else _only_region(session)
            report = import_file(session, region=region, path=file, skip_bad=skip_bad, actor=actor)
    except ImportFailed as err:
        for row in err.errors:
            click.echo(f"  {file.name}:{row}", err=True)
        fail(
            f"nothing imported from {file.name}: {len(err.errors)} bad row(s); "
            "fix them or use --skip-bad"
        )
    except FulfilmentError as err:
        fail(err)
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


COMMANDS = (cutoff_command, import_orders_command)
