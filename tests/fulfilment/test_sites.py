"""Locations: coordinates in range, a swapped latitude/longitude caught, errors naming the record."""

import pytest
from factories import make_world
from sqlalchemy import select

from fulfilment.catalogue.sites import add_leader
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import AuditEntry, Leader, Warehouse


def new_leader(session, world, **kw):
    args = {
        "code": "L99",
        "name": "王芳",
        "phone": "13800000000",
        "pickup_name": "阳光花园 3号楼",
        "lat": 31.25,
        "lon": 121.50,
    }
    args.update(kw)
    return add_leader(session, region=world.region, station=world.station, **args)


def test_a_leader_is_added_with_an_audit_entry(session):
    """A valid pickup point is stored and its creation audited."""
    world = make_world(session)
    leader = new_leader(session, world)
    assert session.get(Leader, leader.id).pickup_name == "阳光花园 3号楼"
    assert session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "leader")
    ).all() == ["leader.added"]


@pytest.mark.parametrize(
    ("lat", "lon", "field", "words"),
    [
        (91.0, 121.5, "lat", "outside -90..90"),
        (31.2, 181.0, "lon", "outside -180..180"),
        (121.47, 31.23, "lat", "outside -90..90"),  # swapped and impossible
        (31.23, -121.47, "lat", "beyond its 80 km radius"),
    ],
)
def test_bad_coordinates_name_the_leader_and_field(session, lat, lon, field, words):
    """Out-of-range or far-away coordinates are refused naming the leader and the field."""
    world = make_world(session)
    with pytest.raises(InvalidInput) as err:
        new_leader(session, world, lat=lat, lon=lon)
    assert err.value.record == "leader L99" and err.value.field == field and words in str(err.value)


def test_a_swapped_pair_that_is_possible_is_still_caught(session):
    """In a region near the equator, (lon, lat) given as (lat, lon) is in range but caught as swapped."""
    world = make_world(session)
    world.region.lat, world.region.lon = 1.35, 10.0  # a centre where the swapped pair stays valid
    with pytest.raises(InvalidInput, match="look swapped"):
        new_leader(session, world, lat=10.01, lon=1.36)


def test_window_must_close_after_it_opens(session):
    """A receiving window that closes before it opens is refused naming the field."""
    from datetime import time

    world = make_world(session)
    with pytest.raises(InvalidInput) as err:
        new_leader(session, world, window_open=time(11, 0), window_close=time(7, 0))
    assert err.value.field == "window_close"


def test_model_rejects_out_of_range_coordinates():
    """Any located row validates on assignment, naming its code and the field."""
    with pytest.raises(InvalidInput) as err:
        Warehouse(code="WH9", name="x", region_id=1, lat=12.0, lon=200.0)
    assert err.value.field == "lon" and "WH9" in err.value.record
