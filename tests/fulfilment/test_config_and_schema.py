"""Configuration from GROUPBUY_* variables, and migrations that match the models on both backends."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fulfilment.core.config import ConfigError, load_settings
from fulfilment.core.migrate import current_revision
from fulfilment.core.models import Base


def test_missing_secret_outside_dev_is_an_error():
    """Production start without GROUPBUY_SECRET_KEY fails loudly instead of inventing a key."""
    with pytest.raises(ConfigError, match="GROUPBUY_SECRET_KEY"):
        load_settings({})


def test_dev_mode_runs_without_a_secret_and_defaults_to_sqlite_in_instance():
    """GROUPBUY_ENV=dev needs no secret; the database defaults to a SQLite file under instance/."""
    settings = load_settings({"GROUPBUY_ENV": "dev"})
    assert settings.database_url.startswith("sqlite:///") and "instance" in settings.database_url
    assert settings.secret_key  # a fixed development key, the same in every process
    assert load_settings({"GROUPBUY_ENV": "dev"}).secret_key == settings.secret_key


def test_settings_come_from_the_environment():
    """GROUPBUY_DATABASE_URL and GROUPBUY_SECRET_KEY are taken as given."""
    s = load_settings(
        {"GROUPBUY_DATABASE_URL": "postgresql+psycopg://x@h/db", "GROUPBUY_SECRET_KEY": "k"}
    )
    assert (s.database_url, s.secret_key, s.env) == (
        "postgresql+psycopg://x@h/db",
        "k",
        "production",
    )


def test_migrations_build_exactly_the_models(engine):
    """`db upgrade` on an empty database gives the schema the models describe (SQLite and PostgreSQL)."""
    assert current_revision(engine) is not None
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_the_after_sales_window_comes_from_the_environment():
    """GROUPBUY_AFTER_SALES_DAYS sets the commission's window (7 days by default); anything
    but a whole number of days up to 365 is a configuration error naming the variable."""
    assert load_settings({"GROUPBUY_ENV": "dev"}).after_sales_days == 7
    env = {"GROUPBUY_ENV": "dev", "GROUPBUY_AFTER_SALES_DAYS": "15"}
    assert load_settings(env).after_sales_days == 15
    for bad in ("-1", "7.5", "seven", "366", "١٢"):
        with pytest.raises(ConfigError, match="GROUPBUY_AFTER_SALES_DAYS"):
            load_settings({"GROUPBUY_ENV": "dev", "GROUPBUY_AFTER_SALES_DAYS": bad})
