"""--format output of the dockyard command beside the real docker CLI's,
against the same dockyardd: json rows, {{json .}} of API objects, the
fields a row has and how they read when the daemon was not asked for them."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from daemon.harness import Dockyardd, run_cli, run_docker
from testlib import ok


@pytest.fixture(scope="module")
def labelled_container(dockyardd: Dockyardd) -> str:
    ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    name = f"fmt-{uuid.uuid4().hex[:8]}"
    ok(run_docker(dockyardd, "create", "--name", name, "--label", "zeta=1", "--label", "alpha=2",
                  "busybox", "sh", "-c", "echo <&> and a command longer than twenty characters"))
    yield name
    run_docker(dockyardd, "rm", "-f", name)


@pytest.mark.parametrize("args", [
    # rows: docker marshals its formatter context as a map, keys sorted
    ["ps", "-a", "--format", "{{json .}}"],
    ["ps", "-a", "--format", "json"],  # sizes not asked for: "0B"
    ["ps", "-a", "--format", "{{.Platform}} {{.Size}}"],
    ["ps", "-a", "--format", '{{.Label "alpha"}}|{{.Label "nope"}}|{{"zeta" | .Label}}'],
    ["ps", "-a", "--format", 'table {{.Names}}\\t{{.Label "alpha"}}'],
    ["history", "--format", "{{json .}}", "busybox"],
    ["history", "--format", "json", "busybox"],
    ["images", "--format", "json"],
    ["system", "df", "--format", "{{json .}}"],
    ["system", "df", "-v"],  # the container's long command truncated as ps does
    # API objects: struct fields in order, maps sorted
    ["inspect", "--format", "{{json .State}}", "{name}"],
    ["inspect", "--format", "{{json .Config.Labels}}", "{name}"],
    ["image", "inspect", "--format", "{{json .GraphDriver}}", "busybox"],
    ["info", "--format", "{{json .Plugins}}"],
    ["inspect", "--format", '{{index .Config.Labels "alpha"}}/{{index .Config.Labels "nope"}}', "{name}"],
    ["image", "inspect", "--format", '{{index .Config.Labels "nope"}}.', "busybox"],
    # no \t or \n unescaping outside tables
    ["inspect", "--format", "{{.Name}}\\t{{.State.Status}}\\n", "{name}"],
    ["version", "--format", "{{.Server.APIVersion}}\\t{{.Client.Os}}"],
])
def test_formats_print_as_docker(dockyardd: Dockyardd, labelled_container: str, args: list[str]) -> None:
    args = [a.replace("{name}", labelled_container) for a in args]
    assert recent(ok(run_cli(dockyardd, *args))) == recent(ok(run_docker(dockyardd, *args))), args


def recent(text: str) -> str:
    """The two commands run a moment apart: "3 seconds ago" may have become
    "4 seconds ago" (and a column's width with it)."""
    text = re.sub(r"(\d+ seconds?|Less than a second|About a minute)( ago)?", "RECENTLY", text)
    return re.sub(r" +", " ", text)


def test_history_rows_have_no_tags_field(dockyardd: Dockyardd, labelled_container: str) -> None:
    for run in (run_cli, run_docker):
        result = run(dockyardd, "history", "--format", "{{.Tags}}", "busybox")
        assert result.returncode != 0 and b"can't evaluate field Tags" in result.stderr


def test_event_json_omits_an_empty_id(dockyardd: Dockyardd, labelled_container: str) -> None:
    ok(run_docker(dockyardd, "image", "prune", "-f"))
    time.sleep(1.1)  # --until is whole seconds: let the prune's second pass
    until = str(int(time.time()))
    args = ["events", "--since", "10m", "--until", until, "--filter", "event=prune", "--format", "{{json .}}"]
    ours = ok(run_cli(dockyardd, *args))
    assert ours == ok(run_docker(dockyardd, *args))
    line = json.loads(ours.splitlines()[-1])
    assert "id" not in line and list(line)[:3] == ["status", "Type", "Action"]
    # the template runs on events.Message: .ID, .Status, .From (empty when omitted)
    for fmt in ("{{.ID}}|{{.Status}}|{{.From}}|{{.Scope}}", "table {{.Type}}\\t{{.Action}}"):
        args[-1] = fmt
        assert ok(run_cli(dockyardd, *args)) == ok(run_docker(dockyardd, *args)), fmt
