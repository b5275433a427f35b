"""Debian's Chromium through Playwright, for the browser tests (never a downloaded browser)."""

import contextlib
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_or_skip():
    """Playwright's sync API, or a skip naming what is missing (a failure under CI=true)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[test]')"
    if reason is None and not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it)"
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests are required under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return sync_playwright


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_by_gunicorn(env: dict[str, str], *, workers: int = 2):
    """The app (`web:create_app()`) served by gunicorn on a free port of 127.0.0.1 with these
    GROUPBUY_* settings, as an operator serves it; yields its base URL, stops it after."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    port = _free_port()
    environ = {**os.environ, **env}
    environ.pop("GROUPBUY_REDIS_URL", None)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "web:create_app()",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Refused until gunicorn listens; then answered once a worker has booted: each try
        # waits for its answer (a 1 s timeout gave up on a booting worker and slept a second).
        deadline = time.monotonic() + 100
        while True:
            try:
                urllib.request.urlopen(
                    base + "/healthz", timeout=max(1, deadline - time.monotonic())
                )
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(server.stdout.read().decode()) from None  # type: ignore[union-attr]
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        # the whole group at once: a graceful stop of its workers took a second, and proves
        # nothing here (the test is over; PostgreSQL ends their sessions)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
