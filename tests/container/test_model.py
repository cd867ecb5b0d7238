"""Container records: ids, names, times, the DB round trip and conflicts,
and the per-container /etc files."""

from __future__ import annotations

import re

import pytest

from dockyard.container.db import ContainerDB
from dockyard.container.etcfiles import hosts_content, resolv_conf_content, write_etc_files
from dockyard.container.model import (EXITED, RUNNING, Container, Health, HealthResult, State, check_name,
                                      format_time, new_id, parse_time)
from dockyard.container.names import generate_name
from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.store.db import Database


def record(name="/web", cid=None) -> Container:
    return Container(id=cid or new_id(), name=name, created=format_time(), image_id="sha256:" + "a" * 64,
                     image="busybox", config={"Cmd": ["sh"], "Labels": {"x": "1"}}, host_config={},
                     networking_config=None, snapshot_key="k", runtime="native")


def test_ids_and_names():
    cid = new_id()
    assert re.fullmatch(r"[0-9a-f]{64}", cid) and not cid[:12].isdigit()
    assert check_name("web") == "/web" and check_name("/a.b-c_d") == "/a.b-c_d"
    for bad in ("", "a", "-x", "x y", "/", "x/y", "é1"):
        with pytest.raises(InvalidArgument, match=r"Invalid container name .*only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed"):
            check_name(bad)
    assert re.fullmatch(r"[a-z]+_[a-z]+", generate_name())
    assert re.fullmatch(r"[a-z]+_[a-z]+\d", generate_name(1))


def test_times_round_trip():
    text = format_time(nanos=1_700_000_000_123_456_789)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert abs(parse_time(text) - 1_700_000_000.123456789) < 1e-6
    assert parse_time("0001-01-01T00:00:00Z") == 0.0
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000


def test_state_json_shape():
    s = State(status=RUNNING, pid=42, started_at="2024-01-01T00:00:00Z",
              health=Health().record(HealthResult("a", "b", 0, "ok"), "healthy", 0))
    doc = s.to_json()
    assert doc["Running"] and not doc["Paused"] and doc["Pid"] == 42
    assert doc["Health"] == {"Status": "healthy", "FailingStreak": 0,
                             "Log": [{"Start": "a", "End": "b", "ExitCode": 0, "Output": "ok"}]}
    assert State.from_record(s.to_record()) == s
    h = Health()
    for i in range(8):
        h = h.record(HealthResult(str(i), "", 1, ""), "starting", i)
    assert [r.start for r in h.log] == ["3", "4", "5", "6", "7"]


def test_db_round_trip_conflicts_and_rename(tmp_path):
    db = ContainerDB(Database(tmp_path / "meta.db"))
    a = record("/web")
    db.insert(a)
    a.state = a.state.replace(status=EXITED, exit_code=3)
    db.save(a)
    assert db.get(a.id).state.exit_code == 3
    b = record("/web")
    with pytest.raises(AlreadyExists) as err:
        db.insert(b)
    assert str(err.value) == (f'Conflict. The container name "/web" is already in use by container "{a.id}". '
                              f'You have to remove (or rename) that container to be able to reuse that name.')
    b.name = "/db"
    db.insert(b)
    with pytest.raises(AlreadyExists, match="already in use"):
        db.rename(b, "/web")
    assert b.name == "/db" and db.get(b.id).name == "/db"
    db.rename(b, "/db2")
    assert db.get(b.id).name == "/db2"
    assert {c.id for c in db.all()} == {a.id, b.id}
    assert db.image_ids() == {"sha256:" + "a" * 64}
    db.delete(a.id)
    with pytest.raises(NotFound, match=f"No such container: {a.id}"):
        db.get(a.id)
    # a second process opening the same DB sees the records (no re-migration)
    again = ContainerDB(Database(tmp_path / "meta.db"))
    assert [c.name for c in again.all()] == ["/db2"]


def test_hosts_and_resolv_conf(tmp_path):
    text = hosts_content("web", "example.org", ["db:10.0.0.2"], "172.17.0.2")
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert "10.0.0.2\tdb\n" in text and text.endswith("172.17.0.2\tweb.example.org web\n")
    host = "# c\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp\noptions ndots:2\n"
    assert resolv_conf_content(host, [], [], [], host_network=False) == \
        "search corp\nnameserver 10.1.1.1\noptions ndots:2\n"
    only_local = "nameserver 127.0.0.53\n"
    assert "nameserver 8.8.8.8" in resolv_conf_content(only_local, [], [], [], host_network=False)
    assert "nameserver 127.0.0.53" in resolv_conf_content(only_local, [], [], [], host_network=True)
    assert resolv_conf_content(host, ["1.1.1.1"], ["a.b"], ["rotate"], host_network=False) == \
        "search a.b\nnameserver 1.1.1.1\noptions rotate\n"
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").write_text(host)
    files = write_etc_files(tmp_path, {"Hostname": "h1"}, {"NetworkMode": "none"}, "f" * 64, host_etc=etc)
    assert files.hostname.read_text() == "h1\n"
    assert "nameserver 10.1.1.1" in files.resolv_conf.read_text()
