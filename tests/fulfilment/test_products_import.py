"""`groupbuy import-products`: products and their optional supplier from a CSV file, added or
updated by SKU, all of the file or nothing, audited."""

import pytest
from factories import make_world
from sqlalchemy import select

from fulfilment.catalogue.products import import_products
from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.models import AuditEntry, Product

HEADER = "sku,name,weight_g,volume_ml,zone,bin_code,supplier\n"


def test_import_adds_and_updates_products_with_their_supplier(session):
    """A new SKU is added with its supplier; a known one gets the supplier it did not have;
    an empty supplier is none; each change is audited."""
    world = make_world(session)
    known = next(iter(world.products.values()))
    text = HEADER + (
        "NEW-1,鲜鸡蛋 10枚,600,900,chilled,B-02-1,光明乳业\n"
        f"{known.sku},{known.name},{known.weight_g},{known.volume_ml},{known.zone.value},"
        f"{known.bin_code},南汇果园\n"
        "NEW-2,抽纸,2400,12000,ambient,C-01-1,\n"
    )
    report = import_products(session, text=text, actor="tester")
    assert (report.added, report.updated) == (2, 1)
    suppliers = dict(session.execute(select(Product.sku, Product.supplier)).all())
    assert suppliers["NEW-1"] == "光明乳业" and suppliers[known.sku] == "南汇果园"
    assert suppliers["NEW-2"] is None
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "tester")).all()
    assert sorted(actions) == ["product.added", "product.added", "product.changed"]
    again = import_products(session, text=text, actor="tester")
    assert (again.added, again.updated) == (0, 0)


def test_a_bad_row_imports_nothing_and_names_line_and_field(session):
    """A bad zone on line 3 and a duplicate SKU: nothing is imported, each error names its line
    and field."""
    make_world(session)
    text = HEADER + (
        "OK-1,好,1,1,ambient,A-01-1,\nBAD-1,坏,1,1,warm,A-01-2,\nOK-1,again,1,1,ambient,A-01-1,\n"
    )
    with pytest.raises(ImportFailed) as err:
        import_products(session, text=text)
    assert [(e.line, e.field) for e in err.value.errors] == [(3, "zone"), (4, "sku")]
    assert session.scalar(select(Product).where(Product.sku == "OK-1")) is None


def test_the_command_checks_a_file_as_the_admins_import_does(session):
    """The command's file goes through the admin's checks: a control character in a name and a
    weight beyond a tonne are refused by line and field, and nothing is written."""
    make_world(session)
    text = HEADER + "OK-2,好,1,1,ambient,A-01-1,\nBAD-2,坏\x07,1,1,ambient,A-01-2,\n"
    text += "BAD-3,重,2000000,1,ambient,A-01-3,\n"
    with pytest.raises(ImportFailed) as err:
        import_products(session, text=text)
    assert [(e.line, e.field) for e in err.value.errors] == [(3, "name"), (4, "weight_g")]
    assert session.scalar(select(Product).where(Product.sku == "OK-2")) is None


def test_a_file_without_the_supplier_column_keeps_the_suppliers(session):
    """A file with no supplier column changes the other values and leaves suppliers as they
    are; a file with an empty supplier cell clears it."""
    world = make_world(session)
    known = next(iter(world.products.values()))
    known.supplier = "南汇果园"
    session.flush()
    row = (
        f"{known.sku},新名字,{known.weight_g},{known.volume_ml},{known.zone.value},{known.bin_code}"
    )
    report = import_products(session, text=HEADER.replace(",supplier", "") + row + "\n")
    assert (report.added, report.updated) == (0, 1)
    assert (known.name, known.supplier) == ("新名字", "南汇果园")
    report = import_products(session, text=HEADER + row + ",\n")
    assert (report.added, report.updated) == (0, 1)
    assert known.supplier is None
