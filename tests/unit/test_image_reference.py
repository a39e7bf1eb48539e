"""Image references normalize as docker's do, and bad ones are refused with a reason."""

from __future__ import annotations

import pytest

from kubeling.runtime.images.reference import (
    InvalidReference,
    Reference,
    normalize,
    normalize_repository,
    parse,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("ref", "name"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("registry-1.docker.io/busybox", "docker.io/library/busybox:latest"),
    ("user/app:1", "docker.io/user/app:1"),
    ("user/team/app", "docker.io/user/team/app:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("127.0.0.1:5000/a/b:v1.2_3-x", "127.0.0.1:5000/a/b:v1.2_3-x"),
    ("host.tld/x", "host.tld/x:latest"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("Host.Example/x", "Host.Example/x:latest"),
    ("UPPER/x", "UPPER/x:latest"),  # an uppercase first component is a registry (docker's rule)
    ("[::1]:5000/x", "[::1]:5000/x:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    (f"localhost:5000/x@{DIGEST}", f"localhost:5000/x@{DIGEST}"),
    ("ab-c__d/e.f--g", "docker.io/ab-c__d/e.f--g:latest"),
])
def test_normalized_names(ref: str, name: str) -> None:
    assert normalize(ref) == name
    assert str(parse(ref)) == name
    assert normalize(name) == name  # normalizing twice changes nothing


def test_parts() -> None:
    ref = parse("localhost:5000/team/app:v1")
    assert ref == Reference("localhost:5000", "team/app", "v1", "")
    assert ref.repo == "localhost:5000/team/app"
    assert ref.api_host == "localhost:5000"
    assert ref.reference == "v1"
    hub = parse(f"busybox@{DIGEST}")
    assert (hub.registry, hub.repository, hub.tag, hub.digest) == (
        "docker.io", "library/busybox", "", DIGEST)
    assert hub.api_host == "registry-1.docker.io"
    assert hub.reference == DIGEST
    assert parse("busybox").tag == "latest"
    assert parse("busybox:1.36").familiar == "busybox:1.36"
    assert parse("quay.io/a/b:1").familiar == "quay.io/a/b:1"


def test_constructed_reference_gets_latest() -> None:
    assert Reference("docker.io", "library/busybox").name == "docker.io/library/busybox:latest"
    assert Reference("docker.io", "library/busybox", digest=DIGEST).name == (
        f"docker.io/library/busybox@{DIGEST}")


def test_repository_normalization() -> None:
    assert normalize_repository("busybox") == "docker.io/library/busybox"
    assert normalize_repository("localhost:5000/x") == "localhost:5000/x"
    with pytest.raises(InvalidReference):
        normalize_repository("busybox:1")


@pytest.mark.parametrize(("ref", "why"), [
    ("", "empty"),
    ("Busybox", "lowercase"),
    ("docker.io/Library/busybox", "lowercase"),
    ("busybox:", "tag"),
    ("busybox:-x", "tag"),
    ("busybox:" + "x" * 129, "tag"),
    ("busybox@sha256:abc", "digest"),
    ("busybox@md5:" + "a" * 32, "unsupported digest"),
    ("busybox@sha256:" + "A" * 64, "unsupported digest"),
    ("bus box", "whitespace"),
    (" busybox", "whitespace"),
    ("a//b", "component"),
    ("a/-b", "component"),
    ("a/b_", "component"),
    (":tag", "no repository"),
    ("-host.tld/x", "registry"),
    ("a.b__c/x", "registry"),
    ("ab" * 32, "image id"),
    ("x/" + "a" * 260, "longer than 255"),
])
def test_invalid(ref: str, why: str) -> None:
    with pytest.raises(InvalidReference, match="invalid reference format") as info:
        parse(ref)
    assert why in str(info.value)
    assert isinstance(info.value, ValueError)
