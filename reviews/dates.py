"""Dates printed as the review pages' templates printed them with Django's date filter
("j M", "j M Y", "j M Y, H:i"), without the filter's per-call machinery: the inbox prints sixty
of them a page. The site's language is English, as the filter's month names were."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_month(value: dt.date) -> str:
    """ "j M": 5 Mar."""
    return f"{value.day} {_MONTHS[value.month]}"


def day_month_year(value: dt.date) -> str:
    """ "j M Y": 5 Mar 2026."""
    return f"{value.day} {_MONTHS[value.month]} {value.year}"


def local_day_month_year_time(value: dt.datetime | None, tz: dt.tzinfo | None = None) -> str:
    """ "j M Y, H:i" in the site's time zone (or ``tz``, the current time zone a caller
    printing many of them read once): 5 Mar 2026, 09:30; "" for None."""
    if value is None:
        return ""
    local = timezone.localtime(value, tz)
    return f"{local.day} {_MONTHS[local.month]} {local.year}, {local.hour:02d}:{local.minute:02d}"
