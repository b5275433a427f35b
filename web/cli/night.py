"""The night's commands: import-fleet, plan (show, publish), pipeline (run, status), scheduler,
worker. Each is one unit of work: its session commits at the end, or rolls back on an error."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from fulfilment.catalogue.sites import get_region
from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.night.planning import PlanningOptions, solve_wave
from fulfilment.night.plans import (
    Echelon,
    finish_plan,
    get_plan_for_show,
    list_routes,
    list_unassigned,
    publish_plan,
)
from fulfilment.night.run import NightSettings, SystemClock, run_night
from fulfilment.night.workers import runner_from_environment

from .context import app_sessions, fail


def _wave(session, region_code: str, day: date | None):
    from fulfilment.waves.cycle import get_wave
    from fulfilment.waves.deadlines import latest_due_delivery_date

    region = get_region(session, region_code)
    delivery = day or latest_due_delivery_date(session, region=region, now=datetime.now(UTC))
    return region, get_wave(session, region_code=region_code, delivery_date=delivery)


class DeliveryDate(click.ParamType):
    """A calendar date written YYYY-MM-DD; anything else is a usage error naming the option."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value)
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not a date written YYYY-MM-DD", param, ctx)


DATE = DeliveryDate()
_region = click.option("--region", "region_code", required=True, help="Region code, e.g. SH.")
_date = click.option(
    "--date",
    "day",
    type=DATE,
    help="Delivery date YYYY-MM-DD (default: the latest wave due now).",
)
_actor = click.option("--actor", default="system", show_default=True, help="For the audit log.")


@click.command("import-fleet")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_actor
@with_appcontext
def import_fleet_command(file: Path, actor: str) -> None:
    """Add or update vehicles from a CSV file: all of it, or nothing (columns: README)."""
    from fulfilment.catalogue.fleet import import_fleet_file

    try:
        with session_scope(app_sessions()) as session:
            report = import_fleet_file(session, path=file, actor=actor)
    except ImportFailed as err:
        for row in err.errors:
            click.echo(f"  {file.name}:{row}", err=True)
        fail(f"nothing imported from {file.name}: {len(err.errors)} bad row(s)")
    except FulfilmentError as err:
        fail(err)
    click.echo(f"fleet: {report.added} vehicles added, {report.updated} updated")


@click.group("plan", invoke_without_command=True)
@click.option("--region", "region_code", help="Region code, e.g. SH.")
@_date
@click.option("--seconds", type=float, default=3.0, show_default=True, help="Per station.")
@click.option("--trunk-seconds", type=float, default=10.0, show_default=True)
@_actor
@click.pass_context
@with_appcontext
def plan_group(
    ctx: click.Context,
    region_code: str | None,
    day: date | None,
    seconds: float,
    trunk_seconds: float,
    actor: str,
) -> None:
    """Plan (or re-plan) a cut-off wave's routes and store them as a new draft version."""
    ctx.meta["groupbuy.plan"] = dict(region_code=region_code, day=day, actor=actor)
    if ctx.invoked_subcommand is not None:
        return
    if not region_code:
        fail("--region is required")
    sessions = app_sessions()
    try:
        with session_scope(sessions) as session:
            _, wave = _wave(session, region_code, day)
            wave_id = wave.id
        options = PlanningOptions(time_limit_s=seconds, trunk_time_limit_s=trunk_seconds)
        clock = SystemClock()
        plan_id = solve_wave(
            sessions,
            wave_id=wave_id,
            runner=runner_from_environment(),
            options=options,
            now=clock.now,
            actor=actor,
        )
        with session_scope(sessions) as session:
            from fulfilment.night.plans import RoutePlan

            plan = finish_plan(
                session, plan=session.get_one(RoutePlan, plan_id), actor=actor, now=clock.now()
            )
            summary = (plan.version, plan.vehicles_used, plan.distance_m, plan.unassigned_count)
    except FulfilmentError as err:
        fail(err)
    click.echo(
        f"draft plan v{summary[0]} for {region_code}: {summary[1]} vehicles, "
        f"{summary[2] / 1000:.1f} km, {summary[3]} unassigned (publish: groupbuy plan "
        f"publish --region {region_code})"
    )


def _merged(ctx: click.Context, region_code: str | None, day: date | None, actor: str | None):
    o = dict(ctx.meta.get("groupbuy.plan", {}))
    o["region_code"] = region_code or o.get("region_code")
    o["day"] = day or o.get("day")
    o["actor"] = actor or o.get("actor") or "system"
    if not o["region_code"]:
        fail("--region is required")
    return o


@plan_group.command("publish")
@click.option("--region", "region_code", help="Region code, e.g. SH.")
@_date
@click.option("--actor", help="For the audit log (default: system).")
@click.pass_context
@with_appcontext
def plan_publish_command(
    ctx: click.Context, region_code: str | None, day: date | None, actor: str | None
) -> None:
    """Publish the wave's latest draft plan (the published one before it is superseded)."""
    o = _merged(ctx, region_code, day, actor)
    try:
        with session_scope(app_sessions()) as session:
            _, wave = _wave(session, o["region_code"], o["day"])
            plan = publish_plan(session, wave=wave, actor=o["actor"], now=datetime.now(UTC))
            version = plan.version
    except FulfilmentError as err:
        fail(err)
    click.echo(f"published plan v{version} for {o['region_code']}")


@plan_group.command("show")
@click.option("--region", "region_code", help="Region code, e.g. SH.")
@_date
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@with_appcontext
def plan_show_command(
    ctx: click.Context, region_code: str | None, day: date | None, as_json: bool
) -> None:
    """Print the plan (published, else the latest draft): routes, ETAs, loads, unassigned."""
    from zoneinfo import ZoneInfo

    o = _merged(ctx, region_code, day, None)
    try:
        with session_scope(app_sessions()) as session:
            region, wave = _wave(session, o["region_code"], o["day"])
            plan = get_plan_for_show(session, wave=wave)
            zone = ZoneInfo(region.tz)
            data = _plan_data(session, plan, zone)
    except FulfilmentError as err:
        fail(err)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"plan v{data['version']} ({data['status']}) for {o['region_code']} delivering "
        f"{data['delivery_date']}: {data['vehicles_used']} vehicles, {data['distance_km']} km, "
        f"{len(data['unassigned'])} unassigned; times in {region.tz}"
    )
    for r in data["routes"]:
        click.echo(
            f"  {r['echelon']:<9} {r['vehicle']:<14} {r['start'][11:16]}–{r['end'][11:16]} "
            f"{r['distance_km']:>6} km  load {r['load_at_start']['weight_kg']} kg "
            f"{r['load_at_start']['crates']} crates"
        )
        for s in r["stops"]:
            click.echo(
                f"      {s['seq']:>2}. {s['stop']:<12} ETA {s['arrival'][11:16]} "
                f"{s['zones']:<24} left {s['load_after']['weight_kg']} kg"
            )
    for u in data["unassigned"]:
        click.echo(f"  unassigned {u['stop']} {u['zone'] or ''}: {u['reason']}")


def _plan_data(session, plan, zone) -> dict[str, Any]:
    def local(at: datetime) -> str:
        return at.astimezone(zone).isoformat()

    def load(w: int, v: int, c: int) -> dict[str, Any]:
        return {"weight_kg": round(w / 1000, 1), "volume_l": round(v / 1000, 1), "crates": c}

    return {
        "plan_id": plan.id,
        "version": plan.version,
        "status": plan.status.value,
        "delivery_date": plan.wave.delivery_date.isoformat(),
        "search_status": plan.search_status,
        "vehicles_used": plan.vehicles_used,
        "distance_km": round(plan.distance_m / 1000, 1),
        "cost_total": plan.cost_total,
        "routes": [
            {
                "echelon": r.echelon.value,
                "vehicle": r.vehicle_code,
                "start": local(r.start_at),
                "end": local(r.end_at),
                "distance_km": round(r.distance_m / 1000, 1),
                "load_at_start": load(r.start_weight_g, r.start_volume_ml, r.start_crates),
                "stops": [
                    {
                        "seq": s.seq,
                        "stop": s.stop_code,
                        "arrival": local(s.arrival_at),
                        "departure": local(s.departure_at),
                        "zones": s.zones,
                        "delivered": load(
                            s.delivered_weight_g, s.delivered_volume_ml, s.delivered_crates
                        ),
                        "load_after": load(s.after_weight_g, s.after_volume_ml, s.after_crates),
                    }
                    for s in r.stops
                ],
            }
            for r in list_routes(session, plan)
        ],
        "unassigned": [
            {
                "echelon": u.echelon.value,
                "stop": u.stop_code,
                "zone": u.zone,
                "reason": u.reason,
                "demand": load(u.weight_g, u.volume_ml, u.crates),
            }
            for u in list_unassigned(session, plan)
            if u.echelon in (Echelon.TRUNK, Echelon.LAST_MILE)
        ],
    }


@click.group("pipeline")
def pipeline_group() -> None:
    """The nightly pipeline: cutoff → plan → publish → settle, exactly once per region and date."""


@pipeline_group.command("run")
@_region
@_date
@click.option("--seconds", type=float, default=3.0, show_default=True, help="Per station.")
@_actor
@with_appcontext
def pipeline_run_command(region_code: str, day: date | None, seconds: float, actor: str) -> None:
    """Run (or resume) one night now, through the code the scheduler uses."""
    from fulfilment.waves.deadlines import latest_due_delivery_date

    sessions = app_sessions()
    try:
        with session_scope(sessions) as session:
            region = get_region(session, region_code)
            delivery = day or latest_due_delivery_date(
                session, region=region, now=datetime.now(UTC)
            )
    except FulfilmentError as err:
        fail(err)
    outcome = run_night(
        sessions,
        region_code=region_code,
        delivery_date=delivery,
        runner=runner_from_environment(),
        settings=NightSettings(planning=PlanningOptions(time_limit_s=seconds)),
        actor=actor,
    )
    click.echo(f"night {region_code} {delivery.isoformat()}: {outcome.state} {outcome.message}")
    if outcome.state == "failed":
        sys.exit(1)


@pipeline_group.command("status")
@click.option("--region", "region_code", help="Region code (default: all).")
@click.option("--date", "day", type=DATE, help="Delivery date YYYY-MM-DD (default: all).")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def pipeline_status_command(region_code: str | None, day: date | None, as_json: bool) -> None:
    """The ledger: each run and its steps (state, attempts, times, error; stuck steps flagged)."""
    from fulfilment.night.pipeline import list_runs

    with session_scope(app_sessions()) as session:
        runs = list_runs(
            session,
            now=datetime.now(UTC),
            region_code=region_code,
            delivery_date=day,
        )
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "run_id": r.run_id,
                        "region": r.region,
                        "delivery_date": r.delivery_date.isoformat(),
                        "state": r.state,
                        "claimed_by": r.claimed_by,
                        "wave_id": r.wave_id,
                        "plan_id": r.plan_id,
                        "error": r.error,
                        "abandoned": r.abandoned,
                        "steps": [
                            {
                                "step": s.step,
                                "state": s.state,
                                "attempts": s.attempts,
                                "started_at": s.started_at.isoformat() if s.started_at else None,
                                "finished_at": s.finished_at.isoformat() if s.finished_at else None,
                                "error": s.error,
                                "stuck": s.stuck,
                            }
                            for s in r.steps
                        ],
                    }
                    for r in runs
                ],
                indent=2,
            )
        )
        return
    if not runs:
        click.echo("no runs")
    for r in runs:
        abandoned = (
            " ABANDONED (its process stopped answering; the scheduler takes it over)"
            if r.abandoned
            else ""
        )
        click.echo(
            f"{r.region} {r.delivery_date.isoformat()}: {r.state}{abandoned}"
            + (f" ({r.error})" if r.error else "")
        )
        for s in r.steps:
            took = (
                f" {(s.finished_at - s.started_at).total_seconds():.1f} s"
                if s.started_at and s.finished_at
                else ""
            )
            flag = " STUCK" if s.stuck else ""
            # a running step's error is its last attempt's, not the one under way
            last = "last attempt: " if s.state == "running" else ""
            err = f" — {last}{s.error}" if s.error and s.state != "done" else ""
            click.echo(f"  {s.step:<8} {s.state:<8} attempts {s.attempts}{took}{flag}{err}")


@click.command("scheduler")
@click.option("--misfire-grace", type=int, default=3600, show_default=True, help="Seconds.")
@click.option("--seconds", type=float, default=3.0, show_default=True, help="Per station.")
@click.option("--trunk-seconds", type=float, default=10.0, show_default=True)
@click.option(
    "--heartbeat-ttl",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds without a heartbeat after which a run's claimer counts as dead.",
)
@click.option("--sweep-every", type=click.IntRange(min=1), default=300, show_default=True)
@with_appcontext
def scheduler_command(
    misfire_grace: int, seconds: float, trunk_seconds: float, heartbeat_ttl: float, sweep_every: int
) -> None:
    """Run the nightly scheduler in the foreground (one cron trigger per region)."""
    import logging
    import os

    from scheduler.service import NightScheduler

    logging.basicConfig(
        level=os.environ.get("GROUPBUY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from fulfilment.night.pipeline import PipelineConfig

    NightScheduler(
        app_sessions(),
        misfire_grace_s=misfire_grace,
        sweep_every_s=sweep_every,
        settings=NightSettings(
            planning=PlanningOptions(time_limit_s=seconds, trunk_time_limit_s=trunk_seconds),
            pipeline=PipelineConfig(
                heartbeat_ttl_s=heartbeat_ttl, heartbeat_every_s=min(20.0, heartbeat_ttl / 4)
            ),
        ),
    ).run_forever()


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker for route planning jobs (needs GROUPBUY_REDIS_URL)."""
    from fulfilment.night.workers import run_worker

    try:
        run_worker(burst=burst)
    except FulfilmentError as err:
        fail(err)


COMMANDS = (
    import_fleet_command,
    plan_group,
    pipeline_group,
    scheduler_command,
    worker_command,
)
