"""Image endpoints (placeholder until dockyard.image lands)."""

from __future__ import annotations

from dockyard.daemon.app import RouteTable
from dockyard.daemon.engine import Engine


def image_count(engine: Engine) -> int:
    return 0


def disk_usage(engine: Engine, api: tuple[int, ...]) -> tuple[list[dict], int]:
    return [], 0


def register(routes: RouteTable, engine: Engine) -> None:
    pass
