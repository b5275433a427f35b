"""The API's webhook endpoints (`/api/v1/webhooks/endpoints`): a platform registers where its
orders' events go, lists them, removes one. The secret is in the answer to the POST only."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from flask import Response, current_app, g, url_for

from fulfilment.core.errors import NotFound
from fulfilment.events.models import WebhookEndpoint
from fulfilment.platforms.webhooks import (
    EVENT_NAMES,
    add_endpoint,
    list_endpoints,
    remove_endpoint,
)

from .views import BadRequest, FieldError, _client, _commit, _json, _json_body, _unknown, bp

ENDPOINT_ID_MAX = 2**31 - 1


def parse_endpoint_body(body: Any) -> tuple[str, list[str] | None]:
    """The URL and event types asked for, or BadRequest naming every field at fault (the URL's
    own rules are add_endpoint's: an InvalidInput on `url` is a 422 at /url)."""
    errors: list[FieldError] = []
    if not isinstance(body, dict):
        raise BadRequest(
            422,
            "invalid-body",
            "The body is not a webhook endpoint",
            [FieldError("", "must be an object")],
        )
    _unknown(body, {"url", "events"}, "", errors)
    url = body.get("url")
    if "url" not in body:
        errors.append(FieldError("/url", "is required"))
    elif not isinstance(url, str):
        errors.append(FieldError("/url", "must be a string"))
    events = body.get("events")
    chosen: list[str] | None = None
    if events is not None:
        if not isinstance(events, list):
            errors.append(FieldError("/events", "must be an array of event types"))
        else:
            chosen = []
            for n, name in enumerate(events):
                if not isinstance(name, str) or name not in EVENT_NAMES:
                    errors.append(
                        FieldError(f"/events/{n}", f"must be one of {', '.join(EVENT_NAMES)}")
                    )
                else:
                    chosen.append(name)
    if errors:
        raise BadRequest(422, "invalid-field", "Fields are not valid", errors)
    return str(url), chosen


def _allow_private() -> bool:
    """GROUPBUY_WEBHOOK_ALLOW_PRIVATE (app config or environment): internal addresses allowed."""
    raw = current_app.config.get("GROUPBUY_WEBHOOK_ALLOW_PRIVATE")
    raw = raw if raw is not None else os.environ.get("GROUPBUY_WEBHOOK_ALLOW_PRIVATE", "")
    return str(raw).strip().lower() in ("1", "true", "yes")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def endpoint_json(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.event_types(),
        "created_at": _iso(endpoint.created_at),
    }
    if secret is not None:
        answer["secret"] = secret
    return answer


@bp.post("/webhooks/endpoints")
def create_webhook_endpoint() -> Response:
    url, events = parse_endpoint_body(_json_body())
    endpoint, secret = add_endpoint(
        g.session,
        client=_client(),
        url=url,
        events=events,
        actor=_client().actor,
        allow_private=_allow_private(),
    )
    _commit()
    response = _json(endpoint_json(endpoint, secret), 201)
    response.headers["Location"] = url_for(".delete_webhook_endpoint", endpoint_id=str(endpoint.id))
    return response


@bp.get("/webhooks/endpoints")
def list_webhook_endpoints() -> Response:
    rows = list_endpoints(g.session, client=_client())
    return _json({"endpoints": [endpoint_json(e) for e in rows]})


@bp.delete("/webhooks/endpoints/<endpoint_id>")
def delete_webhook_endpoint(endpoint_id: str) -> Response:
    if not (endpoint_id.isascii() and endpoint_id.isdigit()) or not (
        0 < int(endpoint_id) <= ENDPOINT_ID_MAX
    ):
        raise NotFound(f"webhook endpoint {endpoint_id[:40]!r} not found")
    remove_endpoint(
        g.session, client=_client(), endpoint_id=int(endpoint_id), actor=_client().actor
    )
    _commit()
    return Response(status=204)
