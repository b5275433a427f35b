"""The text check every import and the admin's services share (`core.csvimport.text_fault`)."""

import pytest
from factories import make_world

from fulfilment.catalogue.fleet import parse_fleet
from fulfilment.core.csvimport import ImportFailed, text_fault
from fulfilment.orders.importer import import_orders


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("张三\tB-01", None),
        ("Café №5 😀", None),
        ("a\x00b", "contains the control character U+0000"),
        ("a\nb", "contains the control character U+000A"),
        ("\x1b[31m", "contains the control character U+001B"),
        ("del\x7f", "contains the control character U+007F"),
        ("x\ud800", "contains the lone surrogate U+D800"),
    ],
)
def test_a_text_with_a_control_character_or_a_lone_surrogate_is_refused(text, fault):
    """Tab and any printable character pass; another control character (NUL above all) or a lone
    surrogate is named by its code point."""
    assert text_fault(text) == fault


def test_the_orders_import_and_the_fleet_file_refuse_a_nul_alike(session):
    """A NUL in an orders file's member name and in a fleet file's code: each import names the
    line and the field, with the same reason."""
    world = make_world(session)
    orders = (
        "订单号,下单时间,团长编号,会员编号,会员昵称,手机号,商品编码,数量\n"
        "A1,2026-03-09 20:15:00,L1,M1,张\x00三,13812345678,APPLE,2\n"
    )
    with pytest.raises(ImportFailed) as refused:
        import_orders(session, region=world.region, data=orders.encode())
    named = [(e.line, e.field, e.message) for e in refused.value.errors]
    assert (2, "member_name", "contains the control character U+0000") in named
    fleet = (
        "code,region,home,kind,weight_kg,volume_l,crates,zones,shift_start,shift_end\n"
        "T\x001,SH,WH1,trunk,5,30,600,ambient,03:00,09:00\n"
    )
    _, errors = parse_fleet(session, fleet)
    assert (2, "code", "contains the control character U+0000") in [
        (e.line, e.field, e.message) for e in errors
    ]
