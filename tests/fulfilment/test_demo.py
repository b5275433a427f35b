"""The demo city: deterministic for a seed, with an evening peak, ready for a cutoff."""

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from fulfilment.core.models import GridStation, Leader, Order, OrderLine, Region
from fulfilment.demo.city import build_demo
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.cycle import local_time

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def snapshot(session):
    orders = session.execute(
        select(Order.leader_id, Order.placed_at, Order.pickup_code, Order.total_cents).order_by(
            Order.id
        )
    ).all()
    leaders = session.execute(select(Leader.code, Leader.lat, Leader.lon).order_by(Leader.id)).all()
    return orders, leaders


def test_same_seed_same_city(tmp_path, sqlite_template):
    """Two builds with one seed give identical leaders and orders; another seed differs."""
    import shutil

    from fulfilment.core.db import make_engine, make_session_factory

    shots = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        path = tmp_path / f"{name}.sqlite"
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
        s = make_session_factory(engine)()
        build_demo(s, seed=seed, leaders=20, orders=300, now=NOW)
        s.commit()
        shots.append(snapshot(s))
        s.close()
        engine.dispose()
    assert shots[0] == shots[1]
    assert shots[0] != shots[2]


def test_demo_has_an_evening_peak_and_cuts_off(session):
    """Most orders arrive in the evening before the 23:00 cutoff; the wave cuts off cleanly."""
    summary = build_demo(session, seed=1, leaders=30, orders=1000, now=NOW)
    region = session.scalars(select(Region)).one()
    hours = Counter(local_time(region, t).hour for t in session.scalars(select(Order.placed_at)))
    evening = sum(hours[h] for h in (19, 20, 21, 22))
    small_hours = sum(hours[h] for h in (2, 3, 4, 5))
    assert evening > 5 * small_hours
    assert session.scalar(select(Leader).limit(1)).station_id in set(
        session.scalars(select(GridStation.id))
    )
    wave, cut = cut_off_wave(session, region=region, delivery_date=summary.delivery_date, now=NOW)
    assert cut.orders_locked + cut.orders_cancelled == 1000
    lines = session.scalars(select(OrderLine)).all()
    assert cut.lines_locked == sum(1 for ln in lines if ln.status.value == "active")
