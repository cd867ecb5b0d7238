"""dockyard.image: the image layer (see shared/DESIGN.md).

Modules:

``tarfmt``        the tar format, read (:class:`TarReader`, limits) and written
``compression``   gzip/zstd/bzip2/xz detection; :class:`LayerStream` hashes
                  digest and diff_id in one pass
``safepath``      openat-style resolution beneath a root (no escapes)
``apply``         :func:`apply_layer`: a layer tar into a directory, whiteouts
                  converted to overlay's forms; malicious input rejected
``diff``          upper dir -> layer tar (:func:`write_layer`), change lists
                  (:func:`changes`), flattened export (:func:`write_merged`),
                  two-directory diffs
``instructions``  Dockerfile-style ``--change`` lines -> image config
``archive``       ``docker save`` archives and OCI layouts, read and written
``unpack``        concurrent layer unpacking on overlay (loose, then stacked)
``service``       :class:`ImageService`: import, load/save, tag/untag/remove,
                  inspect, history, list, commit, changes, export
``bootstrap``     ``busybox:latest`` from the host's busybox-static
``progress``      :class:`ProgressEvent` reported by long operations

Typical use (the daemon's)::

    from dockyard.store import open_store
    from dockyard.image import ImageService

    images = ImageService(open_store("/var/lib/dockyard"))
    with open("busybox.tar", "rb") as f:
        result = images.load(f, progress=print)
    images.inspect("busybox")          # Docker's JSON shape
    images.remove("busybox", in_use=containers_using)
    images.close()                     # at shutdown: stops the unpack threads
"""

from .apply import AppliedLayer, ApplyOptions, WhiteoutMode, apply_layer
from .diff import Change, ChangeKind, changes, diff_dirs, write_dir_diff, write_layer, write_merged
from .instructions import apply_changes
from .progress import ProgressEvent
from .service import ImageService, ImageUser, LoadedImage, LoadResult, host_platform_spec
from .tarfmt import TarLimits

__all__ = [
    "AppliedLayer", "ApplyOptions", "WhiteoutMode", "apply_layer",
    "Change", "ChangeKind", "changes", "diff_dirs", "write_dir_diff", "write_layer", "write_merged",
    "apply_changes", "ProgressEvent", "ImageService", "ImageUser", "LoadedImage", "LoadResult",
    "host_platform_spec", "TarLimits",
]
