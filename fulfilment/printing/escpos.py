"""The thermal tickets (sorting lists, crate labels) as ESC/POS bytes for the warehouse's Chinese
thermal printers (Xprinter, Gprinter, HPRT, Epson TM with the Simplified Chinese font): sent as
they are to raw TCP port 9100 or a USB printer, no driver and no bridge (docs/printing.md lists
every command).

The layout is thermal.py's, on a roll measured as the printer prints: in Chinese character mode
an ASCII character takes one column (12 dots), every other character two (the printer draws any
GB18030 character from its 24×24 font, `×` and `·` too, which Unicode calls narrow).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from .documents import Labels, SortingSheet
from .thermal import Roll, Ticket, label_tickets, sorting_tickets
from .words import Gettext

WIDTHS = {"escpos80": 48, "escpos58": 32}
QR_MODULE_DOTS = {48: 8, 32: 6}  # a 21-module code: 168 dots (21 mm) on 80 mm, 126 on 58 mm

ESC, FS, GS, LF = b"\x1b", b"\x1c", b"\x1d", b"\n"
INITIALISE = ESC + b"@"
CHINESE_MODE_ON = FS + b"&"
PARTIAL_CUT = GS + b"VB\x00"  # GS V 66 0: feed to the cutter, then cut leaving a hinge
LEFT, CENTRE = ESC + b"a\x00", ESC + b"a\x01"
QR_MODEL_2 = GS + b"(k\x04\x001A2\x00"  # fn 65: model 2
QR_ERROR_M = GS + b"(k\x03\x001E1"  # fn 69: error correction M (15 %)
QR_PRINT = GS + b"(k\x03\x001Q0"  # fn 81: print the stored symbol
QR_MAX_BYTES = 7089  # what fn 80 stores at most (the largest model 2 symbol, numeric)


def bold(on: bool) -> bytes:
    """ESC E n: emphasised (on) or not."""
    return ESC + b"E" + bytes([int(on)])


def size(scale: int) -> bytes:
    """GS ! n: characters `scale` times as wide and as tall (both nibbles), 1 or 2."""
    return GS + b"!" + bytes([(scale - 1) << 4 | (scale - 1)])


def qr_code(payload: str, *, module_dots: int) -> bytes:
    """The GS ( k sequence that prints `payload` as a QR code: model 2, module size, error
    correction M, store the data (its length + 3 in pL pH), print."""
    data = payload.encode("ascii")
    if len(data) > QR_MAX_BYTES:  # pragma: no cover - payloads are `GBC:<id>`
        raise ValueError(f"a QR code holds at most {QR_MAX_BYTES} bytes, not {len(data)}")
    stored = len(data) + 3
    return (
        QR_MODEL_2
        + GS
        + b"(k\x03\x001C"
        + bytes([module_dots])
        + QR_ERROR_M
        + GS
        + b"(k"
        + bytes([stored & 0xFF, stored >> 8])
        + b"1P0"
        + data
        + QR_PRINT
    )


def printable(text: str) -> str:
    """The text with nothing the printer would take as a command: a control character (ESC,
    GS, a line feed in a point's name…) becomes a space, an invisible format character
    (zero-width space, soft hyphen) goes, a lone surrogate becomes `?`."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        out.append(
            " " if category == "Cc" else "" if category == "Cf" else "?" if category == "Cs" else ch
        )
    return "".join(out)


def printer_width(text: str) -> int:
    """Columns the text takes on the printer in Chinese mode: ASCII one, any other character
    two (a double-byte or four-byte GB18030 character is printed full width)."""
    return sum(1 if ord(ch) < 0x80 else 2 for ch in printable(text))


def roll(width: int) -> Roll:
    return Roll(width, printer_width, double_size=True)


def as_escpos(tickets: Iterable[Ticket], *, width: int) -> bytes:
    """Initialise, Chinese mode on, then each ticket: its lines in GB18030 (emphasis and size
    switched where they change), a label's QR code centred, and a partial cut."""
    out = bytearray(INITIALISE + CHINESE_MODE_ON)
    for ticket in tickets:
        is_bold, scale = False, 1
        for line in ticket.lines:
            if line.bold != is_bold:
                out += bold(line.bold)
                is_bold = line.bold
            if line.scale != scale:
                out += size(line.scale)
                scale = line.scale
            out += printable(line.text).encode("gb18030") + LF
        if is_bold:
            out += bold(False)
        if scale != 1:
            out += size(1)
        if ticket.qr is not None:
            out += CENTRE + qr_code(ticket.qr, module_dots=QR_MODULE_DOTS[width]) + LEFT
        out += PARTIAL_CUT
    return bytes(out)


def sorting_escpos(sheets: Sequence[SortingSheet], *, width: int, _: Gettext, locale: str) -> bytes:
    """The sorting lists as ESC/POS, a ticket (and a cut) per leader."""
    return as_escpos(sorting_tickets(sheets, roll(width), _=_, locale=locale), width=width)


def labels_escpos(doc: Labels, *, width: int, _: Gettext) -> bytes:
    """The crate labels as ESC/POS, a ticket with its QR code (and a cut) per crate."""
    return as_escpos(label_tickets(doc, roll(width), _=_), width=width)
