"""Signal names as Docker takes them: ``SIGTERM``, ``TERM``, ``term``, ``15``."""

from __future__ import annotations

import signal

from ..errors import InvalidArgument

_BY_NAME: dict[str, int] = {}
for _sig in signal.Signals:
    _BY_NAME[_sig.name[3:]] = _sig.value  # "SIGTERM" -> "TERM"
_BY_NAME.setdefault("IOT", signal.SIGABRT)
_BY_NAME.setdefault("CLD", signal.SIGCHLD)
_BY_NAME.setdefault("POLL", signal.SIGIO)
for _n in range(signal.SIGRTMIN + 1, signal.SIGRTMAX):
    _BY_NAME[f"RTMIN+{_n - signal.SIGRTMIN}"] = _n
    _BY_NAME[f"RTMAX-{signal.SIGRTMAX - _n}"] = _n
_BY_NAME["RTMIN"] = signal.SIGRTMIN
_BY_NAME["RTMAX"] = signal.SIGRTMAX

_MAX_SIGNAL = signal.SIGRTMAX


def parse_signal(value: str | int) -> int:
    """Signal number for a Docker signal string.  Raises InvalidArgument
    ``Invalid signal: x``."""
    if isinstance(value, int):
        if 0 < value <= _MAX_SIGNAL:
            return value
        raise InvalidArgument(f"Invalid signal: {value}")
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number <= _MAX_SIGNAL:
            return number
        if number > _MAX_SIGNAL:
            # a number is a signal to dockerd; one Linux lacks is refused so
            raise InvalidArgument(f"the linux daemon does not support signal {number}")
        raise InvalidArgument(f"Invalid signal: {value}")
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise InvalidArgument(f"Invalid signal: {value}")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
