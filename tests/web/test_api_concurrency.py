"""Twenty retries of one API order at once, on PostgreSQL for real: one order, stock taken once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import make_world
from platform_factories import make_client
from sqlalchemy import func, select

from fulfilment.core.db import session_scope
from fulfilment.core.models import Deal, Order, Product, utcnow
from fulfilment.waves.offers import offer_next_waves
from web import create_app

BODY = {"leader": "L1", "member": {"id": "M1"}, "lines": [{"sku": "APPLE", "quantity": 3}]}


@pytest.mark.postgres
def test_twenty_concurrent_posts_with_one_key_place_one_order(pg_url, tmp_path):
    """20 POSTs with one key race on separate connections of the app's bounded pool: one 201,
    nineteen 200 with the same order, one order row, the stock taken once."""
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": pg_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
            "API_RATE_LIMIT": "1000/second",
        }
    )
    engine = app.extensions["groupbuy"]["engine"]  # its pool is bounded: 5 + 10 overflow
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=100)
        delivery, _ = offer_next_waves(s, region=world.region, now=utcnow())
        token = make_client(s)[1]
    start = threading.Barrier(20)

    def post(_n: int) -> tuple[int, int]:
        client = app.test_client()
        start.wait()
        answer = client.post(
            "/api/v1/orders",
            json=BODY,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "same-key"},
        )
        return answer.status_code, answer.get_json()["id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(post, range(20)))
    statuses = sorted(code for code, _ in results)
    assert statuses == [200] * 19 + [201]
    assert len({order_id for _, order_id in results}) == 1
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
        sold = s.scalar(
            select(Deal.sold_qty)
            .join(Product)
            .where(Product.sku == "APPLE", Deal.delivery_date == delivery)
        )
        assert sold == 3
    engine.dispose()
