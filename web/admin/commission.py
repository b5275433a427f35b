"""The admin's page of commission rates (docs/commission.md): each region's default, the product
and deal overrides, in basis points and as a percent, and a form that sets one. What
`groupbuy commission rate list / set` do, through the same service (`set_rate`: checked and
audited there), so a form and the command accept exactly the same rates.

There is no "remove": the command has none either. An override is changed, not deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from fulfilment.commission.rates import REGION_SCOPE, list_rates, set_rate
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Region
from web.i18n import local_datetime

from .blueprint import admin_required, bp, current_actor, field_error
from .forms import RATE_HINTS, CommissionRateForm, first_error

# a service's field, as the form names it (`scope`: both a product and a deal were given)
FORM_FIELD = {"scope": "deal"}


def percent(bps: int) -> str:
    """Basis points as a percent: 300 → "3 %", 250 → "2.5 %", 1 → "0.01 %"."""
    return f"{bps / 100:g} %"


@dataclass(frozen=True)
class RateLine:
    region: str
    scope: str  # region, product, deal
    sku: str
    deal_id: int | None
    delivery_date: Any
    rate_bps: int
    percent: str
    updated: str  # in the region's zone
    updated_by: str


def _regions() -> list[Region]:
    return list(g.session.scalars(select(Region).order_by(Region.code)))


def _page(form: CommissionRateForm, *, error: Any = None, status: int = 200) -> tuple[str, int]:
    regions = _regions()
    zones = {r.code: r.tz for r in regions}
    lines = [
        RateLine(
            r.region,
            r.scope,
            r.sku or "",
            r.deal_id,
            r.delivery_date,
            r.rate_bps,
            percent(r.rate_bps),
            local_datetime(r.updated_at, zones[r.region], "short"),
            r.updated_by,
        )
        for r in list_rates(g.session)
    ]
    return render_template(
        "admin/commission_rates.html",
        form=form,
        lines=lines,
        error=error,
        region_scope=REGION_SCOPE,
    ), status


def _form(formdata: Any = None) -> CommissionRateForm:
    form = CommissionRateForm(formdata)
    form.region.choices = [(r.code, f"{r.code} · {r.name}") for r in _regions()]
    return form


def _refused(form: CommissionRateForm, field: str, detail: str) -> tuple[str, int]:
    g.rollback = True
    g.session.rollback()
    error = field_error(form, FORM_FIELD.get(field, field), detail, hints=RATE_HINTS)
    return _page(form, error=error, status=422)


@bp.route("/commission-rates", methods=["GET", "POST"])
@admin_required
def commission_rates():
    """The rates, and the form setting one (GET ?region=&product=&deal= fills it in, from a
    line's "Change" link)."""
    if request.method == "GET":
        return _page(_form(request.args or None))
    form = _form(request.form)
    if not form.validate():
        field, detail = first_error(form) or ("form", "")
        return _refused(form, field, detail)
    sku = form.product.data or None
    deal_id = form.deal.data
    try:
        set_rate(
            g.session,
            region_code=form.region.data,
            sku=sku,
            deal_id=deal_id,
            rate_bps=form.rate_bps.data,
            actor=current_actor(),
        )
    except InvalidInput as err:
        return _refused(form, err.field, err.message)
    if sku:
        scope = _("product %(sku)s", sku=sku)
    elif deal_id:
        scope = _("deal %(id)d", id=deal_id)
    else:
        scope = _("the region's default")
    flash(
        _(
            "Commission rate set: %(region)s, %(scope)s: %(bps)d bps (%(percent)s).",
            region=form.region.data,
            scope=scope,
            bps=form.rate_bps.data,
            percent=percent(form.rate_bps.data),
        )
    )
    return redirect(url_for("admin.commission_rates"))
