"""Image documents: parse, round-trip byte for byte, keep unknown fields,
and compute chain IDs."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci import (
    ContainerConfig,
    Descriptor,
    Digest,
    HealthConfig,
    History,
    ImageConfig,
    Index,
    Manifest,
    RootFS,
    chain_id,
    chain_ids,
    format_time,
    mediatype,
    parse_document,
)

D1 = "sha256:" + hashlib.sha256(b"layer1").hexdigest()
D2 = "sha256:" + hashlib.sha256(b"layer2").hexdigest()
D3 = "sha256:" + hashlib.sha256(b"layer3").hexdigest()

# Shaped like what dockerd writes: Go field order, nulls, legacy keys.
DOCKER_CONFIG = (
    '{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,'
    '"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,'
    '"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=b=c"],'
    '"Cmd":["sh"],"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Retries":3},'
    '"Image":"sha256:abc","Volumes":{"/data":{}},"WorkingDir":"/srv","Entrypoint":null,"OnBuild":null,'
    '"Labels":{"maintainer":"me <me@example.com>"},"StopSignal":"SIGQUIT"},"container":"deadbeef",'
    '"container_config":{"Cmd":["/bin/sh","-c","#(nop) CMD [\\"sh\\"]"]},"created":"2024-09-26T21:31:42.123456789Z",'
    '"docker_version":"23.0.3","history":[{"created":"2024-09-26T21:31:42Z","created_by":"/bin/sh -c #(nop) ADD file:x in / "},'
    '{"created":"2024-09-26T21:31:42Z","created_by":"/bin/sh -c #(nop)  CMD [\\"sh\\"]","empty_layer":true}],'
    '"os":"linux","rootfs":{"type":"layers","diff_ids":["' + D1 + '","' + D2 + '"]},"variant":"v2"}'
).encode()


def test_docker_config_parses():
    cfg = ImageConfig.from_bytes(DOCKER_CONFIG)
    assert cfg.architecture == "amd64" and cfg.os == "linux" and cfg.variant == "v2"
    assert cfg.config.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=b=c")
    assert cfg.config.env_dict()["A"] == "b=c"
    assert cfg.config.cmd == ("sh",)
    assert cfg.config.entrypoint is None
    assert cfg.config.exposed_ports == ("80/tcp",)
    assert cfg.config.volumes == ("/data",)
    assert cfg.config.working_dir == "/srv"
    assert cfg.config.labels == {"maintainer": "me <me@example.com>"}
    assert cfg.config.stop_signal == "SIGQUIT"
    assert cfg.config.healthcheck == HealthConfig(test=("CMD-SHELL", "true"), interval=30_000_000_000, retries=3)
    assert cfg.rootfs.diff_ids == (Digest.parse(D1), Digest.parse(D2))
    assert [h.empty_layer for h in cfg.history] == [False, True]
    assert cfg.created == "2024-09-26T21:31:42.123456789Z"
    # unknown keys are kept, at both levels
    assert cfg.extra["docker_version"] == "23.0.3"
    assert cfg.config.extra["Hostname"] == ""


def test_config_round_trips_byte_for_byte():
    cfg = ImageConfig.from_bytes(DOCKER_CONFIG)
    assert cfg.to_bytes() == DOCKER_CONFIG
    assert cfg.digest == Digest.from_bytes(DOCKER_CONFIG)


def test_modified_config_is_reserialised_and_keeps_unknown_fields():
    cfg = ImageConfig.from_bytes(DOCKER_CONFIG)
    changed = dataclasses.replace(cfg, config=dataclasses.replace(cfg.config, cmd=("echo", "hi")))
    assert changed.raw is None
    data = changed.to_bytes()
    assert data != DOCKER_CONFIG
    doc = json.loads(data)
    assert doc["config"]["Cmd"] == ["echo", "hi"]
    assert doc["docker_version"] == "23.0.3" and doc["container"] == "deadbeef"
    assert doc["config"]["Hostname"] == "" and doc["config"]["Image"] == "sha256:abc"
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [D1, D2]}
    # the re-serialised document parses back to an equal value
    again = ImageConfig.from_bytes(data)
    assert again == changed
    assert again.to_bytes() == data


def test_json_is_go_style():
    cfg = ImageConfig(architecture="amd64", os="linux",
                      config=ContainerConfig(labels={"x": "<a&b>"}, cmd=()),
                      rootfs=RootFS(diff_ids=(Digest.parse(D1),)),
                      history=(History(created_by="x"),))
    data = cfg.to_bytes()
    assert b" " not in data
    assert b"\\u003ca\\u0026b\\u003e" in data
    assert json.loads(data)["config"]["Labels"] == {"x": "<a&b>"}
    # an explicit empty Cmd (CMD []) survives, unlike an unset one
    assert json.loads(data)["config"]["Cmd"] == []
    assert "Entrypoint" not in json.loads(data)["config"]


def test_chain_ids_follow_the_spec():
    d1, d2, d3 = (Digest.parse(x) for x in (D1, D2, D3))
    c2 = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {D3}".encode()).hexdigest()
    assert [str(c) for c in chain_ids([d1, d2, d3])] == [D1, c2, c3]
    assert chain_id(None, d1) == d1
    assert str(chain_id(Digest.parse(c2), d3)) == c3
    assert chain_ids([]) == []
    cfg = ImageConfig.from_bytes(DOCKER_CONFIG)
    assert [str(c) for c in cfg.chain_ids] == [D1, c2]


MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": mediatype.DOCKER_MANIFEST,
    "config": {"mediaType": mediatype.DOCKER_CONFIG, "size": len(DOCKER_CONFIG),
               "digest": str(Digest.from_bytes(DOCKER_CONFIG))},
    "layers": [
        {"mediaType": mediatype.DOCKER_LAYER_GZIP, "size": 100, "digest": D1},
        {"mediaType": mediatype.DOCKER_LAYER_FOREIGN, "size": 5, "digest": D2, "urls": ["https://x/y"]},
    ],
    "x-future": {"a": 1},
}, indent=3).encode()


def test_manifest_round_trip_and_fields():
    m = Manifest.from_bytes(MANIFEST)
    assert m.media_type == mediatype.DOCKER_MANIFEST
    assert m.config.digest == Digest.from_bytes(DOCKER_CONFIG)
    assert [layer.media_type for layer in m.layers] == [mediatype.DOCKER_LAYER_GZIP, mediatype.DOCKER_LAYER_FOREIGN]
    assert m.layers[1].urls == ("https://x/y",)
    assert m.to_bytes() == MANIFEST  # pretty-printed input kept as is
    assert m.digest == Digest.from_bytes(MANIFEST)
    assert m.extra == {"x-future": {"a": 1}}
    fresh = dataclasses.replace(m, annotations={"k": "v"})
    assert json.loads(fresh.to_bytes())["x-future"] == {"a": 1}
    assert Manifest.from_bytes(fresh.to_bytes()) == fresh
    assert m.descriptor().digest == m.digest and m.descriptor().size == len(MANIFEST)


def test_index_and_platform():
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_INDEX,
        "manifests": [{
            "mediaType": mediatype.OCI_MANIFEST, "digest": D1, "size": 7,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    }
    data = json.dumps(doc).encode()
    idx = parse_document(data)
    assert isinstance(idx, Index)
    assert str(idx.manifests[0].platform) == "linux/arm64/v8"
    assert idx.manifests[0].annotations["org.opencontainers.image.ref.name"] == "latest"
    assert json.loads(Index.from_json(doc).to_bytes()) == doc
    assert isinstance(parse_document(MANIFEST), Manifest)
    # without mediaType, the shape decides
    doc.pop("mediaType")
    assert isinstance(parse_document(json.dumps(doc).encode()), Index)


@pytest.mark.parametrize("data,message", [
    (b"not json", "invalid JSON"),
    (b"[]", "expected a JSON object"),
    (b'{"schemaVersion":1,"name":"x"}', "Schema 1"),
    (b'{"schemaVersion":2,"mediaType":"text/plain"}', "unsupported manifest media type"),
    (b'{"schemaVersion":2,"config":{"mediaType":"x","size":-1,"digest":"' + D1.encode() + b'"}}', "negative size"),
    (b'{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"sha256:abc"}}', "invalid checksum"),
    (b'{"schemaVersion":2,"config":{"mediaType":"x","digest":"' + D1.encode() + b'"}}', "required"),
    (b'{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"' + D1.encode() + b'"},"layers":{}}',
     "layers must be a list"),
])
def test_bad_documents(data, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_document(data)


@pytest.mark.parametrize("doc,message", [
    ({"os": "linux"}, "rootfs is required"),
    ({"rootfs": {"type": "tar", "diff_ids": []}}, "type must be"),
    ({"rootfs": {"type": "layers", "diff_ids": ["nope"]}}, "invalid checksum"),
    ({"rootfs": {"type": "layers"}, "config": {"Env": "A=b"}}, "Env must be a list"),
    ({"rootfs": {"type": "layers"}, "config": {"Labels": {"a": 1}}}, "Labels must be"),
])
def test_bad_configs(doc, message):
    with pytest.raises(InvalidArgument, match=message):
        ImageConfig.from_json(doc)


def test_descriptor_round_trip():
    doc = {"mediaType": mediatype.OCI_LAYER_ZSTD, "digest": D3, "size": 3, "artifactType": "x/y",
           "data": "YWJj", "newField": True}
    desc = Descriptor.from_json(doc)
    assert desc.to_json() == doc
    assert mediatype.layer_compression(desc.media_type) == mediatype.ZSTD


def test_media_type_tables():
    for media_type in mediatype.LAYERS:
        assert mediatype.is_layer(media_type)
    assert mediatype.layer_compression(mediatype.DOCKER_LAYER_FOREIGN) == mediatype.GZIP
    assert mediatype.layer_compression(mediatype.OCI_CONFIG) is None
    assert mediatype.DOCKER_TO_OCI[mediatype.DOCKER_MANIFEST] == mediatype.OCI_MANIFEST
    assert mediatype.is_index(mediatype.DOCKER_MANIFEST_LIST) and mediatype.is_manifest(mediatype.OCI_MANIFEST)


def test_format_time():
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(1.5) == "1970-01-01T00:00:01.500000000Z"
