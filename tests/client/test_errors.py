"""The client reads the daemon's one error table: every class comes back as
itself (by the kind header) and, from a daemon without the header, as the
class its status stands for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dockyard import errors
from dockyard.client.errors import KIND_HEADER, RemoteError, error_from_response
from dockyard.daemon.errors import KIND_HEADER as DAEMON_KIND_HEADER
from dockyard.daemon.errors import STATUS_BY_ERROR


@pytest.mark.parametrize("shared", list(STATUS_BY_ERROR), ids=lambda cls: cls.__name__)
def test_every_class_comes_back(shared: type[errors.DockyardError]) -> None:
    status = STATUS_BY_ERROR[shared]
    by_kind = error_from_response(status, "no such thing", shared.kind)
    assert isinstance(by_kind, shared) and isinstance(by_kind, RemoteError)
    assert by_kind.status == status and by_kind.message == "no such thing"
    by_status = error_from_response(status, "no such thing")
    # 409 is shared by AlreadyExists and FailedPrecondition; without the
    # header it is read as the latter.
    expected = errors.FailedPrecondition if status == 409 else shared
    assert isinstance(by_status, expected)


def test_unknown_statuses_and_the_header_name() -> None:
    assert isinstance(error_from_response(418, "teapot"), errors.InvalidArgument)
    assert isinstance(error_from_response(502, "bad gateway"), errors.Internal)
    assert KIND_HEADER == DAEMON_KIND_HEADER


def test_reading_an_answer_with_the_kind_imports_no_daemon_module() -> None:
    code = ("import sys\n"
            "from dockyard.client.errors import error_from_response\n"
            "error_from_response(404, 'x', 'not_found')\n"
            "print(sorted(m for m in sys.modules if m.startswith('dockyard.daemon')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
