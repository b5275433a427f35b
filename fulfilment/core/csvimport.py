"""Reading an uploaded CSV file, for every import (orders, fleet, leaders, products): the
encodings these files come in, the text a cell cannot hold, the error of one row's field, the
refusal of a whole file, and the preview of what a file would write."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulfilment.core.errors import FulfilmentError, InvalidInput


def text_fault(value: str) -> str | None:
    """Why a cell cannot be stored as text (a NUL or another control character but tab, a lone
    surrogate), or None. PostgreSQL refuses NUL outright; SQLite would keep it silently. The
    imports and the admin's services check every text with it."""
    for char in value:
        code = ord(char)
        if code < 0x20 and char != "\t" or code == 0x7F:
            return f"contains the control character U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF:
            return f"contains the lone surrogate U+{code:04X}"
    return None


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: its line in the file (header = 1), the field at fault, a readable message,
    and the bound broken (`limit`) when a bound is the cause, for views that show it their way."""

    line: int
    field: str
    message: str
    limit: int | None = None

    @classmethod
    def of(cls, line: int, err: InvalidInput) -> RowError:
        """The row error for an InvalidInput raised while reading that row."""
        return cls(line, err.field, err.message, err.limit)

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class ImportFailed(FulfilmentError):
    """The file was not imported at all; `errors` says which rows and fields were at fault."""

    http_status = 422

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"nothing imported, {len(errors)} bad row(s): {shown}{more}")


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or GBK, the encodings these exports come in."""
    for encoding in ("utf-8-sig", "gbk"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("file", "encoding", "neither UTF-8 nor GBK")


@dataclass(frozen=True, slots=True)
class PreviewRow:
    """A row that would be written: its line, its code, `add` or `change`, and its values."""

    line: int
    code: str
    action: str
    values: dict[str, str]


@dataclass
class ImportPreview:
    rows: list[PreviewRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(1 for r in self.rows if r.action == "add")

    @property
    def changed(self) -> int:
        return sum(1 for r in self.rows if r.action == "change")
