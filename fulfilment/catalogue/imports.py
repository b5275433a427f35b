"""CSV imports of leaders (with their pickup points) and products: all or nothing per file.

Each row goes through the same service as the admin's form (`manage.save_leader`,
`manage.save_product`), so a file is checked exactly as a form is. The whole file is written
inside one savepoint, each row inside its own: a bad row is rolled back and reported by line and
field, the next rows are still checked, and when any row failed (or for a preview, `dry_run`)
the file's savepoint is rolled back, so nothing of it stays. A row whose code (or SKU) exists
changes that record; the preview says which rows add and which change.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from datetime import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.csvimport import ImportFailed, ImportPreview, PreviewRow, RowError
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import GridStation, Leader, Product
from fulfilment.core.privacy import mask_phone

from .manage import save_leader, save_product

LEADER_COLUMNS = (
    "code",
    "station",
    "name",
    "phone",
    "pickup_name",
    "address",
    "lat",
    "lon",
    "window_open",
    "window_close",
    "active",
)
LEADER_REQUIRED = ("code", "station", "name", "phone", "pickup_name", "lat", "lon")
PRODUCT_REQUIRED = ("sku", "name", "weight_g", "volume_ml", "zone", "bin_code")
PRODUCT_COLUMNS = (*PRODUCT_REQUIRED, "supplier")
MAX_ROWS = 20_000


def _float(record: str, field: str, text: str) -> float:
    """A finite decimal number in ASCII (not "NaN", not "１２")."""
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(record, field, f"{text!r} is not a number")
    return value


def _clock(record: str, field: str, text: str, default: time) -> time:
    if not text:
        return default
    try:
        moment = time.fromisoformat(text)
    except ValueError:
        raise InvalidInput(record, field, f"{text!r} is not a time HH:MM") from None
    if moment.tzinfo is not None:
        raise InvalidInput(record, field, f"{text!r}: a time HH:MM without an offset")
    return moment


def _yes(record: str, text: str) -> bool:
    answer = (text or "yes").lower()
    if answer not in {"yes", "no", "true", "false", "1", "0"}:
        raise InvalidInput(record, "active", f"{text!r}: yes or no")
    return answer in {"yes", "true", "1"}


def _rows(text: str, columns: tuple[str, ...], required: tuple[str, ...]):
    """(line, cells) for each non-empty row; a header that lacks or adds a column is refused."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFailed([RowError(1, missing[0], f"missing column(s) {', '.join(missing)}")])
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise ImportFailed(
            [RowError(1, unknown[0], f"unknown column; expected {', '.join(columns)}")]
        )
    for line, raw in enumerate(reader, start=2):
        if line > MAX_ROWS + 1:
            raise ImportFailed([RowError(line, "row", f"more than {MAX_ROWS} rows", MAX_ROWS)])
        if not any(cell.strip() for cell in raw):
            continue
        if len(raw) > len(header):
            yield line, None
            continue
        yield line, dict(zip(header, (c.strip() for c in raw), strict=False))


def _run(
    session: Session,
    *,
    text: str,
    columns: tuple[str, ...],
    required: tuple[str, ...],
    key: str,
    existing: Callable[[str], Any],
    write: Callable[[str, dict[str, str], Any], None],
    dry_run: bool,
) -> ImportPreview:
    preview = ImportPreview()
    seen: dict[str, int] = {}
    outer = session.begin_nested()
    try:
        for line, cells in _rows(text, columns, required):
            if cells is None:
                preview.errors.append(RowError(line, "row", "more cells than the header"))
                continue
            missing = [c for c in required if not cells.get(c)]
            if missing:
                preview.errors.append(RowError(line, missing[0], "required"))
                continue
            code = cells[key]
            if code in seen:
                preview.errors.append(RowError(line, key, f"{code!r} already on line {seen[code]}"))
                continue
            seen[code] = line
            record = existing(code)
            row = session.begin_nested()
            try:
                write(f"{key} {code}", cells, record)
            except InvalidInput as err:
                row.rollback()
                preview.errors.append(RowError.of(line, err))
                continue
            row.commit()
            shown = {**cells, "phone": mask_phone(cells["phone"])} if "phone" in cells else cells
            preview.rows.append(PreviewRow(line, code, "change" if record else "add", shown))
    except BaseException:
        outer.rollback()
        raise
    if preview.errors or dry_run:
        outer.rollback()
    else:
        outer.commit()
    if preview.errors and not dry_run:
        raise ImportFailed(preview.errors)
    return preview


def import_leaders(
    session: Session, *, text: str, actor: str, dry_run: bool = False
) -> ImportPreview:
    """Add or change (by code) every leader of the file, or none (ImportFailed lists why).
    With dry_run, the preview of what would be written and every error; nothing is written."""
    stations = {s.code: s for s in session.scalars(select(GridStation))}

    def write(record: str, cells: dict[str, str], leader: Leader | None) -> None:
        station = stations.get(cells["station"])
        if station is None:
            raise InvalidInput(record, "station", f"no grid station {cells['station']!r}")
        save_leader(
            session,
            leader=leader,
            station=station,
            code=cells["code"],
            name=cells["name"],
            phone=cells["phone"],
            pickup_name=cells["pickup_name"],
            address=cells.get("address", ""),
            lat=_float(record, "lat", cells["lat"]),
            lon=_float(record, "lon", cells["lon"]),
            window_open=_clock(record, "window_open", cells.get("window_open", ""), time(7, 0)),
            window_close=_clock(record, "window_close", cells.get("window_close", ""), time(11, 0)),
            active=_yes(record, cells.get("active", "")),
            actor=actor,
        )

    return _run(
        session,
        text=text,
        columns=LEADER_COLUMNS,
        required=LEADER_REQUIRED,
        key="code",
        existing=lambda code: session.scalar(select(Leader).where(Leader.code == code)),
        write=write,
        dry_run=dry_run,
    )


def import_products(
    session: Session, *, text: str, actor: str, dry_run: bool = False
) -> ImportPreview:
    """Add or change (by SKU) every product of the file, or none (ImportFailed lists why).
    With dry_run, the preview of what would be written and every error; nothing is written.
    The optional supplier column sets each row's supplier (an empty cell clears it); without
    that column, suppliers stay as they are. `groupbuy import-products` reads files here too."""

    def write(record: str, cells: dict[str, str], product: Product | None) -> None:
        save_product(
            session,
            product=product,
            sku=cells["sku"],
            name=cells["name"],
            weight_g=_whole(record, "weight_g", cells["weight_g"]),
            volume_ml=_whole(record, "volume_ml", cells["volume_ml"]),
            zone=cells["zone"],
            bin_code=cells["bin_code"],
            supplier=cells.get("supplier"),
            actor=actor,
        )

    return _run(
        session,
        text=text,
        columns=PRODUCT_COLUMNS,
        required=PRODUCT_REQUIRED,
        key="sku",
        existing=lambda sku: session.scalar(select(Product).where(Product.sku == sku)),
        write=write,
        dry_run=dry_run,
    )


def _whole(record: str, field: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise InvalidInput(record, field, f"{text!r} is not a whole number")
    return int(text)
