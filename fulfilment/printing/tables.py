"""Every list as rows for CSV (UTF-8 with BOM) and XLSX, through fulfilment.core.sheets: a cell
a spreadsheet would run as a formula is written as text; codes and phone tails are text cells,
quantities and weights numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fulfilment.core.sheets import Cell

from .documents import PickList, PurchaseList, SortingSheet
from .words import Gettext, zone_words


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
