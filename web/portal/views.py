"""The leader and pickup-point portal: today's delivery, arrival confirmation (到货确认),
pickup verification (核销) and the orders not yet collected. Mobile first; no JS needed."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import NotFound as HTTPNotFound
from wtforms import Form

from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import Leader, Member, Refund, RefundReason, Wave, WaveStatus, utcnow
from fulfilment.core.privacy import mask_name
from fulfilment.handovers.scans import (
    ScanRefused,
    point_crates,
    scan_delivered,
    units_not_delivered,
)
from fulfilment.points.arrivals import (
    DiscrepancyKind,
    DiscrepancyReport,
    PhotoProblem,
    PhotoRejected,
    confirm_arrival,
    correct_arrival,
    default_assignment,
    find_arrival,
    get_photo,
    list_arrival_report,
    list_candidate_lines,
    point_losses,
    save_photo,
)
from fulfilment.points.day import order_state, point_day, search_orders
from fulfilment.points.pickups import (
    CodeAmbiguous,
    PickupRefused,
    Refusal,
    count_per_day,
    group_by_member,
    hand_over_member,
    list_by_phone_tail,
    list_uncollected,
    lookup_code,
    reveal_phone,
    verify_pickup,
)
from fulfilment.points.point import bag_numbers, get_point_member, get_point_order, local_today
from web.forms import (
    Digits,
    InvalidForm,
    Text,
    WholeNumber,
    form_of,
    parse,
    parse_id,
    required,
)
from web.limits import pickup_code_limit
from web.scanning import ScanForm, refusal_message
from web.security import point_required


class WaveForm(Form):
    wave = WholeNumber(validators=[required])


class CorrectionForm(Form):
    product = WholeNumber(validators=[required])
    counted = WholeNumber(validators=[required])
    note = Text(max_length=500)


class ChosenOrderForm(Form):
    order = WholeNumber(validators=[required])


class MemberForm(Form):
    member = WholeNumber(validators=[required])


class CodeForm(Form):
    code = Digits(max_length=40)


class PhoneTailForm(Form):
    tail = Digits(max_length=20)


class TailMemberForm(Form):
    tail = Digits(max_length=20)
    member = WholeNumber(validators=[required])


bp = Blueprint("leader", __name__, url_prefix="/leader", template_folder="templates")
photos_bp = Blueprint("photos", __name__)


@bp.errorhandler(NotFound)
def _not_found(err: NotFound):
    """Another point's order or member looks exactly like one that does not exist."""
    g.rollback = True
    return current_app.handle_http_exception(HTTPNotFound())


def _leader() -> Leader:
    leader = current_user.user.leader
    if leader is None:  # an account at a point always has one; never guess another
        abort(404)
    return leader


def _today():
    return local_today(g.session, _leader())


@bp.get("/today")
@point_required
def today():
    leader = _leader()
    day = point_day(g.session, leader=leader)
    query = request.args.get("q", "")[:40]
    return render_template(
        "leader/today.html",
        day=day,
        leader=leader,
        arrival=day.arrival,
        query=query,
        orders=search_orders(day.orders, query),
    )


# --- arrival confirmation -------------------------------------------------------------------


def _posted_wave(leader: Leader) -> Wave | None:
    """The wave a posted form was filled in for (it may no longer be the current one after
    midnight); another region's or an open wave is not found."""
    if request.method != "POST" or not request.form.get("wave"):
        return None
    try:
        wave_id = parse(WaveForm, request.form).wave.data
    except InvalidForm:
        abort(404)
    wave = g.session.get(Wave, wave_id)
    if wave is None or wave.region_id != leader.region_id or wave.status != WaveStatus.CUT_OFF:
        abort(404)
    return wave


def _counts_from_form(expected) -> dict[int, int]:
    fields = {f"count-{row.product_id}": WholeNumber(validators=[required]) for row in expected}
    try:
        form = parse(form_of(fields), request.form)
    except InvalidForm as err:
        row = next(r for r in expected if f"count-{r.product_id}" == err.field)
        raise InvalidInput(
            row.sku,
            "counted",
            _("%(product)s: enter the units counted as a whole number.", product=row.name),
        ) from None
    return {row.product_id: form[f"count-{row.product_id}"].data for row in expected}


@bp.route("/arrival", methods=["GET", "POST"])
@point_required
def arrival():
    leader = _leader()
    day = point_day(g.session, leader=leader, wave=_posted_wave(leader))
    if day.wave is None:
        return render_template("leader/arrival.html", day=day, step="none")
    done = find_arrival(g.session, wave=day.wave, leader=leader)
    if done is not None:
        if request.method == "POST":  # confirming again changes nothing
            flash(_("This delivery was already confirmed."))
            return redirect(url_for(".arrival"))
        return _show_arrival(day, done)
    if request.method == "GET":
        return _count_page(day, leader)
    try:
        counts = _counts_from_form(day.expected)
    except InvalidInput as err:  # every count typed stays as typed
        return _count_page(day, leader, error=err.message, status=422, typed=request.form)
    short = {r.product_id: r.quantity - counts[r.product_id] for r in day.expected}
    if request.form.get("step") != "confirm":
        return _review(day, counts, short)
    try:
        assignments, reports = _assignments_and_reports(day, leader, short)
        arrival, created = confirm_arrival(
            g.session,
            wave=day.wave,
            leader=leader,
            counted=counts,
            user_id=current_user.id,
            actor=current_user.actor,
            discrepancies=reports,
            assignments=assignments,
        )
    except InvalidInput as err:
        g.rollback = True
        _discard_photos()
        return _review(
            day, counts, short, error=_input_message(err, day), status=422, typed=request.form
        )
    if not created:  # another confirmation won meanwhile: this one's photos go with it
        g.rollback = True
        _discard_photos()
    flash(_("Arrival confirmed.") if created else _("This delivery was already confirmed."))
    return redirect(url_for(".arrival"))


def _count_page(day, leader, *, error: str | None = None, status: int = 200, typed=None):
    """The count form, its counts starting from the crates scanned delivered (a crate not
    scanned makes its units short until the leader corrects them), and the crates expected."""
    crates = point_crates(g.session, wave=day.wave, leader=leader)
    short = units_not_delivered(g.session, wave=day.wave, leader=leader)
    prefill = {r.product_id: max(0, r.quantity - short.get(r.product_id, 0)) for r in day.expected}
    return render_template(
        "leader/arrival.html",
        day=day,
        step="count",
        crates=crates,
        prefill=prefill,
        error=error,
        typed=typed,
    ), status


@bp.post("/arrival/crates")
@point_required
def scan_crate():
    """A crate scanned (or its code typed) on arrival: one `delivered` handover, or a refusal."""
    leader = _leader()
    day = point_day(g.session, leader=leader, wave=_posted_wave(leader))
    if day.wave is None or find_arrival(g.session, wave=day.wave, leader=leader) is not None:
        return redirect(url_for(".arrival"))
    try:
        code = parse(ScanForm, request.form).code.data
    except InvalidForm:
        return _count_page(day, leader, error=_("Scan or type a crate code."), status=422)
    try:
        done = scan_delivered(
            g.session,
            wave=day.wave,
            leader=leader,
            scanned=code,
            user=current_user.user,
            now=utcnow(),
        )
    except ScanRefused as err:
        g.rollback = True
        message = refusal_message(err, day.wave.region.tz)
        return _count_page(day, leader, error=message, status=409)
    flash(_("Crate %(code)s arrived.", code=done.crate.code))
    return redirect(url_for(".arrival"))


@bp.post("/arrival/correct")
@point_required
def correct():
    """A later, lower count of one SKU after the confirmation: a new entry, never an overwrite."""
    leader = _leader()
    day = point_day(g.session, leader=leader, wave=_posted_wave(leader))
    done = find_arrival(g.session, wave=day.wave, leader=leader) if day.wave else None
    if done is None:
        abort(404)
    try:
        form = parse(CorrectionForm, request.form)
    except InvalidForm as err:
        g.rollback = True
        message = (
            _("The note is too long or holds characters that cannot be stored.")
            if err.field == "note"
            else _("Enter the units counted as a whole number.")
        )
        return _show_arrival(day, done, error=message, typed=request.form)
    try:
        correction = correct_arrival(
            g.session,
            arrival=done,
            product_id=form.product.data,
            counted=form.counted.data,
            user_id=current_user.id,
            actor=current_user.actor,
            note=form.note.data,
        )
    except InvalidInput as err:
        g.rollback = True
        return _show_arrival(
            day, done, error=_input_message(err, day), status=422, typed=request.form
        )
    flash(_("Correction recorded.") if correction else _("That is the count already recorded."))
    return redirect(url_for(".arrival"))


def _review(day, counts, short, *, error: str | None = None, status: int = 200, typed=None):
    """The review step; a refused confirmation comes back with what was `typed` (notes, kinds,
    units per member) in place of the defaults."""
    leader = day.leader
    bags = bag_numbers(g.session, wave_id=day.wave.id, leader_id=leader.id)
    members = {}
    candidates = {}
    for row in day.expected:
        if short[row.product_id] <= 0:
            continue
        lines = list_candidate_lines(
            g.session, wave=day.wave, leader=leader, product_id=row.product_id
        )
        plan = default_assignment(lines, short[row.product_id])
        candidates[row.product_id] = [(ln, plan.get(ln.order_line_id, 0)) for ln in lines]
        for ln in lines:
            if ln.member_id not in members:
                members[ln.member_id] = mask_name(g.session.get(Member, ln.member_id).name)
    return render_template(
        "leader/arrival.html",
        day=day,
        step="review",
        differing=[r for r in day.expected if short[r.product_id] != 0],
        counts=counts,
        short=short,
        candidates=candidates,
        members=members,
        bags=bags,
        kinds=list(DiscrepancyKind),
        error=error,
        typed=typed or {},
    ), status


def _assignments_and_reports(day, leader, short):
    assignments: dict[int, dict[int, int]] = {}
    reports = []
    for row in day.expected:
        pid = row.product_id
        if short[pid] > 0:
            plan = {}
            prefix = f"assign-{pid}-"
            fields = [k for k in request.form if k.startswith(prefix)]
            try:
                form = parse(form_of({k: WholeNumber() for k in fields}), request.form)
                line_ids = {k: parse_id(k.removeprefix(prefix)) for k in fields}
            except InvalidForm:
                raise InvalidInput(
                    row.sku, "assign", _("Short units must be whole numbers.")
                ) from None
            for key in fields:
                if form[key].data is not None:
                    plan[line_ids[key]] = form[key].data
            if fields:  # none in the form: the default (latest-placed lines first)
                assignments[pid] = plan
        kind = request.form.get(f"kind-{pid}")
        try:
            note = parse(
                form_of({"note": Text(max_length=500)}),
                {"note": request.form.get(f"note-{pid}", "")},
            ).note.data
        except InvalidForm:
            raise InvalidInput(
                row.sku,
                "note",
                _("The note is too long or holds characters that cannot be stored."),
            ) from None
        upload = request.files.get(f"photo-{pid}")
        if not (kind or note or (upload and upload.filename)) and short[pid] == 0:
            continue
        photo_id = None
        if upload and upload.filename:
            try:
                photo = save_photo(
                    g.session,
                    leader=leader,
                    user_id=current_user.id,
                    data=upload.read(),
                    folder=photo_folder(),
                )
            except PhotoRejected as err:
                raise InvalidInput(row.sku, "photo", _photo_message(err)) from None
            photo_id = photo.id
            g.setdefault("saved_photos", []).append(photo.stored_name)
        try:
            chosen = DiscrepancyKind(kind) if kind else None
        except ValueError:
            raise InvalidInput(row.sku, "kind", _("Choose a kind of discrepancy.")) from None
        if chosen is None:
            chosen = DiscrepancyKind.SHORTAGE if short[pid] > 0 else DiscrepancyKind.SURPLUS
        reports.append(DiscrepancyReport(pid, chosen, note, photo_id))
    return assignments, reports


def _input_message(err: InvalidInput, day) -> str:
    """The user's language for what the services report in English, by the field at fault;
    a product is named as the leader sees it on the shelf, not by its SKU code."""
    field = err.field.split("[", 1)[0]
    sku = err.field[len(field) + 1 : -1] if "[" in err.field else ""
    names = {r.sku: r.name for r in day.expected}
    if field == "assign":
        return _(
            "The short units of %(product)s must add up to the units missing and fit each order.",
            product=names.get(sku or err.record, sku or err.record),
        )
    if field == "counted" and err.limit is not None:  # above the count recorded before
        return _("A correction can only report further units missing.")
    if field == "counted":
        return _("Enter the units counted as a whole number.")
    if field in ("photo", "kind"):
        return err.message  # already in the user's language (set by this module)
    return _("Check the form: %(field)s", field=err.field)


def _discard_photos() -> None:
    """Files saved for a confirmation that was then refused are removed with it."""
    for name in g.pop("saved_photos", []):
        (photo_folder() / name).unlink(missing_ok=True)


def _photo_message(err: PhotoRejected) -> str:
    """The rule the photo broke, worded from the error's fields (never from its English text)."""
    if err.problem == PhotoProblem.TOO_LARGE and err.limit:
        return _("The photo is larger than %(mb)d MB.", mb=err.limit // (1024 * 1024))
    if err.problem == PhotoProblem.TOO_MANY_PIXELS and err.limit:
        return _("The photo has more than %(n)d million pixels.", n=err.limit // 1_000_000)
    return _("The photo must be a JPEG, PNG or WebP image.")


def _show_arrival(day, done, *, error: str | None = None, status: int = 200, typed=None):
    """The confirmed arrival; a refused correction comes back with what was `typed`."""
    shortages = (
        g.session.execute(
            select(Refund).where(
                Refund.reason == RefundReason.SHORTAGE,
                Refund.id.in_([s.refund_id for s in _shortages(done)]),
            )
        )
        .scalars()
        .all()
    )
    return render_template(
        "leader/arrival.html",
        day=day,
        step="done",
        arrival=done,
        report=list_arrival_report(g.session, done),
        refunds_cents=sum(r.amount_cents for r in shortages),
        short_units=sum(s.quantity for s in _shortages(done)),
        lost_units=sum(point_losses(g.session, done).values()),
        error=error,
        typed=typed or {},
    ), status


def _shortages(done):
    from fulfilment.points.arrivals import Shortage

    return g.session.scalars(select(Shortage).where(Shortage.arrival_id == done.id)).all()


def photo_folder() -> Path:
    return Path(current_app.instance_path) / "photos"


@photos_bp.get("/photos/<int:photo_id>")
def photo(photo_id: int):
    """A discrepancy photo, for the point that took it, its region's staff and admin only."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    try:
        item = get_photo(g.session, photo_id=photo_id)
    except NotFound:
        abort(404)
    leader = g.session.get(Leader, item.leader_id)
    if leader is None or not current_user.user.sees_leader(leader):
        abort(404)
    path = photo_folder() / item.stored_name
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype=item.content_type, max_age=0)
    response.headers["Content-Disposition"] = "inline"
    return response


# --- pickup verification --------------------------------------------------------------------

REFUSALS = {
    Refusal.WRONG_CODE: lambda r: _("No order has this code. Check the digits and try again."),
    Refusal.ALREADY_COLLECTED: lambda r: _(
        "Already collected (%(when)s). Nothing was changed.", when=r
    ),
    Refusal.CANCELLED: lambda r: _("This order was cancelled. Nothing to hand over."),
    Refusal.NOT_ARRIVED: lambda r: _("This order has not arrived at the point yet."),
}


def _refusal_message(err: PickupRefused) -> str:
    from web.i18n import local_datetime

    when = local_datetime(err.collected_at, _leader_tz(), "short") if err.collected_at else ""
    return REFUSALS[err.reason](when)


def _leader_tz() -> str:
    from fulfilment.points.point import leader_region

    return leader_region(g.session, _leader()).tz


def _chosen_order() -> int | None:
    """The order the staff picked among several carrying one code (absent: none picked)."""
    if not request.form.get("order"):
        return None
    try:
        return parse(ChosenOrderForm, request.form).order.data
    except InvalidForm:
        abort(400)


def _choose(code: str, err: CodeAmbiguous):
    """Several live orders here carry the code: list them (masked member, bag, date) and let
    the staff pick the member's own; nothing is handed over until then."""
    return render_template("leader/pickups.html", code=code, choose=err.candidates)


def _posted_code() -> str:
    """The code as posted, full-width digits read as ASCII (the check itself is the service's)."""
    try:
        return parse(CodeForm, request.form).code.data
    except InvalidForm:
        return ""  # not storable text: no order has it


@bp.route("/pickups", methods=["GET", "POST"])
@pickup_code_limit
@point_required
def pickups():
    leader = _leader()
    if request.method == "GET":
        return render_template("leader/pickups.html")
    code = _posted_code()
    chosen = _chosen_order()
    try:
        found, others = lookup_code(
            g.session, leader=leader, code=code, today=_today(), order_id=chosen
        )
    except PickupRefused as err:
        return render_template("leader/pickups.html", refusal=_refusal_message(err)), 409
    except CodeAmbiguous as err:
        return _choose(code, err)
    [member] = group_by_member(found + others)
    return render_template(
        "leader/pickups.html",
        code=code,
        found=found[0],
        member=member,
        others=others,
        chosen=chosen,
    )


@bp.post("/pickups/verify")
@pickup_code_limit
@point_required
def verify():
    leader = _leader()
    code = _posted_code()
    whole = request.form.get("scope") == "member"
    method = "scanned" if request.form.get("method") == "scanned" else "typed"
    try:
        done = verify_pickup(
            g.session,
            leader=leader,
            code=code,
            user_id=current_user.id,
            actor=current_user.actor,
            whole_member=whole,
            method=method,
            order_id=_chosen_order(),
            today=_today(),
            after_sales_days=current_app.config["GROUPBUY_SETTINGS"].after_sales_days,
        )
    except PickupRefused as err:
        g.rollback = True
        return render_template("leader/pickups.html", refusal=_refusal_message(err)), 409
    except CodeAmbiguous as err:
        g.rollback = True
        return _choose(code, err)
    flash(_handed_over(len(done)))
    return redirect(url_for(".pickups"))


def _handed_over(count: int) -> str:
    return ngettext("Handed over: %(num)d order.", "Handed over: %(num)d orders.", count)


def _parsed(form_class):
    try:
        return parse(form_class, request.form)
    except InvalidForm:
        return None


@bp.post("/pickups/phone")
@pickup_code_limit
@point_required
def phone_tail():
    """The point's members whose phone ends with the 4 digits typed, with their bags ready here
    (masked): the staff check the member before handing over. Audited by the service."""
    form = _parsed(PhoneTailForm)
    tail = form.tail.data if form else ""
    try:
        members = list_by_phone_tail(
            g.session, leader=_leader(), tail=tail, today=_today(), actor=current_user.actor
        )
    except InvalidInput:  # not 4 digits: nothing looked up, nothing audited
        return render_template(
            "leader/pickups.html",
            refusal=_("Enter the last 4 digits of the member's phone."),
        ), 422
    if not members:  # counted against the account like a wrong code
        return render_template(
            "leader/pickups.html",
            refusal=_("No member with bags ready here has a phone ending in these digits."),
        ), 409
    return render_template("leader/pickups.html", tail=tail, by_tail=members)


@bp.post("/pickups/phone/verify")
@pickup_code_limit
@point_required
def phone_tail_verify():
    """Hand over every bag ready here of the member the staff checked (found by phone tail)."""
    form = _parsed(TailMemberForm)
    if form is None:
        abort(400)
    try:
        done = hand_over_member(
            g.session,
            leader=_leader(),
            member_id=form.member.data,
            tail=form.tail.data,
            user_id=current_user.id,
            actor=current_user.actor,
            today=_today(),
            after_sales_days=current_app.config["GROUPBUY_SETTINGS"].after_sales_days,
        )
    except InvalidInput:
        abort(400)
    flash(_handed_over(len(done)) if done else _("Nothing is waiting here for this member."))
    return redirect(url_for(".pickups"))


# --- not yet collected ----------------------------------------------------------------------


@bp.get("/uncollected")
@point_required
def uncollected():
    """The bags waiting, by member. A phone revealed by the POST just before is shown on this
    one page view only (the session carries the member's id, never the number); a reload shows
    it masked again, without a second reveal."""
    leader = _leader()
    waiting = list_uncollected(g.session, leader=leader, today=_today())
    revealed = {}
    member_id = session.pop("revealed_member", None)
    if isinstance(member_id, int):
        try:
            revealed[member_id] = get_point_member(
                g.session, leader=leader, member_id=member_id
            ).phone
        except NotFound:  # collected meanwhile: no longer this point's to show
            pass
    return render_template(
        "leader/uncollected.html",
        waiting=waiting,
        members=group_by_member(waiting),
        per_day=count_per_day(waiting),
        revealed=revealed,
    )


@bp.post("/uncollected/phone")
@point_required
def show_phone():
    """Reveal (and audit) one member's phone, then redirect (Post/Redirect/Get): reloading the
    page that shows it neither reveals nor audits again."""
    try:
        member_id = parse(MemberForm, request.form).member.data
    except InvalidForm:
        abort(400)
    reveal_phone(g.session, leader=_leader(), member_id=member_id, actor=current_user.actor)
    session["revealed_member"] = member_id
    return redirect(url_for(".uncollected", _anchor=f"member-{member_id}"), code=303)


@bp.get("/orders/<int:order_id>")
@point_required
def order(order_id: int):
    leader = _leader()
    found = get_point_order(g.session, leader=leader, order_id=order_id)
    from fulfilment.points.pickups import Pickup, describe

    [view] = describe(g.session, leader=leader, orders=[found])
    pickup = g.session.scalar(select(Pickup).where(Pickup.order_id == found.id))
    state = order_state(
        found.status,
        collected=pickup is not None,
        arrived=find_arrival(g.session, wave=found.wave, leader=leader) is not None,
    )
    return render_template("leader/order.html", order=found, view=view, pickup=pickup, state=state)
