"""Regions and the places in them: warehouses, grid stations, leaders' pickup points."""

from __future__ import annotations

from datetime import time

from geopy.distance import geodesic
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import GridStation, Leader, Region, check_coordinates


def get_region(session: Session, code: str) -> Region:
    region = session.scalar(select(Region).where(Region.code == code))
    if region is None:
        raise NotFound(f"region {code!r} does not exist")
    return region


def check_location(region: Region, record: str, lat: float, lon: float) -> None:
    """In range, and within the region's radius; a pair that fits only when swapped says so."""
    check_coordinates(record, lat, lon)
    centre = (region.lat, region.lon)
    km = geodesic(centre, (lat, lon)).km
    if km <= region.radius_km:
        return
    if -90 <= lon <= 90 and geodesic(centre, (lon, lat)).km <= region.radius_km:
        raise InvalidInput(record, "lat", f"latitude and longitude look swapped ({lat}, {lon})")
    raise InvalidInput(
        record,
        "lat",
        f"({lat}, {lon}) is {km:.0f} km from the centre of region "
        f"{region.code}, beyond its {region.radius_km:.0f} km radius",
    )


def add_leader(
    session: Session,
    *,
    region: Region,
    station: GridStation,
    code: str,
    name: str,
    phone: str,
    pickup_name: str,
    lat: float,
    lon: float,
    window_open: time = time(7, 0),
    window_close: time = time(11, 0),
    address: str = "",
    actor: str = "system",
) -> Leader:
    """A new leader with their pickup point, assigned to a grid station of the same region."""
    record = f"leader {code}"
    check_location(region, record, lat, lon)
    if station.region_id != region.id:
        raise InvalidInput(record, "station", f"station {station.code} is in another region")
    if window_close <= window_open:
        raise InvalidInput(record, "window_close", "the receiving window closes before it opens")
    leader = Leader(
        region_id=region.id,
        station_id=station.id,
        code=code,
        name=name,
        phone=phone,
        pickup_name=pickup_name,
        address=address,
        lat=lat,
        lon=lon,
        window_open=window_open,
        window_close=window_close,
    )
    session.add(leader)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="leader.added",
        entity="leader",
        entity_id=leader.id,
        after={"code": code, "station": station.code, "lat": lat, "lon": lon},
    )
    return leader
