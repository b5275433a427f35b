"""The dispatcher's desk, for `dispatcher` (its region) and `admin` (all): the waves with their
plans, one wave's plan versions and figures, the plan on a map and in a table, and the plan as
GeoJSON; corrections (a stop moved, locked or taken off, late stops added, a station re-planned),
each made into a new draft version off the web process, then reviewed against the published
version and published. Another region's wave or plan is not found (404).

The map is Leaflet from the desk's own static files; tiles only when `GROUPBUY_TILE_URL` is set
(then the Content-Security-Policy of these pages lets images come from that one origin).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from fulfilment.accounts.models import Role
from fulfilment.catalogue.fleet import Vehicle, VehicleKind
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import Region, Wave, WaveStatus
from fulfilment.night.corrections import (
    PlanConflict,
    latest_corrections,
    locks_of,
    plan_diff,
    publish_version,
    request_correction,
    start_correction,
    started_routes,
)
from fulfilment.night.overview import (
    get_wave_plan,
    list_plan_versions,
    list_route_rows,
    plan_geojson,
    plan_versions_by_wave,
    shown_plan,
    wave_figures,
)
from fulfilment.night.plans import (
    CorrectionKind,
    CorrectionStatus,
    PlanCorrection,
    PlanStatus,
    RoutePlan,
)
from fulfilment.points.delivery import delivery_day, point_figures
from web.forms import InvalidForm, Text, WholeNumber, form_of, parse
from web.security import csp_allowing_tiles, region_or_404, roles_required

bp = Blueprint(
    "dispatch",
    __name__,
    url_prefix="/dispatch",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
dispatcher_required = roles_required(Role.DISPATCHER, Role.ADMIN)
WAVES_SHOWN = 14


def _wave(wave_id: int) -> Wave:
    wave = g.session.get(Wave, wave_id)
    if wave is None:
        abort(404)
    region_or_404(wave.region_id)
    return wave


@bp.after_request
def _tiles_allowed(response):
    """With a tile server configured, the map's images may come from its origin too."""
    tile_url = current_app.config["GROUPBUY_SETTINGS"].tile_url
    if tile_url and request.endpoint in ("dispatch.wave",):
        response.headers["Content-Security-Policy"] = csp_allowing_tiles(tile_url)
    return response


@bp.get("/")
@dispatcher_required
def index():
    """The dispatcher's landing page: each region's recent waves with their plan versions."""
    regions = [
        r
        for r in g.session.scalars(select(Region).order_by(Region.code))
        if current_user.sees_region(r.id)
    ]
    waves = {
        r.id: g.session.scalars(
            select(Wave)
            .where(Wave.region_id == r.id)
            .order_by(Wave.delivery_date.desc())
            .limit(WAVES_SHOWN)
        ).all()
        for r in regions
    }
    plans = plan_versions_by_wave(g.session, wave_ids=[w.id for ws in waves.values() for w in ws])
    return render_template(
        "dispatch/index.html",
        regions=regions,
        waves=waves,
        plans=plans,
        shown_plan=shown_plan,
    )


@bp.get("/waves/<int:wave_id>")
@dispatcher_required
def wave(wave_id: int):
    """One wave: its plan versions, its figures, and one version on the map and in the table
    (`?plan=<id>`; by default the published one, else the newest)."""
    wave = _wave(wave_id)
    region = g.session.get(Region, wave.region_id)
    versions = list_plan_versions(g.session, wave=wave)
    chosen = request.args.get("plan", "")
    plan: RoutePlan | None
    if chosen:
        if not (chosen.isascii() and chosen.isdigit()) or len(chosen) > 10:
            abort(404)
        try:
            plan = get_wave_plan(g.session, wave=wave, plan_id=int(chosen))
        except NotFound:
            abort(404)
    else:
        plan = shown_plan(versions)
    settings = current_app.config["GROUPBUY_SETTINGS"]
    changeable = plan is not None and plan.status in (PlanStatus.DRAFT, PlanStatus.PUBLISHED)
    route_rows = list_route_rows(g.session, plan=plan) if plan else []
    return render_template(
        "dispatch/wave.html",
        changeable=changeable,
        stops=_last_mile_stops(plan) if changeable and plan else [],
        vans=_vans(wave) if changeable else [],
        stations=sorted({r.station for r in route_rows if r.station}),
        started=sorted(started_routes(g.session, plan, _now())) if changeable and plan else [],
        locks=locks_of(g.session, plan) if plan else {},
        corrections=latest_corrections(g.session, wave_id=wave.id, limit=5),
        wave=wave,
        region=region,
        versions=versions,
        plan=plan,
        figures=wave_figures(g.session, wave=wave, plan=plan),
        points=point_figures(g.session, wave=wave),
        routes=route_rows,
        cut_off=wave.status == WaveStatus.CUT_OFF,
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
    )


@bp.get("/plans/<int:plan_id>.geojson")
@dispatcher_required
def plan_geojson_view(plan_id: int):
    """The plan as GeoJSON: routes (LineString), stops (Point, with sequence and ETA in UTC) and
    unassigned stops (Point, with the reason)."""
    plan = g.session.get(RoutePlan, plan_id)
    if plan is None:
        abort(404)
    _wave(plan.wave_id)
    response = jsonify(plan_geojson(g.session, plan=plan))
    response.mimetype = "application/geo+json"
    return response


# ---------------------------------------------------------------------------------------------
# Corrections


def _now():
    """The desk's clock (a test sets GROUPBUY_CLOCK to judge what has started at its hour)."""
    clock = current_app.config.get("GROUPBUY_CLOCK")
    return clock() if clock else datetime.now(UTC)


def _last_mile_stops(plan: RoutePlan) -> list[str]:
    from fulfilment.night.plans import Echelon, PlanRoute, PlanStop, PlanUnassigned

    routed = g.session.scalars(
        select(PlanStop.stop_code)
        .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
        .where(PlanRoute.plan_id == plan.id, PlanRoute.echelon == Echelon.LAST_MILE)
    ).all()
    unassigned = g.session.scalars(
        select(PlanUnassigned.stop_code).where(
            PlanUnassigned.plan_id == plan.id, PlanUnassigned.echelon == Echelon.LAST_MILE
        )
    ).all()
    return sorted(set(routed) | set(unassigned))


def _vans(wave: Wave) -> list[str]:
    return list(
        g.session.scalars(
            select(Vehicle.code)
            .where(Vehicle.region_id == wave.region_id, Vehicle.kind == VehicleKind.LAST_MILE)
            .order_by(Vehicle.code)
        )
    )


CorrectionForm = form_of(
    {
        "kind": Text(max_length=16),
        "stop": Text(max_length=32),
        "vehicle": Text(max_length=32),
        "position": WholeNumber(minimum=1, maximum=9999),
        "station": Text(max_length=32),
    }
)


def _plan(plan_id: int) -> tuple[RoutePlan, Wave]:
    plan = g.session.get(RoutePlan, plan_id)
    if plan is None:
        abort(404)
    return plan, _wave(plan.wave_id)


@bp.post("/plans/<int:plan_id>/corrections")
@dispatcher_required
def correct(plan_id: int):
    """A change to the version shown: checked here, queued, and made into a new draft by a
    worker (RQ, or a process of its own); the browser follows the correction's page."""
    plan, wave = _plan(plan_id)
    back = url_for("dispatch.wave", wave_id=wave.id, plan=plan.id)
    try:
        form = parse(CorrectionForm, request.form)
        try:
            kind = CorrectionKind(form.kind.data)
        except ValueError:
            raise InvalidForm("kind", "unknown change") from None
        correction = request_correction(
            g.session,
            plan_id=plan.id,
            kind=kind,
            actor=current_user.actor,
            now=_now(),
            stop_code=form.stop.data or None,
            vehicle_code=form.vehicle.data or None,
            position=form.position.data,
            station_code=form.station.data or None,
        )
    except (InvalidForm, InvalidInput) as err:
        g.rollback = True
        flash(_("Not changed: %(why)s", why=str(err)))
        return redirect(back, 303)
    g.session.commit()  # the worker reads the correction from the database
    start_correction(current_app.config["GROUPBUY_SETTINGS"].database_url, correction.id)
    return redirect(url_for("dispatch.correction", correction_id=correction.id), 303)


@bp.get("/corrections/<int:correction_id>")
@dispatcher_required
def correction(correction_id: int):
    """A correction's progress (the page refreshes itself while the worker runs), then its
    draft against the published version."""
    c = g.session.get(PlanCorrection, correction_id)
    if c is None:
        abort(404)
    wave = _wave(c.wave_id)
    if c.status == CorrectionStatus.DONE and c.result_plan_id:
        return redirect(url_for("dispatch.diff", plan_id=c.result_plan_id), 303)
    return render_template(
        "dispatch/correction.html",
        c=c,
        wave=wave,
        running=c.status in (CorrectionStatus.QUEUED, CorrectionStatus.RUNNING),
    )


@bp.get("/plans/<int:plan_id>/diff")
@dispatcher_required
def diff(plan_id: int):
    """A version against the published one: stops that changed van or order, ETAs moved by more
    than 15 minutes, km and cost, and the rules it breaks; publish from here."""
    plan, wave = _plan(plan_id)
    region = g.session.get(Region, wave.region_id)
    return render_template(
        "dispatch/diff.html",
        plan=plan,
        wave=wave,
        region=region,
        diff=plan_diff(g.session, plan=plan),
    )


PublishForm = form_of({"seen": WholeNumber()})


@bp.post("/plans/<int:plan_id>/publish")
@dispatcher_required
def publish(plan_id: int):
    plan, wave = _plan(plan_id)
    try:
        seen = parse(PublishForm, request.form).seen.data
        published = publish_version(
            g.session, plan_id=plan.id, seen_published_id=seen, actor=current_user.actor, now=_now()
        )
    except (InvalidForm, InvalidInput, PlanConflict) as err:
        g.rollback = True
        flash(_("Not published: %(why)s", why=str(err)))
        return redirect(url_for("dispatch.diff", plan_id=plan.id), 303)
    flash(_("Version %(n)d published: leaders see its times now.", n=published.version))
    return redirect(url_for("dispatch.wave", wave_id=wave.id), 303)


@bp.get("/waves/<int:wave_id>/day")
@dispatcher_required
def day(wave_id: int):
    """The delivery day: each route of the published plan, stops delivered against their ETA,
    late ones marked."""
    wave = _wave(wave_id)
    region = g.session.get(Region, wave.region_id)
    now = _now()
    return render_template(
        "dispatch/day.html",
        wave=wave,
        region=region,
        routes=delivery_day(g.session, wave=wave, now=now),
        now=now,
    )
