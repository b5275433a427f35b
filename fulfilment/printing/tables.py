"""Every list as rows for CSV (UTF-8 with BOM) and XLSX, through fulfilment.core.sheets: a cell
a spreadsheet would run as a formula is written as text; codes and phone tails are text cells,
quantities and weights numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fulfilment.core.sheets import Cell

from .documents import Labels, PickList, PurchaseList, RouteSheet, SortingSheet
from .words import Gettext, local_clock, zone_words


@dataclass(frozen=True, slots=True)
class Table:
    title: str  # the XLSX sheet's name
    header: list[str]
    rows: list[list[Cell]]


def picklist_tables(lists: Sequence[PickList], *, _: Gettext) -> list[Table]:
    header = [
        _("Station"),
        _("Bin"),
        "SKU",
        _("Product"),
        _("Zone"),
        _("Units"),
        _("Weight (kg)"),
        _("Check"),
    ]
    rows: list[list[Cell]] = [
        [
            pl.station_code or "",
            r.bin_code,
            r.sku,
            r.name,
            zone_words(_, r.zone),
            r.quantity,
            round(r.weight_g / 1000, 3),
            "",
        ]
        for pl in lists
        for r in pl.rows
    ]
    return [Table(_("Pick list"), header, rows)]


def sorting_tables(sheets: Sequence[SortingSheet], *, _: Gettext) -> list[Table]:
    header = [
        _("Station"),
        _("Leader code"),
        _("Pickup point"),
        _("Leader"),
        _("Crate"),
        _("Zone"),
        _("Bag"),
        _("Member"),
        _("Phone"),
        "SKU",
        _("Product"),
        _("Units"),
    ]
    rows: list[list[Cell]] = []
    for s in sheets:
        for crate in s.crates:
            for bag in crate.bags:
                for line in bag.lines:
                    rows.append(
                        [
                            s.station_code,
                            s.leader_code,
                            s.pickup_name,
                            s.leader,
                            crate.code or "",
                            zone_words(_, crate.zone),
                            bag.bag_no,
                            bag.member,
                            bag.phone,
                            line.sku,
                            line.name,
                            line.quantity,
                        ]
                    )
    return [Table(_("Sorting lists"), header, rows)]


def purchase_tables(doc: PurchaseList, *, _: Gettext) -> list[Table]:
    header = [_("Supplier"), "SKU", _("Product"), _("Zone"), _("Units"), _("Weight (kg)")]
    rows: list[list[Cell]] = [
        [
            g.supplier or _("No supplier"),
            r.sku,
            r.name,
            zone_words(_, r.zone),
            r.quantity,
            round(r.weight_g / 1000, 3),
        ]
        for g in doc.groups
        for r in g.rows
    ]
    return [Table(_("Purchase list"), header, rows)]


def label_tables(doc: Labels, *, _: Gettext) -> list[Table]:
    header = [
        _("Crate"),
        "QR",
        _("Zone"),
        _("n of N"),
        _("Station"),
        _("Route"),
        _("Stop"),
        _("LOAD"),
        _("Pickup point"),
        _("Leader"),
    ]
    rows: list[list[Cell]] = [
        [
            c.code,
            c.qr,
            zone_words(_, c.zone.value),
            f"{c.seq}/{c.of_n}",
            c.station_code,
            c.vehicle_code or "",
            c.stop_no,
            c.load_seq,
            c.pickup_name,
            c.leader_masked,
        ]
        for c in doc.crates
    ]
    return [Table(_("Crate labels"), header, rows)]


def route_tables(sheets: Sequence[RouteSheet], *, _: Gettext, locale: str) -> list[Table]:
    header = [
        _("Route"),
        _("Stop"),
        _("ETA"),
        _("Point"),
        _("Address"),
        _("Contact"),
        _("Ambient"),
        _("Chilled"),
        _("Frozen"),
        _("Crates"),
    ]
    rows: list[list[Cell]] = []
    for r in sheets:
        for st in r.stops:
            n = {
                z: sum(1 for c in st.crates if c.zone.value == z)
                for z in ("ambient", "chilled", "frozen")
            }
            rows.append(
                [
                    r.vehicle_code,
                    st.seq,
                    local_clock(st.eta, r.heading.tz, locale),
                    f"{st.place_code} {st.name}",
                    st.address,
                    st.contact,
                    n["ambient"],
                    n["chilled"],
                    n["frozen"],
                    " ".join(c.code for c in st.crates),
                ]
            )
    return [Table(_("Driver route sheets"), header, rows)]


def loading_tables(sheets: Sequence[RouteSheet], *, _: Gettext) -> list[Table]:
    header = [_("Route"), _("LOAD"), _("Crate"), _("Zone"), _("Stop"), _("Point")]
    rows: list[list[Cell]] = []
    for r in sheets:
        stop_of = {c.id: (s.seq, f"{s.place_code} {s.name}") for s in r.stops for c in s.crates}
        for load, c in r.crates_in_load_order:
            seq, place = stop_of[c.id]
            rows.append([r.vehicle_code, load, c.code, zone_words(_, c.zone.value), seq, place])
    return [Table(_("Loading list"), header, rows)]
