"""The admin's records: for each kind (regions, warehouses, grid stations, leaders and their
pickup points, products, deals with tiers, vehicles, users) one list, one "new" form and one edit
form, and the users' own actions (disable or enable, reset the password).

A form from `web.admin.forms` checks what a column can store, a service in `fulfilment/` checks
the rest, writes and audits; an InvalidInput comes back as the form again with the field named
(422) and the request's transaction rolled back, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import Any

from flask import (
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
from sqlalchemy import select
from wtforms import Form

from fulfilment.accounts.models import User
from fulfilment.accounts.services import (
    change_user,
    create_user,
    reset_password,
    set_user_active,
)
from fulfilment.catalogue.fleet import (
    Vehicle,
    save_vehicle,
    vehicle_cells,
)
from fulfilment.catalogue.manage import (
    save_leader,
    save_product,
    save_region,
    save_station,
    save_warehouse,
)
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import (
    Deal,
    GridStation,
    Leader,
    Product,
    Region,
    Warehouse,
    utcnow,
)
from fulfilment.core.privacy import mask_phone
from fulfilment.waves.deadlines import change_cutoff_time
from fulfilment.waves.offers import save_deal
from web.forms import Text, form_of, parse

from .blueprint import (
    PAGE,
    FieldError,
    admin_required,
    bp,
    current_actor,
    field_error,
    page_number,
    record_choices,
    region_choices,
)
from .forms import (
    HINTS,
    TIERS,
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
    search: Any = None  # the column the list's search box looks in (?q=)


def _get(model: type, raw: str | None, field: str) -> Any:
    record = g.session.get(model, int(raw)) if raw and raw.isdigit() else None
    if record is None:
        raise InvalidInput("form", field, "not found")
    return record


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
        actor=current_actor(),
    )
    if region is not None and form.cutoff_time.data != region.cutoff_time:
        moved = change_cutoff_time(
            g.session,
            region=saved,
            cutoff_time=form.cutoff_time.data,
            now=utcnow(),
            actor=current_actor(),
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
        actor=current_actor(),
    )


def _warehouse_choices(form: Form) -> None:
    form.warehouse.choices = record_choices(Warehouse)


def _station_choices(form: Form) -> None:
    form.station.choices = record_choices(GridStation)


def _save_station(form: Form, station: GridStation | None) -> GridStation:
    return save_station(
        g.session,
        station=station,
        warehouse=_get(Warehouse, form.warehouse.data, "warehouse"),
        code=form.code.data,
        name=form.name.data,
        lat=form.lat.data,
        lon=form.lon.data,
        actor=current_actor(),
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
        actor=current_actor(),
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
        supplier=form.supplier.data or "",
        actor=current_actor(),
    )


def _zone_label(zone: str) -> str:
    return {"ambient": _("Ambient"), "chilled": _("Chilled"), "frozen": _("Frozen")}.get(zone, zone)


# deals


def _deal_choices(form: Form) -> None:
    form.region.choices = region_choices()
    form.product.choices = record_choices(Product, key="sku")


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
        actor=current_actor(),
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
    form.region.choices = record_choices(Region, value="code")
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
    return save_vehicle(g.session, cells=cells, actor=current_actor())


def _kind_label(kind: str) -> str:
    return {"trunk": _("Trunk"), "last_mile": _("Last mile")}.get(kind, kind)


# users


def _user_choices(form: Form) -> None:
    form.region.choices = [("", "—"), *record_choices(Region, value="code")]


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
            actor=current_actor(),
        )
    return change_user(
        g.session,
        user=user,
        role=role,
        leader_code=leader,
        region_code=region,
        locale=locale,
        actor=current_actor(),
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
            search=Region.code,
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
            lambda form: setattr(form.region, "choices", region_choices()),
            on_map=True,
            search=Warehouse.code,
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
            search=GridStation.code,
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
            search=Leader.code,
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
                "supplier": p.supplier or "",
            },
            _save_product,
            search=Product.sku,
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
            search=Vehicle.code,
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
            search=User.username,
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
    """A page of the kind's records in SQL (50 a page), those whose code holds ?q= if given."""
    kind = _kind(name)
    page = page_number()
    wanted = parse(form_of({"q": Text(max_length=64)}), request.args)["q"].data
    order = kind.order if isinstance(kind.order, tuple) else (kind.order,)
    query: Any = select(kind.model).order_by(*order)
    if wanted and kind.search is not None:
        query = query.where(kind.search.contains(wanted, autoescape=True))
    rows = list(g.session.scalars(query.offset((page - 1) * PAGE).limit(PAGE + 1)))
    return render_template(
        "admin/list.html",
        kind=kind,
        rows=[(r.id, kind.cells(r)) for r in rows[:PAGE]],
        page=page,
        more=len(rows) > PAGE,
        q=wanted,
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
        return _refused_form(kind, record, form, field_error(form, field, detail))
    try:
        saved = kind.save(form, record)
    except InvalidInput as err:
        return _refused_form(kind, record, form, field_error(form, err.field, err.message))
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
        set_user_active(g.session, user=user, active=wanted, actor=current_actor())
    except InvalidInput as err:
        g.rollback = True
        g.session.rollback()
        kind = KINDS["users"]
        form = UserForm(data=_user_form(user))
        _user_choices(form)
        return _form_page(
            kind, user, status=422, form=form, error=field_error(form, err.field, err.message)
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
        reset_password(g.session, user=user, password=form.password.data, actor=current_actor())
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
