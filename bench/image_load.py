"""Benchmark: loading a `docker save` archive, Dockyard vs `docker load`.

A multi-layer image (>= 100 MB over several layers; big random files plus
many small text-ish files, so both byte throughput and per-file cost
count) is built and saved by a private Docker engine.  Then, alternately,
`docker load -i` into a fresh engine (new data root) and Dockyard's
ImageService.load into a fresh store are timed on the same tar.  Setup
(starting the engine, creating the empty store) is not timed.

Nothing is deleted between repetitions, on purpose: ext4 makes inode
allocation slow for a while near many recently deleted inodes
(``recently_deleted()`` in the allocator), which would charge one side
for the other's clean-up.  Everything goes at the end.

    .venv/bin/python bench/image_load.py [--reps 5] [--mb 120] [--layers 5] [--keep DIR]

Needs root, dockerd/docker (Debian's docker.io) and busybox-static.
Prints medians and the ratio Dockyard/Docker and writes bench/results/.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from harness import Report, Row, Summary, alternate  # noqa: E402

from dockyard.image import ImageService  # noqa: E402
from dockyard.image.bootstrap import write_busybox_rootfs  # noqa: E402
from dockyard.store import open_store  # noqa: E402

WORDS = ("layer container image overlay snapshot digest manifest config runtime kernel namespace cgroup "
         "mount volume network bridge registry tag blob index chain whiteout opaque tar gzip zstd").split()


class Engine:
    """A private dockerd for the benchmark."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{base}/docker.sock", "DOCKER_BUILDKIT": "0"}
        self.proc: subprocess.Popen | None = None
        self.data_root = base / "data"

    def start(self, data_root: Path | None = None) -> None:
        self.data_root = data_root or self.base / "data"
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.data_root), "--exec-root", str(self.base / "exec"),
             "-H", f"unix://{self.base}/docker.sock", "--pidfile", str(self.base / "dockerd.pid"),
             "--bridge", "none", "--iptables=false", "--ip6tables=false"],
            stdout=open(self.base / "dockerd.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode == 0:
                return
            time.sleep(0.3)
        self.stop()
        raise SystemExit("dockerd did not start: " + (self.base / "dockerd.log").read_text()[-2000:])

    def docker(self, *args: str) -> str:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"docker {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        subprocess.run(["umount", "-R", "-l", str(self.base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(self.data_root)], capture_output=True)
        self.proc = None


def make_context(ctx: Path, total_mb: int, layers: int, seed: int = 42) -> None:
    """A build context: a busybox rootfs tar and one directory per layer."""
    rng = random.Random(seed)
    ctx.mkdir(parents=True)
    with open(ctx / "rootfs.tar", "wb") as f:
        write_busybox_rootfs(f)
    per_layer = total_mb * (1 << 20) // layers
    lines = ["FROM bench-base"]
    for n in range(layers):
        d = ctx / f"layer{n}"
        d.mkdir()
        written = 0
        big = 0
        # ~60% in a few big incompressible files, the rest in small files
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
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--mb", type=int, default=120, help="image size in MB (>= 100 for the record)")
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--workers", type=int, default=None,
                        help="Dockyard's unpack threads (default: ImageService's; 1 = strictly in order)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("image_load: run as root")
    for tool in ("dockerd", "docker"):
        if not shutil.which(tool):
            raise SystemExit(f"image_load: {tool} is not installed (scripts/install --test)")

    work = args.keep or Path(tempfile.mkdtemp(prefix="dockyard-bench-load-"))
    work.mkdir(parents=True, exist_ok=True)
    engine = Engine(work / "engine")
    engine.base.mkdir(exist_ok=True)
    report = Report("Image load (docker save archive)")
    try:
        engine.start()
        ctx = work / "context"
        if ctx.exists():
            shutil.rmtree(ctx)
        print(f"building a {args.mb} MB, {args.layers}+1 layer image ...", flush=True)
        make_context(ctx, args.mb, args.layers)
        engine.docker("import", "-c", 'CMD ["sh"]', str(ctx / "rootfs.tar"), "bench-base")
        engine.docker("build", "-q", "-t", "bench-image:latest", str(ctx))
        archive = work / "image.tar"
        engine.docker("save", "-o", str(archive), "bench-image:latest")
        size_mb = archive.stat().st_size / (1 << 20)
        print(f"archive: {size_mb:.0f} MB", flush=True)

        engine.stop()
        runs = {"dockyard": 0, "docker": 0}

        def dockyard_once() -> float:
            runs["dockyard"] += 1
            store = open_store(work / f"dockyard-{runs['dockyard']}")
            try:
                service = ImageService(store, workers=args.workers)
                t0 = time.perf_counter()
                with open(archive, "rb") as f:
                    service.load(f)
                elapsed = time.perf_counter() - t0
                service.close()
                return elapsed
            finally:
                store.close()

        def docker_once() -> float:
            runs["docker"] += 1
            engine.start(work / f"docker-{runs['docker']}")
            try:
                t0 = time.perf_counter()
                engine.docker("load", "-q", "-i", str(archive))
                return time.perf_counter() - t0
            finally:
                engine.stop()

        samples = alternate({"dockyard": dockyard_once, "docker": docker_once}, reps=args.reps, warmup=1)
        workers = f", {args.workers} unpack thread(s)" if args.workers else ""
        report.add(Row(f"load {size_mb:.0f} MB, {args.layers + 1} layers", "s", "dockyard", "docker",
                       Summary.of(samples["dockyard"]), Summary.of(samples["docker"]),
                       note=f"{args.reps} reps, alternating{workers}"))
        if not args.no_write:
            json_path, md_path = report.write(stem=time.strftime("image-load-%Y%m%d-%H%M%S"))
            print(f"results: {md_path}")
    finally:
        engine.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
