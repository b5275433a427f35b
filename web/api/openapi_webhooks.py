"""The webhook part of the OpenAPI document: the endpoints' registration (paths and schemas) and
the events themselves (OpenAPI 3.1's `webhooks` section), as docs/api.md shows them."""

from __future__ import annotations

from typing import Any

from fulfilment.events.models import EventType
from fulfilment.platforms.webhooks import URL_MAX

EVENT_NAMES = [t.value for t in EventType]
URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://[^\x00-\x20\x7f/?#@]+([/?#][^\x00-\x20\x7f]*)?$"
DATE_TIME = {"type": "string", "format": "date-time"}
CENTS = {"type": "integer", "minimum": 0}
KEY = {
    "type": ["string", "null"],
    "description": "The Idempotency-Key the order was placed with.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        **extra,
    }


ORDER_REF = {"order_id": {"type": "integer"}, "idempotency_key": KEY}

SCHEMAS: dict[str, Any] = {
    "WebhookEndpointRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "examples": [{"url": "https://shop.example.com/groupbuy/events"}],
        "properties": {
            "url": {
                "type": "string",
                "minLength": 8,
                "maxLength": URL_MAX,
                "pattern": URL_PATTERN,
                "description": "Where the events are POSTed: http or https, a host, no user info.",
            },
            "events": {
                "type": "array",
                "items": {"type": "string", "enum": EVENT_NAMES},
                "description": "The event types wanted; absent or empty: all of them.",
            },
        },
    },
    "WebhookEndpoint": _object(
        {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": EVENT_NAMES}},
            "created_at": DATE_TIME,
        }
    ),
    "WebhookEndpointCreated": {
        "allOf": [
            _ref("WebhookEndpoint"),
            _object(
                {
                    "secret": {
                        "type": "string",
                        "pattern": "^whsec_[A-Za-z0-9+/=]+$",
                        "description": "The signing secret, shown this once: "
                        "`whsec_` and base64 of the HMAC key's bytes.",
                    }
                }
            ),
        ]
    },
    "WebhookEndpointList": _object(
        {"endpoints": {"type": "array", "items": _ref("WebhookEndpoint")}}
    ),
}

LINE = _object(
    {
        "sku": {"type": "string"},
        "quantity": {"type": "integer"},
        "unit_price_cents": CENTS,
    }
)
EVENT_DATA: dict[str, tuple[str, dict[str, Any]]] = {
    "order.accepted": (
        "The order was placed (its pickup code is in the API's answer, never in an event).",
        {
            **ORDER_REF,
            "leader": {"type": "string"},
            "delivery_date": {"type": "string", "format": "date"},
            "late": {"type": "boolean"},
            "placed_at": DATE_TIME,
            "lines": {"type": "array", "items": LINE},
            "total_cents": CENTS,
        },
    ),
    "order.late": (
        "The order came after its wave's cutoff: it goes with the next wave, on `delivery_date`.",
        {
            **ORDER_REF,
            "leader": {"type": "string"},
            "delivery_date": {"type": "string", "format": "date"},
        },
    ),
    "order.cut_off": (
        "The wave was cut off: each line's final (tier) price, what the order finally costs, "
        "and the refund owed for the difference or for a group that failed.",
        {
            **ORDER_REF,
            "delivery_date": {"type": "string", "format": "date"},
            "status": {"type": "string", "enum": ["placed", "cancelled_for_refund"]},
            "paid_cents": CENTS,
            "final_total_cents": CENTS,
            "refund_owed_cents": CENTS,
            "lines": {
                "type": "array",
                "items": _object(
                    {
                        "sku": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "unit_price_cents": CENTS,
                        "final_price_cents": {"type": ["integer", "null"]},
                        "status": {"type": "string", "enum": ["active", "cancelled"]},
                    }
                ),
            },
        },
    ),
    "order.cancelled": (
        "The order is cancelled: by the member (`member`) or because every group in it failed "
        "at the cutoff (`group_failed`, the refund follows as refund.owed).",
        {
            **ORDER_REF,
            "reason": {"type": "string", "enum": ["member", "group_failed"]},
            "cancelled_at": DATE_TIME,
        },
    ),
    "order.arrived": (
        "The goods arrived at the pickup point; `short` lists what did not, with its refund.",
        {
            **ORDER_REF,
            "leader": {"type": "string"},
            "delivery_date": {"type": "string", "format": "date"},
            "arrived_at": DATE_TIME,
            "short": {
                "type": "array",
                "items": _object(
                    {"sku": {"type": "string"}, "units": {"type": "integer"}, "refund_cents": CENTS}
                ),
            },
        },
    ),
    "order.collected": (
        "The member collected the order; `lines` is what was handed over.",
        {
            **ORDER_REF,
            "leader": {"type": "string"},
            "collected_at": DATE_TIME,
            "lines": {
                "type": "array",
                "items": _object({"sku": {"type": "string"}, "quantity": {"type": "integer"}}),
            },
        },
    ),
    "refund.owed": (
        "Money is owed back on a line: the final tier price was lower (`tier_price`), its group "
        "failed (`group_failed`), units arrived short (`shortage`), or after the handover the "
        "member's complaint was upheld (`after_sales`, the amount agreed).",
        {
            **ORDER_REF,
            "refund_id": {"type": "integer"},
            "sku": {"type": "string"},
            "reason": {
                "type": "string",
                "enum": ["tier_price", "group_failed", "shortage", "after_sales"],
            },
            "amount_cents": CENTS,
        },
    ),
    "plan.published": (
        "The night's route plan was published: when the goods reach the order's pickup point "
        "(`eta`, null when no route serves it).",
        {
            **ORDER_REF,
            "leader": {"type": "string"},
            "delivery_date": {"type": "string", "format": "date"},
            "plan_version": {"type": "integer"},
            "eta": {"type": ["string", "null"], "format": "date-time"},
        },
    ),
}


def _schema_name(event: str) -> str:
    return "".join(part.title() for part in event.replace(".", "_").split("_")) + "Event"


for _event, (_about, _data) in EVENT_DATA.items():
    SCHEMAS[_schema_name(_event)] = _object(
        {
            "id": {"type": "string", "pattern": "^evt_[0-9]+$", "description": "= webhook-id"},
            "type": {"const": _event},
            "timestamp": DATE_TIME,
            "data": _object(_data),
        },
        description=_about,
    )

SIGNATURE_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event's id: the same on every retry and replay; deduplicate on it.",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "When this attempt was sent, in Unix seconds; refuse one far from now.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under the "
        "secret's decoded bytes (Standard Webhooks).",
        "schema": {"type": "string"},
    },
]


def webhooks_section() -> dict[str, Any]:
    """OpenAPI 3.1 `webhooks`: one signed POST per event type."""
    return {
        event: {
            "post": {
                "operationId": "event_" + event.replace(".", "_"),
                "summary": about,
                "parameters": SIGNATURE_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(_schema_name(event))}},
                },
                "responses": {
                    "2XX": {
                        "description": "Received. Any other answer, or none in 10 s, is "
                        "retried with exponential backoff for at least 24 hours."
                    }
                },
            }
        }
        for event, (about, _data) in EVENT_DATA.items()
    }


def webhook_paths(problem, json_answer, common_errors: dict[str, Any]) -> dict[str, Any]:
    endpoint_id = {
        "name": "endpoint_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    }
    return {
        "/api/v1/webhooks/endpoints": {
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "This client's webhook endpoints (without their secrets)",
                "responses": {
                    "200": json_answer("The endpoints.", "WebhookEndpointList"),
                    **common_errors,
                },
            },
            "post": {
                "operationId": "addWebhookEndpoint",
                "summary": "Register a URL for this client's order events; the answer holds "
                "its signing secret, shown this once",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookEndpointRequest")}},
                },
                "responses": {
                    "201": json_answer(
                        "Registered.",
                        "WebhookEndpointCreated",
                        {"Location": {"schema": {"type": "string"}}},
                    ),
                    "400": problem("The body is not JSON."),
                    "413": problem("The body is larger than 256 KB."),
                    "422": problem(
                        "Fields at fault, each named by a JSON pointer (`/url`, `/events/0`); "
                        "also a client's eleventh endpoint."
                    ),
                    **common_errors,
                },
            },
        },
        "/api/v1/webhooks/endpoints/{endpoint_id}": {
            "delete": {
                "operationId": "removeWebhookEndpoint",
                "summary": "Remove an endpoint; what it had not yet received is dropped",
                "parameters": [endpoint_id],
                "responses": {
                    "204": {"description": "Removed."},
                    "404": problem("No such endpoint of this client."),
                    **common_errors,
                },
            }
        },
    }
