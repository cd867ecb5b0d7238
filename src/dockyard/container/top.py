"""``docker top``: the host's ``ps`` output, filtered to a container's pids.

Docker runs ``ps`` on the host with the caller's arguments (``-ef`` by
default) and keeps the rows whose PID column is one of the container's
processes; so does this.  Columns past the title count are joined into the
last one (the command line has spaces).
"""

from __future__ import annotations

import re
import subprocess
from typing import Iterable

from ..errors import Internal, InvalidArgument

_ASSIGN = re.compile(r"\s+(\S*)=\s*(PID\S*)")


def validate_ps_args(ps_args: str) -> None:
    for key, value in _ASSIGN.findall(" " + ps_args):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')


def parse_ps_output(output: str, pids: Iterable[int]) -> dict[str, list]:
    wanted = set(pids)
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise Internal("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes: list[list[str]] = []
    previous_matched = False
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == "-":
            # thread lines (ps -m) follow the process they belong to
            if previous_matched:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise Internal(f"Unexpected pid '{fields[pid_index]}' in ps output") from None
        previous_matched = pid in wanted
        if previous_matched:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


def _row(fields: list[str], ntitles: int) -> list[str]:
    if len(fields) <= ntitles:
        return fields
    return fields[:ntitles - 1] + [" ".join(fields[ntitles - 1:])]


def top(pids: Iterable[int], ps_args: str = "") -> dict[str, list]:
    ps_args = ps_args or "-ef"
    validate_ps_args(ps_args)
    try:
        result = subprocess.run(["ps", *ps_args.split()], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise Internal("ps is not installed on the host") from None
    if result.returncode != 0:
        # dockerd's words: the first line of ps's complaint, after "ps: ".
        lines = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}").splitlines()
        raise InvalidArgument(f"ps: {lines[0].strip()}")
    return parse_ps_output(result.stdout, pids)
