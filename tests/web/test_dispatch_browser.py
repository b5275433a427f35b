"""The dispatcher's map in Debian's Chromium (Playwright), served by gunicorn on PostgreSQL."""

from datetime import UTC, datetime

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
