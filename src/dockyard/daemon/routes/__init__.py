"""Engine API routes, one module per resource.

Each module exports ``register(routes: RouteTable, engine: Engine)``.  To add
a resource (containers, exec, networks, volumes, ...), write its module here
and add its name to :data:`ROUTE_MODULES`; nothing else changes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Route modules, in registration order.  Order matters only where paths
#: overlap: static paths (/images/json) before patterns (/images/{name}/json).
ROUTE_MODULES = (
    "system",
    "images",
    "containers",
    "exec",
    "archive",
)


def load_route_modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in ROUTE_MODULES]
