"""`groupbuy api-client …`: the shop platforms allowed to use the order API."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.platforms.clients import create_api_client, revoke_api_client
from fulfilment.platforms.webhooks import (
    add_endpoint,
    get_client_by_name,
    list_endpoints,
    remove_endpoint,
)

from .context import ACTOR, CODE, ID, Text, app_sessions, fail

NAME = Text(64)  # an API client's name
api_client = AppGroup("api-client", help="API clients (shop platforms) of the order API.")


@api_client.command("create")
@click.argument("name", type=NAME)
@click.option(
    "--region", "region_code", type=CODE, required=True, help="The region it orders in, e.g. SH."
)
@click.option(
    "--actor", type=ACTOR, default="system", show_default=True, help="Who, for the audit log."
)
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
@click.argument("name", type=NAME)
@click.option(
    "--actor", type=ACTOR, default="system", show_default=True, help="Who, for the audit log."
)
def revoke_command(name: str, actor: str) -> None:
    """Revoke an API client's token: its requests are refused from now on."""
    try:
        with session_scope(current_app.extensions["groupbuy"]["sessions"]) as session:
            revoke_api_client(session, name=name, actor=actor)
    except FulfilmentError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    click.echo(f"API client {name} revoked.")


@api_client.group("webhook")
def webhook_group() -> None:
    """A client's webhook endpoints: where its orders' events are sent (docs/api.md)."""


@webhook_group.command("add")
@click.argument("name", type=NAME)
@click.argument("url")
@click.option(
    "--events",
    default="",
    help="Comma-separated event types (default: all), e.g. order.cut_off,order.arrived.",
)
@click.option(
    "--actor", type=ACTOR, default="system", show_default=True, help="Who, for the audit log."
)
def webhook_add_command(name: str, url: str, events: str, actor: str) -> None:
    """Register URL for client NAME and print its signing secret (shown this once)."""
    wanted = [e.strip() for e in events.split(",") if e.strip()] or None
    try:
        with session_scope(app_sessions()) as session:
            client = get_client_by_name(session, name)
            endpoint, secret = add_endpoint(
                session, client=client, url=url, events=wanted, actor=actor
            )
            endpoint_id, types = endpoint.id, endpoint.event_types()
    except FulfilmentError as err:
        fail(err)
    click.echo(f"Webhook endpoint {endpoint_id} of {name}: {url}", err=True)
    click.echo(f"Events: {', '.join(types)}", err=True)
    click.echo("Its signing secret (shown this once; store it now):", err=True)
    click.echo(secret)


@webhook_group.command("list")
@click.argument("name", type=NAME)
def webhook_list_command(name: str) -> None:
    """The client's webhook endpoints: id, URL, events, and whether it is failing."""
    try:
        with session_scope(app_sessions()) as session:
            client = get_client_by_name(session, name)
            rows = [
                (e.id, e.url, e.events, e.failures) for e in list_endpoints(session, client=client)
            ]
    except FulfilmentError as err:
        fail(err)
    if not rows:
        click.echo(f"{name} has no webhook endpoints.")
    for endpoint_id, url, events, failures in rows:
        state = f"failing ({failures} in a row)" if failures else "ok"
        click.echo(f"{endpoint_id}\t{url}\t{events}\t{state}")


@webhook_group.command("remove")
@click.argument("name", type=NAME)
@click.argument("endpoint_id", type=ID)
@click.option(
    "--actor", type=ACTOR, default="system", show_default=True, help="Who, for the audit log."
)
def webhook_remove_command(name: str, endpoint_id: int, actor: str) -> None:
    """Remove an endpoint: it hears nothing more; what it had not received is dropped."""
    try:
        with session_scope(app_sessions()) as session:
            client = get_client_by_name(session, name)
            remove_endpoint(session, client=client, endpoint_id=endpoint_id, actor=actor)
    except FulfilmentError as err:
        fail(err)
    click.echo(f"Webhook endpoint {endpoint_id} of {name} removed.")


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
