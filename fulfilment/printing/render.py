"""One entry point for every printed document: `render_document(session, kind=…, format=…)`
gathers the data (documents) and lays it out (pdf, html, tables, thermal, escpos). The CLI
writes the bytes to a file or sends them to a printer, the web sends them; neither sees a
half-written document: a missing cutoff or plan is an error before anything is produced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from fulfilment.core.errors import InvalidInput
from fulfilment.core.sheets import csv_bytes, xlsx_bytes

from . import documents as docs
from . import escpos, html, pdf, tables, thermal
from .pdf import MissingGlyphs, whole_font
from .words import Gettext


class Kind(StrEnum):
    PICKLIST = "picklist"
    STATIONS = "stations"
    SORTING = "sorting"
    LABELS = "labels"
    ROUTE_SHEETS = "route-sheets"
    LOADING = "loading"
    PURCHASE = "purchase"


class Format(StrEnum):
    PDF = "pdf"
    HTML = "html"
    CSV = "csv"
    XLSX = "xlsx"
    THERMAL80 = "thermal80"
    THERMAL58 = "thermal58"
    ESCPOS80 = "escpos80"
    ESCPOS58 = "escpos58"


TABULAR = (Format.PDF, Format.HTML, Format.CSV, Format.XLSX)
THERMAL = (Format.THERMAL80, Format.THERMAL58)
ESCPOS = (Format.ESCPOS80, Format.ESCPOS58)  # what may go to a raw printer (`--printer`)
FORMATS: dict[Kind, tuple[Format, ...]] = {
    Kind.PICKLIST: TABULAR,
    Kind.STATIONS: TABULAR,
    Kind.SORTING: TABULAR + THERMAL + ESCPOS,
    Kind.LABELS: TABULAR + THERMAL + ESCPOS,
    Kind.ROUTE_SHEETS: TABULAR,
    Kind.LOADING: TABULAR,
    Kind.PURCHASE: TABULAR,
}
MEDIA_TYPES = {
    Format.PDF: "application/pdf",
    Format.HTML: "text/html; charset=utf-8",
    Format.CSV: "text/csv; charset=utf-8",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Format.THERMAL80: "text/plain; charset=utf-8",
    Format.THERMAL58: "text/plain; charset=utf-8",
    Format.ESCPOS80: "application/octet-stream",
    Format.ESCPOS58: "application/octet-stream",
}
EXTENSIONS = {
    Format.PDF: "pdf",
    Format.HTML: "html",
    Format.CSV: "csv",
    Format.XLSX: "xlsx",
    Format.THERMAL80: "80mm.txt",
    Format.THERMAL58: "58mm.txt",
    Format.ESCPOS80: "80mm.prn",  # a printer file: `nc HOST 9100 < it`, or `copy /b` on Windows
    Format.ESCPOS58: "58mm.prn",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    content: bytes
    media_type: str
    filename: str
    pages: int | None = None  # PDFs: how many pages


def parse_kind(value: str) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        known = ", ".join(k.value for k in FORMATS)
        raise InvalidInput("document", "kind", f"{value!r} is not one of {known}") from None


def parse_format(kind: Kind, value: str) -> Format:
    allowed = FORMATS[kind]
    try:
        fmt = Format(value)
    except ValueError:
        fmt = None
    if fmt not in allowed:
        known = ", ".join(f.value for f in allowed)
        raise InvalidInput(f"document {kind.value}", "format", f"{value!r} is not one of {known}")
    return fmt  # type: ignore[return-value]


def render_document(
    session: Session,
    *,
    kind: Kind,
    wave_id: int,
    format: Format,
    _: Gettext,
    locale: str,
    station_code: str | None = None,
    now: datetime | None = None,
) -> Rendered:
    """The document of the wave (one station's where given) in the format asked for."""
    if format not in FORMATS[kind]:
        parse_format(kind, format.value)
    wave = docs.get_printable_wave(session, wave_id)
    name = f"wave{wave_id}-{kind.value}" + (f"-{station_code}" if station_code else "")
    filename = f"{name}.{EXTENSIONS[format]}"
    content = _render(session, kind, wave, format, _, locale, station_code, now)
    pages = _pdf_pages(content) if format == Format.PDF else None
    return Rendered(content, MEDIA_TYPES[format], filename, pages)


def _render(session, kind, wave, fmt, _, locale, station_code, now) -> bytes:
    if kind in (Kind.PICKLIST, Kind.STATIONS):
        lists = (
            [docs.warehouse_picklist(session, wave, now=now)]
            if kind == Kind.PICKLIST
            else docs.station_picklists(session, wave, station_code=station_code, now=now)
        )
        title = _("Warehouse pick list") if kind == Kind.PICKLIST else _("Station pick lists")
        return _lay_out(
            fmt,
            pdf=lambda: pdf.picklists_pdf(lists, _=_, locale=locale),
            html=lambda: html.render_html(
                "picklists.html", _=_, locale=locale, lists=lists, title=title
            ),
            tables=lambda: tables.picklist_tables(lists, _=_),
        )
    if kind == Kind.SORTING:
        sheets = docs.sorting_sheets(session, wave, station_code=station_code, now=now)
        if fmt in THERMAL:
            width = thermal.WIDTHS[fmt.value]
            return thermal.sorting_thermal(sheets, width=width, _=_, locale=locale).encode()
        if fmt in ESCPOS:
            width = escpos.WIDTHS[fmt.value]
            return escpos.sorting_escpos(sheets, width=width, _=_, locale=locale)
        return _lay_out(
            fmt,
            pdf=lambda: pdf.sorting_pdf(sheets, _=_, locale=locale),
            html=lambda: html.render_html(
                "sorting.html",
                _=_,
                locale=locale,
                sheets=sheets,
                crate_title=lambda c: pdf.crate_title(_, c),
            ),
            tables=lambda: tables.sorting_tables(sheets, _=_),
        )
    if kind == Kind.PURCHASE:
        doc = docs.purchase_list(session, wave, now=now)
        return _lay_out(
            fmt,
            pdf=lambda: pdf.purchase_pdf(doc, _=_, locale=locale),
            html=lambda: html.render_html("purchase.html", _=_, locale=locale, doc=doc),
            tables=lambda: tables.purchase_tables(doc, _=_),
        )
    if kind == Kind.LABELS:
        labels = docs.crate_labels(session, wave, station_code=station_code, now=now)
        if fmt in THERMAL:
            width = thermal.WIDTHS[fmt.value]
            return thermal.labels_thermal(labels, width=width, _=_).encode()
        if fmt in ESCPOS:
            return escpos.labels_escpos(labels, width=escpos.WIDTHS[fmt.value], _=_)
        return _lay_out(
            fmt,
            pdf=lambda: pdf.labels_pdf(labels, _=_, locale=locale),
            html=lambda: html.render_html(
                "labels.html",
                _=_,
                locale=locale,
                doc=labels,
                words=lambda c: pdf.label_lines(_, c),
                qr_svg=_qr_svg,
            ),
            tables=lambda: tables.label_tables(labels, _=_),
        )
    if kind in (Kind.ROUTE_SHEETS, Kind.LOADING):
        routes = docs.route_sheets(session, wave, station_code=station_code, now=now)
        loading = kind == Kind.LOADING
        return _lay_out(
            fmt,
            pdf=lambda: (pdf.loading_pdf if loading else pdf.route_sheets_pdf)(
                routes, _=_, locale=locale
            ),
            html=lambda: html.render_html(
                "routes.html", _=_, locale=locale, sheets=routes, loading=loading
            ),
            tables=lambda: (
                tables.loading_tables(routes, _=_)
                if loading
                else tables.route_tables(routes, _=_, locale=locale)
            ),
        )
    raise AssertionError(kind)  # pragma: no cover - FORMATS lists every kind handled here


def _lay_out(fmt: Format, *, pdf, html, tables) -> bytes:
    if fmt == Format.PDF:
        try:
            return pdf()
        except MissingGlyphs:  # a rare character: the whole CJK font, not its cut-down copy
            with whole_font():
                return pdf()
    if fmt == Format.HTML:
        return html()
    made = tables()
    if fmt == Format.CSV:
        (only,) = made
        return csv_bytes(only.header, only.rows)
    return xlsx_bytes([(t.title, t.header, t.rows) for t in made])


def _qr_svg(payload: str) -> str:
    import segno

    return segno.make(payload, error="m", micro=False, mask=2).svg_inline(scale=3)


def _pdf_pages(content: bytes) -> int:
    # fpdf2 writes one "/Type /Page" object per page (and "/Type /Pages" once)
    return content.count(b"/Type /Page\n") or content.count(b"/Type /Page ") or 0
