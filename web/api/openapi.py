"""The OpenAPI 3.1 document of `/api/v1`: the contract shop platforms code against.

tests/web/test_api_contract.py runs schemathesis against the app with it, so a response that
drifts from this document fails the suite.
"""

from __future__ import annotations

import re
from typing import Any

from fulfilment.orders.intake import MAX_QUANTITY_PER_LINE
from fulfilment.platforms.clients import MEMBER_ID_MAX

from .openapi_webhooks import SCHEMAS as WEBHOOK_SCHEMAS
from .openapi_webhooks import webhook_paths, webhooks_section

MAX_LINES = 100
KEY_MAX = 128
# orders.total_cents is a 64-bit integer (migration 0007): 100 lines × 10,000 units at the
# largest unit price fit with room to spare; the bound stays as the column's own
MAX_TOTAL_CENTS = 2**63 - 1
# Text the database can store: no C0 control character (NUL), no DEL; `\S`: not blank.
# (A lone surrogate cannot be sent as UTF-8 JSON text at all; its escape is refused the same.)
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
PRINTABLE_NOT_BLANK = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
REGION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if headers:
        answer["headers"] = headers
    return answer


DATE_TIME = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "OrderRequest": {
        "type": "object",
        "examples": [
            {
                "leader": "L00001",
                "member": {"id": "m-1001", "name": "张三", "phone": "13800138000"},
                "lines": [{"sku": "VEG-001", "quantity": 2}, {"sku": "DAI-001", "quantity": 1}],
            }
        ],
        "additionalProperties": False,
        "required": ["leader", "member", "lines"],
        "properties": {
            "leader": {
                "type": "string",
                "minLength": 1,
                "maxLength": 32,
                "pattern": PRINTABLE_NOT_BLANK,
                "description": "The leader (pickup point) code the member orders through.",
            },
            "member": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MEMBER_ID_MAX,
                        "pattern": PRINTABLE_NOT_BLANK,
                        "description": "The platform's own member id.",
                    },
                    "name": {"type": ["string", "null"], "maxLength": 100, "pattern": PRINTABLE},
                    "phone": {"type": ["string", "null"], "maxLength": 32, "pattern": PRINTABLE},
                },
            },
            "lines": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_LINES,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["sku", "quantity"],
                    "properties": {
                        "sku": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 64,
                            "pattern": PRINTABLE_NOT_BLANK,
                        },
                        "quantity": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_QUANTITY_PER_LINE,
                        },
                    },
                },
            },
        },
    },
    "Order": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "status",
            "locked",
            "late",
            "placed_at",
            "leader",
            "member",
            "wave",
            "pickup",
            "lines",
            "total_cents",
            "currency",
        ],
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": ["placed", "cancelled", "cancelled_for_refund"]},
            "locked": {
                "type": "boolean",
                "description": "Placed in a cut-off wave: it will be picked and delivered.",
            },
            "late": {
                "type": "boolean",
                "description": "Received after its own wave was cut off: in the next open wave.",
            },
            "placed_at": {**DATE_TIME, "description": "When the API received it (UTC)."},
            "leader": {"type": "string"},
            "member": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {"id": {"type": "string"}},
            },
            "wave": _ref("WaveRef"),
            "pickup": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "code",
                    "point",
                    "address",
                    "window_opens",
                    "window_closes",
                    "eta",
                ],
                "properties": {
                    "code": {
                        "type": "string",
                        "pattern": "^[0-9]{8}$",
                        "description": "The member's secret pickup code: show it to the member only.",
                    },
                    "point": {"type": "string"},
                    "address": {"type": "string"},
                    "window_opens": {
                        **DATE_TIME,
                        "description": "The pickup point's receiving window, region's time zone.",
                    },
                    "window_closes": DATE_TIME,
                    "eta": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "Arrival at the pickup point once a route plan is published.",
                    },
                },
            },
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "sku",
                        "name",
                        "quantity",
                        "unit_price_cents",
                        "amount_cents",
                        "status",
                    ],
                    "properties": {
                        "sku": {"type": "string"},
                        "name": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1},
                        "unit_price_cents": {"type": "integer", "minimum": 0},
                        "amount_cents": {"type": "integer", "minimum": 0},
                        "status": {"enum": ["active", "cancelled"]},
                    },
                },
            },
            "total_cents": {"type": "integer", "minimum": 0},
            "currency": {"const": "CNY"},
        },
    },
    "WaveRef": {
        "type": "object",
        "additionalProperties": False,
        "required": ["region", "delivery_date", "status", "cutoff_due_at"],
        "properties": {
            "region": {"type": "string"},
            "delivery_date": {"type": "string", "format": "date"},
            "status": {"enum": ["open", "cut_off"]},
            "cutoff_due_at": DATE_TIME,
        },
    },
    "Wave": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "region",
            "delivery_date",
            "status",
            "cutoff_due_at",
            "cut_off_at",
            "orders",
            "totals",
        ],
        "properties": {
            "region": {"type": "string"},
            "delivery_date": {"type": "string", "format": "date"},
            "status": {"enum": ["open", "cut_off"]},
            "cutoff_due_at": DATE_TIME,
            "cut_off_at": {"type": ["string", "null"], "format": "date-time"},
            "orders": {"type": "integer", "minimum": 0},
            "totals": {
                "type": "array",
                "description": "Units per SKU: the warehouse pick list once cut off, "
                "units sold so far while open.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["sku", "name", "zone", "quantity"],
                    "properties": {
                        "sku": {"type": "string"},
                        "name": {"type": "string"},
                        "zone": {"enum": ["ambient", "chilled", "frozen"]},
                        "quantity": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `errors` names each field at fault.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "detail"],
                    "properties": {
                        "pointer": {
                            "type": "string",
                            "description": "A JSON pointer into the body, or a header's or "
                            "path parameter's name.",
                        },
                        "detail": {"type": "string"},
                    },
                },
            },
            "sku": {"type": "string"},
            "requested": {"type": "integer"},
            "left": {"type": ["integer", "null"]},
        },
    },
}

COMMON_ERRORS = {
    "401": _problem("No valid Bearer token."),
    "429": _problem("The client's rate limit is reached; retry after Retry-After seconds."),
    "500": _problem("The database refused the request (database-error); nothing was written."),
    "503": _problem("The database could not finish the request; nothing was written, retry."),
}

ORDER_ID = {
    "name": "order_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "groupbuy order API",
            "version": "1.0.0",
            "description": "Orders from shop platforms into the community group-buy waves. "
            "Every request carries `Authorization: Bearer <token>` "
            "(`groupbuy api-client create NAME --region CODE`). Money is integer cents (CNY).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**SCHEMAS, **WEBHOOK_SCHEMAS},
        },
        "webhooks": webhooks_section(),
        "paths": {
            "/api/v1/orders": {
                "post": {
                    "operationId": "placeOrder",
                    "summary": "Place an order (idempotent per Idempotency-Key and client)",
                    "description": "The same key with the same body returns the same order "
                    "(201 the first time, then 200 with `Idempotent-Replayed: true`); the same "
                    "key with another body is 409. The order's time is when it was received.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": KEY_MAX,
                                "pattern": "^[!-~]+$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("OrderRequest")}},
                    },
                    "responses": {
                        "201": _json(
                            "Placed.",
                            "Order",
                            {"Location": {"schema": {"type": "string"}}},
                        ),
                        "200": _json(
                            "Already placed with this key and this body (a retry).",
                            "Order",
                            {"Idempotent-Replayed": {"schema": {"const": "true"}}},
                        ),
                        "400": _problem("Missing or bad Idempotency-Key, or a body not JSON."),
                        "413": _problem("The body is larger than 256 KB."),
                        "409": _problem(
                            "Sold out (with the units left), or the key was used for another body."
                        ),
                        "422": _problem(
                            "Fields at fault, each named by a JSON pointer (an order whose "
                            f"total is over {MAX_TOTAL_CENTS} cents: `/lines`)."
                        ),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/orders/{order_id}": {
                "get": {
                    "operationId": "getOrder",
                    "summary": "One of this client's orders",
                    "parameters": [ORDER_ID],
                    "responses": {
                        "200": _json("The order.", "Order"),
                        "404": _problem("No such order of this client."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/orders/{order_id}/cancel": {
                "post": {
                    "operationId": "cancelOrder",
                    "summary": "Cancel before the wave's cutoff; the stock goes back",
                    "parameters": [ORDER_ID],
                    "responses": {
                        "200": _json("Cancelled.", "Order"),
                        "404": _problem("No such order of this client."),
                        "409": _problem("The cutoff has passed, or it is already cancelled."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/waves/{region}/{delivery_date}": {
                "get": {
                    "operationId": "getWave",
                    "summary": "A wave of the client's region: state and pick totals",
                    "parameters": [
                        {
                            "name": "region",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": f"^{REGION_PATTERN.pattern}$"},
                        },
                        {
                            "name": "delivery_date",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "date"},
                        },
                    ],
                    "responses": {
                        "200": _json("The wave.", "Wave"),
                        "400": _problem("The date is not YYYY-MM-DD."),
                        "404": _problem("No such wave in this client's region."),
                        **COMMON_ERRORS,
                    },
                }
            },
            **webhook_paths(_problem, _json, COMMON_ERRORS),
        },
    }
