"""Network printers spoken to raw over TCP (port 9100, "AppSocket"/"JetDirect", which the
warehouse's ESC/POS printers listen on): an address `tcp://HOST[:PORT]`, and a document sent
whole, or an error saying how far it got."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fulfilment.core.errors import FulfilmentError, InvalidInput

DEFAULT_PORT = 9100
CONNECT_TIMEOUT_S = 5.0
# How long the printer may take nothing (paper out, cover open) before the job is given up.
SEND_TIMEOUT_S = 30.0
# After the last byte: how long to read what the printer says (a status it sends back) before
# closing. Closing with unread bytes would reset the connection and could drop the job's tail.
DRAIN_S = 1.0


@dataclass(frozen=True, slots=True)
class PrinterAddress:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


class PrinterUnreachable(FulfilmentError):
    """The printer refused or did not answer, or the connection broke: `sent` says how many
    bytes it had been given (0: nothing printed)."""

    http_status = 502

    def __init__(self, address: PrinterAddress, sent: int, total: int, reason: str) -> None:
        self.address, self.sent, self.total = address, sent, total
        if sent == 0:
            message = f"printer {address}: {reason}; nothing was sent"
        else:
            message = (
                f"printer {address}: {reason} after {sent} of {total} bytes;"
                " it may have printed part of the document: check it before printing again"
            )
        super().__init__(message)


def parse_printer(value: str) -> PrinterAddress:
    """`tcp://HOST[:PORT]` (an IPv6 host in brackets), port 9100 unless given."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as err:
        raise InvalidInput("printer", "address", f"{value!r}: {err}") from None
    if parts.scheme != "tcp" or not parts.hostname or parts.path not in ("", "/"):
        raise InvalidInput(
            "printer", "address", f"{value!r} is not tcp://HOST[:PORT] (for example tcp://10.0.0.7)"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput("printer", "address", f"{value!r} has more than tcp://HOST[:PORT]")
    return PrinterAddress(parts.hostname, port if port is not None else DEFAULT_PORT)


def send_to_printer(
    address: PrinterAddress,
    content: bytes,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    send_timeout_s: float = SEND_TIMEOUT_S,
) -> int:
    """Connect, send every byte, close; the number of bytes sent. A printer that refuses,
    does not answer or breaks off is PrinterUnreachable naming it."""
    try:
        sock = socket.create_connection((address.host, address.port), timeout=connect_timeout_s)
    except OSError as err:
        raise PrinterUnreachable(address, 0, len(content), _reason(err)) from None
    sent = 0
    with sock:
        sock.settimeout(send_timeout_s)
        view = memoryview(content)
        try:
            while sent < len(content):
                sent += sock.send(view[sent:])
            sock.shutdown(socket.SHUT_WR)
        except OSError as err:
            raise PrinterUnreachable(address, sent, len(content), _reason(err)) from None
        _drain(sock)
    return sent


def _drain(sock: socket.socket) -> None:
    """Read (and drop) what the printer sends until it closes, for at most DRAIN_S."""
    deadline = time.monotonic() + DRAIN_S
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(4096):
                return
    except OSError:  # a timeout, or a printer that resets once it has the job: all was sent
        return


def _reason(err: OSError) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (is it on, and listening on this port?)"
    if isinstance(err, TimeoutError):
        return "no answer (timed out)"
    if isinstance(err, socket.gaierror):
        return f"unknown host ({err.strerror})"
    return err.strerror or type(err).__name__
