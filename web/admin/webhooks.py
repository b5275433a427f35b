"""The admin's page of webhook messages that failed (retried for the whole retry window without a
2xx): counts by state, the failed messages a page at a time, by endpoint if asked, and sending
them again (one, or all of an active endpoint's). What `groupbuy webhooks status / failed`
print, with `fulfilment.events.delivery` doing the reads and the change.

Never shown: a message's payload (the platform has it; no pickup code is in an event anyway),
an endpoint's signing secret, a URL's query string (a platform may carry a token in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import utcnow
from fulfilment.events.delivery import (
    count_by_state,
    list_failed,
    list_failed_endpoints,
    retry_failed,
)
from fulfilment.events.models import MessageState
from fulfilment.platforms.clients import ApiClient, list_api_clients
from web.forms import InvalidForm, WholeNumber, form_of, parse
from web.i18n import local_datetime

from .blueprint import PAGE, admin_required, bp, current_actor, field_error
from .forms import FailedWebhooksFilterForm, first_error

ERROR_SHOWN = 120  # characters of the receiver's last error on the page (300 are kept)
MESSAGE_ID_MAX = 2**63 - 1  # message ids are 64-bit (the routes' default stops at 2**31 - 1)


def shown_url(url: str) -> str:
    """An endpoint's URL without its query and fragment (`?…` marks that there was one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0]
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return base + ("?…" if parts.query or parts.fragment else "")


def shortened(text: str | None, limit: int = ERROR_SHOWN) -> str:
    """One line of at most `limit` characters, control characters as spaces (the page escapes
    the rest)."""
    if not text:
        return ""
    flat = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Row:
    id: int
    endpoint_id: int
    url: str
    client: str
    event_type: str
    order_id: int | None
    created: str  # in the client's region's zone
    attempts: int
    last_status: int | None
    last_error: str
    active: bool


def _failed_page(
    *,
    endpoint_id: int | None,
    page: int,
    error: Any = None,
    refusal: tuple[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The page; `error` a refused filter (a FieldError), `refusal` a refused re-send (what the
    admin reads, and the service's detail)."""
    # every endpoint has its client (a foreign key): a few rows, each with its region's zone
    clients: dict[int, ApiClient] = {c.id: c for c in list_api_clients(g.session)}
    messages = list_failed(
        g.session, limit=PAGE + 1, offset=(page - 1) * PAGE, endpoint_id=endpoint_id
    )
    rows = [
        Row(
            m.id,
            m.endpoint_id,
            shown_url(m.url),
            clients[m.api_client_id].name,
            m.event_type,
            m.order_id,
            local_datetime(m.created_at, clients[m.api_client_id].region.tz, "short"),
            m.attempts,
            m.last_status,
            shortened(m.last_error),
            m.endpoint_active,
        )
        for m in messages[:PAGE]
    ]
    endpoints = [
        {
            "id": e.id,
            "url": shown_url(e.url),
            "client": clients[e.api_client_id].name,
            "active": e.active,
            "failed": e.failed,
        }
        for e in list_failed_endpoints(g.session)
    ]
    counts = count_by_state(g.session, endpoint_id=endpoint_id)
    states = [
        (_("Pending"), counts.get(MessageState.PENDING.value, 0)),
        (_("Delivered"), counts.get(MessageState.DELIVERED.value, 0)),
        (_("Failed"), counts.get(MessageState.FAILED.value, 0)),
        (_("Dropped"), counts.get(MessageState.DROPPED.value, 0)),
    ]
    return render_template(
        "admin/webhooks.html",
        rows=rows,
        endpoints=endpoints,
        states=states,
        endpoint_id=endpoint_id,
        page=page,
        more=len(messages) > PAGE,
        error=error,
        refusal=refusal,
    ), status


@bp.get("/webhooks/failed")
@admin_required
def failed_webhooks():
    """Counts by state, the endpoints with failed messages, and the failed messages, the newest
    first, 50 a page (?endpoint_id=ID: that endpoint's only)."""
    form = FailedWebhooksFilterForm(request.args)
    if not form.validate():
        field, detail = first_error(form) or ("form", "")
        g.rollback = True
        error = field_error(form, field, detail)
        return _failed_page(endpoint_id=None, page=1, error=error, status=422)
    return _failed_page(endpoint_id=form.endpoint_id.data, page=form.page.data or 1)


def _back(endpoint_id: int | None = None) -> Any:
    """Back to the list as the admin saw it (its endpoint filter, posted as `endpoint_id`)."""
    try:
        form = parse(form_of({"endpoint_id": WholeNumber(minimum=1)}), request.form)
        shown = form["endpoint_id"].data
    except InvalidForm:
        shown = None
    return redirect(url_for("admin.failed_webhooks", endpoint_id=shown or endpoint_id))


def _refused(err: InvalidInput, text: str) -> tuple[str, int]:
    g.rollback = True
    g.session.rollback()
    return _failed_page(endpoint_id=None, page=1, refusal=(text, str(err)), status=422)


@bp.post(f"/webhooks/failed/<int(max={MESSAGE_ID_MAX}):message_id>/retry")
@admin_required
def retry_failed_message(message_id: int):
    """Send one failed message again (same webhook-id, a new retry window); audited."""
    try:
        n = retry_failed(g.session, now=utcnow(), actor=current_actor(), message_ids=[message_id])
    except InvalidInput as err:
        return _refused(
            err,
            _(
                "Message evt_%(id)d belongs to an endpoint that was removed: it cannot be sent "
                "again.",
                id=message_id,
            ),
        )
    if n:
        flash(_("Message evt_%(id)d will be sent again.", id=message_id))
    else:
        flash(_("Message evt_%(id)d is no longer failed: nothing was sent again.", id=message_id))
    return _back()


@bp.post("/webhooks/endpoints/<int:endpoint_id>/retry")
@admin_required
def retry_failed_endpoint(endpoint_id: int):
    """Send every failed message of an active endpoint again; audited."""
    try:
        n = retry_failed(g.session, now=utcnow(), actor=current_actor(), endpoint_id=endpoint_id)
    except InvalidInput as err:
        return _refused(
            err,
            _(
                "Endpoint %(id)d was removed: its messages cannot be sent again.",
                id=endpoint_id,
            ),
        )
    flash(
        _(
            "%(n)d failed message(s) of endpoint %(id)d will be sent again.",
            n=n,
            id=endpoint_id,
        )
    )
    return _back(endpoint_id)
