"""Dockerfile-style ``changes`` applied to an image config, as ``docker
import --change`` and ``docker commit --change`` take them.

Accepted instructions (Docker's list for commit/import): CMD, ENTRYPOINT,
ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
WORKDIR.  Each change string may hold several lines (with ``\\``
continuations), as the Engine API passes Dockerfile text.

Forms follow the Dockerfile reference: CMD/ENTRYPOINT/HEALTHCHECK CMD take
the JSON-array ("exec") form or the shell form (wrapped in ``/bin/sh -c``);
ENV and LABEL take ``key=value`` pairs (quotes and backslash escapes
honoured) or the legacy ``key value`` form; ENV, WORKDIR, USER, EXPOSE,
VOLUME, STOPSIGNAL and LABEL expand ``$VAR`` / ``${VAR}`` /
``${VAR:-default}`` / ``${VAR:+alt}`` from the environment built so far.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re

from ..errors import InvalidArgument
from ..oci.image import ContainerConfig, HealthConfig

SHELL = ("/bin/sh", "-c")

_ALLOWED = frozenset({"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal",
                      "user", "volume", "workdir"})

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def logical_lines(text: str) -> list[str]:
    """Dockerfile lines: continuations joined, comments and blanks dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def apply_changes(config: ContainerConfig, changes: list[str] | tuple[str, ...]) -> ContainerConfig:
    """``config`` with every instruction in ``changes`` applied in order."""
    state = _State(config)
    for change in changes:
        if not isinstance(change, str):
            raise InvalidArgument(f"change must be a string, got {type(change).__name__}")
        for line in logical_lines(change):
            state.apply(line)
    return state.result()


class _State:
    def __init__(self, config: ContainerConfig) -> None:
        self.config = config
        self.cmd_set = False

    def result(self) -> ContainerConfig:
        return self.config

    def _set(self, **fields) -> None:
        self.config = dataclasses.replace(self.config, **fields)

    def env(self) -> dict[str, str]:
        return self.config.env_dict()

    def apply(self, line: str) -> None:
        keyword, _, rest = line.partition(" ")
        if "\t" in keyword:
            keyword, _, more = keyword.partition("\t")
            rest = more + " " + rest
        verb = keyword.lower()
        rest = rest.strip()
        if verb not in _ALLOWED:
            raise InvalidArgument(f"{verb} is not a valid change command")  # Docker prints the lowercased keyword
        getattr(self, "_" + verb)(rest, line)

    # -- instructions --------------------------------------------------------

    def _cmd(self, rest: str, line: str) -> None:
        self._set(cmd=_command(rest, line))
        self.cmd_set = True

    def _entrypoint(self, rest: str, line: str) -> None:
        entrypoint = _command(rest, line) if rest else ()
        fields = {"entrypoint": entrypoint}
        if not self.cmd_set:
            # As in a Dockerfile: a new ENTRYPOINT drops the inherited CMD
            # unless a CMD was given alongside.
            fields["cmd"] = None
        self._set(**fields)

    def _env(self, rest: str, line: str) -> None:
        pairs = _key_values(rest, line, self.env())
        env = list(self.config.env or ())
        for key, value in pairs:
            prefix = key + "="
            env = [item for item in env if not item.startswith(prefix) and item != key]
            env.append(f"{key}={value}")
        self._set(env=tuple(env))

    def _label(self, rest: str, line: str) -> None:
        labels = dict(self.config.labels or {})
        for key, value in _key_values(rest, line, self.env()):
            labels[key] = value
        self._set(labels=dict(sorted(labels.items())))

    def _expose(self, rest: str, line: str) -> None:
        ports = list(self.config.exposed_ports or ())
        for word in _words(rest, line, self.env()):
            for port in _ports(word, line):
                if port not in ports:
                    ports.append(port)
        # Sorted as strings: Go writes these maps with sorted keys.
        self._set(exposed_ports=tuple(sorted(ports)))

    def _volume(self, rest: str, line: str) -> None:
        if rest.startswith("["):
            paths = _json_list(rest, line)
        else:
            paths = _words(rest, line, self.env())
        volumes = list(self.config.volumes or ())
        for path in paths:
            if not path.strip():
                raise InvalidArgument(f"{line}: VOLUME specified can not be an empty string")
            if path not in volumes:
                volumes.append(path)
        self._set(volumes=tuple(sorted(volumes)))

    def _workdir(self, rest: str, line: str) -> None:
        words = _words(rest, line, self.env(), split=False)
        if len(words) != 1 or not words[0]:
            raise InvalidArgument(f"{line}: WORKDIR requires exactly one argument")
        path = words[0]
        if not path.startswith("/"):
            path = posixpath.join(self.config.working_dir or "/", path)
        self._set(working_dir=posixpath.normpath(path))

    def _user(self, rest: str, line: str) -> None:
        words = _words(rest, line, self.env(), split=False)
        if len(words) != 1 or not words[0]:
            raise InvalidArgument(f"{line}: USER requires exactly one argument")
        self._set(user=words[0])

    def _stopsignal(self, rest: str, line: str) -> None:
        words = _words(rest, line, self.env(), split=False)
        if len(words) != 1 or not words[0]:
            raise InvalidArgument(f"{line}: STOPSIGNAL requires exactly one argument")
        signal = words[0]
        name = signal.upper().removeprefix("SIG")
        if not (signal.isdigit() or name.isalnum() or re.fullmatch(r"RTMIN\+\d+|RTMAX-\d+", name)):
            raise InvalidArgument(f"{line}: invalid signal {signal!r}")
        self._set(stop_signal=signal)

    def _onbuild(self, rest: str, line: str) -> None:
        inner = rest.split(None, 1)[0].upper() if rest else ""
        if not inner:
            raise InvalidArgument(f"{line}: ONBUILD requires an instruction")
        if inner in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"{line}: {inner} isn't allowed as an ONBUILD trigger")
        trigger = inner + rest[len(inner):]
        self._set(on_build=tuple(self.config.on_build or ()) + (trigger,))

    def _healthcheck(self, rest: str, line: str) -> None:
        options: dict[str, int] = {}
        flags = {"interval": "interval", "timeout": "timeout", "start-period": "start_period",
                 "start-interval": "start_interval", "retries": "retries"}
        while rest.startswith("--"):
            word, _, rest = rest.partition(" ")
            rest = rest.lstrip()
            flag, _, value = word[2:].partition("=")
            attr = flags.get(flag)
            if attr is None:
                raise InvalidArgument(f"{line}: unknown HEALTHCHECK flag --{flag}")
            if attr == "retries":
                if not value.isdigit():
                    raise InvalidArgument(f"{line}: --retries must be a whole number")
                options[attr] = int(value)
            else:
                options[attr] = _duration(value, line)
        kind, _, remainder = rest.partition(" ")
        kind, remainder = kind.upper(), remainder.strip()
        if kind == "NONE":
            if remainder or options:
                raise InvalidArgument(f"{line}: HEALTHCHECK NONE takes no arguments")
            self._set(healthcheck=HealthConfig(test=("NONE",)))
            return
        if kind != "CMD":
            raise InvalidArgument(f"{line}: HEALTHCHECK requires CMD or NONE")
        if not remainder:
            raise InvalidArgument(f"{line}: HEALTHCHECK CMD requires a command")
        command = _command(remainder, line)
        test = ("CMD-SHELL", remainder) if command[:2] == SHELL and not remainder.startswith("[") else (
            ("CMD",) + command)
        self._set(healthcheck=HealthConfig(test=test, **options))


# -- argument parsing ----------------------------------------------------------


def _json_list(text: str, line: str) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"{line}: invalid JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{line}: expected a JSON array of strings")
    return tuple(value)


def _command(rest: str, line: str) -> tuple[str, ...]:
    """Exec form when the argument is a JSON array of strings, else the
    shell form.  (Like Docker, text that merely starts with ``[`` but is
    not valid JSON is a shell command.)"""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    if not rest:
        raise InvalidArgument(f"{line}: requires at least one argument")
    return SHELL + (rest,)


def _expand(text: str, env: dict[str, str], line: str) -> str:
    """Expand ``$VAR`` forms outside single quotes; ``\\$`` is a literal $."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == "$":
            out.append("\\$")
            i += 2
            continue
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        if text[i + 1] == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise InvalidArgument(f"{line}: missing '}}' in variable substitution")
            body = text[i + 2:end]
            name, op, arg = body, "", ""
            for candidate in (":-", ":+", "-", "+"):
                if candidate in body:
                    name, _, arg = body.partition(candidate)
                    op = candidate
                    break
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise InvalidArgument(f"{line}: bad substitution ${{{body}}}")
            value = env.get(name)
            if op in (":-",):
                out.append(value if value else arg)
            elif op == "-":
                out.append(value if value is not None else arg)
            elif op == ":+":
                out.append(arg if value else "")
            elif op == "+":
                out.append(arg if value is not None else "")
            else:
                out.append(value or "")
            i = end + 1
            continue
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1:])
        if not match:
            out.append(c)
            i += 1
            continue
        out.append(env.get(match.group(0), ""))
        i += 1 + len(match.group(0))
    return "".join(out)


def _words(rest: str, line: str, env: dict[str, str], split: bool = True) -> list[str]:
    """Split on unquoted whitespace (when ``split``), removing quotes and
    escapes and expanding variables outside single quotes."""
    words: list[str] = []
    current: list[str] = []
    has_word = False
    i = 0
    n = len(rest)
    while i < n:
        c = rest[i]
        if c.isspace() and split:
            if has_word:
                words.append("".join(current))
                current = []
                has_word = False
            i += 1
            continue
        has_word = True
        if c == "'":
            end = rest.find("'", i + 1)
            if end < 0:
                raise InvalidArgument(f"{line}: unmatched single quote")
            current.append(rest[i + 1:end])
            i = end + 1
        elif c == '"':
            j = i + 1
            chunk: list[str] = []
            while j < n and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < n and rest[j + 1] in '"\\$':
                    chunk.append(rest[j:j + 2] if rest[j + 1] == "$" else rest[j + 1])
                    j += 2
                else:
                    chunk.append(rest[j])
                    j += 1
            if j >= n:
                raise InvalidArgument(f"{line}: unmatched double quote")
            current.append(_unescape_dollar(_expand("".join(chunk), env, line)))
            i = j + 1
        elif c == "\\" and i + 1 < n:
            current.append(rest[i + 1])
            i += 2
        else:
            j = i
            while j < n and rest[j] not in "'\"\\" and not (split and rest[j].isspace()):
                j += 1
            if j == i:  # a lone trailing backslash
                current.append(c)
                i += 1
                continue
            current.append(_unescape_dollar(_expand(rest[i:j], env, line)))
            i = j
    if has_word:
        words.append("".join(current))
    return words


def _unescape_dollar(text: str) -> str:
    return text.replace("\\$", "$")


def _key_values(rest: str, line: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` pairs, or the legacy ``key value with spaces``."""
    if not rest:
        raise InvalidArgument(f"{line}: requires at least one argument")
    first = rest.split(None, 1)[0]
    if "=" not in first:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise InvalidArgument(f"{line}: requires two arguments in the 'key value' form")
        return [(key, _words(value.strip(), line, env, split=False)[0])]
    pairs = []
    for word in _words(rest, line, env):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{line}: syntax error - can't find = in {word!r}. Must be of the form: name=value")
        pairs.append((key, value))
    return pairs


def _ports(word: str, line: str) -> list[str]:
    spec, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"{line}: invalid proto {proto!r}")
    if ":" in spec:
        spec = spec.rsplit(":", 1)[1]  # EXPOSE ignores an IP/host part, as Docker does
    start, _, end = spec.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise InvalidArgument(f"{line}: invalid containerPort: {word}")
    low, high = int(start), int(end or start)
    if not (0 < low <= high <= 65535):
        raise InvalidArgument(f"{line}: invalid port range: {word}")
    return [f"{p}/{proto}" for p in range(low, high + 1)]


def _duration(text: str, line: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    if text == "0":
        return 0
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"{line}: invalid duration {text!r}")
    return int(total)
