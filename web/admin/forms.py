"""The admin's forms, on the app's WTForms layer (`web.forms`): each field accepts only what its
column stores; the services check the rest (a time zone, a point within the region, a window
that opens before it closes, a unique code). CSRF is checked app-wide (`web.security`).

Labels are translated lazily; `HINTS` says, in the user's language, what each field takes, for
the error shown beside it (the services' own messages are English details).
"""

from __future__ import annotations

import math
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, Form, PasswordField, SelectField

from fulfilment.commission.models import BPS_MAX
from web.forms import Text, WholeNumber, required


class Parsed(Text):
    """Text read into a value by `parse`: empty is None; text that `parse` refuses (ValueError,
    the field's error) is None too."""

    data: Any  # the parsed value (None when empty or refused)

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        if self.data == "":
            self.data = None
            return
        try:
            value = self.parse(self.data)
        except ValueError:
            self.data = None
            raise
        self.data = value


class Coordinate(Parsed):
    """A latitude or longitude in decimal degrees, within ±`limit`."""

    def __init__(self, *args: Any, limit: float, **kwargs: Any):
        super().__init__(*args, max_length=20, **kwargs)
        self.limit = limit

    def parse(self, text: str) -> float:
        try:
            value = float(text) if text.isascii() else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not -self.limit <= value <= self.limit:
            raise ValueError(f"must be a number from -{self.limit:g} to {self.limit:g}")
        return value

    def _value(self) -> str:
        return "" if self.data in (None, "") else f"{self.data}"


class Clock(Parsed):
    """A wall-clock time HH:MM (no offset)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, max_length=8, **kwargs)

    def parse(self, text: str) -> time:
        try:
            moment = time.fromisoformat(text)
        except ValueError:
            raise ValueError("must be a time HH:MM") from None
        if moment.tzinfo is not None:
            raise ValueError("must be a time HH:MM without an offset")
        return moment

    def _value(self) -> str:
        return self.data.strftime("%H:%M") if isinstance(self.data, time) else (self.data or "")


class Money(Parsed):
    """An amount in yuan with at most two decimals (12.50), held as integer cents."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, max_length=12, **kwargs)

    def parse(self, text: str) -> int:
        try:
            amount = Decimal(text) if text.isascii() else Decimal("NaN")
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            raise ValueError("must be an amount in yuan with at most two decimals")
        if amount > 1_000_000:
            raise ValueError("must be at most 1,000,000 yuan")
        return int(amount * 100)

    def _value(self) -> str:
        if isinstance(self.data, int):
            return f"{self.data // 100}.{self.data % 100:02d}"
        return self.data or ""


class Decimal3(Text):
    """A number with a few decimals, kept as the text the fleet file would hold."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, max_length=16, **kwargs)


def _zones() -> list[tuple[str, Any]]:
    return [("ambient", _l("Ambient")), ("chilled", _l("Chilled")), ("frozen", _l("Frozen"))]


class RegionForm(Form):
    code = Text(_l("Code"), max_length=32, validators=[required])
    name = Text(_l("Name"), max_length=100, validators=[required])
    tz = Text(_l("Time zone"), max_length=64, validators=[required], default="Asia/Shanghai")
    cutoff_time = Clock(_l("Cutoff time"), validators=[required], default=time(23, 0))
    delivery_offset_days = WholeNumber(
        _l("Delivery days after the cutoff"), maximum=7, validators=[required], default=1
    )
    lat = Coordinate(_l("Latitude"), limit=90, validators=[required])
    lon = Coordinate(_l("Longitude"), limit=180, validators=[required])
    radius_km = WholeNumber(_l("Radius (km)"), minimum=1, maximum=500, validators=[required])


class WarehouseForm(Form):
    region = SelectField(_l("Region"), validators=[required])
    code = Text(_l("Code"), max_length=32, validators=[required])
    name = Text(_l("Name"), max_length=100, validators=[required])
    lat = Coordinate(_l("Latitude"), limit=90, validators=[required])
    lon = Coordinate(_l("Longitude"), limit=180, validators=[required])


class StationForm(Form):
    warehouse = SelectField(_l("Warehouse"), validators=[required])
    code = Text(_l("Code"), max_length=32, validators=[required])
    name = Text(_l("Name"), max_length=100, validators=[required])
    lat = Coordinate(_l("Latitude"), limit=90, validators=[required])
    lon = Coordinate(_l("Longitude"), limit=180, validators=[required])


class LeaderForm(Form):
    station = SelectField(_l("Grid station"), validators=[required])
    code = Text(_l("Code"), max_length=32, validators=[required])
    name = Text(_l("Name"), max_length=100, validators=[required])
    phone = Text(_l("Phone"), max_length=32, validators=[required])
    pickup_name = Text(_l("Pickup point"), max_length=200, validators=[required])
    address = Text(_l("Address"), max_length=300)
    lat = Coordinate(_l("Latitude"), limit=90, validators=[required])
    lon = Coordinate(_l("Longitude"), limit=180, validators=[required])
    window_open = Clock(_l("Receiving window opens"), validators=[required], default=time(7, 0))
    window_close = Clock(_l("Receiving window closes"), validators=[required], default=time(11, 0))
    active = BooleanField(_l("Active"), default=True)


class ProductForm(Form):
    sku = Text(_l("SKU"), max_length=64, validators=[required])
    name = Text(_l("Name"), max_length=200, validators=[required])
    weight_g = WholeNumber(_l("Weight (g)"), maximum=1_000_000, validators=[required])
    volume_ml = WholeNumber(_l("Volume (ml)"), maximum=10_000_000, validators=[required])
    zone = SelectField(_l("Temperature zone"), choices=_zones, validators=[required])
    bin_code = Text(_l("Bin"), max_length=32, validators=[required])
    supplier = Text(_l("Supplier (empty: none)"), max_length=100)


TIERS = 4


class DealForm(Form):
    region = SelectField(_l("Region"), validators=[required])
    product = SelectField(_l("Product"), validators=[required])
    delivery_date = DateField(_l("Delivery date"), validators=[required])
    base_price = Money(_l("Base price (yuan)"), validators=[required])
    stock_cap = WholeNumber(_l("Stock cap (empty: no cap)"), maximum=10_000_000)
    min_group_members = WholeNumber(
        _l("Minimum group, members (empty: none)"), minimum=1, maximum=10_000_000
    )
    tier1_qty = WholeNumber(_l("Tier 1: from units"), minimum=1, maximum=10_000_000)
    tier1_price = Money(_l("Tier 1: price (yuan)"))
    tier2_qty = WholeNumber(_l("Tier 2: from units"), minimum=1, maximum=10_000_000)
    tier2_price = Money(_l("Tier 2: price (yuan)"))
    tier3_qty = WholeNumber(_l("Tier 3: from units"), minimum=1, maximum=10_000_000)
    tier3_price = Money(_l("Tier 3: price (yuan)"))
    tier4_qty = WholeNumber(_l("Tier 4: from units"), minimum=1, maximum=10_000_000)
    tier4_price = Money(_l("Tier 4: price (yuan)"))


class VehicleForm(Form):
    """The fleet file's columns: the same parser checks a form and a file."""

    code = Text(_l("Code"), max_length=32, validators=[required])
    region = SelectField(_l("Region"), validators=[required])
    kind = SelectField(
        _l("Kind"),
        choices=lambda: [("last_mile", _l("Last mile (from a station)")), ("trunk", _l("Trunk"))],
        validators=[required],
    )
    home = SelectField(_l("Home (warehouse or station)"), validators=[required])
    weight_kg = Decimal3(_l("Capacity (kg)"), validators=[required])
    volume_l = Decimal3(_l("Capacity (litres)"), validators=[required])
    crates = Decimal3(_l("Capacity (crates)"), validators=[required])
    zones = Text(_l("Zones (ambient,chilled,frozen)"), max_length=64, validators=[required])
    shift_start = Text(_l("Shift starts"), max_length=8, validators=[required])
    shift_end = Text(_l("Shift ends"), max_length=8, validators=[required])
    max_hours = Decimal3(_l("Longest working day (hours)"))
    break_earliest = Text(_l("Break from"), max_length=8)
    break_latest = Text(_l("Break until"), max_length=8)
    break_minutes = Decimal3(_l("Break (minutes)"))
    speed_kmh = Decimal3(_l("Speed (km/h)"))
    profile = Text(_l("Profile"), max_length=32)
    fixed_cost = Decimal3(_l("Fixed cost (yuan)"))
    active = SelectField(_l("Active"), choices=lambda: [("yes", _l("Yes")), ("no", _l("No"))])


def _roles() -> list[tuple[str, Any]]:
    return [
        ("leader", _l("Leader")),
        ("pickup_staff", _l("Pickup point staff")),
        ("warehouse", _l("Warehouse")),
        ("dispatcher", _l("Dispatcher")),
        ("admin", _l("Admin")),
    ]


def _locales() -> list[tuple[str, Any]]:
    return [("", _l("As the browser asks")), ("zh_Hans_CN", "中文"), ("en", "English")]


class UserForm(Form):
    username = Text(_l("Username"), max_length=64, validators=[required])
    role = SelectField(_l("Role"), choices=_roles, validators=[required])
    region = SelectField(_l("Region (warehouse, dispatcher)"))
    leader = Text(_l("Leader code (leader, pickup point staff)"), max_length=32)
    locale = SelectField(_l("Language"), choices=_locales)


class NewUserForm(UserForm):
    password = PasswordField(_l("Password (at least 8 characters)"), validators=[required])


class PasswordForm(Form):
    password = PasswordField(_l("New password (at least 8 characters)"), validators=[required])


class AuditFilterForm(Form):
    actor = Text(_l("Who"), max_length=64)
    action = Text(_l("Action (user. for all of a kind)"), max_length=64)
    since = DateField(_l("From (UTC)"))
    until = DateField(_l("Until (UTC, included)"))
    page = WholeNumber(_l("Page"), minimum=1, maximum=100_000)


class FailedWebhooksFilterForm(Form):
    endpoint_id = WholeNumber(_l("Endpoint"), minimum=1)
    page = WholeNumber(_l("Page"), minimum=1, maximum=100_000)


class CommissionRateForm(Form):
    """A rate as `groupbuy commission rate set` takes it: the region, then a product's SKU or a
    deal's number (neither: the region's default), and basis points."""

    region = SelectField(_l("Region"), validators=[required])
    product = Text(_l("Product SKU (empty: not a product's rate)"), max_length=64)
    deal = WholeNumber(_l("Deal number (empty: not a deal's rate)"), minimum=1)
    rate_bps = WholeNumber(
        _l("Rate in basis points (100 = 1 %)"), maximum=BPS_MAX, validators=[required]
    )


# The rate form's fields share names with others (region, product): its own hints.
RATE_HINTS: dict[str, Any] = {
    "region": _l("One of the regions."),
    "product": _l("The SKU of an existing product, or empty; a product or a deal, not both."),
    "deal": _l(
        "The number of a deal of this region, as its page's heading shows it "
        "(Deal: 42), or empty; a product or a deal, not both."
    ),
    "rate_bps": _l("A whole number of basis points from 0 to 10000 (100 = 1 %)."),
}


# What each field takes, in the user's language: shown with the field's label on an error.
HINTS: dict[str, Any] = {
    "code": _l("Required, at most 32 characters, and not used by another record."),
    "sku": _l("Required, at most 64 characters, and not used by another product."),
    "name": _l("Required, and not too long."),
    "tz": _l("A time zone such as Asia/Shanghai."),
    "cutoff_time": _l("A time HH:MM, such as 23:00."),
    "delivery_offset_days": _l("A whole number of days from 0 to 7."),
    "lat": _l("A latitude from -90 to 90, within the region's radius (not swapped)."),
    "lon": _l("A longitude from -180 to 180, within the region's radius."),
    "radius_km": _l("A whole number of kilometres from 1 to 500."),
    "station": _l("A grid station of the leader's region."),
    "phone": _l("Required."),
    "pickup_name": _l("Required."),
    "window_open": _l("A time HH:MM, such as 07:00."),
    "window_close": _l("A time HH:MM after the window opens."),
    "weight_g": _l("A whole number of grams."),
    "volume_ml": _l("A whole number of millilitres."),
    "zone": _l("Ambient, chilled or frozen."),
    "bin_code": _l("Required: the warehouse bin, such as A-03-2."),
    "product": _l(
        "A product not yet offered in this region for that date; a saved deal keeps its "
        "region, product and date."
    ),
    "delivery_date": _l("A date whose wave is still open (its cutoff not passed)."),
    "base_price": _l("An amount in yuan with at most two decimals."),
    "base_price_cents": _l("An amount in yuan with at most two decimals."),
    "stock_cap": _l("A whole number of units, not below the units already sold."),
    "min_group_members": _l("A whole number of members, at least 1."),
    "home": _l(
        "A warehouse for a trunk vehicle, a grid station of its region for a last-mile van."
    ),
    "kind": _l("Trunk or last mile."),
    "weight_kg": _l("A number of kilograms, at most three decimals."),
    "volume_l": _l("A number of litres, at most three decimals."),
    "crates": _l("A whole number of crates."),
    "zones": _l("Ambient, chilled or frozen, separated by commas."),
    "shift_start": _l("A time HH:MM."),
    "shift_end": _l("A time HH:MM after the shift starts."),
    "max_hours": _l("A number of hours up to 24."),
    "break_earliest": _l("A time HH:MM; a break needs its start and its minutes."),
    "break_latest": _l("A time HH:MM, not before the break's start."),
    "break_minutes": _l("A whole number of minutes; a break needs its start too."),
    "speed_kmh": _l("A speed above 0, at most 200."),
    "fixed_cost": _l("An amount in yuan with at most two decimals."),
    "username": _l("1 to 64 characters, not used by another user."),
    "password": _l("At least 8 characters."),
    "role": _l("One of the roles; an admin keeps their own admin role."),
    "region": _l("The region a warehouse or dispatcher user works in."),
    "leader": _l("The code of the leader whose point the user works at."),
    "locale": _l("Chinese or English."),
    "active": _l("You cannot disable your own account."),
    "since": _l("A date YYYY-MM-DD."),
    "until": _l("A date YYYY-MM-DD."),
    "page": _l("A page number from 1."),
    "tiers": _l("At most 10 tiers."),
    "endpoint_id": _l("The number of a webhook endpoint, from 1."),
}
for _n in range(1, TIERS + 1):
    HINTS[f"tier{_n}_qty"] = _l("A whole number of units, each tier its own.")
    HINTS[f"tier{_n}_price"] = _l("An amount in yuan, at most the base price; with its units.")


def first_error(form: Form) -> tuple[str, str] | None:
    """The first field the form refused, and the layer's (English) message."""
    for name, errors in form.errors.items():
        return name, str(errors[0])
    return None
