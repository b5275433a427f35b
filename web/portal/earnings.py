"""The leader's earnings (佣金): today, this week and per wave, the commission accrued, settled
and reversed; a wave's lines. The leader's own point only (pickup staff do not see the
leader's money); anything else answers 404."""

from __future__ import annotations

from flask import current_app, g, render_template

from fulfilment.accounts.models import Role
from fulfilment.commission.earnings import (
    find_wave_of_point,
    leader_earnings,
    list_wave_earnings,
)
from fulfilment.points.point import bag_numbers, leader_region, local_today
from web.security import roles_required

from .views import _leader, bp

leader_required = roles_required(Role.LEADER)


@bp.get("/earnings")
@leader_required
def earnings():
    leader = _leader()
    region = leader_region(g.session, leader)
    summary = leader_earnings(
        g.session, leader_id=leader.id, tz=region.tz, today=local_today(g.session, leader)
    )
    days = current_app.config["GROUPBUY_SETTINGS"].after_sales_days
    return render_template("leader/earnings.html", earnings=summary, window_days=days)


@bp.get("/earnings/<int:wave_id>")
@leader_required
def wave_earnings(wave_id: int):
    leader = _leader()
    wave = find_wave_of_point(g.session, leader_id=leader.id, wave_id=wave_id)
    lines = list_wave_earnings(g.session, leader_id=leader.id, wave_id=wave.id)
    region = leader_region(g.session, leader)
    bags = bag_numbers(g.session, wave_id=wave.id, leader_id=leader.id)
    return render_template(
        "leader/earnings_wave.html", wave=wave, lines=lines, bags=bags, tz=region.tz
    )
