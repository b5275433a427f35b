"""What one order POST asks of the database: the statements it sends, counted, on SQLite and
PostgreSQL. A lazy load, a per-line lookup or a second transaction creeping back into the intake
path changes these numbers."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event
from test_api import BODY, _setup


@contextmanager
def _statements(app):
    """Every statement sent on the app's engine, and every COMMIT, in order. SQLite's BEGIN
    IMMEDIATE is a statement of ours and counts; PostgreSQL's BEGIN is the driver's own and is
    not seen here (nor the pool's ping), so a POST is one more round trip there than counted."""
    engine = app.extensions["groupbuy"]["engine"]
    sent: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement.split(None, 1)[0].upper())

    def on_commit(conn):
        sent.append("COMMIT")

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def _postgres(app) -> int:
    return int(app.extensions["groupbuy"]["engine"].dialect.name == "postgresql")


def test_an_order_post_is_one_transaction_of_twelve_round_trips_on_postgresql(app):
    """A two-line order of a new member into an existing open wave: BEGIN IMMEDIATE (SQLite),
    the token, the leader with the key's order if any (on PostgreSQL with the wave's shared
    advisory lock, which queues the intake fairly with the cutoff), the wave, the SKUs with
    their deals and tiers, the member, the order, one stock take per line, the lines and the
    total (one statement on PostgreSQL), the audit entry, the order's event for the outbox (one
    INSERT … SELECT, empty when the client listens to nothing), one COMMIT. The answer is what
    was written: no read back."""
    api = _setup(app)
    assert api.post({**BODY, "member": {"id": "M0"}}, key="warm-up").status_code == 201
    with _statements(app) as sent:
        answer = api.post(BODY, key="k-measured")
    assert answer.status_code == 201, answer.text
    assert sent.count("COMMIT") == 1
    postgres = _postgres(app)
    assert len(sent) == 14 - 2 * postgres  # PostgreSQL: no BEGIN seen, lines and total as one
    assert sent.count("UPDATE") == 3 - postgres  # two stock takes, and on SQLite the total
    assert sent.count("INSERT") == 5 - postgres  # the member, the order, the audit, the outbox
    assert sent.count("WITH") == postgres  # … and the lines (on PostgreSQL with the total)


def test_a_known_members_order_adds_one_statement(app):
    """A member's second order finds the member after its ignored insert: one SELECT more."""
    api = _setup(app)
    assert api.post(BODY, key="first").status_code == 201
    with _statements(app) as sent:
        answer = api.post(BODY, key="second")
    assert answer.status_code == 201, answer.text
    assert len(sent) == 15 - 2 * _postgres(app)


def test_a_replay_reads_and_writes_nothing_more(app):
    """A retry with the same key: BEGIN IMMEDIATE (SQLite), the token, the leader with the key's
    order, the order (its fingerprint checked), the answer (read back), a COMMIT."""
    api = _setup(app)
    assert api.post(BODY, key="again").status_code == 201
    with _statements(app) as sent:
        answer = api.post(BODY, key="again")
    assert answer.status_code == 200, answer.text
    assert "INSERT" not in sent and "UPDATE" not in sent
    assert len(sent) == 6 - _postgres(app)
