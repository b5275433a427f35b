"""Bad input at the edge, on SQLite and PostgreSQL: bodies and paths the database would refuse
(NUL, lone surrogates, ids past 32 bits, totals past the money column) are clear 4xx answers
naming the field, never a 500, and write nothing."""

from __future__ import annotations

import io
import json

import pytest
from portal_factories import csrf_token, login, make_portal_world
from sqlalchemy import select
from sqlalchemy.exc import DataError
from test_api import BODY, PROBLEM, Api, _setup

from fulfilment.core.db import session_scope
from fulfilment.core.models import Deal, Order


@pytest.fixture
def api(app) -> Api:
    return _setup(app)


def _raw(api: Api, text: str, key: str = "k-raw"):
    return api.post(text.encode("utf-8", "surrogatepass"), key=key)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ('{"leader": "L\\u00001", "member": {"id": "M1"}, "lines": %s}', "/leader"),
        ('{"leader": "L1", "member": {"id": "M\\u00001"}, "lines": %s}', "/member/id"),
        (
            '{"leader": "L1", "member": {"id": "M1", "name": "\\ud800"}, "lines": %s}',
            "/member/name",
        ),
        (
            '{"leader": "L1", "member": {"id": "M1", "phone": "138\\u0000"}, "lines": %s}',
            "/member/phone",
        ),
        (
            '{"leader": "L1", "member": {"id": "M1", "name": "a\\u001bb"}, "lines": %s}',
            "/member/name",
        ),
    ],
)
def test_control_characters_and_lone_surrogates_are_422_naming_the_field(api, body, pointer):
    """A NUL (which PostgreSQL refuses), another control character or a lone surrogate (which
    cannot be encoded for the request's fingerprint) in any string is a 422 naming the field."""
    lines = json.dumps(BODY["lines"])
    answer = _raw(api, body % lines)
    assert answer.status_code == 422 and answer.mimetype == PROBLEM
    assert [e["pointer"] for e in answer.get_json()["errors"]] == [pointer]
    assert api.counts()[0] == 0


def test_a_nul_in_a_sku_is_422_naming_the_line(api):
    """The same in a line's SKU: the pointer names the line."""
    body = {**BODY, "lines": [{"sku": "APP\u0000LE", "quantity": 1}]}
    answer = api.post(body)
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.get_json()["errors"]] == ["/lines/0/sku"]


def test_a_deeply_nested_body_is_400_not_a_recursion_error(api):
    """JSON nested a thousand deep is refused as a body, not a RecursionError (500)."""
    answer = api.post(("[" * 1000 + "]" * 1000).encode())
    assert answer.status_code == 400 and answer.get_json()["type"].endswith("/invalid-json")
    answer = api.post(('{"leader": ' + "[" * 5000 + "]" * 5000 + "}").encode(), key="k-2")
    assert answer.status_code == 400


def test_a_chunked_body_over_the_limit_is_413(api):
    """A body sent chunked (no Content-Length, as a proxy or a streaming client sends it) and over
    256 KB is 413 body-too-large, as with a Content-Length; nothing is written."""
    big = json.dumps({**BODY, "member": {"id": "M1", "name": "x" * 300_000}}).encode()
    answer = api.client.post(
        "/api/v1/orders",
        input_stream=io.BytesIO(big),
        headers={
            "Authorization": f"Bearer {api.tokens['shop-a']}",
            "Idempotency-Key": "k-chunked",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets for chunked
    )
    assert answer.status_code == 413 and answer.get_json()["type"].endswith("/body-too-large")
    assert api.counts()[0] == 0


def test_a_total_past_32_bits_is_stored_exactly(api):
    """100 lines × 10,000 units at ¥25 total ¥25,000,000 = 2,500,000,000 cents, past a 32-bit
    column (a 500 on PostgreSQL before migration 0007, then a 422): the order is placed and its
    total stored and read back exactly, on both databases."""
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        for deal in s.scalars(select(Deal)):
            deal.base_price_cents = 2500
    body = {**BODY, "lines": [{"sku": "APPLE", "quantity": 10_000}] * 60}
    body["lines"] += [{"sku": "MILK", "quantity": 10_000}] * 40
    answer = api.post(body)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["total_cents"] == 1_000_000 * 2500
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(Order.total_cents)) == 2_500_000_000


def test_a_database_error_under_the_api_is_a_documented_problem(api, monkeypatch):
    """A database error the API does not expect is still a problem of the documented shape
    (`/api/v1/problems/<kind>`, with the instance), never a page or an `about:blank`."""
    import web.api.views as views

    def broken(*args, **kwargs):
        raise DataError("INSERT", {}, Exception("value out of range"))

    monkeypatch.setattr(views, "submit_order", broken)
    answer = api.post(BODY)
    assert answer.status_code == 500 and answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert problem["type"] == "/api/v1/problems/database-error"
    assert problem["instance"] == "/api/v1/orders"


# --- paths and the login form -----------------------------------------------------------


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("leader1", "/leader/orders/2147483648"),
        ("leader1", "/photos/99999999999999999999"),
        ("warehouse1", "/waves/2147483648"),
        ("warehouse1", "/waves/2147483648/leaders"),
        ("warehouse1", "/api/waves/9223372036854775808/picks/warehouse"),
    ],
)
def test_ids_past_32_bits_in_paths_are_404(app, portal, role, path):
    """An id in a path larger than the id columns hold is no such page (404), not a value the
    database refuses (500 on PostgreSQL)."""
    client = app.test_client()
    login(client, role)
    assert client.get(path).status_code == 404


def test_a_nul_in_the_login_username_is_a_wrong_login(app, client, portal):
    """A NUL (or another control character) in the username is answered like any wrong login
    (401, the same message), not a database error on PostgreSQL."""
    token = csrf_token(client)
    answer = client.post(
        "/login",
        data={"username": "leader1\x00", "password": "x", "csrf_token": token},
        headers={"Accept-Language": "en"},
    )
    assert answer.status_code == 401 and "Wrong username or password" in answer.text


@pytest.mark.parametrize("query", ["station=GS%00", "leader=L%001", "station=" + "S" * 100])
def test_text_query_parameters_the_database_would_refuse_are_400(app, portal, query):
    """A NUL (or a value longer than any code) in the sorting list's filters is a 400 naming the
    parameter, on the page and in its JSON, not a database error on PostgreSQL."""
    client = app.test_client()
    login(client, "warehouse1")
    wave = portal.wave.id
    page = client.get(f"/waves/{wave}/leaders?{query}", headers={"Accept-Language": "en"})
    assert page.status_code == 400 and query.split("=")[0] in page.text
    if query.startswith("station"):  # the JSON filters by station only
        assert client.get(f"/api/waves/{wave}/picks/leaders?{query}").status_code == 400
