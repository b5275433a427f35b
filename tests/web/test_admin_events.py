"""The admin's pages for issue 19's leftovers: webhook messages that failed (listed with their
counts by state, filtered by endpoint, sent again one or an endpoint's all) and the commission
rates (listed, set by form, refused by field). Both languages, bad input, who may see them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from factories import DELIVERY
from platform_factories import make_client
from portal_factories import csrf_token, login, make_portal_world
from sqlalchemy import func, insert, select, update
from webhook_receiver import Receiver

from fulfilment.accounts.models import User
from fulfilment.commission.models import CommissionRate
from fulfilment.core.db import session_scope
from fulfilment.core.models import AuditEntry, Deal, Order, Product, Region
from fulfilment.events.delivery import Courier, RetryPolicy
from fulfilment.events.models import MessageState, WebhookMessage
from fulfilment.orders.intake import LineRequest, MemberRef
from fulfilment.platforms.clients import ApiClient, OrderRequest, submit_order
from fulfilment.platforms.webhooks import add_endpoint, remove_endpoint

ZH = {"Accept-Language": "zh-CN"}
PAGE = "/admin/webhooks/failed"
RATES = "/admin/commission-rates"
TOKEN_IN_URL = "q-t0ken-of-the-platform"
# a receiver down for good, and a retry window of nothing: one attempt, then failed
GIVE_UP = RetryPolicy(base_s=0.01, max_backoff_s=0.02, endpoint_pause_max_s=0.02, window_s=0.0)
AGAIN = RetryPolicy(base_s=0.01, max_backoff_s=0.02, endpoint_pause_max_s=0.02, lease_s=30)


def sessions(app):
    return session_scope(app.extensions["groupbuy"]["sessions"])


def count(app, model, *where) -> int:
    with sessions(app) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def post(client, path: str, data: dict | None = None, **kw):
    return client.post(
        path, data={**(data or {}), "csrf_token": csrf_token(client, "/admin/")}, **kw
    )


def chinese(app, portal) -> None:
    with sessions(app) as s:
        s.get_one(User, portal.users["admin"].id).locale = "zh_Hans_CN"


@pytest.fixture
def portal(app):
    with sessions(app) as s:
        return make_portal_world(s)


@pytest.fixture
def admin(app, portal):
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class Hooks:
    """Two platforms' endpoints on the receiver (shop-a's URL carries a token in its query)."""

    def __init__(self, app, portal, receiver):
        self.app, self.portal, self.receiver = app, portal, receiver
        self.paths = {"shop-a": f"/a?token={TOKEN_IN_URL}", "shop-b": "/b"}
        self.endpoints: dict[str, int] = {}
        self.secrets: dict[str, str] = {}
        self.keys = 0
        with sessions(app) as s:
            for name, path in self.paths.items():
                client, _ = make_client(s, name=name)
                endpoint, secret = add_endpoint(
                    s, client=client, url=receiver.url(path), events=["order.accepted"]
                )
                receiver.secrets[path] = secret
                self.endpoints[name], self.secrets[name] = endpoint.id, secret

    def order(self, shop: str) -> Order:
        """An order through the platform (after the portal's cutoff: the next day's wave)."""
        self.keys += 1
        with sessions(self.app) as s:
            client = s.scalars(select(ApiClient).where(ApiClient.name == shop)).one()
            member = MemberRef(f"P{self.keys}", "钱七", "13512345678")
            order, _ = submit_order(
                s,
                client=client,
                request=OrderRequest("L1", member, [LineRequest("APPLE", 1)]),
                idempotency_key=f"{shop}-{self.keys}",
                now=self.portal.world.after_cutoff(10 + self.keys),
            )
            s.expunge(order)
            return order

    def fail_all(self) -> None:
        """Every pending message is tried once against a receiver that is down: failed."""
        self.receiver.down = True
        courier = Courier(self.app.extensions["groupbuy"]["sessions"], policy=GIVE_UP)
        try:
            deadline = time.monotonic() + 10
            while count(self.app, WebhookMessage, WebhookMessage.state == "pending"):
                assert time.monotonic() < deadline, "messages not failed in time"
                if not courier.deliver_once():
                    time.sleep(0.03)
        finally:
            courier.close()
        self.receiver.down = False

    def deliver(self, until) -> None:
        courier = Courier(self.app.extensions["groupbuy"]["sessions"], policy=AGAIN)
        try:
            deadline = time.monotonic() + 10
            while not until():
                assert time.monotonic() < deadline, "not delivered in time"
                if not courier.deliver_once():
                    time.sleep(0.03)
        finally:
            courier.close()

    def messages(self, shop: str) -> list[WebhookMessage]:
        with sessions(self.app) as s:
            rows = list(
                s.scalars(
                    select(WebhookMessage)
                    .where(WebhookMessage.endpoint_id == self.endpoints[shop])
                    .order_by(WebhookMessage.id)
                )
            )
            for row in rows:
                s.expunge(row)
            return rows


@pytest.fixture
def hooks(app, portal, receiver):
    return Hooks(app, portal, receiver)


def retried(app) -> list[AuditEntry]:
    with sessions(app) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.retried")))


# --- failed webhook messages: the page ----------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_failed_messages_page_shows_each_one_and_the_counts_by_state(
    app, portal, admin, hooks, lang
):
    """Counts by state at the top; each failed message with its endpoint (URL without its query),
    the platform's name, event, order, created time in the region's zone, attempts, last HTTP
    status and last error; never the signing secret, the URL's token, a pickup code or a member's
    phone. In English and in Chinese."""
    orders = [hooks.order("shop-a"), hooks.order("shop-a"), hooks.order("shop-b")]
    hooks.fail_all()
    delivered = hooks.order("shop-b")
    hooks.deliver(lambda: len(hooks.receiver.accepted) == 1)
    [first, _second] = hooks.messages("shop-a")
    with sessions(app) as s:  # 15:00 UTC is 23:00 in Shanghai
        s.execute(
            update(WebhookMessage)
            .where(WebhookMessage.id == first.id)
            .values(created_at=datetime(2026, 3, 9, 15, 0, tzinfo=UTC))
        )
    if lang == "zh":
        chinese(app, portal)
    page = admin.get(PAGE)
    assert page.status_code == 200
    text = page.text
    states = re.search(r'<table class="states">(.*?)</table>', text, re.S).group(1)
    assert re.findall(r'<td class="n">(\d+)</td>', states) == ["0", "1", "3", "0"]
    heading = "失败的 Webhook 消息" if lang == "zh" else "Failed webhook messages"
    assert heading in text
    assert ("待发送" if lang == "zh" else "Pending") in states
    listed = re.findall(r'<td class="n order">(\d*)</td>', text)
    assert listed == [str(o.id) for o in reversed(orders)]  # the newest first; delivered: not
    for order in [*orders, delivered]:
        assert order.pickup_code not in text
    assert hooks.receiver.url("/a") + "?…" in text and hooks.receiver.url("/b") in text
    assert TOKEN_IN_URL not in text
    assert hooks.secrets["shop-a"] not in text and hooks.secrets["shop-b"] not in text
    assert "whsec_" not in text and "13512345678" not in text
    assert "shop-a" in text and "shop-b" in text and "order.accepted" in text
    assert f"evt_{first.id}" in text and "503" in text and "not 2xx" in text
    shown = "2026/3/9 23:00" if lang == "zh" else "3/9/26, 11:00\u202fPM"
    assert shown in text and "15:00" not in text and "3:00\u202fPM" not in text
    assert ("再次发送" if lang == "zh" else "Send again") in text


def test_a_long_last_error_is_shortened_and_escaped(app, portal, admin, hooks):
    """The receiver's last error (up to 300 characters, from the network) is shown as one line
    of at most 120 characters, HTML escaped."""
    hooks.order("shop-a")
    hooks.fail_all()
    [message] = hooks.messages("shop-a")
    error = "<script>alert(1)</script>\x07\n" + "x" * 260
    with sessions(app) as s:
        s.execute(
            update(WebhookMessage)
            .where(WebhookMessage.id == message.id)
            .values(last_error=error, last_status=None)
        )
    text = admin.get(PAGE).text
    cell = re.search(r'<td class="last-error">(.*?)</td>', text, re.S).group(1)
    assert "<script>" not in text and cell.startswith("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert "\x07" not in cell and "\n" not in cell
    assert cell.endswith("…") and cell.count("x") < 120
    assert "no answer" in text


def test_the_list_is_filtered_by_endpoint_and_paged(app, portal, admin, hooks):
    """?endpoint_id= keeps one endpoint's failed messages (and its counts); 50 a page, the
    newest first, with a link to the older ones that keeps the filter."""
    hooks.order("shop-b")
    hooks.fail_all()
    endpoint_a = hooks.endpoints["shop-a"]
    with sessions(app) as s:
        now = datetime.now(UTC)
        s.execute(
            insert(WebhookMessage),
            [
                {
                    "endpoint_id": endpoint_a,
                    "event_type": "order.accepted",
                    "order_id": 1000 + n,
                    "payload": {},
                    "created_at": now,
                    "state": MessageState.FAILED,
                    "attempts": 9,
                    "next_attempt_at": now,
                    "last_status": 500,
                    "last_error": "not 2xx",
                }
                for n in range(55)
            ],
        )
    page = admin.get(f"{PAGE}?endpoint_id={endpoint_a}").text
    listed = re.findall(r'<td class="n order">(\d*)</td>', page)
    assert listed == [str(1054 - n) for n in range(50)]
    assert hooks.receiver.url("/b") not in page.split("Failed messages of endpoint")[1]
    assert f"page=2&amp;endpoint_id={endpoint_a}" in page
    states = re.search(r'<table class="states">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'<td class="n">(\d+)</td>', states) == ["0", "0", "55", "0"]
    older = admin.get(f"{PAGE}?endpoint_id={endpoint_a}&page=2").text
    listed = re.findall(r'<td class="n order">(\d*)</td>', older)
    assert listed == ["1004", "1003", "1002", "1001", "1000"]
    everything = admin.get(PAGE).text
    assert everything.count("<code>evt_") == 50 and "page=2" in everything


def test_a_bad_filter_names_its_field(app, portal, admin):
    """A filter that is not a number from 1 is refused with 422 naming the field."""
    for query in ["endpoint_id=x", "endpoint_id=0", "page=0", "page=-1", "page=1e3"]:
        answer = admin.get(f"{PAGE}?{query}")
        assert answer.status_code == 422, query
        hint = (
            "Endpoint: The number of a webhook endpoint, from 1."
            if query.startswith("endpoint_id")
            else "Page: A page number from 1."
        )
        assert hint in answer.text, query


# --- failed webhook messages: sending again -----------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_one_failed_message_is_sent_again_with_the_same_webhook_id(app, portal, admin, hooks, lang):
    """ "Send again" makes the message pending (a fresh try, its retry window anew), audited with
    the admin; the receiver, back up, then gets it under the same webhook-id; the other failed
    message stays failed."""
    hooks.order("shop-a")
    hooks.order("shop-a")
    hooks.fail_all()
    first, second = hooks.messages("shop-a")
    if lang == "zh":
        chinese(app, portal)
    answer = post(admin, f"{PAGE}/{first.id}/retry")
    assert answer.status_code == 302 and answer.headers["Location"] == PAGE
    said = f"消息 evt_{first.id} 将重新发送。" if lang == "zh" else f"evt_{first.id} will be sent"
    assert said in admin.get(PAGE).text
    again, still = hooks.messages("shop-a")
    assert (again.state, again.attempts, again.retry_since) == (MessageState.PENDING, 0, None)
    assert still.state == MessageState.FAILED
    [entry] = retried(app)
    assert (entry.actor, entry.entity, entry.entity_id) == (
        "user:admin",
        "webhook_message",
        first.id,
    )
    assert entry.after == {"messages": 1, "ids": [first.id]}
    hooks.deliver(lambda: len(hooks.receiver.accepted) == 1)
    [got] = hooks.receiver.accepted
    assert got.id == f"evt_{first.id}" and got.order_id == first.order_id
    assert hooks.receiver.bad_signatures == 0
    assert hooks.messages("shop-a")[0].state == MessageState.DELIVERED


def test_all_failed_messages_of_an_endpoint_are_sent_again(app, portal, admin, hooks):
    """ "Send all again" on an endpoint makes each of its failed messages pending, not another
    endpoint's; audited once with how many; a second press finds none left (0, said so)."""
    hooks.order("shop-a")
    hooks.order("shop-a")
    hooks.order("shop-b")
    hooks.fail_all()
    endpoint_a = hooks.endpoints["shop-a"]
    page = admin.get(PAGE).text
    assert "Send all 2 again" in page and "Send all 1 again" in page
    answer = post(admin, f"/admin/webhooks/endpoints/{endpoint_a}/retry")
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{PAGE}?endpoint_id={endpoint_a}"
    shown = admin.get(answer.headers["Location"]).text
    assert f"2 failed message(s) of endpoint {endpoint_a} will be sent again." in shown
    assert [m.state for m in hooks.messages("shop-a")] == [MessageState.PENDING] * 2
    assert [m.state for m in hooks.messages("shop-b")] == [MessageState.FAILED]
    [entry] = retried(app)
    assert (entry.entity, entry.entity_id, entry.after) == (
        "webhook_endpoint",
        endpoint_a,
        {"messages": 2},
    )
    hooks.deliver(lambda: len(hooks.receiver.accepted) == 2)
    wanted = {f"evt_{m.id}" for m in hooks.messages("shop-a")}
    assert {g.id for g in hooks.receiver.accepted} == wanted
    again = post(admin, f"/admin/webhooks/endpoints/{endpoint_a}/retry", follow_redirects=True)
    assert f"0 failed message(s) of endpoint {endpoint_a}" in again.text


def test_a_removed_endpoints_messages_cannot_be_sent_again(app, portal, admin, hooks):
    """The page says a removed endpoint's messages cannot be sent again and offers no button;
    posting anyway is refused (422, said in the admin's language) and nothing changes."""
    hooks.order("shop-a")
    hooks.fail_all()
    [message] = hooks.messages("shop-a")
    with sessions(app) as s:
        client = s.scalars(select(ApiClient).where(ApiClient.name == "shop-a")).one()
        remove_endpoint(s, client=client, endpoint_id=hooks.endpoints["shop-a"])
    page = admin.get(PAGE).text
    assert "Endpoint removed: its messages cannot be sent again." in page
    assert f"/admin/webhooks/failed/{message.id}/retry" not in page
    assert f"/admin/webhooks/endpoints/{hooks.endpoints['shop-a']}/retry" not in page
    one = post(admin, f"{PAGE}/{message.id}/retry")
    assert one.status_code == 422
    assert "belongs to an endpoint that was removed" in one.text
    assert "Nothing was changed." in one.text
    every = post(admin, f"/admin/webhooks/endpoints/{hooks.endpoints['shop-a']}/retry")
    assert every.status_code == 422 and "was removed" in every.text
    assert hooks.messages("shop-a")[0].state == MessageState.FAILED
    assert retried(app) == []
    chinese(app, portal)
    refused = post(admin, f"{PAGE}/{message.id}/retry")
    assert (
        refused.status_code == 422 and "已删除" in refused.text and "未做任何更改" in refused.text
    )


def test_sending_again_an_unknown_message_or_endpoint_is_not_found(app, portal, admin, hooks):
    """No such message or endpoint: 404, nothing audited."""
    assert post(admin, f"{PAGE}/99999/retry").status_code == 404
    assert post(admin, "/admin/webhooks/endpoints/99999/retry").status_code == 404
    assert retried(app) == []


def test_a_message_whose_id_is_past_two_to_the_31_is_sent_again(app, portal, admin, hooks):
    """Message ids are 64-bit (millions a day): a failed message numbered 2³¹ + 7 is sent again
    from its button like any other, and audited (it was a 404, then a 500 on PostgreSQL: the
    audit's 32-bit entity id); a number past 2⁶³ - 1 is no message (404), never a 500."""
    hooks.order("shop-a")
    hooks.fail_all()
    [message] = hooks.messages("shop-a")
    big = 2**31 + 7
    with sessions(app) as s:
        s.execute(update(WebhookMessage).where(WebhookMessage.id == message.id).values(id=big))
    answer = post(admin, f"{PAGE}/{big}/retry")
    assert answer.status_code == 302, answer.text
    assert [(m.id, m.state) for m in hooks.messages("shop-a")] == [(big, MessageState.PENDING)]
    [entry] = retried(app)  # the audit's entity id is 32-bit: the message is named in `ids`
    assert (entry.entity_id, entry.after) == (None, {"messages": 1, "ids": [big]})
    assert post(admin, f"{PAGE}/{2**63}/retry").status_code == 404


def test_sending_again_needs_the_forms_token(app, portal, admin, hooks):
    """A POST without the CSRF token is refused (400) and changes nothing."""
    hooks.order("shop-a")
    hooks.fail_all()
    [message] = hooks.messages("shop-a")
    assert admin.post(f"{PAGE}/{message.id}/retry").status_code == 400
    assert admin.post(f"/admin/webhooks/endpoints/{message.endpoint_id}/retry").status_code == 400
    assert hooks.messages("shop-a")[0].state == MessageState.FAILED and retried(app) == []


@pytest.mark.parametrize("role", ["dispatcher1", "warehouse1", "leader1", "anonymous"])
def test_only_the_admin_sees_or_resends_failed_messages(app, portal, hooks, role):
    """Another role gets 404 (the app answers 404, never 403, outside a user's scope); signed out,
    the login page; either way the message stays failed and nothing is audited."""
    hooks.order("shop-a")
    hooks.fail_all()
    [message] = hooks.messages("shop-a")
    client = app.test_client()
    if role != "anonymous":
        assert login(client, role).status_code == 302
    token = csrf_token(client, "/login" if role == "anonymous" else "/logout")
    answers = [
        client.get(PAGE),
        client.post(f"{PAGE}/{message.id}/retry", data={"csrf_token": token}),
        client.post(
            f"/admin/webhooks/endpoints/{message.endpoint_id}/retry", data={"csrf_token": token}
        ),
        client.get(RATES),
        client.post(RATES, data={"csrf_token": token, "region": "SH", "rate_bps": "300"}),
    ]
    for answer in answers:
        if role == "anonymous":
            assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
        else:
            assert answer.status_code == 404
    assert hooks.messages("shop-a")[0].state == MessageState.FAILED and retried(app) == []
    assert count(app, CommissionRate) == 0


# --- commission rates ---------------------------------------------------------------------------


def _set(admin, **fields):
    data = {"region": "SH", "product": "", "deal": "", "rate_bps": "", **fields}
    return post(admin, RATES, data)


def rate_audits(app) -> list[AuditEntry]:
    with sessions(app) as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "commission.rate_set")
                .order_by(AuditEntry.id)
            )
        )


def _a_deal(app) -> int:
    with sessions(app) as s:
        return s.scalar(
            select(Deal.id)
            .join(Region, Region.id == Deal.region_id)
            .where(Region.code == "SH", Deal.delivery_date == DELIVERY)
            .order_by(Deal.id)
        )


def test_rates_are_set_from_the_form_and_audited_as_the_command_does(app, portal, admin):
    """The region's default, a product's override (by SKU) and a deal's (by number) are saved
    through set_rate, each audited with the admin as actor; changing one records it before."""
    deal = _a_deal(app)
    answer = _set(admin, rate_bps="300")
    assert answer.status_code == 302 and answer.headers["Location"] == RATES
    assert (
        "Commission rate set: SH, the region&#39;s default: 300 bps (3 %)." in admin.get(RATES).text
    )
    assert _set(admin, product="MILK", rate_bps="550").status_code == 302
    assert _set(admin, deal=str(deal), rate_bps="0").status_code == 302
    assert _set(admin, rate_bps="250").status_code == 302  # changed
    with sessions(app) as s:
        rates = {r.scope: r.rate_bps for r in s.scalars(select(CommissionRate))}
        milk = s.scalar(select(Product.id).where(Product.sku == "MILK"))
    assert rates == {"region": 250, f"product:{milk}": 550, f"deal:{deal}": 0}
    entries = rate_audits(app)
    assert [e.actor for e in entries] == ["user:admin"] * 4
    assert entries[-1].before == {"rate_bps": 300}
    assert entries[-1].after == {"region": "SH", "scope": "region", "rate_bps": 250}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_rates_page_lists_each_rate_in_bps_and_percent(app, portal, admin, lang):
    """Each region's default first, then product and deal overrides, in basis points and as a
    percent, with who changed them; in English and in Chinese."""
    deal = _a_deal(app)
    _set(admin, rate_bps="300")
    _set(admin, product="MILK", rate_bps="525")
    _set(admin, deal=str(deal), rate_bps="1")
    _set(admin, region="BJ", rate_bps="10000")
    if lang == "zh":
        chinese(app, portal)
    text = admin.get(RATES).text
    table = re.search(r'<table class="rates">(.*?)</table>', text, re.S).group(1)
    rows = re.findall(
        r"<tr><td>(\w+)</td>\s*<td>([^<]+)</td>.*?<td class=\"n\">(\d+)</td>"
        r"<td class=\"n\">([^<]+)</td>",
        table,
        re.S,
    )
    labels = (
        ("区域默认", "单个商品", "单个团购活动")
        if lang == "zh"
        else ("Region default", "One product", "One deal")
    )
    assert rows == [
        ("BJ", labels[0], "10000", "100 %"),
        ("SH", labels[0], "300", "3 %"),
        ("SH", labels[1], "525", "5.25 %"),
        ("SH", labels[2], "1", "0.01 %"),
    ]
    assert f'href="/admin/deals/{deal}"' in table and "MILK" in table
    assert table.count("user:admin") == 4
    assert ("佣金比例" if lang == "zh" else "Commission rates") in text


def test_a_change_link_fills_the_form(app, portal, admin):
    """A rate's "Change" link opens the form filled in with its region, SKU and rate."""
    _set(admin, product="MILK", rate_bps="525")
    text = admin.get(RATES).text
    link = re.search(r'href="(/admin/commission-rates\?[^"]+)#set"', text).group(1)
    form = admin.get(link.replace("&amp;", "&")).text
    assert 'name="product" type="text" value="MILK"' in form
    assert 'value="525"' in form and '<option selected value="SH">' in form


BAD_RATES = [
    ({"rate_bps": "10001"}, "rate_bps"),
    ({"rate_bps": "-1"}, "rate_bps"),
    ({"rate_bps": "2.5"}, "rate_bps"),
    ({"rate_bps": ""}, "rate_bps"),
    ({"product": "NO-SUCH", "rate_bps": "300"}, "product"),
    ({"product": "MILK", "deal": "DEAL", "rate_bps": "300"}, "deal"),
    ({"deal": "99999", "rate_bps": "300"}, "deal"),
    ({"deal": "BJ-DEAL", "rate_bps": "300"}, "deal"),
    ({"region": "XX", "rate_bps": "300"}, "region"),
]


def test_a_bad_rate_names_the_field_and_writes_nothing(app, portal, admin):
    """A rate outside 0..10000 bp or not a whole number, an unknown SKU, a product and a deal at
    once, a deal that is not the region's, an unknown region: 422 naming the field (marked, with
    what it takes), "Nothing was saved", no rate and no audit entry written."""
    with sessions(app) as s:
        beijing = Deal(
            region_id=s.scalar(select(Region.id).where(Region.code == "BJ")),
            product_id=s.scalar(select(Product.id).where(Product.sku == "MILK")),
            delivery_date=DELIVERY,
            base_price_cents=900,
        )
        s.add(beijing)
        s.flush()
        beijing_deal = str(beijing.id)
    entries = count(app, AuditEntry)
    for bad, field in BAD_RATES:
        bad = {**bad}
        if bad.get("deal") == "DEAL":
            bad["deal"] = str(_a_deal(app))
        if bad.get("deal") == "BJ-DEAL":
            bad["deal"] = beijing_deal
        answer = _set(admin, **bad)
        assert answer.status_code == 422, bad
        assert f'id="err-{field}"' in answer.text and "Nothing was saved." in answer.text, bad
        if field == "rate_bps":
            assert "A whole number of basis points from 0 to 10000" in answer.text
        assert count(app, CommissionRate) == 0 and count(app, AuditEntry) == entries, bad


def test_a_bad_rate_is_named_in_chinese(app, portal, admin):
    """In Chinese, the refused field's label and what it takes are Chinese."""
    chinese(app, portal)
    answer = _set(admin, rate_bps="20000")
    assert answer.status_code == 422
    assert "基点" in answer.text and "未保存任何内容" in answer.text
