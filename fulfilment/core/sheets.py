"""Every CSV and XLSX cell the service writes, written safely: a text that a spreadsheet would
read as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return: OWASP's
CSV-injection rule) is written as text. Numbers written as numbers stay numbers (a negative
amount is not a formula); the rule applies after masking, to what is actually written.

CSV: the text gets a leading apostrophe (`'=HYPERLINK(…)`), which spreadsheets show as text.
XLSX: the cell is a string cell with Excel's quote prefix, so the text reads back unchanged and
stays text when edited; long digit strings (codes, phone tails) are text cells too, never numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
Cell = str | int | float | None


def is_formula_like(value: object) -> bool:
    """True for a text a spreadsheet would evaluate (numbers are never formula-like)."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_cell(value: Cell) -> Cell:
    """The value as a CSV cell: a formula-like text gets a leading apostrophe."""
    if is_formula_like(value):
        return "'" + value  # type: ignore[operator]
    return value


def write_csv(
    out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Cell]], *, bom: bool = False
) -> None:
    """Header and rows as CSV, each cell through csv_cell; with bom, UTF-8's byte-order mark
    first (Excel on Windows then reads the Chinese right)."""
    if bom:
        out.write(BOM)
    writer = csv.writer(out)
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> bytes:
    """A CSV file as UTF-8 with a byte-order mark (what the printed lists download as)."""
    buffer = io.StringIO(newline="")
    write_csv(buffer, header, rows, bom=True)
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Cell]]]]) -> bytes:
    """An XLSX workbook, one sheet per (title, header, rows). Texts are string cells (with the
    quote prefix where formula-like, and the text number format), numbers are numbers."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title=_sheet_title(title))
        sheet.append([_xlsx_cell(sheet, h, head=True) for h in header])
        for row in rows:
            sheet.append([_xlsx_cell(sheet, v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _xlsx_cell(sheet: Any, value: Cell, *, head: bool = False) -> Any:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    c = WriteOnlyCell(sheet)
    c.value = value
    if isinstance(value, str):
        c.data_type = "s"  # never a formula, whatever it begins with
        c.number_format = "@"
        c.quotePrefix = is_formula_like(value)
    if head:
        c.font = Font(bold=True)
    return c


def _sheet_title(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\ (a station code or a point name may hold one)
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in title)
    return cleaned[:31] or "Sheet"
