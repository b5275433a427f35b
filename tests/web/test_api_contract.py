"""The OpenAPI document is the contract: schemathesis drives the WSGI app from it and finds no
server error and no answer that breaks the document (status, content type, headers, body)."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_factories import make_client
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import session_scope
from fulfilment.core.models import utcnow
from fulfilment.demo.city import build_demo
from fulfilment.waves.offers import offer_next_waves
from web import create_app


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def contract_app(request, tmp_path_factory, sqlite_template):
    """The app with the demo city on offer, an API client and none of its orders yet: on SQLite
    and on PostgreSQL (which refuses what SQLite quietly stores: NUL, huge integers, overflows)."""
    folder = tmp_path_factory.mktemp("contract")
    if request.param == "sqlite":
        shutil.copy(sqlite_template, folder / "db.sqlite")
        url = f"sqlite:///{folder / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("pg_module_url")
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": url,
            "GROUPBUY_INSTANCE_DIR": str(folder),
            "TESTING": True,
            "API_RATE_LIMIT": "100000/second",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        # The demo city, so that the document's example order (leader L00001) can be placed.
        build_demo(s, leaders=5, orders=20)
        offer_next_waves(s, region=get_region(s, "SH"), now=utcnow())
        app.config["CONTRACT_TOKEN"] = make_client(s)[1]
    yield app
    app.extensions["groupbuy"]["engine"].dispose()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_to_the_openapi_document(contract_app, mode):
    """Generated requests (valid ones, then invalid ones) to every operation get answers the
    document allows: no server error, documented status, content type, headers and body."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", contract_app)
    auth = {"Authorization": f"Bearer {contract_app.config['CONTRACT_TOKEN']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7  # the orders' four, and the webhook endpoints' three
    seen: set[tuple[str, int]] = set()

    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)
        if mode == GenerationMode.POSITIVE:  # the document's own examples first: they succeed
            strategy = st.one_of(*operation.get_strategies_from_examples(), strategy)

        @given(case=strategy)
        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            # A schema-valid body may still name a leader or SKU that does not exist: 422 is
            # the right answer there, so "valid data is accepted" is the one check left out.
            answer = case.call_and_validate(
                headers=auth, excluded_checks=[positive_data_acceptance]
            )
            seen.add((case.operation.label, answer.status_code))

        check()
    if mode == GenerationMode.POSITIVE:  # the run reached real orders, not only refusals
        assert ("POST /api/v1/orders", 201) in seen


FIELDS = [
    ("leader",),
    ("member", "id"),
    ("member", "name"),
    ("member", "phone"),
    ("lines", 0, "sku"),
    ("lines", 0, "quantity"),
    ("lines", 1, "quantity"),
]
HOSTILE = st.one_of(
    # text with control characters (NUL), unpaired surrogates and anything else Unicode has
    st.text(st.characters(codec=None, categories=None), max_size=80),
    st.text(st.sampled_from(["\x00", "\ud800", "\udfff", "\x1b", "\x7f", "a", "界"]), max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**20, 1e30, float("nan"), True, None]),
    st.recursive(st.none(), lambda inner: st.lists(inner, max_size=2), max_leaves=20),
)


@given(field=st.sampled_from(FIELDS), value=HOSTILE)
@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def _hostile_order(client, token, field, value):
    import copy
    import json
    import uuid

    body = copy.deepcopy(EXAMPLE)
    target = body
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = value
    answer = client.post(
        "/api/v1/orders",
        data=json.dumps(body),  # ASCII escapes: a lone surrogate travels as \ud800
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code < 500, (field, value, answer.get_data()[:300])


EXAMPLE = {
    "leader": "L00001",
    "member": {"id": "m-1", "name": "张三", "phone": "13800138000"},
    "lines": [{"sku": "VEG-001", "quantity": 1}, {"sku": "DAI-001", "quantity": 1}],
}


def test_hostile_values_in_any_order_field_are_never_a_server_error(contract_app):
    """Each field of a valid order replaced by a hostile value (NUL and other control characters,
    lone surrogates, integers past 64 bits, NaN, nesting) is answered 4xx, never 5xx: on
    PostgreSQL too, which refuses what SQLite stores."""
    _hostile_order(contract_app.test_client(), contract_app.config["CONTRACT_TOKEN"])
