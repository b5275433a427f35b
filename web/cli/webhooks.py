"""`groupbuy webhooks …`: delivering the outbox to the shop platforms (run, worker), and what the
admin sees of it (status, failed) and does (replay)."""

from __future__ import annotations

import os
import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup

from fulfilment.core.db import session_scope
from fulfilment.core.errors import FulfilmentError
from fulfilment.core.models import utcnow
from fulfilment.events.delivery import (
    DEFAULT_QUEUE,
    Courier,
    count_by_state,
    list_failed,
    replay,
    run_with_rq,
    utc_from_text,
)

from .context import ACTOR, ID, app_sessions, fail

webhooks = AppGroup("webhooks", help="Webhooks to the shop platforms: delivery and failures.")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@webhooks.command("run")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=200,
    show_default=True,
    help="Messages claimed per pass.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1_000),
    default=16,
    show_default=True,
    help="Requests in flight.",
)
@click.option("--once", is_flag=True, help="One pass, then stop (for cron or a test).")
def run_command(batch: int, concurrency: int, once: bool) -> None:
    """Deliver the outbox until stopped. With GROUPBUY_REDIS_URL set, the passes are RQ jobs
    for `groupbuy webhooks worker` instead."""
    redis_url = os.environ.get("GROUPBUY_REDIS_URL")
    if redis_url and not once:
        click.echo(f"webhooks: queueing delivery jobs on {DEFAULT_QUEUE}", err=True)
        run_with_rq(
            app_sessions(),
            database_url=current_app.config["GROUPBUY_SETTINGS"].database_url,
            redis_url=redis_url,
            stop=_stop_on_signals(),
        )
        return
    courier = Courier(app_sessions(), batch=batch, concurrency=concurrency)
    try:
        if once:
            click.echo(f"webhooks: {courier.deliver_once()} sent")
            return
        click.echo("webhooks: delivering (Ctrl-C stops)", err=True)
        courier.run(stop=_stop_on_signals())
    finally:
        courier.close()


@webhooks.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker_command(burst: bool) -> None:
    """An RQ worker for the delivery jobs (needs GROUPBUY_REDIS_URL)."""
    from fulfilment.night.workers import run_worker

    try:
        run_worker(burst=burst, queue_name=DEFAULT_QUEUE)
    except FulfilmentError as err:
        fail(err)


@webhooks.command("status")
def status_command() -> None:
    """How many messages are pending, delivered, failed, dropped."""
    with session_scope(app_sessions()) as session:
        counts = count_by_state(session)
    for state in ("pending", "delivered", "failed", "dropped"):
        click.echo(f"{state}\t{counts.get(state, 0)}")


@webhooks.command("failed")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
def failed_command(limit: int) -> None:
    """Messages retried for the whole window without a 2xx: the newest first."""
    with session_scope(app_sessions()) as session:
        rows = list_failed(session, limit=limit)
    if not rows:
        click.echo("No failed webhook messages.")
        return
    click.echo("id\tendpoint\tevent\torder\tcreated\tattempts\tlast answer")
    for m in rows:
        answer = f"HTTP {m.last_status}" if m.last_status else (m.last_error or "")
        click.echo(
            f"evt_{m.id}\t{m.endpoint_id} {m.url}\t{m.event_type}\t{m.order_id or ''}\t"
            f"{m.created_at.isoformat()}\t{m.attempts}\t{answer}"
        )


@webhooks.command("replay")
@click.option("--since", "since_text", required=True, help="ISO 8601 time (UTC if no zone).")
@click.option("--endpoint", "endpoint_id", type=ID, default=None, help="Only this endpoint.")
@click.option("--actor", type=ACTOR, default="system", show_default=True, help="For the audit log.")
def replay_command(since_text: str, endpoint_id: int | None, actor: str) -> None:
    """Send again every message written since T (delivered or failed), same webhook-id."""
    try:
        since = utc_from_text(since_text)
    except ValueError:
        fail(f"--since: {since_text!r} is not an ISO 8601 time within the calendar in UTC")
    try:
        with session_scope(app_sessions()) as session:
            n = replay(session, since=since, now=utcnow(), actor=actor, endpoint_id=endpoint_id)
    except FulfilmentError as err:
        fail(err)
    click.echo(f"{n} messages queued again.")


COMMANDS = (webhooks,)
