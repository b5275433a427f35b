"""What the warehouse prints for a wave (fulfilment/printing): PDFs with Chinese text and an
embedded CJK font, masked members and no pickup codes, pages that render, thermal lines that
fit their roll, CSV and XLSX that read back and never carry a formula."""

import csv
import io
import re
from datetime import timedelta

import openpyxl
import pytest
from babel.support import Translations
from escpos_reader import read_escpos
from printing_support import (
    build_cut_demo,
    ink_share,
    pdf_fonts,
    pdf_page_pngs,
    pdf_pages_text,
    pdf_text,
)
from sqlalchemy import select, update

from fulfilment.core.db import session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Leader, Member, Order, Product, Wave
from fulfilment.printing.documents import NotPrintable, bin_walk_key, warehouse_picklist
from fulfilment.printing.printers import PrinterAddress, parse_printer
from fulfilment.printing.render import FORMATS, Format, Kind, render_document
from fulfilment.printing.thermal import WIDTHS, check_width, display_width
from fulfilment.waves.crates import Crate
from fulfilment.waves.cycle import ensure_wave
from web.i18n import CHINESE, TRANSLATIONS

HOSTILE = '=HYPERLINK("http://x","y")'


@pytest.fixture(scope="module")
def wave(tmp_path_factory, sqlite_template):
    sessions, wave_id, engine = build_cut_demo(
        tmp_path_factory.mktemp("printing") / "demo.sqlite", sqlite_template
    )
    with session_scope(sessions) as s:  # a hostile point name, and a very long one
        first, second = s.scalars(select(Leader).order_by(Leader.code).limit(2)).all()
        first.pickup_name = HOSTILE
        second.pickup_name = "阳光花园" * 12 + "号楼"
    yield sessions, wave_id
    engine.dispose()


def render(sessions, wave_id, kind, fmt, **kw):
    with session_scope(sessions) as s:
        return render_document(
            s,
            kind=kind,
            wave_id=wave_id,
            format=fmt,
            _=kw.pop("_", lambda text: text),
            locale=kw.pop("locale", "zh_Hans_CN"),
            **kw,
        )


def secrets_of(sessions, wave_id):
    with session_scope(sessions) as s:
        phones = set(s.scalars(select(Member.phone)))
        codes = set(s.scalars(select(Order.pickup_code).where(Order.wave_id == wave_id)))
        points = set(s.scalars(select(Leader.pickup_name)))
        products = set(s.scalars(select(Product.name)))
    return phones, codes, points, products


@pytest.mark.parametrize("kind", list(FORMATS))
def test_pdf_holds_chinese_text_and_no_personal_secret(wave, kind):
    """Each PDF's extracted text holds Chinese product names (and, on sorting lists, point
    names), never a full member phone nor a pickup code."""
    sessions, wave_id = wave
    rendered = render(sessions, wave_id, kind, Format.PDF)
    text = pdf_text(rendered.content)
    phones, codes, points, products = secrets_of(sessions, wave_id)
    if kind in (Kind.LABELS, Kind.ROUTE_SHEETS, Kind.LOADING):
        assert sum(p in text for p in points if len(p) < 20) >= 5
    else:
        assert any(p in text for p in products), text[:300]
    if kind == Kind.SORTING:
        assert sum(p in text for p in points if len(p) < 20) >= 5
        assert "****" in text or "*" in text
    assert not [p for p in phones if p in text]
    assert not [c for c in codes if f" {c}" in text or f"{c}\n" in text]


@pytest.mark.parametrize("kind", list(FORMATS))
def test_pdf_embeds_its_fonts_and_renders_to_png(wave, kind, tmp_path):
    """Every font of every PDF is embedded; the first page renders (pdftoppm) with ink on it."""
    sessions, wave_id = wave
    rendered = render(sessions, wave_id, kind, Format.PDF)
    fonts = pdf_fonts(rendered.content)
    assert fonts and all(embedded for _name, embedded in fonts), fonts
    assert any("CJK" in name for name, _ in fonts)
    (png,) = pdf_page_pngs(rendered.content, tmp_path, kind.value)
    assert ink_share(png) > 0.002


def test_sorting_pdf_starts_every_leader_on_a_new_page(wave):
    """A station's sorting lists are one PDF; each leader's list starts a page of its own."""
    sessions, wave_id = wave
    with session_scope(sessions) as s:
        station = s.scalars(select(Leader).order_by(Leader.code)).first().station.code
    rendered = render(sessions, wave_id, Kind.SORTING, Format.PDF, station_code=station)
    pages = pdf_pages_text(rendered.content)
    firsts = [p.split("\n")[0] for p in pages]
    with session_scope(sessions) as s:
        codes = [
            c
            for c, st in s.execute(select(Leader.code, Leader.station_id))
            if any(c in page for page in pages)
        ]
    assert codes
    for code in codes:  # the leader's first page begins with its title
        assert any(first.startswith(f"Sorting list {code}") for first in firsts), code


@pytest.mark.parametrize("fmt", [Format.THERMAL80, Format.THERMAL58])
def test_thermal_lines_never_wider_than_the_roll(wave, fmt):
    """80 mm: 48 columns, 58 mm: 32, a CJK character two columns, even for a 50-character
    point name; each leader's ticket ends with a cut (form feed)."""
    sessions, wave_id = wave
    text = render(sessions, wave_id, Kind.SORTING, fmt).content.decode("utf-8")
    width = WIDTHS[fmt.value]
    assert check_width(text, width) == []
    assert max(display_width(line) for line in text.split("\n")) == width or width == 48
    assert text.count("\f") >= 5
    assert "阳光花园阳光花园" in text


def test_display_width_counts_cjk_twice():
    """上海青 takes six columns, ×2 two."""
    assert display_width("上海青") == 6
    assert display_width("×2") == 2
    assert display_width("（全角）") == 8


def test_csv_and_xlsx_read_back_without_formulas(wave):
    """The sorting lists as CSV (UTF-8 with BOM) and XLSX: the same rows, a hostile point name
    written as text (CSV: a leading apostrophe; XLSX: a string cell with the quote prefix),
    masked phones as text cells, quantities as numbers."""
    sessions, wave_id = wave
    csv_bytes = render(sessions, wave_id, Kind.SORTING, Format.CSV).content
    assert csv_bytes.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    assert any(f"'{HOSTILE}" in row for row in rows)
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    book = openpyxl.load_workbook(
        io.BytesIO(render(sessions, wave_id, Kind.SORTING, Format.XLSX).content)
    )
    sheet = book.active
    cells = list(sheet.iter_rows(min_row=2))
    assert len(cells) == len(rows) - 1
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    point, phone, units = header.index("Pickup point"), header.index("Phone"), header.index("Units")
    hostile = [r[point] for r in cells if r[point].value == HOSTILE]
    assert hostile and all(c.data_type == "s" and c.quotePrefix for c in hostile)
    assert all(r[phone].data_type == "s" and "****" in r[phone].value for r in cells)
    assert all(r[units].data_type == "n" and r[units].value > 0 for r in cells)


def test_a_member_named_like_a_formula_is_text_after_masking(wave):
    """A member named =HYPERLINK(…) is masked to `=****…`, which still begins with `=`: the
    CSV writes it with a leading apostrophe."""
    sessions, wave_id = wave
    with session_scope(sessions) as s:
        member_id = s.scalars(
            select(Order.member_id).where(Order.wave_id == wave_id, Order.status == "placed")
        ).first()
        s.execute(update(Member).where(Member.id == member_id).values(name=HOSTILE))
    rows = list(
        csv.reader(
            io.StringIO(
                render(sessions, wave_id, Kind.SORTING, Format.CSV).content.decode("utf-8-sig")
            )
        )
    )
    members = {row[7] for row in rows[1:]}
    assert any(m.startswith("'=*") for m in members)
    assert not any(m.startswith("=") for m in members)


def test_warehouse_list_follows_the_bin_walk(wave):
    """Within a zone, bins in walking order: aisle letter, then bay and shelf as numbers."""
    sessions, wave_id = wave
    with session_scope(sessions) as s:
        rows = warehouse_picklist(s, s.get(Wave, wave_id)).rows
    for zone in {r.zone for r in rows}:
        bins = [r.bin_code for r in rows if r.zone == zone]
        assert bins == sorted(bins, key=bin_walk_key)
    assert sorted(["B-10-1", "B-9-2", "A-03-2"], key=bin_walk_key) == ["A-03-2", "B-9-2", "B-10-1"]


def test_purchase_list_groups_by_supplier(wave):
    """The purchase list (以销定采) has the demo's suppliers as groups, every SKU once."""
    sessions, wave_id = wave
    rows = list(
        csv.reader(
            io.StringIO(
                render(sessions, wave_id, Kind.PURCHASE, Format.CSV).content.decode("utf-8-sig")
            )
        )
    )
    suppliers = [r[0] for r in rows[1:]]
    assert "光明乳业" in suppliers and "思念食品" in suppliers
    skus = [r[1] for r in rows[1:]]
    assert len(skus) == len(set(skus))


def test_html_pages_have_print_css_and_masked_members(wave):
    """The HTML page of a station's sorting lists: a page per leader and repeated headers in
    its print CSS, masked phones, no full phone."""
    sessions, wave_id = wave
    html = render(sessions, wave_id, Kind.SORTING, Format.HTML).content.decode()
    assert "break-before:page" in html and "table-header-group" in html
    phones, codes, _points, _products = secrets_of(sessions, wave_id)
    assert not [p for p in phones if p in html]
    assert html.count('class="doc sorting-list"') >= 5


def test_a_wave_not_cut_off_prints_nothing(wave):
    """An open wave's documents are an error naming the missing cutoff, in every format."""
    sessions, wave_id = wave
    with session_scope(sessions) as s:
        cut = s.get(Wave, wave_id)
        open_wave = ensure_wave(s, cut.region, cut.delivery_date + timedelta(days=1)).id
    for kind, formats in FORMATS.items():
        for fmt in formats:
            with pytest.raises(NotPrintable) as err:
                render(sessions, open_wave, kind, fmt)
            assert err.value.missing == "cutoff"


def test_label_qr_codes_decode_to_crates_that_exist(wave, tmp_path):
    """Each label's QR code (pdftoppm at 200 dpi, decoded by zxing-cpp) carries `GBC:<id>` of
    a crate of the wave, the crate whose code the label prints."""
    import subprocess

    import zxingcpp
    from PIL import Image

    from fulfilment.waves.crates import Crate

    sessions, wave_id = wave
    content = render(sessions, wave_id, Kind.LABELS, Format.PDF).content
    (tmp_path / "labels.pdf").write_bytes(content)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "200",
            "-png",
            "-f",
            "1",
            "-l",
            "4",
            str(tmp_path / "labels.pdf"),
            str(tmp_path / "label"),
        ],
        check=True,
    )
    pages = pdf_pages_text(content)
    with session_scope(sessions) as s:
        codes = dict(s.execute(select(Crate.id, Crate.code).where(Crate.wave_id == wave_id)).all())
    pngs = sorted(tmp_path.glob("label-*.png"))
    assert len(pngs) == 4
    for n, png in enumerate(pngs):
        (found,) = zxingcpp.read_barcodes(Image.open(png))
        assert found.format == zxingcpp.BarcodeFormat.QRCode
        assert found.text.startswith("GBC:")
        crate_id = int(found.text.removeprefix("GBC:"))
        assert crate_id in codes
        assert codes[crate_id] in pages[n]


def test_labels_say_zone_load_and_n_of_n(wave):
    """A label prints the zone in words and as its Chinese mark, the LOAD number, n of N."""
    sessions, wave_id = wave
    first = pdf_pages_text(render(sessions, wave_id, Kind.LABELS, Format.PDF).content)[0]
    assert "LOAD" in first and " of " in first
    assert any(mark in first for mark in ("常温", "冷藏", "冷冻"))


@pytest.mark.parametrize("fmt", [Format.THERMAL80, Format.THERMAL58])
def test_thermal_labels_fit_the_roll(wave, fmt):
    """Crate labels on thermal rolls: no line wider than the roll, a ticket per crate with its
    QR payload."""
    sessions, wave_id = wave
    text = render(sessions, wave_id, Kind.LABELS, fmt).content.decode()
    assert check_width(text, WIDTHS[fmt.value]) == []
    assert text.count("\f") == text.count("QR:GBC:") > 10


def test_route_sheets_and_loading_list(wave):
    """Route sheets: one per route of the published plan, stops with ETAs and masked contact
    phones (never a leader's full phone); the loading list prints each route's crates by
    ascending LOAD number, which is the reverse of the stop order."""
    sessions, wave_id = wave
    text = pdf_text(render(sessions, wave_id, Kind.ROUTE_SHEETS, Format.PDF).content)
    with session_scope(sessions) as s:
        phones = set(s.scalars(select(Leader.phone)))
    assert not [p for p in phones if p in text]
    assert re.search(r"1\d\d\*\*\*\*\d{4}", text)
    rows = list(
        csv.reader(
            io.StringIO(
                render(sessions, wave_id, Kind.LOADING, Format.CSV).content.decode("utf-8-sig")
            )
        )
    )[1:]
    by_route: dict[str, list[tuple[int, int]]] = {}
    for route, load, _code, _zone, stop, _point in rows:
        by_route.setdefault(route, []).append((int(load), int(stop)))
    assert len(by_route) >= 2
    for loads in by_route.values():
        assert [lo for lo, _ in loads] == sorted(lo for lo, _ in loads)
        stops = [st for _, st in loads]
        assert stops == sorted(stops, reverse=True)  # the last stop's crates go in first


def test_no_published_plan_means_no_labels_nor_route_sheets(session):
    """A wave cut off but not planned: labels, route sheets and the loading list are an error
    naming the published plan; the pick lists still print."""
    from crate_factories import crate_wave

    _world, cut = crate_wave(session)
    for kind in (Kind.LABELS, Kind.ROUTE_SHEETS, Kind.LOADING):
        with pytest.raises(NotPrintable) as err:
            render_document(
                session, kind=kind, wave_id=cut.id, format=Format.PDF, _=str, locale="en"
            )
        assert err.value.missing == "published plan"
    assert render_document(
        session, kind=Kind.PICKLIST, wave_id=cut.id, format=Format.CSV, _=str, locale="en"
    ).content


def test_a_rare_character_is_printed_with_the_whole_font(wave):
    """A point name with a character outside GB 2312 (喆, 堃) still prints as that character:
    the document is drawn again with the whole CJK font instead of its cut-down copy."""
    sessions, wave_id = wave
    with session_scope(sessions) as s:
        leader = s.scalars(select(Leader).order_by(Leader.code.desc())).first()
        leader.pickup_name, code = "喆堃小区", leader.code
    try:
        rendered = render(sessions, wave_id, Kind.SORTING, Format.PDF)
        assert "喆堃小区" in pdf_text(rendered.content)
        assert all(embedded for _name, embedded in pdf_fonts(rendered.content))
    finally:
        with session_scope(sessions) as s:
            s.scalars(select(Leader).where(Leader.code == code)).one().pickup_name = "阳光花园"


# ---------------------------------------------------------------------------------------------
# ESC/POS: the thermal layouts as the bytes a Chinese warehouse printer prints

ZH = Translations.load(str(TRANSLATIONS), [CHINESE]).gettext
ESCPOS_OF = {Format.ESCPOS80: Format.THERMAL80, Format.ESCPOS58: Format.THERMAL58}


def printer_columns(text: str) -> int:
    """What the printer takes in Chinese mode: an ASCII character one column, any other (a
    GB18030 character, printed from the 24×24 font) two."""
    return sum(1 if ord(ch) < 0x80 else 2 for ch in text)


def assert_prints_on_the_roll(printout, width):
    """ESC @ first, Chinese mode on before any text, every line within the roll both by East
    Asian width and by the printer's own count, a double-size line counting double."""
    assert printout.commands[0] == "ESC @"
    assert printout.commands.index("FS &") < printout.commands.index("TEXT")
    lines = [line for t in printout.tickets for line in t.lines]
    too_wide = [
        line
        for line in lines
        if max(display_width(line.text), printer_columns(line.text)) * line.scale > width
    ]
    assert too_wide == []
    return lines


def words(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("fmt", [Format.ESCPOS80, Format.ESCPOS58])
def test_escpos_sorting_lists_print_the_thermal_layout(wave, fmt):
    """The sorting lists in ESC/POS: initialised, Chinese mode on, GB18030 text within the roll
    (the 50-character point name wrapped), the same words in the same order as the thermal
    text, a double-size heading per leader and one partial cut per leader; members masked, no
    full phone and no pickup code in the bytes."""
    sessions, wave_id = wave
    rendered = render(sessions, wave_id, Kind.SORTING, fmt, _=ZH)
    assert rendered.media_type == "application/octet-stream"
    assert rendered.filename.endswith(".prn")
    raw = rendered.content
    printout = read_escpos(raw)
    width = {Format.ESCPOS80: 48, Format.ESCPOS58: 32}[fmt]
    lines = assert_prints_on_the_roll(printout, width)
    thermal = render(sessions, wave_id, Kind.SORTING, ESCPOS_OF[fmt], _=ZH).content.decode()
    leaders = [t.split("\n")[0] for t in thermal.split("\f")[:-1]]
    assert len(leaders) >= 5 and all(h.startswith("分拣单 L") for h in leaders)
    assert printout.cuts == len(printout.tickets) == len(leaders)
    assert printout.commands.count("GS V 66 0") == len(leaders)
    assert [t.lines[0].text for t in printout.tickets] == leaders
    assert all(t.lines[0].scale == 2 and t.lines[0].bold for t in printout.tickets)
    decoded = "\n".join(line.text for line in lines)
    assert words(decoded) == words(thermal.replace("\f", ""))
    assert "阳光花园阳光花园" in decoded and "号袋" in decoded and "×" in decoded
    assert re.search(r"\d+号袋 \w\*", decoded)
    phones, codes, _points, _products = secrets_of(sessions, wave_id)
    assert not [p for p in phones if p.encode() in raw]
    assert not [c for c in codes if c.encode() in raw]


@pytest.mark.parametrize("fmt", [Format.ESCPOS80, Format.ESCPOS58])
def test_escpos_labels_carry_their_crates_qr_code(wave, fmt):
    """A crate label in ESC/POS: one ticket and one partial cut per crate of the wave, each with
    one QR code (GS ( k: model 2, module size, error correction M, stored with pL pH = length
    + 3, printed) carrying `GBC:<id>` of the crate whose code heads the label; the LOAD number
    double size; the words those of the thermal label."""
    sessions, wave_id = wave
    raw = render(sessions, wave_id, Kind.LABELS, fmt, _=ZH).content
    printout = read_escpos(raw)
    width = {Format.ESCPOS80: 48, Format.ESCPOS58: 32}[fmt]
    lines = assert_prints_on_the_roll(printout, width)
    with session_scope(sessions) as s:
        codes = dict(s.execute(select(Crate.id, Crate.code).where(Crate.wave_id == wave_id)).all())
    assert printout.cuts == len(printout.tickets) == len(codes) > 10
    seen = set()
    for ticket in printout.tickets:
        (payload,) = ticket.qrs
        crate_id = int(payload.removeprefix("GBC:"))
        assert payload == f"GBC:{crate_id}" and ticket.lines[0].text == codes[crate_id]
        seen.add(crate_id)
        length = len(payload) + 3
        stored = b"\x1d(k" + bytes([length % 256, length // 256]) + b"1P0" + payload.encode()
        assert stored + b"\x1d(k\x03\x001Q0" in raw
        (load,) = [line for line in ticket.lines if "装车" in line.text]
        assert load.scale == 2
    assert seen == set(codes)
    qr_commands = [c for c in printout.commands if c.startswith("GS ( k")]
    assert qr_commands == ["GS ( k 65", "GS ( k 67", "GS ( k 69", "GS ( k 80", "GS ( k 81"] * len(
        codes
    )
    assert b"\x1d(k\x03\x001E1" in raw  # error correction M
    thermal = render(sessions, wave_id, Kind.LABELS, ESCPOS_OF[fmt], _=ZH).content.decode()
    without_qr = re.sub(r"^QR:.*$", "", thermal.replace("\f", ""), flags=re.M)
    assert words("\n".join(line.text for line in lines)) == words(without_qr)
    with session_scope(sessions) as s:
        leaders = set(s.scalars(select(Leader.name))) | set(s.scalars(select(Leader.phone)))
    assert not [x for x in leaders if x.encode("gb18030") in raw]


def test_escpos_prints_no_command_from_a_name(wave):
    """A point name holding control characters (ESC i, a line feed, GS V) prints them as
    spaces, never as commands: the tickets and cuts stay one per leader; a character outside
    GBK (𠮷, four bytes in GB18030) prints as itself, two columns wide."""
    sessions, wave_id = wave
    with session_scope(sessions) as s:
        leader = s.scalars(select(Leader).order_by(Leader.code.desc())).first()
        leader.pickup_name, code = "𠮷野\x1bi家\n\x1dVB园\u200b", leader.code
    try:
        raw = render(sessions, wave_id, Kind.SORTING, Format.ESCPOS58, _=ZH).content
        thermal = render(sessions, wave_id, Kind.SORTING, Format.THERMAL58, _=ZH).content
    finally:
        with session_scope(sessions) as s:
            s.scalars(select(Leader).where(Leader.code == code)).one().pickup_name = "阳光花园"
    printout = read_escpos(raw)
    assert printout.cuts == thermal.count(b"\f")
    assert printout.commands.count("ESC i") == 0
    (ticket,) = [t for t in printout.tickets if t.lines[0].text.endswith(code)]
    assert ticket.lines[1].text == "𠮷野 i家  VB园"
    assert_prints_on_the_roll(printout, 32)


def test_printer_addresses():
    """`tcp://HOST[:PORT]` names a raw printer, port 9100 unless given, an IPv6 host in
    brackets; anything else is refused naming the printer's address."""
    assert parse_printer("tcp://10.0.8.21") == PrinterAddress("10.0.8.21", 9100)
    assert parse_printer("tcp://xp80.lan:9101") == PrinterAddress("xp80.lan", 9101)
    assert str(parse_printer("tcp://[fd00::7]")) == "tcp://[fd00::7]:9100"
    for bad in ("10.0.8.21", "http://10.0.8.21", "tcp://", "tcp://h:99999", "tcp://h/queue"):
        with pytest.raises(InvalidInput) as err:
            parse_printer(bad)
        assert (err.value.record, err.value.field) == ("printer", "address")
