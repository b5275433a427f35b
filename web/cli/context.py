"""What every command needs of the app it runs in: its session factory and engine, and one way to
fail (a message on stderr, exit status 1)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask import current_app


def app_sessions():
    return current_app.extensions["groupbuy"]["sessions"]


def app_engine():
    return current_app.extensions["groupbuy"]["engine"]


def fail(err: object) -> NoReturn:
    click.echo(f"error: {err}", err=True)
    sys.exit(1)
