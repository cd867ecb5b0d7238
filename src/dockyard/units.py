"""go-units: the human sizes and durations Docker prints ("4.26MB",
"23.54GiB", "About a minute").  Pure functions, importable from any layer:
the daemon needs them for the `ps` status line, the CLI for its tables."""

from __future__ import annotations

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _go_g(value: float, precision: int) -> str:
    """Go's %.*g: like C's, which Python's %g follows."""
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, "4.26MB"."""
    unit = 0
    while size >= 1000.0 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return _go_g(size, precision) + _DECIMAL_UNITS[unit]


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, "23.54GiB"."""
    unit = 0
    while size >= 1024.0 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        unit += 1
    return _go_g(size, 4) + _BINARY_UNITS[unit]


def human_duration(seconds: float) -> str:
    """go-units HumanDuration ("About a minute", "2 weeks")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go rounds half away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
