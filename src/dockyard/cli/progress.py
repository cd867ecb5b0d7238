"""Showing the daemon's JSON message streams (load, import, pull...).

On a terminal, progress messages (``progressDetail``) draw bars, one per
``id``, with rich (imported only then).  Elsewhere, only the lines a log
wants are printed: ``stream`` text and statuses, as docker does when its
output is not a terminal.  An ``error`` message ends the stream with the
daemon's error.
"""

from __future__ import annotations

from typing import Any, Iterable, TextIO

from dockyard.client.errors import RemoteInternal


class JSONMessageError(RemoteInternal):
    """The daemon reported an error inside a started stream."""


def display(messages: Iterable[dict[str, Any]], out: TextIO, *, tty: bool) -> dict[str, Any] | None:
    """Print ``messages``; return the last ``aux`` payload (image IDs etc.).
    Raises JSONMessageError for an error message."""
    bars = _Bars(out) if tty else None
    aux = None
    try:
        for msg in messages:
            if msg.get("error") or msg.get("errorDetail"):
                detail = msg.get("errorDetail") or {}
                raise JSONMessageError(detail.get("message") or msg.get("error") or "unknown error", 500)
            if "aux" in msg:
                aux = msg["aux"]
                continue
            if "stream" in msg:
                if bars is not None:
                    bars.print(msg["stream"])
                else:
                    out.write(msg["stream"])
                    out.flush()
                continue
            status = msg.get("status")
            if status is None:
                continue
            detail = msg.get("progressDetail") or {}
            ident = msg.get("id")
            if detail and bars is not None:
                bars.update(ident or status, status, detail.get("current", 0), detail.get("total") or None)
                continue
            if detail:
                # Not a terminal: progress updates would only be noise.
                continue
            line = f"{ident}: {status}" if ident else status
            if bars is not None:
                bars.finish(ident, status)
            else:
                out.write(line + "\n")
                out.flush()
    finally:
        if bars is not None:
            bars.stop()
    return aux


class _Bars:
    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.console = Console(file=out)
        self.progress = Progress(TextColumn("{task.fields[label]}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), console=self.console, transient=False)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, key: str, status: str, current: int, total: int | None) -> None:
        task = self.tasks.get(key)
        if task is None:
            task = self.progress.add_task(status, total=total, label=self._label(key, status))
            self.tasks[key] = task
        self.progress.update(task, description=status, completed=current, total=total,
                             label=self._label(key, status))

    @staticmethod
    def _label(key: str, status: str) -> str:
        return status if key == status else f"{key[:12]}: {status}"

    def finish(self, ident: str | None, status: str) -> None:
        task = self.tasks.get(ident or "")
        if task is not None:
            t = self.progress.tasks[task]
            self.progress.update(task, description=status, completed=t.total or t.completed,
                                 label=self._label(ident or "", status))
        else:
            self.print((f"{ident}: {status}" if ident else status) + "\n")

    def print(self, text: str) -> None:
        self.progress.console.print(text, end="", markup=False, highlight=False)

    def stop(self) -> None:
        self.progress.stop()


class SaveProgress:
    """Bytes written by ``save``, drawn on stderr when it is a terminal."""

    def __init__(self, err: TextIO, enabled: bool) -> None:
        self.enabled = enabled
        self.written = 0
        if enabled:
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("Saving"), DownloadColumn(),
                                     TransferSpeedColumn(), console=Console(file=err), transient=True)
            self.task = self.progress.add_task("save", total=None)
            self.progress.start()

    def advance(self, n: int) -> None:
        self.written += n
        if self.enabled:
            self.progress.update(self.task, completed=self.written)

    def stop(self) -> None:
        if self.enabled:
            self.progress.stop()
