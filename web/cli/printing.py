"""`groupbuy print KIND --wave ID`: a wave's printed documents to a file, or to a network
thermal printer (docs/printing.md)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from babel.support import Translations
from flask.cli import with_appcontext

from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError, InvalidInput
from fulfilment.printing.printers import PrinterAddress, parse_printer, send_to_printer
from fulfilment.printing.render import (
    ESCPOS,
    FORMATS,
    Format,
    Kind,
    parse_format,
    render_document,
)
from web.i18n import CHINESE, ENGLISH, TRANSLATIONS

from .context import app_sessions, fail


def _printer(_ctx, _param, value: str | None) -> PrinterAddress | None:
    if value is None:
        return None
    try:
        return parse_printer(value)
    except InvalidInput as err:
        raise click.BadParameter(err.message) from None


@click.command("print")
@click.argument("kind", type=click.Choice([k.value for k in FORMATS]))
@click.option("--wave", "wave_id", required=True, type=int, help="Wave id (see the home page).")
@click.option("--station", "station_code", help="Only this grid station's lists.")
@click.option(
    "--format",
    "fmt",
    default="pdf",
    show_default=True,
    type=click.Choice([f.value for f in Format]),
    help="pdf, html, csv, xlsx; sorting lists and labels also thermal80 / thermal58 (text)"
    " and escpos80 / escpos58 (bytes for an ESC/POS printer).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (replaced only once the document is complete). Either --output or"
    " --printer.",
)
@click.option(
    "--printer",
    metavar="tcp://HOST[:PORT]",
    callback=_printer,
    help="Send the document to a network thermal printer (raw TCP, port 9100 unless given)"
    " instead of a file: --format escpos80 or escpos58 only. Either --output or --printer.",
)
@click.option(
    "--lang",
    default=CHINESE,
    show_default=True,
    type=click.Choice([CHINESE, ENGLISH]),
    help="Language of the printed words.",
)
@with_appcontext
def print_command(
    kind: str,
    wave_id: int,
    station_code: str | None,
    fmt: str,
    output: Path | None,
    printer: PrinterAddress | None,
    lang: str,
) -> None:
    """Print a wave's document: picklist, stations, sorting, labels, route-sheets, loading,
    purchase, to a file (--output) or to a network printer (--printer). A wave not cut off (or
    without a published plan, where one is needed) is an error naming what is missing, and
    nothing is written or sent."""
    if (output is None) == (printer is None):
        raise click.UsageError("give either --output FILE or --printer tcp://HOST[:PORT]")
    if printer is not None and Format(fmt) not in ESCPOS:
        raise click.BadParameter(
            f"{fmt} cannot go to a printer: a raw printer takes escpos80 or escpos58",
            param_hint="'--format'",
        )
    translations = Translations.load(str(TRANSLATIONS), [lang])
    try:
        document = Kind(kind)
        with session_scope(app_sessions()) as session:
            rendered = render_document(
                session,
                kind=document,
                wave_id=wave_id,
                format=parse_format(document, fmt),
                _=translations.gettext,
                locale=lang,
                station_code=station_code,
            )
        if printer is not None:
            sent = send_to_printer(printer, rendered.content)
            click.echo(f"sent {sent} bytes to {printer}")
            return
    except FulfilmentError as err:
        fail(err)
    assert output is not None
    _write(output, rendered.content)
    pages = f", {rendered.pages} pages" if rendered.pages else ""
    click.echo(f"wrote {output} ({len(rendered.content)} bytes{pages})")


def _write(output: Path, content: bytes) -> None:
    """Aside, then renamed into place: a reader never sees half a file."""
    fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    os.replace(name, output)


COMMANDS = (print_command,)
