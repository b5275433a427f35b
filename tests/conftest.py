"""Shared fixtures: databases on SQLite and (when configured) PostgreSQL, and the Flask app.

PostgreSQL tests use the server named by GROUPBUY_TEST_POSTGRES_URL (by default the local one,
postgresql+psycopg://postgres@127.0.0.1:5432/test), in a schema of their own that is dropped at the
end. Redis tests use GROUPBUY_TEST_REDIS_URL (by default redis://127.0.0.1:6379/0). When a server
does not answer, its tests skip with the reason; under CI=true they fail instead. The run ends
with one line naming what was skipped and why.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from fulfilment.core.db import make_engine, make_session_factory
from fulfilment.core.migrate import upgrade
from fulfilment.core.models import Base

POSTGRES_URL = os.environ.get(
    "GROUPBUY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GROUPBUY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests need a server: {reason}")


def _redis_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"Redis is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Redis tests need a server: {reason}")


@pytest.fixture(scope="session", autouse=True)
def _each_password_hashed_once():
    """scrypt costs 0.1 s of CPU a hash, on purpose: seven accounts in each portal world and a
    sign-in per test made it 60% of the web tests' time. In the tests' own processes a password
    hashed again gets the hash it got the first time (as if its random salt came round again),
    and a hash and password checked again get the answer they got the first time: both are pure
    functions of what they are given, still called (and still scrypt) for anything new. Servers
    the tests start in processes of their own (gunicorn) hash every time."""
    from fulfilment.accounts import services

    generate = functools.lru_cache(maxsize=None)(services.generate_password_hash)
    check = functools.lru_cache(maxsize=None)(services.check_password_hash)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "generate_password_hash", generate)
        patch.setattr(services, "check_password_hash", check)
        yield


@pytest.fixture(scope="session", autouse=True)
def _templates_compiled_once():
    """Each app a test creates compiled every template it rendered afresh (a fifth of the web
    tests' time). The apps of one test process share a bytecode cache instead: a template is
    compiled once, by the same Jinja with the same options (every app comes from create_app),
    and compiled again if its source changes (the cache checks it)."""
    from flask import Flask
    from jinja2 import BytecodeCache
    from jinja2.bccache import Bucket

    class InMemory(BytecodeCache):
        def __init__(self) -> None:
            self.codes: dict[str, bytes] = {}

        def load_bytecode(self, bucket: Bucket) -> None:
            if bucket.key in self.codes:
                bucket.bytecode_from_string(self.codes[bucket.key])

        def dump_bytecode(self, bucket: Bucket) -> None:
            self.codes[bucket.key] = bucket.bytecode_to_string()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Flask, "jinja_options", {**Flask.jinja_options, "bytecode_cache": InMemory()})
        yield


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a Redis server that answers; tests keep to keys of their own (a uuid prefix)."""
    try:
        import redis
    except ImportError:
        _redis_unavailable("the redis package is not installed (pip install -e '.[test]')")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as err:
        _redis_unavailable(
            f"cannot reach {REDIS_URL}: {err} (start one: redis-server --daemonize yes "
            f'--bind 127.0.0.1 --port 6379 --save "")'
        )
    return REDIS_URL


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outside pytest's own summary: printed last
def pytest_terminal_summary(terminalreporter):
    """One line naming what was skipped and why, after pytest's own summary of the run."""
    result = yield
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return result
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ").splitlines()[0][:160]
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = "; ".join(f"{n} × {reason}" for reason, n in sorted(reasons.items()))
    terminalreporter.write_line(f"SKIPPED {len(skipped)} tests: {parts}", yellow=True, bold=True)
    return result


@pytest.fixture(scope="session")
def postgres_schema_url():
    """A URL whose connections use a fresh schema, migrated to head; dropped after the session."""
    if not POSTGRES_URL:
        _postgres_unavailable(
            "set GROUPBUY_TEST_POSTGRES_URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    schema = f"gb_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as err:  # noqa: BLE001 - any connection failure means the same here
        admin.dispose()
        _postgres_unavailable(f"cannot reach {POSTGRES_URL}: {type(err).__name__}: {err}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closing folds the WAL back into the file
    return path


def _truncate_all(engine) -> None:
    """Every table emptied and every sequence started again (ids from 1), in one transaction.

    DELETE, children first, not TRUNCATE: TRUNCATE gives each of the ~50 tables new files (0.3 s
    after every PostgreSQL test, empty tables or not) and waits for an autovacuum of any of them
    to be cancelled (deadlock_timeout, 1 s); the DELETEs take 0.05 s."""
    with engine.begin() as conn:
        sequences = conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
        ).scalars()
        statements = [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
        statements += [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
        conn.exec_driver_sql("; ".join(statements))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The URL of an empty, migrated database: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
        yield url
        engine = make_engine(url)
        _truncate_all(engine)
        engine.dispose()


@pytest.fixture
def pg_url(postgres_schema_url):
    """PostgreSQL only (concurrency and locking tests); emptied after the test."""
    yield postgres_schema_url
    engine = make_engine(postgres_schema_url)
    _truncate_all(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def pg_module_url(postgres_schema_url):
    """PostgreSQL for a module's worth of tests sharing one world (the API contract); emptied
    after the module."""
    yield postgres_schema_url
    engine = make_engine(postgres_schema_url)
    _truncate_all(engine)
    engine.dispose()


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return make_session_factory(engine)


@pytest.fixture
def session(sessions):
    s = sessions()
    yield s
    s.rollback()
    s.close()
