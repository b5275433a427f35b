"""What every command needs of the app it runs in: its session factory and engine, one way to
fail (a message on stderr, exit status 1), and the types of the options that reach the database
(an id in an `integer` column's range, text a column can hold): a value beyond them is a usage
error naming the option, never a driver's error."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import current_app

from fulfilment.core.csvimport import text_fault
from fulfilment.core.errors import FulfilmentError

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


def aside_file(output: Path) -> Path:
    """A private empty file next to `output`, made before an export claims anything: a folder
    that cannot take the file (missing, read-only) fails the command before it marks a row."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
    except OSError as err:
        fail(FulfilmentError(f"{output}: cannot write in {output.parent} ({err.strerror})"))
    os.close(fd)
    return Path(name)


def put_in_place(aside: Path, output: Path, data: bytes, *, kept: str) -> None:
    """Write the committed export into `aside`, then link it into place only if no file has
    that name meanwhile (an export is never lost by overwriting, nor overwrites another);
    `kept` says what the file holds if it stays aside."""
    aside.write_bytes(data)
    try:
        os.link(aside, output)
    except FileExistsError:
        fail(FulfilmentError(f"{output} appeared meanwhile; {kept} kept in {aside}"))
    aside.unlink()
