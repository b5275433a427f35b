"""The errors a fulfilment service raises; views and the CLI map them to codes and messages."""

from __future__ import annotations


class FulfilmentError(Exception):
    """Base of every error the services raise on purpose."""

    http_status = 400


class NotFound(FulfilmentError):
    http_status = 404


class Forbidden(FulfilmentError):
    http_status = 403


class SoldOut(FulfilmentError):
    """The deal has fewer units left than the order asks for."""

    http_status = 409

    def __init__(self, sku: str, requested: int, left: int | None = None) -> None:
        self.sku, self.requested, self.left = sku, requested, left
        tail = f" ({left} left)" if left is not None else ""
        super().__init__(f"sold out: {sku} cannot supply {requested} more{tail}")


class CutoffNotReached(FulfilmentError):
    """A cutoff was asked for before the region's deadline for that delivery date."""

    http_status = 409


class InvalidInput(FulfilmentError):
    """Bad input, naming the record and the field at fault.

    The fields are structured, so that a view never parses the message back: `limit` is the
    bound the value broke, when a bound is the cause (a length, a largest quantity); `line` is the
    1-based line of the order (or row of the file) at fault, when the record has lines; `value` is
    the offending value where it is short and safe to show (a SKU, never a name or phone).
    str() stays the readable `record: field: message`.
    """

    http_status = 422

    def __init__(
        self,
        record: str,
        field: str,
        message: str,
        *,
        limit: int | None = None,
        line: int | None = None,
        value: str | None = None,
    ) -> None:
        self.record, self.field, self.message = record, field, message
        self.limit, self.line, self.value = limit, line, value
        super().__init__(f"{record}: {field}: {message}")


class WaveClosed(FulfilmentError):
    """The wave is already cut off: the change asked for can no longer be made."""

    http_status = 409


class CutoffPassed(WaveClosed):
    """The wave's deadline (`cutoff_due_at`) has passed, whether or not the cutoff job has run."""


class AlreadyCancelled(FulfilmentError):
    """The order was cancelled before: there is nothing left to cancel."""

    http_status = 409


class IdempotencyConflict(FulfilmentError):
    """An idempotency key already used, in the same scope, for a different request."""

    http_status = 409

    def __init__(self, key: str, order_id: int) -> None:
        self.key, self.order_id = key, order_id
        super().__init__(
            f"idempotency key {key!r} was already used for another request (order {order_id})"
        )
