"""The engine and session factory. Commits happen at the edge (a request, a command, a job)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for SQLite or PostgreSQL, set up for this service's locking rules.

    SQLite: foreign keys on, WAL, a busy timeout, and every transaction opened with
    BEGIN IMMEDIATE so that writers queue instead of failing half way (no oversell).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - driver hook
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - driver hook
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block finishes, roll back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(session_or_engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"


# Advisory locks are the whole database's: the name is taken within the schema, so that two
# schemas of one database (a staging copy, the tests' workers) never share one.
_ADVISORY_LOCKS = {
    (shared, wait): text(
        f"SELECT pg{'' if wait else '_try'}_advisory_xact_lock{'_shared' if shared else ''}"
        "(hashtextextended(current_schema() || ':' || :name, 0))"
    )
    for shared in (False, True)
    for wait in (False, True)
}


def advisory_xact_lock(
    session: Session, name: str, *, shared: bool = False, wait: bool = True
) -> bool:
    """Take the named transaction-scoped advisory lock on PostgreSQL (released at the commit or
    rollback); a no-op that returns True on SQLite, which serialises its writers already.
    With `wait=False`, returns at once whether the lock was taken."""
    if not is_postgres(session):
        return True
    taken = session.execute(_ADVISORY_LOCKS[shared, wait], {"name": name}).scalar()
    return True if wait else bool(taken)


def insert_ignore(
    session: Session,
    table,
    values: dict,
    conflict_columns: list[str] | None,
    *,
    returning: Any = None,
) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, on PostgreSQL and SQLite alike (races resolve to one row).

    conflict_columns None: any unique constraint. With `returning` (a column), the value of the
    inserted row, or None when a conflict left the table as it was."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values)
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(dialect)
    stmt = stmt.on_conflict_do_nothing(index_elements=conflict_columns)
    if returning is None:
        session.execute(stmt)
        return None
    return session.execute(stmt.returning(returning)).scalar()


def fetch_rows(session: Session, statement) -> list[tuple]:
    """The rows of a SELECT as plain tuples from the driver, in the session's transaction: for
    reads of 100,000 rows and more, where building row objects would cost more than the query.
    The statement's values are rendered inline (numbers and plain strings only)."""
    sql = str(
        statement.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
    )
    raw = session.connection().connection.driver_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def insert_rows(session: Session, table, columns: list[str], rows: list[tuple]) -> None:
    """Many rows into `table` in the session's transaction, straight to the driver: COPY on
    PostgreSQL, one executemany of plain tuples on SQLite (100,000 rows in a fraction of a
    second, where an ORM insert would build a parameter dict per row)."""
    if not rows:
        return
    raw = session.connection().connection.driver_connection
    names = ", ".join(columns)
    if is_postgres(session):
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    raw.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)  # type: ignore[union-attr]
