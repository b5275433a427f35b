"""Refunds owed: several per order line, with reason, amount, time and state; the CSV export;
and the migration that carries the foundation's one-per-line refunds over."""

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import DELIVERY, make_world
from sqlalchemy import select, text

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.migrate import upgrade
from fulfilment.core.models import OrderLine, Refund, RefundReason, RefundState
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.orders.refunds import CSV_COLUMNS, export_refunds
from fulfilment.waves.cutoff import cut_off_wave


def _tiered_wave(session):
    world = make_world(session, tiers=[(3, 900)])
    for n in range(3):
        place_order(
            session,
            region=world.region,
            leader_code="L1",
            member=MemberRef(f"M{n}", "张三", "13812345678"),
            lines=[LineRequest("APPLE", 1)],
            placed_at=world.before_cutoff(60 - n),
        )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    return world, wave


def test_cutoff_refunds_are_owed_with_their_time(session):
    """Tier-price refunds written by the cutoff carry an id, state owed and the cutoff's time."""
    world, _ = _tiered_wave(session)
    refunds = session.scalars(select(Refund).order_by(Refund.id)).all()
    assert [(r.reason, r.amount_cents, r.state) for r in refunds] == [
        (RefundReason.TIER_PRICE, 100, RefundState.OWED)
    ] * 3
    assert {r.created_at for r in refunds} == {world.after_cutoff()}
    assert len({r.id for r in refunds}) == 3


def test_a_line_can_carry_several_refunds(session):
    """A shortage refund on a line that already has a tier-price refund is a second row."""
    _tiered_wave(session)
    line = session.scalars(select(OrderLine).order_by(OrderLine.id)).first()
    session.add(Refund(order_line_id=line.id, amount_cents=900, reason=RefundReason.SHORTAGE))
    session.flush()
    reasons = session.scalars(
        select(Refund.reason).where(Refund.order_line_id == line.id).order_by(Refund.id)
    ).all()
    assert reasons == [RefundReason.TIER_PRICE, RefundReason.SHORTAGE]


def test_export_writes_owed_refunds_once_and_marks_them_exported(session):
    """The export lists each owed refund as a CSV row and marks it exported; a second export
    finds nothing new, and --all lists them again."""
    _, wave = _tiered_wave(session)
    out = io.StringIO()
    assert export_refunds(session, wave_id=wave.id, out=out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == CSV_COLUMNS
    assert [(r["reason"], r["amount_cents"], r["amount_yuan"], r["state"]) for r in rows] == [
        ("tier_price", "100", "1.00", "owed")
    ] * 3
    assert "张" not in out.getvalue() and "13812345678" not in out.getvalue()
    assert {r.state for r in session.scalars(select(Refund))} == {RefundState.EXPORTED}
    again = io.StringIO()
    assert export_refunds(session, wave_id=wave.id, out=again) == 0
    assert export_refunds(session, wave_id=wave.id, out=io.StringIO(), include_exported=True) == 3


def test_migration_0002_carries_refunds_over(tmp_path):
    """A database with the foundation's refunds (keyed by line) keeps them after `db upgrade`,
    each owed, timed at its wave's cutoff; downgrading restores one row per line."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    upgrade(engine, "0001")
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO region (id, code, name, tz, cutoff_time, delivery_offset_days, lat, lon,"
            " radius_km) VALUES (1, 'SH', 'S', 'Asia/Shanghai', '23:00:00', 1, 31.2, 121.4, 80)",
            "INSERT INTO wave (id, region_id, delivery_date, status, cutoff_due_at, cut_off_at)"
            " VALUES (1, 1, '2026-03-10', 'cut_off', '2026-03-09 15:00:00',"
            " '2026-03-09 15:01:00')",
            "INSERT INTO warehouse VALUES (1, 1, 'W', 'W', 31.2, 121.4)",
            "INSERT INTO grid_station VALUES (1, 1, 1, 'G', 'G', 31.2, 121.4)",
            "INSERT INTO leader (id, region_id, station_id, code, name, phone, pickup_name,"
            " address, lat, lon, window_open, window_close, active) VALUES (1, 1, 1, 'L1', 'n',"
            " '1', 'p', '', 31.2, 121.4, '07:00:00', '11:00:00', 1)",
            "INSERT INTO member VALUES (1, 1, 1, 'M1', 'n', '1')",
            "INSERT INTO product VALUES (1, 'A', 'A', 1, 1, 'ambient', 'A-1')",
            "INSERT INTO deal (id, region_id, product_id, delivery_date, base_price_cents,"
            " sold_qty, status) VALUES (1, 1, 1, '2026-03-10', 1000, 1, 'confirmed')",
            "INSERT INTO orders (id, region_id, leader_id, member_id, wave_id, placed_at,"
            " received_at, status, late, pickup_code, source, total_cents) VALUES (1, 1, 1, 1, 1,"
            " '2026-03-09 10:00:00', '2026-03-09 10:00:00', 'placed', 0, '12345678', 'api', 1000)",
            "INSERT INTO order_line VALUES (1, 1, 1, 1, 1, 1000, 'active')",
            "INSERT INTO refund VALUES (1, 300, 'tier_price')",
        ):
            conn.execute(text(sql))
    upgrade(engine, "0002")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, order_line_id, amount_cents, reason, state, created_at FROM refund")
        ).all()
    assert [tuple(r) for r in rows] == [(1, 1, 300, "tier_price", "owed", "2026-03-09 15:01:00")]
    from alembic import command

    from fulfilment.core.migrate import alembic_config

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT * FROM refund")).all() == [(1, 300, "tier_price")]
    engine.dispose()


def _many_owed_refunds(session, members: int = 30):
    """A wave whose tier is reached by the last order: every earlier line is owed 100."""
    world = make_world(session, tiers=[(members, 900)])
    for n in range(members):
        place_order(
            session,
            region=world.region,
            leader_code="L1",
            member=MemberRef(f"M{n}"),
            lines=[LineRequest("APPLE", 1)],
            placed_at=world.before_cutoff(60 - n),
        )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    return wave.id


class _MeetingWriter(io.StringIO):
    """A CSV target whose first write waits (up to 2 s) for the other export to write too: an
    export that reads its rows before claiming them reaches its write while the other still
    sees the same rows owed; one that claims first cannot (the other waits on its row locks)."""

    def __init__(self, meeting: threading.Barrier) -> None:
        super().__init__()
        self.meeting, self.met = meeting, False

    def write(self, text: str) -> int:
        if not self.met:
            self.met = True
            try:
                self.meeting.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass  # the other export is waiting for this one's claim to commit
        return super().write(text)


@pytest.mark.postgres
def test_two_exports_at_once_export_each_refund_exactly_once(pg_url):
    """Two refund exports of one wave at once: every owed refund is in exactly one of the two
    files, and each exported refund carries the batch id of the file it is in."""
    engine = make_engine(pg_url, pool_size=2, max_overflow=0)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        wave_id = _many_owed_refunds(s)
    start, meeting = threading.Barrier(2), threading.Barrier(2)

    def export(_n: int) -> list[dict]:
        out = _MeetingWriter(meeting)
        with session_scope(sessions) as s:
            start.wait()
            export_refunds(s, wave_id=wave_id, out=out)
        return list(csv.DictReader(io.StringIO(out.getvalue())))

    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(export, range(2)))
    exported = sorted(int(r["refund_id"]) for rows in outputs for r in rows)
    with session_scope(sessions) as s:
        refunds = {r.id: r for r in s.scalars(select(Refund))}
    assert len(refunds) == 30
    assert exported == sorted(refunds)  # each of the 30 once, none twice
    for rows in outputs:
        assert len({r["export_batch"] for r in rows}) <= 1
        for r in rows:
            assert refunds[int(r["refund_id"])].export_batch == r["export_batch"]
            assert refunds[int(r["refund_id"])].state == RefundState.EXPORTED
    engine.dispose()


def test_migration_0005_adds_the_export_batch_and_goes_back(tmp_path):
    """Downgrading past 0005 drops the batch and keeps every refund with its state and time;
    upgrading again gives exported refunds no batch (none was recorded before 0005)."""
    from alembic import command

    from fulfilment.core.migrate import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'm5.sqlite'}")
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as s:
        _, wave = _tiered_wave(s)
        export_refunds(s, wave_id=wave.id, out=io.StringIO())
    query = text("SELECT id, state, exported_at IS NOT NULL FROM refund ORDER BY id")
    with engine.connect() as conn:
        before = conn.execute(query).all()
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    with engine.connect() as conn:
        assert conn.execute(query).all() == before == [(n, "exported", 1) for n in (1, 2, 3)]
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT DISTINCT export_batch FROM refund")).all() == [(None,)]
    engine.dispose()


def test_export_writes_a_formula_like_member_id_as_text(session):
    """A member id that a spreadsheet would run (`=HYPERLINK(…)`, `@SUM(…)`, `-2+3`) is
    exported with a leading apostrophe, so the payment side's spreadsheet shows it as text;
    the amounts stay plain numbers."""
    world = make_world(session, tiers=[(3, 900)])
    hostile = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "-2+3"]
    for n, member_id in enumerate(hostile):
        place_order(
            session,
            region=world.region,
            leader_code="L1",
            member=MemberRef(member_id, "张三", "13812345678"),
            lines=[LineRequest("APPLE", 1)],
            placed_at=world.before_cutoff(60 - n),
        )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    out = io.StringIO()
    export_refunds(session, wave_id=wave.id, out=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sorted(r["member_id"] for r in rows) == sorted("'" + m for m in hostile)
    assert {r["amount_cents"] for r in rows} == {"100"}
