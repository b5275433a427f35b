"""The admin's CSV imports (leaders, products, vehicles, orders): upload → a preview with every
error by line and field and the rows that would be written, nothing written → confirm, which
writes the whole file or nothing. The previews reuse the importers (see docs/admin.md).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from fulfilment.catalogue.fleet import import_fleet, preview_fleet
from fulfilment.catalogue.imports import import_leaders, import_products
from fulfilment.core.csvimport import ImportFailed, ImportPreview, RowError, decode
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Region
from fulfilment.orders.importer import import_orders, preview_orders

from .blueprint import admin_required, bp, current_actor, region_choices

# --- CSV imports: upload, preview, confirm ------------------------------------------------------

IMPORTS: dict[str, tuple[Any, str]] = {
    "leaders": (
        _l("Leaders"),
        "code,station,name,phone,pickup_name,address,lat,lon,window_open,window_close,active",
    ),
    "products": (_l("Products"), "sku,name,weight_g,volume_ml,zone,bin_code,supplier"),
    "fleet": (
        _l("Vehicles"),
        "code,region,home,kind,weight_kg,volume_l,crates,zones,"
        "shift_start,shift_end,max_hours,break_earliest,break_latest,break_minutes,"
        "speed_kmh,profile,fixed_cost,active",
    ),
    "orders": (
        _l("Orders"),
        "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity",
    ),
}
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


UPLOAD_KEPT = timedelta(days=1)


def _uploads() -> Path:
    """The folder where previewed uploads wait; those never confirmed go after a day."""
    folder = Path(current_app.instance_path) / "admin-imports"
    folder.mkdir(parents=True, exist_ok=True)
    stale = datetime.now(UTC).timestamp() - UPLOAD_KEPT.total_seconds()
    for old in folder.glob("*.csv"):
        if old.stat().st_mtime < stale:
            old.unlink(missing_ok=True)
    return folder


def _upload_path(kind: str, token: str) -> Path:
    """Where an upload waits for its confirmation: the kind, the admin and a random token."""
    return _uploads() / f"{kind}-{current_user.id}-{token}.csv"


def _import_region(kind: str) -> Region | None:
    """The region an orders file is for (orders only); a missing or unknown one is an error."""
    if kind != "orders":
        return None
    raw = request.form.get("region", "")
    region = g.session.get(Region, int(raw)) if raw.isascii() and raw.isdigit() else None
    if region is None:
        raise InvalidInput("file", "region", "choose the region the orders are for")
    return region


def _preview(kind: str, data: bytes, region: Region | None) -> tuple[ImportPreview, int]:
    """What the file would write and every error; nothing is written (rolled back)."""
    text = decode(data)
    if kind == "orders":
        assert region is not None
        try:
            return preview_orders(g.session, region=region, data=data)
        except InvalidInput as err:  # the header: no row was read
            return ImportPreview(errors=[RowError(1, err.field, err.message)]), 0
    if kind == "fleet":
        return preview_fleet(g.session, text=text), 0
    run = import_leaders if kind == "leaders" else import_products
    try:
        return run(g.session, text=text, actor=current_actor(), dry_run=True), 0
    except ImportFailed as err:  # the header was refused: no row was read
        return ImportPreview(errors=err.errors), 0


def _import_page(kind: str, *, status: int = 200, **context: Any):
    title, columns = IMPORTS[kind]
    context.setdefault("preview", None)
    context.setdefault("error", None)
    return render_template(
        "admin/import.html",
        kind=kind,
        title=title,
        columns=columns,
        regions=region_choices(),
        **context,
    ), status


@bp.route("/import/<kind>", methods=["GET", "POST"])
@admin_required
def import_file(kind: str):
    """Upload a CSV file: the preview shows every error by line and field, and the rows that
    would be written; nothing is written until the admin confirms."""
    if kind not in IMPORTS:
        abort(404)
    if request.method == "GET":
        return _import_page(kind)
    g.rollback = True  # a preview never writes
    upload = request.files.get("file")
    data = upload.read() if upload is not None else b""
    try:
        if not data:
            raise InvalidInput("file", "file", "choose a CSV file")
        region = _import_region(kind)
        preview, replays = _preview(kind, data, region)
    except InvalidInput as err:
        g.session.rollback()
        message = (
            _("Choose the region the orders are for.")
            if err.field == "region"
            else (_("Choose a CSV file (UTF-8 or GBK)."))
        )
        return _import_page(kind, status=422, error=f"{message} ({err.message})")
    g.session.rollback()
    token = ""
    if not preview.errors:
        token = secrets.token_urlsafe(24)
        _upload_path(kind, token).write_bytes(data)
    return _import_page(
        kind,
        status=200 if not preview.errors else 422,
        preview=preview,
        replays=replays,
        token=token,
        region_id=region.id if region else "",
    )


@bp.post("/import/<kind>/confirm")
@admin_required
def import_confirm(kind: str):
    """Write the previewed file, all or nothing: it is checked again as it is written, and a
    row refused now (a code taken meanwhile, stock sold) writes nothing of the file."""
    if kind not in IMPORTS:
        abort(404)
    token = request.form.get("token", "")
    path = _upload_path(kind, token) if TOKEN.match(token) else None
    if path is None or not path.exists():
        return _import_page(
            kind, status=422, error=_("The upload has expired or was imported. Upload it again.")
        )
    data = path.read_bytes()
    try:
        region = _import_region(kind)
        text = decode(data)
        if kind == "orders":
            assert region is not None
            report = import_orders(g.session, region=region, data=data, actor=current_actor())
            done = _(
                "Imported %(n)d order(s); %(old)d were imported before.",
                n=report.orders_imported,
                old=report.orders_already_present,
            )
        elif kind == "fleet":
            fleet = import_fleet(g.session, text=text, actor=current_actor())
            done = _("Vehicles: %(a)d added, %(c)d changed.", a=fleet.added, c=fleet.updated)
        else:
            run = import_leaders if kind == "leaders" else import_products
            result = run(g.session, text=text, actor=current_actor())
            done = _("Imported: %(a)d added, %(c)d changed.", a=result.added, c=result.changed)
    except ImportFailed as err:
        g.rollback = True
        g.session.rollback()
        return _import_page(kind, status=422, preview=ImportPreview(errors=err.errors), replays=0)
    except InvalidInput as err:
        g.rollback = True
        g.session.rollback()
        return _import_page(
            kind, status=422, preview=ImportPreview(errors=[RowError(1, err.field, err.message)])
        )
    path.unlink(missing_ok=True)
    flash(done)
    target = {"fleet": "vehicles", "orders": None}.get(kind, kind)
    return redirect(url_for(f"admin.list_{target}") if target else url_for("admin.index"))
