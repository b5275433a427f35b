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


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory, sqlite_template):
    """The app on SQLite with the demo city on offer, an API client and none of its orders yet."""
    folder = tmp_path_factory.mktemp("contract")
    shutil.copy(sqlite_template, folder / "db.sqlite")
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite'}",
            "GROUPBUY_INSTANCE_DIR": str(folder),
            "TESTING": True,
            "API_RATE_LIMIT": "100000/second",
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
    assert len(operations) == 4
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
