"""A logger imported on first use.

The runtime and cgroup modules log only rare warnings, but they are
imported by every ``dockyard-runtime`` start and by the supervisor zygote,
whose every module is memory each supervisor maps; :mod:`logging` brings
threading's and traceback's machinery with it.  ``LazyLogger(name)`` has
the methods those modules call and imports :mod:`logging` the first time
one of them runs."""

from __future__ import annotations


class LazyLogger:
    __slots__ = ("name", "_logger")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger = None

    def _get(self):
        if self._logger is None:
            import logging

            self._logger = logging.getLogger(self.name)
        return self._logger

    def debug(self, msg: str, *args, **kwargs) -> None:
        self._get().debug(msg, *args, **kwargs)

    def info(self, msg: str, *args, **kwargs) -> None:
        self._get().info(msg, *args, **kwargs)

    def warning(self, msg: str, *args, **kwargs) -> None:
        self._get().warning(msg, *args, **kwargs)

    def error(self, msg: str, *args, **kwargs) -> None:
        self._get().error(msg, *args, **kwargs)


__all__ = ["LazyLogger"]
