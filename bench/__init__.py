"""Dockyard's benchmarks: every number a ratio against a peer (dockerd,
podman, runc, crun) measured side by side in one run.  Entry point:
``python -m bench`` (see bench/README.md)."""
