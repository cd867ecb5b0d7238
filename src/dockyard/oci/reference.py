"""Image references, parsed and normalised the way Docker does.

Grammar (distribution's ``reference`` package, which Docker uses)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path
    domain     := host [":" port]        host: DNS-ish name, IPv4 or [IPv6]
    path       := component ("/" component)*
    component  := [a-z0-9]+ (separator [a-z0-9]+)*   separator: . _ __ -+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

Normalisation ("familiar" names are what users type and Docker prints):

* no domain -> ``docker.io``; a first component is a domain only if it
  contains ``.`` or ``:``, is ``localhost``, or has uppercase letters;
* ``index.docker.io`` -> ``docker.io``;
* on ``docker.io`` a single-component path gets ``library/``;
* :func:`parse_docker_ref` also adds ``:latest`` to a bare name, and drops
  the tag when a digest is given too (``name:tag@digest`` -> ``name@digest``),
  as ``docker pull`` does.

Examples::

    >>> str(parse_docker_ref("busybox"))
    'docker.io/library/busybox:latest'
    >>> parse_docker_ref("busybox").familiar
    'busybox:latest'
    >>> str(parse_reference("localhost:5000/a/b:tag"))
    'localhost:5000/a/b:tag'

Invalid input raises :class:`~dockyard.errors.InvalidArgument` with
Docker's texts, e.g. ``invalid reference format`` or ``invalid reference
format: repository name (library/Busybox) must be lowercase``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument
from .digest import Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
#: longest path (name without domain) a repository may have
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")"
_DOMAIN = _HOST + r"(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII)
_NAME_RE = re.compile(r"^(?:(" + _DOMAIN + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII)
_TAG_RE = re.compile(r"^" + _TAG + r"$", re.ASCII)
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")

ERR_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A parsed reference.  ``domain`` is empty only for references built by
    :func:`parse_reference_strict` from names without a domain."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    # --- views --------------------------------------------------------
    @property
    def name(self) -> str:
        """``domain/path``, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        """Alias of :attr:`name` (Docker's word in ``RepoTags``)."""
        return self.name

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``user/app``,
        ``localhost:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            rest = self.path[len(OFFICIAL_REPO_PREFIX):]
            if "/" not in rest:
                return rest
        return self.path

    @property
    def familiar(self) -> str:
        """The whole reference as Docker shows it (``busybox:latest``)."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + str(self.digest)
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    # --- derived references ---------------------------------------------
    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: Digest | str) -> Reference:
        return Reference(self.domain, self.path, self.tag, Digest.parse(digest))

    def name_only(self) -> Reference:
        return Reference(self.domain, self.path)

    def tagged_or_latest(self) -> Reference:
        """Add ``:latest`` to a bare name (distribution's TagNameOnly)."""
        if self.is_name_only:
            return Reference(self.domain, self.path, DEFAULT_TAG)
        return self


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Domain and path of a familiar name; the rules are Docker's."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == LOCALHOST:
        domain, path = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, path = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first:
        domain, path = first, rest
    elif first.lower() != first:
        # Uppercase is never valid in a path, so this must be a host name.
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse_reference_strict(text: str) -> Reference:
    """Parse without normalising (distribution's ``Parse``): ``busybox``
    stays ``busybox`` with an empty domain.  Rarely what you want."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{ERR_FORMAT}: {text!r}")
    if text == "":
        raise InvalidArgument(f"{ERR_FORMAT}: repository name must have at least one component")
    match = _REFERENCE_RE.match(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.match(lowered):
            raise InvalidArgument(f"{ERR_FORMAT}: repository name must be lowercase")
        raise InvalidArgument(ERR_FORMAT)
    name, tag, digest_text = match.groups()
    name_match = _NAME_RE.match(name)
    if name_match is None:  # pragma: no cover - the reference regexp implies it
        raise InvalidArgument(ERR_FORMAT)
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    digest = Digest.parse(digest_text) if digest_text else None
    return Reference(domain, path, tag, digest)


def parse_reference(text: str) -> Reference:
    """Parse and normalise a reference as typed by a user (distribution's
    ``ParseNormalizedNamed``): a domain is always filled in; no default tag
    is added."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{ERR_FORMAT}: {text!r}")
    if _IDENTIFIER_RE.match(text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"{ERR_FORMAT}: repository name ({remote}) must be lowercase")
    return parse_reference_strict(f"{domain}/{remainder}")


def parse_docker_ref(text: str) -> Reference:
    """Normalise as ``docker pull``/``docker run`` do (``ParseDockerRef``):
    a bare name gets ``:latest``; ``name:tag@digest`` keeps only the digest."""
    ref = parse_reference(text)
    if ref.tag is not None and ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.tagged_or_latest()


def normalize(text: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``."""
    return str(parse_docker_ref(text))


def familiar(ref: str | Reference) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    if isinstance(ref, str):
        ref = parse_reference(ref)
    return ref.familiar


def is_identifier(text: str) -> bool:
    """True for a bare 64-hex image ID (which is never a valid name)."""
    return bool(_IDENTIFIER_RE.match(text))


def parse_any_reference(text: str) -> Reference | Digest:
    """A reference, or a digest when ``text`` is a 64-hex identifier or
    ``sha256:<hex>`` (distribution's ``ParseAnyReference``)."""
    if _IDENTIFIER_RE.match(text):
        return Digest("sha256", text)
    try:
        return Digest.parse(text)
    except InvalidArgument:
        return parse_reference(text)


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG_RE.match(tag):
        raise InvalidArgument(f"invalid tag format: {tag!r}")
    return tag
