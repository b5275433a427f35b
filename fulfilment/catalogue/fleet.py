"""The fleet: trunk trucks at the warehouse and last-mile vans at the grid stations.

Vehicles are imported from a CSV file (all-or-nothing, every bad row named by line and field)
or built for the demo city; `routing_vehicle` turns one into the planner's plain `Vehicle`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from fulfilment.core.audit import record_change
from fulfilment.core.csvimport import (
    ImportFailed,
    ImportPreview,
    PreviewRow,
    RowError,
    decode,
    text_fault,
)
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import (
    Base,
    GridStation,
    Region,
    TempZone,
    Warehouse,
    _enum,
)

if TYPE_CHECKING:  # the planner (OR-Tools) is loaded only where routes are planned
    import routing


class VehicleKind(StrEnum):
    TRUNK = "trunk"  # warehouse → grid stations
    LAST_MILE = "last_mile"  # grid station → pickup points


class Vehicle(Base):
    """One vehicle and its driver's day: where it is based, what it carries, when it works."""

    __tablename__ = "vehicle"
    __table_args__ = (
        CheckConstraint("(warehouse_id IS NULL) <> (station_id IS NULL)", name="one_home"),
        CheckConstraint(
            "capacity_weight_g >= 0 AND capacity_volume_ml >= 0 AND capacity_crates >= 0",
            name="capacity_nonneg",
        ),
        CheckConstraint("shift_end > shift_start", name="shift_order"),
        CheckConstraint("speed_kmh > 0", name="speed_pos"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[VehicleKind] = mapped_column(_enum(VehicleKind))
    # Home: the warehouse (trunk) or a grid station (last mile); exactly one is set.
    warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("warehouse.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"), index=True)
    capacity_weight_g: Mapped[int]
    capacity_volume_ml: Mapped[int]
    capacity_crates: Mapped[int]
    # Temperature zones equipped, e.g. "ambient,chilled,frozen" (readable in the database).
    zones: Mapped[str] = mapped_column(String(64), default="ambient")
    # The shift in local wall-clock time on the delivery day.
    shift_start: Mapped[time]
    shift_end: Mapped[time]
    max_duration_s: Mapped[int | None]
    break_earliest: Mapped[time | None]
    break_latest: Mapped[time | None]
    break_s: Mapped[int | None]
    speed_kmh: Mapped[float] = mapped_column(default=30.0)
    profile: Mapped[str] = mapped_column(String(32), default="van")
    fixed_cost_cents: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)

    @property
    def zone_set(self) -> frozenset[TempZone]:
        return frozenset(TempZone(z) for z in self.zones.split(",") if z)


def list_vehicles(
    session: Session, *, region: Region, kind: VehicleKind | None = None, active: bool = True
) -> list[Vehicle]:
    query = select(Vehicle).where(Vehicle.region_id == region.id).order_by(Vehicle.code)
    if kind is not None:
        query = query.where(Vehicle.kind == kind)
    if active:
        query = query.where(Vehicle.active.is_(True))
    return list(session.scalars(query))


# ---------------------------------------------------------------------------------------------
# CSV import

FLEET_COLUMNS = (
    "code",
    "region",
    "home",
    "kind",
    "weight_kg",
    "volume_l",
    "crates",
    "zones",
    "shift_start",
    "shift_end",
    "max_hours",
    "break_earliest",
    "break_latest",
    "break_minutes",
    "speed_kmh",
    "profile",
    "fixed_cost",
    "active",
)
FLEET_REQUIRED = (
    "code",
    "region",
    "home",
    "kind",
    "weight_kg",
    "volume_l",
    "crates",
    "zones",
    "shift_start",
    "shift_end",
)


@dataclass(frozen=True, slots=True)
class FleetReport:
    added: int
    updated: int


# The largest value each number may take: what a driver's day can need, well inside the
# columns (32-bit integers once in grams, millilitres, seconds and cents).
LARGEST: dict[str, int] = {
    "weight_kg": 100_000,
    "volume_l": 500_000,
    "crates": 100_000,
    "max_hours": 24,
    "break_minutes": 24 * 60,
    "speed_kmh": 200,
    "fixed_cost": 1_000_000,
}
# The longest text each column holds.
WIDEST: dict[str, int] = {"code": 32, "profile": 32}


def _decimal(value: str, field: str, line: int, errors: list[RowError], *, places: int) -> Decimal:
    largest = LARGEST[field]
    text = value.strip()
    try:
        number = Decimal(text) if text.isascii() else Decimal("NaN")
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        errors.append(RowError(line, field, f"{value!r} is not a number"))
        return Decimal(0)
    if number < 0 or number > largest:
        errors.append(RowError(line, field, f"{value!r} is not between 0 and {largest}", largest))
        return Decimal(0)
    if number != number.quantize(Decimal(1).scaleb(-places)):
        errors.append(RowError(line, field, f"{value!r} has more than {places} decimals"))
    return number


def _clock(value: str, field: str, line: int, errors: list[RowError]) -> time | None:
    try:
        moment = time.fromisoformat(value.strip())
    except ValueError:
        errors.append(RowError(line, field, f"{value!r} is not a time HH:MM"))
        return None
    if moment.tzinfo is not None:  # a shift is the region's wall clock, never an offset
        errors.append(RowError(line, field, f"{value!r}: a time HH:MM without an offset"))
        return None
    return moment


def parse_fleet(session: Session, text: str) -> tuple[list[dict], list[RowError]]:
    """The rows of a fleet file as column values, and every error found (line and field)."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in FLEET_REQUIRED if c not in header]
    if missing:
        return [], [RowError(1, missing[0], f"missing column(s) {', '.join(missing)}")]
    unknown = [h for h in header if h not in FLEET_COLUMNS]
    if unknown:
        return [], [RowError(1, unknown[0], f"unknown column; expected {', '.join(FLEET_COLUMNS)}")]
    regions = {r.code: r for r in session.scalars(select(Region))}
    warehouses = {w.code: w for w in session.scalars(select(Warehouse))}
    stations = {s.code: s for s in session.scalars(select(GridStation))}
    rows: list[dict] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if not any(cell.strip() for cell in raw):
            continue
        if len(raw) > len(header):
            errors.append(
                RowError(
                    line,
                    "row",
                    f"{len(raw)} cells, more than the header's {len(header)}",
                    len(header),
                )
            )
            continue
        cells = dict(zip(header, (c.strip() for c in raw), strict=False))
        before = len(errors)
        for col, value in cells.items():
            if fault := text_fault(value):
                errors.append(RowError(line, col, fault))
        for col, width in WIDEST.items():
            if len(cells.get(col) or "") > width:
                errors.append(
                    RowError(line, col, f"{len(cells[col])} characters, longer than {width}", width)
                )
        for col in FLEET_REQUIRED:
            if not cells.get(col):
                errors.append(RowError(line, col, "required"))
        if len(errors) > before:
            continue
        code = cells["code"]
        if code in seen:
            errors.append(RowError(line, "code", f"{code!r} already on line {seen[code]}"))
        seen[code] = line
        region = regions.get(cells["region"])
        if region is None:
            errors.append(RowError(line, "region", f"no region {cells['region']!r}"))
        try:
            kind = VehicleKind(cells["kind"])
        except ValueError:
            errors.append(RowError(line, "kind", f"{cells['kind']!r}: trunk or last_mile"))
            kind = None
        home = cells["home"]
        warehouse, station = warehouses.get(home), stations.get(home)
        if kind == VehicleKind.TRUNK and warehouse is None:
            errors.append(
                RowError(line, "home", f"a trunk vehicle is based at a warehouse, not {home!r}")
            )
        elif kind == VehicleKind.LAST_MILE and station is None:
            errors.append(
                RowError(
                    line, "home", f"a last-mile vehicle is based at a grid station, not {home!r}"
                )
            )
        base = warehouse if kind == VehicleKind.TRUNK else station
        if region is not None and base is not None and base.region_id != region.id:
            errors.append(RowError(line, "home", f"{home!r} is not in region {region.code}"))
        zones = [z.strip() for z in cells["zones"].replace("|", ",").replace("+", ",").split(",")]
        bad = [z for z in zones if z not in {t.value for t in TempZone}]
        if bad or not zones:
            errors.append(
                RowError(line, "zones", f"{bad[0] if bad else ''!r}: ambient, chilled or frozen")
            )
        weight = _decimal(cells["weight_kg"], "weight_kg", line, errors, places=3)
        volume = _decimal(cells["volume_l"], "volume_l", line, errors, places=3)
        crates = _decimal(cells["crates"], "crates", line, errors, places=0)
        start = _clock(cells["shift_start"], "shift_start", line, errors)
        end = _clock(cells["shift_end"], "shift_end", line, errors)
        if start and end and end <= start:
            errors.append(
                RowError(line, "shift_end", f"{end} is not after the shift start {start}")
            )
        max_hours = cells.get("max_hours") or ""
        max_s = (
            int(_decimal(max_hours, "max_hours", line, errors, places=2) * 3600)
            if max_hours
            else None
        )
        b_early = (
            _clock(cells["break_earliest"], "break_earliest", line, errors)
            if cells.get("break_earliest")
            else None
        )
        b_late = (
            _clock(cells["break_latest"], "break_latest", line, errors)
            if cells.get("break_latest")
            else None
        )
        b_min = cells.get("break_minutes") or ""
        break_s = (
            int(_decimal(b_min, "break_minutes", line, errors, places=0) * 60) if b_min else None
        )
        if (b_early is None) != (break_s is None) or (b_late is not None and b_early is None):
            errors.append(
                RowError(line, "break_minutes", "a break needs break_earliest and break_minutes")
            )
        if b_early and b_late and b_late < b_early:
            errors.append(RowError(line, "break_latest", "is before break_earliest"))
        speed = _decimal(cells.get("speed_kmh") or "30", "speed_kmh", line, errors, places=1)
        if speed == 0:
            errors.append(RowError(line, "speed_kmh", "must be above zero"))
        cost = _decimal(cells.get("fixed_cost") or "0", "fixed_cost", line, errors, places=2)
        active_text = (cells.get("active") or "yes").lower()
        if active_text not in {"yes", "no", "true", "false", "1", "0"}:
            errors.append(RowError(line, "active", f"{active_text!r}: yes or no"))
        if len(errors) > before:
            continue
        assert region is not None and kind is not None and base is not None
        assert start is not None and end is not None
        rows.append(
            {
                "code": code,
                "region_id": region.id,
                "kind": kind,
                "warehouse_id": base.id if kind == VehicleKind.TRUNK else None,
                "station_id": base.id if kind == VehicleKind.LAST_MILE else None,
                "capacity_weight_g": int(weight * 1000),
                "capacity_volume_ml": int(volume * 1000),
                "capacity_crates": int(crates),
                "zones": ",".join(t.value for t in TempZone if t.value in zones),
                "shift_start": start,
                "shift_end": end,
                "max_duration_s": max_s,
                "break_earliest": b_early,
                "break_latest": b_late or b_early,
                "break_s": break_s,
                "speed_kmh": float(speed),
                "profile": cells.get("profile")
                or ("truck" if kind == VehicleKind.TRUNK else "van"),
                "fixed_cost_cents": int(cost * 100),
                "active": active_text in {"yes", "true", "1"},
            }
        )
    return rows, errors


def import_fleet(session: Session, *, text: str, actor: str = "system") -> FleetReport:
    """Add or update (by code) every vehicle of a fleet file, or none: ImportFailed lists why.

    Exactly once: a vehicle is its code (a unique column); a file imported again updates the
    same rows and audits only what changed. Two imports adding one new code at once: the
    second's INSERT fails on the unique constraint and its whole transaction rolls back."""
    rows, errors = parse_fleet(session, text)
    if errors:
        raise ImportFailed(errors)
    existing = {
        v.code: v
        for v in session.scalars(select(Vehicle).where(Vehicle.code.in_([r["code"] for r in rows])))
    }
    added = updated = 0
    for row in rows:
        vehicle = existing.get(row["code"])
        if vehicle is None:
            vehicle = Vehicle(**row)
            session.add(vehicle)
            session.flush()
            added += 1
            record_change(
                session,
                actor=actor,
                action="vehicle.added",
                entity="vehicle",
                entity_id=vehicle.id,
                after=_audit_view(row),
            )
            continue
        before = _audit_view({k: getattr(vehicle, k) for k in row})
        for key, value in row.items():
            setattr(vehicle, key, value)
        after = _audit_view(row)
        if before != after:
            updated += 1
            record_change(
                session,
                actor=actor,
                action="vehicle.changed",
                entity="vehicle",
                entity_id=vehicle.id,
                before=before,
                after=after,
            )
    session.flush()
    return FleetReport(added, updated)


def preview_fleet(session: Session, *, text: str) -> ImportPreview:
    """What a fleet file would write (each vehicle added or changed, by line) and every error;
    nothing is written."""
    rows, errors = parse_fleet(session, text)
    codes = [r["code"] for r in rows]
    existing = set(session.scalars(select(Vehicle.code).where(Vehicle.code.in_(codes))))
    lines = _lines_of_codes(text)
    preview = ImportPreview(errors=errors)
    for row in rows:
        shown = {k: str(v) for k, v in _audit_view(row).items()}
        action = "change" if row["code"] in existing else "add"
        preview.rows.append(PreviewRow(lines.get(row["code"], 0), row["code"], action, shown))
    return preview


def _lines_of_codes(text: str) -> dict[str, int]:
    """Each code's line in the file (its first), header = 1."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "code" not in header:
        return {}
    at = header.index("code")
    found: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if at < len(raw):
            found.setdefault(raw[at].strip(), line)
    return found


def save_vehicle(session: Session, *, cells: dict[str, str], actor: str) -> Vehicle:
    """Add or change one vehicle (by code) from the admin's form: the cells are the fleet file's
    columns, checked by the same parser as a file, so a form and a file accept the same values.
    A refusal is InvalidInput naming the column at fault; nothing is written."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FLEET_COLUMNS)
    writer.writerow([cells.get(c, "") for c in FLEET_COLUMNS])
    code = cells.get("code", "")
    try:
        import_fleet(session, text=out.getvalue(), actor=actor)
    except ImportFailed as err:
        first = err.errors[0]
        raise InvalidInput(
            f"vehicle {code}", first.field, first.message, limit=first.limit
        ) from None
    return session.scalars(select(Vehicle).where(Vehicle.code == code)).one()


def vehicle_cells(vehicle: Vehicle, region_code: str, home_code: str) -> dict[str, str]:
    """A vehicle as the fleet file's columns (the admin's form starts from them)."""

    def clock(value: time | None) -> str:
        return value.strftime("%H:%M") if value else ""

    return {
        "code": vehicle.code,
        "region": region_code,
        "home": home_code,
        "kind": vehicle.kind.value,
        "weight_kg": f"{Decimal(vehicle.capacity_weight_g) / 1000:f}",
        "volume_l": f"{Decimal(vehicle.capacity_volume_ml) / 1000:f}",
        "crates": str(vehicle.capacity_crates),
        "zones": vehicle.zones,
        "shift_start": clock(vehicle.shift_start),
        "shift_end": clock(vehicle.shift_end),
        "max_hours": f"{Decimal(vehicle.max_duration_s) / 3600:.2f}"
        if vehicle.max_duration_s
        else "",
        "break_earliest": clock(vehicle.break_earliest),
        "break_latest": clock(vehicle.break_latest),
        "break_minutes": str(vehicle.break_s // 60) if vehicle.break_s else "",
        "speed_kmh": f"{vehicle.speed_kmh:g}",
        "profile": vehicle.profile,
        "fixed_cost": f"{Decimal(vehicle.fixed_cost_cents) / 100:.2f}",
        "active": "yes" if vehicle.active else "no",
    }


def import_fleet_file(session: Session, *, path: Path, actor: str = "system") -> FleetReport:
    return import_fleet(session, text=decode(path.read_bytes()), actor=actor)


def _audit_view(row: dict) -> dict:
    return {
        k: (v.isoformat() if isinstance(v, time) else (v.value if isinstance(v, StrEnum) else v))
        for k, v in row.items()
    }


# ---------------------------------------------------------------------------------------------
# To the planner


def seconds_of_day(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def routing_vehicle(
    vehicle: Vehicle, *, depot_id: str, seconds: Callable[[time], int] = seconds_of_day
) -> routing.Vehicle:
    """The planner's view of a vehicle. `seconds` turns its wall-clock shift and break times
    into seconds since local midnight of the delivery day (DST-correct: planning.seconds_since_midnight)."""
    import routing

    brk = None
    if vehicle.break_earliest is not None and vehicle.break_s:
        latest = vehicle.break_latest or vehicle.break_earliest
        brk = routing.Break(seconds(vehicle.break_earliest), seconds(latest), vehicle.break_s)
    return routing.Vehicle(
        id=vehicle.code,
        start_depot=depot_id,
        capacity=routing.Load(
            vehicle.capacity_weight_g, vehicle.capacity_volume_ml, vehicle.capacity_crates
        ),
        shift_start_s=seconds(vehicle.shift_start),
        shift_end_s=seconds(vehicle.shift_end),
        max_duration_s=vehicle.max_duration_s,
        break_=brk,
        fixed_cost=vehicle.fixed_cost_cents,
        zones=frozenset(routing.TempZone(z.value) for z in vehicle.zone_set),
        speed_kmh=vehicle.speed_kmh,
        profile=vehicle.profile,
    )
