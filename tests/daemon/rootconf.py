"""The helpers of tests/conftest.py (require_root, need_tool,
unmount_under, ...), found by path.

A bare ``from conftest import ...`` resolves to whichever module pytest
registered under the name ``conftest`` first; when several test directories
without ``__init__.py`` are collected in one session, that can be another
directory's conftest.  Looking the file up by path cannot go wrong.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PATH = Path(__file__).resolve().parents[1] / "conftest.py"


def _load() -> ModuleType:
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve() == _PATH:
            return module  # the one pytest imported
    spec = importlib.util.spec_from_file_location("_dockyard_tests_root_conftest", _PATH)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_root = _load()
require_root = _root.require_root
need_tool = _root.need_tool
unmount_under = _root.unmount_under
