"""Thermal-roll layouts of the sorting lists and crate labels: laid out once as tickets (lines,
their emphasis, a label's QR payload) for a roll, written here as plain text and in `escpos` as
the bytes an ESC/POS printer prints.

The text format (docs/printing.md): UTF-8 text, one printed line per text line (LF), never wider
than the roll: 48 columns on 80 mm paper (576 dots at 12 dots a column), 32 on 58 mm (384 dots),
a CJK character counting two columns (Unicode East Asian Width W or F), every other character
one. A ticket (a leader's list, a crate's label) ends with a form feed (FF, 0x0C): the printer's
driver or an ESC/POS bridge cuts there. A QR code is not drawn in text: a label's line
`QR:<payload>` tells an ESC/POS bridge what to print as QR (GS ( k), and is the crate's id a
scanner would read.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .documents import Labels, SortingSheet
from .pdf import crate_title, label_lines
from .words import Gettext, day

WIDTHS = {"thermal80": 48, "thermal58": 32}
CUT = "\f"


def display_width(text: str) -> int:
    """Columns the text takes on a thermal printer: CJK (wide, fullwidth) two, others one."""
    return sum(
        2 if unicodedata.east_asian_width(ch) in ("W", "F") else 0 if ch == "\u200b" else 1
        for ch in text
    )


Measure = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Roll:
    """What a ticket is laid out for: the roll's columns, the columns a text takes on it, and
    whether its lines can print at double size (plain text cannot)."""

    columns: int
    measure: Measure = display_width
    double_size: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """A printed line. `scale` 2 prints it at double width and height: each of its characters
    takes twice its columns, so it was laid out in half the roll."""

    text: str
    bold: bool = False
    scale: int = 1


@dataclass(frozen=True, slots=True)
class Ticket:
    """What prints between two cuts: a leader's sorting list, or a crate's label with the
    payload of its QR code (printed after its lines)."""

    lines: tuple[Line, ...]
    qr: str | None = None


def wrap(text: str, width: int, measure: Measure = display_width) -> list[str]:
    """The text in lines of at most `width` columns, broken at any character (CJK has no
    spaces to break at)."""
    lines, line, used = [], "", 0
    for ch in text:
        w = measure(ch)
        if used + w > width:
            lines.append(line)
            line, used = "", 0
        line += ch
        used += w
    lines.append(line)
    return lines


def two_sides(left: str, right: str, width: int, measure: Measure = display_width) -> list[str]:
    """`left … right` on one line when both fit, else the left wrapped and the right below."""
    gap = width - measure(left) - measure(right)
    if gap >= 1:
        return [left + " " * gap + right]
    return wrap(left, width, measure) + [" " * max(width - measure(right), 0) + right]


def rule(width: int, ch: str = "-") -> str:
    return ch * width


class _Ticket:
    """A ticket being laid out on a roll: each call adds the lines of one block of text."""

    def __init__(self, roll: Roll) -> None:
        self.roll = roll
        self.lines: list[Line] = []

    def text(self, text: str, *, bold: bool = False) -> None:
        self.lines += [Line(t, bold) for t in wrap(text, self.roll.columns, self.roll.measure)]

    def sides(self, left: str, right: str, *, bold: bool = False, big: bool = False) -> None:
        scale = 2 if big and self._fits_doubled(left + " " + right) else 1
        width = self.roll.columns // scale
        lines = two_sides(left, right, width, self.roll.measure)
        self.lines += [Line(t, bold or big, scale) for t in lines]

    def heading(self, text: str) -> None:
        """Double size where the roll can print it and it fits on one line; else bold."""
        if self._fits_doubled(text):
            self.lines.append(Line(text, True, 2))
        else:
            self.text(text, bold=True)

    def rule(self, ch: str = "-") -> None:
        self.lines.append(Line(rule(self.roll.columns, ch)))

    def done(self, qr: str | None = None) -> Ticket:
        return Ticket(tuple(self.lines), qr)

    def _fits_doubled(self, text: str) -> bool:
        return self.roll.double_size and 2 * self.roll.measure(text) <= self.roll.columns


def sorting_tickets(
    sheets: Sequence[SortingSheet], roll: Roll, *, _: Gettext, locale: str
) -> list[Ticket]:
    """One ticket per leader: the point, then crate by crate each bag and its lines."""
    tickets = []
    for s in sheets:
        t = _Ticket(roll)
        t.heading(_("Sorting list") + f" {s.leader_code}")
        t.text(s.pickup_name, bold=True)
        t.text(
            f"{_('leader %(name)s') % {'name': s.leader}} · "
            f"{_('Station %(code)s') % {'code': s.station_code}}"
        )
        t.text(f"{day(s.heading.delivery_date, locale)} · {_('%(n)s bags') % {'n': s.bag_count}}")
        for crate in s.crates:
            t.rule("=")
            t.text(crate_title(_, crate), bold=True)
            for bag in crate.bags:
                t.rule()
                t.text(f"{_('Bag %(no)s') % {'no': bag.bag_no}} {bag.member}", bold=True)
                for line in bag.lines:
                    t.sides(f" {line.name}", f"×{line.quantity}")
        t.rule("=")
        tickets.append(t.done())
    return tickets


def label_tickets(doc: Labels, roll: Roll, *, _: Gettext) -> list[Ticket]:
    """One ticket per crate: the words of its label, its LOAD number large, its QR payload."""
    tickets = []
    for crate in doc.crates:
        w = label_lines(_, crate)
        t = _Ticket(roll)
        t.text(w["code"], bold=True)
        t.rule("=")
        t.sides(f"[{w['mark']}] {w['zone']}", w["count"], bold=True)
        for key in ("point", "leader", "station", "route"):
            t.text(w[key])
        if w["oversize"]:
            t.text(w["oversize"], bold=True)
        t.sides("", w["load"], big=True)
        tickets.append(t.done(crate.qr))
    return tickets


def as_text(tickets: Iterable[Ticket], roll: Roll) -> str:
    """The tickets as thermal text: their lines, a label's `QR:` line, a form feed after each."""
    out = []
    for ticket in tickets:
        lines = [line.text for line in ticket.lines]
        if ticket.qr is not None:
            lines += wrap(f"QR:{ticket.qr}", roll.columns, roll.measure)
        out.append("\n".join(lines) + "\n" + CUT)
    return "".join(out)


def sorting_thermal(sheets: Sequence[SortingSheet], *, width: int, _: Gettext, locale: str) -> str:
    """The sorting lists as thermal text, a ticket per leader."""
    roll = Roll(width)
    return as_text(sorting_tickets(sheets, roll, _=_, locale=locale), roll)


def labels_thermal(doc: Labels, *, width: int, _: Gettext) -> str:
    """The crate labels as thermal text, a ticket per crate with its `QR:` line."""
    roll = Roll(width)
    return as_text(label_tickets(doc, roll, _=_), roll)


def check_width(text: str, width: int) -> Iterable[str]:
    """The lines of a thermal text wider than `width` (none, if it is right)."""
    return [line for line in text.replace(CUT, "").split("\n") if display_width(line) > width]
