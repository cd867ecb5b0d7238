"""Output as docker prints it: tables (Go's tabwriter with docker's
settings), human sizes and durations (go-units), and ``--format``.

``--format`` values, as docker takes them:

- empty: the command's default table;
- ``table`` or ``table TEMPLATE``: a table with headers;
- ``json``: one JSON object per line (``{{json .}}``);
- anything else: a Go template executed once per row, each followed by a
  newline.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

# The template engine is imported when a template is used: plain tables and
# most commands never need it, and the CLI's start-up time counts.

# go-units live in dockyard.units (the daemon's status line needs them too).
from dockyard.units import bytes_size, human_duration, human_size  # noqa: F401  (re-exported)


def since(timestamp: float, now: float | None = None) -> str:
    """"2 minutes ago" for a Unix timestamp."""
    now = time.time() if now is None else now
    return human_duration(now - timestamp) + " ago"


def go_time(timestamp: float) -> str:
    """Go's time.Time String() in local time: "2026-11-25 10:03:15 +0000 UTC"."""
    lt = time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", lt) + (time.strftime("%Z", lt) or "UTC")


def rfc3339(timestamp: float) -> str:
    lt = time.localtime(timestamp)
    offset = time.strftime("%z", lt)
    offset = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + offset


def parse_rfc3339(text: str) -> float:
    """An RFC 3339 timestamp (nanoseconds allowed) as Unix seconds."""
    from datetime import datetime

    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return 0.0
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python's fromisoformat takes at most 6 fraction digits.
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    return datetime.fromisoformat(text).timestamp()


def short_id(image_id: str) -> str:
    """The 12-hex-digit form docker prints ("sha256:" dropped)."""
    return image_id.split(":", 1)[-1][:12]


def ellipsis(text: str, width: int) -> str:
    """Docker's TruncateWithEllipsis: cut to ``width`` runes ending in "…"."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if width > 1 else text[:width]


# -- tabwriter ----------------------------------------------------------------

def tabwrite(lines: Iterable[str], *, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter does with docker's
    settings (minwidth 10, tabwidth 1, padding 3, pad with spaces).

    Cells are terminated by tabs; the text after a line's last tab is not
    part of a column and is never padded.  Column widths are computed per
    block of consecutive lines that have that column, as tabwriter does.
    """
    rows = [line.split("\t") for line in lines]
    out_rows: list[list[str]] = [[] for _ in rows]

    def format_block(start: int, end: int, col: int) -> None:
        # rows[start:end] all have a cell terminated at column ``col``.
        width = max(len(rows[i][col]) for i in range(start, end)) + padding
        width = max(width, minwidth)
        for i in range(start, end):
            out_rows[i].append(rows[i][col].ljust(width))
        # Recurse into the next column for runs of lines that have it.
        i = start
        while i < end:
            if len(rows[i]) - 1 > col + 1:
                j = i
                while j < end and len(rows[j]) - 1 > col + 1:
                    j += 1
                format_block(i, j, col + 1)
                i = j
            else:
                i += 1

    i = 0
    while i < len(rows):
        if len(rows[i]) > 1:
            j = i
            while j < len(rows) and len(rows[j]) > 1:
                j += 1
            format_block(i, j, 0)
            i = j
        else:
            i += 1
    text = []
    for row, cells in zip(rows, out_rows):
        text.append("".join(cells) + row[-1])
    return "\n".join(text) + ("\n" if text else "")


# -- --format --------------------------------------------------------------

def render_rows(format_spec: str | None, rows: Iterable[Mapping[str, Any]], *, default: str,
                headers: Mapping[str, str], quiet_field: str | None = None, quiet: bool = False) -> str:
    """Render ``rows`` (dicts of a command's fields, as docker's formatter
    context) with ``--format`` or the command's ``default`` table.

    ``headers`` maps a field to its table header (ID -> "IMAGE ID"); fields
    not listed get their name upper-cased.
    """
    from dockyard.cli.template import Template, go_json

    rows = list(rows)
    spec = (format_spec or "").strip("\n") if format_spec else ""
    if quiet and quiet_field and (not spec or spec.startswith("table")):
        # -q wins over a table format (docker: only a custom format beats it).
        spec = "{{." + quiet_field + "}}"
    if not spec:
        spec = default
    if spec == "json":
        return "".join(go_json(_strict(row)) + "\n" for row in rows)
    if spec.startswith("table"):
        body = spec[len("table"):].strip() or default[len("table"):].strip()
        body = _unescape(body)
        template = Template(body)
        lines = []
        if not quiet:
            header_ctx = _HeaderContext(headers, _strict(rows[0]).methods if rows else {})
            lines.append(template.execute(header_ctx))
        for row in rows:
            lines.append(template.execute(_strict(row)))
        text = "\n".join(lines)
        return tabwrite(text.split("\n")) if lines else ""
    template = Template(_unescape(spec))
    return "".join(template.execute(_strict(row)) + "\n" for row in rows)


def _strict(row: Mapping[str, Any]) -> Any:
    from dockyard.cli.template import StrictFields

    return row if isinstance(row, StrictFields) else StrictFields(row)


def _unescape(spec: str) -> str:
    # docker lets users type \t and \n in --format.
    return spec.replace("\\t", "\t").replace("\\n", "\n")


def _HeaderContext(headers: Mapping[str, str], methods: Mapping[str, Any] = {}) -> Any:
    """A row that answers every field with its table header (and a method
    such as ``.Label "env"`` with its argument, as docker heads it)."""
    from dockyard.cli.template import StrictFields

    class HeaderRow(StrictFields):
        def __contains__(self, key: object) -> bool:
            return isinstance(key, str) and key not in methods

        def __getitem__(self, key: str) -> str:
            return headers.get(key, key.upper())

    row = HeaderRow()
    row.methods = {name: (lambda *args, name=name: str(args[0]) if args else name.upper()) for name in methods}
    return row


def render_object(format_spec: str, obj: Any) -> str:
    """One object through a template (``inspect --format``)."""
    from dockyard.cli.template import Template, go_json

    if format_spec == "json":
        return go_json(obj)
    # (no \t unescaping here: docker does that for its tables only)
    return Template(format_spec).execute(obj)


__all__ = ["bytes_size", "ellipsis", "go_time", "human_duration", "human_size",
           "parse_rfc3339", "render_object", "render_rows", "rfc3339", "short_id", "since", "tabwrite"]

