"""Smoke tests of the benchmark harness's pure parts: statistics,
alternation, rows and the results files.  No engines, no timing
assertions (the benchmarks themselves are `python -m bench`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `bench`

from bench.__main__ import BENCHMARKS, parse_args  # noqa: E402
from bench.harness import CaseFailed, Measured, Report, Row, Summary, alternate, compare, fmt  # noqa: E402


def test_summary_of_values() -> None:
    s = Summary.of([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    assert Summary.single(7.0) == Summary(7.0, 7.0, 7.0, 1)
    with pytest.raises(ValueError):
        Summary.of([])


def test_alternate_warms_up_then_rotates_the_order() -> None:
    calls: list[str] = []

    def case(name: str, value: float):
        def run() -> float:
            calls.append(name)
            return value
        return run

    measured = alternate({"a": case("a", 1.0), "b": case("b", 2.0), "c": case("c", 3.0)}, reps=3, warmup=1)
    # one warm-up round, then each round starts one engine later
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert measured.samples == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [3.0] * 3}
    assert measured.errors == {}


def test_alternate_uses_wall_time_for_none_and_keeps_phases() -> None:
    measured = alternate({"timed": lambda: None, "phases": lambda: {"start": 1.0, "stop": 2.0}}, reps=2, warmup=0)
    assert len(measured.samples["timed"]) == 2 and all(v >= 0 for v in measured.samples["timed"])
    assert measured.samples["phases/start"] == [1.0, 1.0]
    assert measured.samples["phases/stop"] == [2.0, 2.0]


def test_a_failing_case_is_recorded_and_the_others_continue() -> None:
    runs = {"ok": 0, "bad": 0}

    def ok() -> float:
        runs["ok"] += 1
        return 1.0

    def bad() -> float:
        runs["bad"] += 1
        raise CaseFailed("engine fell over")

    measured = alternate({"bad": bad, "ok": ok}, reps=4, warmup=1)
    assert runs == {"ok": 5, "bad": 1}  # dropped after its first failure
    assert measured.errors == {"bad": "engine fell over"}
    assert measured.summary("bad") is None
    assert measured.summary("ok") == Summary(1.0, 1.0, 1.0, 4)
    assert measured.error("bad/start") == "engine fell over"


def test_a_case_raising_anything_else_stops_the_run() -> None:
    def broken() -> float:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        alternate({"broken": broken}, reps=1, warmup=0)


def test_ratio_and_compare() -> None:
    measured = Measured({"dy": [1.0, 2.0, 3.0], "peer": [4.0, 4.0, 4.0]}, {"other": "no such engine"})
    row = compare(measured, group="g", bench="b", unit="s", dockyard=("dy", "dockyardd"), peer=("peer", "dockerd"))
    assert row.ratio == pytest.approx(0.5)
    assert row.error == ""
    failed = compare(measured, group="g", bench="b", unit="s", dockyard=("other", "dockyardd"),
                     peer=("peer", "dockerd"))
    assert failed.ratio is None and failed.dockyard is None
    assert "no such engine" in failed.error
    assert Row("b", "s", "x", "y", Summary.single(1), Summary.single(0)).ratio is None


def test_units_are_formatted_for_people() -> None:
    assert fmt(0.0123, "s") == "12.3 ms"
    assert fmt(12.5, "s") == "12.5 s"
    assert fmt(0.0004, "s") == "400 µs"
    assert fmt(2048, "KiB") == "2.0 MiB"
    assert fmt(512, "KiB") == "512 KiB"
    assert fmt(None, "s") == "n/a"


def test_report_writes_json_and_markdown_atomically(tmp_path: Path, capsys) -> None:
    report = Report("smoke")
    report.start()
    report.notes.append("all engines --network none")
    report.unavailable["crun"] = "hybrid cgroups"
    report.add(Row("run", "s", "dockyardd", "dockerd", Summary.of([0.1, 0.2]), Summary.of([0.4]), group="run"))
    report.add(Row("exec", "s", "dockyard", "podman", None, Summary.of([0.3]), group="exec",
                   error="dockyard: unknown command"))
    printed = capsys.readouterr().out
    assert "0.38x" in printed and "FAILED: dockyard: unknown command" in printed

    json_path, md_path = report.write(tmp_path, stem="20260101-000000")
    assert json_path == tmp_path / "20260101-000000.json" and md_path == tmp_path / "20260101-000000.md"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["20260101-000000.json", "20260101-000000.md", "latest.json", "latest.md"]  # no temp files
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["title"] == "smoke"
    assert doc["unavailable"] == {"crun": "hybrid cgroups"}
    assert doc["machine"]["cores"] >= 1 and "dockerd" in doc["machine"]["versions"]
    assert doc["started"]["dockyard"] and doc["started"]["loadavg"] >= 0
    first, second = doc["rows"]
    assert first["ratio"] == pytest.approx(0.375) and first["dockyard"]["median"] == pytest.approx(0.15)
    assert second["ratio"] is None and second["error"] == "dockyard: unknown command"
    md = (tmp_path / "latest.md").read_text()
    assert "### run" in md and "### exec" in md and "at the start" in md
    assert "| run | dockyardd | 150.0 ms (100.0 ms–200.0 ms, n=2) | dockerd | 400.0 ms | 0.38x |" in md
    assert "FAILED: dockyard: unknown command" in md and "- crun: hybrid cgroups" in md

    before = (tmp_path / "latest.json").read_text()
    report.title = "partial"
    report.write(tmp_path, stem="partial", latest=False)
    assert (tmp_path / "latest.json").read_text() == before  # a partial run leaves latest.* alone
    assert json.loads((tmp_path / "partial.json").read_text())["title"] == "partial"


def test_slower_rows_are_marked_in_markdown(tmp_path: Path) -> None:
    report = Report("marks")
    report.rows.append(Row("slow", "s", "a", "b", Summary.single(2.0), Summary.single(1.0)))
    report.write(tmp_path, stem="x")
    assert "| **2.00x** |" in (tmp_path / "x.md").read_text()


def test_command_line() -> None:
    args = parse_args(["--quick", "--only", "run,exec", "--only", "api", "--reps", "3"])
    assert args.quick and args.reps == 3
    assert args.selected == ["run", "exec", "api"] == [n for n in BENCHMARKS if n in ("run", "exec", "api")]
    assert parse_args([]).selected == list(BENCHMARKS)
    with pytest.raises(SystemExit):
        parse_args(["--only", "nosuch"])
    with pytest.raises(SystemExit):
        parse_args(["--reps", "0"])
