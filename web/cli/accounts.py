"""The accounts' commands: `create-user` and `refunds export`. Each is one unit of work."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.orders.refunds import (
    export_refunds,
    list_refunds,
    new_batch_id,
    owe_after_sales_refund,
    write_refunds_csv,
)

from .context import ACTOR, ID, Text, app_sessions, aside_file, fail, put_in_place


@click.command("create-user")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--leader", "leader_code", help="Leader (pickup point) code: leader, pickup_staff.")
@click.option("--region", "region_code", help="Region code: warehouse, dispatcher.")
@click.option("--locale", type=click.Choice(["zh_Hans_CN", "en"]), help="Pages in this language.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@click.option(
    "--actor", default="system", show_default=True, help="Who creates it, for the audit log."
)
@with_appcontext
def create_user_command(
    username: str,
    role: str,
    leader_code: str | None,
    region_code: str | None,
    locale: str | None,
    password_stdin: bool,
    actor: str,
) -> None:
    """Create an account. Asks for the password (or reads it with --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope(app_sessions()) as session:
            user = create_user(
                session,
                username=username,
                password=password,
                role=role,
                leader_code=leader_code,
                region_code=region_code,
                locale=locale,
                actor=actor,
            )
            scope = leader_code or region_code or "everything"
            click.echo(f"created user {user.username} ({role}, {scope})")
    except FulfilmentError as err:
        fail(err)


refunds = AppGroup(
    "refunds", help="Refunds owed (退款): record after-sales ones, export them for payment."
)


@refunds.command("owe")
@click.option("--line", "order_line_id", required=True, type=ID, help="Order line id.")
@click.option("--cents", "amount_cents", required=True, type=int, help="Amount in cents.")
@click.option("--actor", type=ACTOR, default="system", show_default=True, help="For the audit log.")
def refunds_owe_command(order_line_id: int, amount_cents: int, actor: str) -> None:
    """Record an after-sales refund (售后) on a collected line; within the after-sales window it
    reverses the leader's commission on that amount. The platform that placed the order hears
    it (webhook `refund.owed`, reason after_sales)."""
    try:
        with session_scope(app_sessions()) as session:
            refund = owe_after_sales_refund(
                session, order_line_id=order_line_id, amount_cents=amount_cents, actor=actor
            )
            refund_id = refund.id
    except FulfilmentError as err:
        fail(err)
    click.echo(f"refund {refund_id} owed on line {order_line_id}: {amount_cents} cents")


@refunds.command("export")
@click.option("--wave", "wave_id", required=True, type=ID, help="Wave id (see the home page).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV file to write, a new one (default: standard output).",
)
@click.option("--all", "include_exported", is_flag=True, help="Include refunds exported before.")
@click.option(
    "--batch",
    type=Text(32),
    help="List the refunds one earlier export handed over again (its export_batch); marks nothing.",
)
@click.option(
    "--actor",
    type=ACTOR,
    default="system",
    show_default=True,
    help="Who exports, for the audit log.",
)
def refunds_export_command(
    wave_id: int, output: Path | None, include_exported: bool, batch: str | None, actor: str
) -> None:
    """Claim the wave's refunds owed, mark them exported and write them as CSV (UTF-8).

    Nothing is shown before the claim is committed: the CSV is written aside (a private
    temporary file next to --output, or a buffer for standard output) and appears only after
    the commit, so a failed run shows no row and marks no refund, and two runs at once never
    hand over the same refund. The batch id is printed on stderr; `--batch ID` lists a batch
    again if its file was lost.
    """
    if output is not None and output.exists():
        fail(FulfilmentError(f"{output} exists: an export never overwrites an earlier one"))
    aside = aside_file(output) if output is not None else None
    buffer = io.StringIO()
    batch_id = batch or new_batch_id()
    try:
        with session_scope(app_sessions()) as session:
            if batch is not None:
                rows = list_refunds(session, wave_id=wave_id, batch=batch)
                write_refunds_csv(rows, buffer)
                n = len(rows)
            else:
                n = export_refunds(
                    session,
                    wave_id=wave_id,
                    out=buffer,
                    actor=actor,
                    include_exported=include_exported,
                    batch=batch_id,
                )
    except FulfilmentError as err:
        if aside is not None:
            aside.unlink()
        fail(err)
    except BaseException:
        if aside is not None:
            aside.unlink()
        raise
    # committed: from here on the rows are the payment side's
    text = buffer.getvalue()
    if output is None or aside is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        put_in_place(aside, output, text.encode("utf-8"), kept=f"batch {batch_id} is exported and")
    done = "listed again" if batch is not None else "exported"
    click.echo(f"{done} {n} refunds of wave {wave_id} (batch {batch_id})", err=True)


COMMANDS = (create_user_command, refunds)
