"""Webhooks to the shop platforms: each change writes its events to the outbox in its own
transaction, for the client that placed the order only; the courier delivers them signed, in
order per order, at least once, retried, and failed for the admin after the retry window."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import DELIVERY, make_world
from night_factories import add_published_stop
from platform_factories import make_client
from sqlalchemy import func, select, update
from webhook_receiver import Receiver

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import InvalidInput, NotFound, SoldOut
from fulfilment.core.models import AuditEntry, Leader, Order, utcnow
from fulfilment.events.delivery import (
    Courier,
    RetryPolicy,
    count_by_state,
    list_failed,
    replay,
    retry_failed,
    sign,
)
from fulfilment.events.models import MessageState, WebhookEndpoint, WebhookMessage
from fulfilment.night.plans import PlanStatus, RoutePlan, publish_plan
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.platforms.clients import (
    ApiClient,
    OrderRequest,
    cancel_client_order,
    submit_order,
)
from fulfilment.platforms.webhooks import add_endpoint, remove_endpoint
from fulfilment.points.arrivals import confirm_arrival
from fulfilment.points.pickups import verify_pickup
from fulfilment.waves.cutoff import cut_off_wave

FAST = RetryPolicy(base_s=0.01, max_backoff_s=0.02, endpoint_pause_max_s=0.02, lease_s=30)


def _order(session, client, world, *, key, sku="APPLE", qty=1, member="M1", at=None):
    client = session.scalars(select(ApiClient).where(ApiClient.name == client.name)).one()
    request = OrderRequest("L1", MemberRef(member, "张三", "13800000000"), [LineRequest(sku, qty)])
    order, _ = submit_order(
        session,
        client=client,
        request=request,
        idempotency_key=key,
        now=at or world.before_cutoff(60),
    )
    return order


def _messages(session, endpoint_id):
    return session.execute(
        select(WebhookMessage.event_type, WebhookMessage.order_id, WebhookMessage.payload)
        .where(WebhookMessage.endpoint_id == endpoint_id)
        .order_by(WebhookMessage.id)
    ).all()


def test_each_change_writes_its_events_for_the_client_that_placed_the_order(session):
    """Intake, a late order, a cancel, the cutoff (final price, refunds owed), the arrival (what
    came short), the plan's publication (the ETA) and the pickup each write their events, for the
    client that placed the order and for no other; no event carries a pickup code."""
    world = make_world(session, tiers=[(3, 800)])
    shop_a, _ = make_client(session, name="shop-a")
    shop_b, _ = make_client(session, name="shop-b")
    hook_a, _ = add_endpoint(session, client=shop_a, url="https://a.example/hook")
    hook_b, _ = add_endpoint(session, client=shop_b, url="https://b.example/hook")
    o1 = _order(session, shop_a, world, key="o1", qty=2)
    o2 = _order(session, shop_a, world, key="o2", member="M2")
    o3 = _order(session, shop_a, world, key="o3", member="M3")
    o4 = _order(session, shop_b, world, key="o4", sku="MILK", member="M4")
    csv = place_order(  # a CSV import's order: no platform hears of it
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("C1"),
        lines=[LineRequest("APPLE", 1)],
        placed_at=world.before_cutoff(120),
        idempotency_scope="csv:SH",
        idempotency_key="c1",
        source="csv",
    )
    cancel_client_order(session, client=shop_a, order_id=o3.id, now=world.before_cutoff(30))
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff())
    # stamped before the cutoff, received after it ran: moved to the next wave
    late = _order(session, shop_a, world, key="late", member="M5", at=world.before_cutoff(5))

    leader = session.scalars(select(Leader).where(Leader.code == "L1")).one()
    user = create_user(session, username="l1", password="x" * 8, role=Role.LEADER, leader_code="L1")
    products = world.products
    counted = {products["APPLE"].id: 3, products["MILK"].id: 1}  # one apple of four short
    wave = o1.wave
    confirm_arrival(
        session, wave=wave, leader=leader, counted=counted, user_id=user.id, actor=user.actor
    )
    add_published_stop(session, wave=wave, leader=leader, arrival_at=world.after_cutoff(600))
    session.execute(update(RoutePlan).values(status=PlanStatus.DRAFT, published_at=None))
    publish_plan(session, wave=wave, actor="test", now=world.after_cutoff(601))
    verify_pickup(
        session,
        leader=leader,
        code=o1.pickup_code,
        user_id=user.id,
        actor=user.actor,
        today=DELIVERY,
    )

    got_a = _messages(session, hook_a.id)
    per_order: dict[int, list[str]] = {}
    for event_type, order_id, _ in got_a:
        per_order.setdefault(order_id, []).append(event_type)
    # o2 (M2, placed last of L1's platform apples) carries the short apple
    assert per_order[o1.id] == [
        "order.accepted",
        "order.cut_off",
        "refund.owed",
        "order.arrived",
        "plan.published",
        "order.collected",
    ]
    assert per_order[o2.id] == [
        "order.accepted",
        "order.cut_off",
        "refund.owed",
        "order.arrived",
        "refund.owed",
        "plan.published",
    ]
    assert per_order[o3.id] == ["order.accepted", "order.cancelled"]
    assert per_order[late.id] == ["order.accepted", "order.late"]
    assert set(per_order) == {o1.id, o2.id, o3.id, late.id}
    assert [(t, o) for t, o, _ in _messages(session, hook_b.id)] == [
        ("order.accepted", o4.id),
        ("order.cut_off", o4.id),
        ("order.arrived", o4.id),
        ("plan.published", o4.id),
    ]
    assert csv.id not in {
        o
        for _, o, _ in session.execute(
            select(WebhookMessage.event_type, WebhookMessage.order_id, WebhookMessage.id)
        )
    }

    payload = {(t, o): p for t, o, p in got_a}
    cut = payload[("order.cut_off", o1.id)]
    assert cut["paid_cents"] == 2000 and cut["final_total_cents"] == 1600
    assert cut["refund_owed_cents"] == 400
    assert cut["lines"] == [
        {
            "sku": "APPLE",
            "quantity": 2,
            "unit_price_cents": 1000,
            "final_price_cents": 800,
            "status": "active",
        }
    ]
    assert payload[("order.arrived", o2.id)]["short"] == [
        {"sku": "APPLE", "units": 1, "refund_cents": 800}
    ]
    assert payload[("order.arrived", o1.id)]["short"] == []
    assert payload[("plan.published", o1.id)]["eta"] is not None
    assert payload[("order.collected", o1.id)]["lines"] == [{"sku": "APPLE", "quantity": 2}]
    assert payload[("order.cancelled", o3.id)]["reason"] == "member"
    codes = set(session.scalars(select(Order.pickup_code)))
    everything = json.dumps(
        [
            p
            for _, _, p in session.execute(
                select(WebhookMessage.event_type, WebhookMessage.order_id, WebhookMessage.payload)
            )
        ]
    )
    assert not any(code in everything for code in codes)
    assert "张三" not in everything and "13800000000" not in everything


def test_a_change_that_rolls_back_writes_no_event(sessions):
    """An order refused for want of stock, and an order whose transaction rolls back, leave
    nothing in the outbox."""
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=2)
        shop, _ = make_client(s)
        add_endpoint(s, client=shop, url="https://a.example/hook")
    s = sessions()
    try:
        with pytest.raises(SoldOut):
            _order(s, shop, world, key="too-many", qty=3)
    finally:
        s.rollback()
        s.close()
    s = sessions()
    _order(s, shop, world, key="then-rolled-back")
    assert s.scalar(select(func.count()).select_from(WebhookMessage)) == 1
    s.rollback()
    s.close()
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(WebhookMessage)) == 0


def test_an_endpoint_hears_only_the_event_types_it_chose(session):
    """An endpoint subscribed to order.cut_off only gets no order.accepted."""
    world = make_world(session)
    shop, _ = make_client(session)
    hook, _ = add_endpoint(
        session, client=shop, url="https://a.example/hook", events=["order.cut_off"]
    )
    _order(session, shop, world, key="k1")
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff())
    assert [t for t, _, _ in _messages(session, hook.id)] == ["order.cut_off"]


# --- delivery ---------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _world_with_hook(sessions, receiver, *, path="/hook", name="shop-a"):
    with session_scope(sessions) as s:
        world = make_world(s)
        shop, _ = make_client(s, name=name)
        hook, secret = add_endpoint(s, client=shop, url=receiver.url(path))
        receiver.secrets[path] = secret
    return world, shop, hook


def _drain(courier, *, until, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        if not courier.deliver_once():
            time.sleep(0.02)
    assert until(), "not delivered in time"


def test_the_receiver_gets_each_event_signed_in_order_per_order_and_once(sessions, receiver):
    """Every message reaches the receiver with a valid signature, each order's events in the
    order they happened; a replay sends the same ids again, which the receiver drops."""
    world, shop, hook = _world_with_hook(sessions, receiver)
    with session_scope(sessions) as s:
        orders = [_order(s, shop, world, key=f"k{n}", member=f"M{n}") for n in range(6)]
        ids = [o.id for o in orders]
    with session_scope(sessions) as s:
        shop = s.merge(shop)
        cancel_client_order(s, client=shop, order_id=ids[0], now=world.before_cutoff(30))
    with session_scope(sessions) as s:
        cut_off_wave(
            s, region=get_region(s, "SH"), delivery_date=DELIVERY, now=world.after_cutoff()
        )
    with session_scope(sessions) as s:
        total = s.scalar(select(func.count()).select_from(WebhookMessage))
    courier = Courier(sessions, policy=FAST, batch=4, concurrency=4)
    try:
        _drain(courier, until=lambda: len(receiver.accepted) == total)
        assert receiver.bad_signatures == 0
        sequence: dict[int, list[str]] = {}
        for got in receiver.accepted:
            sequence.setdefault(got.order_id, []).append(got.type)
        assert sequence[ids[0]] == ["order.accepted", "order.cancelled"]
        for order_id in ids[1:]:
            assert sequence[order_id] == ["order.accepted", "order.cut_off"]
        assert len({got.id for got in receiver.accepted}) == total

        with session_scope(sessions) as s:
            assert (
                replay(s, since=world.before_cutoff(24 * 60), now=utcnow(), actor="admin") == total
            )
        _drain(courier, until=lambda: receiver.duplicates == total)
        assert len(receiver.accepted) == total  # nothing processed twice
    finally:
        courier.close()


def test_a_receiver_failing_five_times_then_answering_gets_the_event_once(sessions, receiver):
    """Five 500s, then a 2xx: the event is retried with backoff and accepted exactly once."""
    world, shop, hook = _world_with_hook(sessions, receiver)
    receiver.fail_times["*"] = 5
    with session_scope(sessions) as s:
        order_id = _order(s, shop, world, key="k1").id
    courier = Courier(sessions, policy=FAST, concurrency=2)
    try:
        _drain(courier, until=lambda: len(receiver.accepted) == 1)
    finally:
        courier.close()
    [got] = receiver.accepted
    assert (got.type, got.order_id) == ("order.accepted", order_id)
    assert receiver.attempts[got.id] == 6
    with session_scope(sessions) as s:
        message = s.scalars(select(WebhookMessage)).one()
        assert (message.state, message.attempts) == (MessageState.DELIVERED, 6)


def test_a_message_past_its_retry_window_is_failed_shown_and_can_be_replayed(sessions, receiver):
    """A receiver that never answers 2xx: after the window the message is failed, listed for
    the admin; once the receiver is back, a replay delivers it."""
    world, shop, hook = _world_with_hook(sessions, receiver)
    receiver.down = True
    with session_scope(sessions) as s:
        _order(s, shop, world, key="k1")
    policy = RetryPolicy(base_s=0.01, max_backoff_s=0.02, endpoint_pause_max_s=0.02, window_s=0.0)
    courier = Courier(sessions, policy=policy, concurrency=1)
    try:
        courier.deliver_once()
        with session_scope(sessions) as s:
            [failed] = list_failed(s)
            assert failed.event_type == "order.accepted" and failed.last_status == 503
        receiver.down = False
        time.sleep(0.05)
        assert courier.deliver_once() == 0  # failed for good: not retried on its own
        with session_scope(sessions) as s:
            assert replay(s, since=world.before_cutoff(24 * 60), now=utcnow(), actor="admin") == 1
        _drain(courier, until=lambda: len(receiver.accepted) == 1)
    finally:
        courier.close()


def test_failed_messages_are_sent_again_by_the_admin_but_never_a_removed_endpoints(
    sessions, receiver
):
    """`retry_failed`: a named failed message, or every failed one of an endpoint, becomes
    pending with a new retry window (another endpoint's stay failed, one no longer failed is
    left alone); a removed endpoint's are refused naming the endpoint and nothing changes; an
    unknown one is not found; each change is audited. The receiver then gets each under its
    first webhook-id. `list_failed` and `count_by_state` read one endpoint when asked."""
    world, shop_a, hook_a = _world_with_hook(sessions, receiver, path="/a", name="shop-a")
    with session_scope(sessions) as s:
        shop_b, _ = make_client(s, name="shop-b")
        hook_b, secret = add_endpoint(s, client=shop_b, url=receiver.url("/b"))
        receiver.secrets["/b"] = secret
        for n in range(2):
            _order(s, shop_a, world, key=f"a{n}", member=f"A{n}")
        _order(s, shop_b, world, key="b0", member="B0")
    receiver.down = True
    policy = RetryPolicy(base_s=0.01, max_backoff_s=0.02, endpoint_pause_max_s=0.02, window_s=0.0)
    courier = Courier(sessions, policy=policy)
    try:
        _drain(courier, until=lambda: _states(sessions) == {MessageState.FAILED})
    finally:
        courier.close()
    receiver.down = False
    with session_scope(sessions) as s:
        a1, a2 = [m.id for m in reversed(list_failed(s, endpoint_id=hook_a.id))]
        [b1] = [m.id for m in list_failed(s, endpoint_id=hook_b.id)]
        assert [m.id for m in list_failed(s, limit=1, offset=1)] == [a2]
        assert count_by_state(s, endpoint_id=hook_a.id) == {"failed": 2}
        assert retry_failed(s, now=utcnow(), actor="user:root", message_ids=[a1]) == 1
        again = s.get_one(WebhookMessage, a1)
        assert (again.state, again.attempts, again.retry_since) == (MessageState.PENDING, 0, None)
        assert retry_failed(s, now=utcnow(), actor="user:root", message_ids=[a1]) == 0
        assert retry_failed(s, now=utcnow(), actor="user:root", endpoint_id=hook_a.id) == 1
        assert s.get_one(WebhookMessage, b1).state == MessageState.FAILED
        assert count_by_state(s) == {"pending": 2, "failed": 1}
    with session_scope(sessions) as s:
        remove_endpoint(s, client=s.merge(shop_b), endpoint_id=hook_b.id)
    with session_scope(sessions) as s:
        with pytest.raises(InvalidInput) as refused:
            retry_failed(s, now=utcnow(), actor="user:root", endpoint_id=hook_b.id)
        assert (refused.value.record, refused.value.field) == (
            f"webhook endpoint {hook_b.id}",
            "endpoint",
        )
        with pytest.raises(InvalidInput) as refused:
            retry_failed(s, now=utcnow(), actor="user:root", message_ids=[a2, b1])
        assert refused.value.record == f"webhook message evt_{b1}"
        with pytest.raises(NotFound):
            retry_failed(s, now=utcnow(), actor="user:root", message_ids=[10**9])
        with pytest.raises(NotFound):
            retry_failed(s, now=utcnow(), actor="user:root", endpoint_id=10**6)
        with pytest.raises(InvalidInput):
            retry_failed(s, now=utcnow(), actor="user:root")
        assert s.get_one(WebhookMessage, b1).state == MessageState.FAILED
        entries = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "webhook.retried")
                .order_by(AuditEntry.id)
            )
        )
        assert [(e.entity, e.entity_id, e.after) for e in entries] == [
            ("webhook_message", a1, {"messages": 1, "ids": [a1]}),
            ("webhook_message", a1, {"messages": 0, "ids": []}),
            ("webhook_endpoint", hook_a.id, {"messages": 1}),
        ]
    courier = Courier(sessions, policy=FAST)
    try:
        _drain(courier, until=lambda: len(receiver.accepted) == 2)
    finally:
        courier.close()
    assert sorted(g.id for g in receiver.log_by_path["/a"]) == sorted([f"evt_{a1}", f"evt_{a2}"])
    assert "/b" not in receiver.log_by_path


def _states(sessions) -> set[MessageState]:
    with session_scope(sessions) as s:
        return set(s.scalars(select(WebhookMessage.state)))


def test_a_client_never_receives_another_clients_events(sessions, receiver):
    """Two platforms, each with its own endpoint and secret: each gets its own orders' events."""
    world, shop_a, _ = _world_with_hook(sessions, receiver, path="/a", name="shop-a")
    with session_scope(sessions) as s:
        shop_b, _ = make_client(s, name="shop-b")
        _, secret = add_endpoint(s, client=shop_b, url=receiver.url("/b"))
        receiver.secrets["/b"] = secret
        a = [_order(s, shop_a, world, key=f"a{n}", member=f"A{n}").id for n in range(3)]
        b = [_order(s, shop_b, world, key=f"b{n}", member=f"B{n}").id for n in range(2)]
    courier = Courier(sessions, policy=FAST)
    try:
        _drain(courier, until=lambda: len(receiver.accepted) == 5)
    finally:
        courier.close()
    assert sorted(g.order_id for g in receiver.log_by_path["/a"]) == sorted(a)
    assert sorted(g.order_id for g in receiver.log_by_path["/b"]) == sorted(b)
    assert receiver.bad_signatures == 0


def test_the_signature_is_the_standard_webhooks_one():
    """The spec's own example: secret, id, timestamp and body give its published signature."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        sign(secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


# --- PostgreSQL: several workers, a process killed after its commit -------------------------


@pytest.mark.postgres
def test_two_workers_never_send_one_event_twice(pg_url, receiver):
    """Two couriers at once on 300 events (FOR UPDATE SKIP LOCKED): every event is received
    exactly once, and each order's events in order."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    world, shop, _ = _world_with_hook(sessions, receiver)
    with session_scope(sessions) as s:
        ids = [_order(s, shop, world, key=f"k{n}", member=f"M{n}").id for n in range(150)]
    with session_scope(sessions) as s:
        cut_off_wave(
            s, region=get_region(s, "SH"), delivery_date=DELIVERY, now=world.after_cutoff()
        )
    couriers = [Courier(sessions, policy=FAST, batch=25, concurrency=4) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(
                pool.map(lambda c: _drain(c, until=lambda: len(receiver.accepted) >= 300), couriers)
            )
    finally:
        for c in couriers:
            c.close()
        engine.dispose()
    assert receiver.duplicates == 0 and len(receiver.accepted) == 300
    assert sum(receiver.attempts.values()) == 300
    order_of: dict[int, list[str]] = {}
    for got in receiver.accepted:
        order_of.setdefault(got.order_id, []).append(got.type)
    assert all(order_of[i] == ["order.accepted", "order.cut_off"] for i in ids)


@pytest.mark.postgres
@pytest.mark.parametrize("scope", ["messages", "endpoint", "replay"])
def test_two_admins_sending_failed_messages_again_at_once_queue_each_once(pg_url, receiver, scope):
    """Two admins press "send again" on the same failed messages at the same moment (by message,
    by endpoint, or `webhooks replay --since`): the second waits on the first's rows and, once
    the first commits, finds them no longer failed. Each message becomes pending once, with one
    new retry window, and the audit says who changed how many (2 and 0)."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    try:
        world, shop, hook = _world_with_hook(sessions, receiver)
        with session_scope(sessions) as s:
            for n in range(2):
                _order(s, shop, world, key=f"k{n}", member=f"M{n}")
            s.execute(update(WebhookMessage).values(state=MessageState.FAILED, attempts=9))
            ids = sorted(s.scalars(select(WebhookMessage.id)))
        with session_scope(sessions) as s:  # written at the orders' (test) time
            since = s.scalar(select(func.min(WebhookMessage.created_at)))

        def send_again(s, name: str) -> int:
            if scope == "replay":
                return replay(s, since=since, now=utcnow(), actor=f"user:{name}")
            chosen = {"message_ids": ids} if scope == "messages" else {"endpoint_id": hook.id}
            return retry_failed(s, now=utcnow(), actor=f"user:{name}", **chosen)

        first_changed = threading.Event()
        second_started = threading.Event()
        counts: dict[str, int] = {}

        def admin(name: str) -> None:
            with session_scope(sessions) as s:
                if name == "second":
                    first_changed.wait(10)
                    second_started.set()
                counts[name] = send_again(s, name)
                if name == "first":
                    first_changed.set()
                    second_started.wait(10)
                    time.sleep(0.3)  # the second's UPDATE is now waiting on these rows

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(admin, ["first", "second"]))
        assert counts == {"first": 2, "second": 0}
        with session_scope(sessions) as s:
            rows = s.execute(select(WebhookMessage.state, WebhookMessage.attempts)).all()
            assert sorted(rows) == [(MessageState.PENDING, 0)] * 2
            audited = s.execute(
                select(AuditEntry.actor, AuditEntry.after)
                .where(AuditEntry.action.in_(["webhook.retried", "webhook.replayed"]))
                .order_by(AuditEntry.id)
            ).all()
            assert [(a, e["messages"]) for a, e in audited] == [
                ("user:first", 2),
                ("user:second", 0),
            ]
    finally:
        engine.dispose()


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import timedelta
    from sqlalchemy import select
    from fulfilment.core.db import make_engine, make_session_factory
    from fulfilment.core.models import Region, utcnow
    from fulfilment.orders.intake import LineRequest, MemberRef
    from fulfilment.platforms.clients import ApiClient, OrderRequest, submit_order

    url, key, commit = sys.argv[1], sys.argv[2], sys.argv[3] == "commit"
    session = make_session_factory(make_engine(url))()
    client = session.scalars(select(ApiClient)).one()
    request = OrderRequest("L1", MemberRef(key), [LineRequest("APPLE", 1)])
    submit_order(session, client=client, request=request, idempotency_key=key,
                 now=utcnow().replace(year=2026, month=3, day=9, hour=12))
    if commit:
        session.commit()
    else:
        session.flush()
    print("done", flush=True)
    signal.pause()  # the parent kills us here: after the commit, or before it
    """
)


@pytest.mark.postgres
def test_a_process_killed_after_its_commit_still_sends_and_before_it_sends_nothing(
    pg_url, receiver
):
    """An order committed by a process SIGKILLed at once is still delivered; one whose process
    is killed before its commit never is."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    _world_with_hook(sessions, receiver)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for key, mode in (("committed", "commit"), ("lost", "flush")):
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED, pg_url, key, mode],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "done"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    courier = Courier(sessions, policy=FAST)
    try:
        _drain(courier, until=lambda: len(receiver.accepted) >= 1)
        time.sleep(0.2)
        assert courier.deliver_once() == 0
    finally:
        courier.close()
        engine.dispose()
    [got] = receiver.accepted
    assert got.type == "order.accepted" and got.data["idempotency_key"] == "committed"


def _work_burst(queue) -> None:
    """Run the queue's jobs in this process with an RQ SimpleWorker in burst mode, without its
    pub/sub listener (the channel a `rq` command would send a stop to: none here). With rq 3.0
    on redis-py 8.2 a worker's teardown joins that listener until its 60 s poll ends, which
    made a one-second test take a minute now and then."""
    from rq import SimpleWorker

    class BurstWorker(SimpleWorker):
        def subscribe(self) -> None:
            return None

    BurstWorker([queue], connection=queue.connection).work(burst=True)


def test_rq_jobs_deliver_the_outbox(sessions, db_url, receiver, redis_url):
    """With Redis, a delivery pass is an RQ job; a worker running it delivers the outbox."""
    from redis import Redis
    from rq import Queue

    from fulfilment.events import delivery

    world, shop, _ = _world_with_hook(sessions, receiver)
    with session_scope(sessions) as s:
        _order(s, shop, world, key="k1")
    connection = Redis.from_url(redis_url)
    queue = Queue(f"webhooks-test-{os.getpid()}-{threading.get_ident()}", connection=connection)
    try:
        queue.enqueue(delivery.deliver_job, db_url, 5.0)
        _work_burst(queue)
    finally:
        queue.delete(delete_jobs=True)
        if delivery._JOB_COURIER is not None:
            delivery._JOB_COURIER.close()
            delivery._JOB_COURIER = None
    assert [g.type for g in receiver.accepted] == ["order.accepted"]


def test_a_delivery_job_for_another_database_delivers_that_databases_outbox(
    tmp_path, sqlite_template
):
    """A worker process keeps its courier between jobs; a job naming another database (two
    deployments sharing a Redis) must deliver that database's outbox, not the first one's."""
    from fulfilment.core.db import make_engine, make_session_factory
    from fulfilment.events import delivery

    receivers = [Receiver(), Receiver()]  # a platform each: the two outboxes' ids are alike
    urls, engines = [], []
    for n, receiver in enumerate(receivers):
        path = tmp_path / f"db{n}.sqlite"
        shutil.copy(sqlite_template, path)
        urls.append(f"sqlite:///{path}")
        engines.append(make_engine(urls[-1]))
        sessions = make_session_factory(engines[-1])
        world, shop, _ = _world_with_hook(sessions, receiver)
        with session_scope(sessions) as s:
            _order(s, shop, world, key=f"db-{n}")
    try:
        for url in urls:
            delivery.deliver_job(url, 5.0)
    finally:
        if delivery._JOB_COURIER is not None:
            delivery._JOB_COURIER.close()
            delivery._JOB_COURIER = None
        for engine in engines:
            engine.dispose()
        for receiver in receivers:
            receiver.close()
    assert [[g.data["idempotency_key"] for g in r.accepted] for r in receivers] == [
        ["db-0"],
        ["db-1"],
    ]


def test_the_rq_loop_keeps_at_most_in_flight_jobs_queued_and_none_when_nothing_is_due(
    sessions, db_url, receiver, redis_url, monkeypatch
):
    """`groupbuy webhooks run` with Redis (`run_with_rq`): with nothing due it queues nothing;
    with messages due it keeps `in_flight` delivery jobs queued, never more however many passes
    it makes; an RQ worker running them delivers every message; once nothing is due again it
    queues nothing more. The loop stops on its `stop` event."""
    from redis import Redis
    from rq import Queue

    from fulfilment.events import delivery

    passes = {"n": 0}
    count_due = delivery.count_due

    def counted(session, *, now):  # the loop's passes, to wait for them instead of the clock
        due = count_due(session, now=now)
        passes["n"] += 1
        return due

    monkeypatch.setattr(delivery, "count_due", counted)

    def after_passes(k: int) -> None:
        wanted, deadline = passes["n"] + k, time.monotonic() + 10
        while passes["n"] < wanted:
            assert time.monotonic() < deadline and thread.is_alive(), "the loop stopped passing"
            time.sleep(0.005)

    world, shop, _ = _world_with_hook(sessions, receiver)
    connection = Redis.from_url(redis_url)
    queue = Queue(f"webhooks-loop-{os.getpid()}-{time.monotonic_ns()}", connection=connection)
    stop = threading.Event()
    thread = threading.Thread(
        target=delivery.run_with_rq,
        args=(sessions,),
        kwargs={
            "database_url": db_url,
            "redis_url": redis_url,
            "queue_name": queue.name,
            "in_flight": 2,
            "stop": stop,
            "idle_s": 0.01,
        },
        daemon=True,
    )
    thread.start()
    try:
        after_passes(5)
        assert queue.count == 0  # nothing due: nothing queued

        with session_scope(sessions) as s:
            ids = [_order(s, shop, world, key=f"k{n}", member=f"M{n}").id for n in range(5)]
        after_passes(10)
        assert queue.count == 2  # five due, ten passes: two jobs in flight, not one a pass
        assert queue.started_job_registry.count == 0

        _work_burst(queue)
        assert sorted(g.order_id for g in receiver.accepted) == sorted(ids)
        assert receiver.bad_signatures == 0 and receiver.duplicates == 0
        with session_scope(sessions) as s:
            states = set(s.scalars(select(WebhookMessage.state)))
        assert states == {MessageState.DELIVERED}

        after_passes(2)  # a pass that read "due" before the last delivery had its say
        _work_burst(queue)  # runs any such job
        after_passes(10)
        assert queue.count == 0  # nothing due: nothing queued
    finally:
        stop.set()
        thread.join(timeout=5)
        queue.delete(delete_jobs=True)
        if delivery._JOB_COURIER is not None:
            delivery._JOB_COURIER.close()
            delivery._JOB_COURIER = None
    assert not thread.is_alive()


def test_a_message_the_receiver_always_refuses_does_not_hold_back_other_orders(sessions, receiver):
    """One order's event is refused every time: the endpoint pauses, but its probes move on to
    the other orders' events, which are delivered; the refused one stays pending."""
    world, shop, _ = _world_with_hook(sessions, receiver)
    with session_scope(sessions) as s:
        ids = [_order(s, shop, world, key=f"k{n}", member=f"M{n}").id for n in range(3)]
        first = s.scalar(select(func.min(WebhookMessage.id)))
    receiver.fail_times[f"evt_{first}"] = 10**6
    courier = Courier(sessions, policy=FAST, batch=1, concurrency=1)
    try:
        _drain(courier, until=lambda: len(receiver.accepted) == 2)
    finally:
        courier.close()
    assert sorted(g.order_id for g in receiver.accepted) == sorted(ids[1:])
    with session_scope(sessions) as s:
        assert s.get(WebhookMessage, first).state == MessageState.PENDING


def test_a_lower_count_after_the_arrival_tells_the_platform_of_the_new_refund(session):
    """A correction that puts one more short unit on an order writes a refund.owed for it,
    and no second order.arrived."""
    from fulfilment.points.arrivals import correct_arrival

    world = make_world(session)
    shop, _ = make_client(session)
    hook, _ = add_endpoint(session, client=shop, url="https://a.example/hook")
    order = _order(session, shop, world, key="k1", qty=3)
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff())
    leader = session.scalars(select(Leader).where(Leader.code == "L1")).one()
    user = create_user(session, username="l1", password="x" * 8, role=Role.LEADER, leader_code="L1")
    apple = world.products["APPLE"].id
    arrival, _ = confirm_arrival(
        session, wave=order.wave, leader=leader, counted={apple: 3}, user_id=user.id, actor="t"
    )
    correct_arrival(
        session, arrival=arrival, product_id=apple, counted=2, user_id=user.id, actor="t"
    )
    events = [(t, p) for t, _, p in _messages(session, hook.id)]
    assert [t for t, _ in events] == [
        "order.accepted",
        "order.cut_off",
        "order.arrived",
        "refund.owed",
    ]
    assert events[2][1]["short"] == []
    assert events[3][1] == {
        "order_id": order.id,
        "idempotency_key": "k1",
        "refund_id": events[3][1]["refund_id"],
        "sku": "APPLE",
        "reason": "shortage",
        "amount_cents": 1000,
    }


@pytest.mark.postgres
def test_a_burst_refreshes_the_outboxs_statistics_once(pg_url):
    """After a burst larger than the table was, the outbox is analysed (the claim's plan then
    reads 200 rows by index, not the whole backlog); right after, it is not analysed again."""
    from fulfilment.events.delivery import refresh_statistics_if_stale
    from fulfilment.events.models import EventType
    from fulfilment.events.outbox import Event, emit

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    try:
        with session_scope(sessions) as s:
            make_world(s)
            shop, _ = make_client(s)
            add_endpoint(s, client=shop, url="https://a.example/hook")
            data = {"order_id": 1}
            emit(
                s,
                [Event(EventType.ORDER_CUT_OFF, shop.scope, n, data) for n in range(3000)],
                now=utcnow(),
            )
        deadline = time.monotonic() + 10  # the statistics collector reports within a moment
        analysed = False
        while not analysed and time.monotonic() < deadline:
            with session_scope(sessions) as s:
                analysed = refresh_statistics_if_stale(s)
            time.sleep(0.2)
        assert analysed
        with session_scope(sessions) as s:
            assert not refresh_statistics_if_stale(s)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_registrations_and_removals_at_once_keep_the_limit_and_remove_once(pg_url):
    """A client with nine endpoints registers eight more at the same moment: one is added,
    seven are refused naming `url` (the limit of ten holds). Then eight removals of one
    endpoint at once: one removes it (audited once), seven are told it is not found."""
    engine = make_engine(pg_url, pool_size=10, max_overflow=0)
    sessions = make_session_factory(engine)
    try:
        with session_scope(sessions) as s:
            make_world(s)
            client, _ = make_client(s, name="shop")
            for n in range(9):
                add_endpoint(s, client=client, url=f"https://shop.example/{n}")
        start = threading.Barrier(8)

        def at_once(work):
            def attempt(n):
                start.wait()
                try:
                    with session_scope(sessions) as s:
                        shop = s.scalars(select(ApiClient).where(ApiClient.name == "shop")).one()
                        work(s, shop, n)
                        return "ok"
                except InvalidInput as err:
                    return err.field
                except NotFound:
                    return "not found"

            with ThreadPoolExecutor(8) as pool:
                return sorted(pool.map(attempt, range(8)))

        added = at_once(
            lambda s, shop, n: add_endpoint(s, client=shop, url=f"https://shop.example/x{n}")
        )
        assert added == ["ok"] + ["url"] * 7
        with session_scope(sessions) as s:
            assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 10
            first = s.scalar(select(func.min(WebhookEndpoint.id)))
        removed = at_once(
            lambda s, shop, n: remove_endpoint(s, client=shop, endpoint_id=first, actor=f"u{n}")
        )
        assert removed == ["not found"] * 7 + ["ok"]
        with session_scope(sessions) as s:
            audited = s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "webhook_endpoint.removed")
            )
            assert audited == 1
    finally:
        engine.dispose()


def test_an_after_sales_refund_tells_the_platform_that_placed_the_order(session):
    """A refund agreed after the handover (售后) is money the platform pays the member: its
    `refund.owed` (reason after_sales, the amount agreed) goes to the client that placed the
    order, to no other client, and an order no platform placed tells no one."""
    from fulfilment.orders.refunds import owe_after_sales_refund

    world = make_world(session)
    shop, _ = make_client(session, name="shop-a")
    other, _ = make_client(session, name="shop-b")
    hook, _ = add_endpoint(session, client=shop, url="https://a.example/hook")
    other_hook, _ = add_endpoint(session, client=other, url="https://b.example/hook")
    order = _order(session, shop, world, key="k1", qty=2)
    by_csv = place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("M9"),
        lines=[LineRequest("APPLE", 1)],
        placed_at=world.before_cutoff(60),
        source="csv",
    )
    before = len(_messages(session, hook.id))
    refund = owe_after_sales_refund(
        session, order_line_id=order.lines[0].id, amount_cents=250, actor="user:admin"
    )
    owe_after_sales_refund(
        session, order_line_id=by_csv.lines[0].id, amount_cents=100, actor="user:admin"
    )
    got = _messages(session, hook.id)[before:]
    assert [(t, order_id, payload) for t, order_id, payload in got] == [
        (
            "refund.owed",
            order.id,
            {
                "order_id": order.id,
                "idempotency_key": "k1",
                "refund_id": refund.id,
                "sku": "APPLE",
                "reason": "after_sales",
                "amount_cents": 250,
            },
        )
    ]
    assert _messages(session, other_hook.id) == []
    assert session.scalar(select(func.count()).select_from(WebhookMessage)) == before + 1
