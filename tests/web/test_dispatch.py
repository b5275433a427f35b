"""The dispatcher's desk: a wave's plan versions and figures, the plan on a map (GeoJSON) and in a
table, for dispatchers of the wave's region and admins only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time

import pytest
from portal_factories import PASSWORD, csrf_token, login
from sqlalchemy import func, select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import session_scope
from fulfilment.core.models import Region, Wave
from fulfilment.demo.city import build_demo
from fulfilment.night.planning import PlanningOptions, solve_wave
from fulfilment.night.plans import (
    Echelon,
    PlanPart,
    PlanRoute,
    PlanStop,
    PlanUnassigned,
    RoutePlan,
    finish_plan,
    publish_plan,
)
from fulfilment.waves.cutoff import cut_off_wave
from routing import LocalRunner

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ACCOUNTS = {
    "dispatcher1": (Role.DISPATCHER, "SH"),
    "warehouse1": (Role.WAREHOUSE, "SH"),
    "dispatcher_bj": (Role.DISPATCHER, "BJ"),
    "admin": (Role.ADMIN, ""),
}


FAST = PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5)


@pytest.fixture
def planned(app):
    """The demo wave (10 leaders) cut off, planned (short limits, in this process) and
    published; one account per role that matters here, and a second region BJ with its own
    dispatcher."""
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=10, orders=80, now=NOW)
        region = get_region(s, summary.region_code)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        wave_id = wave.id
        s.add(
            Region(
                code="BJ",
                name="北京",
                tz="Asia/Shanghai",
                cutoff_time=time(23, 0),
                delivery_offset_days=1,
                lat=39.9,
                lon=116.4,
                radius_km=80,
            )
        )
        s.flush()
        for username, (role, code) in ACCOUNTS.items():
            create_user(
                s, username=username, password=PASSWORD, role=role, region_code=code or None
            )
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=LocalRunner(1), options=FAST, now=lambda: NOW
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get_one(RoutePlan, plan_id), actor="test", now=NOW)
        publish_plan(s, wave=s.get_one(Wave, wave_id), actor="test", now=NOW)
    return wave_id, plan_id


def _sessions(app):
    return app.extensions["groupbuy"]["sessions"]


def test_the_dispatcher_sees_the_published_plan_with_its_figures_and_routes(app, client, planned):
    """From the landing page to the wave: the version (v1, published), the figures (orders of the
    wave, vehicles used), and one table row per route of the plan."""
    wave_id, plan_id = planned
    login(client, "dispatcher1")
    landing = client.get("/")
    assert f"/dispatch/waves/{wave_id}".encode() in landing.data
    index = client.get("/dispatch/")
    assert index.status_code == 200 and b"v1" in index.data and b"Published" in index.data
    page = client.get(f"/dispatch/waves/{wave_id}")
    assert page.status_code == 200
    with session_scope(_sessions(app)) as s:
        routes = s.scalar(
            select(func.count()).select_from(PlanRoute).where(PlanRoute.plan_id == plan_id)
        )
        plan = s.get(RoutePlan, plan_id)
        orders = s.get(Wave, wave_id)
        assert orders is not None
        used = plan.vehicles_used
    html = page.data.decode()
    assert html.count('<tr data-route="') == routes
    assert f"/dispatch/plans/{plan_id}.geojson" in html
    assert f">{used} / " in html
    assert "leaflet/leaflet.js" in html and "unpkg" not in html and "cdn" not in html.lower()
    # each route's crates: the vans' add up to the wave's crates, and so do the trucks'
    import re

    from fulfilment.waves.crates import Crate

    with session_scope(_sessions(app)) as s:
        crates = s.scalar(select(func.count()).select_from(Crate).where(Crate.wave_id == wave_id))
    carried = [int(n) for n in re.findall(r"<td class=\"n\" data-crates>(\d+)</td>", html)]
    assert len(carried) == routes and crates > 0
    assert sum(carried) == 2 * crates


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_page_speaks_chinese(app, client, planned):
    """A browser asking for Chinese gets the desk in Chinese."""
    wave_id, _ = planned
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh"  # login() keeps it
    login(client, "dispatcher1")
    html = client.get(f"/dispatch/waves/{wave_id}").data.decode()
    assert "已发布" in html and "车辆" in html


def test_geojson_holds_every_stop_once_and_every_unassigned_stop_with_its_reason(
    app, client, planned
):
    """Each stored stop is one Point (route, seq) with an ETA; each route a LineString from its
    depot through its stops and back; an unassigned stop is a Point with its reason."""
    wave_id, plan_id = planned
    with session_scope(_sessions(app)) as s:
        stops = {
            (route_id, seq)
            for route_id, seq in s.execute(
                select(PlanStop.route_id, PlanStop.seq)
                .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
                .where(PlanRoute.plan_id == plan_id)
            )
        }
        routes = {
            r.id: len(r.stops)
            for r in s.scalars(select(PlanRoute).where(PlanRoute.plan_id == plan_id))
        }
        part = s.scalars(
            select(PlanPart).where(
                PlanPart.plan_id == plan_id, PlanPart.echelon == Echelon.LAST_MILE
            )
        ).first()
        leader_stop = s.scalars(
            select(PlanStop)
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == plan_id, PlanStop.leader_id.is_not(None))
        ).first()
        s.add(
            PlanUnassigned(
                plan_id=plan_id,
                part_id=part.id,
                echelon=Echelon.LAST_MILE,
                leader_id=leader_stop.leader_id,
                stop_code=leader_stop.stop_code,
                zone="frozen",
                reason="no_vehicle_for_zone",
                weight_g=1,
                volume_ml=1,
                crates=1,
            )
        )
    login(client, "dispatcher1")
    answer = client.get(f"/dispatch/plans/{plan_id}.geojson")
    assert answer.status_code == 200 and answer.mimetype == "application/geo+json"
    features = answer.get_json()["features"]
    points = [f for f in features if f["properties"]["kind"] == "stop"]
    assert sorted((f["properties"]["route"], f["properties"]["seq"]) for f in points) == sorted(
        stops
    )
    assert all(f["properties"]["eta"].endswith("+00:00") for f in points)
    lines = {f["properties"]["route"]: f for f in features if f["properties"]["kind"] == "route"}
    assert set(lines) == set(routes)
    for route_id, line in lines.items():
        coords = line["geometry"]["coordinates"]
        assert len(coords) == routes[route_id] + 2 and coords[0] == coords[-1]
    missing = [f for f in features if f["properties"]["kind"] == "unassigned"]
    assert [(f["properties"]["stop"], f["properties"]["reason"]) for f in missing] == [
        (leader_stop.stop_code, "no_vehicle_for_zone")
    ]


def test_outside_the_dispatchers_of_its_region_the_desk_is_not_found(app, planned):
    """The warehouse has no dispatch desk; another region's dispatcher does not find this wave,
    its plan or its GeoJSON (404, never 403)."""
    wave_id, plan_id = planned
    for username in ("warehouse1", "dispatcher_bj"):
        client = app.test_client()
        login(client, username)
        for path in (
            f"/dispatch/waves/{wave_id}",
            f"/dispatch/plans/{plan_id}.geojson",
            f"/dispatch/plans/{plan_id}/diff",
            f"/dispatch/waves/{wave_id}/day",
        ):
            assert client.get(path).status_code == 404, (username, path)
        landing = client.get("/dispatch/")
        assert landing.status_code == (404 if username == "warehouse1" else 200)
        if username == "dispatcher_bj":
            assert f"/dispatch/waves/{wave_id}".encode() not in landing.data


def test_admin_sees_every_region(app, client, planned):
    """The admin opens any region's wave and plan."""
    wave_id, plan_id = planned
    login(client, "admin")
    assert client.get(f"/dispatch/waves/{wave_id}").status_code == 200
    assert client.get(f"/dispatch/plans/{plan_id}.geojson").status_code == 200


def test_a_plan_that_is_not_this_waves_is_not_found(app, client, planned):
    """?plan= must name one of this wave's versions: anything else is a 404, never a 500."""
    wave_id, _ = planned
    login(client, "dispatcher1")
    for plan in ("abc", "²", "99999999999", "0"):
        assert client.get(f"/dispatch/waves/{wave_id}?plan={plan}").status_code == 404, plan


def test_without_a_tile_server_the_map_is_offline_and_with_one_its_images_are_allowed(
    app, client, planned
):
    """By default no tile layer and the app's own policy; with GROUPBUY_TILE_URL the page names
    the template and lets images come from that origin only."""
    wave_id, _ = planned
    login(client, "dispatcher1")
    plain = client.get(f"/dispatch/waves/{wave_id}")
    assert 'data-tiles=""' in plain.data.decode()
    assert "img-src 'self' data: blob:;" in plain.headers["Content-Security-Policy"]
    settings = app.config["GROUPBUY_SETTINGS"]
    app.config["GROUPBUY_SETTINGS"] = dataclasses.replace(
        settings, tile_url="https://tiles.example.cn/{z}/{x}/{y}.png"
    )
    tiled = client.get(f"/dispatch/waves/{wave_id}")
    assert 'data-tiles="https://tiles.example.cn/{z}/{x}/{y}.png"' in tiled.data.decode()
    assert (
        "img-src 'self' data: blob: https://tiles.example.cn;"
        in tiled.headers["Content-Security-Policy"]
    )


# ---------------------------------------------------------------------------------------------
# Corrections from the desk

EVENING = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # before any van of the demo wave leaves


@pytest.fixture
def inline_worker(app, monkeypatch):
    """Corrections run at once in this process (the off-process path has its own test)."""
    from fulfilment.night import corrections
    from web.dispatch import views

    sessions = app.extensions["groupbuy"]["sessions"]
    app.config["GROUPBUY_CLOCK"] = lambda: EVENING
    monkeypatch.setattr(
        views,
        "start_correction",
        lambda url, cid: corrections.run_correction(
            sessions, cid, now=lambda: EVENING, time_limit_s=0.5
        ),
    )


def _routes(app, plan_id):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        out: dict[str, list[str]] = {}
        for r in s.scalars(
            select(PlanRoute).where(
                PlanRoute.plan_id == plan_id, PlanRoute.echelon == Echelon.LAST_MILE
            )
        ):
            out[r.vehicle_code] = [x.stop_code for x in r.stops]
        return out


def _post(client, path, data, page):
    token = csrf_token(client, page)
    return client.post(path, data={**data, "csrf_token": token})


def test_a_move_lock_and_publish_from_the_desk(app, client, planned, inline_worker):
    """The dispatcher locks a stop, reads the diff of the new draft, publishes it; the
    published version before it is superseded and its routes untouched."""
    wave_id, plan_id = planned
    login(client, "dispatcher1")
    page_url = f"/dispatch/waves/{wave_id}"
    page = client.get(page_url).text
    assert "Change this version" in page and 'name="stop"' in page
    used = _routes(app, plan_id)
    van = sorted(used)[0]
    stop = used[van][0]
    answer = _post(
        client, f"/dispatch/plans/{plan_id}/corrections", {"kind": "lock", "stop": stop}, page_url
    )
    assert answer.status_code == 303
    followed = client.get(answer.headers["Location"])  # the correction: done, so its diff
    assert followed.status_code == 303 and "/diff" in followed.headers["Location"]
    diff_url = followed.headers["Location"]
    diff = client.get(diff_url).text
    assert "Changes in v2" in diff and "Publish v2" in diff
    draft_id = int(diff_url.split("/")[-2])
    published = _post(
        client, f"/dispatch/plans/{draft_id}/publish", {"seen": str(plan_id)}, diff_url
    )
    assert published.status_code == 303
    page = client.get(page_url).text
    assert "Version 2 published" in page
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.get_one(RoutePlan, plan_id).status.value == "superseded"
        assert s.get_one(RoutePlan, draft_id).status.value == "published"
    assert _routes(app, plan_id) == used


def test_a_move_that_breaks_a_rule_is_shown_and_cannot_be_published(
    app, client, planned, inline_worker
):
    wave_id, plan_id = planned
    login(client, "dispatcher1")
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        # a stop with chilled goods, moved to its station's spare van (ambient only in the demo)
        stop, van = s.execute(
            select(PlanStop.stop_code, PlanRoute.vehicle_code)
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == plan_id, PlanStop.zones.contains("chilled"))
            .where(PlanRoute.echelon == Echelon.LAST_MILE)
        ).first()
    spare = van[:-2] + ("02" if van.endswith("01") else "01")
    page_url = f"/dispatch/waves/{wave_id}"
    answer = _post(
        client,
        f"/dispatch/plans/{plan_id}/corrections",
        {"kind": "move", "stop": stop, "vehicle": spare, "position": "1"},
        page_url,
    )
    diff_url = client.get(answer.headers["Location"]).headers["Location"]
    diff = client.get(diff_url).text
    assert "cannot be published" in diff and "equipped for ambient only" in diff
    assert "Publish v2" not in diff
    draft_id = int(diff_url.split("/")[-2])
    refused = _post(client, f"/dispatch/plans/{draft_id}/publish", {"seen": str(plan_id)}, diff_url)
    assert refused.status_code == 303
    assert "Not published" in client.get(refused.headers["Location"]).text
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.get_one(RoutePlan, plan_id).status.value == "published"


BAD_CHANGES = [
    ({"kind": "move", "stop": "L99999", "vehicle": "SH-GS01-V02"}, "not a pickup point"),
    ({"kind": "move", "stop": "STOP", "vehicle": "SH-T01"}, "not a van"),
    ({"kind": "move", "stop": "STOP", "vehicle": "SPARE", "position": "99"}, "beyond the route"),
    ({"kind": "move", "stop": "STOP", "vehicle": "SPARE", "position": "²"}, "position"),
    ({"kind": "explode", "stop": "STOP"}, "unknown change"),
    ({"kind": "replan", "station": "NOPE"}, "choose a station"),
]


def test_bad_changes_are_named_on_the_page_and_nothing_is_written(
    app, client, planned, inline_worker
):
    wave_id, plan_id = planned
    login(client, "dispatcher1")
    used = _routes(app, plan_id)
    van = sorted(used)[0]
    names = {"STOP": used[van][0], "SPARE": van[:-2] + ("02" if van.endswith("01") else "01")}
    page_url = f"/dispatch/waves/{wave_id}"
    for data, says in BAD_CHANGES:
        data = {k: names.get(v, v) for k, v in data.items()}
        answer = _post(client, f"/dispatch/plans/{plan_id}/corrections", data, page_url)
        assert answer.status_code == 303
        assert says in client.get(answer.headers["Location"]).text, data
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(RoutePlan)) == 1


def test_a_change_runs_in_a_process_of_its_own_and_the_page_follows_it(app, client, planned):
    """Without Redis the correction runs in a separate process: the request returns at once and
    the correction's page refreshes itself until the draft exists."""
    import time

    wave_id, plan_id = planned
    app.config["GROUPBUY_CLOCK"] = lambda: EVENING
    login(client, "dispatcher1")
    stop = _routes(app, plan_id)[sorted(_routes(app, plan_id))[0]][0]
    page_url = f"/dispatch/waves/{wave_id}"
    answer = _post(
        client, f"/dispatch/plans/{plan_id}/corrections", {"kind": "lock", "stop": stop}, page_url
    )
    correction_url = answer.headers["Location"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        step = client.get(correction_url)
        if step.status_code == 303:
            break
        assert 'http-equiv="refresh"' in step.text
        time.sleep(0.5)
    assert step.status_code == 303 and "/diff" in step.headers["Location"]


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_desk_speaks_chinese_for_changes(app, client, planned, inline_worker):
    wave_id, _plan_id = planned
    login(client, "dispatcher1")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    page = client.get(f"/dispatch/waves/{wave_id}").text
    assert "修改此版本" in page


def test_the_delivery_day_shows_each_route_planned_against_actual_with_late_stops_marked(
    app, client, planned
):
    """One point confirmed its arrival 40 minutes after its ETA (late), one 5 minutes after
    (on time); at the hour asked, a stop whose ETA is more than 15 minutes past with nothing
    recorded is late too, and a stop still ahead is not."""
    from datetime import timedelta

    from fulfilment.accounts.models import User
    from fulfilment.points.arrivals import Arrival

    wave_id, plan_id = planned
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        stops = s.execute(
            select(
                PlanStop.stop_code, PlanStop.leader_id, PlanStop.arrival_at, PlanRoute.vehicle_code
            )
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == plan_id, PlanRoute.echelon == Echelon.LAST_MILE)
            .order_by(PlanStop.arrival_at)
        ).all()
        user = s.scalars(select(User.id).where(User.username == "dispatcher1")).one()
        late, on_time, waiting, ahead = stops[0], stops[1], stops[2], stops[-1]
        as_utc = lambda t: t if t.tzinfo else t.replace(tzinfo=UTC)  # noqa: E731
        s.add(
            Arrival(
                wave_id=wave_id,
                leader_id=late.leader_id,
                confirmed_by=user,
                confirmed_at=as_utc(late.arrival_at) + timedelta(minutes=40),
            )
        )
        s.add(
            Arrival(
                wave_id=wave_id,
                leader_id=on_time.leader_id,
                confirmed_by=user,
                confirmed_at=as_utc(on_time.arrival_at) + timedelta(minutes=5),
            )
        )
        now = as_utc(waiting.arrival_at) + timedelta(minutes=20)
    assert as_utc(ahead.arrival_at) > now, "the demo's last stop should still be ahead"
    app.config["GROUPBUY_CLOCK"] = lambda: now
    login(client, "dispatcher1")
    page = client.get(f"/dispatch/waves/{wave_id}/day")
    assert page.status_code == 200
    html = page.text

    def row(code: str) -> str:
        start = html.index(f'data-stop="{code}"')
        return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]

    assert 'class="late"' in row(late.stop_code) and ">40<" in row(late.stop_code)
    assert 'class="late"' not in row(on_time.stop_code)
    assert 'class="late"' in row(waiting.stop_code) and "–" in row(waiting.stop_code)
    assert 'class="late"' not in row(ahead.stop_code)
    assert "stops delivered" in html
    wave_page = client.get(f"/dispatch/waves/{wave_id}").text
    assert 'data-figure="arrivals">2<' in wave_page
    assert 'data-figure="collected">0 / ' in wave_page
    other = app.test_client()
    login(other, "dispatcher_bj")
    assert other.get(f"/dispatch/waves/{wave_id}/day").status_code == 404
