"""References: a table of what Docker accepts and how it normalises them,
and of what it rejects and with which message."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci import Digest, familiar, normalize, parse_any_reference, parse_docker_ref, parse_reference

HEX = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
DGST = f"sha256:{HEX}"

# input -> (normalised as docker pull does, familiar form)
GOOD = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("127.0.0.1:5000/foo", "127.0.0.1:5000/foo:latest", "127.0.0.1:5000/foo:latest"),
    ("[::1]:5000/foo:bar", "[::1]:5000/foo:bar", "[::1]:5000/foo:bar"),
    ("example.com/a/b/c/d:v1.2.3", "example.com/a/b/c/d:v1.2.3", "example.com/a/b/c/d:v1.2.3"),
    ("Example.COM/x", "Example.COM/x:latest", "Example.COM/x:latest"),
    ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),  # an uppercase first part is a host
    ("user/a-b_c.d__e---f", "docker.io/user/a-b_c.d__e---f:latest", "user/a-b_c.d__e---f:latest"),
    # a "." makes the first part a domain candidate; "_" cannot be in a
    # host name, so Docker's grammar falls back to a domain-less path
    ("a_b.c/x", "a_b.c/x:latest", "a_b.c/x:latest"),
    ("foo:Tag_1.0-x", "docker.io/library/foo:Tag_1.0-x", "foo:Tag_1.0-x"),
    ("foo:" + "t" * 128, "docker.io/library/foo:" + "t" * 128, "foo:" + "t" * 128),
    (f"busybox@{DGST}", f"docker.io/library/busybox@{DGST}", f"busybox@{DGST}"),
    # docker pull drops the tag when a digest pins the image
    (f"busybox:1.36@{DGST}", f"docker.io/library/busybox@{DGST}", f"busybox@{DGST}"),
    (f"localhost:5000/a@{DGST}", f"localhost:5000/a@{DGST}", f"localhost:5000/a@{DGST}"),
    ("sha256:latest", "docker.io/library/sha256:latest", "sha256:latest"),
]

# input -> an exact message or the start of one
BAD = [
    ("", "invalid reference format"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("foo/Bar", "invalid reference format: repository name (foo/Bar) must be lowercase"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:.tag", "invalid reference format"),
    ("busybox:tag with space", "invalid reference format"),
    ("foo:" + "t" * 129, "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@sha256:" + HEX.upper(), "invalid checksum digest format"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("a//b", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("/a", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a-", "invalid reference format"),
    ("a..b", "invalid reference format"),
    ("a___b", "invalid reference format"),
    ("http://foo/bar", "invalid reference format"),
    ("foo/" + "a" * 252, "repository name must not be more than 255 characters"),
    ("busybox@", "invalid reference format"),
    ("busybox:a:b", "invalid reference format"),
]


@pytest.mark.parametrize("text,normalised,familiar_form", GOOD)
def test_good_references(text, normalised, familiar_form):
    ref = parse_docker_ref(text)
    assert str(ref) == normalised
    assert normalize(text) == normalised
    assert ref.familiar == familiar_form
    # normalising is idempotent and the familiar form parses back to it
    assert normalize(normalised) == normalised
    assert normalize(familiar_form) == normalised


@pytest.mark.parametrize("text,message", BAD)
def test_bad_references(text, message):
    with pytest.raises(InvalidArgument) as exc:
        parse_reference(text)
    assert str(exc.value).startswith(message), str(exc.value)


def test_parts():
    ref = parse_reference(f"localhost:5000/a/b:tag@{DGST}")
    assert ref.domain == "localhost:5000"
    assert ref.path == "a/b"
    assert ref.name == "localhost:5000/a/b"
    assert ref.tag == "tag"
    assert ref.digest == Digest.parse(DGST)
    assert str(ref) == f"localhost:5000/a/b:tag@{DGST}"


def test_parse_reference_adds_no_tag():
    assert str(parse_reference("busybox")) == "docker.io/library/busybox"
    assert parse_reference("busybox").is_name_only
    assert str(parse_reference("busybox").tagged_or_latest()) == "docker.io/library/busybox:latest"


def test_familiar_of_strings():
    assert familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert familiar("docker.io/user/app") == "user/app"
    assert familiar("quay.io/library/x:1") == "quay.io/library/x:1"


def test_with_tag_and_digest():
    ref = parse_reference("busybox").with_tag("v1")
    assert str(ref) == "docker.io/library/busybox:v1"
    assert str(ref.with_digest(DGST)) == f"docker.io/library/busybox:v1@{DGST}"
    assert str(ref.name_only()) == "docker.io/library/busybox"
    with pytest.raises(InvalidArgument):
        ref.with_tag("-bad")


def test_parse_any_reference():
    assert parse_any_reference(HEX) == Digest("sha256", HEX)
    assert parse_any_reference(DGST) == Digest("sha256", HEX)
    assert str(parse_any_reference("busybox:1")) == "docker.io/library/busybox:1"
    assert str(parse_any_reference("sha256:latest")) == "docker.io/library/sha256:latest"


def test_non_string_is_invalid():
    with pytest.raises(InvalidArgument):
        parse_reference(None)  # type: ignore[arg-type]
