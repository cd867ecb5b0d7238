"""Fixtures: a real dockyardd per test module (see harness.py)."""

from __future__ import annotations

import pytest

from .rootconf import require_root

from .harness import Dockyardd, new_daemon


@pytest.fixture(scope="module")
def dockyardd() -> Dockyardd:
    require_root()
    daemon = new_daemon()
    try:
        yield daemon
    finally:
        daemon.cleanup()
