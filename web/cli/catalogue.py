"""The catalogue's command: `import-products` (SKUs and their suppliers from a CSV file)."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from fulfilment.catalogue.products import import_products_file
from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError

from .context import app_sessions, fail


@click.command("import-products")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--actor", default="system", show_default=True, help="For the audit log.")
@with_appcontext
def import_products_command(file: Path, actor: str) -> None:
    """Add or update products from a CSV file, all of it or nothing. Columns: sku, name,
    weight_g, volume_ml, zone (ambient, chilled, frozen), bin_code, and optional supplier."""
    try:
        with session_scope(app_sessions()) as session:
            report = import_products_file(session, path=file, actor=actor)
    except ImportFailed as err:
        for row in err.errors:
            click.echo(f"  {file.name}:{row}", err=True)
        fail(f"nothing imported from {file.name}: {len(err.errors)} bad row(s)")
    except FulfilmentError as err:
        fail(err)
    click.echo(f"products: {report.added} added, {report.updated} updated")


COMMANDS = (import_products_command,)
