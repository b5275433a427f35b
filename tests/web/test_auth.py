"""Sign-in: one message for any wrong login, a fresh session at login, logout that ends it,
CSRF on every form, the login rate limit (memory and Redis), cookie flags, security headers."""

import re
import uuid

import pytest
from portal_factories import PASSWORD, csrf_token, login, make_portal_world
from sqlalchemy import select

from fulfilment.accounts.models import LoginSession
from fulfilment.core.db import session_scope
from web import create_app


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


def test_wrong_user_and_wrong_password_get_the_same_answer(client, portal):
    """A wrong username and a wrong password give the same status and message."""
    nobody = login(client, "nobody", PASSWORD)
    wrong = login(client, "leader1", "not the password")
    assert nobody.status_code == wrong.status_code == 401
    alert = re.compile(r'<p class="error" role="alert">([^<]+)</p>')
    assert alert.search(nobody.text).group(1) == alert.search(wrong.text).group(1)


def test_login_starts_a_fresh_session_and_logout_ends_it(app, client, portal):
    """Each login gets a new session id; after logout the old cookie no longer signs anyone in."""
    assert login(client, "leader1").status_code == 302
    assert client.get("/leader/today").status_code == 200
    cookie = client.get_cookie("session").value
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        first = s.scalars(select(LoginSession.token)).all()
    token = csrf_token(client, "/leader/today")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/leader/today").status_code == 302  # signed out

    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/leader/today").status_code == 302  # the copied cookie is dead too
    login(client, "leader1")
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        tokens = s.scalars(select(LoginSession.token)).all()
        ended = s.scalars(select(LoginSession).where(LoginSession.ended_at.is_not(None))).all()
    assert len(tokens) == 2 and len(set(tokens)) == 2 and first[0] in tokens
    assert len(ended) == 1


def test_a_post_without_the_csrf_token_is_refused(client, portal):
    """Login and portal forms refuse a POST without the CSRF token and change nothing."""
    assert (
        client.post("/login", data={"username": "leader1", "password": PASSWORD}).status_code == 400
    )
    login(client, "leader1")
    refused = client.post("/leader/pickups/verify", data={"code": "12345678", "scope": "order"})
    assert refused.status_code == 400
    assert client.post("/logout").status_code == 400
    assert client.get("/leader/today").status_code == 200  # still signed in


def test_next_only_goes_to_a_path_on_this_site(client, portal):
    """After login, ?next= leads to a local path, never to another host."""
    token = csrf_token(client)
    evil = client.post(
        "/login",
        data={
            "username": "leader1",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    assert evil.headers["Location"] == "/leader/today"


def test_login_is_throttled(app, client, portal):
    """After the per-username limit, further wrong passwords answer 429; the right one still
    signs in (tests/web/test_limits.py has the rest of the limits' rules)."""
    app.config["GROUPBUY_LOGIN_USER_LIMIT"] = "3 per minute"
    for _ in range(3):
        assert login(client, "leader1", "wrong").status_code == 401
    assert login(client, "leader1", "wrong").status_code == 429
    assert login(client, "leader1").status_code == 302


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_login_limit_counts_in_redis_when_configured(db_url, tmp_path, redis_url):
    """With GROUPBUY_REDIS_URL the limit is kept in Redis (shared by every worker process)."""
    import redis

    prefix = f"gbtest-{uuid.uuid4().hex}"
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": db_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "GROUPBUY_REDIS_URL": redis_url,
            "RATELIMIT_KEY_PREFIX": prefix,
            "GROUPBUY_LOGIN_LIMIT": "2 per minute",
        }
    )
    client = app.test_client()
    codes = [login(client, "nobody", "x").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"*{prefix}*"))
    assert keys
    r.delete(*keys)
    app.extensions["groupbuy"]["engine"].dispose()


def test_cookies_and_security_headers(app, client, portal):
    """The session cookie is HttpOnly and SameSite=Lax; pages carry CSP, nosniff, frame-ancestors."""
    response = login(client, "leader1")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/leader/today")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_secure_cookie_with_https(db_url, tmp_path):
    """GROUPBUY_HTTPS=1 marks the session cookie Secure."""
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": db_url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "GROUPBUY_HTTPS": "1",
        }
    )
    client = app.test_client()
    response = client.get("/login")
    assert "Secure" in response.headers["Set-Cookie"]
    app.extensions["groupbuy"]["engine"].dispose()


def test_any_text_in_the_login_form_is_a_wrong_login_never_a_server_error(app, portal):
    """Hypothesis fills the login form with any text (NUL and other control characters, every
    plane of Unicode, long strings): the answer is the wrong-login page, never a 5xx, on
    PostgreSQL too."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    app.config["GROUPBUY_LOGIN_LIMIT"] = "100000 per minute"
    app.config["GROUPBUY_LOGIN_USER_LIMIT"] = "100000 per minute"
    client = app.test_client()
    token = csrf_token(client)
    text = st.one_of(
        st.text(max_size=80),
        st.text(st.sampled_from(["\x00", "\x1b", "\x7f", "a", "界", " "]), max_size=10),
        st.text(min_size=1000, max_size=3000),
    )

    @given(username=text, password=text)
    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def attempt(username, password):
        answer = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )
        assert answer.status_code == 401, (username, password)

    attempt()
