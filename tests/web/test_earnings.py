"""The leader's earnings page: today, this week and per wave, accrued, settled and reversed, in
English and Chinese with money per locale; the leader's own point only (404 otherwise)."""

from datetime import timedelta

import pytest
from commission_factories import collect, make_commission_world
from portal_factories import login
from sqlalchemy import select

from fulfilment.commission.ledger import settle_region
from fulfilment.core.db import session_scope
from fulfilment.core.models import Region, utcnow
from fulfilment.orders.refunds import owe_after_sales_refund


@pytest.fixture
def earned(app):
    """M1 collected eight days ago (settled today: 59 + 100), M3 collected now (accrued today:
    59 + 25), M3's PRAWN refunded whole now (reversed today: 25)."""
    now = utcnow()
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_commission_world(s, collect_orders=())
        collect(s, world.portal, "M1", now=now - timedelta(days=8))
        collect(s, world.portal, "M3", now=now)
        owe_after_sales_refund(
            s,
            order_line_id=world.line("M3 PRAWN"),
            amount_cents=1000,
            actor="admin",
            now=now + timedelta(seconds=1),
        )
        region_id = s.scalar(select(Region.id).where(Region.code == "SH"))
        settle_region(
            s, region_id=region_id, day=now.date(), now=now + timedelta(seconds=2), actor="t"
        )
        return world


def _rows(page: str, label: str) -> str:
    start = page.index(label)
    return page[start : page.index("</tr>", start)]


def test_the_leader_sees_today_this_week_and_each_wave(client, earned):
    """Today and this week: ¥0.84 accrued, ¥1.59 settled, ¥0.25 reversed; the wave of the
    10th: four lines, ¥2.43 accrued, ¥0.59 still in the after-sales window; its page lists the
    lines with their state. The navigation links to the page."""
    login(client, "leader1")
    page = client.get("/leader/earnings").text
    assert 'href="/leader/earnings"' in page
    for label in ("Today", "This week"):
        row = _rows(page, f'<th scope="row">{label}</th>')
        assert ["¥0.84", "¥1.59", "¥0.25"] == [c for c in ("¥0.84", "¥1.59", "¥0.25") if c in row]
        assert row.index("¥0.84") < row.index("¥1.59") < row.index("¥0.25")
    wave_row = _rows(page, "Mar 10, 2026")
    for cell in ('<td class="n">4</td>', "¥2.43", "¥1.59", "¥0.25", "¥0.59"):
        assert cell in wave_row, cell
    detail = client.get(f"/leader/earnings/{earned.wave_id}").text
    assert "Commission for Mar 10, 2026" in detail
    assert detail.count('"pill cancelled">Reversed') == 1  # M3's PRAWN, refunded whole
    assert detail.count('"pill collected">Settled') == 2  # M1's two lines
    assert detail.count(">In the after-sales window<") == 1  # M3's APPLE
    assert "Bag 1 · Apples 1kg" in detail and "¥18.00 × 3.33%" in detail


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_earnings_page_in_chinese(client, earned):
    """A Chinese browser: the headings in Chinese and money as 元."""
    login(client, "leader1")
    page = client.get("/leader/earnings", headers={"Accept-Language": "zh-CN"}).text
    for text in (
        "佣金",
        "今日",
        "本周",
        "已计提",
        "已结算",
        "已冲回",
        "按波次",
        "0.84 元",
        "2026年3月10日",
    ):
        assert text in page, text
    assert "Accrued" not in page


def test_another_points_earnings_are_not_found(client, earned, app):
    """Leader L2 sees no commission of L1's and gets 404 for the wave where only L1 earned;
    L1 gets 404 for another region's wave; pickup staff do not see the leader's money."""
    login(client, "leader2")
    page = client.get("/leader/earnings").text
    assert "No commission yet." in page and "¥0.84" not in page
    assert client.get(f"/leader/earnings/{earned.wave_id}").status_code == 404
    leader1 = app.test_client()
    login(leader1, "leader1")
    assert leader1.get(f"/leader/earnings/{earned.portal.other_wave.id}").status_code == 404
    assert leader1.get("/leader/earnings/2147483648").status_code == 404
    staff = app.test_client()
    login(staff, "staff1")
    assert staff.get("/leader/earnings").status_code == 404
    assert 'href="/leader/earnings"' not in staff.get("/leader/today").text


@pytest.mark.parametrize("by", ["code", "phone_tail"])
def test_a_pickup_at_the_point_accrues_with_the_configured_window(db_url, tmp_path, by):
    """GROUPBUY_AFTER_SALES_DAYS=3: the staff hand M2's bag over on the Pickup page, by its code
    or by the member's phone tail; its APPLE line (one unit at the final 900) accrues 29 cents,
    settling three days after the handover (the phone tail's handover used the default seven,
    so a refund on day five was not reversed)."""
    from portal_factories import csrf_token

    from fulfilment.commission.models import CommissionEntry
    from web import create_app

    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": db_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "GROUPBUY_AFTER_SALES_DAYS": "3",
            "TESTING": True,
        }
    )
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        world = make_commission_world(s, collect_orders=())
    client = app.test_client()
    login(client, "staff1")
    token = csrf_token(client, "/leader/pickups")
    if by == "code":
        code = world.portal.orders["M2"].pickup_code
        form = {"code": code, "scope": "order", "csrf_token": token}
        answer = client.post("/leader/pickups/verify", data=form)
    else:
        member = str(world.portal.orders["M2"].member_id)
        form = {"tail": "1111", "member": member, "csrf_token": token}
        answer = client.post("/leader/pickups/phone/verify", data=form)
    assert answer.status_code == 302
    with session_scope(sessions) as s:
        entry = s.scalars(select(CommissionEntry)).one()
        assert (entry.order_line_id, entry.amount_cents) == (world.line("M2 APPLE"), 29)
        assert entry.settle_after - entry.collected_at == timedelta(days=3)
    app.extensions["groupbuy"]["engine"].dispose()
