"""Test data for the portal: a cut-off wave at two points, one account per role, a second region."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time

from factories import DELIVERY, World, make_world
from sqlalchemy.orm import Session

from fulfilment.accounts.models import Role, User
from fulfilment.accounts.services import create_user
from fulfilment.core.models import GridStation, Leader, Order, Region, Warehouse, Wave
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.cutoff import cut_off_wave

PASSWORD = "correct horse battery"
USERS = {
    "leader1": (Role.LEADER, "L1"),
    "staff1": (Role.PICKUP_STAFF, "L1"),
    "leader2": (Role.LEADER, "L2"),
    "warehouse1": (Role.WAREHOUSE, "SH"),
    "dispatcher1": (Role.DISPATCHER, "SH"),
    "warehouse_bj": (Role.WAREHOUSE, "BJ"),
    "admin": (Role.ADMIN, ""),
}


@dataclass(frozen=True)
class OrderInfo:
    """An order as plain data (the test outlives the session that made it)."""

    id: int
    pickup_code: str
    member_id: int
    line_ids: tuple[int, ...]


@dataclass
class PortalWorld:
    world: World
    wave: Wave
    other_wave: Wave  # in the second region
    orders: dict[str, OrderInfo] = field(default_factory=dict)  # by member id (M1b: M1's 2nd)
    users: dict[str, User] = field(default_factory=dict)


def _second_region(session: Session) -> Wave:
    region = Region(
        code="BJ",
        name="Beijing",
        tz="Asia/Shanghai",
        cutoff_time=time(23, 0),
        delivery_offset_days=1,
        lat=39.9,
        lon=116.4,
        radius_km=80,
    )
    session.add(region)
    session.flush()
    wh = Warehouse(region_id=region.id, code="BJ-WH", name="W", lat=39.9, lon=116.3)
    session.add(wh)
    session.flush()
    st = GridStation(
        region_id=region.id, warehouse_id=wh.id, code="BJ-GS", name="S", lat=39.9, lon=116.4
    )
    session.add(st)
    session.flush()
    session.add(
        Leader(
            region_id=region.id,
            station_id=st.id,
            code="B1",
            name="北京团长",
            phone="13900000000",
            pickup_name="Beijing point",
            lat=39.91,
            lon=116.41,
        )
    )
    session.flush()
    from factories import utc

    wave, _ = cut_off_wave(session, region=region, delivery_date=DELIVERY, now=utc(2026, 3, 10))
    return wave


def make_portal_world(
    session: Session,
    *,
    member_name: str = "张小明",
    tiers: list[tuple[int, int]] | None = None,
    extra: tuple = (),
) -> PortalWorld:
    """Point L1 has four orders from three members (M1 twice), point L2 one; the wave is cut off.

    Orders are placed a minute apart in the order M1, M2, M3, M1 again (latest), then L2's M9,
    then the `extra` ones: (member, name, phone, leader code, [(sku, qty)]); a member's third
    order is keyed M1c, and so on. `tiers` (min units, price in cents) apply to every deal (7
    APPLE, 3 MILK, 1 PRAWN sold)."""
    world = make_world(session, leaders=2, tiers=tiers)
    placed = [
        ("M1", member_name, "13812345678", "L1", [("APPLE", 2), ("MILK", 1)]),
        ("M2", "李四", "13900001111", "L1", [("APPLE", 1)]),
        ("M3", "王五", "13700002222", "L1", [("APPLE", 3), ("PRAWN", 1)]),
        ("M1", member_name, "13812345678", "L1", [("MILK", 2)]),
        ("M9", "赵六", "13600003333", "L2", [("APPLE", 1)]),
        *extra,
    ]
    orders = {}
    for n, (member, name, phone, leader, lines) in enumerate(placed):
        order = place_order(
            session,
            region=world.region,
            leader_code=leader,
            member=MemberRef(member, name, phone),
            lines=[LineRequest(sku, q) for sku, q in lines],
            placed_at=world.before_cutoff(120 - n),
        )
        key = member
        for suffix in "bcd":
            if key not in orders:
                break
            key = f"{member}{suffix}"
        orders[key] = order
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    infos = {}
    for key, order in orders.items():
        o = session.get(Order, order.id)
        infos[key] = OrderInfo(o.id, o.pickup_code, o.member_id, tuple(ln.id for ln in o.lines))
    other = _second_region(session)
    users = {}
    for username, (role, scope) in USERS.items():
        users[username] = create_user(
            session,
            username=username,
            password=PASSWORD,
            role=role,
            leader_code=scope if role.at_point else None,
            region_code=scope if role.in_region else None,
            locale="en" if username == "admin" else None,
        )
    session.flush()
    return PortalWorld(world, wave, other, infos, users)


def add_next_wave_order(session: Session, portal: PortalWorld, *, code: str) -> int:
    """An L1 order of member M7 (钱七) for the day after DELIVERY, cut off, carrying `code`.
    Codes are unique per point and wave only, so another wave's order may share one."""
    from datetime import timedelta

    from sqlalchemy import update

    region = session.get(Region, portal.world.region.id)
    order = place_order(
        session,
        region=region,
        leader_code="L1",
        member=MemberRef("M7", "钱七", "13500007777"),
        lines=[LineRequest("APPLE", 1)],
        placed_at=portal.world.after_cutoff(5),  # late for DELIVERY: the next day's wave
    )
    cut_off_wave(
        session,
        region=region,
        delivery_date=DELIVERY + timedelta(days=1),
        now=portal.world.after_cutoff(5) + timedelta(days=1),
    )
    session.execute(update(Order).where(Order.id == order.id).values(pickup_code=code))
    return order.id


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF_RE.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    """Sign in through the form. The client asks for English pages unless a test says otherwise."""
    client.environ_base.setdefault("HTTP_ACCEPT_LANGUAGE", "en")
    token = csrf_token(client, "/login")
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def post(client, path: str, data: dict, *, token_from: str | None = None, **kw):
    """A form POST with the CSRF token taken from a page of the signed-in user."""
    token = csrf_token(client, token_from or "/leader/today")
    return client.post(path, data={**data, "csrf_token": token}, **kw)
