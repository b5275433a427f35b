"""The dispatcher's map in Debian's Chromium (Playwright), served by gunicorn on PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, served_by_gunicorn
from portal_factories import PASSWORD
from sqlalchemy import func, select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import Wave
from fulfilment.demo.city import build_demo
from fulfilment.night.planning import PlanningOptions, solve_wave
from fulfilment.night.plans import PlanRoute, PlanStop, RoutePlan, finish_plan, publish_plan
from fulfilment.waves.cutoff import cut_off_wave
from routing import LocalRunner
from web import create_app

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def served(pg_url, tmp_path):
    """The demo wave (12 leaders) planned and published by the night on PostgreSQL, a dispatcher,
    and gunicorn (2 workers) serving the app on a free local port."""
    env = {"GROUPBUY_ENV": "test", "GROUPBUY_DATABASE_URL": pg_url}
    app = create_app({**env, "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance")})
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=12, orders=100, now=NOW)
        region = get_region(s, summary.region_code)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        wave_id = wave.id
        create_user(
            s, username="dispatcher1", password=PASSWORD, role=Role.DISPATCHER, region_code="SH"
        )
    options = PlanningOptions(time_limit_s=0.5, trunk_time_limit_s=1.0)
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=LocalRunner(1), options=options, now=lambda: NOW
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get_one(RoutePlan, plan_id), actor="test", now=NOW)
        publish_plan(s, wave=s.get_one(Wave, wave_id), actor="test", now=NOW)
    app.extensions["groupbuy"]["engine"].dispose()
    engine = make_engine(pg_url)
    with served_by_gunicorn({**env, "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance")}) as base:
        yield base, make_session_factory(engine)
    engine.dispose()


def test_the_dispatcher_opens_the_map_and_every_route_is_drawn(served, tmp_path):
    """At 1280 px the dispatcher opens the demo wave's plan from the landing page: one line per
    route and one marker per stop on the map (no tiles, no network), the table beside it; a
    click on a table row highlights its route. Screenshots in tmp_path."""
    base, sessions = served
    with session_scope(sessions) as s:
        plan = s.scalars(select(RoutePlan)).one()
        routes = s.scalar(
            select(func.count()).select_from(PlanRoute).where(PlanRoute.plan_id == plan.id)
        )
        stops = s.scalar(
            select(func.count())
            .select_from(PlanStop)
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == plan.id)
        )
    with browser_or_skip()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(base + "/login")
        page.fill("input[name=username]", "dispatcher1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.click("text=调度：路线与地图")
        page.click("text=路线与地图")
        page.wait_for_selector("#map[data-routes-drawn]")
        assert page.get_attribute("#map", "data-routes-drawn") == str(routes)
        drawn = page.locator("#map path.leaflet-interactive").count()
        assert drawn == routes + stops
        page.screenshot(path=str(tmp_path / "dispatch-1280.png"), full_page=True)
        page.click("#routes tr[data-route] >> nth=0")
        assert page.locator("#routes tr.on").count() == 1
        assert failed == []
        phone = browser.new_page(viewport={"width": 360, "height": 740}, locale="zh-CN")
        phone.context.add_cookies(page.context.cookies())
        phone.goto(page.url)
        phone.wait_for_selector("#map[data-routes-drawn]")
        phone.screenshot(path=str(tmp_path / "dispatch-360.png"), full_page=True)
        browser.close()


@pytest.fixture
def tomorrow(pg_url, tmp_path):
    """The demo wave delivering after today (its vans have not left), planned and published; a
    dispatcher and the leader of one point; gunicorn serving it (corrections run in a process of
    their own: no Redis)."""
    from fulfilment.accounts.services import create_user as add_user
    from fulfilment.core.models import Leader
    from fulfilment.waves.cycle import cutoff_for_delivery

    env = {"GROUPBUY_ENV": "test", "GROUPBUY_DATABASE_URL": pg_url}
    app = create_app({**env, "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance")})
    sessions = app.extensions["groupbuy"]["sessions"]
    real = datetime.now(UTC)
    with session_scope(sessions) as s:
        # the wave delivering tomorrow or later: at any hour of the day, no van has left yet
        # (the demo's shifts start at 05:30 local; today's vans may be out already)
        summary = build_demo(s, leaders=12, orders=100, now=real + timedelta(days=1))
        region = get_region(s, summary.region_code)
        due = cutoff_for_delivery(region, summary.delivery_date)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=due)
        wave_id = wave.id
        add_user(
            s, username="dispatcher1", password=PASSWORD, role=Role.DISPATCHER, region_code="SH"
        )
        leaders = {ld.code: ld for ld in s.scalars(select(Leader))}
    options = PlanningOptions(time_limit_s=0.5, trunk_time_limit_s=1.0)
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=LocalRunner(1), options=options, now=lambda: real
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get_one(RoutePlan, plan_id), actor="night", now=real)
        publish_plan(s, wave=s.get_one(Wave, wave_id), actor="night", now=real)
        first = s.scalars(
            select(PlanRoute)
            .where(PlanRoute.plan_id == plan_id, PlanRoute.station_id.is_not(None))
            .order_by(PlanRoute.vehicle_code)
        ).first()
        stops = [x.stop_code for x in first.stops]
        leader = leaders[stops[0]]
        add_user(
            s,
            username="leader_first",
            password=PASSWORD,
            role=Role.LEADER,
            leader_code=leader.code,
            locale="zh_Hans_CN",
        )
    app.extensions["groupbuy"]["engine"].dispose()
    engine = make_engine(pg_url)
    with served_by_gunicorn({**env, "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance")}) as base:
        yield base, make_session_factory(engine), plan_id, first.vehicle_code, stops
    engine.dispose()


def test_the_dispatcher_moves_a_stop_publishes_and_the_leader_sees_the_new_eta(tomorrow, tmp_path):
    """At 1280 px: the first stop of a van moved to second place on its route (a new draft, made in
    a process of its own while the page waits), the diff read, the draft published; the leader of
    that stop, at 360 px in Chinese, sees the new, later arrival time."""
    base, sessions, plan_id, van, stops = tomorrow
    with browser_or_skip()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        leader = browser.new_page(viewport={"width": 360, "height": 740}, locale="zh-CN")
        leader.goto(base + "/login")
        leader.fill("input[name=username]", "leader_first")
        leader.fill("input[name=password]", PASSWORD)
        leader.click("button[type=submit]")
        before = leader.locator("text=预计到达").first.inner_text()

        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en")
        page.goto(base + "/login")
        page.fill("input[name=username]", "dispatcher1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        with session_scope(sessions) as s:
            wave_id = s.get_one(RoutePlan, plan_id).wave_id
        page.goto(f"{base}/dispatch/waves/{wave_id}")
        page.wait_for_selector("#map[data-routes-drawn]")
        assert page.locator("#map path.leaflet-interactive").count() > 0
        page.select_option("#change-stop select[name=stop]", stops[0])
        page.select_option("#change-stop select[name=kind]", "move")
        page.select_option("#change-stop select[name=vehicle]", van)
        page.fill("#change-stop input[name=position]", "2")
        page.screenshot(path=str(tmp_path / "dispatch-change-1280.png"), full_page=True)
        page.click("#change-stop button")
        page.wait_for_url("**/diff", timeout=120_000)
        assert page.locator("[data-diff=order]").inner_text() != "0" or (
            page.locator("[data-diff=eta]").inner_text() != "0"
        )
        page.screenshot(path=str(tmp_path / "dispatch-diff-1280.png"), full_page=True)
        page.click("text=Publish v2")
        page.wait_for_selector("text=Version 2 published")

        leader.reload()
        after = leader.locator("text=预计到达").first.inner_text()
        leader.screenshot(path=str(tmp_path / "leader-eta-360.png"), full_page=True)
        assert after != before
        browser.close()
    with session_scope(sessions) as s:
        statuses = sorted(str(x.value) for x in s.scalars(select(RoutePlan.status)))
        assert statuses == ["published", "superseded"]
