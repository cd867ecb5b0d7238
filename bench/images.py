"""Images: load and save of a >= 100 MB multi-layer `docker save` archive,
and commit of a container with 50 MB of changes.

The archive is built once by a private dockerd: a busybox base and five
layers of ~24 MB each, ~60% in a few big incompressible files and the rest
in many small text files, so that both byte throughput and per-file cost
count.  Then, alternately:

- load: ``docker load -i`` (the same docker CLI) into a *fresh* dockyardd
  and a fresh dockerd, each on a new data root (an engine that already
  has the layers would skip them), plus Dockyard's library call
  (ImageService.load into a fresh store) to show what the API adds.
  Starting and stopping the engines is not timed.  Nothing is deleted
  between repetitions, on purpose: ext4 makes inode allocation slow for a
  while near many recently deleted inodes (``recently_deleted()`` in the
  allocator), which would charge one side for the other's clean-up.
- save: ``docker save -o`` of that image from each daemon.
- commit: a running container writes 30 MiB in one file and 400 files of
  50 KiB (untimed), then ``docker commit`` through each daemon is timed.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable

from .context import Context, failing_case
from .engines import IMAGE, BenchFailure, Daemon, busybox_rootfs_tar
from .harness import CaseResult, alternate, compare

GROUP = "image"
TARGET = "bench-image:latest"
WORDS = ("layer container image overlay snapshot digest manifest config runtime kernel namespace cgroup "
         "mount volume network bridge registry tag blob index chain whiteout opaque tar gzip zstd").split()
#: 30 MiB in one file plus 400 x 50 KiB: ~50 MiB of changes in the upper dir.
WRITE_50MB = ("head -c 31457280 /dev/urandom > /big.bin && mkdir /small && i=0 && "
              "while [ $i -lt 400 ]; do head -c 51200 /dev/urandom > /small/f$i; i=$((i+1)); done")


def make_context(ctx_dir: Path, total_mb: int, layers: int, seed: int = 42) -> None:
    """A build context: a busybox rootfs tar and one directory per layer."""
    rng = random.Random(seed)
    ctx_dir.mkdir(parents=True)
    busybox_rootfs_tar(ctx_dir / "rootfs.tar")
    per_layer = total_mb * (1 << 20) // layers
    lines = ["FROM bench-base"]
    for n in range(layers):
        d = ctx_dir / f"layer{n}"
        d.mkdir()
        written = 0
        big = 0
        while written < per_layer * 0.6:
            size = rng.randint(1 << 20, 6 << 20)
            (d / f"blob{big}.bin").write_bytes(rng.randbytes(size))
            written += size
            big += 1
        i = 0
        while written < per_layer:
            sub = d / f"dir{i % 40}"
            sub.mkdir(exist_ok=True)
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(100, 1500))).encode()
            (sub / f"file{i}.txt").write_bytes(text)
            written += len(text)
            i += 1
        lines.append(f"COPY layer{n} /data/layer{n}")
    lines.append('CMD ["sh"]')
    (ctx_dir / "Dockerfile").write_text("\n".join(lines) + "\n")


def build_archive(ctx: Context, total_mb: int, layers: int) -> Path:
    """Build the image with a private dockerd and `docker save` it."""
    work = ctx.work / "image-build"
    archive = ctx.work / "image.tar"
    builder = ctx.new_daemon("dockerd", "build")
    try:
        builder.start()
        ctx.log(f"image: building a {total_mb} MB, {layers}+1 layer image")
        make_context(work, total_mb, layers)
        cli = builder.docker_cli("docker")
        cli = dataclasses.replace(cli, env={**cli.env, "DOCKER_BUILDKIT": "0"})  # dockerd 20.10's builder
        cli.run("import", "-c", 'CMD ["sh"]', str(work / "rootfs.tar"), "bench-base", timeout=120)
        cli.run("build", "-q", "-t", TARGET, str(work), timeout=900)
        cli.run("save", "-o", str(archive), TARGET, timeout=600)
    finally:
        ctx.destroy(builder)
        shutil.rmtree(work, ignore_errors=True)
    return archive


def bench_images(ctx: Context) -> None:
    total_mb, layers = 120, 5
    archive = build_archive(ctx, total_mb, layers)
    size_mb = archive.stat().st_size / (1 << 20)
    ctx.log(f"image: archive {size_mb:.0f} MiB")
    first: dict[str, Daemon] = {}
    counter = {"n": 0}

    def load_with(kind: str) -> Callable[[], CaseResult]:
        def case() -> float:
            counter["n"] += 1
            daemon = ctx.new_daemon(kind, f"load{counter['n']}")
            daemon.start()
            try:
                t0 = time.perf_counter()
                daemon.docker_cli("docker").run("load", "-q", "-i", str(archive), timeout=900, quiet=True)
                elapsed = time.perf_counter() - t0
            finally:
                daemon.stop()
            first.setdefault(kind, daemon)  # kept (stopped) for save and commit
            return elapsed
        return case

    def load_library() -> float:
        from dockyard.image import ImageService
        from dockyard.store import open_store

        counter["n"] += 1
        store = open_store(ctx.work / f"store-load{counter['n']}")
        try:
            service = ImageService(store)
            try:
                t0 = time.perf_counter()
                with open(archive, "rb") as f:
                    service.load(f)
                return time.perf_counter() - t0
            finally:
                service.close()
        except OSError as e:
            raise BenchFailure(f"ImageService.load: {e}") from None
        finally:
            store.close()

    reps = ctx.reps(5, 2)
    ctx.log(f"image: load, {reps} reps")
    measured = alternate({"dockyardd": load_with("dockyardd"), "dockerd": load_with("dockerd"),
                          "dockyard-lib": load_library}, reps, warmup=1, log=ctx.log)
    what = f"load {size_mb:.0f} MiB, {layers + 1} layers"
    ctx.report.add(compare(measured, group=GROUP, bench=f"{what} (docker CLI)", unit="s",
                           dockyard=("dockyardd", "dockyardd"), peer=("dockerd", "dockerd"),
                           note="fresh data root per rep"))
    ctx.report.add(compare(measured, group=GROUP, bench=f"{what} (library vs docker CLI)", unit="s",
                           dockyard=("dockyard-lib", "ImageService.load"), peer=("dockerd", "dockerd"),
                           note="fresh store per rep"))

    # Save and commit on the first engines that loaded the image.
    started: list[Daemon] = []
    cases_save: dict[str, Callable[[], CaseResult]] = {}
    cases_commit: dict[str, Callable[[], CaseResult]] = {}
    try:
        for kind in ("dockyardd", "dockerd"):
            daemon = first.get(kind)
            if daemon is None:
                why = measured.error(kind) or "no engine loaded the image"
                cases_save[kind] = cases_commit[kind] = failing_case(why)
                continue
            try:
                daemon.start()
                started.append(daemon)
                daemon.docker_cli("docker").run("import", str(ctx.rootfs_tar), IMAGE, timeout=120)
            except BenchFailure as e:
                cases_save[kind] = cases_commit[kind] = failing_case(f"restarting {kind}: {e}")
                continue
            cases_save[kind] = _save_case(ctx, daemon)
            cases_commit[kind] = _commit_case(ctx, daemon)
        reps = ctx.reps(5, 2)
        ctx.log(f"image: save, {reps} reps")
        measured = alternate(cases_save, reps, warmup=1, log=ctx.log)
        ctx.report.add(compare(measured, group=GROUP, bench=f"save {size_mb:.0f} MiB, {layers + 1} layers "
                               "(docker CLI)", unit="s", dockyard=("dockyardd", "dockyardd"),
                               peer=("dockerd", "dockerd"), note="docker save -o file"))
        ctx.log(f"image: commit, {reps} reps")
        measured = alternate(cases_commit, reps, warmup=1, log=ctx.log)
        ctx.report.add(compare(measured, group=GROUP, bench="commit a container with 50 MiB of changes "
                               "(docker CLI)", unit="s", dockyard=("dockyardd", "dockyardd"),
                               peer=("dockerd", "dockerd"), note="30 MiB file + 400 x 50 KiB, paused"))
    finally:
        for daemon in started:
            daemon.stop()


def _save_case(ctx: Context, daemon: Daemon) -> Callable[[], CaseResult]:
    out = ctx.work / f"saved-{daemon.name}.tar"

    def case() -> float:
        t0 = time.perf_counter()
        daemon.docker_cli("docker").run("save", "-o", str(out), TARGET, timeout=600, quiet=True)
        elapsed = time.perf_counter() - t0
        if out.stat().st_size < (100 << 20):
            raise BenchFailure(f"docker save from {daemon.name} wrote only {out.stat().st_size} bytes")
        os.unlink(out)
        return elapsed
    return case


def _commit_case(ctx: Context, daemon: Daemon) -> Callable[[], CaseResult]:
    counter = {"n": 0}
    cli = daemon.docker_cli("docker")

    def case() -> float:
        counter["n"] += 1
        cid = daemon.api.create(["sleep", "100000"], ctx.cgroup_parent)
        try:
            daemon.api.start(cid)
            cli.run("exec", cid, "sh", "-c", WRITE_50MB, timeout=300)
            t0 = time.perf_counter()
            cli.run("commit", cid, f"bench-commit:{counter['n']}", timeout=600, quiet=True)
            return time.perf_counter() - t0
        finally:
            daemon.api.remove(cid, force=True)
    return case
