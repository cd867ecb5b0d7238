"""Docker's ``filters`` query parameter.

The Engine API sends filters as JSON, in two shapes that clients still use
both of: ``{"label": {"a=b": true}}`` (current) and ``{"label": ["a=b"]}``
(API < 1.22 style, still sent by some clients).  Both parse into
:class:`Filters`, a frozen mapping of key -> set of values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from dockyard.errors import InvalidArgument


@dataclass(frozen=True)
class Filters:
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None, *, allowed: Iterable[str]) -> "Filters":
        """Parse the query value; keys outside ``allowed`` are refused with
        Docker's message ("invalid filter 'foo'")."""
        if not text:
            return cls({})
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"invalid filter: {e}") from e
        if not isinstance(doc, dict):
            raise InvalidArgument("invalid filter: expected a JSON object")
        allowed_keys = set(allowed)
        parsed: dict[str, frozenset[str]] = {}
        for key, raw in doc.items():
            if key not in allowed_keys:
                raise InvalidArgument(f"invalid filter '{key}'")
            if isinstance(raw, dict):
                values = [v for v, on in raw.items() if on]
            elif isinstance(raw, list):
                values = raw
            else:
                raise InvalidArgument(f"invalid filter '{key}': expected an object or a list of values")
            if not all(isinstance(v, str) for v in values):
                raise InvalidArgument(f"invalid filter '{key}': values must be strings")
            parsed[key] = frozenset(values)
        return cls(parsed)

    def get(self, key: str) -> frozenset[str]:
        return self.values.get(key, frozenset())

    def __contains__(self, key: str) -> bool:
        return bool(self.values.get(key))

    def bool_value(self, key: str) -> bool | None:
        """A boolean filter (``dangling=true``); None when absent."""
        vals = self.get(key)
        if not vals:
            return None
        if len(vals) > 1:
            raise InvalidArgument(f"invalid filter '{key}': only one value allowed")
        (v,) = vals
        low = v.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise InvalidArgument(f"invalid filter '{key}={v}'")

    def match_labels(self, labels: Mapping[str, str] | None, key: str = "label") -> bool:
        """Every ``label`` filter (``k`` or ``k=v``) holds for ``labels``."""
        labels = labels or {}
        for want in self.get(key):
            name, sep, value = want.partition("=")
            if name not in labels:
                return False
            if sep and labels[name] != value:
                return False
        return True

    def match_any(self, key: str, *candidates: str | None) -> bool:
        """True when ``key`` is not filtered, or one candidate is among its values."""
        vals = self.get(key)
        if not vals:
            return True
        return any(c in vals for c in candidates if c)
