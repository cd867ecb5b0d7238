"""What every benchmark is handed: the report, the run's private work
directory and cgroup parent, repetition counts, and the engines (started
once, on first use, with the busybox image imported; torn down at the end
whatever happens)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .engines import (IMAGE, PODMAN_IMAGE, BenchFailure, Daemon, Dockerd, Dockyardd, Podman, remove_cgroups,
                      unmount_under)
from .harness import Report


@dataclass
class Context:
    report: Report
    work: Path
    run_id: str
    quick: bool
    rootfs_tar: Path
    reps_override: int | None = None
    podman_runtime: str = "runc"
    _shared: dict[str, Daemon | Podman] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)
    _owned: list[Daemon | Podman] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)

    @property
    def cgroup_parent(self) -> str:
        return f"/dybench-{self.run_id}"

    def reps(self, full: int, quick: int) -> int:
        if self.reps_override is not None:
            return self.reps_override
        return quick if self.quick else full

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self._t0:7.1f}s] {message}", flush=True)

    # -- engines ------------------------------------------------------------

    def new_daemon(self, kind: str, tag: str) -> Dockerd | Dockyardd:
        """A fresh, not yet started daemon under the work directory (torn
        down by close() if the caller does not)."""
        cls = Dockerd if kind == "dockerd" else Dockyardd
        daemon = cls(self.work / f"{kind}-{tag}", self.cgroup_parent)
        self._owned.append(daemon)
        return daemon

    def _shared_engine(self, kind: str, make: Callable[[], Daemon | Podman]) -> Daemon | Podman:
        if kind in self._shared:
            return self._shared[kind]
        if kind in self._failed:
            raise BenchFailure(self._failed[kind])
        try:
            engine = make()
        except BenchFailure as e:
            self._failed[kind] = str(e)
            self.report.unavailable[kind] = str(e)
            raise
        self._shared[kind] = engine
        return engine

    def dockerd(self) -> Dockerd:
        def make() -> Dockerd:
            d = self.new_daemon("dockerd", "shared")
            self.log("starting a private dockerd")
            d.start()
            d.docker_cli("docker").run("import", str(self.rootfs_tar), IMAGE, timeout=120)
            return d
        return self._shared_engine("dockerd", make)  # type: ignore[return-value]

    def dockyardd(self) -> Dockyardd:
        def make() -> Dockyardd:
            d = self.new_daemon("dockyardd", "shared")
            self.log("starting a private dockyardd")
            d.start()
            d.dockyard_cli().run("import", str(self.rootfs_tar), IMAGE, timeout=120)
            return d
        return self._shared_engine("dockyardd", make)  # type: ignore[return-value]

    def podman(self) -> Podman:
        def make() -> Podman:
            p = Podman(self.work / "podman", self.cgroup_parent, runtime=self.podman_runtime)
            self._owned.append(p)
            self.log(f"preparing podman (private root, cgroupfs, {self.podman_runtime})")
            p.cli().run("import", str(self.rootfs_tar), PODMAN_IMAGE, timeout=180)
            return p
        return self._shared_engine("podman", make)  # type: ignore[return-value]

    def engine(self, kind: str) -> Dockerd | Dockyardd | Podman:
        return {"dockerd": self.dockerd, "dockyardd": self.dockyardd, "podman": self.podman}[kind]()

    def stop_shared(self) -> None:
        """Tear down the shared engines (before benchmarks that start their
        own, so idle daemons are not in the way)."""
        for kind in list(self._shared):
            engine = self._shared.pop(kind)
            self.destroy(engine)

    def destroy(self, engine: Daemon | Podman) -> None:
        try:
            engine.destroy()
        finally:
            if engine in self._owned:
                self._owned.remove(engine)

    def close(self) -> list[str]:
        """Tear everything down; returns what could not be removed."""
        problems = []
        for engine in reversed(list(self._owned)):
            try:
                self.destroy(engine)
            except (OSError, BenchFailure) as e:
                problems.append(f"{type(engine).__name__} at {engine.base}: {e}")
        self._shared.clear()
        problems += [f"cgroup {d} not removed" for d in remove_cgroups(self.cgroup_parent)]
        unmount_under(self.work)
        if self.work.exists():
            import shutil

            shutil.rmtree(self.work, ignore_errors=True)
            if self.work.exists():
                problems.append(f"{self.work} not removed")
        return problems


def failing_case(message: str) -> Callable[[], None]:
    """A case for an engine that could not be prepared: it fails at once,
    so the row shows why instead of vanishing."""
    def case() -> None:
        raise BenchFailure(message)
    return case
