"""The commission's commands: `commission rate set|list`, `settle`, `export`, `statements`,
`pay`. Each is one unit of work: its session commits at the end, or rolls back on an error."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import click
from flask.cli import AppGroup

from fulfilment.catalogue.sites import get_region
from fulfilment.commission.ledger import settle_region
from fulfilment.commission.rates import list_rates, set_rate
from fulfilment.commission.statements import (
    FORMATS,
    export_statements,
    get_statement,
    list_statements,
    pay_statement,
    statement_lines,
    write_csv,
    write_xlsx,
    yuan,
)
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.waves.cycle import delivery_date_for

from .context import ACTOR, CODE, ID, Text, app_sessions, aside_file, fail, put_in_place
from .night import DATE

commission = AppGroup(
    "commission", help="Leader commission (团长佣金): rates, settlement, statements."
)
rate = AppGroup("rate", help="Commission rates in basis points (100 bps = 1 %).")
commission.add_command(rate)
_actor = click.option(
    "--actor", type=ACTOR, default="system", show_default=True, help="For the audit log."
)
_region = click.option(
    "--region", "region_code", type=CODE, required=True, help="Region code, e.g. SH."
)


@rate.command("set")
@_region
@click.option(
    "--product", "sku", type=Text(64), help="Override for one product (SKU) in the region."
)
@click.option("--deal", "deal_id", type=ID, help="Override for one deal (its id).")
@click.argument("bps", type=int)
@_actor
def rate_set_command(
    region_code: str, sku: str | None, deal_id: int | None, bps: int, actor: str
) -> None:
    """Set the region's default rate, or a product's or deal's override, to BPS basis points."""
    try:
        with session_scope(app_sessions()) as session:
            set_rate(
                session,
                region_code=region_code,
                sku=sku,
                deal_id=deal_id,
                rate_bps=bps,
                actor=actor,
            )
    except FulfilmentError as err:
        fail(err)
    scope = f"product {sku}" if sku else f"deal {deal_id}" if deal_id else "region default"
    click.echo(f"{region_code} {scope}: {bps} bps ({bps / 100:g} %)")


@rate.command("list")
@click.option("--region", "region_code", type=CODE, help="Region code (default: all).")
def rate_list_command(region_code: str | None) -> None:
    """The rates: each region's default, then its product and deal overrides."""
    with session_scope(app_sessions()) as session:
        rows = list_rates(session, region_code=region_code)
    click.echo("region\tscope\tsku\tdeal\tdelivery_date\trate_bps\tupdated_at\tupdated_by")
    for r in rows:
        click.echo(
            "\t".join(
                [
                    r.region,
                    r.scope,
                    r.sku or "",
                    str(r.deal_id or ""),
                    r.delivery_date.isoformat() if r.delivery_date else "",
                    str(r.rate_bps),
                    r.updated_at.isoformat(timespec="seconds"),
                    r.updated_by,
                ]
            )
        )


@commission.command("settle")
@_region
@click.option("--date", "day", type=DATE, required=True, help="The day settled, YYYY-MM-DD.")
@_actor
def settle_command(region_code: str, day: date, actor: str) -> None:
    """Settle the region's commission whose after-sales window has passed: once per region and
    day (the night's `settle` step does the same; the second is told it was done). A day after
    the next night's (the delivery date orders go to now) is refused: it would claim that
    night's settlement ahead of it."""
    try:
        with session_scope(app_sessions()) as session:
            region = get_region(session, region_code)
            latest = delivery_date_for(region, datetime.now(UTC))
            if day > latest:
                raise click.BadParameter(
                    f"{day.isoformat()} is after the next night's day in {region_code} "
                    f"({latest.isoformat()}): a night settles its own day",
                    param_hint="'--date'",
                )
            outcome = settle_region(
                session, region_id=region.id, day=day, now=datetime.now(UTC), actor=actor
            )
    except FulfilmentError as err:
        fail(err)
    click.echo(
        f"commission {region_code} {day.isoformat()}: {outcome.state}, {outcome.lines} lines, "
        f"¥{yuan(outcome.settled_cents)} settled, ¥{yuan(outcome.reversed_cents)} reversed"
    )


@commission.command("export")
@_region
@click.option("--from", "date_from", type=DATE, required=True, help="First day settled.")
@click.option("--to", "date_to", type=DATE, required=True, help="Last day settled.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write, a new one.",
)
@click.option("--statement", "statement_id", type=ID, help="Write one earlier statement again.")
@_actor
def export_command(
    region_code: str,
    date_from: date,
    date_to: date,
    fmt: str,
    output: Path,
    statement_id: int | None,
    actor: str,
) -> None:
    """Export a settlement statement per leader of the region: their settled commission of the
    period that no statement holds yet (exactly once). The file is written after the commit;
    `--statement ID` writes an earlier one again and marks nothing."""
    if output.exists():
        fail(FulfilmentError(f"{output} exists: an export never overwrites an earlier one"))
    aside = aside_file(output)
    buffer = io.BytesIO()
    try:
        with session_scope(app_sessions()) as session:
            if statement_id is not None:
                ids = [get_statement(session, statement_id).id]
            else:
                made = export_statements(
                    session,
                    region_code=region_code,
                    date_from=date_from,
                    date_to=date_to,
                    actor=actor,
                )
                ids = [s.id for s in made]
            rows = statement_lines(session, ids)
            statements = list_statements(session, ids=ids)
            if fmt == "xlsx":
                write_xlsx(rows, statements, buffer)
            else:
                write_csv(rows, buffer)
    except FulfilmentError as err:
        aside.unlink()
        fail(err)
    except BaseException:
        aside.unlink()
        raise
    if not ids:
        aside.unlink()
        click.echo(f"nothing to export: no settled commission of {region_code} left unexported")
        return
    put_in_place(aside, output, buffer.getvalue(), kept="the statements are exported and")
    for s in statements:
        click.echo(
            f"statement {s.statement_id}: {s.leader_code} {s.lines} lines ¥{yuan(s.amount_cents)}"
        )


@commission.command("statements")
@click.option("--region", "region_code", type=CODE, help="Region code (default: all).")
def statements_command(region_code: str | None) -> None:
    """The statements exported, paid or not."""
    with session_scope(app_sessions()) as session:
        rows = list_statements(session, region_code=region_code)
    click.echo("statement\tregion\tleader\tfrom\tto\tlines\tamount\tpaid_at\tpaid_by")
    for s in rows:
        paid = s.paid_at.isoformat(timespec="seconds") if s.paid_at else ""
        click.echo(
            f"{s.statement_id}\t{s.region}\t{s.leader_code}\t{s.period_from}\t{s.period_to}\t"
            f"{s.lines}\t{yuan(s.amount_cents)}\t{paid}\t{s.paid_by or ''}"
        )


@commission.command("pay")
@click.argument("statement_id", type=ID)
@_actor
def pay_command(statement_id: int, actor: str) -> None:
    """Mark a statement paid: once (a second time is refused, naming when and by whom)."""
    try:
        with session_scope(app_sessions()) as session:
            statement = pay_statement(session, statement_id=statement_id, actor=actor)
            amount = statement.amount_cents
    except FulfilmentError as err:
        fail(err)
    click.echo(f"statement {statement_id} paid: ¥{yuan(amount)}")


COMMANDS = (commission,)
