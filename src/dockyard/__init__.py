"""Dockyard: a container engine that serves the Docker Engine API.

Layers (see shared/DESIGN.md), each importing only those below it:
cli -> client -> daemon -> services (build, distribution, container, network,
volume, logs, secrets) -> storage (image, store) -> kernel (runtime, linux, oci).
"""

__version__ = "0.1.0"
