"""Crate scanning, shared by the desks that scan (the warehouse's loading and receiving pages,
the leader's arrival page): the scan form and a refusal in the user's language.

The field takes what a USB scanner types, a code typed by hand, or what the camera read
(`static/scan.js`, the pickup page's component, keeping the QR code's text whole)."""

from __future__ import annotations

from flask_babel import gettext as _
from wtforms import Form

from fulfilment.handovers.scans import Refusal, ScanRefused
from web.forms import Text, required
from web.i18n import local_datetime


class ScanForm(Form):
    code = Text(max_length=120, validators=[required])


def refusal_message(err: ScanRefused, tz: str) -> str:
    """Why a scan recorded nothing, naming the crate and where it belongs."""
    code = err.code
    if err.refusal == Refusal.ALREADY:
        return _(
            "Crate %(code)s was already scanned at %(time)s by %(user)s.",
            code=code,
            time=local_datetime(err.at, tz, "short"),
            user=err.by,
        )
    messages = {
        Refusal.UNKNOWN: _("No crate has the code %(code)s.", code=code),
        Refusal.OTHER_WAVE: _(
            "Crate %(code)s belongs to the delivery of %(date)s, not to this one.",
            code=code,
            date=err.belongs,
        ),
        Refusal.OTHER_ROUTE: _(
            "Crate %(code)s goes on %(vehicle)s, not on this truck.",
            code=code,
            vehicle=err.belongs,
        ),
        Refusal.OTHER_STATION: _(
            "Crate %(code)s belongs to station %(station)s, not to this one.",
            code=code,
            station=err.belongs,
        ),
        Refusal.OTHER_POINT: _(
            "Crate %(code)s is for another pickup point (%(point)s): set it aside.",
            code=code,
            point=err.belongs,
        ),
        Refusal.NOT_ON_ROUTE: _("Crate %(code)s is on no truck of the published plan.", code=code),
        Refusal.ROUTE_LOADED: _(
            "%(vehicle)s was already marked loaded: crate %(code)s was not added.",
            vehicle=err.belongs,
            code=code,
        ),
        Refusal.MISSING_RECORDED: _(
            "Crate %(code)s was recorded missing; it is not scanned now.", code=code
        ),
    }
    return messages[err.refusal]
