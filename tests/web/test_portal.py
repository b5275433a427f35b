"""The leader and pickup-point portal through the test client: today, arrival confirmation with
shortages and photos, pickup verification, the not-collected list, the phone reveal."""

import io
import re
from datetime import UTC, datetime

import pytest
from night_factories import add_published_stop
from portal_factories import add_next_wave_order, csrf_token, login, make_portal_world, post
from sqlalchemy import select

from fulfilment.core.db import session_scope
from fulfilment.core.models import (
    AuditEntry,
    Leader,
    Order,
    OrderLine,
    Product,
    Refund,
    RefundReason,
    Wave,
)
from fulfilment.points.arrivals import Photo, Shortage
from fulfilment.points.pickups import Pickup, PickupLine


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s, member_name="<script>alert(1)</script>")


@pytest.fixture
def leader1(client, portal):
    assert login(client, "leader1").status_code == 302
    return client


def _db(app):
    return session_scope(app.extensions["groupbuy"]["sessions"])


def _pid(app, sku):
    with _db(app) as s:
        return s.scalar(select(Product.id).where(Product.sku == sku))


def test_today_shows_the_delivery_without_codes_or_full_phones(leader1, portal):
    """Today lists the point's goods by zone and each order by bag number and masked member;
    no pickup code, no full phone, and a member named <script> is escaped."""
    page = leader1.get("/leader/today", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = page.text
    assert "Receiving window: 07:00 – 11:00" in text
    assert "Apples 1kg" in text and "Frozen" in text and "Chilled" in text
    assert "Bag 4 · " in text  # the point's fourth order
    for order in portal.orders.values():
        assert order.pickup_code not in text
    assert "13812345678" not in text and "138****5678" in text
    assert "<script>alert" not in text and "&lt;****" in text
    assert "Leader 2" not in text and "赵" not in text  # the other point's member


def test_today_shows_the_published_plans_eta_in_the_regions_zone(app, leader1, portal):
    """Once the wave's route plan is published, Today shows the van's arrival at this point in
    the region's local time instead of the receiving window."""
    with _db(app) as s:
        leader = s.scalar(select(Leader).where(Leader.code == "L1"))
        add_published_stop(
            s,
            wave=s.get(Wave, portal.wave.id),
            leader=leader,
            arrival_at=datetime(2026, 3, 10, 0, 42, tzinfo=UTC),  # 08:42 in Shanghai
        )
    page = leader1.get("/leader/today", headers={"Accept-Language": "en"})
    assert "Expected arrival: 8:42\u202fAM" in page.text or "Expected arrival: 8:42 AM" in page.text
    assert "Receiving window" not in page.text


def test_arrival_with_a_shortage_becomes_a_refund_on_the_latest_order(app, leader1, portal):
    """Counting one MILK short puts it on the latest-placed MILK line by default, as a refund owed
    (reason shortage, the price paid); confirming again changes nothing."""
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "6", f"count-{milk}": "2", f"count-{prawn}": "1"}
    review = post(leader1, "/leader/arrival", {**counts, "step": "review"})
    assert review.status_code == 200
    latest_line = portal.orders["M1b"].line_ids[0]
    assert f'name="assign-{milk}-{latest_line}" value="1"' in review.text
    done = post(
        leader1,
        "/leader/arrival",
        {
            **counts,
            "step": "confirm",
            f"assign-{milk}-{latest_line}": "1",
            f"kind-{milk}": "shortage",
            f"note-{milk}": "one carton missing",
        },
    )
    assert done.status_code == 302
    with _db(app) as s:
        refunds = s.scalars(select(Refund).where(Refund.reason == RefundReason.SHORTAGE)).all()
        assert [(r.order_line_id, r.amount_cents) for r in refunds] == [(latest_line, 1000)]
        assert s.scalars(select(Shortage.quantity)).all() == [1]
        audits = s.scalars(select(AuditEntry).where(AuditEntry.action == "arrival.confirmed")).all()
        assert [a.actor for a in audits] == ["user:leader1"]
    again = post(leader1, "/leader/arrival", {**counts, "step": "confirm"})
    assert again.status_code == 302
    with _db(app) as s:
        assert (
            len(s.scalars(select(Refund).where(Refund.reason == RefundReason.SHORTAGE)).all()) == 1
        )
    page = leader1.get("/leader/arrival")
    assert "one carton missing" in page.text


def test_shortage_can_be_put_on_another_member(app, leader1, portal):
    """The leader can move the short unit to an earlier member's line instead of the default."""
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "5", f"count-{milk}": "3", f"count-{prawn}": "1"}
    m2_line = portal.orders["M2"].line_ids[0]
    done = post(
        leader1, "/leader/arrival", {**counts, "step": "confirm", f"assign-{apple}-{m2_line}": "1"}
    )
    assert done.status_code == 302
    with _db(app) as s:
        assert s.scalars(select(Refund.order_line_id).where(Refund.reason == "shortage")).all() == [
            m2_line
        ]


def test_assignment_that_does_not_add_up_is_refused_and_writes_nothing(app, leader1, portal):
    """Assigning 2 units when 1 is short answers 422 naming the SKU, and records nothing."""
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "5", f"count-{milk}": "3", f"count-{prawn}": "1"}
    m3_line = portal.orders["M3"].line_ids[0]
    bad = post(
        leader1, "/leader/arrival", {**counts, "step": "confirm", f"assign-{apple}-{m3_line}": "2"}
    )
    assert bad.status_code == 422 and "The short units of Apples 1kg must add up" in bad.text
    with _db(app) as s:
        assert s.scalars(select(Refund).where(Refund.reason == "shortage")).all() == []


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def test_discrepancy_photo_checked_by_content_and_served_only_in_scope(
    app, client, leader1, portal
):
    """A PNG photo is stored under the instance folder with a random name and served to its
    point and its region's staff; another point or region gets 404; a fake image is refused."""
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "6", f"count-{milk}": "3", f"count-{prawn}": "0"}
    fake = post(
        leader1,
        "/leader/arrival",
        {
            **counts,
            "step": "confirm",
            f"photo-{prawn}": (io.BytesIO(b"<html>not an image"), "x.png"),
        },
        content_type="multipart/form-data",
    )
    assert fake.status_code == 422 and "JPEG, PNG or WebP" in fake.text
    ok = post(
        leader1,
        "/leader/arrival",
        {
            **counts,
            "step": "confirm",
            f"kind-{prawn}": "damaged",
            f"photo-{prawn}": (io.BytesIO(_png()), "IMG_0001.png"),
        },
        content_type="multipart/form-data",
    )
    assert ok.status_code == 302, re.findall(r"alert.>([^<]*)", ok.text)
    with _db(app) as s:
        [photo] = s.scalars(select(Photo)).all()
    assert re.fullmatch(r"[0-9a-f]{32}\.png", photo.stored_name)
    assert leader1.get(f"/photos/{photo.id}").data == _png()
    for username, status in (
        ("leader2", 404),
        ("warehouse1", 200),
        ("warehouse_bj", 404),
        ("admin", 200),
    ):
        other = app.test_client()
        login(other, username)
        assert other.get(f"/photos/{photo.id}").status_code == status, username


def test_pickup_by_code_with_clear_refusals(app, leader1, portal):
    """A wrong code, another point's code (refused exactly as the wrong one: no oracle), then
    the right one; verifying it again says it was already collected. Each refusal changes
    nothing; the pickup records who and when."""
    wrong = post(leader1, "/leader/pickups", {"code": "00000000"}, token_from="/leader/pickups")
    assert wrong.status_code == 409 and (
        "No order has this code" in wrong.text or "没有" in wrong.text
    )
    other = portal.orders["M9"].pickup_code
    assert other not in {o.pickup_code for k, o in portal.orders.items() if k != "M9"}
    elsewhere = post(leader1, "/leader/pickups", {"code": other})
    assert elsewhere.status_code == wrong.status_code
    assert _alert(elsewhere.text) == _alert(wrong.text)
    code = portal.orders["M2"].pickup_code
    found = post(leader1, "/leader/pickups", {"code": code})
    assert found.status_code == 200 and "Bag 2" in found.text or "2号袋" in found.text
    done = post(leader1, "/leader/pickups/verify", {"code": code, "scope": "order"})
    assert done.status_code == 302
    again = post(leader1, "/leader/pickups/verify", {"code": code, "scope": "order"})
    assert again.status_code == 409
    with _db(app) as s:
        [pickup] = s.scalars(select(Pickup)).all()
        assert pickup.order_id == portal.orders["M2"].id
        assert pickup.verified_by == portal.users["leader1"].id
        assert (
            s.scalar(select(AuditEntry.actor).where(AuditEntry.action == "order.collected"))
            == "user:leader1"
        )


def _alert(page: str) -> str:
    [message] = re.findall(r'role="alert">([^<]*)<', page)
    return message


def test_a_code_shared_by_two_live_orders_asks_which(app, leader1, portal):
    """Two waiting orders at the point share a code (two waves): the page lists both bags by
    masked member instead of handing over the first; verifying without a choice hands over
    nothing; the leader picks one and exactly that order is handed over."""
    code = portal.orders["M2"].pickup_code
    with _db(app) as s:  # both waves delivered long before the test's clock
        other = add_next_wave_order(s, portal, code=code)
    asked = post(leader1, "/leader/pickups", {"code": code}, token_from="/leader/pickups")
    assert asked.status_code == 200
    assert "2 orders here carry this code" in asked.text
    assert "李*" in asked.text and "钱*" in asked.text
    assert f'name="order" value="{other}"' in asked.text
    blind = post(leader1, "/leader/pickups/verify", {"code": code, "scope": "order"})
    assert "2 orders here carry this code" in blind.text
    with _db(app) as s:
        assert s.scalars(select(Pickup)).all() == []
    picked = post(leader1, "/leader/pickups", {"code": code, "order": str(other)})
    assert picked.status_code == 200 and "钱*" in picked.text and "李*" not in picked.text
    done = post(
        leader1, "/leader/pickups/verify", {"code": code, "order": str(other), "scope": "order"}
    )
    assert done.status_code == 302
    with _db(app) as s:
        assert s.scalars(select(Pickup.order_id)).all() == [other]


def test_a_cancelled_order_is_not_handed_over(app, leader1, portal):
    """A code of an order cancelled for refund gets the cancelled message."""
    with _db(app) as s:
        order = s.get(Order, portal.orders["M3"].id)
        order.status = "cancelled_for_refund"
    refused = post(
        leader1,
        "/leader/pickups/verify",
        {"code": portal.orders["M3"].pickup_code, "scope": "order"},
    )
    assert refused.status_code == 409 and ("cancelled" in refused.text or "已取消" in refused.text)


def test_member_scope_hands_over_all_their_orders_and_short_lines_for_what_arrived(
    app, leader1, portal
):
    """Verifying with scope=member collects both of M1's orders; the MILK line that arrived one
    short is handed over for one unit less."""
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "6", f"count-{milk}": "2", f"count-{prawn}": "1"}
    post(leader1, "/leader/arrival", {**counts, "step": "confirm"})
    done = post(
        leader1,
        "/leader/pickups/verify",
        {"code": portal.orders["M1"].pickup_code, "scope": "member"},
    )
    assert done.status_code == 302
    with _db(app) as s:
        collected = set(s.scalars(select(Pickup.order_id)))
        assert collected == {portal.orders["M1"].id, portal.orders["M1b"].id}
        milk_line = portal.orders["M1b"].line_ids[0]
        handed = s.scalar(select(PickupLine.quantity).where(PickupLine.order_line_id == milk_line))
        assert (s.get(OrderLine, milk_line).quantity, handed) == (2, 1)


def test_uncollected_list_shrinks_and_phone_reveal_is_audited(app, leader1, portal):
    """Not collected lists the point's waiting orders oldest first with days waiting; after a
    pickup it is one shorter; revealing a member's phone shows it and is audited; another
    point's member is 404."""
    page = leader1.get("/leader/uncollected", headers={"Accept-Language": "en"})
    assert "Not yet collected (4)" in page.text
    post(
        leader1,
        "/leader/pickups/verify",
        {"code": portal.orders["M2"].pickup_code, "scope": "order"},
    )
    page = leader1.get("/leader/uncollected", headers={"Accept-Language": "en"})
    assert "Not yet collected (3)" in page.text and "13812345678" not in page.text
    member = portal.orders["M1"].member_id
    shown = post(leader1, "/leader/uncollected/phone", {"member": str(member)})
    assert shown.status_code == 303
    assert "13812345678" in leader1.get("/leader/uncollected").text
    with _db(app) as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "member.phone_viewed")
        ).one()
        assert (entry.actor, entry.entity_id) == ("user:leader1", member)
    foreign = post(
        leader1, "/leader/uncollected/phone", {"member": str(portal.orders["M9"].member_id)}
    )
    assert foreign.status_code == 404


def test_order_page_of_another_point_is_404(app, leader1, portal):
    """A leader opens its own order; another point's order id answers 404, not 403."""
    assert leader1.get(f"/leader/orders/{portal.orders['M2'].id}").status_code == 200
    assert leader1.get(f"/leader/orders/{portal.orders['M9'].id}").status_code == 404


def test_pickup_staff_work_at_their_leader_point(app, client, portal):
    """pickup_staff see the same point as its leader, and their pickups record them."""
    login(client, "staff1")
    assert "Bag 4" in client.get("/leader/today", headers={"Accept-Language": "en"}).text
    post(
        client,
        "/leader/pickups/verify",
        {"code": portal.orders["M2"].pickup_code, "scope": "order"},
    )
    with _db(app) as s:
        assert s.scalar(select(Pickup.verified_by)) == portal.users["staff1"].id


def test_csrf_token_on_every_portal_form(leader1):
    """Every form on the portal's pages carries the CSRF token."""
    for path in ("/leader/today", "/leader/arrival", "/leader/pickups", "/leader/uncollected"):
        page = leader1.get(path).text
        assert page.count('<form method="post"') == page.count('name="csrf_token"'), path
        assert csrf_token(leader1, path)


def test_a_correction_is_a_new_entry_never_an_overwrite(app, leader1, portal):
    """After confirming, a lower count of MILK is a correction row and an audit entry; the
    confirmed count stays; the extra short unit becomes a refund on a line that still had one;
    the same count again changes nothing and a higher one is refused."""
    from fulfilment.points.arrivals import ArrivalCorrection, ArrivalLine

    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "6", f"count-{milk}": "2", f"count-{prawn}": "1"}
    assert post(leader1, "/leader/arrival", {**counts, "step": "confirm"}).status_code == 302
    tok = "/leader/arrival"
    done = post(
        leader1,
        "/leader/arrival/correct",
        {"product": milk, "counted": "1", "note": "碎了"},
        token_from=tok,
    )
    assert done.status_code == 302
    same = post(
        leader1, "/leader/arrival/correct", {"product": milk, "counted": "1"}, token_from=tok
    )
    assert same.status_code == 302
    higher = post(
        leader1, "/leader/arrival/correct", {"product": milk, "counted": "3"}, token_from=tok
    )
    assert higher.status_code == 422
    with _db(app) as s:
        assert s.scalar(select(ArrivalLine.counted_qty).where(ArrivalLine.product_id == milk)) == 2
        assert s.scalars(select(ArrivalCorrection.counted_qty)).all() == [1]
        lines = s.scalars(
            select(Refund.order_line_id).where(Refund.reason == "shortage").order_by(Refund.id)
        ).all()
        # the first short unit on M1's latest MILK line (2 units), the second one too (room left)
        assert lines == [portal.orders["M1b"].line_ids[0]] * 2
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == "arrival").order_by(AuditEntry.id)
        ).all()
        assert actions == ["arrival.confirmed", "arrival.corrected"]
    assert "confirmed 2" in leader1.get("/leader/arrival").text


def test_a_shortage_found_after_the_bag_was_handed_over_shows_as_a_loss(app, leader1, portal):
    """MILK found short (3 → 1) after M1's latest bag (2 MILK) was handed over: one unit goes on
    M1's waiting order, the other is shown on the arrival page as lost at the point with no
    member refund."""
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "6", f"count-{milk}": "3", f"count-{prawn}": "1"}
    assert post(leader1, "/leader/arrival", {**counts, "step": "confirm"}).status_code == 302
    handed = post(
        leader1,
        "/leader/pickups/verify",
        {"code": portal.orders["M1b"].pickup_code, "scope": "order"},
    )
    assert handed.status_code == 302
    before = leader1.get("/leader/arrival")
    assert "loss at the point" not in before.text
    fixed = post(
        leader1,
        "/leader/arrival/correct",
        {"product": milk, "counted": "1"},
        token_from="/leader/arrival",
    )
    assert fixed.status_code == 302
    page = leader1.get("/leader/arrival", headers={"Accept-Language": "en"})
    assert "1 short unit had already been handed over: a loss at the point" in page.text
    with _db(app) as s:
        owed = s.scalars(select(Refund.order_line_id).where(Refund.reason == "shortage")).all()
        assert owed == [portal.orders["M1"].line_ids[1]]


def test_arrival_for_another_regions_wave_is_404(app, leader1, portal):
    """A posted arrival names its wave; another region's wave is not found and nothing is written."""
    from fulfilment.points.arrivals import Arrival

    apple = _pid(app, "APPLE")
    answer = post(
        leader1,
        "/leader/arrival",
        {f"count-{apple}": "6", "step": "confirm", "wave": str(portal.other_wave.id)},
    )
    assert answer.status_code == 404
    with _db(app) as s:
        assert s.scalars(select(Arrival)).all() == []


def test_a_refused_confirmation_keeps_no_photo(app, leader1, portal):
    """A valid photo sent with an assignment that does not add up is not kept: no row, no file."""
    from pathlib import Path

    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "5", f"count-{milk}": "3", f"count-{prawn}": "1"}
    m3_line = portal.orders["M3"].line_ids[0]
    refused = post(
        leader1,
        "/leader/arrival",
        {
            **counts,
            "step": "confirm",
            f"assign-{apple}-{m3_line}": "2",
            f"photo-{apple}": (io.BytesIO(_png()), "a.png"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    with _db(app) as s:
        assert s.scalars(select(Photo)).all() == []
    folder = Path(app.instance_path) / "photos"
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.fixture
def pg_app(pg_url, tmp_path):
    """The app on PostgreSQL (for races between requests), whatever the `app` fixture runs on."""
    from web import create_app

    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": pg_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
        }
    )
    yield app
    app.extensions["groupbuy"]["engine"].dispose()


@pytest.mark.postgres
def test_a_losing_concurrent_confirmation_keeps_no_photo(pg_app, monkeypatch):
    """The leader and the staff confirm the same delivery at once, each with a damage photo:
    one confirmation is recorded with its photo; the other's photo leaves no row and no file."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import web.portal.views as views
    from fulfilment.points.arrivals import Arrival, Discrepancy

    with _db(pg_app) as s:
        make_portal_world(s)
    apple, milk, prawn = (_pid(pg_app, sku) for sku in ("APPLE", "MILK", "PRAWN"))
    both_saved_photos = threading.Barrier(2)
    real = views.confirm_arrival

    def confirm_together(*args, **kwargs):
        both_saved_photos.wait(timeout=10)  # each request has stored its photo by now
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "confirm_arrival", confirm_together)
    clients = []
    for username in ("leader1", "staff1"):
        client = pg_app.test_client()
        assert login(client, username).status_code == 302
        clients.append((client, csrf_token(client, "/leader/arrival")))

    def confirm(pair) -> int:
        client, token = pair
        form = {
            f"count-{apple}": "6",
            f"count-{milk}": "3",
            f"count-{prawn}": "0",
            "step": "confirm",
            f"kind-{prawn}": "damaged",
            f"photo-{prawn}": (io.BytesIO(_png()), "IMG.png"),
            "csrf_token": token,
        }
        answer = client.post("/leader/arrival", data=form, content_type="multipart/form-data")
        return answer.status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(confirm, clients)) == [302, 302]
    with _db(pg_app) as s:
        assert len(s.scalars(select(Arrival)).all()) == 1
        [photo] = s.scalars(select(Photo)).all()
        [damage] = s.scalars(select(Discrepancy)).all()
        assert damage.photo_id == photo.id
    files = list((Path(pg_app.instance_path) / "photos").iterdir())
    assert [f.name for f in files] == [photo.stored_name]


def test_a_photo_bomb_is_refused_on_the_page(app, leader1, portal):
    """A 48 KB PNG claiming 20000 × 20000 pixels sent with a confirmation answers 422 with the
    pixel limit in the user's language; no arrival, no photo."""
    import struct
    import zlib

    from fulfilment.points.arrivals import Arrival

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    side = 20000
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * (1 + side // 8) * side, 9))
        + chunk(b"IEND", b"")
    )
    apple, milk, prawn = (_pid(app, s) for s in ("APPLE", "MILK", "PRAWN"))
    counts = {f"count-{apple}": "6", f"count-{milk}": "3", f"count-{prawn}": "0"}
    refused = post(
        leader1,
        "/leader/arrival",
        {**counts, "step": "confirm", f"photo-{prawn}": (io.BytesIO(bomb), "bomb.png")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert "The photo has more than 50 million pixels." in refused.text
    with _db(app) as s:
        assert s.scalars(select(Arrival)).all() == []
        assert s.scalars(select(Photo)).all() == []
