"""Loading and receiving crates (装车, 到站): the published plan's trucks of a wave, each truck's
crates in load order with what is still missing, a scan field (QR camera, USB scanner or typed
code), crates recorded missing with a reason, the truck marked loaded; and a grid station's
receiving page. For warehouse, dispatcher and admin, in their region; anything else is 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from wtforms import Form

from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import GridStation, Wave, utcnow
from fulfilment.handovers.models import Handover, Step
from fulfilment.handovers.scans import (
    RouteNotLoaded,
    ScanRefused,
    find_route_loaded,
    get_loading_route,
    list_loading_routes,
    loading_states,
    mark_route_loaded,
    record_missing,
    scan_loaded,
    scan_received,
    step_states,
)
from fulfilment.night.crate_routes import crates_of_wave
from fulfilment.night.plans import find_published_plan
from web.forms import InvalidForm, Text, WholeNumber, parse, required
from web.scanning import ScanForm, refusal_message
from web.security import staff_required

from .views import wave_or_404 as _wave

bp = Blueprint("loading", __name__, template_folder="templates")


class MissingForm(Form):
    crate = WholeNumber(validators=[required], minimum=1)
    reason = Text(max_length=300, validators=[required])


@bp.get("/waves/<int:wave_id>/loading")
@staff_required
def routes(wave_id: int):
    """The wave's trucks with their crates scanned, and the stations' receiving pages."""
    wave = _wave(wave_id)
    plan = find_published_plan(g.session, wave_id=wave.id)
    stations = g.session.scalars(
        select(GridStation)
        .where(GridStation.region_id == wave.region_id)
        .order_by(GridStation.code)
    ).all()
    return render_template(
        "warehouse/loading_routes.html",
        wave=wave,
        plan=plan,
        trucks=list_loading_routes(g.session, wave=wave) if plan else [],
        stations=stations,
    )


def _route_page(route_id: int, *, error: str | None = None, status: int = 200):
    try:
        route, wave = get_loading_route(g.session, route_id=route_id, user=current_user.user)
    except NotFound:
        abort(404)
    states = loading_states(g.session, route_id=route.id)
    waiting = [c for c, state in states if state is None]
    return render_template(
        "warehouse/loading_route.html",
        wave=wave,
        route=route,
        states=states,
        waiting=waiting,
        scanned=sum(1 for _, s in states if isinstance(s, Handover)),
        loaded=find_route_loaded(g.session, route_id=route.id),
        error=error,
    ), status


@bp.get("/loading/<int:route_id>")
@staff_required
def route(route_id: int):
    return _route_page(route_id)


@bp.post("/loading/<int:route_id>/scan")
@staff_required
def scan(route_id: int):
    """One crate scanned onto the truck: recorded once, or refused saying why."""
    try:
        code = parse(ScanForm, request.form).code.data
    except InvalidForm:
        return _route_page(route_id, error=_("Scan or type a crate code."), status=422)
    try:
        done = scan_loaded(
            g.session, route_id=route_id, scanned=code, user=current_user.user, now=utcnow()
        )
    except NotFound:
        abort(404)
    except ScanRefused as err:
        g.rollback = True
        wave = get_loading_route(g.session, route_id=route_id, user=current_user.user)[1]
        return _route_page(route_id, error=refusal_message(err, wave.region.tz), status=409)
    flash(
        _(
            "Loaded: crate %(code)s (load number %(n)d).",
            code=done.crate.code,
            n=done.load.trunk_load_seq or 0 if done.load else 0,
        )
    )
    return redirect(url_for(".route", route_id=route_id))


@bp.post("/loading/<int:route_id>/missing")
@staff_required
def missing(route_id: int):
    """A crate not there: recorded missing with the reason, so the truck can leave without it."""
    try:
        form = parse(MissingForm, request.form)
    except InvalidForm:
        return _route_page(route_id, error=_("Say why the crate is missing."), status=422)
    try:
        record_missing(
            g.session,
            route_id=route_id,
            crate_id=int(form.crate.data or 0),
            reason=form.reason.data,
            user=current_user.user,
            now=utcnow(),
        )
    except NotFound:
        abort(404)
    except InvalidInput:
        g.rollback = True
        return _route_page(route_id, error=_("Say why the crate is missing."), status=422)
    except ScanRefused as err:
        g.rollback = True
        wave = get_loading_route(g.session, route_id=route_id, user=current_user.user)[1]
        return _route_page(route_id, error=refusal_message(err, wave.region.tz), status=409)
    flash(_("Recorded as missing."))
    return redirect(url_for(".route", route_id=route_id))


@bp.post("/loading/<int:route_id>/done")
@staff_required
def done(route_id: int):
    """Mark the truck loaded: refused while a crate is neither scanned nor recorded missing."""
    try:
        _mark, created = mark_route_loaded(
            g.session, route_id=route_id, user=current_user.user, now=utcnow()
        )
    except NotFound:
        abort(404)
    except RouteNotLoaded as err:
        g.rollback = True
        return _route_page(
            route_id,
            error=_(
                "Not loaded yet: scan these crates or record them missing: %(codes)s",
                codes=", ".join(err.missing),
            ),
            status=409,
        )
    flash(_("The truck is marked loaded.") if created else _("The truck was already loaded."))
    return redirect(url_for(".route", route_id=route_id))


# --- receiving at a grid station ------------------------------------------------------------


def _station(wave: Wave, code: str) -> GridStation:
    station = g.session.scalars(
        select(GridStation).where(GridStation.region_id == wave.region_id, GridStation.code == code)
    ).first()
    if station is None:
        abort(404)
    return station


def _receiving_page(wave: Wave, station: GridStation, *, error=None, status=200):
    crates = crates_of_wave(g.session, wave.id, station=station.id, contents=False)
    received = step_states(g.session, crates=crates, step=Step.RECEIVED)
    loaded = step_states(g.session, crates=crates, step=Step.LOADED)
    return render_template(
        "warehouse/receiving.html",
        wave=wave,
        station=station,
        crates=crates,
        received=received,
        loaded=loaded,
        error=error,
    ), status


@bp.get("/waves/<int:wave_id>/receiving/<code>")
@staff_required
def receiving(wave_id: int, code: str):
    wave = _wave(wave_id)
    return _receiving_page(wave, _station(wave, code))


@bp.post("/waves/<int:wave_id>/receiving/<code>")
@staff_required
def receive(wave_id: int, code: str):
    """One crate off the truck at the station: recorded once, or refused saying why."""
    wave = _wave(wave_id)
    station = _station(wave, code)
    try:
        scanned = parse(ScanForm, request.form).code.data
    except InvalidForm:
        return _receiving_page(wave, station, error=_("Scan or type a crate code."), status=422)
    try:
        done = scan_received(
            g.session,
            wave=wave,
            station=station,
            scanned=scanned,
            user=current_user.user,
            now=utcnow(),
        )
    except NotFound:
        abort(404)
    except ScanRefused as err:
        g.rollback = True
        return _receiving_page(
            wave, station, error=refusal_message(err, wave.region.tz), status=409
        )
    flash(_("Received: crate %(code)s.", code=done.crate.code))
    return redirect(url_for(".receiving", wave_id=wave.id, code=station.code))
