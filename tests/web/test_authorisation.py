"""Who may open what: every route (GET and POST) walked with every role (200, 302 to the login, or 404 outside
the user's scope, never 403), and the mends around requests (commit failure, bad parameters)."""

import pytest
from portal_factories import csrf_token, login, make_portal_world
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fulfilment.core.db import session_scope

ROLES = [
    "anonymous",
    "leader1",
    "staff1",
    "leader2",
    "warehouse1",
    "dispatcher1",
    "warehouse_bj",
    "admin",
]
POINT = {"leader1", "staff1", "leader2"}
SH_STAFF = {"warehouse1", "dispatcher1", "admin"}


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_portal_world(s)
        w = world.world
        world.admin_records = {  # type: ignore[attr-defined]
            "regions": w.region.id,
            "warehouses": w.station.warehouse_id,
            "stations": w.station.id,
            "leaders": w.leaders[0].id,
            "products": w.products["APPLE"].id,
            "deals": next(iter(w.deals.values())).id,
            "users": world.users["dispatcher1"].id,
        }
        return world


def expected(role: str, route: str) -> int:
    if route in ("/login",):
        return 302 if role != "anonymous" else 200
    if route in ("/logout", "/healthz"):
        return 200
    if role == "anonymous":
        return 401 if route.startswith("/api/") else 302
    if route == "/":
        return 302 if role in POINT else 200
    if route.startswith("/leader/orders/"):
        own = {"L1": {"leader1", "staff1"}, "L2": {"leader2"}}[route.rsplit("#", 1)[1]]
        return 200 if role in own else 404
    if route.startswith("/leader/"):
        return 200 if role in POINT else 404
    if route.startswith("/admin/"):
        return 200 if role == "admin" and "#none" not in route else 404
    if "BJ" in route:
        return 200 if role in ("warehouse_bj", "admin") else 404
    return 200 if role in SH_STAFF else 404


def routes(portal) -> list[str]:
    w, bj = portal.wave.id, portal.other_wave.id
    return [
        "/",
        "/login",
        "/logout",
        "/healthz",
        f"/waves/{w}",
        f"/waves/{w}/stations",
        f"/waves/{w}/leaders",
        f"/api/waves/{w}/picks/warehouse",
        f"/api/waves/{w}/picks/leaders",
        f"/waves/{bj}#BJ",
        f"/api/waves/{bj}/picks/stations#BJ",
        "/leader/today",
        "/leader/arrival",
        "/leader/pickups",
        "/leader/uncollected",
        f"/leader/orders/{portal.orders['M2'].id}#L1",
        f"/leader/orders/{portal.orders['M9'].id}#L2",
        *admin_routes(portal),
    ]


def admin_routes(portal) -> list[str]:
    """Every page of the admin's desk: admin only, 404 for every other role."""
    records = portal.admin_records
    pages = ["/admin/", "/admin/api-clients", "/admin/audit", "/admin/refunds"]
    pages += ["/admin/commission-rates", "/admin/webhooks/failed"]
    pages += [f"/admin/import/{k}" for k in ("leaders", "products", "fleet", "orders")]
    for kind in (*records, "vehicles"):
        pages += [f"/admin/{kind}", f"/admin/{kind}/new"]
        if kind in records:
            pages.append(f"/admin/{kind}/{records[kind]}")
    pages.append(f"/admin/refunds/{portal.wave.id}/{'0' * 32}.csv#none")  # no such batch
    return pages


@pytest.mark.parametrize("role", ROLES)
def test_every_route_with_every_role(app, portal, role):
    """Each role gets exactly the designed answer on every page: its own scope 200, signed out 302
    to the login page, anything outside its scope 404 (a wave of another region, another point's
    order, the staff pages for a leader, the leader pages for staff)."""
    client = app.test_client()
    if role != "anonymous":
        assert login(client, role).status_code == 302
    got = {r: client.get(r.split("#")[0]).status_code for r in routes(portal)}
    want = {r: expected(role, r) for r in routes(portal)}
    assert got == want
    for r, code in got.items():
        if code == 302:
            location = client.get(r.split("#")[0]).headers["Location"]
            assert location == "/" or location.startswith(("/login", "/leader/today")), (
                r,
                location,
            )


@pytest.mark.parametrize("role", ["anonymous", "warehouse1", "admin", "leader2"])
def test_changes_outside_scope_are_refused(app, portal, role):
    """Posting to the portal's forms: signed out → the login page; staff → 404; another point's
    leader cannot collect L1's order (it is not found at its point) and nothing changes."""
    from sqlalchemy import func, select

    from fulfilment.points.pickups import Pickup

    client = app.test_client()
    if role != "anonymous":
        login(client, role)
    token = csrf_token(client, "/login" if role == "anonymous" else "/logout")
    code = portal.orders["M2"].pickup_code
    answer = client.post(
        "/leader/pickups/verify", data={"code": code, "scope": "order", "csrf_token": token}
    )
    want = {"anonymous": 302, "warehouse1": 404, "admin": 404, "leader2": 409}[role]
    assert answer.status_code == want
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(Pickup)) == 0


def test_a_failed_commit_is_the_apps_error_page(app, client, portal, monkeypatch):
    """When the request's commit fails the user gets the app's own error page (and JSON paths
    problem details), and nothing is saved."""
    login(client, "leader1")

    def fail(self):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Session, "commit", fail)
    token = csrf_token(client, "/leader/uncollected")
    page = client.post(
        "/leader/uncollected/phone",
        data={"member": str(portal.orders["M1"].member_id), "csrf_token": token},
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 500
    assert "could not be saved" in page.text and "13812345678" not in page.text
    assert page.mimetype == "text/html"
    monkeypatch.undo()
    from sqlalchemy import select

    from fulfilment.core.models import AuditEntry

    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert (
            s.scalars(select(AuditEntry).where(AuditEntry.action == "member.phone_viewed")).all()
            == []
        )


def test_a_failed_commit_on_a_json_path_is_problem_json(app, client, portal, monkeypatch):
    """The same failure under /api/ answers application/problem+json."""
    login(client, "admin")
    monkeypatch.setattr(
        Session,
        "commit",
        lambda self: (_ for _ in ()).throw(OperationalError("COMMIT", {}, Exception("x"))),
    )
    answer = client.get(f"/api/waves/{portal.wave.id}/picks/warehouse")
    assert answer.status_code == 500 and answer.mimetype == "application/problem+json"
    assert answer.get_json()["status"] == 500


def test_malformed_page_parameter_is_400(client, portal):
    """?page=abc on the sorting lists is a 400 naming the parameter, not a server error."""
    login(client, "warehouse1")
    answer = client.get(
        f"/waves/{portal.wave.id}/leaders?page=abc", headers={"Accept-Language": "en"}
    )
    assert answer.status_code == 400 and "page" in answer.text
    assert client.get(f"/waves/{portal.wave.id}/leaders?page=0").status_code == 400
    assert client.get(f"/waves/{portal.wave.id}/leaders?page=2").status_code == 200


def test_sorting_lists_and_json_never_carry_pickup_codes(client, portal):
    """Warehouse sorting lists (page and JSON) name bags by number and masked member only."""
    login(client, "warehouse1")
    page = client.get(f"/waves/{portal.wave.id}/leaders").text
    data = client.get(f"/api/waves/{portal.wave.id}/picks/leaders").text
    for order in portal.orders.values():
        assert order.pickup_code not in page and order.pickup_code not in data
    assert "pickup_code" not in data and '"bag_no"' in data


POST_ROUTES = {  # walked in this order: signing out last
    "/account/locale": "/account/locale",
    "/leader/arrival": "/leader/arrival",
    "/leader/arrival/correct": "/leader/arrival/correct",
    "/leader/arrival/crates": "/leader/arrival/crates",
    "/loading/<int:route_id>/scan": "/loading/1/scan",
    "/loading/<int:route_id>/missing": "/loading/1/missing",
    "/loading/<int:route_id>/done": "/loading/1/done",
    "/waves/<int:wave_id>/receiving/<code>": "/waves/{wave}/receiving/GS1",
    "/leader/pickups": "/leader/pickups",
    "/leader/pickups/verify": "/leader/pickups/verify",
    "/leader/pickups/phone": "/leader/pickups/phone",
    "/leader/pickups/phone/verify": "/leader/pickups/phone/verify",
    "/leader/uncollected/phone": "/leader/uncollected/phone",
    "/admin/regions/new": "/admin/regions/new",
    "/admin/regions/<int:record_id>": "/admin/regions/1",
    "/admin/warehouses/new": "/admin/warehouses/new",
    "/admin/warehouses/<int:record_id>": "/admin/warehouses/1",
    "/admin/stations/new": "/admin/stations/new",
    "/admin/stations/<int:record_id>": "/admin/stations/1",
    "/admin/leaders/new": "/admin/leaders/new",
    "/admin/leaders/<int:record_id>": "/admin/leaders/1",
    "/admin/products/new": "/admin/products/new",
    "/admin/products/<int:record_id>": "/admin/products/1",
    "/admin/deals/new": "/admin/deals/new",
    "/admin/deals/<int:record_id>": "/admin/deals/1",
    "/admin/vehicles/new": "/admin/vehicles/new",
    "/admin/vehicles/<int:record_id>": "/admin/vehicles/1",
    "/admin/users/new": "/admin/users/new",
    "/admin/users/<int:record_id>": "/admin/users/1",
    "/admin/users/<int:user_id>/active": "/admin/users/1/active",
    "/admin/users/<int:user_id>/password": "/admin/users/1/password",
    "/admin/refunds/<int:wave_id>/export": "/admin/refunds/1/export",
    "/admin/import/<kind>": "/admin/import/leaders",
    "/admin/import/<kind>/confirm": "/admin/import/leaders/confirm",
    "/admin/commission-rates": "/admin/commission-rates",
    "/admin/webhooks/failed/<int(max=9223372036854775807):message_id>/retry": (
        "/admin/webhooks/failed/1/retry"
    ),
    "/admin/webhooks/endpoints/<int:endpoint_id>/retry": "/admin/webhooks/endpoints/1/retry",
    "/api/v1/orders": "/api/v1/orders",
    "/api/v1/orders/<order_id>/cancel": "/api/v1/orders/1/cancel",
    "/api/v1/webhooks/endpoints": "/api/v1/webhooks/endpoints",
    "/dispatch/plans/<int:plan_id>/corrections": "/dispatch/plans/999/corrections",
    "/dispatch/plans/<int:plan_id>/publish": "/dispatch/plans/999/publish",
    "/login": "/login",
    "/logout": "/logout",
}


def expected_post(role: str, rule: str) -> set[int]:
    """What an empty form POST may get: signed out, the login page (the order API: 401, a
    browser session is no Bearer token); outside the role's scope 404; inside it, a refusal of
    the empty form or its answer, never a 403 or a server error."""
    if rule.startswith("/api/v1/"):
        return {401}
    if rule == "/login":
        return {401} if role == "anonymous" else {302}
    if rule == "/logout":
        return {302}
    if role == "anonymous":
        return {302}
    if rule == "/account/locale":
        return {400}
    if rule.startswith("/leader/"):
        return {200, 302, 400, 404, 409, 422} if role in POINT else {404}
    if rule.startswith("/admin/"):
        return {302, 404, 422} if role == "admin" else {404}
    if rule.startswith("/dispatch/"):  # no such plan here: not found for everyone signed in
        return {404}
    if rule.startswith("/loading/"):  # route 1 is no truck of a published plan
        return {404}
    if rule.startswith("/waves/"):  # the empty scan form is refused in scope
        return {422} if role in SH_STAFF else {404}
    raise AssertionError(f"no expectation for POST {rule}: add it to the matrix")


def test_the_matrix_lists_every_post_route(app):
    """Every route taking POST is in the matrix below: a new one fails here until it is added."""
    posts = {r.rule for r in app.url_map.iter_rules() if "POST" in (r.methods or set())}
    assert posts == set(POST_ROUTES)


@pytest.mark.parametrize("role", ROLES)
def test_every_post_route_with_every_role(app, portal, role):
    """Each role posting an empty form (with its CSRF token) to every POST route gets the
    designed answer: signed out the login page, outside its scope 404, never 403 or 500."""
    client = app.test_client()
    if role != "anonymous":
        assert login(client, role).status_code == 302
    token = csrf_token(client, "/login" if role == "anonymous" else "/logout")
    got = {
        rule: client.post(path.format(wave=portal.wave.id), data={"csrf_token": token}).status_code
        for rule, path in POST_ROUTES.items()
    }
    wrong = {rule: code for rule, code in got.items() if code not in expected_post(role, rule)}
    assert wrong == {}
