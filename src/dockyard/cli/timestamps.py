"""docker's ``--since``/``--until`` values, converted as the docker CLI does
before sending them: Go durations ("10m", "1h30m") count back from now;
RFC 3339 times and dates, and Unix timestamps ("1700000000.5") are absolute.
The result is the ``seconds.nanoseconds`` string the API takes."""

from __future__ import annotations

import re
import time

from dockyard.errors import InvalidArgument

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string, or None if it is not one."""
    body = text
    sign = 1.0
    if body[:1] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if not m:
            return None
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * total if body else None


def get_timestamp(value: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    text = value.strip()
    duration = parse_go_duration(text)
    if duration is not None:
        stamp = now - duration
        sec = int(stamp)
        return f"{sec}.{int(round((stamp - sec) * 1e9)):09d}"
    if re.fullmatch(r"\d+(\.\d{1,9})?", text):
        sec, _, frac = text.partition(".")
        return f"{sec}.{frac.ljust(9, '0')}" if frac else sec
    from datetime import datetime

    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H"):
        try:
            parsed = datetime.strptime(text, fmt)
            return f"{int(parsed.timestamp())}.000000000"
        except ValueError:
            pass
    try:
        from dockyard.cli.format import parse_rfc3339

        stamp = parse_rfc3339(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for time {value!r}: use a duration (10m), an RFC 3339 time "
                              "or a Unix timestamp") from None
    sec = int(stamp)
    return f"{sec}.{int(round((stamp - sec) * 1e9)):09d}"
