"""The admin's desk (`admin` only; every other role gets 404): the master data (regions, the
warehouse and grid stations, leaders and their pickup points, products, deals with tiers,
vehicles, users), read-only lists of API clients and of the audit log, the refund export, and
CSV imports with a preview before anything is written.

The views are thin: a form from `web.admin.forms` checks what a column can store, a service in
`fulfilment/` checks the rest, writes and audits; an InvalidInput comes back as the form again
with the field named (422) and the request's transaction rolled back, so nothing is written.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from wtforms import Form

from fulfilment.accounts.models import Role, User
from fulfilment.accounts.services import (
    change_user,
    create_user,
    reset_password,
    set_user_active,
)
from fulfilment.catalogue.fleet import (
    Vehicle,
    import_fleet,
    preview_fleet,
    save_vehicle,
    vehicle_cells,
)
from fulfilment.catalogue.imports import import_leaders, import_products
from fulfilment.catalogue.manage import (
    save_leader,
    save_product,
    save_region,
    save_station,
    save_warehouse,
)
from fulfilment.core.audit import list_changes
from fulfilment.core.csvimport import ImportFailed, ImportPreview, RowError, decode
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import (
    Deal,
    GridStation,
    Leader,
    Product,
    Region,
    Warehouse,
    Wave,
    WaveStatus,
    utcnow,
)
from fulfilment.core.privacy import mask_phone
from fulfilment.orders.importer import import_orders, preview_orders
from fulfilment.orders.refunds import export_refunds, list_refunds, summarise_refunds
from fulfilment.orders.refunds import write_refunds_csv as refunds_csv
from fulfilment.platforms.clients import list_api_clients
from fulfilment.waves.deadlines import change_cutoff_time
from fulfilment.waves.offers import save_deal
from web.forms import WholeNumber, form_of, parse
from web.security import csp_allowing_tiles, roles_required

from .forms import (
    HINTS,
    TIERS,
    AuditFilterForm,
    DealForm,
    LeaderForm,
    NewUserForm,
    PasswordForm,
    ProductForm,
    RegionForm,
    StationForm,
    UserForm,
    VehicleForm,
    WarehouseForm,
    first_error,
)

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
admin_required = roles_required(Role.ADMIN)
PAGE = 50


@bp.after_request
def _tiles_allowed(response):
    """A form with a map loads tiles from GROUPBUY_TILE_URL's origin, when one is set."""
    tile_url = current_app.config["GROUPBUY_SETTINGS"].tile_url
    if tile_url and request.endpoint and request.endpoint.startswith(("admin.new_", "admin.edit_")):
        response.headers["Content-Security-Policy"] = csp_allowing_tiles(tile_url)
    return response


# --- errors on a form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """A refused field: its name, its label in the user's language, what it takes (in the
    user's language) and the detail the layer or the service gave (English)."""

    field: str
    label: str
    hint: str
    detail: str


def _field_error(form: Form, field: str, detail: str) -> FieldError:
    base = field.split("[", 1)[0]
    if base not in form._fields and base.endswith("_cents"):
        base = base.removesuffix("_cents")
    shown = form._fields.get(base)
    label = str(shown.label.text) if shown is not None else base
    return FieldError(base, label, str(HINTS.get(base, "")), detail)


def _page() -> int:
    form = parse(form_of({"page": WholeNumber(minimum=1, maximum=100_000)}), request.args)
    return form["page"].data or 1


# --- the landing page ---------------------------------------------------------------------------


@bp.get("/")
@admin_required
def index():
    """Every admin page, the dispatcher's desk, and each region's latest pick lists."""
    latest = {
        r.code: g.session.scalar(
            select(Wave)
            .where(Wave.region_id == r.id, Wave.status == WaveStatus.CUT_OFF)
            .order_by(Wave.delivery_date.desc())
            .limit(1)
        )
        for r in g.session.scalars(select(Region).order_by(Region.code))
    }
    counts = {
        "regions": g.session.scalar(select(func.count()).select_from(Region)),
        "leaders": g.session.scalar(select(func.count()).select_from(Leader)),
        "products": g.session.scalar(select(func.count()).select_from(Product)),
        "vehicles": g.session.scalar(select(func.count()).select_from(Vehicle)),
        "users": g.session.scalar(select(func.count()).select_from(User)),
    }
    return render_template("admin/index.html", latest=latest, counts=counts)


# --- records: one list, one "new" form and one edit form per kind -----------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of record the admin keeps."""

    name: str  # the URL's part: /admin/<name>
    title: Any  # lazy: the list's heading
    one: Any  # lazy: one record, for "New …"
    form: type[Form]
    model: type
    order: Any  # the list's ORDER BY
    headers: tuple[Any, ...]  # lazy column headings
    cells: Callable[[Any], list[str]]
    to_form: Callable[[Any], dict[str, Any]]
    save: Callable[[Form, Any], Any]
    choices: Callable[[Form], None] = lambda form: None
    on_map: bool = False
    key_fixed: str | None = None  # a field that cannot change once saved (a vehicle's code)


def _region_choices() -> list[tuple[str, str]]:
    return [
        (str(r.id), f"{r.code} · {r.name}")
        for r in g.session.scalars(select(Region).order_by(Region.code))
    ]


def _get(model: type, raw: str | None, field: str) -> Any:
    record = g.session.get(model, int(raw)) if raw and raw.isdigit() else None
    if record is None:
        raise InvalidInput("form", field, "not found")
    return record


def _actor() -> str:
    return current_user.actor


# regions


def _save_region(form: Form, region: Region | None) -> Region:
    saved = save_region(
        g.session,
        region=region,
        code=form.code.data,
        name=form.name.data,
        tz=form.tz.data,
        delivery_offset_days=form.delivery_offset_days.data,
        lat=form.lat.data,
        lon=form.lon.data,
        radius_km=float(form.radius_km.data),
        cutoff_time=form.cutoff_time.data,
        actor=_actor(),
    )
    if region is not None and form.cutoff_time.data != region.cutoff_time:
        moved = change_cutoff_time(
            g.session, region=saved, cutoff_time=form.cutoff_time.data, now=utcnow(), actor=_actor()
        )
        flash(_("Cutoff time changed; %(n)d open wave(s) moved with it.", n=len(moved)))
    return saved


def _region_form(r: Region) -> dict[str, Any]:
    return {
        "code": r.code,
        "name": r.name,
        "tz": r.tz,
        "cutoff_time": r.cutoff_time,
        "delivery_offset_days": r.delivery_offset_days,
        "lat": r.lat,
        "lon": r.lon,
        "radius_km": round(r.radius_km),
    }


# warehouses and stations


def _save_warehouse(form: Form, warehouse: Warehouse | None) -> Warehouse:
    return save_warehouse(
        g.session,
        warehouse=warehouse,
        region=_get(Region, form.region.data, "region"),
        code=form.code.data,
        name=form.name.data,
        lat=form.lat.data,
        lon=form.lon.data,
        actor=_actor(),
    )


def _warehouse_choices(form: Form) -> None:
    form.warehouse.choices = [
        (str(w.id), f"{w.code} · {w.name}")
        for w in g.session.scalars(select(Warehouse).order_by(Warehouse.code))
    ]


def _station_choices(form: Form) -> None:
    form.station.choices = [
        (str(s.id), f"{s.code} · {s.name}")
        for s in g.session.scalars(select(GridStation).order_by(GridStation.code))
    ]


def _save_station(form: Form, station: GridStation | None) -> GridStation:
    return save_station(
        g.session,
        station=station,
        warehouse=_get(Warehouse, form.warehouse.data, "warehouse"),
        code=form.code.data,
        name=form.name.data,
        lat=form.lat.data,
        lon=form.lon.data,
        actor=_actor(),
    )


# leaders


def _save_leader(form: Form, leader: Leader | None) -> Leader:
    return save_leader(
        g.session,
        leader=leader,
        station=_get(GridStation, form.station.data, "station"),
        code=form.code.data,
        name=form.name.data,
        phone=form.phone.data,
        pickup_name=form.pickup_name.data,
        address=form.address.data or "",
        lat=form.lat.data,
        lon=form.lon.data,
        window_open=form.window_open.data,
        window_close=form.window_close.data,
        active=bool(form.active.data),
        actor=_actor(),
    )


def _leader_form(x: Leader) -> dict[str, Any]:
    return {
        "station": str(x.station_id),
        "code": x.code,
        "name": x.name,
        "phone": x.phone,
        "pickup_name": x.pickup_name,
        "address": x.address,
        "lat": x.lat,
        "lon": x.lon,
        "window_open": x.window_open,
        "window_close": x.window_close,
        "active": x.active,
    }


def _clock(t: time) -> str:
    return t.strftime("%H:%M")


# products


def _save_product(form: Form, product: Product | None) -> Product:
    return save_product(
        g.session,
        product=product,
        sku=form.sku.data,
        name=form.name.data,
        weight_g=form.weight_g.data,
        volume_ml=form.volume_ml.data,
        zone=form.zone.data,
        bin_code=form.bin_code.data,
        actor=_actor(),
    )


def _zone_label(zone: str) -> str:
    return {"ambient": _("Ambient"), "chilled": _("Chilled"), "frozen": _("Frozen")}.get(zone, zone)


# deals


def _deal_choices(form: Form) -> None:
    form.region.choices = _region_choices()
    form.product.choices = [
        (str(p.id), f"{p.sku} · {p.name}")
        for p in g.session.scalars(select(Product).order_by(Product.sku))
    ]


def _save_deal(form: Form, deal: Deal | None) -> Deal:
    tiers = []
    for n in range(1, TIERS + 1):
        qty, price = form[f"tier{n}_qty"].data, form[f"tier{n}_price"].data
        if qty is None and price is None:
            continue
        if qty is None or price is None:
            missing = f"tier{n}_qty" if qty is None else f"tier{n}_price"
            raise InvalidInput("deal", missing, "a tier needs its units and its price")
        tiers.append((qty, price))
    return save_deal(
        g.session,
        deal=deal,
        region=_get(Region, form.region.data, "region"),
        product=_get(Product, form.product.data, "product"),
        delivery_date=form.delivery_date.data,
        base_price_cents=form.base_price.data,
        stock_cap=form.stock_cap.data,
        min_group_members=form.min_group_members.data,
        tiers=tiers,
        now=utcnow(),
        actor=_actor(),
    )


def _deal_form(d: Deal) -> dict[str, Any]:
    data: dict[str, Any] = {
        "region": str(d.region_id),
        "product": str(d.product_id),
        "delivery_date": d.delivery_date,
        "base_price": d.base_price_cents,
        "stock_cap": d.stock_cap,
        "min_group_members": d.min_group_members,
    }
    for n, tier in enumerate(d.tiers[:TIERS], start=1):
        data[f"tier{n}_qty"], data[f"tier{n}_price"] = tier.min_qty, tier.price_cents
    return data


def _money(cents: int | None) -> str:
    from web.i18n import money

    return "" if cents is None else money(cents)


def _deal_cells(d: Deal) -> list[str]:
    region = g.session.get(Region, d.region_id)
    tiers = " · ".join(f"≥{t.min_qty}: {_money(t.price_cents)}" for t in d.tiers)
    return [
        region.code if region else "",
        d.product.sku,
        d.delivery_date.isoformat(),
        _money(d.base_price_cents),
        tiers,
        "" if d.stock_cap is None else f"{d.sold_qty}/{d.stock_cap}",
        "" if d.min_group_members is None else str(d.min_group_members),
        {"open": _("Open"), "confirmed": _("Confirmed"), "cancelled": _("Cancelled")}.get(
            d.status.value, d.status.value
        ),
    ]


# vehicles


def _homes() -> list[tuple[str, str]]:
    warehouses = g.session.scalars(select(Warehouse).order_by(Warehouse.code))
    stations = g.session.scalars(select(GridStation).order_by(GridStation.code))
    return [(w.code, f"{w.code} · {w.name}") for w in warehouses] + [
        (s.code, f"{s.code} · {s.name}") for s in stations
    ]


def _vehicle_choices(form: Form) -> None:
    form.region.choices = [
        (r.code, f"{r.code} · {r.name}")
        for r in g.session.scalars(select(Region).order_by(Region.code))
    ]
    form.home.choices = _homes()


def _vehicle_form(v: Vehicle) -> dict[str, Any]:
    region = g.session.get(Region, v.region_id)
    home = (
        g.session.get(Warehouse, v.warehouse_id)
        if v.warehouse_id
        else g.session.get(GridStation, v.station_id)
    )
    return vehicle_cells(v, region.code if region else "", home.code if home else "")


def _save_vehicle(form: Form, vehicle: Vehicle | None) -> Vehicle:
    cells = {name: str(field.data or "") for name, field in form._fields.items()}
    if vehicle is not None:
        cells["code"] = vehicle.code
    return save_vehicle(g.session, cells=cells, actor=_actor())


def _kind_label(kind: str) -> str:
    return {"trunk": _("Trunk"), "last_mile": _("Last mile")}.get(kind, kind)


# users


def _user_choices(form: Form) -> None:
    form.region.choices = [("", "—")] + [
        (r.code, f"{r.code} · {r.name}")
        for r in g.session.scalars(select(Region).order_by(Region.code))
    ]


def _save_user(form: Form, user: User | None) -> User:
    role = form.role.data
    leader = form.leader.data or None
    region = form.region.data or None
    locale = form.locale.data or None
    if user is None:
        return create_user(
            g.session,
            username=form.username.data,
            password=form.password.data or "",
            role=role,
            leader_code=leader,
            region_code=region,
            locale=locale,
            actor=_actor(),
        )
    return change_user(
        g.session,
        user=user,
        role=role,
        leader_code=leader,
        region_code=region,
        locale=locale,
        actor=_actor(),
    )


def _user_form(u: User) -> dict[str, Any]:
    return {
        "username": u.username,
        "role": u.role.value,
        "region": u.region.code if u.region else "",
        "leader": u.leader.code if u.leader else "",
        "locale": u.locale or "",
    }


def _role_label(role: str) -> str:
    return {
        "leader": _("Leader"),
        "pickup_staff": _("Pickup point staff"),
        "warehouse": _("Warehouse"),
        "dispatcher": _("Dispatcher"),
        "admin": _("Admin"),
    }.get(role, role)


def _yes(flag: bool) -> str:
    return _("Yes") if flag else _("No")


def _region_code(region_id: int | None) -> str:
    region = g.session.get(Region, region_id) if region_id else None
    return region.code if region else ""


def _code_of(model: type, record_id: int | None) -> str:
    record = g.session.get(model, record_id) if record_id else None
    return getattr(record, "code", "") if record else ""


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind(
            "regions",
            _l("Regions"),
            _l("Region"),
            RegionForm,
            Region,
            Region.code,
            (_l("Code"), _l("Name"), _l("Time zone"), _l("Cutoff time"), _l("Delivery days")),
            lambda r: [r.code, r.name, r.tz, _clock(r.cutoff_time), str(r.delivery_offset_days)],
            _region_form,
            _save_region,
            on_map=True,
            key_fixed="code",  # the scope of its CSV imports' idempotency keys
        ),
        Kind(
            "warehouses",
            _l("Warehouses"),
            _l("Warehouse"),
            WarehouseForm,
            Warehouse,
            Warehouse.code,
            (_l("Code"), _l("Name"), _l("Region")),
            lambda w: [w.code, w.name, _region_code(w.region_id)],
            lambda w: {
                "region": str(w.region_id),
                "code": w.code,
                "name": w.name,
                "lat": w.lat,
                "lon": w.lon,
            },
            _save_warehouse,
            lambda form: setattr(form.region, "choices", _region_choices()),
            on_map=True,
        ),
        Kind(
            "stations",
            _l("Grid stations"),
            _l("Grid station"),
            StationForm,
            GridStation,
            GridStation.code,
            (_l("Code"), _l("Name"), _l("Region"), _l("Warehouse")),
            lambda s: [
                s.code,
                s.name,
                _region_code(s.region_id),
                _code_of(Warehouse, s.warehouse_id),
            ],
            lambda s: {
                "warehouse": str(s.warehouse_id),
                "code": s.code,
                "name": s.name,
                "lat": s.lat,
                "lon": s.lon,
            },
            _save_station,
            _warehouse_choices,
            on_map=True,
        ),
        Kind(
            "leaders",
            _l("Leaders and pickup points"),
            _l("Leader"),
            LeaderForm,
            Leader,
            Leader.code,
            (
                _l("Code"),
                _l("Name"),
                _l("Phone"),
                _l("Pickup point"),
                _l("Grid station"),
                _l("Receiving window"),
                _l("Active"),
            ),
            lambda x: [
                x.code,
                x.name,
                mask_phone(x.phone),
                x.pickup_name,
                _code_of(GridStation, x.station_id),
                f"{_clock(x.window_open)}–{_clock(x.window_close)}",
                _yes(x.active),
            ],
            _leader_form,
            _save_leader,
            _station_choices,
            on_map=True,
        ),
        Kind(
            "products",
            _l("Products"),
            _l("Product"),
            ProductForm,
            Product,
            Product.sku,
            (_l("SKU"), _l("Name"), _l("Weight (g)"), _l("Volume (ml)"), _l("Zone"), _l("Bin")),
            lambda p: [
                p.sku,
                p.name,
                str(p.weight_g),
                str(p.volume_ml),
                _zone_label(p.zone.value),
                p.bin_code,
            ],
            lambda p: {
                "sku": p.sku,
                "name": p.name,
                "weight_g": p.weight_g,
                "volume_ml": p.volume_ml,
                "zone": p.zone.value,
                "bin_code": p.bin_code,
            },
            _save_product,
        ),
        Kind(
            "deals",
            _l("Deals"),
            _l("Deal"),
            DealForm,
            Deal,
            (Deal.delivery_date.desc(), Deal.id),
            (
                _l("Region"),
                _l("SKU"),
                _l("Delivery date"),
                _l("Base price"),
                _l("Tiers"),
                _l("Sold / cap"),
                _l("Minimum group"),
                _l("Status"),
            ),
            _deal_cells,
            _deal_form,
            _save_deal,
            _deal_choices,
        ),
        Kind(
            "vehicles",
            _l("Vehicles"),
            _l("Vehicle"),
            VehicleForm,
            Vehicle,
            Vehicle.code,
            (_l("Code"), _l("Region"), _l("Kind"), _l("Zones"), _l("Shift"), _l("Active")),
            lambda v: [
                v.code,
                _region_code(v.region_id),
                _kind_label(v.kind.value),
                ", ".join(_zone_label(z) for z in v.zones.split(",") if z),
                f"{_clock(v.shift_start)}–{_clock(v.shift_end)}",
                _yes(v.active),
            ],
            _vehicle_form,
            _save_vehicle,
            _vehicle_choices,
            key_fixed="code",
        ),
        Kind(
            "users",
            _l("Users"),
            _l("User"),
            UserForm,
            User,
            User.username,
            (_l("Username"), _l("Role"), _l("Scope"), _l("Active")),
            lambda u: [
                u.username,
                _role_label(u.role.value),
                u.leader.code if u.leader else (u.region.code if u.region else _("Everything")),
                _yes(u.active),
            ],
            _user_form,
            _save_user,
            _user_choices,
            key_fixed="username",
        ),
    ]
}


def _kind(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        abort(404)
    return kind


def _map_points(kind: Kind) -> list[list[Any]]:
    """Where the region's sites are, for the map beside a form: warehouses and stations."""
    if not kind.on_map:
        return []
    points: list[list[Any]] = [
        [w.lat, w.lon, w.code] for w in g.session.scalars(select(Warehouse).limit(50))
    ]
    points += [[s.lat, s.lon, s.code] for s in g.session.scalars(select(GridStation).limit(200))]
    return points


def list_records(name: str):
    kind = _kind(name)
    page = _page()
    order = kind.order if isinstance(kind.order, tuple) else (kind.order,)
    rows = list(
        g.session.scalars(
            select(kind.model).order_by(*order).offset((page - 1) * PAGE).limit(PAGE + 1)
        )
    )
    return render_template(
        "admin/list.html",
        kind=kind,
        rows=[(r.id, kind.cells(r)) for r in rows[:PAGE]],
        page=page,
        more=len(rows) > PAGE,
    )


def _form_page(kind: Kind, record: Any, *, status: int = 200, **context: Any):
    settings = current_app.config["GROUPBUY_SETTINGS"]
    return render_template(
        "admin/form.html",
        kind=kind,
        record=record,
        points=_map_points(kind),
        tile_url=settings.tile_url,
        extra=_user_extras(kind, record),
        **context,
    ), status


def _user_extras(kind: Kind, record: Any) -> dict[str, Any]:
    if kind.name != "users" or record is None:
        return {}
    return {"password_form": PasswordForm()}


def edit_record(name: str, record_id: int | None = None):
    kind = _kind(name)
    record = None
    if record_id is not None:
        record = g.session.get(kind.model, record_id)
        if record is None:
            abort(404)
    form_class = NewUserForm if kind.name == "users" and record is None else kind.form
    if request.method == "GET":
        form = form_class(data=kind.to_form(record)) if record is not None else form_class()
        kind.choices(form)
        return _form_page(kind, record, form=form, error=None)
    form = form_class(request.form)
    kind.choices(form)
    if record is not None and kind.key_fixed:
        form[kind.key_fixed].data = getattr(record, kind.key_fixed)
    if not form.validate():
        field, detail = first_error(form) or ("form", "")
        return _refused_form(kind, record, form, _field_error(form, field, detail))
    try:
        saved = kind.save(form, record)
    except InvalidInput as err:
        return _refused_form(kind, record, form, _field_error(form, err.field, err.message))
    flash(_("Saved: %(what)s", what=_describe(kind, saved)))
    return redirect(url_for(f"admin.edit_{kind.name}", record_id=saved.id))


def _describe(kind: Kind, record: Any) -> str:
    for attr in ("code", "sku", "username"):
        if hasattr(record, attr):
            return f"{kind.one} {getattr(record, attr)}"
    return f"{kind.one} {record.id}"


def _refused_form(kind: Kind, record: Any, form: Form, error: FieldError):
    g.rollback = True
    g.session.rollback()
    return _form_page(kind, record, status=422, form=form, error=error)


def _register(kind: Kind) -> None:
    def listing():
        return list_records(kind.name)

    def new():
        return edit_record(kind.name)

    def edit(record_id: int):
        return edit_record(kind.name, record_id)

    bp.add_url_rule(f"/{kind.name}", f"list_{kind.name}", admin_required(listing))
    bp.add_url_rule(
        f"/{kind.name}/new", f"new_{kind.name}", admin_required(new), methods=["GET", "POST"]
    )
    bp.add_url_rule(
        f"/{kind.name}/<int:record_id>",
        f"edit_{kind.name}",
        admin_required(edit),
        methods=["GET", "POST"],
    )


for _kind_spec in KINDS.values():
    _register(_kind_spec)


# --- users: disable or enable, reset the password ---------------------------------------------


def _user(user_id: int) -> User:
    user = g.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.post("/users/<int:user_id>/active")
@admin_required
def user_active(user_id: int):
    """Disable (its sign-ins end) or enable an account."""
    user = _user(user_id)
    wanted = request.form.get("active") == "yes"
    try:
        set_user_active(g.session, user=user, active=wanted, actor=_actor())
    except InvalidInput as err:
        g.rollback = True
        g.session.rollback()
        kind = KINDS["users"]
        form = UserForm(data=_user_form(user))
        _user_choices(form)
        return _form_page(
            kind, user, status=422, form=form, error=_field_error(form, err.field, err.message)
        )
    flash(
        _("Enabled: %(user)s", user=user.username)
        if wanted
        else _("Disabled: %(user)s", user=user.username)
    )
    return redirect(url_for("admin.edit_users", record_id=user.id))


@bp.post("/users/<int:user_id>/password")
@admin_required
def user_password(user_id: int):
    """Set a new password; the user's sign-ins end."""
    user = _user(user_id)
    form = PasswordForm(request.form)
    try:
        if not form.validate():
            raise InvalidInput(f"user {user.username}", "password", "is required")
        reset_password(g.session, user=user, password=form.password.data, actor=_actor())
    except InvalidInput as err:
        g.rollback = True
        g.session.rollback()
        kind = KINDS["users"]
        shown = UserForm(data=_user_form(user))
        _user_choices(shown)
        error = FieldError(
            "password", str(form.password.label.text), str(HINTS["password"]), err.message
        )
        return _form_page(kind, user, status=422, form=shown, error=error)
    flash(_("New password set for %(user)s; their sign-ins have ended.", user=user.username))
    return redirect(url_for("admin.edit_users", record_id=user.id))


# --- read-only: API clients, the audit log ------------------------------------------------------


@bp.get("/api-clients")
@admin_required
def api_clients():
    """The shop platforms that call the order API (tokens are never shown: only their hash is
    stored). Created and revoked with `groupbuy api-client`."""
    return render_template("admin/api_clients.html", clients=list_api_clients(g.session))


@bp.get("/audit")
@admin_required
def audit():
    """The audit log, newest first, filtered by who, action and dates (UTC), a page at a time."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        field, detail = first_error(form) or ("form", "")
        g.rollback = True
        return render_template(
            "admin/audit.html",
            form=form,
            entries=[],
            page=1,
            more=False,
            error=_field_error(form, field, detail),
        ), 422
    page = form.page.data or 1
    since = datetime.combine(form.since.data, time(0), UTC) if form.since.data else None
    until = (
        datetime.combine(form.until.data + timedelta(days=1), time(0), UTC)
        if form.until.data
        else None
    )
    entries, more = list_changes(
        g.session,
        actor=form.actor.data or None,
        action=form.action.data or None,
        since=since,
        until=until,
        offset=(page - 1) * PAGE,
        limit=PAGE,
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "admin/audit.html",
        form=form,
        entries=entries,
        page=page,
        more=more,
        args=args,
        error=None,
    )


# --- refunds: the claim-first export ------------------------------------------------------------


BATCH = re.compile(r"^[0-9a-f]{32}$")


@bp.get("/refunds")
@admin_required
def refunds():
    """Each region's cut-off waves with the refunds owed and the exports made so far."""
    waves = list(
        g.session.scalars(
            select(Wave)
            .where(Wave.status == WaveStatus.CUT_OFF)
            .order_by(Wave.delivery_date.desc(), Wave.id)
            .limit(60)
        )
    )
    summary = summarise_refunds(g.session, wave_ids=[w.id for w in waves])
    regions = {r.id: r for r in g.session.scalars(select(Region))}
    return render_template("admin/refunds.html", waves=waves, summary=summary, regions=regions)


@bp.post("/refunds/<int:wave_id>/export")
@admin_required
def export(wave_id: int):
    """Claim the wave's owed refunds for a new batch (one UPDATE … WHERE state = 'owed'), then
    offer the batch's file: two admins exporting at once hand each refund over once."""
    if g.session.get(Wave, wave_id) is None:
        abort(404)
    n = export_refunds(g.session, wave_id=wave_id, out=io.StringIO(), actor=_actor())
    if n == 0:
        flash(_("Nothing owed on this wave: no export made."))
    else:
        flash(_("%(n)d refund(s) exported. Download the batch's file below.", n=n))
    return redirect(url_for("admin.refunds"))


@bp.get("/refunds/<int:wave_id>/<batch>.csv")
@admin_required
def refund_batch(wave_id: int, batch: str):
    """One export batch as CSV (UTF-8 with BOM, for spreadsheet programs); as often as needed."""
    if not BATCH.match(batch) or g.session.get(Wave, wave_id) is None:
        abort(404)
    rows = list_refunds(g.session, wave_id=wave_id, batch=batch)
    if not rows:
        abort(404)
    out = io.StringIO()
    out.write("\ufeff")
    refunds_csv(rows, out)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=refunds-{wave_id}-{batch}.csv"},
    )


# --- CSV imports: upload, preview, confirm ------------------------------------------------------

IMPORTS: dict[str, tuple[Any, str]] = {
    "leaders": (
        _l("Leaders"),
        "code,station,name,phone,pickup_name,address,lat,lon,window_open,window_close,active",
    ),
    "products": (_l("Products"), "sku,name,weight_g,volume_ml,zone,bin_code"),
    "fleet": (
        _l("Vehicles"),
        "code,region,home,kind,weight_kg,volume_l,crates,zones,"
        "shift_start,shift_end,max_hours,break_earliest,break_latest,break_minutes,"
        "speed_kmh,profile,fixed_cost,active",
    ),
    "orders": (
        _l("Orders"),
        "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity",
    ),
}
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


UPLOAD_KEPT = timedelta(days=1)


def _uploads() -> Path:
    """The folder where previewed uploads wait; those never confirmed go after a day."""
    folder = Path(current_app.instance_path) / "admin-imports"
    folder.mkdir(parents=True, exist_ok=True)
    stale = datetime.now(UTC).timestamp() - UPLOAD_KEPT.total_seconds()
    for old in folder.glob("*.csv"):
        if old.stat().st_mtime < stale:
            old.unlink(missing_ok=True)
    return folder


def _upload_path(kind: str, token: str) -> Path:
    """Where an upload waits for its confirmation: the kind, the admin and a random token."""
    return _uploads() / f"{kind}-{current_user.id}-{token}.csv"


def _import_region(kind: str) -> Region | None:
    """The region an orders file is for (orders only); a missing or unknown one is an error."""
    if kind != "orders":
        return None
    raw = request.form.get("region", "")
    region = g.session.get(Region, int(raw)) if raw.isascii() and raw.isdigit() else None
    if region is None:
        raise InvalidInput("file", "region", "choose the region the orders are for")
    return region


def _preview(kind: str, data: bytes, region: Region | None) -> tuple[ImportPreview, int]:
    """What the file would write and every error; nothing is written (rolled back)."""
    text = decode(data)
    if kind == "orders":
        assert region is not None
        try:
            return preview_orders(g.session, region=region, data=data)
        except InvalidInput as err:  # the header: no row was read
            return ImportPreview(errors=[RowError(1, err.field, err.message)]), 0
    if kind == "fleet":
        return preview_fleet(g.session, text=text), 0
    run = import_leaders if kind == "leaders" else import_products
    try:
        return run(g.session, text=text, actor=_actor(), dry_run=True), 0
    except ImportFailed as err:  # the header was refused: no row was read
        return ImportPreview(errors=err.errors), 0


def _import_page(kind: str, *, status: int = 200, **context: Any):
    title, columns = IMPORTS[kind]
    context.setdefault("preview", None)
    context.setdefault("error", None)
    return render_template(
        "admin/import.html",
        kind=kind,
        title=title,
        columns=columns,
        regions=_region_choices(),
        **context,
    ), status


@bp.route("/import/<kind>", methods=["GET", "POST"])
@admin_required
def import_file(kind: str):
    """Upload a CSV file: the preview shows every error by line and field, and the rows that
    would be written; nothing is written until the admin confirms."""
    if kind not in IMPORTS:
        abort(404)
    if request.method == "GET":
        return _import_page(kind)
    g.rollback = True  # a preview never writes
    upload = request.files.get("file")
    data = upload.read() if upload is not None else b""
    try:
        if not data:
            raise InvalidInput("file", "file", "choose a CSV file")
        region = _import_region(kind)
        preview, replays = _preview(kind, data, region)
    except InvalidInput as err:
        g.session.rollback()
        message = (
            _("Choose the region the orders are for.")
            if err.field == "region"
            else (_("Choose a CSV file (UTF-8 or GBK)."))
        )
        return _import_page(kind, status=422, error=f"{message} ({err.message})")
    g.session.rollback()
    token = ""
    if not preview.errors:
        token = secrets.token_urlsafe(24)
        _upload_path(kind, token).write_bytes(data)
    return _import_page(
        kind,
        status=200 if not preview.errors else 422,
        preview=preview,
        replays=replays,
        token=token,
        region_id=region.id if region else "",
    )


@bp.post("/import/<kind>/confirm")
@admin_required
def import_confirm(kind: str):
    """Write the previewed file, all or nothing: it is checked again as it is written, and a
    row refused now (a code taken meanwhile, stock sold) writes nothing of the file."""
    if kind not in IMPORTS:
        abort(404)
    token = request.form.get("token", "")
    path = _upload_path(kind, token) if TOKEN.match(token) else None
    if path is None or not path.exists():
        return _import_page(
            kind, status=422, error=_("The upload has expired or was imported. Upload it again.")
        )
    data = path.read_bytes()
    try:
        region = _import_region(kind)
        text = decode(data)
        if kind == "orders":
            assert region is not None
            report = import_orders(g.session, region=region, data=data, actor=_actor())
            done = _(
                "Imported %(n)d order(s); %(old)d were imported before.",
                n=report.orders_imported,
                old=report.orders_already_present,
            )
        elif kind == "fleet":
            fleet = import_fleet(g.session, text=text, actor=_actor())
            done = _("Vehicles: %(a)d added, %(c)d changed.", a=fleet.added, c=fleet.updated)
        else:
            run = import_leaders if kind == "leaders" else import_products
            result = run(g.session, text=text, actor=_actor())
            done = _("Imported: %(a)d added, %(c)d changed.", a=result.added, c=result.changed)
    except ImportFailed as err:
        g.rollback = True
        g.session.rollback()
        return _import_page(kind, status=422, preview=ImportPreview(errors=err.errors), replays=0)
    except InvalidInput as err:
        g.rollback = True
        g.session.rollback()
        return _import_page(
            kind, status=422, preview=ImportPreview(errors=[RowError(1, err.field, err.message)])
        )
    path.unlink(missing_ok=True)
    flash(done)
    target = {"fleet": "vehicles", "orders": None}.get(kind, kind)
    return redirect(url_for(f"admin.list_{target}") if target else url_for("admin.index"))
