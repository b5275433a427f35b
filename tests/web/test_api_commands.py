"""`groupbuy api-client create`, and the README's promise: an API order right after the demo."""

from __future__ import annotations

from sqlalchemy import select

from fulfilment.core.db import session_scope
from fulfilment.core.models import AuditEntry
from fulfilment.platforms.clients import ApiClient, hash_token

README_ORDER = {
    "leader": "L00001",
    "member": {"id": "m-1001", "name": "张三", "phone": "13800138000"},
    "lines": [{"sku": "VEG-001", "quantity": 2}],
}


def _token(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_api_client_create_prints_the_token_once_and_stores_only_its_hash(app, runner):
    """The token is printed; the database holds its SHA-256, never the token itself."""
    runner.invoke(args=["demo", "--leaders", "3", "--orders", "10", "--no-cutoff"])
    token = _token(runner.invoke(args=["api-client", "create", "shop-a", "--region", "SH"]))
    assert token.startswith("gbk_") and len(token) > 40
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        client = s.scalars(select(ApiClient)).one()
        assert client.token_hash == hash_token(token) and token not in client.token_hash
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "api_client.created")).one()
        assert token not in str(audit.after)


def test_api_client_create_errors_are_a_message_and_exit_1(app, runner):
    """An unknown region or a name taken is one line naming it, exit code 1, no traceback."""
    runner.invoke(args=["demo", "--leaders", "3", "--orders", "10", "--no-cutoff"])
    unknown = runner.invoke(args=["api-client", "create", "shop-a", "--region", "XX"])
    assert unknown.exit_code == 1 and "region 'XX'" in unknown.output
    assert "Traceback" not in unknown.output
    _token(runner.invoke(args=["api-client", "create", "shop-a", "--region", "SH"]))
    again = runner.invoke(args=["api-client", "create", "shop-a", "--region", "SH"])
    assert again.exit_code == 1 and "exists" in again.output


def test_readme_order_works_right_after_the_demo(app, client, runner):
    """demo (which cuts off its wave) → api-client create → the README's POST is placed (201)
    into the next open wave, which the demo offers its deals for."""
    demo = runner.invoke(args=["demo", "--leaders", "5", "--orders", "50"])
    assert demo.exit_code == 0, demo.output
    assert "API orders placed now go to region SH's wave" in demo.output
    token = _token(runner.invoke(args=["api-client", "create", "demo-shop", "--region", "SH"]))
    answer = client.post(
        "/api/v1/orders",
        json=README_ORDER,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "readme-1"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.get_json()["wave"]["status"] == "open"


def test_api_client_revoke_stops_its_token_at_once(app, client, runner):
    """After `api-client revoke` the token is 401; an unknown name is exit code 1."""
    runner.invoke(args=["demo", "--leaders", "3", "--orders", "10", "--no-cutoff"])
    token = _token(runner.invoke(args=["api-client", "create", "shop-a", "--region", "SH"]))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/orders/1", headers=headers).status_code == 404
    assert runner.invoke(args=["api-client", "revoke", "shop-a"]).exit_code == 0
    assert client.get("/api/v1/orders/1", headers=headers).status_code == 401
    assert runner.invoke(args=["api-client", "revoke", "nobody"]).exit_code == 1
