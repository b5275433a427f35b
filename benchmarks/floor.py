"""The floor the intake is measured against: the least a request can cost in this app.

Two views served by the same gunicorn, app and engine as the real ones (the app factory of
`web`, then this blueprint), so that the per-request overhead of Flask, the session, the
connection pool and PostgreSQL is the same on both sides of the ratio:

- POST /bench/floor/insert: validates a small JSON body ({"name": 1-64 characters, "quantity":
  1-10000}) and does one INSERT (an audit row) and the request's COMMIT.
- GET /bench/floor/page?leader=CODE: one indexed SELECT (a leader by its unique code), rendered
  by a template.

It exists only in a process started with `benchmarks.floor:create_floor_app(...)`: the
production app (`web:create_app`) never imports this module, so no deployment has these routes.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, g, render_template_string, request
from sqlalchemy import insert, select

from fulfilment.core.models import AuditEntry, Leader, utcnow

bp = Blueprint("bench_floor", __name__, url_prefix="/bench/floor")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ leader.pickup_name }}</title></head>
<body><h1>{{ leader.pickup_name }}</h1><p>{{ leader.code }} · {{ leader.address }}</p>
<p>{{ leader.window_open.strftime('%H:%M') }}–{{ leader.window_close.strftime('%H:%M') }}</p>
</body></html>"""
_LEADER = select(
    Leader.code, Leader.pickup_name, Leader.address, Leader.window_open, Leader.window_close
)


def _answer(payload: Any, status: int) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


@bp.post("/insert")
def floor_insert() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _answer({"error": "the body must be a JSON object"}, 422)
    name, quantity = body.get("name"), body.get("quantity")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return _answer({"error": "/name must be 1 to 64 characters"}, 422)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity <= 10_000:
        return _answer({"error": "/quantity must be 1 to 10000"}, 422)
    g.session.execute(
        insert(AuditEntry).values(
            at=utcnow(),
            actor="bench",
            action="floor.insert",
            entity="floor",
            entity_id=quantity,
            after={"name": name},
        )
    )
    return _answer({"ok": True}, 201)  # the app commits before the answer goes out


@bp.get("/page")
def floor_page() -> Response | str:
    leader = g.session.execute(_LEADER.where(Leader.code == request.args.get("leader", ""))).first()
    if leader is None:
        return Response("no such leader", status=404)
    return render_template_string(PAGE, leader=leader)


def create_floor_app(config: dict[str, Any] | None = None) -> Flask:
    """The app of `web.create_app`, with the floor's two views (a benchmark's process only)."""
    import web.security
    from web import create_app

    app = create_app(config)
    app.register_blueprint(bp)
    # Like the API, the floor's POST is a machine's request: no CSRF token.
    web.security.CSRF_EXEMPT_BLUEPRINTS = (*web.security.CSRF_EXEMPT_BLUEPRINTS, "bench_floor")
    return app
