"""The admin's blueprint (`/admin/`, role `admin` only: every other role gets 404) and what its
pages share: the page size, a refused field as the page shows it, the actor of every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    request,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from wtforms import Form

from fulfilment.accounts.models import Role
from fulfilment.core.models import Region
from web.error_pages import error_response
from web.forms import InvalidForm, WholeNumber, form_of, parse
from web.security import csp_allowing_tiles, roles_required

from .forms import HINTS

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
admin_required = roles_required(Role.ADMIN)
PAGE = 50


@bp.after_request
def _tiles_allowed(response):
    """A form with a map loads tiles from GROUPBUY_TILE_URL's origin, when one is set."""
    tile_url = current_app.config["GROUPBUY_SETTINGS"].tile_url
    if tile_url and request.endpoint and request.endpoint.startswith(("admin.new_", "admin.edit_")):
        response.headers["Content-Security-Policy"] = csp_allowing_tiles(tile_url)
    return response


# --- errors on a form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """A refused field: its name, its label in the user's language, what it takes (in the
    user's language) and the detail the layer or the service gave (English)."""

    field: str
    label: str
    hint: str
    detail: str


def _layer_detail(detail: str) -> str:
    """The field layer's fixed messages in the user's language; others (a service's, with the
    value in them) as they are."""
    fixed = {
        "is required": _("is required"),
        "must be a whole number": _("must be a whole number"),
        "must be a time HH:MM": _("must be a time HH:MM"),
        "Not a valid date value.": _("not a date"),
        "Not a valid choice.": _("not one of the choices"),
    }
    return str(fixed.get(detail, detail))


def field_error(
    form: Form, field: str, detail: str, *, hints: dict[str, Any] | None = None
) -> FieldError:
    """The refused field as a page shows it: its label and hint in the user's language (from
    `hints` when the form has its own, else the shared `HINTS`)."""
    detail = _layer_detail(detail)
    base = field.split("[", 1)[0]
    if base not in form._fields and base.endswith("_cents"):
        base = base.removesuffix("_cents")
    shown = form._fields.get(base)
    label = str(shown.label.text) if shown is not None else base
    return FieldError(base, label, str((HINTS if hints is None else hints).get(base, "")), detail)


def page_number() -> int:
    """The list's page from `?page=`: 1 when absent, a 400 page naming the field when not a
    whole number from 1 to 100,000."""
    try:
        form = parse(form_of({"page": WholeNumber(minimum=1, maximum=100_000)}), request.args)
    except InvalidForm as err:
        g.rollback = True
        abort(make_response(error_response(400, _("Bad request"), f"page: {err}")))
    return form["page"].data or 1


def current_actor() -> str:
    """The signed-in admin as the audit log names them (`user:<name>`)."""
    return current_user.actor


def record_choices(model: Any, *, key: str = "code", value: str = "id") -> list[tuple[str, str]]:
    """A select's choices: every record of `model` in the order of its `key` (code or SKU),
    shown as "key · name" and valued by its id (or by the attribute `value` names)."""
    return [
        (str(getattr(r, value)), f"{getattr(r, key)} · {r.name}")
        for r in g.session.scalars(select(model).order_by(getattr(model, key)))
    ]


def region_choices() -> list[tuple[str, str]]:
    return record_choices(Region)
