"""Migration 0006 on a database that holds merged members: CSV ids namespaced, merges split."""

from alembic import command
from sqlalchemy import text

from fulfilment.core.db import make_engine
from fulfilment.core.migrate import alembic_config, upgrade

ROWS = [
    "INSERT INTO region VALUES (1, 'SH', 'Shanghai', 'Asia/Shanghai', '23:00:00', 1, 31.2, 121.4, 80)",
    "INSERT INTO region VALUES (2, 'BJ', 'Beijing', 'Asia/Shanghai', '23:00:00', 1, 39.9, 116.4, 80)",
    "INSERT INTO warehouse VALUES (1, 1, 'WH', 'WH', 31.3, 121.3)",
    "INSERT INTO warehouse VALUES (2, 2, 'BJ-WH', 'WH', 39.9, 116.3)",
    "INSERT INTO grid_station VALUES (1, 1, 1, 'GS', 'GS', 31.2, 121.4)",
    "INSERT INTO grid_station VALUES (2, 2, 2, 'BJ-GS', 'GS', 39.9, 116.4)",
    "INSERT INTO leader VALUES (1, 1, 1, 'L1', 'Li', '138', 'Point', '', 31.2, 121.4,"
    " '07:00:00', '11:00:00', true)",
    "INSERT INTO leader VALUES (2, 2, 2, 'BJ-L1', 'Wu', '139', 'Point', '', 39.9, 116.4,"
    " '07:00:00', '11:00:00', true)",
    # 1001 was imported in SH (张三) first, then in BJ (李四): one merged row with SH's name.
    "INSERT INTO member VALUES (1, 1, 1, '1001', '张三', '13800000001')",
    "INSERT INTO member VALUES (2, 1, 1, 'p1:m-1', 'Api', '13800000002')",
    "INSERT INTO member VALUES (3, 2, 2, 'B7', 'Zhao', '13800000003')",
    "INSERT INTO wave VALUES (1, 1, '2026-03-10', 'open', '2026-03-09 15:00:00', NULL)",
    "INSERT INTO wave VALUES (2, 2, '2026-03-10', 'open', '2026-03-09 15:00:00', NULL)",
    "INSERT INTO orders (id, region_id, leader_id, member_id, wave_id, placed_at, received_at,"
    " status, late, pickup_code, idempotency_key, idempotency_scope, source, total_cents) VALUES"
    " (1, 1, 1, 1, 1, '2026-03-09 12:00:00', '2026-03-09 12:00:00', 'placed', false,"
    " '12345678', 'csv:A1', 'csv:SH', 'csv', 100),"
    " (2, 2, 2, 1, 2, '2026-03-09 12:00:00', '2026-03-09 12:00:00', 'placed', false,"
    " '12345679', 'csv:B1', 'csv:BJ', 'csv', 100),"
    " (3, 2, 2, 1, 2, '2026-03-09 12:05:00', '2026-03-09 12:05:00', 'placed', false,"
    " '12345680', 'csv:B2', 'csv:BJ', 'csv', 100),"
    " (4, 1, 1, 2, 1, '2026-03-09 12:00:00', '2026-03-09 12:00:00', 'placed', false,"
    " '12345681', 'k-9', 'api:1', 'api', 100),"
    " (5, 2, 2, 3, 2, '2026-03-09 12:00:00', '2026-03-09 12:00:00', 'placed', false,"
    " '12345682', 'csv:B3', 'csv:BJ', 'csv', 100)",
]


def test_upgrade_namespaces_csv_members_and_splits_the_merged_one(db_url):
    """Issue 22 item 4: the member merged across SH and BJ becomes csv:SH:1001 (张三, with the
    SH order) and csv:BJ:1001 (BJ's two orders, without 张三's name or phone); a member of
    one region is renamed in place; an API member is left alone; no order is lost."""
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:  # the fixture's database is at head: take it back to 0004
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    with engine.begin() as conn:
        for row in ROWS:
            conn.execute(text(row))
        if engine.dialect.name == "postgresql":  # rows written with their ids, as a dump would
            conn.execute(text("SELECT setval(pg_get_serial_sequence('member', 'id'), 3)"))
    upgrade(engine)
    with engine.connect() as conn:
        members = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                text("SELECT external_id, id, region_id, leader_id, name, phone FROM member")
            )
        }
        owners = dict(
            conn.execute(
                text("SELECT o.id, m.external_id FROM orders o JOIN member m ON m.id = o.member_id")
            ).all()
        )
    assert members["csv:SH:1001"] == (1, 1, 1, "张三", "13800000001")
    split = members["csv:BJ:1001"]
    assert split[1:] == (2, 2, "1001", "")
    assert members["p1:m-1"] == (2, 1, 1, "Api", "13800000002")
    assert members["csv:BJ:B7"] == (3, 2, 2, "Zhao", "13800000003")
    assert owners == {
        1: "csv:SH:1001",
        2: "csv:BJ:1001",
        3: "csv:BJ:1001",
        4: "p1:m-1",
        5: "csv:BJ:B7",
    }
    engine.dispose()
