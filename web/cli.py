"""The `groupbuy` console script: the Flask CLI of the app (`flask --app web` works the same)."""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from fulfilment.config import ConfigError

from . import create_app
from .commands import register_commands


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
