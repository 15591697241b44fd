"""Times at the edge: timezone-aware datetimes in, nanoseconds since the
epoch (UTC) to the core."""

from __future__ import annotations

import datetime as _dt
from typing import Optional, Union

from . import _modelreg
from .errors import ValidationError

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

TimeLike = Union[_dt.datetime, str]


def to_ns(value: TimeLike, what: str) -> int:
    """A timezone-aware datetime (or an ISO-8601 UTC string such as
    ``"2024-01-15T14:30:00Z"``) as nanoseconds since the epoch. A naive
    datetime is refused: it names no instant."""
    if isinstance(value, str):
        return int(_modelreg.parse_time(value))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValidationError(
                f"{what} is a naive datetime ({value.isoformat()}): give a timezone-aware one, "
                f"e.g. datetime(..., tzinfo=timezone.utc)")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, _dt.date):
        raise ValidationError(f"{what} is a date ({value.isoformat()}): give a timezone-aware "
                              "datetime, the instant matters")
    raise ValidationError(f"{what} must be a timezone-aware datetime or an ISO-8601 string, "
                          f"not {type(value).__name__}")


def optional_ns(value: Optional[TimeLike], what: str) -> Optional[int]:
    return None if value is None else to_ns(value, what)


def parse(text: Optional[str]) -> Optional[_dt.datetime]:
    """An ISO-8601 UTC time of an answer as an aware datetime (to the
    microsecond; the answers keep nanoseconds in their strings)."""
    if text is None:
        return None
    ns = int(_modelreg.parse_time(text))
    return _EPOCH + _dt.timedelta(microseconds=ns // 1000)
