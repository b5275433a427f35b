"""The `groupbuy` console script: the Flask CLI of the app (`flask --app web` works the same), a
module per command group: `db` (schema, demo), `catalogue` (products), `orders` (import, cutoff),
`night` (fleet, plans, pipeline, scheduler, workers), `accounts` (users, refunds), `api` (API
clients and their webhook endpoints), `webhooks` (their delivery), `crates` (crates and
handovers), `printing` (a wave's documents), `commission` (rates, settlement, statements)."""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from fulfilment.core.config import ConfigError
from web import create_app


def register_commands(group: click.Group) -> None:
    from . import (
        accounts,
        api,
        catalogue,
        commission,
        crates,
        db,
        night,
        orders,
        printing,
        webhooks,
    )

    for module in (
        db,
        catalogue,
        orders,
        api,
        accounts,
        night,
        crates,
        printing,
        commission,
        webhooks,
    ):
        for command in module.COMMANDS:
            group.add_command(command)


class GroupbuyCLI(FlaskGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # Our commands are registered on the group itself, so listing them needs no app
        # (and no secret key): `groupbuy --help` works before anything is configured.
        return sorted(click.Group.list_commands(self, ctx))


cli = GroupbuyCLI(
    create_app=create_app, help="groupbuy: community group-buy fulfilment and routing."
)
register_commands(cli)


def main() -> None:
    try:
        cli.main(prog_name="groupbuy")
    except ConfigError as err:
        sys.exit(f"groupbuy: {err}")
