"""The dispatcher's corrections: a change to a plan makes a new draft version, never an edit.

A correction names the version the dispatcher saw (`base_plan_id`) and one change: move a stop to
a van (at a position, or where the planner finds best), lock a stop to its van, take a stop off,
add the stops the plan does not serve yet (late orders), or re-plan a station around its locks.
`request_correction` checks it against the stored plan and records it, queued; `run_correction`
(outside the web process: an RQ job, or a process of its own) claims it once, computes the
station's new last mile and writes the whole new version in one transaction: the parts it did not
change copied, the changed ones stored, locks carried on, the rules a hand-made arrangement
breaks recorded. Nothing half-written: a failed correction leaves no version behind.

What has started stays: a route whose start time has passed keeps its vehicle and its stops
(they are locked in every re-plan, and a move off or onto it is refused).

`plan_diff` compares a draft with the published version; `publish_version` publishes the draft
the dispatcher reviewed, refusing one that breaks a rule and one reviewed against a published
version that has since changed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

import routing
from fulfilment.catalogue.fleet import Vehicle, VehicleKind
from fulfilment.core.audit import record_change
from fulfilment.core.db import advisory_xact_lock, session_scope
from fulfilment.core.errors import FulfilmentError, InvalidInput, NotFound
from fulfilment.core.models import GridStation, Wave

from .planning import PlanningOptions, build_network
from .plans import (
    TRUNK_PART,
    CorrectionKind,
    CorrectionStatus,
    Echelon,
    PlanCorrection,
    PlanLock,
    PlanPart,
    PlanRoute,
    PlanStatus,
    PlanStop,
    PlanUnassigned,
    RoutePlan,
    find_published_plan,
    finish_plan,
    load_plan,
    start_plan,
    store_part,
    supersede_and_publish,
)

log = logging.getLogger(__name__)

ETA_MOVED = timedelta(minutes=15)  # the diff lists a stop whose ETA moved more than this


class PlanConflict(FulfilmentError):
    """The plan changed under the dispatcher (another version was published meanwhile)."""


# ---------------------------------------------------------------------------------------------
# Asking for a change


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def started_routes(session: Session, plan: RoutePlan, now: datetime) -> dict[str, list[str]]:
    """Last-mile routes whose start time has passed: vehicle code -> its stops, in order (one
    read, whatever the number of routes)."""
    out: dict[str, list[str]] = {}
    for vehicle, stop in session.execute(
        select(PlanRoute.vehicle_code, PlanStop.stop_code)
        .join(PlanStop, PlanStop.route_id == PlanRoute.id)
        .where(
            PlanRoute.plan_id == plan.id,
            PlanRoute.echelon == Echelon.LAST_MILE,
            PlanRoute.start_at <= now,
        )
        .order_by(PlanRoute.vehicle_code, PlanStop.seq)
    ):
        out.setdefault(vehicle, []).append(stop)
    return out


def request_correction(
    session: Session,
    *,
    plan_id: int,
    kind: CorrectionKind,
    actor: str,
    now: datetime,
    stop_code: str | None = None,
    vehicle_code: str | None = None,
    position: int | None = None,
    station_code: str | None = None,
) -> PlanCorrection:
    """Check a change against the version the dispatcher saw and queue it (audited).

    Refused, by record and field: a version that is superseded or still planning, a stop that is
    not on this plan's last mile, a van of another region or station, a position beyond the
    route, a started route."""
    base = session.get(RoutePlan, plan_id)
    if base is None:
        raise NotFound(f"plan {plan_id} does not exist")
    record = f"plan version {base.version}"
    if base.status not in (PlanStatus.DRAFT, PlanStatus.PUBLISHED):
        raise InvalidInput(
            record,
            "plan",
            f"this version is {base.status.value}: open the wave's current version and change that",
        )
    wave = session.get_one(Wave, base.wave_id)
    station_id: int | None = None
    if kind in (CorrectionKind.MOVE, CorrectionKind.LOCK, CorrectionKind.TAKE_OFF):
        if not stop_code:
            raise InvalidInput(record, "stop", "choose a stop")
        on = _where_is(session, base, stop_code)
        if on is None:
            raise InvalidInput(
                f"stop {stop_code}", "stop", f"is not a pickup point of {record}'s last mile"
            )
        station_id, current_vehicle = on
        started = started_routes(session, base, now)
        if current_vehicle in started and kind != CorrectionKind.LOCK:
            raise InvalidInput(
                f"stop {stop_code}",
                "stop",
                f"its van {current_vehicle} has left: a started route keeps its stops",
            )
        if kind == CorrectionKind.LOCK and current_vehicle is None:
            raise InvalidInput(f"stop {stop_code}", "stop", "is on no route: move it to a van")
        if kind == CorrectionKind.MOVE:
            if not vehicle_code:
                raise InvalidInput(f"stop {stop_code}", "vehicle", "choose a van")
            van = session.scalars(
                select(Vehicle).where(
                    Vehicle.region_id == wave.region_id, Vehicle.code == vehicle_code
                )
            ).first()
            if van is None or van.kind != VehicleKind.LAST_MILE:
                raise InvalidInput(
                    f"vehicle {vehicle_code}", "vehicle", "is not a van of this wave's region"
                )
            if van.station_id != station_id:
                station = session.get(GridStation, van.station_id)
                raise InvalidInput(
                    f"vehicle {vehicle_code}",
                    "vehicle",
                    f"belongs to station {station.code if station else '?'}; "
                    f"stop {stop_code} is served from another station",
                )
            if vehicle_code in started:
                raise InvalidInput(
                    f"vehicle {vehicle_code}",
                    "vehicle",
                    "has left: a started route takes no more stops",
                )
            if position is not None:
                target = [s for s in _route_stops(session, base, vehicle_code) if s != stop_code]
                if not 1 <= position <= len(target) + 1:
                    raise InvalidInput(
                        f"vehicle {vehicle_code}",
                        "position",
                        f"position {position} is beyond the route: choose 1 to {len(target) + 1}",
                    )
    elif kind == CorrectionKind.REPLAN:
        station = session.scalars(
            select(GridStation).where(
                GridStation.region_id == wave.region_id, GridStation.code == (station_code or "")
            )
        ).first()
        if station is None:
            raise InvalidInput(record, "station", "choose a station of this wave's region")
        station_id = station.id
    correction = PlanCorrection(
        wave_id=wave.id,
        base_plan_id=base.id,
        kind=kind,
        station_id=station_id,
        stop_code=stop_code,
        vehicle_code=vehicle_code,
        position=position,
        status=CorrectionStatus.QUEUED,
        created_by=actor,
        created_at=now,
    )
    session.add(correction)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="route_plan.correction_requested",
        entity="route_plan_correction",
        entity_id=correction.id,
        after={
            "plan": base.id,
            "kind": kind.value,
            "stop": stop_code,
            "vehicle": vehicle_code,
            "position": position,
        },
        at=now,
    )
    return correction


def _where_is(session: Session, plan: RoutePlan, stop_code: str) -> tuple[int, str | None] | None:
    """(station id, vehicle code or None when unassigned) of a leader's stop in the plan."""
    row = session.execute(
        select(PlanRoute.station_id, PlanRoute.vehicle_code, PlanRoute.id)
        .join(PlanStop, PlanStop.route_id == PlanRoute.id)
        .where(
            PlanRoute.plan_id == plan.id,
            PlanRoute.echelon == Echelon.LAST_MILE,
            PlanStop.stop_code == stop_code,
        )
        .limit(1)
    ).first()
    if row is not None:
        return int(row.station_id), row.vehicle_code
    station_id = session.scalar(  # unassigned: its part names the station
        select(PlanPart.station_id)
        .join(PlanUnassigned, PlanUnassigned.part_id == PlanPart.id)
        .where(
            PlanUnassigned.plan_id == plan.id,
            PlanUnassigned.echelon == Echelon.LAST_MILE,
            PlanUnassigned.stop_code == stop_code,
        )
        .limit(1)
    )
    if station_id is None:
        return None
    return int(station_id), None


def _route_stops(session: Session, plan: RoutePlan, vehicle_code: str) -> list[str]:
    return list(
        session.scalars(
            select(PlanStop.stop_code)
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == plan.id, PlanRoute.vehicle_code == vehicle_code)
            .order_by(PlanStop.seq)
        )
    )


# ---------------------------------------------------------------------------------------------
# Running it (outside the web process)


def start_correction(database_url: str, correction_id: int) -> None:
    """Hand a queued correction to a worker: an RQ job when GROUPBUY_REDIS_URL is set, else a
    process of its own (`python -m fulfilment.night.corrections ID`). Returns at once."""
    redis_url = os.environ.get("GROUPBUY_REDIS_URL")
    if redis_url:
        from redis import Redis
        from rq import Queue

        from .workers import DEFAULT_QUEUE

        queue = Queue(
            os.environ.get("GROUPBUY_RQ_QUEUE", DEFAULT_QUEUE),
            connection=Redis.from_url(redis_url),
        )
        queue.enqueue(
            correction_job, correction_id, job_id=f"correction-{correction_id}", job_timeout=600
        )
        return
    env = {**os.environ, "GROUPBUY_DATABASE_URL": database_url}
    subprocess.Popen(
        [sys.executable, "-m", "fulfilment.night.corrections", str(correction_id)],
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def correction_job(correction_id: int) -> int | None:
    """The worker's side: run one correction on the database of GROUPBUY_DATABASE_URL."""
    from fulfilment.core.config import load_settings
    from fulfilment.core.db import make_engine, make_session_factory

    env = dict(os.environ)
    env.setdefault("GROUPBUY_ENV", "dev")  # the secret key is not needed to plan
    engine = make_engine(load_settings(env).database_url)
    try:
        return run_correction(make_session_factory(engine), correction_id)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class _Inputs:
    correction_id: int
    kind: CorrectionKind
    wave_id: int
    base_plan_id: int
    stop_code: str | None
    vehicle_code: str | None
    position: int | None
    station_code: str | None
    requested_at: datetime  # what had started is judged as the dispatcher saw it


def run_correction(
    sessions: sessionmaker[Session],
    correction_id: int,
    *,
    now=lambda: datetime.now(UTC),
    time_limit_s: float = 3.0,
) -> int | None:
    """Claim a queued correction (once: a second runner finds it taken and does nothing), make
    its draft version, and return the new plan's id (None when it was not ours or failed)."""
    with session_scope(sessions) as session:
        claimed = session.execute(
            update(PlanCorrection)
            .where(
                PlanCorrection.id == correction_id,
                PlanCorrection.status == CorrectionStatus.QUEUED,
            )
            .values(status=CorrectionStatus.RUNNING)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return None
        c = session.get_one(PlanCorrection, correction_id)
        station = session.get(GridStation, c.station_id) if c.station_id else None
        inputs = _Inputs(
            c.id,
            c.kind,
            c.wave_id,
            c.base_plan_id,
            c.stop_code,
            c.vehicle_code,
            c.position,
            station.code if station else None,
            c.created_at,
        )
    try:
        with session_scope(sessions) as session:
            plan_id = _make_version(session, inputs, now=now(), time_limit_s=time_limit_s)
            session.execute(
                update(PlanCorrection)
                .where(PlanCorrection.id == correction_id)
                .values(status=CorrectionStatus.DONE, result_plan_id=plan_id, finished_at=now())
            )
        return plan_id
    except Exception as err:  # the version rolled back whole; the page shows why
        log.exception("correction %s failed", correction_id)
        message = str(err) if isinstance(err, FulfilmentError) else f"{type(err).__name__}: {err}"
        with session_scope(sessions) as session:
            session.execute(
                update(PlanCorrection)
                .where(PlanCorrection.id == correction_id)
                .values(status=CorrectionStatus.FAILED, error=message[:500], finished_at=now())
            )
        return None


def _make_version(session: Session, c: _Inputs, *, now: datetime, time_limit_s: float) -> int:
    base = session.get_one(RoutePlan, c.base_plan_id)
    wave = session.get_one(Wave, c.wave_id)
    options = PlanningOptions(time_limit_s=time_limit_s)
    network = build_network(session, wave=wave, options=options)
    stored = load_plan(session, base)
    if stored.trunk is None:
        raise InvalidInput(f"plan version {base.version}", "plan", "has no trunk part")
    jobs = routing.station_jobs(
        network.trunk, stored.trunk, network.last_mile, handling_s=options.handling_s
    )
    locks = locks_of(session, base)  # the dispatcher's, carried on to the new version
    started = started_routes(session, base, c.requested_at)
    held = {stop: vehicle for vehicle, stops in started.items() for stop in stops}

    def locked_in(stop_ids: set[str]) -> dict[str, str]:
        """What a re-plan must keep: the locks and the stops of started routes."""
        return {k: v for k, v in {**locks, **held}.items() if k in stop_ids}

    taken_off = {
        u.stop_code
        for u in session.scalars(
            select(PlanUnassigned).where(
                PlanUnassigned.plan_id == base.id,
                PlanUnassigned.reason == routing.UnassignedReason.TAKEN_OFF.value,
            )
        )
    }
    parts = dict(stored.last_mile)
    changed: dict[str, routing.Plan] = {}
    broken: list[str] = []
    note = ""

    def station_problem(code: str, without: set[str]) -> routing.Problem | None:
        job = jobs.get(code)
        if job is None or job.problem is None:
            return None
        stops = tuple(s for s in job.problem.stops if s.id not in without)
        return replace(job.problem, stops=stops)

    def finish(code: str, plan: routing.Plan, off: set[str]) -> routing.Plan:
        """The station's plan with what the trunk does not bring and what was taken off."""
        job = jobs[code]
        extra = list(job.not_supplied)
        previous = parts.get(code)
        for u in previous.unassigned if previous else ():
            if u.stop_id in off and u.reason == routing.UnassignedReason.TAKEN_OFF:
                extra.append(u)
        return replace(plan, unassigned=plan.unassigned + tuple(extra))

    station = c.station_code
    if c.stop_code:
        station = network.station_of_leader.get(c.stop_code, station)
    if c.kind == CorrectionKind.ADD_LATE:
        note = "late stops added"
        for code, previous in parts.items():
            problem = station_problem(code, taken_off)
            if problem is None:
                continue
            served = {s for r in previous.routes for s in r.stop_ids}
            if not {s.id for s in problem.stops} - served:
                continue
            plan, _ = routing.replan(
                problem,
                previous,
                time_limit_s=time_limit_s,
                locked=locked_in({s.id for s in problem.stops}),
            )
            changed[code] = finish(code, plan, taken_off)
    else:
        if station is None or station not in parts:
            raise InvalidInput(
                f"plan version {base.version}", "station", "the station has no last mile here"
            )
        previous = parts[station]
        sequences = {r.vehicle_id: list(r.stop_ids) for r in previous.routes}
        start_s = {r.vehicle_id: r.start_s for r in previous.routes}
        off = set(taken_off)
        if c.kind == CorrectionKind.TAKE_OFF:
            assert c.stop_code
            off.add(c.stop_code)
            note = f"{c.stop_code} taken off"
        if c.kind == CorrectionKind.MOVE and c.stop_code in off:
            off.discard(c.stop_code)  # a stop taken off earlier comes back by a move
        problem = station_problem(station, off)
        if problem is None:
            raise InvalidInput(f"station {station}", "station", "the trunk brings it nothing")
        stop_ids = {s.id for s in problem.stops}
        local_locks = locked_in(stop_ids)
        if c.kind == CorrectionKind.LOCK:
            assert c.stop_code
            vehicle = next(v for v, s in sequences.items() if c.stop_code in s)
            locks[c.stop_code] = vehicle
            note = f"{c.stop_code} locked to {vehicle}"
            plan = previous
        elif c.kind == CorrectionKind.MOVE and c.position is not None:
            assert c.stop_code and c.vehicle_code
            for seq in sequences.values():
                if c.stop_code in seq:
                    seq.remove(c.stop_code)
            target = sequences.setdefault(c.vehicle_code, [])
            target.insert(c.position - 1, c.stop_code)
            sequences = {v: [s for s in seq if s in stop_ids] for v, seq in sequences.items()}
            plan, broken = routing.evaluate(problem, sequences, start_s=start_s)
            locks[c.stop_code] = c.vehicle_code
            note = f"{c.stop_code} moved to {c.vehicle_code} at {c.position}"
        elif c.kind == CorrectionKind.TAKE_OFF:
            sequences = {v: [s for s in seq if s in stop_ids] for v, seq in sequences.items()}
            plan, broken = routing.evaluate(problem, sequences, start_s=start_s)
            locks.pop(c.stop_code or "", None)
            off_stop = _taken_off(jobs[station].problem, c.stop_code or "")
            plan = replace(plan, unassigned=plan.unassigned + off_stop)
        elif c.kind == CorrectionKind.MOVE:  # to the best place on the van
            assert c.stop_code and c.vehicle_code
            locks[c.stop_code] = c.vehicle_code
            note = f"{c.stop_code} moved to {c.vehicle_code}"
            kept = {
                v: [s for s in seq if s != c.stop_code and s in stop_ids]
                for v, seq in sequences.items()
            }
            inserted = _best_insertion(problem, kept, c.stop_code, c.vehicle_code, start_s)
            if inserted is not None:
                plan = inserted
            else:  # no place as the routes stand: the planner, every stop on its van
                pinned = {s: v for v, seq in kept.items() for s in seq}
                pinned.update(local_locks)
                pinned[c.stop_code] = c.vehicle_code
                warm = {**kept, c.vehicle_code: kept.get(c.vehicle_code, []) + [c.stop_code]}
                plan = routing.plan_routes(
                    problem, time_limit_s=time_limit_s, locked=pinned, initial_routes=warm
                )
        else:  # the station re-planned around its locks and started routes
            note = f"station {station} re-planned"
            plan, _ = routing.replan(
                problem, previous, time_limit_s=time_limit_s, locked=local_locks
            )
        if c.kind in (CorrectionKind.MOVE, CorrectionKind.REPLAN) and c.position is None:
            if not plan.rechecked:
                raise InvalidInput(
                    f"station {station}",
                    "plan",
                    "the planner found no plan that passes the re-check: "
                    + "; ".join(plan.discarded[:3]),
                )
        changed[station] = finish(station, plan, off) if plan is not previous else plan
    if not changed and c.kind == CorrectionKind.ADD_LATE:
        raise InvalidInput(
            f"plan version {base.version}", "plan", "every stop with goods is on the plan already"
        )
    advisory_xact_lock(session, f"plan-version:{wave.id}")  # versions numbered one at a time
    version = start_plan(
        session,
        wave=wave,
        day_start_at=base.day_start_at,
        time_limit_s=base.time_limit_s,
        now=now,
        actor=_actor(session, c.correction_id),
        seed=base.seed,
    )
    if stored.trunk is not None:
        _store(session, version, TRUNK_PART, stored.trunk, network, now)
    for code, plan in {**parts, **changed}.items():
        _store(session, version, code, plan, network, now)
    for stop, vehicle in sorted(locks.items()):
        session.add(PlanLock(plan_id=version.id, stop_code=stop, vehicle_code=vehicle))
    version.based_on_id = base.id
    version.change_note = note[:200]
    version.broken = "\n".join(broken)
    session.flush()
    finish_plan(session, plan=version, actor=_actor(session, c.correction_id), now=now)
    return version.id


def _best_insertion(
    problem: routing.Problem,
    kept: dict[str, list[str]],
    stop: str,
    vehicle: str,
    start_s: dict[str, int],
) -> routing.Plan | None:
    """The stop put where it costs least on the van among the places that break no rule, every
    other stop staying on its van in its order; None when every place breaks one."""
    cache = routing.MatrixCache()
    route = kept.get(vehicle, [])
    best: routing.Plan | None = None
    for at in range(len(route) + 1):
        trial = {**kept, vehicle: route[:at] + [stop] + route[at:]}
        plan, broken = routing.evaluate(problem, trial, start_s=start_s, cache=cache)
        if not broken and (best is None or plan.cost.total < best.cost.total):
            best = plan
    return best


def _taken_off(problem: routing.Problem | None, stop_code: str) -> tuple[routing.Unassigned, ...]:
    stop = next((s for s in problem.stops if s.id == stop_code), None) if problem else None
    if stop is None:
        return ()
    return tuple(
        routing.Unassigned(stop.id, routing.TempZone(z), routing.UnassignedReason.TAKEN_OFF, load)
        for z, load in stop.drops.items()
    )


def _actor(session: Session, correction_id: int) -> str:
    return session.get_one(PlanCorrection, correction_id).created_by


def _store(session, version, part, plan, network, now) -> None:
    store_part(
        session,
        plan=version,
        part=part,
        result=plan,
        stations=network.stations,
        leaders=network.leaders,
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# Reviewing and publishing


@dataclass(frozen=True)
class StopChange:
    stop_code: str
    before_vehicle: str | None
    after_vehicle: str | None
    before_eta: datetime | None
    after_eta: datetime | None


@dataclass(frozen=True)
class PlanDiff:
    """A version against the published one: what a driver and a leader would notice."""

    against: RoutePlan | None
    changed_vehicle: list[StopChange]
    changed_order: list[StopChange]
    eta_moved: list[StopChange]  # by more than ETA_MOVED
    added: list[str]
    dropped: list[str]
    distance_delta_m: int
    cost_delta: int
    broken: list[str]

    @property
    def changes(self) -> int:
        return (
            len(self.changed_vehicle)
            + len(self.changed_order)
            + len(self.added)
            + len(self.dropped)
        )


def _stops_of(session: Session, plan: RoutePlan) -> dict[str, tuple[str, int, datetime]]:
    """Last-mile stop -> (vehicle, sequence, ETA)."""
    out: dict[str, tuple[str, int, datetime]] = {}
    for code, vehicle, seq, eta in session.execute(
        select(PlanStop.stop_code, PlanRoute.vehicle_code, PlanStop.seq, PlanStop.arrival_at)
        .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
        .where(PlanRoute.plan_id == plan.id, PlanRoute.echelon == Echelon.LAST_MILE)
        .order_by(PlanRoute.vehicle_code, PlanStop.seq)
    ):
        out.setdefault(code, (vehicle, seq, eta))
    return out


def plan_diff(session: Session, *, plan: RoutePlan) -> PlanDiff:
    """`plan` against the wave's published version (none: everything is added)."""
    published = find_published_plan(session, wave_id=plan.wave_id)
    after = _stops_of(session, plan)
    before = _stops_of(session, published) if published else {}
    common = set(before) & set(after)

    def change(code: str) -> StopChange:
        b, a = before.get(code), after.get(code)
        return StopChange(
            code, b[0] if b else None, a[0] if a else None, b[2] if b else None, a[2] if a else None
        )

    def predecessor(stops: dict[str, tuple[str, int, datetime]]) -> dict[str, str | None]:
        by_route: dict[str, list[tuple[int, str]]] = {}
        for code, (vehicle, seq, _eta) in stops.items():
            if code in common:
                by_route.setdefault(vehicle, []).append((seq, code))
        out: dict[str, str | None] = {}
        for seqs in by_route.values():
            prev = None
            for _seq, code in sorted(seqs):
                out[code] = prev
                prev = code
        return out

    prev_before, prev_after = predecessor(before), predecessor(after)
    moved_vehicle = sorted(c for c in common if before[c][0] != after[c][0])
    moved_order = sorted(
        c for c in common if before[c][0] == after[c][0] and prev_before[c] != prev_after[c]
    )
    eta = sorted(c for c in common if abs(_as_utc(after[c][2]) - _as_utc(before[c][2])) > ETA_MOVED)
    return PlanDiff(
        against=published,
        changed_vehicle=[change(c) for c in moved_vehicle],
        changed_order=[change(c) for c in moved_order],
        eta_moved=[change(c) for c in eta],
        added=sorted(set(after) - set(before)),
        dropped=sorted(set(before) - set(after)),
        distance_delta_m=plan.distance_m - (published.distance_m if published else 0),
        cost_delta=plan.cost_total - (published.cost_total if published else 0),
        broken=[b for b in plan.broken.split("\n") if b],
    )


def publish_version(
    session: Session, *, plan_id: int, seen_published_id: int | None, actor: str, now: datetime
) -> RoutePlan:
    """Publish the draft the dispatcher reviewed against `seen_published_id` (the published
    version the diff was read against). Refused: a version that is not a draft, one that breaks a
    rule (the re-check), and a conflict when another version was published since the review."""
    draft = session.get(RoutePlan, plan_id)
    if draft is None:
        raise NotFound(f"plan {plan_id} does not exist")
    record = f"plan version {draft.version}"
    wave = session.get_one(Wave, draft.wave_id)
    # every version of the wave locked, in id order (the draft among them): two publishes of one
    # wave queue here, never in a circle
    session.scalars(
        select(RoutePlan.id)
        .where(RoutePlan.wave_id == wave.id)
        .order_by(RoutePlan.id)
        .with_for_update()
    ).all()
    session.refresh(draft)  # as the publish before ours left it
    if draft.status != PlanStatus.DRAFT:
        raise PlanConflict(f"{record} is {draft.status.value}, not a draft: nothing to publish")
    if draft.broken:
        raise InvalidInput(
            record, "plan", "fails the re-check and cannot be published: " + draft.broken[:300]
        )
    current = find_published_plan(session, wave_id=wave.id)
    if (current.id if current else None) != seen_published_id:
        raise PlanConflict(
            f"version {current.version if current else '?'} was published since you reviewed "
            f"{record}: review the changes again"
        )
    return supersede_and_publish(session, wave=wave, draft=draft, actor=actor, now=now)


def latest_corrections(session: Session, *, wave_id: int, limit: int = 10) -> list[PlanCorrection]:
    return list(
        session.scalars(
            select(PlanCorrection)
            .where(PlanCorrection.wave_id == wave_id)
            .order_by(PlanCorrection.id.desc())
            .limit(limit)
        )
    )


def locks_of(session: Session, plan: RoutePlan) -> dict[str, str]:
    return {
        lock.stop_code: lock.vehicle_code
        for lock in session.scalars(select(PlanLock).where(PlanLock.plan_id == plan.id))
    }


if __name__ == "__main__":  # the process a correction runs in when there is no Redis
    logging.basicConfig(level=logging.INFO)
    correction_job(int(sys.argv[1]))
