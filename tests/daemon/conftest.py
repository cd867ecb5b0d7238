"""Fixtures: a real dockyardd per test module (see harness.py)."""

from __future__ import annotations

from .harness import dockyardd

__all__ = ["dockyardd"]
