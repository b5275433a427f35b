"""`groupbuy api-client …`: the shop platforms allowed to use the order API."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.platforms.clients import create_api_client, revoke_api_client

api_client = AppGroup("api-client", help="API clients (shop platforms) of the order API.")


@api_client.command("create")
@click.argument("name")
@click.option("--region", "region_code", required=True, help="The region it orders in, e.g. SH.")
@click.option("--actor", default="system", show_default=True, help="Who, for the audit log.")
def create_command(name: str, region_code: str, actor: str) -> None:
    """Create an API client and print its Bearer token (shown once; only its hash is kept)."""
    try:
        with session_scope(current_app.extensions["groupbuy"]["sessions"]) as session:
            client, token = create_api_client(
                session, name=name, region_code=region_code, actor=actor
            )
            client_id = client.id
    except FulfilmentError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    click.echo(f"API client {name} (id {client_id}) created for region {region_code}.", err=True)
    click.echo("Its Bearer token (shown this once; store it now):", err=True)
    click.echo(token)


@api_client.command("revoke")
@click.argument("name")
@click.option("--actor", default="system", show_default=True, help="Who, for the audit log.")
def revoke_command(name: str, actor: str) -> None:
    """Revoke an API client's token: its requests are refused from now on."""
    try:
        with session_scope(current_app.extensions["groupbuy"]["sessions"]) as session:
            revoke_api_client(session, name=name, actor=actor)
    except FulfilmentError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    click.echo(f"API client {name} revoked.")


def offer_demo_deals(sessions) -> str:
    """The demo city offers its deals for the next open wave, so an API order works at once."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from fulfilment.core.models import Region
    from fulfilment.waves.offers import offer_next_waves

    with session_scope(sessions) as session:
        region = session.scalars(select(Region).order_by(Region.id)).first()
        if region is None:
            return "no region yet: nothing to offer"
        day, created = offer_next_waves(session, region=region, now=datetime.now(UTC), actor="demo")
        code = region.code
    return (
        f"API orders placed now go to region {code}'s wave for delivery on {day.isoformat()} "
        f"({created} deals newly offered); see the README for a curl example."
    )


COMMANDS = (api_client,)
