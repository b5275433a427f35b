"""Thermal-roll layouts of the sorting lists and crate labels, as plain text.

The format (docs/printing.md): UTF-8 text, one printed line per text line (LF), never wider
than the roll: 48 columns on 80 mm paper (576 dots at 12 dots a column), 32 on 58 mm (384 dots),
a CJK character counting two columns (Unicode East Asian Width W or F), every other character
one. A ticket (a leader's list, a crate's label) ends with a form feed (FF, 0x0C): the printer's
driver or an ESC/POS bridge cuts there. A QR code is not drawn in text: a label's line
`QR:<payload>` tells an ESC/POS bridge what to print as QR (GS ( k), and is the crate's id a
scanner would read.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

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


def wrap(text: str, width: int) -> list[str]:
    """The text in lines of at most `width` columns, broken at any character (CJK has no
    spaces to break at)."""
    lines, line, used = [], "", 0
    for ch in text:
        w = display_width(ch)
        if used + w > width:
            lines.append(line)
            line, used = "", 0
        line += ch
        used += w
    lines.append(line)
    return lines


def two_sides(left: str, right: str, width: int) -> list[str]:
    """`left … right` on one line when both fit, else the left wrapped and the right below."""
    gap = width - display_width(left) - display_width(right)
    if gap >= 1:
        return [left + " " * gap + right]
    return wrap(left, width) + [" " * max(width - display_width(right), 0) + right]


def rule(width: int, ch: str = "-") -> str:
    return ch * width


def sorting_thermal(sheets: Sequence[SortingSheet], *, width: int, _: Gettext, locale: str) -> str:
    """One ticket per leader: the point, then crate by crate each bag and its lines."""
    out: list[str] = []
    for s in sheets:
        lines: list[str] = []
        lines += wrap(_("Sorting list") + f" {s.leader_code}", width)
        lines += wrap(s.pickup_name, width)
        lines += wrap(
            f"{_('leader %(name)s') % {'name': s.leader}} · "
            f"{_('Station %(code)s') % {'code': s.station_code}}",
            width,
        )
        lines += wrap(
            f"{day(s.heading.delivery_date, locale)} · {_('%(n)s bags') % {'n': s.bag_count}}",
            width,
        )
        for crate in s.crates:
            lines.append(rule(width, "="))
            lines += wrap(crate_title(_, crate), width)
            for bag in crate.bags:
                lines.append(rule(width))
                lines += wrap(f"{_('Bag %(no)s') % {'no': bag.bag_no}} {bag.member}", width)
                for line in bag.lines:
                    lines += two_sides(f" {line.name}", f"×{line.quantity}", width)
        lines.append(rule(width, "="))
        out.append("\n".join(lines) + "\n" + CUT)
    return "".join(out)


def check_width(text: str, width: int) -> Iterable[str]:
    """The lines of a thermal text wider than `width` (none, if it is right)."""
    return [line for line in text.replace(CUT, "").split("\n") if display_width(line) > width]


def labels_thermal(doc: Labels, *, width: int, _: Gettext) -> str:
    """One ticket per crate: the words of its label, and its QR payload on a `QR:` line."""
    out = []
    for crate in doc.crates:
        w = label_lines(_, crate)
        lines = wrap(w["code"], width)
        lines.append(rule(width, "="))
        lines += two_sides(f"[{w['mark']}] {w['zone']}", w["count"], width)
        for key in ("point", "leader", "station", "route"):
            lines += wrap(w[key], width)
        if w["oversize"]:
            lines += wrap(w["oversize"], width)
        lines += two_sides("", w["load"], width)
        lines += wrap(f"QR:{crate.qr}", width)
        out.append("\n".join(lines) + "\n" + CUT)
    return "".join(out)
