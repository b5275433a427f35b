"""Mends of the warehouse pages (issue 17): the sorting lists read only the page they show, the
start page counts only the orders of the waves it shows, and the lists filter by station and
leader."""

from datetime import UTC, datetime

import pytest
from portal_factories import PASSWORD, login
from sqlalchemy import event, select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import session_scope
from fulfilment.core.models import Leader, OrderLine, Wave
from fulfilment.demo.city import build_demo
from fulfilment.waves.cutoff import cut_off_wave

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def cut_demo(app):
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        summary = build_demo(s, seed=2, leaders=12, orders=200, now=NOW)
    with session_scope(sessions) as s:
        wave, _ = cut_off_wave(
            s, region=get_region(s, "SH"), delivery_date=summary.delivery_date, now=NOW
        )
        create_user(s, username="wh", password=PASSWORD, role=Role.WAREHOUSE, region_code="SH")
        return wave.id


class Statements:
    """The SELECTs the app runs while recording, compiled with their parameters."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_execute", self._record)

    def _record(self, conn, clause, multiparams, params, execution_options):
        if hasattr(clause, "compile") and getattr(clause, "is_select", False):
            compiled = clause.compile(dialect=conn.dialect)
            self.seen.append((str(compiled), compiled.params))


def test_sorting_lists_page_reads_only_the_leaders_it_shows(app, client, cut_demo, monkeypatch):
    """With a page of 2 leaders, no statement reads the order lines of any other leader: the
    page is cut in SQL, not after building every sorting list of the region."""
    import web.warehouse.views as views

    monkeypatch.setattr(views, "SORTING_PAGE", 2)
    login(client, "wh")
    with Statements(app.extensions["groupbuy"]["engine"]) as recorded:
        page = client.get(f"/waves/{cut_demo}/leaders?page=2")
    assert page.status_code == 200
    line_reads = [
        p for sql, p in recorded.seen if OrderLine.__tablename__ in sql and "member" in sql
    ]
    assert line_reads, "the members' lines are read"
    for params in line_reads:
        leader_ids = [v for k, v in params.items() if k.startswith("leader_id")]
        assert leader_ids and all(len(ids) <= 2 for ids in leader_ids), params
    assert page.text.count('class="sorting-list"') == 2


def test_sorting_lists_total_and_filters(app, client, cut_demo):
    """The page says how many leaders the filter finds; the station and leader filters narrow
    the lists to that station's leaders or to one leader."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        leader = s.scalars(select(Leader).order_by(Leader.code)).first()
        code, station = leader.code, leader.station.code
    login(client, "wh")
    one = client.get(f"/waves/{cut_demo}/leaders?leader={code}")
    assert one.text.count('class="sorting-list"') == 1 and code in one.text
    by_station = client.get(f"/waves/{cut_demo}/leaders?station={station}")
    assert by_station.status_code == 200
    assert 'name="station"' in by_station.text and 'name="leader"' in by_station.text


def test_start_page_counts_only_the_shown_waves(app, client, cut_demo):
    """`/` counts the orders of the waves it lists (the user's regions' recent waves), not
    of every wave in every region on each view."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        shown = set(s.scalars(select(Wave.id)))
    login(client, "wh")
    with Statements(app.extensions["groupbuy"]["engine"]) as recorded:
        page = client.get("/")
    assert page.status_code == 200
    counts = [(sql, p) for sql, p in recorded.seen if "count(" in sql and "orders" in sql]
    assert counts, [s for s, _ in recorded.seen]
    for sql, params in counts:
        wave_ids = [v for k, v in params.items() if k.startswith("wave_id")]
        assert wave_ids, f"counts orders of every wave: {sql}"
        assert set(wave_ids[0]) <= shown
