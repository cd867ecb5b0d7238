"""The daemon package's docstring is its map: it must name what exists."""

from __future__ import annotations

import pkgutil


def test_daemon_map_names_its_modules_and_route_modules():
    import dockyard.daemon as daemon
    from dockyard.daemon import routes

    doc = daemon.__doc__ or ""
    for module in pkgutil.iter_modules(daemon.__path__):
        assert f"``{module.name}``" in doc, module.name
    for name in routes.ROUTE_MODULES:
        assert name in doc.split("``routes``", 1)[1], name
    assert "``routes.stdio``" in doc
    # The routes for containers exist: the map tells how to add the next resource.
    assert "write ``routes/containers.py``" not in doc
