"""The planner's boundary: plain frozen data in (Problem), plain frozen data out (Plan).

Validation happens on construction, so a bad input fails where it is built, with the stop and field
named (`RoutingInputError`). Nothing here imports OR-Tools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

__all__ = [
    "UNREACHABLE",
    "Break",
    "Depot",
    "Drop",
    "Engine",
    "LatLon",
    "Load",
    "Plan",
    "PlanCost",
    "PlanStatus",
    "Problem",
    "Route",
    "RoutingInputError",
    "Stop",
    "TempZone",
    "TimeWindow",
    "Unassigned",
    "UnassignedReason",
    "Vehicle",
    "Visit",
    "expand_drops",
]

# A matrix entry at or above this value means "no road between these two points" (an OSRM null).
UNREACHABLE = 10**9

# A stop further than this from the middle of the others is suspicious (see Problem validation).
_FAR_FROM_OTHERS_M = 500_000.0


class RoutingInputError(ValueError):
    """A planner input is wrong; `record` names the stop/vehicle/depot, `field` the attribute."""

    def __init__(self, message: str, *, record: str | None = None, field: str | None = None):
        prefix = f"{record}.{field}: " if record and field else (f"{record}: " if record else "")
        super().__init__(prefix + message)
        self.record = record
        self.field = field


class TempZone(StrEnum):
    """Temperature zone of a drop (冷链); a vehicle carries only the zones it is equipped for."""

    AMBIENT = "ambient"
    CHILLED = "chilled"
    FROZEN = "frozen"


class UnassignedReason(StrEnum):
    """Why a stop (or one of its drops) is not on any route; decided on the stop alone."""

    DEMAND_EXCEEDS_EVERY_VEHICLE = "demand_exceeds_every_vehicle"
    NO_VEHICLE_FOR_ZONE = "no_vehicle_for_zone"
    WINDOW_UNREACHABLE = "window_unreachable"
    UNREACHABLE_LOCATION = "unreachable_location"
    FLEET_EXHAUSTED = "fleet_exhausted"
    # the stop is locked to a vehicle that lacks its zone, its capacity, its reach or its time
    LOCKED_VEHICLE_UNFIT = "locked_vehicle_unfit"
    # two echelons only: the station the stop hangs off received no trunk delivery
    STATION_NOT_SUPPLIED = "station_not_supplied"
    # taken off the plan by a person (the dispatcher's correction), not by the planner
    TAKEN_OFF = "taken_off"


class PlanStatus(StrEnum):
    """What a caller may rely on about a returned plan (the engine's own word is beside it)."""

    SOLVED = "solved"  # every drop is on a route
    PARTIAL = "partial"  # a plan, with some drops unassigned (each with a reason)
    TIMED_OUT = "timed_out"  # the time limit ran out before any plan was found
    INFEASIBLE_INPUT = "infeasible_input"  # stops, but no vehicle, or no drop any vehicle can take
    REJECTED = "rejected"  # every plan the engines found failed the re-check


class Engine(StrEnum):
    """Which search produced a plan."""

    NONE = "none"  # nothing to search (empty problem, no vehicles, input infeasible)
    ORTOOLS = "ortools"
    PYVRP = "pyvrp"
    PYVRP_ORTOOLS = "pyvrp+ortools"  # PyVRP's routes, then OR-Tools inserted what it left
    # driver breaks (routing/breaks.py): PyVRP without them, then each break fitted into its route
    PYVRP_RELAXED = "pyvrp-relaxed"
    # ... and then OR-Tools from those routes, with the breaks (inserting what fitting took out)
    PYVRP_RELAXED_ORTOOLS = "pyvrp-relaxed+ortools"


@dataclass(frozen=True, slots=True)
class LatLon:
    """A WGS84 point in degrees. Ranges are checked by `Problem`, which knows the stop's id."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Load:
    """An amount in every capacity dimension at once."""

    weight_g: int = 0
    volume_ml: int = 0
    crates: int = 0

    DIMENSIONS = ("weight_g", "volume_ml", "crates")

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.weight_g, self.volume_ml, self.crates)

    def __add__(self, other: Load) -> Load:
        return Load(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def __sub__(self, other: Load) -> Load:
        return Load(*(a - b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def fits_in(self, capacity: Load) -> bool:
        return all(a <= c for a, c in zip(self.as_tuple(), capacity.as_tuple(), strict=True))

    def is_zero(self) -> bool:
        return not any(self.as_tuple())


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """When service may start, in seconds from the start of the delivery day."""

    open_s: int
    close_s: int


@dataclass(frozen=True, slots=True)
class Break:
    """A driver break of `duration_s` starting somewhere in [earliest_start_s, latest_start_s]."""

    earliest_start_s: int
    latest_start_s: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class Depot:
    id: str
    location: LatLon | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """A pickup point (or, on the trunk, a grid station) and what to drop there per zone.

    `drops` maps a temperature zone to the load delivered in that zone. Each zone's drop is a
    separate node for the solver, so an ambient and a frozen drop of one stop may ride on different
    vehicles; drops of one stop served back to back by one vehicle share one `service_s`.
    No `windows` means any time within the vehicle's shift.
    """

    id: str
    location: LatLon | None = None
    drops: Mapping[TempZone, Load] = field(default_factory=dict)
    windows: tuple[TimeWindow, ...] = ()
    service_s: int = 0

    @property
    def demand(self) -> Load:
        total = Load()
        for load in self.drops.values():
            total = total + load
        return total

    def __hash__(self) -> int:  # drops is a dict: hash by identity-relevant fields only
        return hash((self.id, self.location, self.windows, self.service_s))


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A vehicle and its driver's shift; `profile` picks the travel-time matrix (speed class)."""

    id: str
    start_depot: str
    capacity: Load
    end_depot: str | None = None  # None: back to the start depot
    shift_start_s: int = 0
    shift_end_s: int = 24 * 3600
    max_duration_s: int | None = None
    break_: Break | None = None
    fixed_cost: int = 0
    zones: frozenset[TempZone] = frozenset({TempZone.AMBIENT})
    speed_kmh: float = 30.0
    profile: str = "van"

    @property
    def end(self) -> str:
        return self.end_depot or self.start_depot


@dataclass(frozen=True, slots=True, eq=False)
class Problem:
    """One planning problem.

    Either every depot and stop has a `location` and the default builder (or `matrix_source`,
    e.g. an OSRM client) makes the matrices, or `distance_m` and `travel_s` are given explicitly
    as integer matrices over the nodes in the order *depots, then stops* (locations are then for
    display only and are not validated). `travel_s` is one matrix or one per vehicle `profile`.

    `split_oversized`: a stop drop larger than the largest vehicle is split into several drops
    (used by the trunk echelon), instead of coming back unassigned.
    """

    depots: tuple[Depot, ...]
    stops: tuple[Stop, ...]
    vehicles: tuple[Vehicle, ...]
    distance_m: Any = None
    travel_s: Any = None
    circuity: float = 1.3
    soft_windows: bool = False
    lateness_cost_per_s: int = 1
    split_oversized: bool = False
    region_bbox: tuple[float, float, float, float] | None = (
        None  # min_lat, min_lon, max_lat, max_lon
    )
    matrix_source: Any = None  # object with .matrices(points, vehicles) -> (dist, {profile: time})

    def __post_init__(self) -> None:
        object.__setattr__(self, "depots", tuple(self.depots))
        object.__setattr__(self, "stops", tuple(self.stops))
        object.__setattr__(self, "vehicles", tuple(self.vehicles))
        self._validate_ids()
        for stop in self.stops:
            _validate_stop(stop)
        for vehicle in self.vehicles:
            _validate_vehicle(vehicle)
        n = len(self.depots) + len(self.stops)
        if self.distance_m is None and self.travel_s is None:
            self._validate_locations()
        else:
            if self.distance_m is None or self.travel_s is None:
                raise RoutingInputError(
                    "give both distance_m and travel_s, or neither",
                    record="problem",
                    field="distance_m",
                )
            object.__setattr__(self, "distance_m", _as_matrix(self.distance_m, n, "distance_m"))
            if isinstance(self.travel_s, Mapping):
                times = {
                    str(k): _as_matrix(v, n, f"travel_s[{k}]") for k, v in self.travel_s.items()
                }
                missing = {v.profile for v in self.vehicles} - set(times)
                if missing:
                    raise RoutingInputError(
                        f"no matrix for profile(s) {sorted(missing)}",
                        record="problem",
                        field="travel_s",
                    )
                object.__setattr__(self, "travel_s", times)
            else:
                object.__setattr__(self, "travel_s", _as_matrix(self.travel_s, n, "travel_s"))

    @property
    def has_matrices(self) -> bool:
        return self.distance_m is not None

    def node_points(self) -> list[LatLon]:
        """Locations of every node in matrix order (depots, then stops)."""
        points = [d.location for d in self.depots] + [s.location for s in self.stops]
        return [p for p in points if p is not None]  # all present: checked on construction

    def _validate_ids(self) -> None:
        for kind, items in (
            ("depot", self.depots),
            ("stop", self.stops),
            ("vehicle", self.vehicles),
        ):
            seen: set[str] = set()
            for item in items:
                if item.id in seen:
                    raise RoutingInputError(f"duplicate {kind} id", record=item.id, field="id")
                seen.add(item.id)
        depot_ids = {d.id for d in self.depots}
        for v in self.vehicles:
            for fname, depot in (("start_depot", v.start_depot), ("end_depot", v.end)):
                if depot not in depot_ids:
                    raise RoutingInputError(f"unknown depot {depot!r}", record=v.id, field=fname)

    def _validate_locations(self) -> None:
        named: list[tuple[str, LatLon | None]] = [(d.id, d.location) for d in self.depots]
        named += [(s.id, s.location) for s in self.stops]
        for rid, loc in named:
            if loc is None:
                raise RoutingInputError(
                    "missing location (and no explicit matrices given)",
                    record=rid,
                    field="location",
                )
            if not (math.isfinite(loc.lat) and math.isfinite(loc.lon)):
                raise RoutingInputError(
                    "coordinate is not a finite number", record=rid, field="location"
                )
            if not -90.0 <= loc.lat <= 90.0:
                hint = " (latitude and longitude swapped?)" if -90 <= loc.lon <= 90 else ""
                raise RoutingInputError(
                    f"latitude {loc.lat} outside -90..90{hint}", record=rid, field="location.lat"
                )
            if not -180.0 <= loc.lon <= 180.0:
                raise RoutingInputError(
                    f"longitude {loc.lon} outside -180..180", record=rid, field="location.lon"
                )
        if self.region_bbox is not None:
            lo_lat, lo_lon, hi_lat, hi_lon = self.region_bbox
            for rid, loc in named:
                assert loc is not None
                if not (lo_lat <= loc.lat <= hi_lat and lo_lon <= loc.lon <= hi_lon):
                    swapped = lo_lat <= loc.lon <= hi_lat and lo_lon <= loc.lat <= hi_lon
                    what = (
                        "latitude and longitude look swapped" if swapped else "outside the region"
                    )
                    raise RoutingInputError(f"{what}: {loc}", record=rid, field="location")
        if len(named) >= 3:
            _check_swapped(named)  # type: ignore[arg-type]


def _check_swapped(named: Sequence[tuple[str, LatLon]]) -> None:
    """A point far from the others whose swapped pair lands among them was typed the wrong way."""
    lats = np.array([p.lat for _, p in named])
    lons = np.array([p.lon for _, p in named])
    mid = LatLon(float(np.median(lats)), float(np.median(lons)))
    for rid, p in named:
        if _haversine_m(p, mid) > _FAR_FROM_OTHERS_M and abs(p.lon) <= 90:
            if _haversine_m(LatLon(p.lon, p.lat), mid) <= _FAR_FROM_OTHERS_M:
                raise RoutingInputError(
                    f"latitude and longitude look swapped: {p} is far from the other points, "
                    f"({p.lon}, {p.lat}) is among them",
                    record=rid,
                    field="location",
                )


def _haversine_m(a: LatLon, b: LatLon) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def _validate_stop(stop: Stop) -> None:
    for zone, load in stop.drops.items():
        if not isinstance(zone, TempZone):
            try:
                TempZone(zone)
            except ValueError:
                raise RoutingInputError(
                    f"unknown temperature zone {zone!r}", record=stop.id, field="drops"
                ) from None
        for dim, value in zip(Load.DIMENSIONS, load.as_tuple(), strict=True):
            if value < 0:
                raise RoutingInputError(
                    f"negative demand {value} in zone {zone}", record=stop.id, field=f"drops.{dim}"
                )
    if stop.service_s < 0:
        raise RoutingInputError("negative service time", record=stop.id, field="service_s")
    for w in stop.windows:
        if w.close_s < w.open_s:
            raise RoutingInputError(
                f"window closes ({w.close_s}) before it opens ({w.open_s})",
                record=stop.id,
                field="windows",
            )
        if w.open_s < 0:
            raise RoutingInputError(
                "window opens before the day starts", record=stop.id, field="windows"
            )
    ordered = sorted(stop.windows, key=lambda w: w.open_s)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.open_s <= a.close_s:
            raise RoutingInputError("windows overlap", record=stop.id, field="windows")


def _validate_vehicle(v: Vehicle) -> None:
    if any(x < 0 for x in v.capacity.as_tuple()):
        raise RoutingInputError("negative capacity", record=v.id, field="capacity")
    if v.shift_end_s < v.shift_start_s:
        raise RoutingInputError("shift ends before it starts", record=v.id, field="shift_end_s")
    if v.max_duration_s is not None and v.max_duration_s < 0:
        raise RoutingInputError("negative max duration", record=v.id, field="max_duration_s")
    if v.speed_kmh <= 0:
        raise RoutingInputError("speed must be positive", record=v.id, field="speed_kmh")
    if v.break_ is not None:
        b = v.break_
        if b.latest_start_s < b.earliest_start_s or b.duration_s < 0:
            raise RoutingInputError(
                "break window is empty or duration negative", record=v.id, field="break_"
            )
    for z in v.zones:
        TempZone(z)


def _as_matrix(values: Any, n: int, name: str) -> np.ndarray:
    try:
        m = np.asarray(values)
    except Exception as exc:  # ragged lists
        raise RoutingInputError(f"not a matrix: {exc}", record="problem", field=name) from None
    if m.dtype == object or m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise RoutingInputError(
            f"must be a square matrix, got shape {m.shape}", record="problem", field=name
        )
    if m.shape[0] != n:
        raise RoutingInputError(
            f"must be {n}x{n} (depots then stops), got {m.shape[0]}x{m.shape[1]}",
            record="problem",
            field=name,
        )
    if not np.issubdtype(m.dtype, np.integer):
        if not np.all(np.isfinite(m)) or np.any(m != np.round(m)):
            raise RoutingInputError(
                "entries must be whole numbers (round up before)", record="problem", field=name
            )
    m = m.astype(np.int64)
    if (m < 0).any():
        i, j = map(int, np.argwhere(m < 0)[0])
        raise RoutingInputError(f"negative entry at [{i}][{j}]", record="problem", field=name)
    return m


# ---------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True, slots=True)
class Visit:
    """One stop on a route: what was dropped, when, and what is left on board afterwards."""

    stop_id: str
    zones: tuple[TempZone, ...]
    delivered: Load
    arrival_s: int  # start of service (after any waiting)
    departure_s: int
    load_after: Load
    lateness_s: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    vehicle_id: str
    start_s: int
    end_s: int
    visits: tuple[Visit, ...]
    distance_m: int
    duration_s: int
    load_at_start: Load

    @property
    def stop_ids(self) -> list[str]:
        return [v.stop_id for v in self.visits]


@dataclass(frozen=True, slots=True)
class Unassigned:
    stop_id: str
    zone: TempZone | None
    reason: UnassignedReason
    demand: Load = Load()


@dataclass(frozen=True, slots=True)
class PlanCost:
    """The objective's parts. `total` is what the solver minimised (drop penalties excluded)."""

    distance_m: int
    vehicles_used: int
    fixed_cost: int
    lateness_s: int
    total: int


@dataclass(frozen=True, slots=True)
class Plan:
    routes: tuple[Route, ...]  # only vehicles that leave their depot
    unassigned: tuple[Unassigned, ...]
    cost: PlanCost
    status: PlanStatus
    time_to_first_solution_s: float | None  # from the call, matrix building included
    solve_s: float
    # the first solution that served every drop it could serve (no drop-penalty paid)
    time_to_first_complete_s: float | None = None
    # the engine's objective value: cost.total plus the penalties of drops it left out
    solver_objective: int | None = None
    engine: Engine = Engine.NONE
    engine_status: str = ""  # the engine's own word, e.g. ROUTING_SUCCESS
    # the independent re-check (routing/check.py): True when this plan passed it
    rechecked: bool = False
    # plans an engine returned that failed the re-check, and why ("pyvrp: ...")
    discarded: tuple[str, ...] = ()

    def vehicle_of(self) -> dict[str, str]:
        """Stop id -> vehicle id (a stop split over vehicles maps to the first)."""
        out: dict[str, str] = {}
        for r in self.routes:
            for v in r.visits:
                out.setdefault(v.stop_id, r.vehicle_id)
        return out

    def route_of(self, vehicle_id: str) -> Route | None:
        return next((r for r in self.routes if r.vehicle_id == vehicle_id), None)


# ---------------------------------------------------------------------------------------------
# Drops: what the engines route


@dataclass(frozen=True, slots=True)
class Drop:
    """One routed unit: a stop's load in one zone (or a part of it, when split)."""

    stop_index: int
    zone: TempZone
    load: Load


def expand_drops(problem: Problem) -> list[Drop]:
    """One drop per (stop, zone) with a non-zero load; oversized ones split if the problem says so.

    A stop with no drops at all still gets one empty ambient drop: it is a visit to make.
    """
    biggest: dict[TempZone, Load] = {}
    for z in TempZone:
        caps = [v.capacity.as_tuple() for v in problem.vehicles if z in v.zones]
        if caps:
            biggest[z] = Load(*(max(c[i] for c in caps) for i in range(3)))
    drops: list[Drop] = []
    for i, stop in enumerate(problem.stops):
        items = [(TempZone(z), load) for z, load in stop.drops.items() if not load.is_zero()]
        if not items:
            items = [(TempZone.AMBIENT, Load())]
        for zone, load in items:
            cap = biggest.get(zone)
            if problem.split_oversized and cap is not None and not load.fits_in(cap):
                drops.extend(Drop(i, zone, part) for part in _split(load, cap))
            else:
                drops.append(Drop(i, zone, load))
    return drops


def _split(load: Load, cap: Load) -> list[Load]:
    parts = 1
    for need, have in zip(load.as_tuple(), cap.as_tuple(), strict=True):
        if need > 0:
            if have <= 0:
                return [load]
            parts = max(parts, -(-need // have))
    out = []
    for k in range(parts):
        out.append(Load(*((x * (k + 1)) // parts - (x * k) // parts for x in load.as_tuple())))
    return out
