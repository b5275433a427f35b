"""The Flask app on a migrated database, with the flaskr-style app, client and runner fixtures."""

import pytest

from web import create_app


@pytest.fixture
def app(db_url, tmp_path):
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": db_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
        }
    )
    yield app
    app.extensions["groupbuy"]["engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
