"""The product catalogue from a CSV file (`groupbuy import-products`): add or update SKUs, with
their optional supplier (the purchase list groups by it). All of the file, or nothing. The
columns, checks and writes are the admin's products import (`imports.import_products`); this
module reads the file and counts what the command reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.csvimport import decode
from fulfilment.core.models import Product

from .imports import import_products as import_products_checked

# what the command counts as an update: a value of the product changed
_VALUES = (
    Product.name,
    Product.weight_g,
    Product.volume_ml,
    Product.zone,
    Product.bin_code,
    Product.supplier,
)


@dataclass(frozen=True, slots=True)
class ProductsReport:
    added: int
    updated: int


def _values(session: Session) -> dict[str, tuple]:
    return {sku: tuple(rest) for sku, *rest in session.execute(select(Product.sku, *_VALUES))}


def import_products(session: Session, *, text: str, actor: str = "system") -> ProductsReport:
    """Add or update (by SKU) every product of the file, or none: ImportFailed lists the rows.
    Columns: sku, name, weight_g, volume_ml, zone (ambient, chilled, frozen), bin_code and,
    optional, supplier (empty: none; no column: kept). Changes are audited. `updated` counts
    the known SKUs whose values changed."""
    before = _values(session)
    preview = import_products_checked(session, text=text, actor=actor)
    known = [r.code for r in preview.rows if r.action == "change"]
    after = _values(session)
    return ProductsReport(
        added=preview.added, updated=sum(1 for sku in known if after[sku] != before[sku])
    )


def import_products_file(session: Session, *, path: Path, actor: str = "system") -> ProductsReport:
    return import_products(session, text=decode(path.read_bytes()), actor=actor)
