"""The handover tables: one record per (crate, step), a crate missing at loading with its
reason, and a route marked loaded. Append-only: a handover is never changed or deleted."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from fulfilment.core.models import Base, _enum, _never_delete


class Step(StrEnum):
    LOADED = "loaded"  # onto its truck at the warehouse (per trunk route)
    RECEIVED = "received"  # at its grid station, off the truck (trunk deliveries)
    DELIVERED = "delivered"  # at its pickup point, scanned by the leader


class Handover(Base):
    """A crate handed over at one step: who scanned it, when, where (route, station or point)."""

    __tablename__ = "handover"
    __table_args__ = (UniqueConstraint("crate_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    crate_id: Mapped[int] = mapped_column(ForeignKey("crate.id"))
    step: Mapped[Step] = mapped_column(_enum(Step))
    at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    route_id: Mapped[int | None] = mapped_column(ForeignKey("route_plan_route.id"))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("grid_station.id"))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("leader.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # "qr" (the crate id) or "code" (typed)


class MissingCrate(Base):
    """A crate not there when its route was loaded, recorded with the reason (one per crate)."""

    __tablename__ = "handover_missing"
    __table_args__ = (UniqueConstraint("crate_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    crate_id: Mapped[int] = mapped_column(ForeignKey("crate.id"))
    step: Mapped[Step] = mapped_column(_enum(Step))
    route_id: Mapped[int] = mapped_column(ForeignKey("route_plan_route.id"), index=True)
    reason: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))


class RouteLoaded(Base):
    """A truck route marked loaded: every crate scanned or recorded missing. Once per route."""

    __tablename__ = "route_loaded"

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("route_plan_route.id"), unique=True)
    at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    scanned: Mapped[int]
    missing: Mapped[int]


for _cls in (Handover, MissingCrate, RouteLoaded):
    event.listen(_cls, "before_delete", _never_delete)
