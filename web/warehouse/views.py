"""The warehouse's pages (中心仓), read-only, for warehouse, dispatcher and admin: a wave's pick
lists for the warehouse, per station and per leader, as pages and JSON; the wave's print hub
(`/warehouse/waves/<id>`) with every printed document in every format (fulfilment/printing).

Each needs sign-in; a user sees only its region's waves (admin: all), anything else is 404.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, abort, g, jsonify, render_template, request
from flask_babel import get_locale, get_translations
from sqlalchemy import select

from fulfilment.core.models import GridStation, Wave
from fulfilment.printing.documents import NotPrintable, get_printable_wave
from fulfilment.printing.render import FORMATS, parse_format, parse_kind, render_document
from fulfilment.waves.cycle import local_time
from fulfilment.waves.picklists import (
    count_sorting_lists,
    list_sorting_lists,
    list_station_picks,
    list_warehouse_picks,
)
from web.security import region_or_404, staff_required

bp = Blueprint("warehouse", __name__, template_folder="templates")
SORTING_PAGE = 40


def int_arg(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole-number query parameter; anything else is a 400 naming the parameter."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, description=f"query parameter {name!r} must be a whole number, not {raw!r}")
    if minimum is not None and value < minimum:
        abort(400, description=f"query parameter {name!r} must be at least {minimum}")
    return value


def text_arg(name: str, *, max_len: int = 32) -> str | None:
    """A code in the query string (a station's, a leader's): printable and no longer than a code
    column, else a 400 naming the parameter (a NUL is refused by PostgreSQL, not by SQLite)."""
    raw = request.args.get(name) or None
    if raw is None:
        return None
    if len(raw) > max_len or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        abort(
            400,
            description=f"query parameter {name!r} must be a code of at most {max_len} printable characters",
        )
    return raw


def wave_or_404(wave_id: int) -> Wave:
    """The wave, if it is of a region the signed-in user sees; else 404 (the loading pages too)."""
    wave = g.session.get(Wave, wave_id)
    if wave is None:
        abort(404)
    region_or_404(wave.region_id)
    return wave


@bp.get("/waves/<int:wave_id>")
@staff_required
def wave_warehouse(wave_id: int):
    wave = wave_or_404(wave_id)
    rows = list_warehouse_picks(g.session, wave)
    return render_template(
        "warehouse/wave_warehouse.html", wave=wave, rows=rows, local_time=local_time
    )


@bp.get("/waves/<int:wave_id>/stations")
@staff_required
def wave_stations(wave_id: int):
    wave = wave_or_404(wave_id)
    return render_template(
        "warehouse/wave_stations.html", wave=wave, stations=list_station_picks(g.session, wave)
    )


@bp.get("/waves/<int:wave_id>/leaders")
@staff_required
def wave_leaders(wave_id: int):
    wave = wave_or_404(wave_id)
    station = text_arg("station")
    leader = text_arg("leader")
    page = int_arg("page", 1, minimum=1)
    total = count_sorting_lists(g.session, wave, station_code=station, leader_code=leader)
    shown = list_sorting_lists(
        g.session,
        wave,
        station_code=station,
        leader_code=leader,
        offset=(page - 1) * SORTING_PAGE,
        limit=SORTING_PAGE,
    )
    stations = g.session.scalars(
        select(GridStation.code)
        .where(GridStation.region_id == wave.region_id)
        .order_by(GridStation.code)
    ).all()
    return render_template(
        "warehouse/wave_leaders.html",
        wave=wave,
        lists=shown,
        page=page,
        total=total,
        per_page=SORTING_PAGE,
        station=station,
        leader=leader,
        stations=stations,
    )


@bp.get("/api/waves/<int:wave_id>/picks/<level>")
@staff_required
def api_picks(wave_id: int, level: str):
    wave = wave_or_404(wave_id)
    if level == "warehouse":
        return jsonify([asdict(r) for r in list_warehouse_picks(g.session, wave)])
    if level == "stations":
        return jsonify(
            {k: [asdict(r) for r in v] for k, v in list_station_picks(g.session, wave).items()}
        )
    if level == "leaders":
        return jsonify(
            [
                asdict(s)
                for s in list_sorting_lists(g.session, wave, station_code=text_arg("station"))
            ]
        )
    abort(404)


@bp.get("/warehouse/waves/<int:wave_id>")
@staff_required
def hub(wave_id: int):
    """Every document of the wave and every format, per station where a station's part prints
    on its own; what cannot print yet says what is missing."""
    wave = wave_or_404(wave_id)
    missing = None
    try:
        get_printable_wave(g.session, wave.id)
    except NotPrintable as err:
        missing = str(err)
    stations = g.session.scalars(
        select(GridStation.code)
        .where(GridStation.region_id == wave.region_id)
        .order_by(GridStation.code)
    ).all()
    return render_template(
        "warehouse/hub.html", wave=wave, formats=FORMATS, stations=stations, missing=missing
    )


@bp.get("/warehouse/waves/<int:wave_id>/print/<kind>.<fmt>")
@staff_required
def print_document(wave_id: int, kind: str, fmt: str):
    """One document as a download (an HTML page opens in the browser, to print from there)."""
    wave = wave_or_404(wave_id)
    document = parse_kind(kind)  # a bad kind or format is InvalidInput: a 422 naming it
    rendered = render_document(
        g.session,
        kind=document,
        wave_id=wave.id,
        format=parse_format(document, fmt),
        _=get_translations().gettext,
        locale=str(get_locale()),
        station_code=text_arg("station"),
    )
    disposition = "inline" if fmt == "html" else "attachment"
    return Response(
        rendered.content,
        mimetype=rendered.media_type.split(";")[0],
        headers={
            "Content-Disposition": f'{disposition}; filename="{rendered.filename}"',
            "Cache-Control": "no-store",  # masked, but still a list of a point's members
        },
    )
