"""Webhook endpoints through the API (`/api/v1/webhooks/endpoints`) and the CLI
(`groupbuy api-client webhook …`, `groupbuy webhooks …`), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import timedelta

from factories import DELIVERY, make_world
from platform_factories import make_client
from sqlalchemy import func, select, update

from fulfilment.core.db import session_scope
from fulfilment.core.models import AuditEntry, Region
from fulfilment.events.models import MessageState, WebhookEndpoint, WebhookMessage
from fulfilment.orders.intake import LineRequest, MemberRef
from fulfilment.platforms.clients import ApiClient, OrderRequest, submit_order
from fulfilment.waves.cycle import cutoff_for_delivery


def _tokens(app) -> dict[str, str]:
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        make_world(s)
        return {name: make_client(s, name=name)[1] for name in ("shop-a", "shop-b")}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_platform_registers_lists_and_removes_its_endpoints(app, client):
    """POST answers 201 with the secret once (whsec_ + 32 bytes); GET lists the client's own
    endpoints without secrets; DELETE removes one (204), and it is gone from the list."""
    tokens = _tokens(app)
    answer = client.post(
        "/api/v1/webhooks/endpoints",
        json={"url": "https://shop.example/hook", "events": ["order.cut_off", "order.arrived"]},
        headers=_auth(tokens["shop-a"]),
    )
    assert answer.status_code == 201, answer.text
    created = answer.get_json()
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["events"] == ["order.arrived", "order.cut_off"]
    assert answer.headers["Location"] == f"/api/v1/webhooks/endpoints/{created['id']}"
    listed = client.get("/api/v1/webhooks/endpoints", headers=_auth(tokens["shop-a"])).get_json()
    assert [(e["id"], e["url"]) for e in listed["endpoints"]] == [
        (created["id"], "https://shop.example/hook")
    ]
    assert "secret" not in listed["endpoints"][0]
    other = client.get("/api/v1/webhooks/endpoints", headers=_auth(tokens["shop-b"])).get_json()
    assert other["endpoints"] == []
    stolen = client.delete(
        f"/api/v1/webhooks/endpoints/{created['id']}", headers=_auth(tokens["shop-b"])
    )
    assert stolen.status_code == 404
    gone = client.delete(
        f"/api/v1/webhooks/endpoints/{created['id']}", headers=_auth(tokens["shop-a"])
    )
    assert gone.status_code == 204
    listed = client.get("/api/v1/webhooks/endpoints", headers=_auth(tokens["shop-a"])).get_json()
    assert listed["endpoints"] == []


def test_bad_endpoints_are_refused_naming_the_field(app, client):
    """Not http(s), no host, user info, an internal address (also written as one number, in
    octal or hex, or shortened: the resolver reads them all), an unknown event type, a missing
    URL: 422 with the field's JSON pointer, nothing written."""
    tokens = _tokens(app)
    cases = [
        ({"url": "ftp://shop.example/hook"}, "/url"),
        ({"url": "https://"}, "/url"),
        ({"url": "https://user:pw@shop.example/"}, "/url"),
        ({"url": "https://shop.example/a b"}, "/url"),
        ({"url": "http://127.0.0.1:8080/hook"}, "/url"),  # internal addresses: not via the API
        ({"url": "http://169.254.169.254/latest"}, "/url"),
        ({"url": "http://[::1]/"}, "/url"),
        ({"url": "http://localhost/"}, "/url"),
        # IPv4 written the old ways the resolver still reads: 127.0.0.1, 10.0.0.1, 0.0.0.0
        ({"url": "http://2130706433:8080/hook"}, "/url"),
        ({"url": "http://127.1/"}, "/url"),
        ({"url": "http://0x7f.0.0.1/"}, "/url"),
        ({"url": "http://0177.0.0.1/"}, "/url"),
        ({"url": "http://10.1/"}, "/url"),
        ({"url": "http://0/"}, "/url"),
        ({"url": "http://127.0.0.1./"}, "/url"),
        ({"url": "https://shop.example/", "events": ["order.shipped"]}, "/events/0"),
        ({"url": "https://shop.example/", "events": "order.cut_off"}, "/events"),
        ({"events": []}, "/url"),
        ({"url": "https://shop.example/", "colour": "red"}, "/colour"),
    ]
    for body, pointer in cases:
        answer = client.post(
            "/api/v1/webhooks/endpoints", json=body, headers=_auth(tokens["shop-a"])
        )
        assert answer.status_code == 422, (body, answer.text)
        assert pointer in [e["pointer"] for e in answer.get_json()["errors"]], body
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalars(select(WebhookEndpoint)).all() == []


def test_the_cli_adds_lists_and_removes_an_endpoint(app, runner):
    """`api-client webhook add` prints the secret once on stdout; list shows it; remove drops
    the endpoint's undelivered messages."""
    _tokens(app)
    added = runner.invoke(
        args=["api-client", "webhook", "add", "shop-a", "https://shop.example/hook"]
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        endpoint = s.scalars(select(WebhookEndpoint)).one()
        endpoint_id = endpoint.id
        shop = s.scalars(select(ApiClient).where(ApiClient.name == "shop-a")).one()

        region = s.scalars(select(Region)).one()

        submit_order(
            s,
            client=shop,
            request=OrderRequest("L1", MemberRef("M1"), [LineRequest("APPLE", 1)]),
            idempotency_key="k1",
            now=cutoff_for_delivery(region, DELIVERY) - timedelta(hours=1),
        )
    listed = runner.invoke(args=["api-client", "webhook", "list", "shop-a"])
    assert f"{endpoint_id}\thttps://shop.example/hook\t*\tok" in listed.output
    bad = runner.invoke(args=["api-client", "webhook", "add", "shop-a", "mailto:x@example.com"])
    assert bad.exit_code == 1 and "url" in bad.output
    unknown = runner.invoke(
        args=["api-client", "webhook", "add", "shop-a", "https://x.example/", "--events", "x.y"]
    )
    assert unknown.exit_code == 1 and "events" in unknown.output
    removed = runner.invoke(args=["api-client", "webhook", "remove", "shop-a", str(endpoint_id)])
    assert removed.exit_code == 0, removed.output
    with session_scope(sessions) as s:
        assert s.scalars(select(WebhookMessage.state)).all() == [MessageState.DROPPED]


def test_the_admin_sees_failed_messages_and_replays_them(app, runner):
    """`webhooks failed` lists a message that failed for good, with its last answer;
    `webhooks replay --since` queues it again, audited with its actor (`webhook.replayed`);
    `webhooks status` counts by state."""
    _tokens(app)
    runner.invoke(args=["api-client", "webhook", "add", "shop-a", "https://shop.example/hook"])
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        shop = s.scalars(select(ApiClient).where(ApiClient.name == "shop-a")).one()
        region = s.scalars(select(Region)).one()
        submit_order(
            s,
            client=shop,
            request=OrderRequest("L1", MemberRef("M1"), [LineRequest("APPLE", 1)]),
            idempotency_key="k1",
            now=cutoff_for_delivery(region, DELIVERY) - timedelta(hours=1),
        )
        s.execute(
            update(WebhookMessage).values(
                state=MessageState.FAILED, attempts=31, last_status=503, last_error="not 2xx"
            )
        )
    failed = runner.invoke(args=["webhooks", "failed"])
    assert "order.accepted" in failed.output and "HTTP 503" in failed.output
    assert "https://shop.example/hook" in failed.output
    replayed = runner.invoke(
        args=["webhooks", "replay", "--since", "2026-03-01T00:00:00", "--actor", "ops"]
    )
    assert "1 messages queued again." in replayed.output
    status = runner.invoke(args=["webhooks", "status"])
    assert "pending\t1" in status.output and "failed\t0" in status.output
    bad = runner.invoke(args=["webhooks", "replay", "--since", "yesterday"])
    assert bad.exit_code == 1
    with session_scope(sessions) as s:
        audited = s.execute(
            select(AuditEntry.actor, AuditEntry.after).where(
                AuditEntry.action == "webhook.replayed"
            )
        ).all()
    assert audited == [("ops", {"since": "2026-03-01T00:00:00+00:00", "messages": 1})]


def test_webhook_commands_refuse_what_the_database_cannot_hold_naming_it(app, runner):
    """A `--since` whose UTC time is beyond the calendar, an endpoint id beyond an `integer`
    column, a negative or huge `--limit`, a NUL in a client's name, an over-long actor: each
    a clear error naming the option or argument (exit 1 or 2), never a driver's error; an
    unknown or removed endpoint to replay is named too. Nothing is queued or audited."""
    _tokens(app)
    runner.invoke(args=["api-client", "webhook", "add", "shop-a", "https://shop.example/a"])
    runner.invoke(args=["api-client", "webhook", "add", "shop-a", "https://shop.example/b"])
    runner.invoke(args=["api-client", "webhook", "remove", "shop-a", "2"])
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        audited = s.scalar(select(func.count()).select_from(AuditEntry))
    big = "99999999999"
    cases = [
        (["webhooks", "replay", "--since", "9999-12-31T23:00-05:00"], 1, "--since"),
        (["webhooks", "replay", "--since", "0001-01-01T00:00+05:00"], 1, "--since"),
        (["webhooks", "replay", "--since", "2026-03-01", "--endpoint", big], 2, "--endpoint"),
        (["webhooks", "replay", "--since", "2026-03-01", "--endpoint", "9"], 1, "endpoint 9"),
        (["webhooks", "replay", "--since", "2026-03-01", "--endpoint", "2"], 1, "removed"),
        (["webhooks", "replay", "--since", "2026-03-01", "--actor", "a" * 65], 2, "--actor"),
        (["webhooks", "failed", "--limit", "-1"], 2, "--limit"),
        (["webhooks", "failed", "--limit", "1" + "0" * 20], 2, "--limit"),
        (["webhooks", "run", "--once", "--batch", "0"], 2, "--batch"),
        (["webhooks", "run", "--once", "--concurrency", "0"], 2, "--concurrency"),
        (["api-client", "webhook", "add", "shop\x00a", "https://shop.example/c"], 2, "NAME"),
        (["api-client", "webhook", "list", "shop\x00a"], 2, "NAME"),
        (["api-client", "webhook", "remove", "shop-a", big], 2, "ENDPOINT_ID"),
        (
            ["api-client", "webhook", "add", "shop-a", "https://shop.example/c"]
            + ["--actor", "a\x00"],
            2,
            "--actor",
        ),
    ]
    for args, code, named in cases:
        result = runner.invoke(args=args)
        assert result.exit_code == code, (args, result.output, result.exception)
        assert named in result.output, (args, result.output)
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audited
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 2


def test_webhooks_run_once_delivers_signed_events(app, runner):
    """`groupbuy webhooks run --once` sends what is due to the endpoint registered on the
    command line; the receiver checks the signature with the printed secret."""
    from webhook_receiver import Receiver

    receiver = Receiver()
    try:
        _tokens(app)
        added = runner.invoke(args=["api-client", "webhook", "add", "shop-a", receiver.url("/h")])
        receiver.secrets["/h"] = added.stdout.strip().splitlines()[-1]
        with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
            shop = s.scalars(select(ApiClient).where(ApiClient.name == "shop-a")).one()
            region = s.scalars(select(Region)).one()
            submit_order(
                s,
                client=shop,
                request=OrderRequest("L1", MemberRef("M1"), [LineRequest("APPLE", 1)]),
                idempotency_key="k1",
                now=cutoff_for_delivery(region, DELIVERY) - timedelta(hours=1),
            )
        ran = runner.invoke(args=["webhooks", "run", "--once"])
        assert "1 sent" in ran.output, ran.output
        assert [g.type for g in receiver.accepted] == ["order.accepted"]
        assert receiver.bad_signatures == 0
    finally:
        receiver.close()
