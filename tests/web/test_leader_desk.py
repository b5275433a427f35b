"""The leader's desk after a new user's day (issue 20): each defect found, pinned by the page a
leader sees; the phone-tail handover, lists by member, Today's search box and window warning."""

import io
import re
import unicodedata
from urllib.parse import urlsplit

import pytest
from portal_factories import login, make_portal_world, post
from sqlalchemy import select

from fulfilment.core.db import session_scope
from fulfilment.core.models import AuditEntry, Leader, Product
from fulfilment.points.pickups import Pickup

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}
CJK = "\u4e00-\u9fff"


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


@pytest.fixture
def leader1(client, portal):
    assert login(client, "leader1").status_code == 302
    return client


def _db(app):
    return session_scope(app.extensions["groupbuy"]["sessions"])


def _pids(app) -> dict[str, int]:
    with _db(app) as s:
        return dict(s.execute(select(Product.sku, Product.id)).all())


def _value(html: str, name: str) -> str | None:
    """The value attribute of the input named `name` on the page, None without one."""
    tag = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*>', html)
    assert tag, f"no input {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def _selected(html: str, name: str) -> str | None:
    select_ = re.search(rf'<select[^>]*\bname="{re.escape(name)}".*?</select>', html, re.S)
    assert select_, f"no select {name}"
    chosen = re.search(r'<option value="([^"]*)" selected', select_.group(0))
    return chosen.group(1) if chosen else None


def _text(html: str) -> str:
    """What a reader sees: the page without tags, scripts or the head."""
    body = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def _confirm(client, app, **counted):
    pids = _pids(app)
    counts = {
        f"count-{pids[s]}": str(n)
        for s, n in {"APPLE": 6, "MILK": 3, "PRAWN": 1, **counted}.items()
    }
    done = post(client, "/leader/arrival", {**counts, "step": "confirm"})
    assert done.status_code == 302


# --- 2: the whole member's handover shows every order's items ------------------------------


def test_member_handover_shows_every_item_of_every_order(leader1, portal):
    """M1's code finds their first bag; the page offering to hand over all their orders lists
    each bag with its own items (M1's latest bag: Milk 1L × 2), in bag-number order."""
    page = post(leader1, "/leader/pickups", {"code": portal.orders["M1"].pickup_code}).text
    latest = re.search(rf'id="bag-{portal.orders["M1b"].id}".*?</section>', page, re.S)
    assert latest, "the member's other bag is not shown with its items"
    assert "Milk 1L" in latest.group(0) and ">2<" in latest.group(0)
    first = page.index(f'id="bag-{portal.orders["M1"].id}"')
    assert first < latest.start()  # bag 1 before bag 4


# --- 3: what was typed is kept ---------------------------------------------------------------


def test_one_bad_count_keeps_every_count_typed(app, leader1, portal):
    """A count that is not a number answers 422 and the page keeps every count the leader
    typed (the good ones and the bad one), instead of resetting them to the expected units."""
    p = _pids(app)
    bad = post(
        leader1,
        "/leader/arrival",
        {f"count-{p['APPLE']}": "5", f"count-{p['MILK']}": "x", f"count-{p['PRAWN']}": "0"},
    )
    assert bad.status_code == 422
    assert _value(bad.text, f"count-{p['APPLE']}") == "5"
    assert _value(bad.text, f"count-{p['PRAWN']}") == "0"
    assert _value(bad.text, f"count-{p['MILK']}") == "x"


def test_a_refused_photo_keeps_the_typed_note_and_kind(app, leader1, portal):
    """A photo that is not an image is refused (422) and the note and kind typed beside it stay."""
    p = _pids(app)
    counts = {f"count-{p['APPLE']}": "6", f"count-{p['MILK']}": "3", f"count-{p['PRAWN']}": "0"}
    refused = post(
        leader1,
        "/leader/arrival",
        {
            **counts,
            "step": "confirm",
            f"kind-{p['PRAWN']}": "damaged",
            f"note-{p['PRAWN']}": "盒子压坏",
            f"photo-{p['PRAWN']}": (io.BytesIO(b"<html>not an image"), "x.png"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert _value(refused.text, f"note-{p['PRAWN']}") == "盒子压坏"
    assert _selected(refused.text, f"kind-{p['PRAWN']}") == "damaged"


def test_a_wrong_shortage_total_names_the_product_and_keeps_the_choices(app, leader1, portal):
    """Two short units put on M3's apples when one is missing: the message names the product
    (Apples 1kg, not its SKU code) and the units typed per member stay as typed."""
    p = _pids(app)
    counts = {f"count-{p['APPLE']}": "5", f"count-{p['MILK']}": "3", f"count-{p['PRAWN']}": "1"}
    m2, m3 = portal.orders["M2"].line_ids[0], portal.orders["M3"].line_ids[0]
    refused = post(
        leader1,
        "/leader/arrival",
        {
            **counts,
            "step": "confirm",
            f"assign-{p['APPLE']}-{m3}": "2",
            f"assign-{p['APPLE']}-{m2}": "0",
        },
        headers=EN,
    )
    assert refused.status_code == 422
    message = re.search(r'class="error"[^>]*>([^<]*)<', refused.text).group(1)
    assert "Apples 1kg" in message and "APPLE" not in message
    assert _value(refused.text, f"assign-{p['APPLE']}-{m3}") == "2"
    assert _value(refused.text, f"assign-{p['APPLE']}-{m2}") == "0"


def test_a_refused_correction_keeps_what_was_typed(app, leader1, portal):
    """A correction above the confirmed count is refused (422) with the product, the count and
    the note typed still in the form."""
    _confirm(leader1, app)
    milk = _pids(app)["MILK"]
    refused = post(
        leader1,
        "/leader/arrival/correct",
        {"product": milk, "counted": "5", "note": "纸箱破了"},
        token_from="/leader/arrival",
    )
    assert refused.status_code == 422
    assert _value(refused.text, "note") == "纸箱破了" and _value(refused.text, "counted") == "5"
    assert _selected(refused.text, "product") == str(milk)


# --- 4: Post/Redirect/Get for the phone reveal -------------------------------------------------


def test_show_phone_redirects_and_a_reload_reveals_nothing_again(app, leader1, portal):
    """Show phone answers with a redirect; the page it leads to shows the full phone once; a
    reload neither shows it again nor writes a second audit entry."""
    member = portal.orders["M1"].member_id
    shown = post(leader1, "/leader/uncollected/phone", {"member": str(member)})
    assert shown.status_code == 303
    assert urlsplit(shown.headers["Location"]).path == "/leader/uncollected"
    assert "13812345678" in leader1.get("/leader/uncollected").text
    assert "13812345678" not in leader1.get("/leader/uncollected").text
    with _db(app) as s:
        viewed = s.scalars(select(AuditEntry).where(AuditEntry.action == "member.phone_viewed"))
        assert len(viewed.all()) == 1


# --- 5: shortages where the leader looks -------------------------------------------------------


def test_a_confirmed_shortage_shows_on_the_order_today_and_the_pickup_card(app, leader1, portal):
    """MILK counted one short goes on M1's latest order; its order page, Today and the pickup
    card all say the line is short 1 with a refund owed, not only the arrival page."""
    _confirm(leader1, app, MILK=2)
    said = "short 1, refund owed"
    assert said in leader1.get(f"/leader/orders/{portal.orders['M1b'].id}", headers=EN).text
    assert said in leader1.get("/leader/today", headers=EN).text
    card = post(leader1, "/leader/pickups", {"code": portal.orders["M1b"].pickup_code}, headers=EN)
    assert said in card.text
    assert "少 1 件，应退款" in leader1.get("/leader/today", headers=ZH).text


def test_a_corrections_note_is_shown_on_the_arrival_page(app, leader1, portal):
    """A correction recorded with a note shows that note on the arrival page, beside its count."""
    _confirm(leader1, app)
    milk = _pids(app)["MILK"]
    done = post(
        leader1,
        "/leader/arrival/correct",
        {"product": milk, "counted": "2", "note": "中午发现一盒漏了"},
        token_from="/leader/arrival",
    )
    assert done.status_code == 302
    assert "中午发现一盒漏了" in leader1.get("/leader/arrival").text


# --- 6: the words -------------------------------------------------------------------------------


def test_orders_are_not_waiting_for_pickup_before_the_goods_arrive(app, leader1, portal):
    """Before the arrival is confirmed Today says the orders await the goods (待到货), not that
    they wait for pickup (待提货); after the confirmation they wait for pickup."""
    before = _text(leader1.get("/leader/today", headers=ZH).text)
    assert "待提货" not in before and "待到货" in before
    _confirm(leader1, app)
    after = _text(leader1.get("/leader/today", headers=ZH).text)
    assert "待提货" in after and "待到货" not in after


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_english_plurals_read_as_english(app, leader1, portal):
    """No "(s)" on the leader's pages: days waiting, orders handed over and short units use the
    plural forms of the language."""
    _confirm(leader1, app, MILK=2)
    post(leader1, "/leader/pickups/verify", {"code": portal.orders["M2"].pickup_code})
    flashed = _text(leader1.get("/leader/pickups", headers=EN).text)
    assert "Handed over: 1 order." in flashed
    waiting = _text(leader1.get("/leader/uncollected", headers=EN).text)
    assert re.search(r"\b\d+ days waiting\b", waiting)
    arrival = _text(leader1.get("/leader/arrival", headers=EN).text)
    assert "1 short unit;" in arrival
    for page in (flashed, waiting, arrival):
        assert "(s)" not in page


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_next_day_delivery_reads_as_such_in_chinese(client, portal):
    """The start page says 次日配送 for a region delivering the day after the cutoff."""
    login(client, "dispatcher1")
    page = _text(client.get("/", headers=ZH).text)
    assert "次日配送" in page and "1 天后配送" not in page


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_chinese_pages_use_full_width_punctuation(app, leader1, portal):
    """Chinese text on the leader's pages is not broken by ASCII commas, colons or brackets."""
    _confirm(leader1, app)
    milk = _pids(app)["MILK"]
    post(leader1, "/leader/arrival/correct", {"product": milk, "counted": "2"})
    ascii_beside_chinese = re.compile(rf"[{CJK}*）][ ]?[,;:!?(]|[,;:!?)][ ]?[{CJK}（]")
    pages = [
        leader1.get("/leader/arrival", headers=ZH).text,
        post(
            leader1, "/leader/pickups", {"code": portal.orders["M1"].pickup_code}, headers=ZH
        ).text,
        leader1.get("/leader/today", headers=ZH).text,
        leader1.get("/leader/uncollected", headers=ZH).text,
    ]
    for html in pages:
        assert ascii_beside_chinese.findall(_text(html)) == []


def test_the_chinese_catalogue_uses_full_width_punctuation():
    """No Chinese translation holds an ASCII comma, colon, semicolon, question or exclamation
    mark or bracket outside its placeholders (a clock's 07:00 or HH:MM, and values typed as
    they are such as ambient,chilled, aside): a new one fails here."""
    from pathlib import Path

    from babel.messages.pofile import read_po

    po = Path(__file__).resolve().parents[2] / "web/translations/zh_Hans_CN/LC_MESSAGES/messages.po"
    with po.open("rb") as f:
        catalogue = read_po(f, locale="zh_Hans_CN")
    # placeholders, a clock (07:00, HH:MM) and values typed as they are (ambient,chilled)
    placeholder = re.compile(r"%\(\w+\)[sdf]|\d:\d|[A-Za-z]+(?:[,:][A-Za-z]+)+")
    wrong = []
    for message in catalogue:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            if text and re.search(f"[{CJK}]", text):
                if re.search(r"[,;:!?()]", placeholder.sub("", text)):
                    wrong.append(text)
    assert wrong == []


# --- 7: a code typed on a Chinese keyboard --------------------------------------------------------


def test_a_full_width_code_finds_and_hands_over_the_order(app, leader1, portal):
    """The code typed in full-width digits (a Chinese keyboard) finds M2's bag and hands it over."""
    code = portal.orders["M2"].pickup_code
    wide = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert unicodedata.normalize("NFKC", wide) == code and wide != code
    found = post(leader1, "/leader/pickups", {"code": wide}, headers=EN)
    assert found.status_code == 200 and "Bag 2" in found.text
    done = post(leader1, "/leader/pickups/verify", {"code": wide, "scope": "order"})
    assert done.status_code == 302
    with _db(app) as s:
        assert s.scalars(select(Pickup.order_id)).all() == [portal.orders["M2"].id]


def test_the_service_normalises_a_full_width_code(app, portal):
    """find_order_by_code itself (the form's and any API's one check) reads full-width digits."""
    from fulfilment.points.pickups import find_order_by_code
    from fulfilment.points.point import local_today

    code = portal.orders["M3"].pickup_code
    wide = "".join(chr(ord(c) + 0xFEE0) for c in code)
    with _db(app) as s:
        leader = s.scalar(select(Leader).where(Leader.code == "L1"))
        found = find_order_by_code(s, leader=leader, code=wide, today=local_today(s, leader))
        assert found.id == portal.orders["M3"].id


# --- find by phone tail ---------------------------------------------------------------------


@pytest.fixture
def tail_world(app):
    """The portal world plus 孙八 at point L2, whose phone ends in 5678 like M1's at L1."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s, extra=(("M8", "孙八", "13955555678", "L2", [("APPLE", 1)]),))


def test_phone_tail_lists_only_this_points_members_and_is_audited(app, client, tail_world):
    """5678 at L1 lists M1 (masked) with both bags, never L2's member with the same tail; the
    look-up is audited with the members it listed; full-width digits work alike."""
    login(client, "leader1")
    found = post(client, "/leader/pickups/phone", {"tail": "５６７８"}, headers=EN)
    assert found.status_code == 200
    text = _text(found.text)
    assert "张**" in text and "Bag 1" in text and "Bag 4" in text
    assert "孙" not in text and "13812345678" not in text
    m1 = tail_world.orders["M1"].member_id
    with _db(app) as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "pickup.phone_tail_lookup")
        ).one()
        assert (entry.actor, entry.after["members"]) == ("user:leader1", [m1])
    nobody = post(client, "/leader/pickups/phone", {"tail": "3333"})  # L2's M9
    assert nobody.status_code == 409
    assert post(client, "/leader/pickups/phone", {"tail": "56"}).status_code == 422


def test_phone_tail_hands_over_every_ready_bag_of_the_checked_member(app, client, tail_world):
    """After checking M1, the leader hands over both their bags; each pickup and its audit entry
    say phone_tail. L2's member, posted with the same tail, gets nothing handed over here."""
    login(client, "leader1")
    foreign = post(
        client,
        "/leader/pickups/phone/verify",
        {"tail": "5678", "member": str(tail_world.orders["M8"].member_id)},
    )
    assert foreign.status_code == 302
    done = post(
        client,
        "/leader/pickups/phone/verify",
        {"tail": "5678", "member": str(tail_world.orders["M1"].member_id)},
    )
    assert done.status_code == 302
    assert "Handed over: 2 orders." in client.get("/leader/pickups", headers=EN).text
    with _db(app) as s:
        picked = s.execute(select(Pickup.order_id, Pickup.method).order_by(Pickup.order_id)).all()
        assert picked == [
            (tail_world.orders["M1"].id, "phone_tail"),
            (tail_world.orders["M1b"].id, "phone_tail"),
        ]
        methods = s.scalars(
            select(AuditEntry.after).where(AuditEntry.action == "order.collected")
        ).all()
        assert [m["method"] for m in methods] == ["phone_tail", "phone_tail"]


def test_another_point_finds_only_its_own_member_by_the_same_tail(client, tail_world):
    """Leader 2 typing 5678 sees its own member 孙八, never L1's 张小明."""
    login(client, "leader2")
    text = _text(post(client, "/leader/pickups/phone", {"tail": "5678"}).text)
    assert "孙*" in text and "张" not in text


# --- lists by member, Today's search and warning ----------------------------------------------


def test_not_collected_groups_a_members_bags_with_their_items(leader1, portal):
    """未提货 shows M1 once, with bags 1 and 4 in that order, each with its items."""
    text = _text(leader1.get("/leader/uncollected", headers=EN).text)
    assert text.count("张**") == 3  # the member's heading, then each of the two bags
    bag1, bag4 = text.index("Bag 1"), text.index("Bag 4")
    assert bag1 < bag4 < text.index("Bag 2")  # M1's bags together, before M2's
    assert "Milk 1L × 2" in text[bag4:]


def test_today_search_by_bag_phone_tail_or_name(leader1, portal):
    """Today's search box finds a bag by its number, by the member's phone tail (full-width
    too) or by the masked name, and says so when nothing matches."""

    def bags(q):
        return re.findall(
            r"Bag (\d+) ·", _text(leader1.get(f"/leader/today?q={q}", headers=EN).text)
        )

    assert bags("4") == ["4"]
    assert bags("1111") == ["2"]  # M2's phone ends in 1111
    assert bags("２２２２") == ["3"]
    assert bags("李") == ["2"]
    assert bags("") == ["1", "2", "3", "4"]
    assert "No bag matches" in leader1.get("/leader/today?q=9999", headers=EN).text


def test_today_warns_when_the_receiving_window_passed_unconfirmed(app, leader1, portal):
    """The delivery day's window has passed and nothing is confirmed: Today warns; once the
    arrival is confirmed, it does not."""
    warning = "has passed and the arrival is not confirmed"
    assert warning in leader1.get("/leader/today", headers=EN).text
    _confirm(leader1, app)
    assert warning not in leader1.get("/leader/today", headers=EN).text


def test_the_window_has_passed_only_after_its_close_on_the_delivery_day(app, portal):
    """11:00 closes L1's window on the 10th (Shanghai): 10:59 local is inside, 11:01 past."""
    from datetime import UTC, datetime

    from fulfilment.core.models import Wave
    from fulfilment.points.day import receiving_window_passed

    with _db(app) as s:
        leader = s.scalar(select(Leader).where(Leader.code == "L1"))
        wave = s.get(Wave, portal.wave.id)
        before = datetime(2026, 3, 10, 2, 59, tzinfo=UTC)  # 10:59 in Shanghai
        after = datetime(2026, 3, 10, 3, 1, tzinfo=UTC)
        assert not receiving_window_passed(s, leader=leader, wave=wave, now=before)
        assert receiving_window_passed(s, leader=leader, wave=wave, now=after)
