"""Resolve ``Config.User`` against the image's /etc/passwd and /etc/group.

Semantics follow Docker (runc's user lookup): ``name``, ``uid``,
``name:group``, ``uid:gid`` and the mixed forms.  A numeric uid or gid need
not exist in the files; a name must.  Without an explicit group the user's
primary gid comes from passwd and the supplementary groups are every
/etc/group entry that lists the user; ``GroupAdd`` adds more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument
from .fsutil import read_in_root

_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ExecUser:
    """The resolved identity a container process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str
    name: str | None = None


def _records(text: str | None, min_fields: int, id_fields: int) -> Iterator[tuple[list[str], list[int]]]:
    """The colon-separated records of /etc/passwd or /etc/group: (fields,
    the numeric ids in fields 2 ..), skipping blanks, comments, short lines
    and lines whose ids are not numbers (as libc does)."""
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < min_fields:
            continue
        try:
            ids = [int(f) for f in fields[2:2 + id_fields]]
        except ValueError:
            continue
        yield fields, ids


def parse_passwd(text: str | None) -> list[PasswdEntry]:
    return [PasswdEntry(fields[0], uid, gid, fields[5] if len(fields) > 5 else "",
                        fields[6] if len(fields) > 6 else "")
            for fields, (uid, gid) in _records(text, 4, 2)]


def parse_group(text: str | None) -> list[GroupEntry]:
    return [GroupEntry(fields[0], gid, tuple(m for m in (fields[3].split(",") if len(fields) > 3 else []) if m))
            for fields, (gid,) in _records(text, 3, 1)]


def _as_id(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        if value > _MAX_ID:
            raise InvalidArgument("uids and gids must be in range 0-2147483647")
        return value
    return None


def resolve_user(user: str, passwd: list[PasswdEntry], groups: list[GroupEntry],
                 group_add: list[str] | tuple[str, ...] = ()) -> ExecUser:
    """Resolve a Docker ``User`` string.  Raises InvalidArgument with Docker's
    wording for a name that is not in the files."""
    user_part, _, group_part = (user or "").partition(":")
    explicit_group = bool(group_part)

    # Default: root, as the passwd file describes it if it does.
    entry: PasswdEntry | None = None
    if not user_part:
        entry = next((p for p in passwd if p.uid == 0), None)
        uid, gid, home, name = 0, 0, (entry.home if entry else "/"), (entry.name if entry else None)
    else:
        uid_num = _as_id(user_part)
        if uid_num is None:
            entry = next((p for p in passwd if p.name == user_part), None)
            if entry is None:
                raise InvalidArgument(f"unable to find user {user_part}: no matching entries in passwd file")
        else:
            entry = next((p for p in passwd if p.uid == uid_num), None)
        if entry is not None:
            uid, gid, home, name = entry.uid, entry.gid, entry.home, entry.name
        else:
            # A numeric uid that the image does not know: allowed, gid 0.
            uid, gid, home, name = uid_num or 0, 0, "/", None

    additional: list[int] = []
    if explicit_group:
        gid_num = _as_id(group_part)
        if gid_num is None:
            match = next((g for g in groups if g.name == group_part), None)
            if match is None:
                raise InvalidArgument(f"unable to find group {group_part}: no matching entries in group file")
            gid = match.gid
        else:
            gid = gid_num
    elif name is not None:
        additional.extend(g.gid for g in groups if name in g.members)

    for extra in group_add:
        gid_num = _as_id(extra)
        if gid_num is None:
            match = next((g for g in groups if g.name == extra), None)
            if match is None:
                raise InvalidArgument(f"unable to find group {extra}: no matching entries in group file")
            gid_num = match.gid
        additional.append(gid_num)

    # The primary group leads the supplementary ones, as dockerd sets them
    # (`id` in a container shows groups=0(root),10(wheel) for root).
    seen: set[int] = set()
    unique = [g for g in [gid, *additional] if not (g in seen or seen.add(g))]
    return ExecUser(uid=uid, gid=gid, additional_gids=tuple(unique), home=home or "/", name=name)


def resolve_user_in_rootfs(rootfs: Path, user: str, group_add: list[str] | tuple[str, ...] = ()) -> ExecUser:
    """Resolve against the passwd and group files of a mounted rootfs (read
    with symlinks confined to the rootfs)."""
    passwd = parse_passwd(read_in_root(rootfs, "/etc/passwd"))
    groups = parse_group(read_in_root(rootfs, "/etc/group"))
    return resolve_user(user, passwd, groups, group_add)
