"""Arrival confirmation as a service: shortages become refunds at the price paid after the
final tier price; confirmations racing on PostgreSQL record one arrival and one set of refunds."""

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import DELIVERY, make_world
from portal_factories import make_portal_world
from sqlalchemy import func, select

from fulfilment.accounts.models import Role, User
from fulfilment.accounts.services import create_user
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Base, Leader, Product, Refund, RefundReason, Wave
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.points.arrivals import (
    Arrival,
    ArrivalCorrection,
    Shortage,
    confirm_arrival,
    correct_arrival,
)
from fulfilment.waves.cutoff import cut_off_wave


def test_shortage_refund_uses_the_price_after_the_final_tier(session):
    """A line paid 1000 whose deal ended at the 700 tier is owed 700 per short unit (the tier
    refund already returned the other 300)."""
    world = make_world(session, tiers=[(3, 700)])
    for n in range(3):
        place_order(
            session,
            region=world.region,
            leader_code="L1",
            member=MemberRef(f"M{n}"),
            lines=[LineRequest("APPLE", 1)],
            placed_at=world.before_cutoff(60 - n),
        )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    user = create_user(session, username="l1", password="x" * 8, role=Role.LEADER, leader_code="L1")
    apple = world.products["APPLE"].id
    arrival, created = confirm_arrival(
        session,
        wave=wave,
        leader=world.leaders[0],
        counted={apple: 2},
        user_id=user.id,
        actor=user.actor,
    )
    assert created
    owed = session.scalars(select(Refund).where(Refund.reason == RefundReason.SHORTAGE)).all()
    assert [r.amount_cents for r in owed] == [700]


def test_every_expected_sku_must_be_counted(session):
    """A count missing for an expected SKU is refused naming it, and nothing is written."""
    world = make_world(session)
    place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("M1"),
        lines=[LineRequest("APPLE", 1), LineRequest("MILK", 1)],
        placed_at=world.before_cutoff(),
    )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    user = create_user(session, username="l1", password="x" * 8, role=Role.LEADER, leader_code="L1")
    with pytest.raises(InvalidInput) as err:
        confirm_arrival(
            session,
            wave=wave,
            leader=world.leaders[0],
            counted={world.products["APPLE"].id: 1},
            user_id=user.id,
            actor=user.actor,
        )
    assert err.value.field == "counted[MILK]"
    assert session.scalar(select(func.count()).select_from(Arrival)) == 0


@pytest.mark.postgres
def test_concurrent_confirmations_record_one_arrival(pg_url):
    """Ten confirmations of one point's delivery at once: one arrival, one set of refunds; the
    others get the winner's arrival back (created False), none an error."""
    engine = make_engine(pg_url, pool_size=10, max_overflow=0)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_portal_world(s)
    start = threading.Barrier(10)

    def attempt(_n: int) -> bool:
        start.wait()
        with session_scope(sessions) as s:
            leader = s.scalar(select(Leader).where(Leader.code == "L1"))
            user = s.scalar(select(User).where(User.username == "leader1"))
            wave = s.get(Wave, world.wave.id)
            milk = s.scalar(select(Product.id).where(Product.sku == "MILK"))
            apple = s.scalar(select(Product.id).where(Product.sku == "APPLE"))
            prawn = s.scalar(select(Product.id).where(Product.sku == "PRAWN"))
            _, created = confirm_arrival(
                s,
                wave=wave,
                leader=leader,
                counted={apple: 6, milk: 2, prawn: 1},
                user_id=user.id,
                actor=user.actor,
            )
            return created

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(attempt, range(10)))
    assert results.count(True) == 1
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Arrival)) == 1
        shortage = select(func.count()).where(Refund.reason == RefundReason.SHORTAGE)
        assert s.scalar(shortage) == 1
    engine.dispose()


def test_a_points_expected_goods_equal_its_sorting_list(session):
    """What Today and the arrival form expect at a point is exactly the point's sorting list
    from the cutoff's aggregation (same SKUs, units and bags)."""
    from fulfilment.points.point import list_expected
    from fulfilment.waves.picklists import list_sorting_lists

    world = make_portal_world(session)
    wave = session.get(Wave, world.wave.id)
    for leader in world.world.leaders:
        [sorting] = list_sorting_lists(session, wave, leader_code=leader.code)
        expected = list_expected(session, wave=wave, leader=leader)
        assert [(r.sku, r.quantity, r.zone.value) for r in expected] == [
            (r.sku, r.quantity, r.zone) for r in sorting.rows
        ]
        assert sum(r.bags for r in expected) == len(sorting.members)


def _confirm_in(sessions, world, counted: dict[str, int]) -> int:
    """Confirm L1's delivery with counts by SKU; returns the arrival id."""
    with session_scope(sessions) as s:
        leader = s.scalar(select(Leader).where(Leader.code == "L1"))
        user = s.scalar(select(User).where(User.username == "leader1"))
        ids = dict(s.execute(select(Product.sku, Product.id)).all())
        arrival, _ = confirm_arrival(
            s,
            wave=s.get(Wave, world.wave.id),
            leader=leader,
            counted={ids[sku]: n for sku, n in counted.items()},
            user_id=user.id,
            actor=user.actor,
        )
        return arrival.id


@pytest.mark.postgres
def test_concurrent_identical_corrections_refund_once(pg_url):
    """A double-tapped correction (MILK 3 → 2, sent eight times at once) records one correction
    row and one refund for the one broken unit; the others see the count already recorded."""
    engine = make_engine(pg_url, pool_size=8, max_overflow=0)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_portal_world(s)
    arrival_id = _confirm_in(sessions, world, {"APPLE": 6, "MILK": 3, "PRAWN": 1})
    start = threading.Barrier(8)

    def attempt(_n: int) -> bool:
        with session_scope(sessions) as s:
            user = s.scalar(select(User).where(User.username == "leader1"))
            milk = s.scalar(select(Product.id).where(Product.sku == "MILK"))
            arrival = s.get(Arrival, arrival_id)
            start.wait()  # all eight hold a session and the arrival; they race for the change
            made = correct_arrival(
                s, arrival=arrival, product_id=milk, counted=2, user_id=user.id, actor=user.actor
            )
            return made is not None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(ArrivalCorrection)) == 1
        refunds = s.scalars(
            select(Refund.amount_cents).where(Refund.reason == RefundReason.SHORTAGE)
        ).all()
        assert refunds == [1000]
    engine.dispose()


def _collect(session, code: str) -> None:
    from datetime import date

    from fulfilment.points.pickups import verify_pickup

    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "staff1"))
    verify_pickup(
        session,
        leader=leader,
        code=code,
        user_id=user.id,
        actor=user.actor,
        today=date(2026, 3, 10),
    )


def _correct(session, arrival_id: int, sku: str, counted: int):
    user = session.scalar(select(User).where(User.username == "leader1"))
    return correct_arrival(
        session,
        arrival=session.get(Arrival, arrival_id),
        product_id=session.scalar(select(Product.id).where(Product.sku == sku)),
        counted=counted,
        user_id=user.id,
        actor=user.actor,
    )


def test_a_corrections_shortage_never_lands_on_a_collected_order(session):
    """MILK 3 → 1 after M1's latest order (2 MILK) was handed over: the short units skip that
    collected bag; one goes on M1's first order, still waiting (a refund); the other finds no
    uncollected line and is a loss at the point: no member refund, recorded in the audit entry
    and in the arrival's losses."""
    from fulfilment.core.models import AuditEntry

    world = make_portal_world(session)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "leader1"))
    ids = dict(session.execute(select(Product.sku, Product.id)).all())
    arrival, _ = confirm_arrival(
        session,
        wave=session.get(Wave, world.wave.id),
        leader=leader,
        counted={ids["APPLE"]: 6, ids["MILK"]: 3, ids["PRAWN"]: 1},
        user_id=user.id,
        actor=user.actor,
    )
    _collect(session, world.orders["M1b"].pickup_code)
    _correct(session, arrival.id, "MILK", 1)
    owed = session.execute(
        select(Refund.order_line_id, Refund.amount_cents).where(
            Refund.reason == RefundReason.SHORTAGE
        )
    ).all()
    m1_milk = world.orders["M1"].line_ids[1]  # M1's first order: APPLE, then MILK
    assert [tuple(r) for r in owed] == [(m1_milk, 1000)]
    from fulfilment.points.arrivals import point_losses

    assert point_losses(session, arrival) == {ids["MILK"]: 1}
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "arrival.corrected")
    ).one()
    assert entry.after["lost_at_point"] == 1


def test_a_confirmation_leaves_collected_orders_out_of_the_shortage(session):
    """Goods handed over on the delivery day before the count: a shortage at confirmation goes
    only on bags still waiting, and what no waiting bag can carry is a loss at the point."""
    world = make_portal_world(session)
    _collect(session, world.orders["M1b"].pickup_code)  # MILK 2 handed over
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "leader1"))
    ids = dict(session.execute(select(Product.sku, Product.id)).all())
    arrival, _ = confirm_arrival(
        session,
        wave=session.get(Wave, world.wave.id),
        leader=leader,
        counted={ids["APPLE"]: 6, ids["MILK"]: 0, ids["PRAWN"]: 1},
        user_id=user.id,
        actor=user.actor,
    )
    owed = session.scalars(
        select(Refund.order_line_id).where(Refund.reason == RefundReason.SHORTAGE)
    ).all()
    assert owed == [world.orders["M1"].line_ids[1]]
    from fulfilment.points.arrivals import point_losses

    assert point_losses(session, arrival) == {ids["MILK"]: 2}


def test_lowering_a_surplus_count_owes_nothing(session):
    """A point that counted 4 MILK of 3 expected and corrects it to 3 still has every unit its
    members ordered: no shortage, no refund."""
    world = make_portal_world(session)
    arrival_id = _confirm_here(session, world, {"APPLE": 6, "MILK": 4, "PRAWN": 1})
    assert _correct(session, arrival_id, "MILK", 3) is not None
    assert session.scalars(select(Refund).where(Refund.reason == RefundReason.SHORTAGE)).all() == []


def _confirm_here(session, world, counted: dict[str, int]) -> int:
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "leader1"))
    ids = dict(session.execute(select(Product.sku, Product.id)).all())
    arrival, _ = confirm_arrival(
        session,
        wave=session.get(Wave, world.wave.id),
        leader=leader,
        counted={ids[sku]: n for sku, n in counted.items()},
        user_id=user.id,
        actor=user.actor,
    )
    return arrival.id


def _png_bomb(side: int = 20000) -> bytes:
    """A valid PNG of side × side one-bit pixels, all black: about 50 KB on the wire, hundreds of
    megabytes once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" * (1 + side // 8)  # filter byte, then the row's bits
    pixels = zlib.compress(row * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [20000, 10000, 7072])
def test_a_decompression_bomb_is_a_rejected_photo(session, tmp_path, side):
    """A small PNG claiming 20000 × 20000 pixels (past Pillow's own error limit), 10000 × 10000
    (where Pillow only warns) or just over 50 megapixels is refused as a photo with too many
    pixels (the limit given as a field), before it is decoded; nothing is stored."""
    from fulfilment.points.arrivals import (
        MAX_PHOTO_PIXELS,
        Photo,
        PhotoProblem,
        PhotoRejected,
        save_photo,
    )

    world = make_portal_world(session)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    bomb = _png_bomb(side)
    assert len(bomb) < 100_000
    with pytest.raises(PhotoRejected) as rejected:
        save_photo(
            session,
            leader=leader,
            user_id=world.users["leader1"].id,
            data=bomb,
            folder=tmp_path / "photos",
        )
    assert (rejected.value.problem, rejected.value.limit) == (
        PhotoProblem.TOO_MANY_PIXELS,
        MAX_PHOTO_PIXELS,
    )
    assert rejected.value.field == "photo"
    assert session.scalars(select(Photo)).all() == []
    assert not (tmp_path / "photos").exists() or list((tmp_path / "photos").iterdir()) == []


def test_a_photo_is_stored_without_its_exif(session, tmp_path):
    """A phone's JPEG with GPS coordinates in its EXIF is stored re-encoded with no EXIF at all
    (no GPS, no camera data), still a JPEG of the same size in pixels."""
    from PIL import Image

    from fulfilment.points.arrivals import save_photo

    world = make_portal_world(session)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    image = Image.new("RGB", (64, 48), (10, 120, 200))
    exif = image.getexif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (31.0, 14.0, 1.5)  # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "E", (121.0, 28.0, 2.5)
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    sent = buf.getvalue()
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(0x8825)  # the upload has GPS
    photo = save_photo(
        session,
        leader=leader,
        user_id=world.users["leader1"].id,
        data=sent,
        folder=tmp_path / "photos",
    )
    stored = (tmp_path / "photos" / photo.stored_name).read_bytes()
    assert b"Exif" not in stored and b"PhoneMaker" not in stored
    kept = Image.open(io.BytesIO(stored))
    assert (kept.format, kept.size) == ("JPEG", (64, 48))
    assert dict(kept.getexif()) == {} and "exif" not in kept.info
    assert photo.size_bytes == len(stored)


def test_an_oversized_photo_names_its_byte_limit(session, tmp_path):
    """An upload over 5 MB is refused before Pillow reads it, with the byte limit as a field."""
    from fulfilment.points.arrivals import MAX_PHOTO_BYTES, PhotoProblem, PhotoRejected, save_photo

    world = make_portal_world(session)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    with pytest.raises(PhotoRejected) as rejected:
        save_photo(
            session,
            leader=leader,
            user_id=world.users["leader1"].id,
            data=b"\xff" * (MAX_PHOTO_BYTES + 1),
            folder=tmp_path / "photos",
        )
    assert (rejected.value.problem, rejected.value.limit) == (
        PhotoProblem.TOO_LARGE,
        5 * 1024 * 1024,
    )


def _race_correction_and_pickup(sessions, world, arrival_id: int) -> None:
    """MILK 3 → 1 on L1's arrival and the handover of M1's latest bag, started together."""
    from datetime import date

    from fulfilment.points.pickups import verify_pickup

    start = threading.Barrier(2)

    def correct() -> None:
        with session_scope(sessions) as s:
            arrival = s.get(Arrival, arrival_id)
            start.wait()
            _correct(s, arrival.id, "MILK", 1)

    def collect() -> None:
        with session_scope(sessions) as s:
            leader = s.scalar(select(Leader).where(Leader.code == "L1"))
            user = s.scalar(select(User).where(User.username == "staff1"))
            start.wait()
            verify_pickup(
                s,
                leader=leader,
                code=world.orders["M1b"].pickup_code,
                user_id=user.id,
                actor=user.actor,
                today=date(2026, 3, 10),
            )

    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(correct), pool.submit(collect)]:
            done.result()


@pytest.mark.postgres
def test_a_correction_racing_a_pickup_never_charges_the_bag_handed_over(pg_url):
    """MILK 3 → 1 corrected while M1's latest bag (2 MILK) is being handed over, ten times over:
    whichever commits first, what was handed over plus the units charged short on that line is
    exactly the 2 ordered (a bag handed over in full is never also refunded)."""
    from sqlalchemy import text

    from fulfilment.points.pickups import PickupLine

    engine = make_engine(pg_url, pool_size=2, max_overflow=0)
    sessions = make_session_factory(engine)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    for n in range(10):
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        with session_scope(sessions) as s:
            world = make_portal_world(s)
        arrival_id = _confirm_in(sessions, world, {"APPLE": 6, "MILK": 3, "PRAWN": 1})
        _race_correction_and_pickup(sessions, world, arrival_id)
        line = world.orders["M1b"].line_ids[0]
        with session_scope(sessions) as s:
            handed = s.scalar(select(PickupLine.quantity).where(PickupLine.order_line_id == line))
            short = s.scalar(
                select(func.coalesce(func.sum(Shortage.quantity), 0)).where(
                    Shortage.order_line_id == line
                )
            )
        assert handed + short == 2, (n, handed, short)
    engine.dispose()
