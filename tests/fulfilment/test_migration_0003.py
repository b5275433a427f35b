"""Migration 0003 on a database that already holds orders: imported keys join their region."""

from alembic import command
from sqlalchemy import text

from fulfilment.core.db import make_engine
from fulfilment.core.migrate import alembic_config, upgrade

ROWS = [
    "INSERT INTO region VALUES (1, 'SH', 'Shanghai', 'Asia/Shanghai', '23:00:00', 1, 31.2, 121.4, 80)",
    "INSERT INTO warehouse VALUES (1, 1, 'WH', 'WH', 31.3, 121.3)",
    "INSERT INTO grid_station VALUES (1, 1, 1, 'GS', 'GS', 31.2, 121.4)",
    "INSERT INTO leader VALUES (1, 1, 1, 'L1', 'Li', '138', 'Point', '', 31.2, 121.4,"
    " '07:00:00', '11:00:00', true)",
    "INSERT INTO member VALUES (1, 1, 1, 'M1', 'Zhang', '139')",
    "INSERT INTO wave VALUES (1, 1, '2026-03-10', 'open', '2026-03-09 15:00:00', NULL)",
    "INSERT INTO orders (id, region_id, leader_id, member_id, wave_id, placed_at, received_at,"
    " status, late, pickup_code, idempotency_key, source, total_cents) VALUES"
    " (1, 1, 1, 1, 1, '2026-03-09 12:00:00', '2026-03-09 12:00:00', 'placed', false,"
    " '12345678', 'csv:A1', 'csv', 100),"
    " (2, 1, 1, 1, 1, '2026-03-09 12:00:00', '2026-03-09 12:00:00', 'placed', false,"
    " '12345679', 'k-9', 'api', 100)",
]


def test_upgrade_scopes_imported_keys_by_region_and_keeps_every_order(db_url):
    """Orders imported before 0003 get the scope csv:<region>, so a re-import still finds them;
    other orders keep the empty scope; nothing is lost."""
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:  # the fixture's database is at head: take it back to 0001
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with engine.begin() as conn:
        for row in ROWS:
            conn.execute(text(row))
    upgrade(engine)
    with engine.connect() as conn:
        scopes = conn.execute(
            text("SELECT id, idempotency_scope, idempotency_key FROM orders ORDER BY id")
        ).all()
    assert [tuple(r) for r in scopes] == [(1, "csv:SH", "csv:A1"), (2, "", "k-9")]
    engine.dispose()
