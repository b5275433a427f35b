"""The JSON order API for shop platforms (`/api/v1`): Bearer tokens, idempotent order intake,
reads and cancels of the client's own orders, wave totals. Errors are RFC 9457 problem details;
the OpenAPI document (web/openapi.py) is the contract."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request, url_for
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from fulfilment.core.errors import (
    AlreadyCancelled,
    CutoffPassed,
    FulfilmentError,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    SoldOut,
    WaveClosed,
)
from fulfilment.orders.intake import MAX_QUANTITY_PER_LINE, LineRequest, MemberRef
from fulfilment.platforms.clients import (
    MEMBER_ID_MAX,
    ApiClient,
    OrderRequest,
    OrderView,
    WaveSummary,
    cancel_client_order,
    find_client_by_token,
    get_order_view,
    get_wave_summary,
    placed_order_view,
    submit_order,
)
from web.limits import limiter, set_retry_after

from .openapi import KEY_MAX, MAX_LINES, MAX_TOTAL_CENTS, REGION_PATTERN, openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 256 * 1024  # an order of 100 lines is a few KB
DEFAULT_RATE_LIMIT = "100/second"


def init_api(app: Flask) -> None:
    """Register the blueprint; its rate limit comes from GROUPBUY_API_RATE_LIMIT (per client)."""
    app.config.setdefault(
        "API_RATE_LIMIT", os.environ.get("GROUPBUY_API_RATE_LIMIT", DEFAULT_RATE_LIMIT)
    )
    app.register_blueprint(bp)


# --- problem details ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    pointer: str  # a JSON pointer into the request body, or the header / path parameter's name
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail}


class BadRequest(Exception):
    """The request itself is malformed: fields at fault, nothing written."""

    def __init__(self, status: int, kind: str, title: str, errors: list[FieldError]) -> None:
        self.status, self.kind, self.title, self.errors = status, kind, title, errors
        super().__init__(title)


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem details response; any change of the request is rolled back."""
    session = g.get("session")
    if session is not None:
        g.rollback = True
        try:
            session.rollback()
        except DBAPIError:  # a lost connection: the server drops the transaction anyway
            current_app.logger.warning("api: rollback failed on %s", request.path)
    body = {
        "type": f"/api/v1/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        **extra,
    }
    # A lone surrogate echoed from the request (an unknown field's name) is written as its JSON
    # escape, not left to fail the UTF-8 encoding of the answer.
    text = json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return Response(text, status=status, mimetype=PROBLEM)


@bp.errorhandler(BadRequest)
def _bad_request(err: BadRequest):
    detail = "; ".join(f"{e.pointer}: {e.detail}" for e in err.errors)
    return problem(
        err.status, err.kind, err.title, detail, errors=[e.as_json() for e in err.errors]
    )


@bp.errorhandler(SoldOut)
def _sold_out(err: SoldOut):
    pointer = _line_pointer(err.sku, "quantity")
    return problem(
        409,
        "sold-out",
        "Sold out",
        str(err),
        sku=err.sku,
        requested=err.requested,
        left=err.left,
        errors=[FieldError(pointer, str(err)).as_json()],
    )


@bp.errorhandler(IdempotencyConflict)
def _idempotency_conflict(err: IdempotencyConflict):
    return problem(
        409,
        "idempotency-conflict",
        "Idempotency key already used for another request",
        str(err),
        errors=[FieldError("Idempotency-Key", str(err)).as_json()],
    )


@bp.errorhandler(InvalidInput)
def _invalid_input(err: InvalidInput):
    if err.field in ("sku", "quantity"):
        pointer = _line_pointer_from(err)
    else:
        pointer = {"leader": "/leader", "member": "/member/id"}.get(err.field, f"/{err.field}")
    return problem(
        422,
        "invalid-field",
        "A field is not valid",
        err.message,
        errors=[FieldError(pointer, err.message).as_json()],
    )


@bp.errorhandler(FulfilmentError)
def _fulfilment_error(err: FulfilmentError):
    kinds: list[tuple[type[FulfilmentError], str, str]] = [
        (NotFound, "not-found", "Not found"),
        (CutoffPassed, "cutoff-passed", "The wave's cutoff has passed"),
        (AlreadyCancelled, "already-cancelled", "The order is already cancelled"),
        (WaveClosed, "wave-closed", "The wave is closed"),
    ]
    for cls, kind, title in kinds:
        if isinstance(err, cls):
            return problem(err.http_status, kind, title, str(err))
    return problem(err.http_status, "error", type(err).__name__, str(err))


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    response = problem(
        err.code or 500,
        (err.name or "error").lower().replace(" ", "-"),
        err.name or "Error",
        err.description or "",
    )
    if err.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="groupbuy"'
    return response


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
def _database_busy(err: DBAPIError):
    # A deadlock, a serialisation failure, a lost connection: nothing was written; retry.
    current_app.logger.warning("api: database error %s", type(err.orig).__name__)
    response = problem(503, "unavailable", "Try again", "the database could not finish the request")
    return set_retry_after(response, 1)


@bp.errorhandler(SQLAlchemyError)
def _database_error(err: SQLAlchemyError):
    """Any other database error: the documented problem shape, nothing written (the statement's
    first line is logged, never its parameters: they can hold names and phones)."""
    statement = (getattr(err, "statement", None) or "").split("\n")[0]
    current_app.logger.error("api: database error %s: %s", type(err).__name__, statement)
    return problem(
        500, "database-error", "Not saved", "the database refused the request; nothing was written"
    )


def _line_pointer(sku: str, field: str) -> str:
    body = g.get("order_body")
    if body is not None:
        for n, line in enumerate(body.lines):
            if line.sku == sku:
                return f"/lines/{n}/{field}"
    return "/lines"


def _line_pointer_from(err: InvalidInput) -> str:
    """The line an order-level error is about, from the error's own `line` (1-based)."""
    if err.line is not None:
        return f"/lines/{err.line - 1}/{err.field}"
    return "/lines"


# --- authentication and rate limit ----------------------------------------------------------


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _request_client() -> ApiClient | None:
    """The client whose valid Bearer token the request carries (looked up once per request)."""
    if "api_client" not in g:
        token = _bearer_token()
        g.api_client = find_client_by_token(g.session, token) if token else None
    client: ApiClient | None = g.api_client
    return client


def _rate_key() -> str:
    """Each client's own budget; a request without a valid token (none, or a bogus one: a fresh
    token must not buy a fresh bucket) counts against its address."""
    try:
        client = _request_client()
    except SQLAlchemyError:  # answered by _authenticate, which asks again; not the limiter's fault
        g.pop("api_client", None)
        client = None
    return f"api:client:{client.id}" if client is not None else f"api-ip:{get_remote_address()}"


def _rate_limit() -> str:
    return str(current_app.config["API_RATE_LIMIT"])


# One budget per client across every endpoint (a shared scope), not one per endpoint.
limiter.shared_limit(_rate_limit, scope="api", key_func=_rate_key)(bp)


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    if _request_client() is None:
        response = problem(401, "unauthorized", "Unauthorized", "a valid Bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="groupbuy"'
        return response
    return None


def _client() -> ApiClient:
    client: ApiClient = g.api_client
    return client


def _commit() -> None:
    """Commit before the response is built: a failed commit is a problem answer, never a 201."""
    g.session.commit()


# --- the request body -----------------------------------------------------------------------


def _string(
    value: Any, pointer: str, errors: list[FieldError], *, max_len: int, required: bool = True
) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(pointer, "must be a string"))
        return ""
    if not _printable(value):
        errors.append(
            FieldError(pointer, "must not hold control characters or unpaired surrogates")
        )
        return ""
    if required and not value.strip():
        errors.append(FieldError(pointer, "must not be empty"))
    if len(value) > max_len:
        errors.append(FieldError(pointer, f"must be at most {max_len} characters"))
    return value.strip()


def _printable(text: str) -> bool:
    """No C0 control character (NUL is refused by PostgreSQL), no DEL, no lone surrogate (it
    cannot be encoded as UTF-8: not stored, not fingerprinted). The document's patterns say so."""
    return not any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def _unknown(obj: dict[str, Any], allowed: set[str], prefix: str, errors: list[FieldError]):
    for name in sorted(set(obj) - allowed):
        errors.append(FieldError(f"{prefix}/{_escape(name)}", "unknown field"))


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def parse_order_body(body: Any) -> OrderRequest:
    """The order request, or BadRequest naming every field at fault."""
    errors: list[FieldError] = []
    if not isinstance(body, dict):
        raise BadRequest(
            422, "invalid-body", "The body is not an order", [FieldError("", "must be an object")]
        )
    _unknown(body, {"leader", "member", "lines"}, "", errors)
    for name in ("leader", "member", "lines"):
        if name not in body:
            errors.append(FieldError(f"/{name}", "is required"))
    leader = _string(body.get("leader"), "/leader", errors, max_len=32) if "leader" in body else ""
    member = MemberRef("")
    raw_member = body.get("member")
    if "member" in body:
        if not isinstance(raw_member, dict):
            errors.append(FieldError("/member", "must be an object"))
        else:
            _unknown(raw_member, {"id", "name", "phone"}, "/member", errors)
            if "id" not in raw_member:
                errors.append(FieldError("/member/id", "is required"))
            member = MemberRef(
                _string(raw_member.get("id"), "/member/id", errors, max_len=MEMBER_ID_MAX)
                if "id" in raw_member
                else "",
                _string(
                    raw_member.get("name"), "/member/name", errors, max_len=100, required=False
                ),
                _string(
                    raw_member.get("phone"), "/member/phone", errors, max_len=32, required=False
                ),
            )
    lines: list[LineRequest] = []
    raw_lines = body.get("lines")
    if "lines" in body:
        if not isinstance(raw_lines, list):
            errors.append(FieldError("/lines", "must be an array"))
        elif not 1 <= len(raw_lines) <= MAX_LINES:
            errors.append(FieldError("/lines", f"must hold 1 to {MAX_LINES} lines"))
        else:
            for n, raw in enumerate(raw_lines):
                at = f"/lines/{n}"
                if not isinstance(raw, dict):
                    errors.append(FieldError(at, "must be an object"))
                    continue
                _unknown(raw, {"sku", "quantity"}, at, errors)
                for name in ("sku", "quantity"):
                    if name not in raw:
                        errors.append(FieldError(f"{at}/{name}", "is required"))
                sku = _string(raw.get("sku"), f"{at}/sku", errors, max_len=64)
                quantity = raw.get("quantity")
                if "quantity" in raw and (
                    not isinstance(quantity, int)
                    or isinstance(quantity, bool)
                    or not 1 <= quantity <= MAX_QUANTITY_PER_LINE
                ):
                    errors.append(
                        FieldError(
                            f"{at}/quantity",
                            f"must be a whole number from 1 to {MAX_QUANTITY_PER_LINE}",
                        )
                    )
                    continue
                lines.append(LineRequest(sku, quantity if isinstance(quantity, int) else 0))
    if errors:
        raise BadRequest(422, "invalid-field", "Fields are not valid", errors)
    return OrderRequest(leader_code=leader, member=member, lines=lines)


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise BadRequest(
            400,
            "missing-idempotency-key",
            "Idempotency-Key header required",
            [FieldError("Idempotency-Key", "is required: retries with the same key are safe")],
        )
    # Exactly the document's pattern ^[!-~]+$: printable ASCII without spaces.
    if not 0 < len(key) <= KEY_MAX or not all("!" <= c <= "~" for c in key):
        raise BadRequest(
            400,
            "invalid-idempotency-key",
            "Idempotency-Key header not valid",
            [
                FieldError(
                    "Idempotency-Key",
                    f"must be 1 to {KEY_MAX} printable ASCII characters, no spaces",
                )
            ],
        )
    return key


def _json_body() -> Any:
    """The body as JSON: at most MAX_BODY_BYTES (413 whether it came with a Content-Length or
    chunked without one), nested no deeper than MAX_DEPTH (deeper is 400, not a RecursionError)."""
    too_large = BadRequest(
        413,
        "body-too-large",
        "The body is too large",
        [FieldError("", f"more than {MAX_BODY_BYTES} bytes")],
    )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    data = _read_at_most(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise too_large
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise BadRequest(
            400,
            "invalid-json",
            "The body is not JSON",
            [FieldError("", f"nested deeper than {MAX_DEPTH} levels")],
        )
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise BadRequest(
            400, "invalid-json", "The body is not JSON", [FieldError("", f"not JSON: {err}")]
        ) from None


MAX_DEPTH = 16  # an order is 3 deep


def _read_at_most(limit: int) -> bytes:
    """Up to `limit` bytes of the body; a chunked body has no length to check before reading."""
    stream = request.stream
    parts, size = [], 0
    while size < limit:
        chunk = stream.read(min(64 * 1024, limit - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _depth(data: bytes) -> int:
    """How deep the brackets of a JSON text nest, outside its strings (a bounded scan, so that
    the parser never recurses on a hostile body)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


# --- answers --------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def order_json(view: OrderView) -> dict[str, Any]:
    return {
        "id": view.id,
        "status": view.status.value,
        "locked": view.locked,
        "late": view.late,
        "placed_at": _iso(view.placed_at),
        "leader": view.leader_code,
        "member": {"id": view.member_id},
        "wave": {
            "region": view.region_code,
            "delivery_date": view.delivery_date.isoformat(),
            "status": view.wave_status.value,
            "cutoff_due_at": _iso(view.cutoff_due_at),
        },
        "pickup": {
            "code": view.pickup_code,
            "point": view.pickup_point,
            "address": view.address,
            "window_opens": view.window_opens.isoformat(),
            "window_closes": view.window_closes.isoformat(),
            "eta": _iso(view.eta),
        },
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
                "amount_cents": line.unit_price_cents * line.quantity,
                "status": line.status.value,
            }
            for line in view.lines
        ],
        "total_cents": view.total_cents,
        "currency": "CNY",
    }


def wave_json(summary: WaveSummary) -> dict[str, Any]:
    return {
        "region": summary.region_code,
        "delivery_date": summary.delivery_date.isoformat(),
        "status": summary.status.value,
        "cutoff_due_at": _iso(summary.cutoff_due_at),
        "cut_off_at": _iso(summary.cut_off_at),
        "orders": summary.orders,
        "totals": [
            {"sku": t.sku, "name": t.name, "zone": t.zone.value, "quantity": t.quantity}
            for t in summary.totals
        ],
    }


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False), status=status, mimetype="application/json"
    )


# --- endpoints ------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi():
    return _json(openapi_document())


@bp.post("/orders")
def create_order():
    key = _idempotency_key()
    body = parse_order_body(_json_body())
    g.order_body = body
    try:
        order, placed = submit_order(g.session, client=_client(), request=body, idempotency_key=key)
    except DataError as err:
        if getattr(err.orig, "sqlstate", None) != "22003":  # numeric_value_out_of_range
            raise
        raise _total_too_large() from None  # PostgreSQL: the total overflowed its column
    # A new order's answer is what placing it wrote; a replay's is read in the transaction
    # (one query). The commit still comes before the answer is sent, so a failed commit is a
    # problem answer, never a 201.
    created = placed is not None
    if placed is not None:
        view = placed_order_view(_client(), placed)
    else:
        view = get_order_view(g.session, client=_client(), order_id=order.id)
    if view.total_cents > MAX_TOTAL_CENTS:  # SQLite stores it: refuse it there too, uncommitted
        raise _total_too_large()
    _commit()
    response = _json(order_json(view), 201 if created else 200)
    response.headers["Location"] = url_for(".get_order", order_id=order.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _total_too_large() -> BadRequest:
    """An order whose total does not fit `orders.total_cents` (64-bit since migration 0007; no
    order within the lines' bounds reaches it): refused on both databases alike, uncommitted."""
    return BadRequest(
        422,
        "invalid-field",
        "Fields are not valid",
        [FieldError("/lines", f"the order's total must be at most {MAX_TOTAL_CENTS} cents")],
    )


def _order_id(text: str) -> int:
    """An order id from the path; anything that is not one is no order (404, as for others')."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**31:
        raise NotFound(f"order {text[:40]!r} not found")
    return int(text)


@bp.get("/orders/<order_id>")
def get_order(order_id: str):
    view = get_order_view(g.session, client=_client(), order_id=_order_id(order_id))
    return _json(order_json(view))


@bp.post("/orders/<order_id>/cancel")
def cancel(order_id: str):
    order = cancel_client_order(g.session, client=_client(), order_id=_order_id(order_id))
    _commit()
    payload = order_json(get_order_view(g.session, client=_client(), order_id=order.id))
    return _json(payload)


@bp.get("/waves/<region>/<day>")
def wave(region: str, day: str):
    try:
        delivery = date.fromisoformat(day)
    except ValueError:
        raise BadRequest(
            400,
            "invalid-parameter",
            "Path parameter not valid",
            [FieldError("delivery_date", f"{day!r} is not a date YYYY-MM-DD")],
        ) from None
    if not REGION_PATTERN.fullmatch(region):  # no region's code: no such wave, as for others'
        raise NotFound(f"wave {region[:40]!r} {day} not found")
    summary = get_wave_summary(
        g.session, client=_client(), region_code=region, delivery_date=delivery
    )
    return _json(wave_json(summary))
