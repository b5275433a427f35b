"""The forms' validation layer (web/forms.py): nothing a column cannot hold gets through."""

from datetime import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict
from wtforms import Form

from web.admin.forms import Clock, Coordinate, Money
from web.forms import INT32_MAX, InvalidForm, Text, WholeNumber, form_of, parse, required


class Correction(Form):
    product = WholeNumber(validators=[required])
    counted = WholeNumber(validators=[required], maximum=10_000)
    note = Text(max_length=500)


def _parse(**fields):
    return parse(Correction, MultiDict(fields))


def test_a_good_form_gives_typed_values():
    """Digits become ints and the note loses its surrounding white space."""
    form = _parse(product="12", counted=" 3 ", note="  破了一盒 ")
    assert (form.product.data, form.counted.data, form.note.data) == (12, 3, "破了一盒")


@pytest.mark.parametrize(
    "raw", ["²", "١٢", "-1", "+3", "1.0", "1e3", "3 4", "99999999999999999999", str(INT32_MAX + 1)]
)
def test_what_is_not_a_storable_whole_number_is_refused_with_its_field(raw):
    """Superscripts, other scripts' digits, signs, decimals and numbers beyond the column are a
    clear refusal naming the field, never a 500 further down."""
    with pytest.raises(InvalidForm) as err:
        _parse(product=raw, counted="1")
    assert err.value.field == "product"


def test_a_bound_below_the_column_is_kept():
    """A field may be narrower than its column: counted is at most 10,000 here."""
    with pytest.raises(InvalidForm) as err:
        _parse(product="1", counted="10001")
    assert (err.value.field, err.value.message) == ("counted", "must be from 0 to 10000")


@pytest.mark.parametrize("note", ["a\x00b", "\ud800", "x" * 501, "bell\x07"])
def test_text_a_column_cannot_hold_is_refused(note):
    """NUL, a lone surrogate, another control character or too long: refused, naming the note."""
    with pytest.raises(InvalidForm) as err:
        _parse(product="1", counted="1", note=note)
    assert err.value.field == "note"


def test_a_missing_required_field_is_named():
    """An empty required field is refused with its name."""
    with pytest.raises(InvalidForm) as err:
        _parse(product="", counted="1")
    assert (err.value.field, err.value.message) == ("product", "is required")


@settings(deadline=None)  # a loaded CI machine can pause any example past 200 ms
@given(st.dictionaries(st.sampled_from(["product", "counted", "note"]), st.text(max_size=30)))
def test_any_posted_text_is_either_refused_or_storable(fields):
    """Whatever is posted, the layer either refuses it or hands over values the columns hold."""
    try:
        form = _parse(**fields)
    except InvalidForm:
        return
    assert 0 <= form.product.data <= INT32_MAX
    assert 0 <= form.counted.data <= 10_000
    assert len(form.note.data) <= 500
    assert "\x00" not in form.note.data
    form.note.data.encode("utf-8")  # no lone surrogate


def test_a_form_built_for_the_page_checks_each_of_its_fields():
    """One count per SKU of the day: each field is checked by the same layer."""
    counts = form_of({f"count-{pid}": WholeNumber(validators=[required]) for pid in (7, 9)})
    form = parse(counts, MultiDict({"count-7": "2", "count-9": "0"}))
    assert (form["count-7"].data, form["count-9"].data) == (2, 0)
    with pytest.raises(InvalidForm) as err:
        parse(counts, MultiDict({"count-7": "2", "count-9": "²"}))
    assert err.value.field == "count-9"


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        (Coordinate(limit=90), "31.25", 31.25),
        (Clock(), "07:30", time(7, 30)),
        (Money(), "12.5", 1250),
    ],
)
def test_the_admins_parsed_fields_read_their_value_and_empty_is_none(field, raw, value):
    """A coordinate, a clock and an amount read their typed value; an empty field is None."""
    form = parse(form_of({"f": field}), {"f": raw})
    assert form["f"].data == value
    assert parse(form_of({"f": field}), {"f": "  "})["f"].data is None


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        (Coordinate(limit=90), "91", "must be a number from -90 to 90"),
        (Coordinate(limit=90), "NaN", "must be a number from -90 to 90"),
        (Clock(), "25:00", "must be a time HH:MM"),
        (Clock(), "07:00Z", "must be a time HH:MM without an offset"),
        (Money(), "1.234", "must be an amount in yuan with at most two decimals"),
        (Money(), "1000000.01", "must be at most 1,000,000 yuan"),
        (Money(), "1\x002", "contains a control character"),
    ],
)
def test_the_admins_parsed_fields_refuse_with_their_reason(field, raw, message):
    """What a coordinate, a clock or an amount cannot be is refused with why, the text layer's
    checks first; the refused field holds no value."""
    form = form_of({"f": field})(MultiDict({"f": raw}))
    assert not form.validate()
    assert form.errors["f"] == [message]
    assert form["f"].data in (None, "")
