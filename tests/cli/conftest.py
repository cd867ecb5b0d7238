"""Fixtures: a real dockyardd per test module, for driving the CLI (see
daemon/harness.py)."""

from __future__ import annotations

from daemon.harness import dockyardd

__all__ = ["dockyardd"]
