"""The start page after sign-in (a point's users go to their Today page; staff see their regions'
waves) and the health check."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from fulfilment.core.models import Order, Region, Wave
from fulfilment.waves.cycle import local_time
from web.security import AT_POINT

bp = Blueprint("home", __name__)


@bp.get("/healthz")
def healthz():
    g.session.execute(select(1))
    return {"status": "ok"}


@bp.get("/")
@login_required
def index():
    if current_user.role in AT_POINT:
        return redirect(url_for("leader.today"))
    regions = [
        r
        for r in g.session.scalars(select(Region).order_by(Region.code))
        if current_user.sees_region(r.id)
    ]
    waves = {
        r.id: g.session.scalars(
            select(Wave).where(Wave.region_id == r.id).order_by(Wave.delivery_date.desc()).limit(14)
        ).all()
        for r in regions
    }
    # Only the shown waves' orders are counted (ix_orders_wave_status), not every wave's.
    shown = [w.id for ws in waves.values() for w in ws]
    counts = (
        dict(
            g.session.execute(
                select(Order.wave_id, func.count())
                .where(Order.wave_id.in_(shown))
                .group_by(Order.wave_id)
            ).all()
        )
        if shown
        else {}
    )
    return render_template(
        "index.html", regions=regions, waves=waves, counts=counts, local_time=local_time
    )
