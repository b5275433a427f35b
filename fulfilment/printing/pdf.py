"""PDFs drawn with fpdf2, the Noto Sans CJK SC font embedded (subset): Chinese never depends on
the reader's fonts. Why fpdf2 and not WeasyPrint: docs/printing.md (measured: about ten times the
pages a second in a fifth of the memory on the same sorting lists).

A4 lists repeat their title and their table's header on every page; a batch (a station's
sorting lists) starts each leader on a new page. Labels are one 100×60 mm page each.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fpdf import FPDF

from .documents import Heading, Labels, PickList, PurchaseList, RouteSheet, SortingSheet
from .words import ZONE_MARK, Gettext, day, local_clock, local_datetime, zone_words

FONT_FILE = Path(
    os.environ.get("GROUPBUY_CJK_FONT", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
)
FONT_INDEX = int(os.environ.get("GROUPBUY_CJK_FONT_INDEX", "2"))  # Noto Sans CJK SC in the .ttc
FONT = "cjk"
ROW_MM = 5.6


def _base_characters() -> list[int]:
    """ASCII, Latin-1, punctuation and symbols, full-width forms, and every character of
    GB 2312 (its 6,763 hanzi): what the documents print, nearly always."""
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x180))
    chars |= set(range(0x2000, 0x2070)) | set(range(0x2190, 0x2200)) | set(range(0x2460, 0x2700))
    chars |= set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes((hi, lo)).decode("gb2312")))
            except UnicodeDecodeError:
                pass
    return sorted(chars)


@cache
def base_font() -> Path:
    """The CJK font cut down to the base characters, made once per machine (a cache file in
    the temporary folder, named by the source font's size and time). Loading and subsetting
    the whole Noto CJK (65,000 glyphs) cost about a second per PDF; this about a tenth. A
    document with a character outside it is drawn again with the whole font (see render)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    stat = FONT_FILE.stat()
    out = Path(tempfile.gettempdir()) / (
        f"groupbuy-cjk-{FONT_FILE.stem}-{FONT_INDEX}-{stat.st_size}-{int(stat.st_mtime)}.otf"
    )
    if out.exists():
        return out
    font = TTFont(str(FONT_FILE), fontNumber=FONT_INDEX, lazy=True)
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, layout_features=[])
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_base_characters())
    subsetter.subset(font)
    fd, part = tempfile.mkstemp(prefix=out.name, suffix=".part", dir=out.parent)
    os.close(fd)
    font.save(part)
    os.replace(part, out)  # another process making it at the same time writes the same bytes
    return out


class MissingGlyphs(Exception):
    """The document holds a character the base font lacks: draw it with the whole font."""


_whole_font = ContextVar("whole_font", default=False)


@contextmanager
def whole_font():
    token = _whole_font.set(True)
    try:
        yield
    finally:
        _whole_font.reset(token)


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width_mm: float
    align: str = "L"


class Sheet(FPDF):
    """An fpdf2 document whose every page carries its section's title lines and table header."""

    def __init__(self, *, locale: str, _: Gettext, page_format="A4", margin_mm: float = 10):
        super().__init__(format=page_format, unit="mm")
        self.locale, self.gettext = locale, _
        self.set_margins(margin_mm, margin_mm, margin_mm)
        self.set_auto_page_break(True, margin=margin_mm + 6)
        if _whole_font.get():
            self.add_font(FONT, fname=str(FONT_FILE), collection_font_number=FONT_INDEX)
        else:
            self.add_font(FONT, fname=str(base_font()))
        self.set_font(FONT, size=9)
        self.set_creator("groupbuy")
        self.titles: tuple[str, str] = ("", "")
        self.columns: Sequence[Column] = ()
        self.section_label = ""
        self.section_first_page = 1
        self._new_section = False
        self._page_label = ""
        self.print_footer = True

    # -- page furniture -----------------------------------------------------------------------
    def begin_section(self, title: str, subtitle: str, label: str) -> None:
        """A new page for a new leader, station or route, its titles on every page of it."""
        self.titles, self.columns, self.section_label = (title, subtitle), (), label
        self._new_section = True
        self.add_page()

    def header(self) -> None:
        # the footer of a page is drawn when the next one starts: it reads what this captured
        if self._new_section:
            self.section_first_page, self._new_section = self.page_no(), False
        self._page_label = f"{self.section_label} · {self.gettext('Page')} "
        self._page_label += str(self.page_no() - self.section_first_page + 1)
        title, subtitle = self.titles
        if not title:
            return
        self.set_font(FONT, size=14)
        self.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, size=9)
        self.cell(0, 5, subtitle, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)
        if self.columns:
            self.table_header()

    def footer(self) -> None:
        if not self.print_footer:
            return
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.cell(0, 5, self._page_label, align="R")
        self.set_font(FONT, size=9)

    def table_header(self) -> None:
        y, x = self.get_y(), self.l_margin
        width = sum(c.width_mm for c in self.columns)
        self.set_fill_color(230, 230, 230)
        self.rect(x, y, width, ROW_MM, "DF")
        for col in self.columns:
            self.put(x, y, col.width_mm, col.title, col.align)
            x += col.width_mm
        self.set_y(y + ROW_MM)

    def begin_table(self, columns: Sequence[Column]) -> None:
        """Start a table: its header now and at the top of every following page."""
        self.columns = columns
        if self.get_y() + 2 * ROW_MM > self.page_break_trigger:
            self.add_page()  # the header comes with the new page
        else:
            self.table_header()

    def put(self, x: float, y: float, width_mm: float, text: str, align: str) -> None:
        """Text in a cell of a row, without fpdf's cell machinery (seven times faster)."""
        if not text:
            return
        if align == "L":
            left = x + 0.8
        else:
            used = self.get_string_width(text)
            left = x + width_mm - 0.8 - used if align == "R" else x + (width_mm - used) / 2
        self.text(left, y + ROW_MM * 0.72, text)

    def row(self, values: Sequence[object], *, bold_rule: bool = False) -> None:
        if self.get_y() + ROW_MM > self.page_break_trigger:
            self.add_page()
        y, x = self.get_y(), self.l_margin
        right = x + sum(c.width_mm for c in self.columns)
        if bold_rule:
            self.set_line_width(0.35)
            self.line(x, y, right, y)
            self.set_line_width(0.2)
        for col, value in zip(self.columns, values, strict=True):
            if value is CHECK:  # an empty box to tick (the CJK font has no ☐)
                self.rect(x + col.width_mm / 2 - 1.8, y + 1, 3.6, 3.6)
            elif value is not None and value != "":
                self.put(x, y, col.width_mm, self.fit(str(value), col.width_mm - 1.6), col.align)
            x += col.width_mm
        self.line(self.l_margin, y + ROW_MM, right, y + ROW_MM)
        self.set_y(y + ROW_MM)

    def end_table(self) -> None:
        self.columns = ()
        self.ln(2)

    def line_of_text(self, text: str, *, size: float = 10) -> None:
        if self.get_y() + 2 * ROW_MM > self.page_break_trigger:
            self.add_page()
        self.set_font(FONT, size=size)
        self.cell(0, ROW_MM + 1, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, size=9)

    def fit(self, text: str, width_mm: float) -> str:
        """The text, cut with an ellipsis where it would run into the next column."""
        # no glyph is wider than one em (font_size, in mm): short texts need no measuring
        if len(text) * self.font_size <= width_mm or self.get_string_width(text) <= width_mm:
            return text
        while text and self.get_string_width(text + "…") > width_mm:
            text = text[:-1]
        return text + "…"

    def finish(self) -> bytes:
        missing = any(getattr(font, "missing_glyphs", None) for font in self.fonts.values())
        if missing and not _whole_font.get():
            raise MissingGlyphs()
        return bytes(self.output())


def _subtitle(_: Gettext, head: Heading, locale: str, *more: str) -> str:
    parts = [
        f"{head.region_name} ({head.region_code})",
        _("Delivery %(date)s") % {"date": day(head.delivery_date, locale)},
        _("Wave %(id)s") % {"id": head.wave_id},
        *more,
        _("Printed %(time)s") % {"time": local_datetime(head.printed_at, head.tz, locale)},
    ]
    return " · ".join(parts)


CHECK = object()  # the check column: an empty box drawn, nothing written


def _pick_columns(_: Gettext) -> list[Column]:
    return [
        Column(_("Bin"), 20),
        Column("SKU", 24),
        Column(_("Product"), 66),
        Column(_("Zone"), 16),
        Column(_("Units"), 18, "R"),
        Column(_("Weight (kg)"), 22, "R"),
        Column(_("Check"), 24, "C"),
    ]


def _pick_rows(sheet: Sheet, _: Gettext, rows) -> None:
    zone = None
    for r in rows:
        sheet.row(
            [
                r.bin_code,
                r.sku,
                r.name,
                zone_words(_, r.zone),
                r.quantity,
                f"{r.weight_g / 1000:.1f}",
                CHECK,
            ],
            bold_rule=zone is not None and r.zone != zone,
        )
        zone = r.zone


def picklists_pdf(lists: Sequence[PickList], *, _: Gettext, locale: str) -> bytes:
    """The warehouse pick list, or the station lists (one station per page)."""
    sheet = Sheet(locale=locale, _=_)
    for pl in lists:
        if pl.station_code is None:
            title, label = _("Warehouse pick list"), _("Warehouse pick list")
        else:
            title = _("Station pick list %(code)s %(name)s") % {
                "code": pl.station_code,
                "name": pl.station_name or "",
            }
            label = pl.station_code
        sheet.begin_section(title, _subtitle(_, pl.heading, locale), label)
        sheet.begin_table(_pick_columns(_))
        _pick_rows(sheet, _, pl.rows)
        sheet.end_table()
        total = sum(r.quantity for r in pl.rows)
        sheet.line_of_text(_("%(n)s units") % {"n": total})
    return sheet.finish()


def sorting_pdf(sheets: Sequence[SortingSheet], *, _: Gettext, locale: str) -> bytes:
    """Sorting lists (按团长分拣), one leader per page (or pages), crate by crate, bag by bag."""
    pdf = Sheet(locale=locale, _=_)
    for s in sheets:
        title = _("Sorting list %(leader)s %(point)s") % {
            "leader": s.leader_code,
            "point": s.pickup_name,
        }
        subtitle = _subtitle(
            _,
            s.heading,
            locale,
            _("leader %(name)s") % {"name": s.leader},
            _("Station %(code)s") % {"code": s.station_code},
            _("%(n)s bags") % {"n": s.bag_count},
        )
        pdf.begin_section(title, subtitle, s.leader_code)
        pdf.begin_table(_pick_columns(_))
        _pick_rows(pdf, _, s.rows)
        pdf.end_table()
        bag_columns = [
            Column(_("Bag"), 14, "R"),
            Column(_("Member"), 22),
            Column("SKU", 24),
            Column(_("Product"), 90),
            Column(_("Units"), 18, "R"),
            Column(_("Check"), 22, "C"),
        ]
        for crate in s.crates:
            pdf.line_of_text(crate_title(_, crate), size=11)
            pdf.begin_table(bag_columns)
            for bag in crate.bags:
                for n, line in enumerate(bag.lines):
                    first = n == 0
                    pdf.row(
                        [
                            bag.bag_no if first else "",
                            bag.member if first else "",
                            line.sku,
                            line.name,
                            line.quantity,
                            CHECK,
                        ],
                        bold_rule=first,
                    )
            pdf.end_table()
    return pdf.finish()


def crate_title(_: Gettext, crate) -> str:
    zone = zone_words(_, crate.zone)
    if crate.code is None:
        return _("%(zone)s goods (not yet packed in crates)") % {"zone": zone}
    text = _("Crate %(code)s · %(zone)s · %(n)s of %(of)s") % {
        "code": crate.code,
        "zone": zone,
        "n": crate.n,
        "of": crate.of,
    }
    return text + (" · " + _("oversize") if crate.oversize else "")


def purchase_pdf(doc: PurchaseList, *, _: Gettext, locale: str) -> bytes:
    """The purchase list (以销定采): the wave's totals, supplier by supplier."""
    pdf = Sheet(locale=locale, _=_)
    pdf.begin_section(_("Purchase list"), _subtitle(_, doc.heading, locale), _("Purchase list"))
    columns = [
        Column("SKU", 26),
        Column(_("Product"), 80),
        Column(_("Zone"), 18),
        Column(_("Units"), 22, "R"),
        Column(_("Weight (kg)"), 22, "R"),
        Column(_("Check"), 22, "C"),
    ]
    for group in doc.groups:
        pdf.line_of_text(group.supplier or _("No supplier"), size=11)
        pdf.begin_table(columns)
        for r in group.rows:
            pdf.row(
                [
                    r.sku,
                    r.name,
                    zone_words(_, r.zone),
                    r.quantity,
                    f"{r.weight_g / 1000:.1f}",
                    CHECK,
                ]
            )
        pdf.end_table()
    return pdf.finish()


def draw_qr(pdf: FPDF, payload: str, x: float, y: float, size_mm: float) -> None:
    """A full QR code (segno, error correction M) as filled runs of modules, quiet zone
    included in size_mm."""
    import segno

    # a fixed mask pattern: scoring the eight masks was two thirds of a label's time, and any
    # mask is a valid code (the scores only tune contrast patterns for old scanners)
    matrix = segno.make(payload, error="m", micro=False, mask=2).matrix
    n = len(matrix)
    module = size_mm / (n + 8)
    ox, oy = x + 4 * module, y + 4 * module
    for r, row in enumerate(matrix):
        c = 0
        while c < n:
            if row[c]:
                start = c
                while c < n and row[c]:
                    c += 1
                pdf.rect(ox + start * module, oy + r * module, (c - start) * module, module, "F")
            else:
                c += 1


def label_lines(_: Gettext, crate) -> dict[str, str]:
    """What a crate label says, in words (the PDF, HTML and thermal labels share it)."""
    route = (
        _("Route %(vehicle)s · stop %(stop)s")
        % {"vehicle": crate.vehicle_code, "stop": crate.stop_no}
        if crate.vehicle_code
        else _("Not on a route")
    )
    return {
        "code": crate.code,
        "point": crate.pickup_name,
        "leader": _("leader %(name)s") % {"name": crate.leader_masked},
        "station": _("Station %(code)s") % {"code": crate.station_code},
        "route": route,
        "load": _("LOAD %(n)s") % {"n": crate.load_seq} if crate.load_seq else "LOAD -",
        "zone": zone_words(_, crate.zone.value),
        "mark": ZONE_MARK[crate.zone.value],
        "count": _("%(n)s of %(of)s") % {"n": crate.seq, "of": crate.of_n},
        "oversize": _("oversize") if crate.oversize else "",
    }


def labels_pdf(doc: Labels, *, _: Gettext, locale: str) -> bytes:
    """One 100×60 mm label per crate: QR code (the crate id), code, point, leader, station,
    route and stop, LOAD number, zone in words and as a mark, n of N."""
    pdf = Sheet(locale=locale, _=_, page_format=(100, 60), margin_mm=3)
    pdf.print_footer = False
    pdf.set_auto_page_break(False)
    for crate in doc.crates:
        words = label_lines(_, crate)
        pdf.add_page()
        draw_qr(pdf, crate.qr, 2, 2, 32)
        # the zone mark: black for frozen, a double frame for chilled, a frame for ambient
        if crate.zone.value == "frozen":
            pdf.set_fill_color(0)
            pdf.rect(74, 3, 23, 11, "F")
            pdf.set_text_color(255)
        else:
            pdf.rect(74, 3, 23, 11)
            if crate.zone.value == "chilled":
                pdf.rect(75, 4, 21, 9)
        pdf.set_font(FONT, size=16)
        pdf.text(85.5 - pdf.get_string_width(words["mark"]) / 2, 11.2, words["mark"])
        pdf.set_text_color(0)
        pdf.set_font(FONT, size=9)
        zone = words["zone"] + (" · " + words["oversize"] if crate.oversize else "")
        pdf.text(36, 6.5, pdf.fit(zone, 37))
        pdf.set_font(FONT, size=14)
        pdf.text(36, 14, words["count"])
        pdf.set_font(FONT, size=11)
        pdf.text(36, 21, pdf.fit(words["point"], 61))
        pdf.set_font(FONT, size=9)
        for y, key in ((26.5, "leader"), (31, "station"), (35.5, "route")):
            pdf.text(36, y, pdf.fit(words[key], 61))
        pdf.set_font(FONT, size=10)
        pdf.text(3, 41, pdf.fit(words["code"], 94))
        pdf.set_font(FONT, size=22)
        pdf.text(97 - pdf.get_string_width(words["load"]), 54, words["load"])
    return pdf.finish()


def route_sheets_pdf(sheets: Sequence[RouteSheet], *, _: Gettext, locale: str) -> bytes:
    """A driver's sheet per route: stops in order with ETA, point, masked contact, the crates
    to hand over by zone with their codes, a signature column."""
    pdf = Sheet(locale=locale, _=_)
    for r in sheets:
        tz = r.heading.tz
        title = (
            _("Trunk route %(vehicle)s") if r.trunk else _("Route %(vehicle)s from %(station)s")
        ) % {"vehicle": r.vehicle_code, "station": r.station_code}
        subtitle = _subtitle(
            _,
            r.heading,
            locale,
            _("starts %(time)s") % {"time": local_clock(r.start_at, tz, locale)},
            _("plan v%(n)s") % {"n": r.plan_version},
        )
        pdf.begin_section(title, subtitle, r.vehicle_code)
        pdf.begin_table(
            [
                Column(_("Stop"), 10, "R"),
                Column(_("ETA"), 17),
                Column(_("Point"), 48),
                Column(_("Contact"), 25),
                Column(_("Crates"), 60),
                Column(_("Signature"), 30),
            ]
        )
        for stop in r.stops:
            counts = " ".join(
                f"{zone_words(_, z)}×{n}"
                for z in ("ambient", "chilled", "frozen")
                if (n := sum(1 for c in stop.crates if c.zone.value == z))
            )
            pdf.row(
                [
                    stop.seq,
                    local_clock(stop.eta, tz, locale),
                    f"{stop.place_code} {stop.name}",
                    stop.contact,
                    counts or "-",
                    "",
                ],
                bold_rule=True,
            )
            if stop.address:
                pdf.row(["", "", stop.address, "", "", ""])
            codes = [c.code for c in stop.crates]
            for i in range(0, len(codes), 2):
                pdf.row(["", "", "", "", "  ".join(codes[i : i + 2]), ""])
        pdf.end_table()
        pdf.line_of_text(
            _("%(n)s crates · driver's signature: ____________")
            % {"n": len(r.crates_in_load_order)}
        )
    return pdf.finish()


def loading_pdf(sheets: Sequence[RouteSheet], *, _: Gettext, locale: str) -> bytes:
    """The loading list: per route, its crates in LOAD order (the last stop's go in first)."""
    pdf = Sheet(locale=locale, _=_)
    for r in sheets:
        title = _("Loading list %(vehicle)s") % {"vehicle": r.vehicle_code}
        pdf.begin_section(title, _subtitle(_, r.heading, locale), r.vehicle_code)
        pdf.begin_table(
            [
                Column(_("LOAD"), 14, "R"),
                Column(_("Crate"), 62),
                Column(_("Zone"), 16),
                Column(_("Stop"), 12, "R"),
                Column(_("Point"), 64),
                Column(_("Check"), 22, "C"),
            ]
        )
        stop_of = {c.id: (s.seq, f"{s.place_code} {s.name}") for s in r.stops for c in s.crates}
        for load, c in r.crates_in_load_order:
            seq, place = stop_of[c.id]
            pdf.row([load, c.code, zone_words(_, c.zone.value), seq, place, CHECK])
        pdf.end_table()
    return pdf.finish()
