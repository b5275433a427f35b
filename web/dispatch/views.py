"""The dispatcher's desk, for `dispatcher` (its region) and `admin` (all): the waves with their
plans, one wave's plan versions and figures, the plan on a map and in a table, and the plan as
GeoJSON. Read-only. Another region's wave or plan is not found (404).

The map is Leaflet from the desk's own static files; tiles only when `GROUPBUY_TILE_URL` is set
(then the Content-Security-Policy of these pages lets images come from that one origin).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, jsonify, render_template, request
from flask_login import current_user
from sqlalchemy import select

from fulfilment.accounts.models import Role
from fulfilment.core.errors import NotFound
from fulfilment.core.models import Region, Wave, WaveStatus
from fulfilment.night.overview import (
    get_wave_plan,
    list_plan_versions,
    list_route_rows,
    plan_geojson,
    plan_versions_by_wave,
    shown_plan,
    wave_figures,
)
from fulfilment.night.plans import RoutePlan
from web.security import CONTENT_SECURITY_POLICY, region_or_404, roles_required

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
        parts = urlsplit(tile_url.replace("{s}", "a"))
        origin = f"{parts.scheme}://{parts.netloc}"
        if "{s}" in tile_url:
            origin = f"{parts.scheme}://*.{parts.netloc.split('.', 1)[-1]}"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "img-src 'self' data: blob:", f"img-src 'self' data: blob: {origin}"
        )
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
    return render_template(
        "dispatch/wave.html",
        wave=wave,
        region=region,
        versions=versions,
        plan=plan,
        figures=wave_figures(g.session, wave=wave, plan=plan),
        routes=list_route_rows(g.session, plan=plan) if plan else [],
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
