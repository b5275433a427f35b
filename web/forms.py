"""One validation layer for the pages' forms (WTForms): what a form field accepts is what the
database can store, so that no posted value reaches PostgreSQL unchecked.

- `WholeNumber`: ASCII digits only (no `²`, no `١٢`, no sign), at most `maximum` (by default the
  largest 32-bit integer a PostgreSQL `integer` column holds).
- `Digits`: a code typed on any keyboard, full-width digits read as ASCII (NFKC).
- `Text`: no control characters (NUL above all), no lone surrogates, at most `max_length`
  characters (the column's width).

`parse(form_class, formdata)` validates a whole form and raises `InvalidForm` naming the first
field at fault; the views turn it into their own 422 page. CSRF is checked app-wide
(`web.security`), so these forms carry no token of their own.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any, TypeVar

from werkzeug.datastructures import MultiDict
from wtforms import Field, Form, IntegerField, StringField
from wtforms.validators import ValidationError

INT32_MAX = 2**31 - 1

F = TypeVar("F", bound=Form)


class InvalidForm(ValueError):
    """A posted form with a field the layer refused: `field` names it, `message` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class WholeNumber(IntegerField):
    """A whole number written in ASCII digits, from `minimum` to `maximum`; empty is None."""

    def __init__(self, *args: Any, minimum: int = 0, maximum: int = INT32_MAX, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None
        if not valuelist:
            return
        raw = str(valuelist[0]).strip()
        if raw == "":
            return
        if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(self.maximum)):
            raise ValueError("must be a whole number")
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"must be from {self.minimum} to {self.maximum}")
        self.data = value


def _storable(text: str) -> str | None:
    """Why `text` cannot be stored as it is, or None."""
    for ch in text:
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return "contains an invalid character"
        if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t":
            return "contains a control character"
    return None


class Text(StringField):
    """Text a column of `max_length` characters can hold: no control character, no lone
    surrogate; surrounding white space is dropped."""

    def __init__(self, *args: Any, max_length: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_length = max_length

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = ""
        if not valuelist:
            return
        text = str(valuelist[0]).strip()
        why = _storable(text)
        if why is not None:
            raise ValueError(why)
        if len(text) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        self.data = text


class Digits(StringField):
    """A code or number as typed on any keyboard: full-width digits (a Chinese keyboard) read as
    ASCII (NFKC) and white space dropped; no control character; at most `max_length`
    characters. Whether it is all digits is the caller's check (a refused code says so)."""

    def __init__(self, *args: Any, max_length: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_length = max_length

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = ""
        if not valuelist:
            return
        text = "".join(unicodedata.normalize("NFKC", str(valuelist[0])).split())
        why = _storable(text)
        if why is not None:
            raise ValueError(why)
        if len(text) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        self.data = text


def required(form: Form, field: Field) -> None:
    """A validator: the field must have a value."""
    if field.data is None or field.data == "":
        raise ValidationError("is required")


def parse(form_class: type[F], formdata: Any) -> F:
    """The form filled from `formdata` (request.form), or InvalidForm naming the first field the
    layer refused."""
    if not hasattr(formdata, "getlist"):
        formdata = MultiDict(formdata)
    form = form_class(formdata)
    if not form.validate():
        name, errors = next(iter(form.errors.items()))
        raise InvalidForm(name, str(errors[0]))
    return form


def parse_id(raw: str) -> int:
    """A database id written in ASCII digits (a field name's suffix, say), or InvalidForm."""
    form = parse(form_of({"id": WholeNumber(validators=[required], minimum=1)}), {"id": raw})
    return form["id"].data


def form_of(fields: Mapping[str, Field]) -> type[Form]:
    """A form class with these fields, for forms whose field names depend on the page (one count
    per SKU of the day)."""
    return type("PageForm", (Form,), dict(fields))
