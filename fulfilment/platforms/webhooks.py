"""A shop platform's webhook endpoints: registered by the admin (`groupbuy api-client webhook`)
or by the platform itself through the API; each has its own signing secret, shown once."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import utcnow
from fulfilment.events.delivery import drop_pending, new_secret
from fulfilment.events.models import ALL_EVENTS, EventType, WebhookEndpoint

from .clients import ApiClient

URL_MAX = 2000
ENDPOINTS_PER_CLIENT = 10
EVENT_NAMES = [t.value for t in EventType]


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host given as one stands for, or None for a name. IPv4 also in the forms
    the resolver still reads (inet_aton): one number, octal or hex parts, missing parts, so
    `2130706433`, `0x7f.1` and `127.1` are all 127.0.0.1, and `0` is 0.0.0.0."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _private_host(host: str) -> bool:
    """A loopback, private, link-local or unspecified address given as such (or localhost)."""
    host = host.lower().rstrip(".")
    if host in ("localhost", "localhost.localdomain"):
        return True
    address = _address(host)
    if address is None:
        return False  # a name: resolved when sent (see docs/api.md on internal addresses)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
    )


def check_url(record: str, url: object, *, allow_private: bool = True) -> str:
    """An absolute http(s) URL with a host, printable, at most 2,000 characters; with
    `allow_private` False (a platform registering through the API) not an internal address."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(record, "url", "a URL is required")
    url = url.strip()
    if len(url) > URL_MAX:
        raise InvalidInput(record, "url", f"must be at most {URL_MAX} characters", limit=URL_MAX)
    if any(ord(c) <= 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in url):
        raise InvalidInput(record, "url", "must not hold spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput(record, "url", "is not a URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(record, "url", "must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput(record, "url", "must name a host")
    if parts.username or parts.password:
        raise InvalidInput(record, "url", "must not carry a user name or password")
    if port == 0:
        raise InvalidInput(record, "url", "the port must be 1 to 65535")
    if not allow_private and _private_host(parts.hostname):
        raise InvalidInput(
            record, "url", "must not point to a loopback, private or link-local address"
        )
    return url


def parse_event_types(record: str, events: Iterable[object] | None) -> str:
    """The stored subscription: "*" for all (None or empty), else ",a,b," of known types."""
    if events is None:
        return ALL_EVENTS
    chosen: list[str] = []
    for n, name in enumerate(events):
        if not isinstance(name, str) or name not in EVENT_NAMES:
            raise InvalidInput(
                record,
                f"events[{n}]" if not isinstance(name, str) else "events",
                f"{str(name)[:40]!r} is not an event type; known: {', '.join(EVENT_NAMES)}",
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        return ALL_EVENTS
    if len(chosen) == len(EVENT_NAMES):
        return ALL_EVENTS
    return "," + ",".join(sorted(chosen)) + ","


def add_endpoint(
    session: Session,
    *,
    client: ApiClient,
    url: str,
    events: Iterable[object] | None = None,
    actor: str = "system",
    now: datetime | None = None,
    allow_private: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint of the client and its secret (`whsec_…`), which the caller shows once.
    The API passes `allow_private=False`: a platform may not aim our requests at internal
    addresses; the admin on the command line may (a receiver on the same host)."""
    record = f"webhook endpoint of {client.name}"
    url = check_url(record, url, allow_private=allow_private)
    subscribed = parse_event_types(record, events)
    # a client's registrations take its row in turn, so that the count is the truth when two
    # arrive at once (FOR NO KEY UPDATE: its orders and endpoints keep their foreign keys)
    session.execute(
        select(ApiClient.id).where(ApiClient.id == client.id).with_for_update(key_share=True)
    )
    count = len(list_endpoints(session, client=client))
    if count >= ENDPOINTS_PER_CLIENT:
        raise InvalidInput(
            record,
            "url",
            f"a client may have at most {ENDPOINTS_PER_CLIENT} endpoints",
            limit=ENDPOINTS_PER_CLIENT,
        )
    secret = new_secret()
    endpoint = WebhookEndpoint(
        api_client_id=client.id,
        scope=client.scope,
        url=url,
        secret=secret,
        events=subscribed,
        active=True,
        created_at=now or utcnow(),
        failures=0,
    )
    session.add(endpoint)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="webhook_endpoint.added",
        entity="webhook_endpoint",
        entity_id=endpoint.id,
        after={"client": client.name, "url": url, "events": subscribed},
    )
    return endpoint, secret


def list_endpoints(session: Session, *, client: ApiClient) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.api_client_id == client.id, WebhookEndpoint.active)
            .order_by(WebhookEndpoint.id)
        )
    )


def remove_endpoint(
    session: Session, *, client: ApiClient, endpoint_id: int, actor: str = "system"
) -> WebhookEndpoint:
    """The endpoint hears nothing more; its undelivered messages are dropped. Another client's
    endpoint is NotFound, and so is one removed already (two removals at once: the second
    waits on the row, then finds it removed)."""
    endpoint = session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.api_client_id == client.id,
            WebhookEndpoint.active,
        )
        .with_for_update()
    ).first()
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    endpoint.active = False
    session.flush()
    dropped = drop_pending(session, endpoint_id=endpoint.id)
    record_change(
        session,
        actor=actor,
        action="webhook_endpoint.removed",
        entity="webhook_endpoint",
        entity_id=endpoint.id,
        before={"active": True},
        after={"active": False, "messages_dropped": dropped},
    )
    return endpoint


def get_client_by_name(session: Session, name: str) -> ApiClient:
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if client is None:
        raise NotFound(f"API client {name!r} does not exist")
    return client
