"""The fleet: CSV import all-or-nothing with errors by line and field; the demo city's fleet."""

from datetime import time

import pytest
from factories import make_world
from sqlalchemy import func, select

from fulfilment.catalogue.fleet import (
    Vehicle,
    VehicleKind,
    import_fleet,
    list_vehicles,
    routing_vehicle,
)
from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.models import AuditEntry, GridStation
from fulfilment.demo.city import build_demo

HEADER = (
    "code,region,home,kind,weight_kg,volume_l,crates,zones,shift_start,shift_end,"
    "max_hours,break_earliest,break_latest,break_minutes,speed_kmh,profile,fixed_cost,active\n"
)


def test_a_fleet_file_is_imported_with_units_converted(session):
    """Kilograms, litres, yuan and local shift times become grams, millilitres, cents, times."""
    world = make_world(session)
    report = import_fleet(
        session,
        text=HEADER
        + "T-COLD,SH,WH1,trunk,4.5,28,500,ambient|chilled|frozen,03:00,09:30,6,,,,40,truck,800.50,yes\n"
        + "V-1,SH,GS1,last_mile,1,6,120,ambient,05:30,13:00,,10:00,11:00,30,25,,200,no\n",
    )
    assert (report.added, report.updated) == (2, 0)
    truck = session.scalars(select(Vehicle).where(Vehicle.code == "T-COLD")).one()
    assert (truck.capacity_weight_g, truck.capacity_volume_ml, truck.capacity_crates) == (
        4500,
        28000,
        500,
    )
    assert truck.zones == "ambient,chilled,frozen" and truck.fixed_cost_cents == 80050
    assert truck.warehouse_id is not None and truck.max_duration_s == 6 * 3600
    van = session.scalars(select(Vehicle).where(Vehicle.code == "V-1")).one()
    assert van.station_id == world.station.id and not van.active
    assert (van.break_earliest, van.break_latest, van.break_s) == (time(10), time(11), 1800)
    assert list_vehicles(session, region=world.region) == [truck]  # inactive ones are left out
    planned = routing_vehicle(van, depot_id="GS1")
    assert planned.break_ is not None and planned.break_.duration_s == 1800
    assert planned.shift_start_s == 5 * 3600 + 1800


def test_a_bad_fleet_file_imports_nothing_and_names_every_line_and_field(session):
    """One good row and three bad ones: nothing is written, each error names its line and field."""
    make_world(session)
    text = (
        HEADER
        + "T1,SH,WH1,trunk,5,30,600,ambient,03:00,09:00,,,,,,,,\n"
        + "T2,SH,GS1,trunk,5,30,600,ambient,03:00,09:00,,,,,,,,\n"
        + "V1,SH,GS1,last_mile,heavy,6,120,ambient,05:00,13:00,,,,,,,,\n"
        + "V2,SH,GS1,last_mile,1,6,120,arctic,13:00,05:00,,,,,,,,\n"
    )
    with pytest.raises(ImportFailed) as failed:
        import_fleet(session, text=text)
    found = {(e.line, e.field) for e in failed.value.errors}
    assert {(3, "home"), (4, "weight_kg"), (5, "zones"), (5, "shift_end")} <= found
    assert session.scalar(select(func.count()).select_from(Vehicle)) == 0


def test_importing_again_updates_by_code_and_audits_the_change(session):
    """A second file with the same code changes that vehicle (audited) instead of adding one."""
    make_world(session)
    row = "V1,SH,GS1,last_mile,1,6,120,ambient,05:00,13:00,,,,,,,,\n"
    import_fleet(session, text=HEADER + row)
    report = import_fleet(session, text=HEADER + row.replace("ambient", "ambient+frozen"))
    assert (report.added, report.updated) == (0, 1)
    assert session.scalars(select(Vehicle)).one().zones == "ambient,frozen"
    change = session.scalars(select(AuditEntry).where(AuditEntry.action == "vehicle.changed")).one()
    assert change.before["zones"] == "ambient" and change.after["zones"] == "ambient,frozen"


def test_the_demo_city_has_cold_and_ambient_trucks_and_vans_at_every_station(session):
    """Refrigerated and ambient trucks at the warehouse; every station has vans, some cold."""
    summary = build_demo(session, leaders=60, orders=200)
    from fulfilment.catalogue.sites import get_region

    region = get_region(session, summary.region_code)
    trucks = list_vehicles(session, region=region, kind=VehicleKind.TRUNK)
    vans = list_vehicles(session, region=region, kind=VehicleKind.LAST_MILE)
    assert {t.zones for t in trucks} == {"ambient", "ambient,chilled,frozen"}
    stations = session.scalars(select(GridStation.id)).all()
    assert {v.station_id for v in vans} == set(stations)
    assert all(any("frozen" in v.zones for v in vans if v.station_id == s) for s in stations)
