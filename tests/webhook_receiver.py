"""A shop platform's webhook receiver for tests and the events benchmark: a local HTTP server in a
thread that verifies each Standard Webhooks signature on its own (not with our signing code),
records what it accepted, deduplicates by webhook-id, and can be told to fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, headers, body: bytes, *, tolerance_s: int = 300) -> bool:
    """The receiver's check, from the spec: HMAC-SHA256 of `id.timestamp.body` under the base64
    decoded secret, compared in constant time with each `v1,` signature; a fresh timestamp."""
    msg_id, stamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not stamp or not stamp.isdigit():
        return False
    if abs(time.time() - int(stamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    return any(
        hmac.compare_digest(expected, sig.partition(",")[2])
        for sig in signatures.split()
        if sig.startswith("v1,")
    )


@dataclass
class Received:
    id: str
    type: str
    order_id: int | None
    data: dict
    at: float  # time.time() when accepted


@dataclass
class Receiver:
    """Secrets by path (one path per endpoint). `fail_times[event id]` (or `["*"]` for every
    event): answer 500 that many times first; `down`: refuse everything with 503; `bad_signatures` counts refusals."""

    secrets: dict[str, str] = field(default_factory=dict)
    accepted: list[Received] = field(default_factory=list)
    duplicates: int = 0
    bad_signatures: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)
    down: bool = False
    log_by_path: dict[str, list[Received]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status = receiver.handle(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # a 0.05 s poll: close() (shutdown) waits for it, 0.5 s by default
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def handle(self, path: str, headers, body: bytes) -> int:
        secret = self.secrets.get(path)
        if self.down:
            return 503
        if secret is None or not verify(secret, headers, body):
            with self.lock:
                self.bad_signatures += 1
            return 401
        msg_id = headers["webhook-id"]
        with self.lock:
            self.attempts[msg_id] = self.attempts.get(msg_id, 0) + 1
            failing = self.fail_times.get(msg_id, self.fail_times.get("*", 0))
            if failing >= self.attempts[msg_id]:
                return 500
            if msg_id in self.seen:
                self.duplicates += 1
                return 200  # already have it: acknowledged, not processed twice
            self.seen.add(msg_id)
            event = json.loads(body)
            assert event["id"] == msg_id
            got = Received(
                msg_id, event["type"], event["data"].get("order_id"), event["data"], time.time()
            )
            self.accepted.append(got)
            self.log_by_path.setdefault(path, []).append(got)
        return 204

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
