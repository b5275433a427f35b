"""The master data an admin keeps: regions, the warehouse, grid stations, leaders with their
pickup points, products. Each `save_…` adds a record (no record given) or changes one, checks
every field first (InvalidInput naming the record and field; nothing written on a refusal) and
audits what changed, before and after. Nothing is deleted: a leader is deactivated.

A region's cutoff time is not changed here: `waves.deadlines.change_cutoff_time` moves the open
waves' deadlines with it.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.csvimport import text_fault
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import (
    Base,
    GridStation,
    Leader,
    Product,
    Region,
    TempZone,
    Warehouse,
    check_coordinates,
)

from .sites import add_leader, check_location

R = TypeVar("R", bound=Base)

MAX_RADIUS_KM = 500.0
MAX_OFFSET_DAYS = 7
MAX_WEIGHT_G = 1_000_000  # a tonne: no single SKU unit weighs more
MAX_VOLUME_ML = 10_000_000


def check_time_zone(record: str, tz: str) -> ZoneInfo:
    """An IANA time zone name (Asia/Shanghai), else InvalidInput on the field `tz`."""
    name = tz.strip()
    if not name or name not in available_timezones():
        raise InvalidInput(record, "tz", f"{tz!r} is not a time zone such as Asia/Shanghai")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            record, "tz", f"{tz!r} is not a time zone such as Asia/Shanghai"
        ) from None


def _plain(value: Any) -> Any:
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, StrEnum):
        return value.value
    return value


def _texts(record: str, model: type[Base], values: dict[str, str], *required: str) -> None:
    """Required texts given; every text fits its column and holds no control character."""
    for field in required:
        if not values.get(field):
            raise InvalidInput(record, field, "is required")
    for field, value in values.items():
        if fault := text_fault(value):
            raise InvalidInput(record, field, fault)
        width = getattr(model.__table__.c[field].type, "length", None)
        if width is not None and len(value) > width:
            raise InvalidInput(record, field, f"must be at most {width} characters", limit=width)


def _unique(
    session: Session, record: str, column: Any, value: str, own_id: int | None, field: str
) -> None:
    """No other row holds `value` in the unique `column`."""
    taken = session.scalar(select(column.class_.id).where(column == value))
    if taken is not None and taken != own_id:
        raise InvalidInput(record, field, f"{value!r} is already taken")


def _store(
    session: Session,
    *,
    record: R | None,
    new: type[R],
    values: dict[str, Any],
    entity: str,
    actor: str,
) -> R:
    """Add `new(**values)`, or set the values on `record`, auditing what changed."""
    if record is None:
        created = new(**values)
        session.add(created)
        session.flush()
        record_change(
            session,
            actor=actor,
            action=f"{entity}.added",
            entity=entity,
            entity_id=created.id,  # type: ignore[attr-defined]
            after={k: _plain(v) for k, v in values.items()},
        )
        return created
    before = {k: _plain(getattr(record, k)) for k in values}
    after = {k: _plain(v) for k, v in values.items()}
    changed = [k for k in values if before[k] != after[k]]
    if changed:
        for key in changed:
            setattr(record, key, values[key])
        session.flush()
        record_change(
            session,
            actor=actor,
            action=f"{entity}.changed",
            entity=entity,
            entity_id=record.id,  # type: ignore[attr-defined]
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return record


def save_region(
    session: Session,
    *,
    region: Region | None,
    code: str,
    name: str,
    tz: str,
    delivery_offset_days: int,
    lat: float,
    lon: float,
    radius_km: float,
    cutoff_time: time | None = None,
    actor: str,
) -> Region:
    """A region: its code, name, time zone, delivery offset and centre with its radius. The
    cutoff time is given only for a new region (a region's waves move with it otherwise)."""
    record = f"region {code or (region.code if region else '')}"
    texts = {"code": code.strip(), "name": name.strip(), "tz": tz.strip()}
    _texts(record, Region, texts, "code", "name", "tz")
    check_time_zone(record, tz)
    check_coordinates(record, lat, lon)
    if not 0 <= delivery_offset_days <= MAX_OFFSET_DAYS:
        raise InvalidInput(
            record, "delivery_offset_days", f"must be 0 to {MAX_OFFSET_DAYS} days", limit=7
        )
    if not 0 < radius_km <= MAX_RADIUS_KM:
        raise InvalidInput(record, "radius_km", f"must be above 0 and at most {MAX_RADIUS_KM:g} km")
    _unique(session, record, Region.code, texts["code"], region.id if region else None, "code")
    values: dict[str, Any] = dict(texts)
    values.update(delivery_offset_days=delivery_offset_days, lat=lat, lon=lon, radius_km=radius_km)
    if region is None:
        values["cutoff_time"] = cutoff_time or time(23, 0)
    return _store(session, record=region, new=Region, values=values, entity="region", actor=actor)


def save_warehouse(
    session: Session,
    *,
    warehouse: Warehouse | None,
    region: Region,
    code: str,
    name: str,
    lat: float,
    lon: float,
    actor: str,
) -> Warehouse:
    """A region's central warehouse (中心仓), within the region's radius."""
    record = f"warehouse {code}"
    values: dict[str, Any] = {"code": code.strip(), "name": name.strip()}
    _texts(record, Warehouse, values, "code", "name")
    check_location(region, record, lat, lon)
    _unique(session, record, Warehouse.code, values["code"], getattr(warehouse, "id", None), "code")
    values.update(region_id=region.id, lat=lat, lon=lon)
    return _store(
        session, record=warehouse, new=Warehouse, values=values, entity="warehouse", actor=actor
    )


def save_station(
    session: Session,
    *,
    station: GridStation | None,
    warehouse: Warehouse,
    code: str,
    name: str,
    lat: float,
    lon: float,
    actor: str,
) -> GridStation:
    """A grid station (网格站), supplied by a warehouse of its region."""
    record = f"station {code}"
    values: dict[str, Any] = {"code": code.strip(), "name": name.strip()}
    _texts(record, GridStation, values, "code", "name")
    region = session.get_one(Region, warehouse.region_id)
    check_location(region, record, lat, lon)
    _unique(session, record, GridStation.code, values["code"], getattr(station, "id", None), "code")
    values.update(region_id=region.id, warehouse_id=warehouse.id, lat=lat, lon=lon)
    return _store(
        session, record=station, new=GridStation, values=values, entity="station", actor=actor
    )


def save_leader(
    session: Session,
    *,
    leader: Leader | None,
    station: GridStation,
    code: str,
    name: str,
    phone: str,
    pickup_name: str,
    address: str,
    lat: float,
    lon: float,
    window_open: time,
    window_close: time,
    active: bool = True,
    actor: str,
) -> Leader:
    """A leader (团长) with their pickup point: coordinates within the region, a receiving window
    that opens before it closes, a grid station of the region. Their region is the station's."""
    record = f"leader {code}"
    values: dict[str, Any] = {
        "code": code.strip(),
        "name": name.strip(),
        "phone": phone.strip(),
        "pickup_name": pickup_name.strip(),
    }
    _texts(
        record,
        Leader,
        {**values, "address": address.strip()},
        "code",
        "name",
        "phone",
        "pickup_name",
    )
    _unique(session, record, Leader.code, values["code"], getattr(leader, "id", None), "code")
    region = session.get_one(Region, station.region_id)
    if leader is None:
        return add_leader(
            session,
            region=region,
            station=station,
            lat=lat,
            lon=lon,
            window_open=window_open,
            window_close=window_close,
            address=address.strip(),
            actor=actor,
            **values,
        )
    if leader.region_id != region.id:
        raise InvalidInput(record, "station", f"station {station.code} is in another region")
    check_location(region, record, lat, lon)
    if window_close <= window_open:
        raise InvalidInput(record, "window_close", "the receiving window closes before it opens")
    values.update(
        station_id=station.id,
        address=address.strip(),
        lat=lat,
        lon=lon,
        window_open=window_open,
        window_close=window_close,
        active=active,
    )
    return _store(session, record=leader, new=Leader, values=values, entity="leader", actor=actor)


def save_product(
    session: Session,
    *,
    product: Product | None,
    sku: str,
    name: str,
    weight_g: int,
    volume_ml: int,
    zone: TempZone | str,
    bin_code: str,
    actor: str,
    supplier: str | None = None,
) -> Product:
    """A SKU: its weight and volume per unit, temperature zone, warehouse bin (A-03-2) and, where
    given, its supplier (the purchase list groups by it; empty clears it, None keeps it)."""
    record = f"product {sku}"
    values: dict[str, Any] = {
        "sku": sku.strip(),
        "name": name.strip(),
        "bin_code": bin_code.strip(),
    }
    if supplier is not None:
        values["supplier"] = supplier.strip()
    _texts(record, Product, values, "sku", "name", "bin_code")
    if supplier is not None:
        values["supplier"] = values["supplier"] or None
    try:
        values["zone"] = TempZone(zone)
    except ValueError:
        raise InvalidInput(record, "zone", f"{zone!r}: ambient, chilled or frozen") from None
    if not 0 <= weight_g <= MAX_WEIGHT_G:
        raise InvalidInput(record, "weight_g", f"must be 0 to {MAX_WEIGHT_G} g", limit=MAX_WEIGHT_G)
    if not 0 <= volume_ml <= MAX_VOLUME_ML:
        raise InvalidInput(
            record, "volume_ml", f"must be 0 to {MAX_VOLUME_ML} ml", limit=MAX_VOLUME_ML
        )
    _unique(session, record, Product.sku, values["sku"], getattr(product, "id", None), "sku")
    values.update(weight_g=weight_g, volume_ml=volume_ml)
    return _store(
        session, record=product, new=Product, values=values, entity="product", actor=actor
    )
