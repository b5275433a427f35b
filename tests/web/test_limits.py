"""Rate limits when things fail and behind a proxy: a dead limit store never takes the service
down, one API budget per client, a positive Retry-After, ProxyFix, a correct password never
refused, counts shared by every worker process, bogus tokens in their address's bucket, and
pickup-code lookups limited per account."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from portal_factories import PASSWORD, csrf_token, login, make_portal_world, post
from test_api import BODY, _setup

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.db import session_scope
from web import create_app

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app(db_url, tmp_path, **config):
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": db_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
            "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}",
            **config,
        }
    )
    return app


@pytest.fixture
def apps():
    made = []
    yield made
    for app in made:
        app.extensions["groupbuy"]["engine"].dispose()


def _portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


# --- a dead limit store ---------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dead_rate_limit_redis_fails_open_with_a_warning(db_url, tmp_path, apps, caplog):
    """With the limit store's Redis not answering (nothing listens on its port), API requests
    and sign-ins are answered as usual, not 500, and the app logs that limits fell back."""
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    app = _app(db_url, tmp_path, GROUPBUY_REDIS_URL=dead)
    apps.append(app)
    api = _setup(app)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        create_user(s, username="leader1", password=PASSWORD, role=Role.LEADER, leader_code="L1")
    with caplog.at_level(logging.WARNING):
        assert api.get("/api/v1/orders/1").status_code == 404
        assert api.post(BODY).status_code == 201
        client = app.test_client()
        assert login(client, "leader1", "wrong").status_code == 401
        assert login(client, "leader1").status_code == 302
    assert any("rate limit" in r.getMessage().lower() for r in caplog.records)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_limits_survive_their_redis_going_away_mid_run(db_url, tmp_path, apps):
    """A private Redis counts the limits, is stopped, and the app keeps answering (limits in
    memory meanwhile): a client past its limit is still refused, others still served."""
    port = _free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        app = _app(
            db_url,
            tmp_path,
            GROUPBUY_REDIS_URL=f"redis://127.0.0.1:{port}/0",
            API_RATE_LIMIT="3/minute",
        )
        apps.append(app)
        api = _setup(app)
        assert api.get("/api/v1/orders/1").status_code == 404
        assert r.keys("*")  # counted in Redis
    finally:
        server.terminate()
        server.wait(timeout=10)
    codes = [api.get("/api/v1/orders/1").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]  # the fallback in memory still limits
    assert api.get("/api/v1/orders/1", shop="shop-b").status_code == 404


# --- one budget per client, a positive Retry-After -------------------------------------------


def test_one_api_budget_per_client_across_endpoints(db_url, tmp_path, apps):
    """A client's limit is one budget for the whole API, not one per endpoint: three requests to
    three endpoints use it up, the fourth (to a fourth endpoint) is 429."""
    app = _app(db_url, tmp_path, API_RATE_LIMIT="3/minute", RATELIMIT_STORAGE_URI="memory://")
    apps.append(app)
    api = _setup(app)
    codes = [
        api.get("/api/v1/orders/1").status_code,
        api.get("/api/v1/waves/SH/2001-01-01").status_code,
        api.cancel(1).status_code,
        api.post(BODY).status_code,
    ]
    assert codes == [404, 404, 404, 429]
    assert api.get("/api/v1/orders/1", shop="shop-b").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("store", ["memory", "redis"])
def test_every_429_carries_a_positive_retry_after(db_url, tmp_path, apps, store, request):
    """Each 429, from the API and from the login form, says to wait at least a second (the
    limiter's own figure, the time left in a one-second window rounded down, was 0)."""
    app = _app(
        db_url,
        tmp_path,
        API_RATE_LIMIT="1/second",
        GROUPBUY_LOGIN_LIMIT="1 per second",
        RATELIMIT_STORAGE_URI="memory://"
        if store == "memory"
        else request.getfixturevalue("redis_url"),
    )
    apps.append(app)
    api = _setup(app)
    values = []
    for _ in range(40):  # across two seconds: the limiter's figure is 0 late in a window
        answer = api.get("/api/v1/orders/1")
        if answer.status_code == 429:
            values.append(answer.headers["Retry-After"])
        time.sleep(0.05)
    client = app.test_client()
    token = csrf_token(client)
    for _ in range(40):
        answer = client.post("/login", data={"username": "x", "password": "y", "csrf_token": token})
        if answer.status_code == 429:
            values.append(answer.headers["Retry-After"])
        time.sleep(0.05)
    assert len(values) >= 40, values
    assert all(int(v) >= 1 for v in values), values


# --- behind a proxy, and the per-username limit --------------------------------------------


def _wrong_login(client, username, address):
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"username": username, "password": "wrong", "csrf_token": token},
        headers={"X-Forwarded-For": address},
    ).status_code


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_behind_a_proxy_each_client_address_has_its_own_login_bucket(db_url, tmp_path, apps):
    """With GROUPBUY_PROXY_FIX=1 the per-address limit keys on the client's address from the
    proxy's X-Forwarded-For: one address past its limit does not lock out the others."""
    app = _app(
        db_url,
        tmp_path,
        GROUPBUY_PROXY_FIX="1",
        GROUPBUY_LOGIN_LIMIT="2 per minute",
        RATELIMIT_STORAGE_URI="memory://",
    )
    apps.append(app)
    _portal(app)
    client = app.test_client()
    codes = [_wrong_login(client, f"u{n}", "203.0.113.7") for n in range(3)]
    assert codes == [401, 401, 429]
    assert _wrong_login(client, "u9", "198.51.100.4") == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_proxy_fix_a_forged_forwarded_for_changes_nothing(db_url, tmp_path, apps):
    """Without the setting X-Forwarded-For is ignored: forging it does not buy fresh buckets."""
    app = _app(
        db_url, tmp_path, GROUPBUY_LOGIN_LIMIT="2 per minute", RATELIMIT_STORAGE_URI="memory://"
    )
    apps.append(app)
    _portal(app)
    client = app.test_client()
    codes = [_wrong_login(client, f"u{n}", f"203.0.113.{n}") for n in range(3)]
    assert codes == [401, 401, 429]


def test_the_username_limit_never_refuses_the_correct_password(app, client):
    """Past the per-username limit wrong passwords are refused with 429, and the right password
    still signs in (someone guessing cannot lock the leader out); the count starts again."""
    _portal(app)
    app.config["GROUPBUY_LOGIN_USER_LIMIT"] = "3 per minute"
    codes = [login(client, "leader1", "wrong").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert login(client, "leader1").status_code == 302
    other = app.test_client()
    assert login(other, "leader1", "wrong").status_code == 401  # the success reset the count


_WORKER = """
import sys
from portal_factories import login
from web import create_app
app = create_app({"GROUPBUY_ENV": "test", "GROUPBUY_DATABASE_URL": sys.argv[1],
                  "GROUPBUY_INSTANCE_DIR": sys.argv[2], "GROUPBUY_LOGIN_USER_LIMIT": "5 per minute",
                  "GROUPBUY_LOGIN_LIMIT": "100 per minute"})
client = app.test_client()
print(",".join(str(login(client, "leader1", "wrong").status_code) for _ in range(4)))
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_redis_worker_processes_share_the_login_counts(db_url, tmp_path, apps):
    """Two worker processes without Redis (as gunicorn -w 2 runs them) count wrong passwords
    together: eight attempts split four and four pass a limit of five no more."""
    app = _app(db_url, tmp_path)
    apps.append(app)
    _portal(app)
    env_path = f"{ROOT / 'tests'}:{ROOT}"
    answers = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, db_url, str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
            timeout=120,
            check=True,
        )
        answers += done.stdout.strip().splitlines()[-1].split(",")
    assert answers == ["401"] * 5 + ["429"] * 3


# --- bogus tokens, pickup codes ----------------------------------------------------------


def test_bogus_bearer_tokens_share_their_address_bucket(db_url, tmp_path, apps):
    """A fresh invalid token per request buys no fresh bucket: they count against the address."""
    app = _app(db_url, tmp_path, API_RATE_LIMIT="3/minute", RATELIMIT_STORAGE_URI="memory://")
    apps.append(app)
    client = app.test_client()
    codes = [
        client.get(
            "/api/v1/orders/1", headers={"Authorization": f"Bearer gbk_{uuid.uuid4().hex}"}
        ).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pickup_code_lookups_are_limited_per_account(db_url, tmp_path, apps):
    """Guessing codes at the pickup form is limited per signed-in account: past the limit the
    lookup is 429; another account is still served."""
    app = _app(
        db_url,
        tmp_path,
        GROUPBUY_PICKUP_CODE_LIMIT="3 per minute",
        RATELIMIT_STORAGE_URI="memory://",
    )
    apps.append(app)
    _portal(app)
    guesser = app.test_client()
    login(guesser, "leader1")
    codes = [
        post(guesser, "/leader/pickups", {"code": f"0000000{n}"}).status_code for n in range(3)
    ]
    codes.append(
        post(guesser, "/leader/pickups/verify", {"code": "00000009", "scope": "order"}).status_code
    )
    assert codes == [409, 409, 409, 429]
    colleague = app.test_client()
    login(colleague, "staff1")
    assert post(colleague, "/leader/pickups", {"code": "00000001"}).status_code == 409


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_gunicorn_workers_without_redis_count_wrong_passwords_together(db_url, tmp_path, apps):
    """The real thing: gunicorn with three workers and no Redis, eight wrong passwords for one
    username on fresh connections: five are answered 401, then 429 (the limit is five)."""
    import http.cookiejar
    import os
    import re
    import signal
    import urllib.error
    import urllib.parse
    import urllib.request

    app = _app(db_url, tmp_path)
    apps.append(app)
    _portal(app)
    port = _free_port()
    env = {
        **os.environ,
        "GROUPBUY_ENV": "test",
        "GROUPBUY_DATABASE_URL": db_url,
        "GROUPBUY_INSTANCE_DIR": str(tmp_path),
    }
    env.pop("GROUPBUY_REDIS_URL", None)
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-w", "3", "-b", f"127.0.0.1:{port}"]
        + ["--log-level", "warning", "web:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 100  # refused until it listens, then answered once booted
        while True:
            try:
                urllib.request.urlopen(
                    base + "/healthz", timeout=max(1, deadline - time.monotonic())
                )
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        codes = []
        for _ in range(8):
            jar = http.cookiejar.CookieJar()  # a fresh client each time
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            page = opener.open(base + "/login", timeout=10).read().decode()
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            form = {"username": "leader1", "password": "wrong", "csrf_token": token}
            try:
                opener.open(base + "/login", urllib.parse.urlencode(form).encode(), timeout=10)
                codes.append(200)
            except urllib.error.HTTPError as err:
                codes.append(err.code)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # at once: a graceful stop took a second
        server.wait(timeout=10)
    assert codes == [401] * 5 + [429] * 3
