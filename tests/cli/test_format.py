"""docker's output conventions: go-units sizes and durations, tabwriter
alignment, --format modes, --since/--until conversion."""

from __future__ import annotations

import time

import pytest

from dockyard.cli.format import bytes_size, ellipsis, human_duration, human_size, render_rows, tabwrite
from dockyard.cli.timestamps import get_timestamp, parse_go_duration


@pytest.mark.parametrize("size, text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1234, "1.23kB"), (4261550, "4.26MB"), (1_982_291, "1.98MB"),
    (123_456_789, "123MB"), (5.5e12, "5.5TB"), (1e15, "1PB"),
])
def test_human_size(size: float, text: str) -> None:
    assert human_size(size) == text


def test_human_size_precision_4_and_bytes() -> None:
    assert human_size(1_982_291, 4) == "1.982MB"
    assert bytes_size(25_274_040_320) == "23.54GiB"
    assert bytes_size(1024) == "1KiB"


@pytest.mark.parametrize("seconds, text", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"), (729 * 86400, "24 months"),
    (730 * 86400, "2 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_tabwriter_matches_docker() -> None:
    lines = ["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE",
             "localhost:5000/a/b\tv1\t2822d72eadaa\tLess than a second ago\t1.98MB",
             "busybox\tlatest\t2822d72eadaa\t2 weeks ago\t1.98MB"]
    assert tabwrite(lines) == (
        "REPOSITORY           TAG       IMAGE ID       CREATED                  SIZE\n"
        "localhost:5000/a/b   v1        2822d72eadaa   Less than a second ago   1.98MB\n"
        "busybox              latest    2822d72eadaa   2 weeks ago              1.98MB\n")


def test_tabwriter_blocks_and_trailing_cells() -> None:
    # A line without tabs ends a column block, as in Go's tabwriter.
    assert tabwrite(["a\tb", "x", "long-cell\tc"]) == "a         b\nx\nlong-cell   c\n"
    assert tabwrite([]) == ""


def test_ellipsis() -> None:
    assert ellipsis("short", 45) == "short"
    text = "/bin/sh -c #(nop) ADD file:abcdef0123456789 in / abcdef"
    assert ellipsis(text, 45) == text[:44] + "…" and len(ellipsis(text, 45)) == 45


ROWS = [{"ID": "abc", "Name": "one"}, {"ID": "def", "Name": "two"}]
HEADERS = {"ID": "THE ID"}
DEFAULT = "table {{.ID}}\t{{.Name}}"


def test_render_modes() -> None:
    assert render_rows(None, ROWS, default=DEFAULT, headers=HEADERS) == (
        "THE ID    NAME\nabc       one\ndef       two\n")
    assert render_rows("{{.Name}}", ROWS, default=DEFAULT, headers=HEADERS) == "one\ntwo\n"
    assert render_rows("json", ROWS, default=DEFAULT, headers=HEADERS) == (
        '{"ID":"abc","Name":"one"}\n{"ID":"def","Name":"two"}\n')
    assert render_rows("table {{.Name}}", ROWS, default=DEFAULT, headers=HEADERS) == "NAME\none\ntwo\n"
    assert render_rows("table", ROWS, default=DEFAULT, headers=HEADERS).startswith("THE ID")
    assert render_rows(None, ROWS, default=DEFAULT, headers=HEADERS, quiet_field="ID", quiet=True) == "abc\ndef\n"
    # -q beats a table format (docker images -q --format table), not a custom one.
    for table in ("table", "table {{.Name}}"):
        assert render_rows(table, ROWS, default=DEFAULT, headers=HEADERS, quiet_field="ID", quiet=True) == "abc\ndef\n"
    assert render_rows("{{.Name}}", ROWS, default=DEFAULT, headers=HEADERS, quiet_field="ID", quiet=True) == "one\ntwo\n"
    assert render_rows("{{.ID}}\\t{{.Name}}", ROWS, default=DEFAULT, headers=HEADERS) == "abc\tone\ndef\ttwo\n"
    assert render_rows(None, [], default=DEFAULT, headers=HEADERS) == "THE ID    NAME\n"


def test_get_timestamp() -> None:
    now = 1_700_000_000.5
    assert get_timestamp("10m", now) == "1699999400.500000000"
    assert get_timestamp("1h30m", now) == "1699994600.500000000"
    assert get_timestamp("0s", now) == "1700000000.500000000"
    assert get_timestamp("1700000000", now) == "1700000000"
    assert get_timestamp("1700000000.25", now) == "1700000000.250000000"
    assert get_timestamp("2023-11-14T22:13:20Z", now) == "1700000000.000000000"
    assert get_timestamp("2023-11-14T22:13:20.5+00:00", now) == "1700000000.500000000"
    with pytest.raises(Exception):
        get_timestamp("yesterday", now)
    assert parse_go_duration("1.5h") == 5400 and parse_go_duration("nonsense") is None


def test_get_timestamp_dates_are_local() -> None:
    expected = int(time.mktime(time.strptime("2024-03-01", "%Y-%m-%d")))
    assert get_timestamp("2024-03-01") == f"{expected}.000000000"
