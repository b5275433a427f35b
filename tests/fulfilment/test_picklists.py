"""Reading pick lists: warehouse walk order, per-station lists, per-leader sorting lists masked."""

from factories import DELIVERY, make_world

from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.picklists import list_sorting_lists, list_station_picks, list_warehouse_picks


def test_three_levels_read_back_with_member_lines_masked(session):
    """Warehouse rows follow zone then bin; stations and leaders get their own goods; members are masked."""
    world = make_world(session, leaders=2, stations=2)
    place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("M1", "张小明", "13812345678"),
        lines=[LineRequest("APPLE", 2), LineRequest("PRAWN", 1)],
        placed_at=world.before_cutoff(),
    )
    place_order(
        session,
        region=world.region,
        leader_code="L2",
        member=MemberRef("M2", "Alice", "13900001111"),
        lines=[LineRequest("MILK", 3)],
        placed_at=world.before_cutoff(),
    )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )

    warehouse = list_warehouse_picks(session, wave)
    assert [(r.zone, r.bin_code, r.quantity) for r in warehouse] == [
        ("ambient", "A-01-1", 2),
        ("chilled", "B-02-1", 3),
        ("frozen", "C-01-3", 1),
    ]
    stations = list_station_picks(session, wave)
    assert {code: [r.sku for r in rows] for code, rows in stations.items()} == {
        "GS1": ["APPLE", "PRAWN"],
        "GS2": ["MILK"],
    }

    [first] = list_sorting_lists(session, wave, leader_code="L1")
    assert [(r.sku, r.quantity) for r in first.rows] == [("APPLE", 2), ("PRAWN", 1)]
    assert {(m.member, m.phone, m.sku) for m in first.members} == {
        ("张**", "138****5678", "APPLE"),
        ("张**", "138****5678", "PRAWN"),
    }
    assert {m.bag_no for m in first.members} == {1}  # one order, bag 1 at its point
    assert not any(hasattr(m, "pickup_code") for m in first.members)  # the member's secret
    by_station = list_sorting_lists(session, wave, station_code="GS2")
    assert [s.leader_code for s in by_station] == ["L2"] and by_station[0].members[
        0
    ].member == "A****"
