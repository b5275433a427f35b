"""The admin's desk (`admin` only; every other role gets 404): the landing page that links every
admin page and the other desks, the read-only lists (API clients, the audit log) and the refund
export. The records, the imports, the commission rates and the failed webhook messages are their
own modules on the same blueprint (`web.admin.records`, `imports`, `commission`, `webhooks`);
importing this module registers them all.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, time, timedelta

from flask import (
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import func, select

from fulfilment.accounts.models import User
from fulfilment.catalogue.fleet import Vehicle
from fulfilment.core.audit import list_changes
from fulfilment.core.models import (
    Leader,
    Product,
    Region,
    Wave,
    WaveStatus,
)
from fulfilment.orders.refunds import export_refunds, list_refunds, summarise_refunds
from fulfilment.orders.refunds import write_refunds_csv as refunds_csv
from fulfilment.platforms.clients import list_api_clients

from . import commission, imports, records, webhooks  # noqa: F401 - their routes join the blueprint
from .blueprint import PAGE, admin_required, bp, current_actor, field_error
from .forms import AuditFilterForm, first_error

__all__ = ["bp"]


# --- the landing page ---------------------------------------------------------------------------


@bp.get("/")
@admin_required
def index():
    """Every admin page, the dispatcher's desk, and each region's latest pick lists."""
    latest = {
        r.code: g.session.scalar(
            select(Wave)
            .where(Wave.region_id == r.id, Wave.status == WaveStatus.CUT_OFF)
            .order_by(Wave.delivery_date.desc())
            .limit(1)
        )
        for r in g.session.scalars(select(Region).order_by(Region.code))
    }
    counts = {
        "regions": g.session.scalar(select(func.count()).select_from(Region)),
        "leaders": g.session.scalar(select(func.count()).select_from(Leader)),
        "products": g.session.scalar(select(func.count()).select_from(Product)),
        "vehicles": g.session.scalar(select(func.count()).select_from(Vehicle)),
        "users": g.session.scalar(select(func.count()).select_from(User)),
    }
    return render_template("admin/index.html", latest=latest, counts=counts)


# --- read-only: API clients, the audit log ------------------------------------------------------


@bp.get("/api-clients")
@admin_required
def api_clients():
    """The shop platforms that call the order API (tokens are never shown: only their hash is
    stored). Created and revoked with `groupbuy api-client`."""
    return render_template("admin/api_clients.html", clients=list_api_clients(g.session))


@bp.get("/audit")
@admin_required
def audit():
    """The audit log, newest first, filtered by who, action and dates (UTC), a page at a time."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        field, detail = first_error(form) or ("form", "")
        g.rollback = True
        return render_template(
            "admin/audit.html",
            form=form,
            entries=[],
            page=1,
            more=False,
            error=field_error(form, field, detail),
        ), 422
    page = form.page.data or 1
    since = datetime.combine(form.since.data, time(0), UTC) if form.since.data else None
    until = (
        datetime.combine(form.until.data + timedelta(days=1), time(0), UTC)
        if form.until.data
        else None
    )
    entries, more = list_changes(
        g.session,
        actor=form.actor.data or None,
        action=form.action.data or None,
        since=since,
        until=until,
        offset=(page - 1) * PAGE,
        limit=PAGE,
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "admin/audit.html",
        form=form,
        entries=entries,
        page=page,
        more=more,
        args=args,
        error=None,
    )


# --- refunds: the claim-first export ------------------------------------------------------------


BATCH = re.compile(r"^[0-9a-f]{32}$")


@bp.get("/refunds")
@admin_required
def refunds():
    """Each region's cut-off waves with the refunds owed and the exports made so far."""
    waves = list(
        g.session.scalars(
            select(Wave)
            .where(Wave.status == WaveStatus.CUT_OFF)
            .order_by(Wave.delivery_date.desc(), Wave.id)
            .limit(60)
        )
    )
    summary = summarise_refunds(g.session, wave_ids=[w.id for w in waves])
    regions = {r.id: r for r in g.session.scalars(select(Region))}
    return render_template("admin/refunds.html", waves=waves, summary=summary, regions=regions)


@bp.post("/refunds/<int:wave_id>/export")
@admin_required
def export(wave_id: int):
    """Claim the wave's owed refunds for a new batch (one UPDATE … WHERE state = 'owed'), then
    offer the batch's file: two admins exporting at once hand each refund over once."""
    if g.session.get(Wave, wave_id) is None:
        abort(404)
    n = export_refunds(g.session, wave_id=wave_id, out=io.StringIO(), actor=current_actor())
    if n == 0:
        flash(_("Nothing owed on this wave: no export made."))
    else:
        flash(_("%(n)d refund(s) exported. Download the batch's file below.", n=n))
    return redirect(url_for("admin.refunds"))


@bp.get("/refunds/<int:wave_id>/<batch>.csv")
@admin_required
def refund_batch(wave_id: int, batch: str):
    """One export batch as CSV (UTF-8 with BOM, for spreadsheet programs); as often as needed."""
    if not BATCH.match(batch) or g.session.get(Wave, wave_id) is None:
        abort(404)
    rows = list_refunds(g.session, wave_id=wave_id, batch=batch)
    if not rows:
        abort(404)
    out = io.StringIO()
    out.write("\ufeff")
    refunds_csv(rows, out)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=refunds-{wave_id}-{batch}.csv"},
    )
