"""The container record: identity, configuration and state, and the Docker
JSON shapes (inspect, list) made from it.

Terms:

container
    A record (``Container``) the service owns: its Config and HostConfig as
    validated at create, the image it came from, its snapshot, and its
    ``State``.  The record is mutable and guarded by the service's
    per-container lock; every change is written to the metadata DB in one
    transaction before it is acted upon or reported.
state
    A value (``State``, frozen): what Docker's inspect shows under
    ``State``.  Transitions replace it whole.

Status values (Docker's): created, running, paused, restarting,
removing, exited, dead.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidArgument

ZERO_TIME = "0001-01-01T00:00:00Z"

CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead")
STATUSES = (CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD)

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ID_RE = re.compile(r"^[0-9a-f]{64}$")

#: Health states.
STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK = "starting", "healthy", "unhealthy", "none"
HEALTH_LOG_SIZE = 5
#: Docker truncates probe output kept in the health log.
HEALTH_OUTPUT_LIMIT = 4096


def new_id() -> str:
    """Docker's container ID: 64 random hex digits, never all-numeric in its
    short form (the CLI would read that as a number)."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit():
            return cid


def format_time(ts: float | int | None = None, *, nanos: int | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker prints times."""
    if nanos is None:
        nanos = time.time_ns() if ts is None else int(ts * 1_000_000_000)
    seconds, frac = divmod(nanos, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (0 for Docker's zero time)."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    body = text.rstrip("Z")
    offset = 0
    match = re.search(r"([+-])(\d\d):(\d\d)$", body)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        offset = sign * (int(match.group(2)) * 3600 + int(match.group(3)) * 60)
        body = body[:match.start()]
    frac = 0.0
    if "." in body:
        body, frac_s = body.split(".", 1)
        frac = float("0." + frac_s) if frac_s else 0.0
    try:
        dt = datetime.strptime(body, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidArgument(f"invalid time {text!r}: expected RFC 3339") from None
    return dt.timestamp() + frac - offset


def parse_time_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time, exactly (no float
    rounding: log ``since``/``until`` bounds compare to the nanosecond)."""
    if not text or text.startswith("0001-01-01"):
        return 0
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$", text)
    if not match:
        raise InvalidArgument(f"invalid time {text!r}: expected RFC 3339")
    whole = int(parse_time(match.group(1) + (match.group(3) or "Z")))
    frac = int((match.group(2) or "0").ljust(9, "0"))
    return whole * 1_000_000_000 + frac


def timestamp_ns(value: float | int | str | None) -> int | None:
    """An API time bound as ns: unix seconds (``"1700000000.5"``, exact
    for strings), an RFC 3339 string, or a number of seconds.  None/0/""
    mean unset."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d{1,9})?", text):
            whole, _, frac = text.partition(".")
            return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0") or 0)
        return parse_time_ns(text)
    return int(round(float(value) * 1_000_000_000))


def check_name(name: str) -> str:
    """A valid container name in its stored form ("/name")."""
    if not name or not NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name if name.startswith("/") else "/" + name


@dataclass(frozen=True)
class HealthResult:
    start: str
    end: str
    exit_code: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code, "Output": self.output}


@dataclass(frozen=True)
class Health:
    status: str = STARTING
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak,
                "Log": [r.to_json() for r in self.log]}

    def record(self, result: HealthResult, status: str, streak: int) -> Health:
        return Health(status, streak, (self.log + (result,))[-HEALTH_LOG_SIZE:])


@dataclass(frozen=True)
class State:
    status: str = CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: Health | None = None

    @property
    def running(self) -> bool:
        # Docker reports Running true while paused or restarting too.
        return self.status in (RUNNING, PAUSED, RESTARTING)

    @property
    def paused(self) -> bool:
        return self.status == PAUSED

    @property
    def restarting(self) -> bool:
        return self.status == RESTARTING

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "Status": self.status,
            "Running": self.status in (RUNNING, PAUSED),
            "Paused": self.status == PAUSED,
            "Restarting": self.status == RESTARTING,
            "OOMKilled": self.oom_killed,
            "Dead": self.status == DEAD,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.health is not None:
            doc["Health"] = self.health.to_json()
        return doc

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> State:
        health = doc.get("health")
        if health is not None:
            health = Health(health["status"], health["failing_streak"],
                            tuple(HealthResult(**r) for r in health["log"]))
        return cls(**{**doc, "health": health})

    def replace(self, **changes: Any) -> State:
        return replace(self, **changes)


@dataclass
class Container:
    """One container's record (see the module docstring)."""

    id: str
    name: str                      # "/name"
    created: str
    image_id: str                  # "sha256:<config digest>"
    image: str                     # Config.Image as the caller gave it
    config: dict[str, Any]
    host_config: dict[str, Any]
    networking_config: dict[str, Any] | None
    snapshot_key: str
    runtime: str
    state: State = field(default_factory=State)
    restart_count: int = 0
    has_been_started: bool = False
    #: set by stop/kill from a user; clears at the next start.  A container
    #: stopped by hand is not restarted by its policy (nor on daemon start
    #: for unless-stopped).
    manually_stopped: bool = False
    #: where the service keeps this container's files
    root_dir: str = ""
    log_path: str = ""
    #: the supervisor's handle (pid, socket, ...), as the supervisor module
    #: defines it; empty when no supervisor runs for this container
    supervisor: dict[str, Any] = field(default_factory=dict)
    #: extra facts persisted with the record (mount points made at create,
    #: warnings, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def bare_name(self) -> str:
        return self.name.lstrip("/")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def path_and_args(self) -> tuple[str, list[str]]:
        argv = list(self.config.get("Entrypoint") or []) + list(self.config.get("Cmd") or [])
        return (argv[0] if argv else ""), argv[1:]

    def to_record(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if k != "state"}
        doc["state"] = self.state.to_record()
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> Container:
        doc = dict(doc)
        state = State.from_record(doc.pop("state"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(state=state, **{k: v for k, v in doc.items() if k in known})

    def event_attributes(self, **extra: str) -> dict[str, str]:
        """Actor attributes of a container event: its labels plus image and
        name, as Docker sends them."""
        attrs = {k: str(v) for k, v in self.labels.items()}
        attrs["image"] = self.image
        attrs["name"] = self.bare_name
        attrs.update({k: str(v) for k, v in extra.items()})
        return attrs
