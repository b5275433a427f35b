"""What every command needs of the app it runs in: its session factory and engine, one way to
fail (a message on stderr, exit status 1), and the types of the options that reach the database
(an id in an `integer` column's range, text a column can hold): a value beyond them is a usage
error naming the option, never a driver's error."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from flask import current_app

from fulfilment.core.csvimport import text_fault

INT32_MAX = 2**31 - 1
ID = click.IntRange(1, INT32_MAX)  # a record's id: an `integer` column


class Text(click.ParamType):
    """Text a column of `max_length` characters can hold: no control character (PostgreSQL
    refuses a NUL), no lone surrogate."""

    name = "TEXT"

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        fault = text_fault(text)
        if fault is not None:
            self.fail(fault, param, ctx)
        if len(text) > self.max_length:
            self.fail(f"must be at most {self.max_length} characters", param, ctx)
        return text


ACTOR = Text(64)  # the audit log's actor
CODE = Text(32)  # a region's or a leader's code


def app_sessions():
    return current_app.extensions["groupbuy"]["sessions"]


def app_engine():
    return current_app.extensions["groupbuy"]["engine"]


def fail(err: object) -> NoReturn:
    click.echo(f"error: {err}", err=True)
    sys.exit(1)
