"""The admin's desk: every page in both languages, every form saving with an audit entry, bad
input named by field with nothing written, the CSV imports' preview, the refund export."""

from datetime import UTC, datetime, time, timedelta

import pytest
from portal_factories import PASSWORD, csrf_token, login, make_portal_world
from sqlalchemy import func, select

from fulfilment.accounts.models import LoginSession, User
from fulfilment.catalogue.fleet import Vehicle
from fulfilment.core.db import session_scope
from fulfilment.core.models import (
    AuditEntry,
    Deal,
    GridStation,
    Leader,
    Order,
    Product,
    Refund,
    RefundState,
    Region,
    Warehouse,
    Wave,
    WaveStatus,
)

ZH = {"Accept-Language": "zh-CN"}
FUTURE = (datetime.now(UTC) + timedelta(days=20)).date()


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


@pytest.fixture
def admin(app, portal):
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


def sessions(app):
    return session_scope(app.extensions["groupbuy"]["sessions"])


def count(app, model, *where) -> int:
    with sessions(app) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def audits(app, action: str, entity_id: int | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    with sessions(app) as s:
        return list(s.scalars(query))


def post(client, path: str, data: dict, **kw):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/")}, **kw)


def ids(app) -> dict[str, int]:
    with sessions(app) as s:
        return {
            "region": s.scalar(select(Region.id).where(Region.code == "SH")),
            "warehouse": s.scalar(select(Warehouse.id).where(Warehouse.code == "WH1")),
            "station": s.scalar(select(GridStation.id).where(GridStation.code == "GS1")),
            "leader": s.scalar(select(Leader.id).where(Leader.code == "L1")),
            "product": s.scalar(select(Product.id).where(Product.sku == "APPLE")),
            "deal": s.scalar(select(Deal.id).order_by(Deal.id)),
            "user": s.scalar(select(User.id).where(User.username == "dispatcher1")),
        }


def admin_pages(app, portal) -> list[str]:
    n = ids(app)
    pages = ["/admin/", "/admin/api-clients", "/admin/audit", "/admin/refunds"]
    pages += ["/admin/commission-rates", "/admin/webhooks/failed"]
    for kind in ("leaders", "products", "fleet", "orders"):
        pages.append(f"/admin/import/{kind}")
    for kind, key in [
        ("regions", "region"),
        ("warehouses", "warehouse"),
        ("stations", "station"),
        ("leaders", "leader"),
        ("products", "product"),
        ("deals", "deal"),
        ("users", "user"),
        ("vehicles", None),
    ]:
        pages += [f"/admin/{kind}", f"/admin/{kind}/new"]
        if key:
            pages.append(f"/admin/{kind}/{n[key]}")
    return pages


LEADER = {
    "station": "",
    "code": "L9",
    "name": "新团长",
    "phone": "13811112222",
    "pickup_name": "九号自提点",
    "address": "长宁路 9 号",
    "lat": "31.215",
    "lon": "121.455",
    "window_open": "07:30",
    "window_close": "10:30",
    "active": "y",
}
PRODUCT = {
    "sku": "PEAR",
    "name": "Pears 1kg",
    "weight_g": "1000",
    "volume_ml": "1400",
    "zone": "ambient",
    "bin_code": "A-02-1",
}
VEHICLE = {
    "code": "V9",
    "region": "SH",
    "kind": "last_mile",
    "home": "GS1",
    "weight_kg": "800",
    "volume_l": "4000",
    "crates": "60",
    "zones": "ambient,chilled",
    "shift_start": "06:00",
    "shift_end": "14:00",
    "speed_kmh": "30",
    "fixed_cost": "50",
    "active": "yes",
}


# --- pages and languages ------------------------------------------------------------------------

# Each language on SQLite; PostgreSQL in English (the same queries: a language is not a query).
LANGUAGES_AND_DATABASES = [
    ("sqlite", "en"),
    ("sqlite", "zh"),
    pytest.param("postgres", "en", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize("db_url, lang", LANGUAGES_AND_DATABASES, indirect=["db_url"])
def test_every_admin_page_opens_in_both_languages(app, portal, admin, lang):
    """Each admin page (lists, new and edit forms, imports, audit, refunds, API clients) opens
    for the admin, in English and in Chinese (a Chinese page carries the Chinese labels)."""
    headers = ZH if lang == "zh" else {"Accept-Language": "en"}
    with sessions(app) as s:  # the admin's account asks for English: let the browser decide
        s.get_one(User, portal.users["admin"].id).locale = None
    for page in admin_pages(app, portal):
        answer = admin.get(page, headers=headers)
        assert answer.status_code == 200, page
        assert ("管理" if lang == "zh" else "Admin") in answer.text, page


def test_the_landing_page_links_every_admin_page_and_the_other_desks(app, portal, admin):
    """A new admin finds everything from /admin/ and from the start page: every list, every
    import, the audit log, the refund export, the API clients, the commission rates, the failed
    webhook messages, the dispatcher's desk and the warehouse's pick lists of the latest cut-off
    wave."""
    wanted = [
        "/admin/regions",
        "/admin/warehouses",
        "/admin/stations",
        "/admin/leaders",
        "/admin/products",
        "/admin/deals",
        "/admin/vehicles",
        "/admin/users",
        "/admin/import/leaders",
        "/admin/import/products",
        "/admin/import/fleet",
        "/admin/import/orders",
        "/admin/audit",
        "/admin/refunds",
        "/admin/api-clients",
        "/admin/commission-rates",
        "/admin/webhooks/failed",
        "/dispatch/",
    ]
    landing = admin.get("/admin/").text
    start = admin.get("/").text
    for link in wanted:
        assert f'href="{link}"' in landing, link
        assert f'href="{link}"' in start, link
    assert f'href="/waves/{portal.wave.id}"' in landing
    assert f'href="/dispatch/waves/{portal.wave.id}"' in landing


def test_a_list_is_paged_and_searched_in_sql(app, portal, admin):
    """Lists show 50 records a page with a link to the next; ?q= keeps the records whose code
    holds the text (a % or _ in it is a plain character)."""
    with sessions(app) as s:
        station = s.scalars(select(GridStation)).first()
        for n in range(60):
            s.add(
                Leader(
                    region_id=station.region_id,
                    station_id=station.id,
                    code=f"Z{n:03d}",
                    name="x",
                    phone="13800000000",
                    pickup_name="p",
                    lat=31.2,
                    lon=121.4,
                )
            )
    first = admin.get("/admin/leaders")
    assert first.text.count("/admin/leaders/") - first.text.count("/admin/leaders/new") == 50
    assert "page=2" in first.text
    found = admin.get("/admin/leaders?q=Z05")
    assert found.text.count("<td>Z05") == 10 and "page=2" not in found.text
    assert admin.get("/admin/leaders?q=%25").text.count("<td>Z0") == 0
    for bad in ("0", "-1", "x", "100001"):  # a page that is no page: a 400 naming the field
        answer = admin.get(f"/admin/leaders?page={bad}")
        assert answer.status_code == 400 and "page" in answer.text, bad


# --- saving each kind of record -----------------------------------------------------------------


def test_a_region_is_created_and_its_cutoff_change_moves_open_waves(app, portal, admin):
    """A new region is saved with its zone and cutoff; changing a region's cutoff time goes
    through change_cutoff_time: its open waves not yet due move, and both are audited."""
    answer = post(
        admin,
        "/admin/regions/new",
        {
            "code": "GZ",
            "name": "广州",
            "tz": "Asia/Shanghai",
            "cutoff_time": "22:00",
            "delivery_offset_days": "1",
            "lat": "23.13",
            "lon": "113.26",
            "radius_km": "60",
        },
    )
    assert answer.status_code == 302
    with sessions(app) as s:
        gz = s.scalars(select(Region).where(Region.code == "GZ")).one()
        assert gz.cutoff_time == time(22, 0) and gz.tz == "Asia/Shanghai"
        sh = s.scalars(select(Region).where(Region.code == "SH")).one()
        wave = Wave(
            region_id=sh.id,
            delivery_date=FUTURE,
            status=WaveStatus.OPEN,
            cutoff_due_at=datetime.combine(FUTURE - timedelta(days=1), time(15, 0), UTC),
        )
        s.add(wave)
        s.flush()
        wave_id, sh_id = wave.id, sh.id
    assert len(audits(app, "region.added")) == 1
    data = {
        "code": "SH",
        "name": "Shanghai",
        "tz": "Asia/Shanghai",
        "cutoff_time": "21:00",
        "delivery_offset_days": "1",
        "lat": "31.23",
        "lon": "121.47",
        "radius_km": "80",
    }
    page = post(admin, f"/admin/regions/{sh_id}", data, follow_redirects=True)
    assert "1 open wave(s) moved" in page.text
    with sessions(app) as s:
        assert s.get_one(Region, sh_id).cutoff_time == time(21, 0)
        due = s.get_one(Wave, wave_id).cutoff_due_at
        assert due == datetime.combine(FUTURE - timedelta(days=1), time(13, 0), UTC)
    assert len(audits(app, "region.cutoff_time_changed")) == 1
    assert len(audits(app, "wave.deadline_moved")) == 1


def test_a_warehouse_and_a_station_are_created(app, portal, admin):
    """A warehouse in a region, then a grid station supplied by it; both audited."""
    n = ids(app)
    answer = post(
        admin,
        "/admin/warehouses/new",
        {"region": str(n["region"]), "code": "WH2", "name": "北仓", "lat": "31.4", "lon": "121.4"},
    )
    assert answer.status_code == 302
    with sessions(app) as s:
        wh2 = s.scalar(select(Warehouse.id).where(Warehouse.code == "WH2"))
    answer = post(
        admin,
        "/admin/stations/new",
        {"warehouse": str(wh2), "code": "GS9", "name": "九站", "lat": "31.3", "lon": "121.4"},
    )
    assert answer.status_code == 302
    with sessions(app) as s:
        station = s.scalars(select(GridStation).where(GridStation.code == "GS9")).one()
        assert station.warehouse_id == wh2 and station.region_id == n["region"]
    assert len(audits(app, "warehouse.added")) == 1 and len(audits(app, "station.added")) == 1


def test_a_leader_is_created_then_moved_and_deactivated(app, portal, admin):
    """A leader with their pickup point (typed coordinates, receiving window) is added; an edit
    changes the point and deactivates it, audited with before and after."""
    n = ids(app)
    answer = post(admin, "/admin/leaders/new", {**LEADER, "station": str(n["station"])})
    assert answer.status_code == 302
    with sessions(app) as s:
        leader = s.scalars(select(Leader).where(Leader.code == "L9")).one()
        assert (leader.lat, leader.window_open, leader.active) == (31.215, time(7, 30), True)
        leader_id = leader.id
    edited = {**LEADER, "station": str(n["station"]), "lat": "31.22"}
    del edited["active"]  # an unticked box is not posted
    assert post(admin, f"/admin/leaders/{leader_id}", edited).status_code == 302
    with sessions(app) as s:
        leader = s.get_one(Leader, leader_id)
        assert (leader.lat, leader.active) == (31.22, False)
    [change] = audits(app, "leader.changed")
    assert change.before == {"lat": 31.215, "active": True}
    assert change.after == {"lat": 31.22, "active": False}


def test_a_product_is_created_and_changed(app, portal, admin):
    """A SKU with weight, volume, zone and bin; a change of bin is audited."""
    assert post(admin, "/admin/products/new", PRODUCT).status_code == 302
    with sessions(app) as s:
        pear = s.scalars(select(Product).where(Product.sku == "PEAR")).one()
        assert (pear.weight_g, pear.zone.value, pear.bin_code) == (1000, "ambient", "A-02-1")
        pear_id = pear.id
    answer = post(admin, f"/admin/products/{pear_id}", {**PRODUCT, "bin_code": "A-09-9"})
    assert answer.status_code == 302
    [change] = audits(app, "product.changed")
    assert change.after == {"bin_code": "A-09-9"}
    # the supplier the purchase list groups by: set, shown in the form, cleared
    supplied = {**PRODUCT, "bin_code": "A-09-9", "supplier": "赣南果业"}
    assert post(admin, f"/admin/products/{pear_id}", supplied).status_code == 302
    assert "赣南果业" in admin.get(f"/admin/products/{pear_id}").text
    assert (
        post(admin, f"/admin/products/{pear_id}", {**supplied, "supplier": ""}).status_code == 302
    )
    with sessions(app) as s:
        assert s.get_one(Product, pear_id).supplier is None
    changes = [a.after for a in audits(app, "product.changed")]
    assert {"supplier": "赣南果业"} in changes


def test_a_deal_is_offered_with_tiers_cap_and_minimum_group(app, portal, admin):
    """A deal for a future delivery date with two tiers, a stock cap and a minimum group; the
    tiers are stored in order and the deal audited."""
    n = ids(app)
    data = {
        "region": str(n["region"]),
        "product": str(n["product"]),
        "delivery_date": FUTURE.isoformat(),
        "base_price": "12.80",
        "stock_cap": "500",
        "min_group_members": "5",
        "tier1_qty": "100",
        "tier1_price": "9.90",
        "tier2_qty": "20",
        "tier2_price": "11.50",
    }
    assert post(admin, "/admin/deals/new", data).status_code == 302
    with sessions(app) as s:
        deal = s.scalars(select(Deal).where(Deal.delivery_date == FUTURE)).one()
        assert (deal.base_price_cents, deal.stock_cap, deal.min_group_members) == (1280, 500, 5)
        assert [(t.min_qty, t.price_cents) for t in deal.tiers] == [(20, 1150), (100, 990)]
    assert len(audits(app, "deal.added")) == 1


def test_a_vehicle_is_created_and_changed(app, portal, admin):
    """A last-mile van at a station, checked by the fleet file's parser; an edit keeps its code."""
    assert post(admin, "/admin/vehicles/new", VEHICLE).status_code == 302
    with sessions(app) as s:
        van = s.scalars(select(Vehicle).where(Vehicle.code == "V9")).one()
        assert (van.capacity_weight_g, van.capacity_crates, van.zones) == (
            800_000,
            60,
            "ambient,chilled",
        )
        van_id = van.id
    answer = post(admin, f"/admin/vehicles/{van_id}", {**VEHICLE, "code": "X", "crates": "70"})
    assert answer.status_code == 302
    with sessions(app) as s:
        assert s.get_one(Vehicle, van_id).capacity_crates == 70
        assert s.scalar(select(func.count()).select_from(Vehicle)) == 1
    assert len(audits(app, "vehicle.added")) == 1 and len(audits(app, "vehicle.changed")) == 1


def test_users_are_created_rescoped_disabled_and_their_password_reset(app, portal):
    """A new dispatcher signs in; moved to another region their sign-ins end; disabled they
    cannot sign in; enabled with a new password they can, with that password only."""
    admin = app.test_client()
    login(admin, "admin")
    data = {
        "username": "dispatcher_bj",
        "password": "a long password",
        "role": "dispatcher",
        "region": "SH",
        "leader": "",
        "locale": "",
    }
    assert post(admin, "/admin/users/new", data).status_code == 302
    other = app.test_client()
    assert login(other, "dispatcher_bj", "a long password").status_code == 302
    with sessions(app) as s:
        user_id = s.scalar(select(User.id).where(User.username == "dispatcher_bj"))
    changed = {k: v for k, v in data.items() if k != "password"} | {"region": "BJ"}
    assert post(admin, f"/admin/users/{user_id}", changed).status_code == 302
    assert other.get("/dispatch/").status_code == 302  # signed out: the login page
    assert post(admin, f"/admin/users/{user_id}/active", {"active": "no"}).status_code == 302
    assert login(other, "dispatcher_bj", "a long password").status_code != 302  # refused
    assert post(admin, f"/admin/users/{user_id}/active", {"active": "yes"}).status_code == 302
    answer = post(admin, f"/admin/users/{user_id}/password", {"password": "another password"})
    assert answer.status_code == 302
    assert login(app.test_client(), "dispatcher_bj", "a long password").status_code != 302
    assert login(app.test_client(), "dispatcher_bj", "another password").status_code == 302
    with sessions(app) as s:
        user = s.get_one(User, user_id)
        assert user.region.code == "BJ" and user.active
    for action in ("user.created", "user.changed", "user.disabled", "user.enabled"):
        assert len(audits(app, action, user_id)) == 1, action
    [reset] = audits(app, "user.password_reset", user_id)
    assert "password" not in str(reset.after)


def test_an_admin_cannot_disable_or_demote_themselves(app, portal, admin):
    """Disabling one's own account, or taking one's own admin role, is refused by field."""
    me = portal.users["admin"].id
    answer = post(admin, f"/admin/users/{me}/active", {"active": "no"})
    assert answer.status_code == 422 and "You cannot disable your own account." in answer.text
    data = {"username": "admin", "role": "dispatcher", "region": "SH", "leader": "", "locale": ""}
    answer = post(admin, f"/admin/users/{me}", data)
    assert answer.status_code == 422 and 'id="err-role"' in answer.text
    with sessions(app) as s:
        user = s.get_one(User, me)
        assert user.active and user.role.value == "admin"
    assert count(app, LoginSession, LoginSession.ended_at.is_not(None)) == 0


FLASHES = {
    "en": {
        "product": "Saved: Product PEAR",
        "disabled": "Disabled: dispatcher1",
        "password": "New password set for dispatcher1; their sign-ins have ended.",
        "export": "Nothing owed on this wave: no export made.",
        "import": "Imported: 1 added, 0 changed.",
    },
    "zh": {
        "product": "已保存：商品 PEAR",
        "disabled": "已停用：dispatcher1",
        "password": "已为 dispatcher1 设置新密码；其登录会话已结束。",
        "export": "该波次没有待退款：未进行导出。",
        "import": "已导入：新增 1，修改 0。",
    },
}


@pytest.mark.parametrize("db_url, lang", LANGUAGES_AND_DATABASES, indirect=["db_url"])
def test_every_action_answers_in_the_admins_language(app, portal, admin, lang):
    """Saving a record, disabling a user, resetting a password, exporting refunds and
    confirming an import each answer in the admin's language."""
    with sessions(app) as s:
        s.get_one(User, portal.users["admin"].id).locale = "zh_Hans_CN" if lang == "zh" else "en"
    said = FLASHES[lang]
    user = ids(app)["user"]

    def flash_of(answer) -> str:
        assert answer.status_code == 302, answer.text
        return admin.get(answer.headers["Location"]).text

    assert said["product"] in flash_of(post(admin, "/admin/products/new", PRODUCT))
    page = flash_of(post(admin, f"/admin/users/{user}/active", {"active": "no"}))
    assert said["disabled"] in page
    page = flash_of(post(admin, f"/admin/users/{user}/password", {"password": "long enough"}))
    assert said["password"] in page
    assert said["export"] in flash_of(post(admin, f"/admin/refunds/{portal.wave.id}/export", {}))
    preview = upload(
        admin, "products", "sku,name,weight_g,volume_ml,zone,bin_code\nFIG,Figs,100,100,ambient,A\n"
    )
    assert said["import"] in flash_of(confirm(admin, "products", preview.text))


# --- bad input: the field named, nothing written ------------------------------------------------


BAD = [
    ("regions", {"tz": "Mars/Olympus"}, "tz", "A time zone such as Asia/Shanghai."),
    ("regions", {"lat": "91"}, "lat", "A latitude from -90 to 90"),
    ("regions", {"cutoff_time": "25:00"}, "cutoff_time", "A time HH:MM"),
    ("warehouses", {"lat": "40.0"}, "lat", "within the region"),
    ("stations", {"code": ""}, "code", "Required, at most 32 characters"),
    ("leaders", {"window_close": "06:00"}, "window_close", "after the window opens"),
    ("leaders", {"lat": "121.455", "lon": "31.215"}, "lat", "not swapped"),
    ("leaders", {"code": "L1"}, "code", "not used by another record"),
    ("products", {"weight_g": "-5"}, "weight_g", "A whole number of grams."),
    ("products", {"zone": "tepid"}, "zone", "Ambient, chilled or frozen."),
    ("products", {"sku": "APPLE"}, "sku", "not used by another product"),
    ("deals", {"delivery_date": "2020-01-01"}, "delivery_date", "still open"),
    ("deals", {"tier1_price": "99.00"}, "tier1_price", "at most the base price"),
    ("deals", {"base_price": "1.234"}, "base_price", "at most two decimals"),
    ("vehicles", {"home": "WH1"}, "home", "a grid station of its region"),
    ("vehicles", {"shift_end": "05:00"}, "shift_end", "after the shift starts"),
    ("users", {"role": "warehouse", "region": ""}, "region", "The region a warehouse"),
    ("users", {"password": "short"}, "password", "At least 8 characters."),
]


def _good(app, kind: str) -> dict[str, str]:
    n = ids(app)
    return {
        "regions": {
            "code": "GZ",
            "name": "广州",
            "tz": "Asia/Shanghai",
            "cutoff_time": "22:00",
            "delivery_offset_days": "1",
            "lat": "23.13",
            "lon": "113.26",
            "radius_km": "60",
        },
        "warehouses": {
            "region": str(n["region"]),
            "code": "WH2",
            "name": "北仓",
            "lat": "31.4",
            "lon": "121.4",
        },
        "stations": {
            "warehouse": str(n["warehouse"]),
            "code": "GS9",
            "name": "九站",
            "lat": "31.3",
            "lon": "121.4",
        },
        "leaders": {**LEADER, "station": str(n["station"])},
        "products": PRODUCT,
        "deals": {
            "region": str(n["region"]),
            "product": str(n["product"]),
            "delivery_date": FUTURE.isoformat(),
            "base_price": "12.80",
            "tier1_qty": "10",
            "tier1_price": "10.00",
        },
        "vehicles": VEHICLE,
        "users": {
            "username": "newbie",
            "password": "a long password",
            "role": "dispatcher",
            "region": "SH",
            "leader": "",
            "locale": "",
        },
    }[kind]


MODELS = {
    "regions": Region,
    "warehouses": Warehouse,
    "stations": GridStation,
    "leaders": Leader,
    "products": Product,
    "deals": Deal,
    "vehicles": Vehicle,
    "users": User,
}


@pytest.mark.parametrize(("kind", "bad", "field", "hint"), BAD)
def test_bad_input_names_the_field_and_writes_nothing(app, portal, admin, kind, bad, field, hint):
    """Each form refuses a bad value with a 422 naming the field (its label, what it takes, the
    field marked), and writes nothing: no row, no audit entry."""
    model = MODELS[kind]
    rows, entries = count(app, model), count(app, AuditEntry)
    answer = post(admin, f"/admin/{kind}/new", {**_good(app, kind), **bad})
    assert answer.status_code == 422
    assert hint in answer.text
    assert f'id="err-{field}"' in answer.text and "Nothing was saved." in answer.text
    assert count(app, model) == rows and count(app, AuditEntry) == entries


def test_a_deal_keeps_its_product_and_a_region_its_code(app, portal, admin):
    """Order lines point at a deal's product and a region's code scopes its CSV imports: an
    edit cannot move a deal to another product (422, nothing written), and a region's code is
    shown, not posted."""
    n = ids(app)
    data = {**_good(app, "deals"), "delivery_date": FUTURE.isoformat()}
    assert post(admin, "/admin/deals/new", data).status_code == 302
    with sessions(app) as s:
        deal_id = s.scalar(select(Deal.id).where(Deal.delivery_date == FUTURE))
        milk = s.scalar(select(Product.id).where(Product.sku == "MILK"))
    answer = post(admin, f"/admin/deals/{deal_id}", {**data, "product": str(milk)})
    assert answer.status_code == 422 and 'id="err-product"' in answer.text
    with sessions(app) as s:
        assert s.get_one(Deal, deal_id).product_id == n["product"]
    region = {**_good(app, "regions"), "code": "XX", "name": "上海"}
    assert post(admin, f"/admin/regions/{n['region']}", region).status_code == 302
    with sessions(app) as s:
        assert s.get_one(Region, n["region"]).code == "SH"


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_input_is_named_in_chinese(app, portal, admin):
    """In Chinese, the refused field's label and what it takes are Chinese."""
    with sessions(app) as s:
        s.get_one(User, portal.users["admin"].id).locale = "zh_Hans_CN"
    answer = post(admin, "/admin/regions/new", {**_good(app, "regions"), "tz": "Mars/Olympus"})
    assert answer.status_code == 422
    assert "时区" in answer.text and "未保存任何内容" in answer.text


def test_a_good_form_after_a_bad_one_saves(app, portal, admin):
    """The refusal leaves nothing behind: the corrected form then saves once."""
    post(admin, "/admin/products/new", {**PRODUCT, "weight_g": "x"})
    assert post(admin, "/admin/products/new", PRODUCT).status_code == 302
    assert count(app, Product, Product.sku == "PEAR") == 1


# --- CSV imports: preview, then all or nothing --------------------------------------------------


def upload(client, kind: str, text: str, **extra):
    from io import BytesIO

    data = {
        "file": (BytesIO(text.encode("utf-8")), f"{kind}.csv"),
        "csrf_token": csrf_token(client, "/admin/"),
        **extra,
    }
    return client.post(f"/admin/import/{kind}", data=data, content_type="multipart/form-data")


def confirm(client, kind: str, page: str, **extra):
    import re

    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    return post(client, f"/admin/import/{kind}/confirm", {"token": token, **extra})


LEADERS_BAD = (
    "code,station,name,phone,pickup_name,lat,lon,window_open,window_close\n"
    "L7,GS1,七号,13800000007,七号点,31.22,121.46,07:00,10:00\n"
    "L8,GS404,八号,13800000008,八号点,31.22,121.46,07:00,10:00\n"
    "L10,GS1,十号,13800000010,十号点,91,121.46,07:00,10:00\n"
    "L11,GS1,十一,13800000011,十一点,31.22,121.46,11:00,10:00\n"
    "L7,GS1,重复,13800000012,重复点,31.22,121.46,07:00,10:00\n"
)


def test_a_leaders_file_with_errors_shows_each_by_line_and_field_and_writes_nothing(
    app, portal, admin
):
    """The preview lists every bad row with its line and field (unknown station, latitude out of
    range, a window closing before it opens, a code twice) and offers no confirmation; no
    leader and no audit entry is written."""
    leaders, entries = count(app, Leader), count(app, AuditEntry)
    answer = upload(admin, "leaders", LEADERS_BAD)
    assert answer.status_code == 422
    html = answer.text
    for line, field in [(3, "station"), (4, "lat"), (5, "window_close"), (6, "code")]:
        assert f'<td class="n">{line}</td><td><code>{field}</code></td>' in html, (line, field)
    assert "4 error(s): nothing will be written" in html
    assert 'name="token"' not in html
    assert count(app, Leader) == leaders and count(app, AuditEntry) == entries


def test_a_good_leaders_file_is_previewed_then_written_on_confirmation(app, portal, admin):
    """A clean file shows the rows it would write (new or changed, phones masked) and writes
    nothing until confirmed; confirmed, every row is written and audited."""
    text = (
        "code,station,name,phone,pickup_name,lat,lon\n"
        "L7,GS1,七号,13800000007,七号点,31.22,121.46\n"
        "L1,GS1,Leader 1,13800000000,Point 1 renamed,31.21,121.46\n"
    )
    leaders = count(app, Leader)
    answer = upload(admin, "leaders", text)
    assert answer.status_code == 200
    assert "2 row(s) would be written (1 new, 1 changed)" in answer.text
    assert "13800000007" not in answer.text and "138****0007" in answer.text
    assert count(app, Leader) == leaders and not audits(app, "leader.added")
    assert confirm(admin, "leaders", answer.text).status_code == 302
    assert count(app, Leader) == leaders + 1
    assert len(audits(app, "leader.added")) == 1 and len(audits(app, "leader.changed")) == 1
    again = confirm(admin, "leaders", answer.text)  # the upload was used up
    assert again.status_code == 422 and count(app, Leader) == leaders + 1


def test_a_products_file_previews_errors_and_then_imports(app, portal, admin):
    """A bad products file names line and field; the corrected file imports all rows."""
    bad = "sku,name,weight_g,volume_ml,zone,bin_code\nPEAR,Pears,abc,1000,ambient,A-1\n"
    answer = upload(admin, "products", bad)
    assert answer.status_code == 422
    assert '<td class="n">2</td><td><code>weight_g</code></td>' in answer.text
    good = "sku,name,weight_g,volume_ml,zone,bin_code\nPEAR,Pears,1000,1000,ambient,A-1\n"
    answer = upload(admin, "products", good)
    assert answer.status_code == 200
    assert confirm(admin, "products", answer.text).status_code == 302
    assert count(app, Product, Product.sku == "PEAR") == 1


def fleet_csv(row: dict[str, str]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(row.keys())
    writer.writerow(row.values())
    return out.getvalue()


def test_a_fleet_file_previews_errors_and_then_imports(app, portal, admin):
    """The fleet import's own parser gives the preview's errors; the good file imports."""
    bad = fleet_csv({**VEHICLE, "kind": "boat"})
    answer = upload(admin, "fleet", bad)
    assert answer.status_code == 422
    assert '<td class="n">2</td><td><code>kind</code></td>' in answer.text
    answer = upload(admin, "fleet", fleet_csv(VEHICLE))
    assert answer.status_code == 200, answer.text
    assert count(app, Vehicle) == 0
    assert confirm(admin, "fleet", answer.text).status_code == 302
    assert count(app, Vehicle) == 1


def test_an_orders_file_previews_errors_and_writes_nothing(app, portal, admin):
    """An orders file for a region: an unknown leader and an unknown SKU are named by line and
    field, and no order is placed."""
    orders = count(app, Order)
    when = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    text = (
        "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"
        f"A1,{when},L404,M1,张三,13800001111,APPLE,1\n"
        f"A2,{when},L1,M2,李四,13800002222,DURIAN,1\n"
    )
    answer = upload(admin, "orders", text, region=str(ids(app)["region"]))
    assert answer.status_code == 422
    assert '<td class="n">2</td><td><code>leader_code</code></td>' in answer.text
    assert '<td class="n">3</td><td><code>sku</code></td>' in answer.text
    assert count(app, Order) == orders


def test_an_orders_file_is_previewed_then_placed_on_confirmation(app, portal, admin):
    """A clean orders file for an offered wave: the preview lists each order at its first line
    (member masked) and places nothing; confirmed, the orders are placed once, and the same
    file again finds them imported before."""
    from fulfilment.waves.cycle import delivery_date_for
    from fulfilment.waves.offers import save_deal

    now = datetime.now(UTC)
    with sessions(app) as s:
        region = s.scalars(select(Region).where(Region.code == "SH")).one()
        apple = s.scalars(select(Product).where(Product.sku == "APPLE")).one()
        save_deal(
            s,
            deal=None,
            region=region,
            product=apple,
            delivery_date=delivery_date_for(region, now),
            base_price_cents=500,
            stock_cap=None,
            min_group_members=None,
            tiers=[],
            now=now,
            actor="test",
        )
    when = now.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    text = (
        "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"
        f"A1,{when},L1,M51,张三丰,13800001111,APPLE,2\n"
        f"A2,{when},L2,M52,李四,13800002222,APPLE,1\n"
    )
    orders = count(app, Order)
    region_id = str(ids(app)["region"])
    answer = upload(admin, "orders", text, region=region_id)
    assert answer.status_code == 200, answer.text
    assert "2 row(s) would be written" in answer.text and "张**" in answer.text
    assert "张三丰" not in answer.text and count(app, Order) == orders
    assert confirm(admin, "orders", answer.text, region=region_id).status_code == 302
    assert count(app, Order) == orders + 2
    again = upload(admin, "orders", text, region=region_id)
    assert "2 order(s) were imported before and are skipped." in again.text


def test_a_site_form_has_the_map_picker_from_the_shared_leaflet(app, portal, admin):
    """The leader, station, warehouse and region forms carry the map (Leaflet from the app's
    own static files, no CDN) beside typed coordinates; the product form has none."""
    for kind in ("leaders", "stations", "warehouses", "regions"):
        html = admin.get(f"/admin/{kind}/new").text
        assert 'id="map"' in html and "/static/leaflet/leaflet.js" in html, kind
        assert "unpkg" not in html and "cdn" not in html.lower()
    assert admin.get("/static/leaflet/leaflet.js").status_code == 200
    assert 'id="map"' not in admin.get("/admin/products/new").text


# --- read-only lists and the refund export ------------------------------------------------------


def test_the_audit_log_filters_by_actor_action_and_date_a_page_at_a_time(app, portal, admin):
    """The log is filtered in SQL by actor, action (or a prefix like `user.`) and dates, newest
    first, 50 to a page with a link to the older ones."""
    with sessions(app) as s:
        for n in range(55):
            s.add(
                AuditEntry(
                    actor="user:robot",
                    action="test.tick",
                    entity="test",
                    entity_id=n,
                    at=datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=n),
                )
            )
    first = admin.get("/admin/audit?actor=user:robot&action=test.")
    assert first.status_code == 200 and first.text.count("<td>test.tick</td>") == 50
    assert "page=2" in first.text
    second = admin.get("/admin/audit?actor=user:robot&action=test.&page=2")
    assert second.text.count("<td>test.tick</td>") == 5
    day = admin.get("/admin/audit?action=test.tick&since=2026-05-01&until=2026-05-01")
    assert day.text.count("<td>test.tick</td>") == 50
    none = admin.get("/admin/audit?action=test.tick&since=2026-05-02")
    assert none.text.count("<td>test.tick</td>") == 0
    bad = admin.get("/admin/audit?since=yesterday")
    assert bad.status_code == 422 and 'id="err-since"' in bad.text


def test_api_clients_are_listed_without_tokens(app, portal, admin):
    """Every API client with its region and state; no token, no hash."""
    from fulfilment.platforms.clients import ApiClient, create_api_client

    with sessions(app) as s:
        create_api_client(s, name="youzan", region_code="SH")
        token_hash = s.scalar(select(ApiClient.token_hash))
    page = admin.get("/admin/api-clients").text
    assert "youzan" in page and token_hash not in page


def test_the_refund_export_claims_once_and_the_batch_downloads(app, portal, admin):
    """Exporting a wave's owed refunds claims them in one batch; the batch's CSV downloads
    (again and again); a second export finds nothing owed and makes no batch."""
    from fulfilment.core.models import OrderLine, RefundReason

    with sessions(app) as s:
        line_id = s.scalar(select(OrderLine.id).order_by(OrderLine.id))
        s.add(Refund(order_line_id=line_id, amount_cents=250, reason=RefundReason.TIER_PRICE))
    wave = portal.wave.id
    page = admin.get("/admin/refunds").text
    assert f"/admin/refunds/{wave}/export" in page
    assert post(admin, f"/admin/refunds/{wave}/export", {}).status_code == 302
    with sessions(app) as s:
        refund = s.scalars(select(Refund)).one()
        assert refund.state == RefundState.EXPORTED and refund.export_batch
        batch = refund.export_batch
    csv_path = f"/admin/refunds/{wave}/{batch}.csv"
    assert csv_path in admin.get("/admin/refunds").text
    for _ in range(2):
        download = admin.get(csv_path)
        assert download.status_code == 200 and download.mimetype == "text/csv"
        assert "refund_id" in download.text and "2.50" in download.text
    again = post(admin, f"/admin/refunds/{wave}/export", {}, follow_redirects=True)
    assert "Nothing owed on this wave" in again.text
    exports = audits(app, "refunds.exported")
    assert [e.after["newly_exported"] for e in exports] == [1, 0]
    assert count(app, Refund, Refund.export_batch == batch) == 1
    assert admin.get(f"/admin/refunds/{wave}/{'0' * 32}.csv").status_code == 404


def test_a_new_admin_signs_in_and_the_start_page_leads_to_the_admin_desk(app, portal):
    """Signed in as admin, the start page (/) links the admin's desk and every admin page."""
    client = app.test_client()
    login(client, "admin", PASSWORD)
    start = client.get("/")
    assert 'href="/admin/"' in start.text and 'href="/admin/users"' in start.text
