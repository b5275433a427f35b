"""The admin's services for master data: each refusal names the record and field and writes
nothing; a change is audited with only what changed; the leader and product CSV imports are
all or nothing, and their dry run writes nothing."""

from datetime import time

import pytest
from factories import make_world
from sqlalchemy import func, select

from fulfilment.catalogue.imports import import_leaders, import_products
from fulfilment.catalogue.manage import save_product, save_region
from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import AuditEntry, Leader, Product, Region


def rows(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("tz", ["Asia/Shanghaii", "", "UTC+8", "../etc/passwd"])
def test_a_region_needs_a_real_time_zone(session, tz):
    """A time zone not in the IANA database is refused on the field `tz`; nothing is added."""
    with pytest.raises(InvalidInput) as refused:
        save_region(
            session,
            region=None,
            code="GZ",
            name="广州",
            tz=tz,
            delivery_offset_days=1,
            lat=23.1,
            lon=113.3,
            radius_km=60,
            actor="user:admin",
        )
    assert (refused.value.record, refused.value.field) == ("region GZ", "tz")
    assert rows(session, Region) == 0


def test_a_new_region_keeps_its_cutoff_time(session):
    """A region is created with its own cutoff time (no waves to move yet), audited."""
    region = save_region(
        session,
        region=None,
        code="GZ",
        name="广州",
        tz="Asia/Shanghai",
        delivery_offset_days=1,
        lat=23.1,
        lon=113.3,
        radius_km=60,
        cutoff_time=time(21, 30),
        actor="user:admin",
    )
    assert region.cutoff_time == time(21, 30)
    entry = session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.actor, entry.after["cutoff_time"]) == (
        "region.added",
        "user:admin",
        "21:30",
    )


def test_a_product_change_audits_only_what_changed(session):
    """Saving a product with one new value audits that value alone, before and after; saving
    it again unchanged audits nothing."""
    world = make_world(session)
    apple = world.products["APPLE"]
    values = dict(sku="APPLE", name="Apples 1kg", weight_g=1000, volume_ml=1500, zone="ambient")
    save_product(session, product=apple, bin_code="A-09-9", actor="user:admin", **values)
    save_product(session, product=apple, bin_code="A-09-9", actor="user:admin", **values)
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "product.changed"))
    assert (entry.before, entry.after) == ({"bin_code": "A-01-1"}, {"bin_code": "A-09-9"})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sku": "MILK"}, "sku"),
        ({"weight_g": 2_000_000}, "weight_g"),
        ({"zone": "tepid"}, "zone"),
        ({"bin_code": "A\x00"}, "bin_code"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_a_bad_product_is_refused_by_field(session, change, field):
    """A SKU taken, a weight beyond a tonne, an unknown zone, a control character or a name
    longer than its column: refused on that field, the product unchanged."""
    world = make_world(session)
    values = dict(
        sku="APPLE", name="Apples", weight_g=1000, volume_ml=1500, zone="ambient", bin_code="A"
    )
    with pytest.raises(InvalidInput) as refused:
        save_product(
            session, product=world.products["APPLE"], actor="user:admin", **{**values, **change}
        )
    assert refused.value.field == field
    assert session.get(Product, world.products["APPLE"].id).bin_code == "A-01-1"


LEADERS = (
    "code,station,name,phone,pickup_name,lat,lon\n"
    "L7,GS1,七号,13800000007,七号点,31.22,121.46\n"
    "L8,GS1,八号,13800000008,八号点,31.22,121.46\n"
)


def test_a_leaders_dry_run_writes_nothing(session):
    """The preview lists both rows as new and leaves no leader and no audit entry behind."""
    make_world(session)
    leaders, entries = rows(session, Leader), rows(session, AuditEntry)
    preview = import_leaders(session, text=LEADERS, actor="user:admin", dry_run=True)
    assert [(r.line, r.code, r.action) for r in preview.rows] == [
        (2, "L7", "add"),
        (3, "L8", "add"),
    ]
    assert preview.errors == []
    assert (rows(session, Leader), rows(session, AuditEntry)) == (leaders, entries)


def test_a_leaders_file_with_one_bad_row_writes_nothing(session):
    """One row with a window that closes before it opens: ImportFailed names its line and
    field, and the good row before it is not written either."""
    make_world(session)
    leaders = rows(session, Leader)
    bad = LEADERS.replace("L8,GS1,八号,13800000008,八号点,31.22,121.46", "L8,GS1,八号,1,八,31.22,x")
    with pytest.raises(ImportFailed) as refused:
        import_leaders(session, text=bad, actor="user:admin")
    assert [(e.line, e.field) for e in refused.value.errors] == [(3, "lon")]
    assert rows(session, Leader) == leaders


def test_a_products_file_adds_and_changes_by_sku(session):
    """A products file adds a new SKU and changes an existing one, each audited."""
    make_world(session)
    text = (
        "sku,name,weight_g,volume_ml,zone,bin_code\n"
        "PEAR,Pears,900,1200,ambient,A-02-1\n"
        "MILK,Milk 1L,1050,1000,chilled,B-09-9\n"
    )
    result = import_products(session, text=text, actor="user:admin")
    assert (result.added, result.changed) == (1, 1)
    assert session.scalar(select(Product.bin_code).where(Product.sku == "MILK")) == "B-09-9"
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "product").order_by(AuditEntry.id)
    ).all()
    assert actions == ["product.added", "product.changed"]


def test_a_products_file_sets_suppliers_and_its_preview_writes_nothing(session):
    """The optional supplier column: the preview shows it and writes nothing; the import sets
    it (an empty cell: none)."""
    make_world(session)
    text = (
        "sku,name,weight_g,volume_ml,zone,bin_code,supplier\n"
        "PEAR,Pears,900,1200,ambient,A-02-1,南汇果园\n"
        "PLUM,Plums,500,800,ambient,A-02-2,\n"
    )
    preview = import_products(session, text=text, actor="user:admin", dry_run=True)
    assert [(r.code, r.action, r.values["supplier"]) for r in preview.rows] == [
        ("PEAR", "add", "南汇果园"),
        ("PLUM", "add", ""),
    ]
    assert session.scalar(select(Product).where(Product.sku == "PEAR")) is None
    import_products(session, text=text, actor="user:admin")
    suppliers = dict(
        session.execute(
            select(Product.sku, Product.supplier).where(Product.sku.in_(["PEAR", "PLUM"]))
        ).all()
    )
    assert suppliers == {"PEAR": "南汇果园", "PLUM": None}


def test_a_file_with_a_wrong_header_is_refused_on_line_one(session):
    """A header without a required column: line 1, that column; nothing read."""
    with pytest.raises(ImportFailed) as refused:
        import_products(session, text="sku,name\nPEAR,Pears\n", actor="user:admin")
    assert [(e.line, e.field) for e in refused.value.errors] == [(1, "weight_g")]
