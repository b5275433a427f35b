"""The order API for shop platforms, through the test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from factories import make_world
from night_factories import add_published_stop
from platform_factories import add_city, make_client
from sqlalchemy import func, select, update

from fulfilment.core.db import session_scope
from fulfilment.core.models import (
    AuditEntry,
    Deal,
    Leader,
    Member,
    Order,
    Product,
    Region,
    Wave,
    utcnow,
)
from fulfilment.platforms.clients import ApiClient
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.offers import offer_next_waves
from web import create_app

PROBLEM = "application/problem+json"


@dataclass
class Api:
    app: object
    client: object
    tokens: dict[str, str]
    delivery: object  # the delivery date of the next open wave
    region_id: int  # the shops' region (Beijing sells the same SKUs)

    def post(self, body, *, key="k-1", shop="shop-a", **kw):
        headers = {"Authorization": f"Bearer {self.tokens[shop]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if isinstance(body, (bytes, str)):
            return self.client.post(
                "/api/v1/orders", data=body, headers=headers, content_type="application/json"
            )
        return self.client.post("/api/v1/orders", json=body, headers=headers, **kw)

    def get(self, path, *, shop="shop-a"):
        return self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[shop]}"})

    def cancel(self, order_id, *, shop="shop-a"):
        return self.client.post(
            f"/api/v1/orders/{order_id}/cancel",
            headers={"Authorization": f"Bearer {self.tokens[shop]}"},
        )

    def scalar(self, query):
        with session_scope(self.app.extensions["groupbuy"]["sessions"]) as s:
            return s.scalar(query)

    def counts(self) -> tuple[int, int, int]:
        """Orders, members and audit entries: what a refused request must not add to."""
        return (
            self.scalar(select(func.count()).select_from(Order)),
            self.scalar(select(func.count()).select_from(Member)),
            self.scalar(select(func.count()).select_from(AuditEntry)),
        )

    def sold(self, sku: str) -> int:
        return self.scalar(
            select(Deal.sold_qty)
            .join(Product)
            .where(
                Product.sku == sku,
                Deal.delivery_date == self.delivery,
                Deal.region_id == self.region_id,
            )
        )


def _setup(app, *, stock_cap=None) -> Api:
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_world(s, stock_cap=stock_cap)
        beijing = add_city(s, world)
        delivery, _ = offer_next_waves(s, region=world.region, now=utcnow())
        offer_next_waves(s, region=beijing, now=utcnow())
        region_id = world.region.id
        tokens = {
            "shop-a": make_client(s, name="shop-a")[1],
            "shop-b": make_client(s, name="shop-b")[1],
            "shop-bj": make_client(s, name="shop-bj", region="BJ")[1],
        }
    return Api(app, app.test_client(), tokens, delivery, region_id)


@pytest.fixture
def api(app) -> Api:
    return _setup(app)


BODY = {
    "leader": "L1",
    "member": {"id": "M1", "name": "张三", "phone": "13812345678"},
    "lines": [{"sku": "APPLE", "quantity": 2}, {"sku": "MILK", "quantity": 1}],
}


def test_post_places_an_order_with_its_wave_prices_and_pickup_code(api):
    """201 with Location; the answer carries the wave, delivery date, prices and the pickup code."""
    answer = api.post(BODY)
    assert answer.status_code == 201, answer.text
    order = answer.get_json()
    assert answer.headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert order["status"] == "placed" and not order["late"] and not order["locked"]
    assert order["wave"]["delivery_date"] == api.delivery.isoformat()
    assert order["wave"]["status"] == "open" and order["wave"]["region"] == "SH"
    assert [(ln["sku"], ln["quantity"], ln["unit_price_cents"]) for ln in order["lines"]] == [
        ("APPLE", 2, 1000),
        ("MILK", 1, 1000),
    ]
    assert order["total_cents"] == 3000 and order["currency"] == "CNY"
    assert len(order["pickup"]["code"]) == 8 and order["pickup"]["code"].isdigit()
    assert order["pickup"]["eta"] is None  # no published plan yet
    assert order["pickup"]["window_opens"].startswith(api.delivery.isoformat() + "T07:00")
    assert order["member"] == {"id": "M1"}
    assert api.sold("APPLE") == 2


def test_an_orders_answer_carries_the_published_eta(api):
    """Once the wave's route plan is published, GET on an order carries the van's arrival at the
    member's pickup point (UTC, ISO 8601)."""
    order = api.post(BODY).get_json()
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        row = s.get(Order, order["id"])
        leader = s.get(Leader, row.leader_id)
        add_published_stop(
            s, wave=row.wave, leader=leader, arrival_at=datetime(2026, 3, 10, 0, 42, tzinfo=UTC)
        )
    again = api.client.get(
        f"/api/v1/orders/{order['id']}",
        headers={"Authorization": f"Bearer {api.tokens['shop-a']}"},
    )
    assert again.status_code == 200
    assert again.get_json()["pickup"]["eta"] == "2026-03-10T00:42:00Z"


def test_the_orders_time_is_when_it_was_received(api):
    """placed_at is the server's clock at receipt, not anything the body could claim."""
    before = utcnow()
    order = api.post(BODY).get_json()
    placed = api.scalar(select(Order.placed_at).where(Order.id == order["id"]))
    assert before <= placed <= utcnow()


def test_same_key_same_body_is_the_same_order_once(api):
    """A retry gets 200 and the same order, marked replayed; no second order, no second stock take."""
    first = api.post(BODY)
    again = api.post(BODY)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.counts()[0] == 1 and api.sold("APPLE") == 2


def test_same_key_other_body_is_409_and_writes_nothing(api):
    """The same key with another body is a conflict naming the header; nothing changes."""
    api.post(BODY)
    before = api.counts()
    other = {**BODY, "lines": [{"sku": "APPLE", "quantity": 5}]}
    answer = api.post(other)
    assert answer.status_code == 409 and answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert problem["type"] == "/api/v1/problems/idempotency-conflict"
    assert problem["errors"][0]["pointer"] == "Idempotency-Key"
    assert api.counts() == before and api.sold("APPLE") == 2


def test_keys_are_scoped_per_client(api):
    """Another client using the same key places its own order."""
    one = api.post(BODY, shop="shop-a")
    two = api.post(BODY, shop="shop-b")
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.get_json()["id"] != two.get_json()["id"]
    assert api.sold("APPLE") == 4


@pytest.mark.parametrize(
    ("body", "status", "pointers"),
    [
        (b"{not json", 400, [""]),
        (b"\xff\xfe", 400, [""]),
        ([1, 2], 422, [""]),
        (
            {"leader": "", "member": {"id": 7}, "lines": [{"sku": "APPLE", "quantity": 0}]},
            422,
            ["/leader", "/member/id", "/lines/0/quantity"],
        ),
        (
            {"leader": "L1", "member": {"id": "M1"}, "lines": [], "coupon": "X"},
            422,
            ["/coupon", "/lines"],
        ),
        (
            {"member": {"id": "M1", "name": "n" * 101}, "lines": [{"sku": "APPLE"}]},
            422,
            ["/leader", "/member/name", "/lines/0/quantity"],
        ),
        (
            {**BODY, "lines": [{"sku": "APPLE", "quantity": True}]},
            422,
            ["/lines/0/quantity"],
        ),
    ],
)
def test_bad_json_and_bad_fields_are_problems_naming_each_field_and_write_nothing(
    api, body, status, pointers
):
    """Each field at fault is named by a JSON pointer; no order, member or audit entry is written."""
    before = api.counts()
    answer = api.post(body)
    assert answer.status_code == status and answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert problem["status"] == status and problem["instance"] == "/api/v1/orders"
    assert [e["pointer"] for e in problem["errors"]] == pointers
    assert api.counts() == before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({**BODY, "leader": "NOBODY"}, "/leader"),
        ({**BODY, "leader": "BJ-L1"}, "/leader"),  # another region's leader
        (
            {**BODY, "lines": [{"sku": "APPLE", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]},
            "/lines/1/sku",
        ),
    ],
)
def test_unknown_leader_or_sku_is_422_naming_it_and_writes_nothing(api, body, pointer):
    """A leader outside the client's region or an unknown SKU is named; nothing is written."""
    before = api.counts()
    answer = api.post(body)
    assert answer.status_code == 422 and answer.mimetype == PROBLEM
    assert answer.get_json()["errors"][0]["pointer"] == pointer
    assert api.counts() == before


def test_a_body_over_256_kb_is_413_and_writes_nothing(api):
    """An oversized body is refused before it is parsed."""
    answer = api.post(b'{"leader": "' + b"x" * 300_000 + b'"}')
    assert answer.status_code == 413 and answer.mimetype == PROBLEM
    assert api.counts()[0] == 0


def test_missing_or_bad_idempotency_key_is_400(api):
    """The Idempotency-Key header is required (retries must be safe) and is what the document
    allows: 1 to 128 printable ASCII characters without spaces."""
    missing = api.post(BODY, key=None)
    assert missing.status_code == 400 and missing.mimetype == PROBLEM
    assert missing.get_json()["errors"][0]["pointer"] == "Idempotency-Key"
    assert api.post(BODY, key="x" * 129).status_code == 400
    assert api.post(BODY, key="order 1").status_code == 400
    assert api.counts()[0] == 0


def test_sold_out_is_409_with_the_units_left(app):
    """Asking for more than the cap leaves is 409 naming the line, with the units left."""
    api = _setup(app, stock_cap=5)
    assert api.post({**BODY, "lines": [{"sku": "APPLE", "quantity": 3}]}).status_code == 201
    before = api.counts()
    answer = api.post(
        {**BODY, "lines": [{"sku": "MILK", "quantity": 1}, {"sku": "APPLE", "quantity": 4}]},
        key="k-2",
    )
    assert answer.status_code == 409 and answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert (problem["type"], problem["sku"], problem["left"]) == (
        "/api/v1/problems/sold-out",
        "APPLE",
        2,
    )
    assert problem["errors"][0]["pointer"] == "/lines/1/quantity"
    assert api.counts() == before and api.sold("APPLE") == 3 and api.sold("MILK") == 0


def test_without_a_valid_token_every_endpoint_is_401(api):
    """No token, a wrong token or an inactive client's token: 401 with WWW-Authenticate."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        answer = api.client.get("/api/v1/orders/1", headers=headers)
        assert answer.status_code == 401 and answer.mimetype == PROBLEM
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        s.execute(update(ApiClient).where(ApiClient.name == "shop-a").values(active=False))
    assert api.post(BODY).status_code == 401


def test_get_order_is_the_clients_own_only(api):
    """The client reads its order; another client gets 404 for the same id, as for no order."""
    order = api.post(BODY).get_json()
    mine = api.get(f"/api/v1/orders/{order['id']}")
    assert mine.status_code == 200 and mine.get_json() == order
    theirs = api.get(f"/api/v1/orders/{order['id']}", shop="shop-b")
    nothing = api.get("/api/v1/orders/999999", shop="shop-b")
    assert theirs.status_code == nothing.status_code == 404
    assert theirs.mimetype == PROBLEM
    assert api.cancel(order["id"], shop="shop-b").status_code == 404
    assert api.sold("APPLE") == 2


def test_cancel_before_the_cutoff_returns_the_stock(api):
    """Cancelled before the deadline: 200 with the cancelled order; the units are free again."""
    order = api.post(BODY).get_json()
    answer = api.cancel(order["id"])
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "cancelled"
    assert {ln["status"] for ln in answer.get_json()["lines"]} == {"cancelled"}
    assert api.sold("APPLE") == 0
    again = api.cancel(order["id"])
    assert again.status_code == 409
    assert again.get_json()["type"] == "/api/v1/problems/already-cancelled"


def test_cancel_after_the_deadline_is_409_with_the_reason_even_before_the_cutoff_job(api):
    """Once cutoff_due_at has passed, cancel is 409 cutoff-passed though the wave is still open."""
    order = api.post(BODY).get_json()
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        s.execute(
            update(Wave)
            .where(Wave.delivery_date == api.delivery)
            .values(cutoff_due_at=utcnow() - timedelta(seconds=1))
        )
    answer = api.cancel(order["id"])
    assert answer.status_code == 409 and answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert problem["type"] == "/api/v1/problems/cutoff-passed"
    assert "cut off" in problem["detail"]
    assert api.get(f"/api/v1/orders/{order['id']}").get_json()["status"] == "placed"
    assert api.sold("APPLE") == 2


def test_wave_state_and_totals_open_then_cut_off(api):
    """An open wave totals the units sold; once cut off, its warehouse pick list."""
    api.post(BODY)
    api.post({**BODY, "member": {"id": "M2"}}, key="k-2")
    path = f"/api/v1/waves/SH/{api.delivery.isoformat()}"
    open_wave = api.get(path).get_json()
    assert open_wave["status"] == "open" and open_wave["orders"] == 2
    assert {t["sku"]: t["quantity"] for t in open_wave["totals"]} == {"APPLE": 4, "MILK": 2}
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        region = s.scalars(select(Region).where(Region.code == "SH")).one()
        due = s.scalar(select(Wave.cutoff_due_at).where(Wave.delivery_date == api.delivery))
        cut_off_wave(s, region=region, delivery_date=api.delivery, now=due)
    cut = api.get(path).get_json()
    assert cut["status"] == "cut_off" and cut["cut_off_at"] is not None
    assert {t["sku"]: t["quantity"] for t in cut["totals"]} == {"APPLE": 4, "MILK": 2}
    assert {t["zone"] for t in cut["totals"]} == {"ambient", "chilled"}


def test_wave_of_another_region_or_no_wave_is_404_and_a_bad_date_400(api):
    """A client sees its own region's waves only; a malformed date names the parameter."""
    api.post(BODY)
    day = api.delivery.isoformat()
    assert api.get(f"/api/v1/waves/SH/{day}").status_code == 200
    assert api.get(f"/api/v1/waves/SH/{day}", shop="shop-bj").status_code == 404
    assert api.get("/api/v1/waves/SH/2001-01-01").status_code == 404
    bad = api.get("/api/v1/waves/SH/tomorrow")
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["pointer"] == "delivery_date"


def test_openapi_document_is_served_without_a_token(client):
    """The contract is public: OpenAPI 3.1 listing the seven operations, and every event a
    webhook endpoint can hear in its `webhooks` section."""
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert operations == {
        "placeOrder",
        "getOrder",
        "cancelOrder",
        "getWave",
        "listWebhookEndpoints",
        "addWebhookEndpoint",
        "removeWebhookEndpoint",
    }
    assert set(doc["webhooks"]) == {
        "order.accepted",
        "order.late",
        "order.cut_off",
        "order.cancelled",
        "order.arrived",
        "order.collected",
        "refund.owed",
        "plan.published",
    }


def _limited_app(db_url, tmp_path, storage: str, prefix: str):
    return create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": db_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
            "API_RATE_LIMIT": "3/minute",
            "RATELIMIT_STORAGE_URI": storage,
            "RATELIMIT_KEY_PREFIX": prefix,
        }
    )


def test_rate_limit_per_client_is_429_problem(db_url, tmp_path):
    """Past its limit a client gets 429 with Retry-After; another client still gets through."""
    app = _limited_app(db_url, tmp_path, "memory://", f"t-{uuid.uuid4().hex}")
    api = _setup(app)
    answers = [api.get("/api/v1/orders/1").status_code for _ in range(4)]
    assert answers == [404, 404, 404, 429]
    limited = api.get("/api/v1/orders/1")
    assert limited.mimetype == PROBLEM and limited.headers["Retry-After"]
    assert api.get("/api/v1/orders/1", shop="shop-b").status_code == 404
    app.extensions["groupbuy"]["engine"].dispose()


def test_rate_limit_on_redis_is_shared_by_every_worker(db_url, tmp_path, redis_url):
    """With Redis storage two app instances (two workers) count one client's requests together."""
    prefix = f"t-{uuid.uuid4().hex}"
    one = _limited_app(db_url, tmp_path, redis_url, prefix)
    api = _setup(one)
    two = _limited_app(db_url, tmp_path, redis_url, prefix)
    other = Api(two, two.test_client(), api.tokens, api.delivery, api.region_id)
    codes = [api.get("/api/v1/orders/1").status_code, other.get("/api/v1/orders/1").status_code]
    codes += [api.get("/api/v1/orders/1").status_code, other.get("/api/v1/orders/1").status_code]
    assert codes == [404, 404, 404, 429]
    for app in (one, two):
        app.extensions["groupbuy"]["engine"].dispose()


def test_a_failed_commit_is_a_503_problem_and_no_order(api, monkeypatch):
    """The commit happens before the answer: when it fails the client gets a problem to retry,
    never a 201 for an order that was not stored."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    def lost_connection(self):
        raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(Session, "commit", lost_connection)
    answers = []
    for _ in range(4):  # across a second: the rate limiter once rounded "1" down to "0"
        answers.append(api.post(BODY))
        time.sleep(0.3)
    monkeypatch.undo()
    for answer in answers:
        assert answer.status_code == 503 and answer.mimetype == PROBLEM
        assert answer.headers["Retry-After"] == "1"
    assert api.counts()[0] == 0
    assert api.post(BODY).status_code == 201  # the retry places it


def test_a_new_orders_answer_is_what_reading_it_back_gives(api):
    """The 201's body is built from what placing the order wrote, not read back: it must be the
    same as GET on the order, lines in their stored order, for a late order too."""
    body = {**BODY, "lines": [{"sku": "MILK", "quantity": 3}, {"sku": "APPLE", "quantity": 1}]}
    first = api.post(body, key="fresh")
    assert first.status_code == 201, first.text
    read = api.client.get(
        first.headers["Location"], headers={"Authorization": f"Bearer {api.tokens['shop-a']}"}
    )
    assert read.get_json() == first.get_json()
    with session_scope(api.app.extensions["groupbuy"]["sessions"]) as s:
        region = s.scalars(select(Region).where(Region.code == "SH")).one()
        due = s.scalar(select(Wave.cutoff_due_at).where(Wave.delivery_date == api.delivery))
        cut_off_wave(s, region=region, delivery_date=api.delivery, now=due)
    late = api.post({**body, "member": {"id": "M2", "name": "李四"}}, key="late")
    assert late.status_code == 201, late.text
    assert (
        late.get_json()["late"]
        and late.get_json()["wave"]["delivery_date"] > api.delivery.isoformat()
    )
    read = api.client.get(
        late.headers["Location"], headers={"Authorization": f"Bearer {api.tokens['shop-a']}"}
    )
    assert read.get_json() == late.get_json()
