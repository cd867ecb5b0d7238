"""What every command gets: the daemon connection settings, a lazily made
client, output streams, and docker-style argument parsing and errors."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING, NoReturn, Sequence, TextIO

if TYPE_CHECKING:
    from dockyard.client import Client, TLSConfig

PROG = "dockyard"


class UsageError(Exception):
    """Bad flags or arguments; docker exits 125 for flag errors, 1 for a
    wrong number of arguments."""

    def __init__(self, message: str, status: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CommandFailed(Exception):
    """The command already reported its errors; exit with ``status``."""

    def __init__(self, status: int = 1) -> None:
        super().__init__(status)
        self.status = status


#: argparse's "argument -n/--tail: <problem>" and its "invalid int value: 'x'"
_ARGPARSE_FLAG_ERROR = re.compile(r"argument (-[^:\s]*(?:/-[^:\s]*)*): (.*)", re.S)
_ARGPARSE_BAD_VALUE = re.compile(r"invalid (\w+) value: '(.*)'", re.S)
#: the Go parser pflag names when a value does not parse
_GO_PARSERS = {"int": "strconv.ParseInt", "float": "strconv.ParseFloat"}


class ArgParser(argparse.ArgumentParser):
    """argparse with docker's error wording and exit codes."""

    def __init__(self, command: str, *, usage_line: str, description: str, **kw: object) -> None:
        super().__init__(prog=f"{PROG} {command}", usage=f"{PROG} {command} {usage_line}".rstrip(),
                         description=description, add_help=True, **kw)  # type: ignore[arg-type]
        self.command = command

    def error(self, message: str) -> NoReturn:
        # Worded as docker 28 words them.
        if message.startswith("unrecognized arguments: "):
            word = message.split(": ", 1)[1].split()[0]
            if word.startswith("-"):
                raise UsageError(f"unknown flag: {word}\n\n{self._usage_tail()}")
            # only a command without positional arguments leaves a word over
            raise UsageError(f"{PROG}: '{PROG} {self.command}' accepts no arguments\n\n"
                             f"{self._usage_tail()}", status=1)
        flag_problem = _ARGPARSE_FLAG_ERROR.fullmatch(message)
        if flag_problem:
            flags, problem = flag_problem.group(1).split("/"), flag_problem.group(2)
            if problem == "expected one argument":
                raise UsageError(f"flag needs an argument: {flags[-1]}\n\n{self._usage_tail()}")
            bad_value = _ARGPARSE_BAD_VALUE.fullmatch(problem)
            if bad_value and bad_value.group(1) in _GO_PARSERS:
                value = bad_value.group(2)
                shorts = [f for f in flags if not f.startswith("--")][:1]
                longs = [f for f in flags if f.startswith("--")][-1:]
                raise UsageError(f'invalid argument "{value}" for "{", ".join(shorts + longs)}" flag: '
                                 f'{_GO_PARSERS[bad_value.group(1)]}: parsing "{value}": invalid syntax\n\n'
                                 f"{self._usage_tail()}")
        raise UsageError(f"{message}\n\n{self._usage_tail()}")

    def _usage_tail(self) -> str:
        return f"Usage:  {self.usage}\n\nRun '{PROG} {self.command} --help' for more information"

    def check_count(self, args: Sequence[str], *, exactly: int | None = None, at_least: int | None = None,
                    at_most: int | None = None) -> None:
        """docker's "requires N arguments" checks (exit 1)."""
        n = len(args)
        if at_least is not None and at_most is not None and not at_least <= n <= at_most:
            what = f"at least {at_least} and at most {at_most} argument{'s' if at_most != 1 else ''}"
        elif exactly is not None and n != exactly:
            what = f"{exactly} argument{'s' if exactly != 1 else ''}"
        elif at_least is not None and n < at_least:
            what = f"at least {at_least} argument{'s' if at_least != 1 else ''}"
        elif at_most is not None and n > at_most:
            what = f"at most {at_most} argument{'s' if at_most != 1 else ''}"
        else:
            return
        tail = self._usage_tail()
        if at_least is not None and at_most is None and exactly is None:
            # cobra's minimum-only check words its last line differently
            tail = tail.replace(f"Run '{PROG} {self.command} --help'", f"See '{PROG} {self.command} --help'")
        raise UsageError(f"{PROG}: '{PROG} {self.command}' requires {what}\n\n{tail}", status=1)


class Context:
    """Per-invocation state (a plain class: dataclasses cost start-up time)."""

    def __init__(self, host: str | None = None, tls: "TLSConfig | None" = None, debug: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.host = host
        self.tls = tls
        self.debug = debug
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._client: "Client | None" = None

    @property
    def client(self) -> "Client":
        if self._client is None:
            from dockyard.client import Client

            self._client = Client(self.host, tls=self.tls)
        return self._client

    def parser(self, command: str, usage_line: str, description: str) -> ArgParser:
        return ArgParser(command, usage_line=usage_line, description=description)

    def write(self, text: str) -> None:
        self.out.write(text)

    def print(self, *parts: object) -> None:
        print(*parts, file=self.out)

    def warn(self, text: str) -> None:
        print(text, file=self.err)

    def out_is_tty(self) -> bool:
        try:
            return os.isatty(self.out.fileno())
        except (AttributeError, ValueError, OSError):
            return False
