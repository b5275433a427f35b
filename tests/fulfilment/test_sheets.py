"""Every CSV and XLSX cell the service writes: formula-like texts are written as text (OWASP's
CSV-injection rule), numbers stay numbers, long digit strings stay text."""

import csv
import io

import openpyxl
import pytest

from fulfilment.core.sheets import csv_bytes, csv_cell, xlsx_bytes

HOSTILE = ['=HYPERLINK("http://x","y")', "+1+1", "-1+1", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("text", HOSTILE)
def test_csv_cell_prefixes_formula_like_text(text):
    """A text beginning with = + - @ tab or CR gets a leading apostrophe, the rest unchanged."""
    assert csv_cell(text) == "'" + text


def test_csv_cell_leaves_numbers_and_plain_text():
    """A negative number is a number, not a formula; an ordinary text is written as is."""
    assert csv_cell(-5) == -5
    assert csv_cell(-0.5) == -0.5
    assert csv_cell("张*") == "张*"
    assert csv_cell("138****5678") == "138****5678"
    assert csv_cell(None) is None


def test_csv_bytes_start_with_a_bom_and_read_back():
    """The printed lists' CSV is UTF-8 with a byte-order mark; a hostile name reads back as
    text with its apostrophe and a negative number as a number."""
    data = csv_bytes(["member", "units"], [['=HYPERLINK("http://x","y")', -3], ["李*", 2]])
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows == [
        ["member", "units"],
        ['\'=HYPERLINK("http://x","y")', "-3"],
        ["李*", "2"],
    ]


def test_xlsx_cells_are_text_or_numbers_never_formulas():
    """In XLSX a formula-like text is a string cell with the quote prefix (it reads back
    unchanged and stays text when edited), a phone tail or code is a text cell, and numbers
    (negative ones too) are numbers."""
    data = xlsx_bytes([("list", ["who", "phone", "n"], [[h, "13800001234", -2] for h in HOSTILE])])
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    rows = list(sheet.iter_rows(min_row=2))
    # XML keeps no bare carriage return: "\rx" reads back as "\nx", still a text cell
    assert [r[0].value for r in rows] == [h.replace("\r", "\n") for h in HOSTILE]
    assert all(r[0].data_type == "s" and r[0].quotePrefix for r in rows)
    assert all(r[1].data_type == "s" and r[1].value == "13800001234" for r in rows)
    assert all(r[2].data_type == "n" and r[2].value == -2 for r in rows)
