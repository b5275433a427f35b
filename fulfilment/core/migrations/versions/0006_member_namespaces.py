"""members: CSV member ids namespaced by region (csv:<region>:<id>); merged members split

Before, a CSV import stored the platform's member id as it came, in a column unique across all
regions: SH's member 1001 and BJ's member 1001 became one row (the first region's name and
phone). Each member with imported orders is renamed `csv:<region code>:<id>` after the region
of its row; where its imported orders come from more than one region, every other region gets a
member row of its own (its first order's leader; the name is the platform's id and the phone
empty, since the merged row only kept the first region's) and that region's orders point to it.
API members (`p<client id>:<id>`) and members with no imported order are left as they are.
Data only: no schema change, so no batch mode is needed on SQLite.

Revision ID: 0006
Revises: 0004 (re-point to 0005 at merge: the refund export batches' migration)
Create Date: 2026-12-04 15:50:00
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

EXTERNAL_ID_WIDTH = 64
NAMESPACED = re.compile(r"^(p[0-9]+|csv):", re.IGNORECASE)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT m.id, m.external_id, m.region_id, o.region_id, r.code, MIN(o.id)"
            " FROM member m JOIN orders o ON o.member_id = m.id"
            " JOIN region r ON r.id = o.region_id"
            " WHERE o.source = 'csv'"
            " GROUP BY m.id, m.external_id, m.region_id, o.region_id, r.code"
            " ORDER BY m.id, MIN(o.id)"
        )
    ).all()
    by_member: dict[int, list] = {}
    for row in rows:
        by_member.setdefault(row[0], []).append(row)
    for member_id, regions in by_member.items():
        raw, home = regions[0][1], regions[0][2]
        if NAMESPACED.match(raw):
            continue
        keep = next((r for r in regions if r[3] == home), regions[0])
        for member_region in regions:
            _, _, _, region_id, code, first_order = member_region
            external_id = f"csv:{code}:{raw}"
            if len(external_id) > EXTERNAL_ID_WIDTH:
                raise RuntimeError(
                    f"member {member_id}: {external_id!r} is longer than the column's "
                    f"{EXTERNAL_ID_WIDTH} characters; shorten the platform id and migrate again"
                )
            if member_region is keep:
                conn.execute(
                    sa.text("UPDATE member SET external_id = :e, region_id = :r WHERE id = :id"),
                    {"e": external_id, "r": region_id, "id": member_id},
                )
                continue
            leader_id = conn.execute(
                sa.text("SELECT leader_id FROM orders WHERE id = :id"), {"id": first_order}
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO member (region_id, leader_id, external_id, name, phone)"
                    " VALUES (:r, :l, :e, :n, '')"
                ),
                {"r": region_id, "l": leader_id, "e": external_id, "n": raw[:100]},
            )
            split_id = conn.execute(
                sa.text("SELECT id FROM member WHERE external_id = :e"), {"e": external_id}
            ).scalar_one()
            conn.execute(
                sa.text(
                    "UPDATE orders SET member_id = :new WHERE member_id = :old AND region_id = :r"
                ),
                {"new": split_id, "old": member_id, "r": region_id},
            )


def downgrade() -> None:
    """The ids lose their namespace where that leaves them unique; members split stay split
    (their orders were two people's), keeping their namespaced ids."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, external_id FROM member WHERE external_id LIKE 'csv:%'")
    ).all()
    taken = {e for (e,) in conn.execute(sa.text("SELECT external_id FROM member"))}
    for member_id, external_id in rows:
        raw = external_id.split(":", 2)[2]
        if raw in taken:
            continue
        taken.add(raw)
        conn.execute(
            sa.text("UPDATE member SET external_id = :e WHERE id = :id"),
            {"e": raw, "id": member_id},
        )
