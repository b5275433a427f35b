"""The accounts' commands: `create-user` and `refunds export`. Each is one unit of work."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.orders.refunds import export_refunds

from .context import app_sessions, fail


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


refunds = AppGroup("refunds", help="Refunds owed (退款): export them for the payment side.")


@refunds.command("export")
@click.option("--wave", "wave_id", required=True, type=int, help="Wave id (see the home page).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV file to write (default: standard output).",
)
@click.option("--all", "include_exported", is_flag=True, help="Include refunds exported before.")
@click.option(
    "--actor", default="system", show_default=True, help="Who exports, for the audit log."
)
def refunds_export_command(
    wave_id: int, output: Path | None, include_exported: bool, actor: str
) -> None:
    """Write the wave's refunds owed as CSV (UTF-8) and mark them exported.

    With --output the file appears only once the refunds are marked exported (written aside,
    renamed after the commit), so a failed run leaves neither a file nor a marked refund.
    """
    tmp = output.with_name(output.name + ".part") if output else None
    try:
        with session_scope(app_sessions()) as session:
            if tmp is None:
                n = export_refunds(
                    session,
                    wave_id=wave_id,
                    out=sys.stdout,
                    actor=actor,
                    include_exported=include_exported,
                )
            else:
                with tmp.open("w", encoding="utf-8", newline="") as fh:
                    n = export_refunds(
                        session,
                        wave_id=wave_id,
                        out=fh,
                        actor=actor,
                        include_exported=include_exported,
                    )
    except FulfilmentError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        fail(err)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if tmp is not None and output is not None:
        tmp.replace(output)
    click.echo(f"exported {n} refunds of wave {wave_id}", err=True)


COMMANDS = (create_user_command, refunds)
