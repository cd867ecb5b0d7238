"""Docker seccomp profiles -> the OCI ``linux.seccomp`` object.

A Docker profile (what ``--security-opt seccomp=profile.json`` names) is a
superset of the OCI form: ``archMap`` instead of a flat architecture list,
and rules conditional on capabilities, architectures and kernel version
(``includes``/``excludes``).  Resolving those against this host and the
container's capability set gives a plain OCI object every runtime takes.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any, Iterable

from ..errors import InvalidArgument

#: uname machine -> libseccomp architecture name.
NATIVE_ARCH = {
    "x86_64": "SCMP_ARCH_X86_64", "i686": "SCMP_ARCH_X86", "i386": "SCMP_ARCH_X86",
    "aarch64": "SCMP_ARCH_AARCH64", "armv7l": "SCMP_ARCH_ARM", "armv6l": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE", "ppc64": "SCMP_ARCH_PPC64", "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64", "loongarch64": "SCMP_ARCH_LOONGARCH64",
}


def native_arch() -> str:
    return NATIVE_ARCH.get(platform.machine(), "SCMP_ARCH_" + platform.machine().upper())


def _kernel_version() -> tuple[int, ...]:
    release = os.uname().release
    parts = []
    for piece in release.split("-")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _parse_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        raise InvalidArgument(f"seccomp profile: invalid minKernel {text!r}") from None


def load_profile(value: str) -> dict[str, Any]:
    """The profile of a ``seccomp=`` security option: inline JSON (what the
    docker CLI sends: it reads the file client-side) or a host path."""
    text = value
    if not value.lstrip().startswith("{"):
        try:
            with open(value) as f:
                text = f.read()
        except OSError as exc:
            raise InvalidArgument(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidArgument("decoding seccomp profile failed: the profile must be a JSON object")
    return profile


def to_oci(profile: dict[str, Any], capabilities: Iterable[str], *, arch: str | None = None,
           kernel: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Resolve a Docker (or already OCI) profile for a container with
    ``capabilities`` on this host."""
    arch = arch or native_arch()
    kernel = kernel if kernel is not None else _kernel_version()
    caps = set(capabilities)
    default_action = profile.get("defaultAction")
    if not isinstance(default_action, str) or not default_action:
        raise InvalidArgument("seccomp profile: defaultAction is required")
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("'architectures' and 'archMap' were specified in the seccomp profile, "
                              "use either 'architectures' or 'archMap'")
    result: dict[str, Any] = {"defaultAction": default_action}
    if "defaultErrnoRet" in profile:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("architectures"):
        result["architectures"] = list(profile["architectures"])
    elif profile.get("archMap"):
        for entry in profile["archMap"]:
            if entry.get("architecture") == arch:
                result["architectures"] = [arch, *entry.get("subArchitectures", [])]
                break
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            result[key] = profile[key]
    rules = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise InvalidArgument("seccomp profile: each syscalls entry must be an object")
        if rule.get("name") and rule.get("names"):
            raise InvalidArgument("'name' and 'names' were specified in the seccomp profile, "
                                  "use either 'name' or 'names'")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names:
            continue
        includes = rule.get("includes") or {}
        excludes = rule.get("excludes") or {}
        if includes.get("arches") and arch not in includes["arches"]:
            continue
        if includes.get("caps") and not set(includes["caps"]) <= caps:
            continue
        if includes.get("minKernel") and kernel < _parse_version(includes["minKernel"]):
            continue
        if excludes.get("arches") and arch in excludes["arches"]:
            continue
        if excludes.get("caps") and set(excludes["caps"]) & caps:
            continue
        if excludes.get("minKernel") and kernel >= _parse_version(excludes["minKernel"]):
            continue
        action = rule.get("action")
        if not isinstance(action, str) or not action:
            raise InvalidArgument(f"seccomp profile: rule for {names[0]} has no action")
        out: dict[str, Any] = {"names": list(names), "action": action}
        if rule.get("args"):
            out["args"] = [{k: v for k, v in arg.items() if k in ("index", "value", "valueTwo", "op")}
                           for arg in rule["args"]]
        if "errnoRet" in rule:
            out["errnoRet"] = rule["errnoRet"]
        rules.append(out)
    if rules:
        result["syscalls"] = rules
    return result
