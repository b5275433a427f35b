"""`groupbuy crates …`: a wave's crates with their routes and load numbers, and a crate scanned
at a handover from the command line (for operators, scripts and tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import AppGroup
from sqlalchemy import select

from fulfilment.accounts.models import User
from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.core.models import GridStation, Leader, Wave
from fulfilment.handovers.models import Step
from fulfilment.handovers.scans import (
    ScanRefused,
    scan_delivered,
    scan_loaded,
    scan_received,
)
from fulfilment.night.crate_routes import crates_of_route, crates_of_wave

from .context import app_sessions, fail

crates = AppGroup("crates", help="Crates (周转箱): list them, scan one at a handover.")


@crates.command("list")
@click.option("--wave", "wave_id", type=int, required=True, help="The wave's id.")
@click.option("--route", "route_id", type=int, help="Only the crates riding this route (id).")
@click.option("--station", "station_code", help="Only this grid station's crates.")
@click.option("--leader", "leader_code", help="Only this pickup point's crates.")
def list_command(
    wave_id: int, route_id: int | None, station_code: str | None, leader_code: str | None
) -> None:
    """The wave's crates: code, zone, oversize, point, station, and where each rides in the
    published plan (van, stop, load number; truck, stop, load number). A route's crates come in
    its load order. A wave cut off before crates were records is packed first."""
    try:
        with session_scope(app_sessions()) as session:
            wave = session.get(Wave, wave_id)
            if wave is None:
                fail(f"wave {wave_id} does not exist")
            if route_id is not None:
                rows = crates_of_route(session, route_id)
            else:
                station = leader = None
                if station_code:
                    station = session.scalar(
                        select(GridStation.id).where(GridStation.code == station_code)
                    )
                    if station is None:
                        fail(f"station {station_code} does not exist")
                if leader_code:
                    leader = session.scalar(select(Leader.id).where(Leader.code == leader_code))
                    if leader is None:
                        fail(f"leader {leader_code} does not exist")
                rows = crates_of_wave(session, wave_id, station, leader, contents=False)
    except FulfilmentError as err:
        fail(err)
    if rows and rows[0].plan_id is None:
        click.echo("no published plan yet: crates have no routes", err=True)
    click.echo("code\tzone\toversize\tpoint\tstation\tvan\tstop\tload\ttruck\tstop\tload")
    for c in rows:
        cells = [
            c.code,
            c.zone.value,
            "oversize" if c.oversize else "",
            c.leader_code,
            c.station_code,
            c.vehicle_code or "",
            c.stop_no or "",
            c.load_seq or "",
            c.trunk_vehicle_code or "",
            c.trunk_stop_no or "",
            c.trunk_load_seq or "",
        ]
        click.echo("\t".join(str(x) for x in cells))


@crates.command("scan")
@click.argument("step", type=click.Choice([s.value for s in Step]))
@click.argument("code")
@click.option("--user", "username", required=True, help="Who scans (an account's username).")
@click.option("--route", "route_id", type=int, help="loaded: the truck route's id.")
@click.option("--wave", "wave_id", type=int, help="received, delivered: the wave's id.")
@click.option("--station", "station_code", help="received: the grid station's code.")
def scan_command(
    step: str,
    code: str,
    username: str,
    route_id: int | None,
    wave_id: int | None,
    station_code: str | None,
) -> None:
    """Record one handover of a crate (its code, or `GBC:<id>` as its QR code carries): loaded
    (--route), received (--wave, --station) or delivered (--wave; the user's own point)."""
    now = datetime.now(UTC)
    try:
        with session_scope(app_sessions()) as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                fail(f"user {username} does not exist")
            if step == Step.LOADED:
                if route_id is None:
                    fail("loaded needs --route")
                done = scan_loaded(session, route_id=route_id, scanned=code, user=user, now=now)
            else:
                wave = session.get(Wave, wave_id) if wave_id is not None else None
                if wave is None:
                    fail(f"{step} needs --wave with an existing wave's id")
                if step == Step.RECEIVED:
                    station = session.scalar(
                        select(GridStation).where(GridStation.code == (station_code or ""))
                    )
                    if station is None:
                        fail("received needs --station with an existing station's code")
                    done = scan_received(
                        session, wave=wave, station=station, scanned=code, user=user, now=now
                    )
                else:
                    leader = session.get(Leader, user.leader_id) if user.leader_id else None
                    if leader is None:
                        fail(f"user {username} has no pickup point")
                    done = scan_delivered(
                        session, wave=wave, leader=leader, scanned=code, user=user, now=now
                    )
            message = f"{step}: crate {done.crate.code}"
    except ScanRefused as err:
        fail(f"refused: {err}")
    except FulfilmentError as err:
        fail(err)
    click.echo(message)


COMMANDS = (crates,)
