"""The product catalogue from a CSV file (`groupbuy import-products`): add or update SKUs, with
their optional supplier (the purchase list groups by it). All of the file, or nothing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.csvimport import ImportFailed, RowError, decode
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Product, TempZone

COLUMNS = ("sku", "name", "weight_g", "volume_ml", "zone", "bin_code")
OPTIONAL = ("supplier",)
LIMITS = {"sku": 64, "name": 200, "bin_code": 32, "supplier": 100}


@dataclass(frozen=True, slots=True)
class ProductsReport:
    added: int
    updated: int


def _row(line: int, raw: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in COLUMNS + OPTIONAL:
        value = (raw.get(key) or "").strip()
        if key in LIMITS and len(value) > LIMITS[key]:
            raise InvalidInput(f"line {line}", key, f"longer than {LIMITS[key]}", limit=LIMITS[key])
        if key in ("weight_g", "volume_ml"):
            if not value.isascii() or not value.isdigit():
                raise InvalidInput(f"line {line}", key, f"{value!r} is not a whole number ≥ 0")
            out[key] = int(value)
        elif key == "zone":
            try:
                out[key] = TempZone(value)
            except ValueError:
                zones = ", ".join(z.value for z in TempZone)
                raise InvalidInput(
                    f"line {line}", key, f"{value!r} is not one of {zones}"
                ) from None
        elif key == "supplier":
            out[key] = value or None
        elif not value:
            raise InvalidInput(f"line {line}", key, "is empty")
        else:
            out[key] = value
    return out


def import_products(session: Session, *, text: str, actor: str = "system") -> ProductsReport:
    """Add or update (by SKU) every product of the file, or none: ImportFailed lists the rows.
    Columns: sku, name, weight_g, volume_ml, zone (ambient, chilled, frozen), bin_code and,
    optional, supplier (empty: none). Changes are audited."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportFailed([RowError(1, c, "column missing") for c in missing])
    rows, errors, seen = [], [], set()
    for line, raw in enumerate(reader, start=2):
        try:
            row = _row(line, raw)
        except InvalidInput as err:
            errors.append(RowError.of(line, err))
            continue
        if row["sku"] in seen:
            errors.append(RowError(line, "sku", f"{row['sku']} appears twice in the file"))
            continue
        seen.add(row["sku"])
        rows.append(row)
    if errors:
        raise ImportFailed(errors)
    existing = {
        p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(list(seen))))
    }
    added = updated = 0
    for row in rows:
        product = existing.get(row["sku"])
        view = {k: (v.value if isinstance(v, TempZone) else v) for k, v in row.items()}
        if product is None:
            product = Product(**row)
            session.add(product)
            session.flush()
            added += 1
            record_change(
                session,
                actor=actor,
                action="product.added",
                entity="product",
                entity_id=product.id,
                after=view,
            )
            continue
        before = {
            k: (v.value if isinstance(v, TempZone) else v)
            for k, v in ((k, getattr(product, k)) for k in row)
        }
        if before != view:
            for key, value in row.items():
                setattr(product, key, value)
            updated += 1
            record_change(
                session,
                actor=actor,
                action="product.changed",
                entity="product",
                entity_id=product.id,
                before=before,
                after=view,
            )
    session.flush()
    return ProductsReport(added, updated)


def import_products_file(session: Session, *, path: Path, actor: str = "system") -> ProductsReport:
    return import_products(session, text=decode(path.read_bytes()), actor=actor)
