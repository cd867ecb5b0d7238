"""Timestamps as Docker writes them: integer nanoseconds since the epoch,
formatted RFC 3339 in UTC.

Two layouts matter (Go's names):

- ``RFC3339Nano`` (``2006-01-02T15:04:05.999999999Z07:00``): trailing zeros
  of the fraction are dropped, and the fraction with them when it is zero.
  json-file's ``time`` field and inspect's StartedAt/FinishedAt use it.
- ``RFC3339NanoFixed`` (``...05.000000000Z07:00``): always nine digits; the
  prefix ``docker logs --timestamps`` puts before each line.
"""

from __future__ import annotations

import calendar
import time

_last_second = -1
_last_prefix = ""


def _second_prefix(seconds: int) -> str:
    # Log lines arrive many per second: format the date part once a second.
    global _last_second, _last_prefix
    if seconds != _last_second:
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = seconds
    return _last_prefix


def rfc3339nano(ns: int) -> str:
    """``2026-11-25T09:50:52.783726158Z``, trailing zeros trimmed."""
    seconds, frac = divmod(ns, 1_000_000_000)
    prefix = _second_prefix(seconds)
    if not frac:
        return prefix + "Z"
    return f"{prefix}.{frac:09d}".rstrip("0") + "Z"


def rfc3339nano_fixed(ns: int) -> str:
    """``2026-11-25T09:50:52.783726150Z``, always nine fraction digits."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return f"{_second_prefix(seconds)}.{frac:09d}Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any offset, any
    fraction length).  Raises ValueError if it is not one."""
    text = text.strip()
    if len(text) < 20 or text[4] != "-" or text[10] not in "Tt ":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S" if text[10] in "Tt" else "%Y-%m-%d %H:%M:%S")
    rest = text[19:]
    frac_ns = 0
    if rest.startswith("."):
        digits = 0
        while 1 + digits < len(rest) and rest[1 + digits].isdigit():
            digits += 1
        if digits == 0:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        frac_ns = int(rest[1:1 + digits][:9].ljust(9, "0"))
        rest = rest[1 + digits:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return (calendar.timegm(base) - offset) * 1_000_000_000 + frac_ns


def parse_timestamp(value: str | int | float, now_ns: int | None = None) -> int:
    """A ``since``/``until`` value as the Engine API takes it: Unix seconds
    with an optional fraction (``1700000000.123456789``), an RFC 3339 time,
    or a duration relative to now (``10m``, ``1h30m``, ``42s``)."""
    if isinstance(value, (int, float)):
        return int(value * 1_000_000_000)
    text = str(value).strip()
    if not text:
        raise ValueError("empty timestamp")
    if text[0].isdigit() and all(c.isdigit() or c == "." for c in text):
        whole, _, frac = text.partition(".")
        return int(whole) * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))
    if "-" in text[:5] and len(text) >= 20:
        return parse_rfc3339(text)
    return (now_ns if now_ns is not None else time.time_ns()) - parse_duration(text)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's duration syntax (``1h30m``, ``2.5s``) in nanoseconds."""
    total = 0
    i = 0
    if not text:
        raise ValueError("empty duration")
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f"invalid duration {text!r}")
        number = float(text[i:j])
        k = j
        while k < len(text) and not (text[k].isdigit() or text[k] == "."):
            k += 1
        unit = text[j:k]
        if unit not in _DURATION_UNITS:
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}")
        total += int(number * _DURATION_UNITS[unit])
        i = k
    return total
