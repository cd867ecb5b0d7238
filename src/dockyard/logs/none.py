"""The ``none`` driver: output is dropped (attached clients still see it)
and there is nothing to read back."""

from __future__ import annotations

from pathlib import Path

from dockyard.errors import FailedPrecondition, InvalidArgument

from . import Partial


def file_name(container_id: str) -> str | None:
    return None


def validate(options: dict[str, str]) -> None:
    for key in options:
        raise InvalidArgument(f"unknown log opt '{key}' for none log driver")


class NoneWriter:
    def write(self, stream: str, line: bytes, timestamp: int, partial: Partial | None = None) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_writer(path: Path | None, options: dict[str, str]) -> NoneWriter:
    validate(options)
    return NoneWriter()


def open_reader(path: Path | None, options: dict[str, str]):
    # Docker's words for `docker logs` on such a container.
    raise FailedPrecondition('configured logging driver does not support reading')
