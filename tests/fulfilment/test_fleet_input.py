"""Issue 22 item 13: `groupbuy import-fleet` names the line and field of every value it cannot
store, on SQLite and PostgreSQL alike (the session fixture runs each test on both): never a
traceback, never a value stored otherwise than it was written."""

import pytest
from factories import make_world
from sqlalchemy import func, select

from fulfilment.catalogue.fleet import Vehicle, import_fleet
from fulfilment.core.csvimport import ImportFailed

HEADER = "code,region,home,kind,weight_kg,volume_l,crates,zones,shift_start,shift_end\n"
GOOD = "T1,SH,WH1,trunk,5,30,600,ambient,03:00,09:00"


def _row(**changes: str) -> str:
    cells = dict(zip(HEADER.strip().split(","), GOOD.split(","), strict=True))
    cells.update(changes)
    return ",".join(cells.values())


@pytest.mark.parametrize(
    ("row", "field", "limit"),
    [
        (_row(weight_kg="1e30"), "weight_kg", 100_000),
        (_row(weight_kg="5000000"), "weight_kg", 100_000),
        (_row(volume_l="-1"), "volume_l", 500_000),
        (_row(crates="NaN"), "crates", None),
        (_row(crates="１２"), "crates", None),
        (_row(shift_start="03:00+08:00"), "shift_start", None),
        (_row(code="T" * 41), "code", 32),
        (_row(code="T\x001"), "code", None),
        (_row(zones="ambient\x00"), "zones", None),
        (GOOD + ",extra", "row", 10),
    ],
)
def test_a_value_that_cannot_be_stored_is_named_by_line_and_field(session, row, field, limit):
    """A huge or negative number, a non-ASCII digit, a time with an offset, a code over its
    column, a NUL, a row longer than the header: each is the row's error, nothing stored."""
    make_world(session)
    text = HEADER + "T0,SH,WH1,trunk,5,30,600,ambient,03:00,09:00\n" + row + "\n"
    with pytest.raises(ImportFailed) as caught:
        import_fleet(session, text=text)
    assert [(e.line, e.field, e.limit) for e in caught.value.errors] == [(3, field, limit)]
    assert session.scalar(select(func.count()).select_from(Vehicle)) == 0
