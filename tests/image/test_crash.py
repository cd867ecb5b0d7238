"""Crash safety: a load killed with SIGKILL leaves no visible image, and the
next opening of the store removes everything the dead load wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dockyard.image import ImageService
from dockyard.store import open_store

from .conftest import classic_save_tar, layer_tar

CHILD = textwrap.dedent("""
    import sys
    from dockyard.store import open_store
    from dockyard.image import ImageService

    store = open_store(sys.argv[1])
    def report(event):
        print(event.status, event.id, event.current, flush=True)
    with open(sys.argv[2], "rb") as f:
        ImageService(store).load(f, progress=report)
    print("done", flush=True)
""")


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory) -> Path:
    """Two layers of ~40 MB of incompressible data each, in many files."""
    out = tmp_path_factory.mktemp("crash") / "big.tar"
    layers = []
    for n in range(2):
        files = {f"layer{n}": None}
        for i in range(40):
            files[f"layer{n}/f{i}"] = os.urandom(1 << 20)
        layers.append(layer_tar(files))
    classic_save_tar([(layers, {"Cmd": ["sh"]}, ["big:1"])], out)
    return out


def _kill_when(root: Path, archive: Path, condition) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(archive)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if condition(lines):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, f"load finished before the kill: {lines[-3:]} {proc.stderr.read()}"
    return lines


def _second_layer_started(lines: list[str]) -> bool:
    layers = {line.split()[2] for line in lines if line.startswith("Loading layer") and len(line.split()) > 3}
    return len(layers) >= 2


def _blob_started(lines: list[str]) -> bool:
    return any(line.startswith("Loading blob") for line in lines)


@pytest.mark.parametrize("when", [_blob_started, _second_layer_started], ids=["ingesting", "unpacking"])
def test_killed_load_leaves_nothing(data_root: Path, big_archive: Path, when):
    root = data_root / "store"
    store = open_store(root)
    store.close()
    _kill_when(root, big_archive, when)

    # Before any cleanup, the half image is invisible.
    peek = open_store(root, cleanup=False)
    try:
        assert peek.metadata.image_ids() == [] and peek.metadata.refs() == []
    finally:
        peek.close()

    store = open_store(root)  # start-up cleanup: dead lease, its snapshots, layers, blobs, ingests
    try:
        assert store.metadata.image_ids() == []
        assert store.metadata.layers() == []
        assert list(store.snapshotter.walk()) == []
        assert list(store.content.walk()) == []
        assert [p.name for p in (root / "content" / "ingest").iterdir() if p.name != ".lock"] == []
        assert store.leases.list() == []
        leftovers = [p.name for p in (root / "snapshots" / "overlay" / "snapshots").iterdir()]
        assert leftovers == []
        assert store.content.check().ok

        # And the store works: the same archive loads completely now.
        with open(big_archive, "rb") as f:
            result = ImageService(store).load(f)
        assert result.images[0].tags == ("big:1",)
        assert len(store.metadata.layers()) == 2
    finally:
        store.close()
