"""The JSON Schema formats the result schema uses, checked without optional packages.

``jsonschema`` treats ``format`` as an annotation unless a validator gets a
``FormatChecker``, and even its default checker passes every string as ``date-time``
unless the optional ``rfc3339-validator`` package is installed. So ``"not-a-date"``
validated. This checker owns ``date-time``: RFC 3339 section 5.6 (``T`` or space between
date and time, seconds required, optional fraction, ``Z`` or a ``+hh:mm`` offset), with
the calendar checked by ``datetime``.
"""

from __future__ import annotations

import datetime as _dt
import re

import jsonschema

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$"
)

FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    """True for an RFC 3339 date-time string; non-strings pass (``type`` checks those)."""
    if not isinstance(value, str):
        return True
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time (e.g. 2026-12-03T16:48:28+00:00)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        raise ValueError(f"{value!r}: the UTC offset is out of range")
    # RFC 3339 allows a leap second (60); datetime does not, so check the rest with 59
    _dt.datetime(year, month, day, hour, minute, min(second, 59))
    if second > 60:
        raise ValueError(f"{value!r}: second {second} is out of range")
    return True
