"""Bad input on the portal's forms (issue 22, item 11): every posted number and text goes through
web/forms.py, so what a column cannot hold is a clear refusal on the page, never a 500 on
PostgreSQL, and nothing is written."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from portal_factories import login, make_portal_world, post
from sqlalchemy import func, select

from fulfilment.core.db import session_scope
from fulfilment.core.models import Product, Refund
from fulfilment.points.arrivals import Arrival, ArrivalCorrection

TEXT = st.characters(blacklist_categories=("Cs",))  # what a form body can carry
BAD_NUMBERS = ["²", "١٢", "-1", "1e3", "99999999999999999999", "2147483648", "3\x00"]


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


@pytest.fixture
def leader1(client, portal):
    assert login(client, "leader1").status_code == 302
    return client


def _count(app, model) -> int:
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return s.scalar(select(func.count()).select_from(model))


def _counts(app) -> dict[str, str]:
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        ids = dict(s.execute(select(Product.sku, Product.id)).all())
    return {f"count-{ids['APPLE']}": "6", f"count-{ids['MILK']}": "3", f"count-{ids['PRAWN']}": "1"}


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_an_arrival_count_that_is_not_a_storable_number_is_refused(app, leader1, bad):
    """A count of ², ١٢, a sign, an exponent or past the column: the count page again with the
    message (422), no arrival written."""
    counts = _counts(app)
    first = next(iter(counts))
    answer = post(leader1, "/leader/arrival", {**counts, first: bad, "step": "confirm"})
    assert answer.status_code == 422
    assert "whole number" in answer.text
    assert _count(app, Arrival) == 0


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_a_correction_with_a_bad_number_writes_nothing(app, leader1, bad):
    """After a confirmation, a correction whose product or count is not a storable whole number is
    refused on the page; no correction, no refund."""
    counts = _counts(app)
    assert post(leader1, "/leader/arrival", {**counts, "step": "confirm"}).status_code == 302
    product = next(iter(counts)).removeprefix("count-")
    refunds = _count(app, Refund)
    for data in ({"product": product, "counted": bad}, {"product": bad, "counted": "1"}):
        answer = post(leader1, "/leader/arrival/correct", data, token_from="/leader/arrival")
        assert answer.status_code == 200 and "whole number" in answer.text
    assert _count(app, ArrivalCorrection) == 0 and _count(app, Refund) == refunds


@pytest.mark.parametrize("note", ["破\x00了", "bell\x07", "x" * 501])
def test_a_correction_note_the_column_cannot_hold_is_refused(app, leader1, note):
    """A NUL, another control character or a note past 500 characters: refused on the page,
    nothing written (a NUL was a 500 on PostgreSQL). A form cannot carry a lone surrogate (the
    body is decoded with replacement); tests/web/test_forms.py refuses one all the same."""
    counts = _counts(app)
    assert post(leader1, "/leader/arrival", {**counts, "step": "confirm"}).status_code == 302
    product = next(iter(counts)).removeprefix("count-")
    answer = post(
        leader1,
        "/leader/arrival/correct",
        {"product": product, "counted": "2", "note": note},
        token_from="/leader/arrival",
    )
    assert answer.status_code == 200 and "cannot be stored" in answer.text
    assert _count(app, ArrivalCorrection) == 0


@pytest.mark.parametrize(
    ("path", "field", "token_from"),
    [
        ("/leader/uncollected/phone", "member", "/leader/uncollected"),
        ("/leader/pickups", "order", "/leader/pickups"),
    ],
)
@pytest.mark.parametrize("bad", ["²", "99999999999", "1\x00"])
def test_an_id_that_is_not_a_storable_number_is_a_bad_request(
    app, leader1, path, field, token_from, bad
):
    """A member or order id of another script, too long or with a NUL is 400, never a 500."""
    data = {field: bad, "code": "12345678"}
    assert post(leader1, path, data, token_from=token_from).status_code == 400


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.fixed_dictionaries(
        {
            "product": st.text(TEXT, max_size=12),
            "counted": st.text(TEXT, max_size=12),
            "note": st.text(TEXT, max_size=40),
        }
    )
)
def test_any_correction_form_is_answered_without_a_server_error(app, leader1, data):
    """Whatever the correction form holds, the answer is the page or a refusal, never a 5xx."""
    answer = post(leader1, "/leader/arrival/correct", data, token_from="/leader/arrival")
    assert answer.status_code < 500


FORMS = {
    "/leader/arrival": (
        "/leader/arrival",
        ["wave", "step", "count-1", "assign-1-1", "kind-1", "note-1"],
    ),
    "/leader/arrival/correct": ("/leader/arrival", ["wave", "product", "counted", "note"]),
    "/leader/pickups": ("/leader/pickups", ["code", "order"]),
    "/leader/pickups/verify": ("/leader/pickups", ["code", "order", "scope", "method"]),
    "/leader/pickups/phone": ("/leader/pickups", ["tail"]),
    "/leader/pickups/phone/verify": ("/leader/pickups", ["tail", "member"]),
    "/leader/uncollected/phone": ("/leader/uncollected", ["member"]),
}


@pytest.mark.parametrize("path", sorted(FORMS))
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_portal_form_answers_hostile_values_without_a_server_error(app, leader1, path, data):
    """Each of the portal's forms, filled with any text a form body can carry (NUL, other
    scripts' digits, huge numbers, long strings) in any of its fields: never a 5xx."""
    token_from, fields = FORMS[path]
    values = data.draw(
        st.dictionaries(
            st.sampled_from(fields),
            st.one_of(
                st.text(TEXT, max_size=30),
                st.sampled_from(BAD_NUMBERS + ["1", "0", "12345678", "x" * 600]),
            ),
        )
    )
    answer = post(leader1, path, values, token_from=token_from)
    assert answer.status_code < 500, (path, values, answer.status_code)
