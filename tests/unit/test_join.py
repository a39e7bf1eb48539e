"""Joining with a node token: token parsing, the CA pinned by its hash, the written kubeconfig,
the cluster's join token and kubelet client certificate, the kubelet's serving certificate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeling.apiserver.auth import NODE_USER, Authenticator
from kubeling.apiserver.certs import ensure_pki, join_token, node_secret
from kubeling.client import kubeconfig
from kubeling.kubelet import join, tls

HASH = "ab" * 32


def test_parse_full_and_bare_tokens() -> None:
    assert join.parse_token(f"K10{HASH}::node:s3cret") == (HASH, "s3cret")
    assert join.parse_token(f"K10{HASH.upper()}::node:s3cret") == (HASH, "s3cret")
    assert join.parse_token(f"K10{HASH}::s3cret") == (HASH, "s3cret")
    assert join.parse_token("  s3cret\n") == (None, "s3cret")
    with pytest.raises(join.JoinError, match="64 hex"):
        join.parse_token("K10abc::node:s3cret")
    with pytest.raises(join.JoinError, match="no secret"):
        join.parse_token(f"K10{HASH}::node:")
    with pytest.raises(join.JoinError, match="empty"):
        join.parse_token("")


def test_the_clusters_join_token_pins_its_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    token = join_token(pki)
    ca_hash, secret = join.parse_token(token)
    assert ca_hash == hashlib.sha256(pki.ca_cert.read_bytes()).hexdigest()
    assert secret == node_secret(pki) == pki.node_token.read_text().strip()
    assert token.startswith("K10") and "::node:" in token
    assert join_token(ensure_pki(tmp_path)) == token  # kept across restarts


def test_the_node_secret_authenticates_as_a_node(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    auth = Authenticator({node_secret(pki): NODE_USER})
    user = auth.authenticate(f"Bearer {node_secret(pki)}".encode(), None)
    assert user is not None and "system:nodes" in user.groups
    assert auth.authenticate(b"Bearer wrong", None) is None


def test_kubelet_client_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    cert = x509.load_pem_x509_certificate(pki.kubelet_client_cert.read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert (cn, orgs) == ("kube-apiserver-kubelet-client", ["system:masters"])
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)


def _server(ca_pem: bytes, secret: str) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cacerts":
            return httpx.Response(200, content=ca_pem)
        if request.headers.get("authorization") != f"Bearer {secret}":
            return httpx.Response(401, json={"kind": "Status", "code": 401})
        return httpx.Response(200, json={"kind": "Namespace"})
    return httpx.MockTransport(handle)


async def test_join_writes_a_kubeconfig_with_the_pinned_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "server")
    ca_pem = pki.ca_cert.read_bytes()
    transport = _server(ca_pem, node_secret(pki))
    agent_dir = tmp_path / "agent"
    path = await join.join("https://10.0.0.1:6443", join_token(pki), agent_dir,
                           transport=transport)
    assert path == agent_dir / "kubeconfig.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    creds = kubeconfig.load(path)
    assert creds.server == "https://10.0.0.1:6443"
    assert creds.ca_data == ca_pem
    assert creds.token == node_secret(pki)
    assert (agent_dir / "pki" / "ca.crt").read_bytes() == ca_pem


async def test_a_ca_not_matching_the_token_is_refused(tmp_path: Path) -> None:
    real = ensure_pki(tmp_path / "real")
    impostor = ensure_pki(tmp_path / "impostor")
    transport = _server(impostor.ca_cert.read_bytes(), node_secret(real))
    with pytest.raises(join.JoinError, match="does not match"):
        await join.join("https://10.0.0.1:6443", join_token(real), tmp_path / "agent",
                        transport=transport)
    assert not (tmp_path / "agent" / "kubeconfig.yaml").exists()


async def test_a_bare_secret_trusts_the_ca_on_first_use(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    pki = ensure_pki(tmp_path / "server")
    transport = _server(pki.ca_cert.read_bytes(), node_secret(pki))
    got = await join.fetch_ca("https://h:6443", None, transport=transport)
    assert got == pki.ca_cert.read_bytes()
    assert "trusting the CA" in caplog.text


async def test_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "server")
    transport = _server(pki.ca_cert.read_bytes(), node_secret(pki))
    ca_hash, _ = join.parse_token(join_token(pki))
    with pytest.raises(join.JoinError, match="refused the join token"):
        await join.join("https://h:6443", f"K10{ca_hash}::node:wrong", tmp_path / "agent",
                        transport=transport)


def test_the_kubelet_serving_certificate_is_kept_until_its_names_change(tmp_path: Path
                                                                       ) -> None:
    cert, key = tls.ensure_serving_cert(tmp_path, "n1", ["10.0.0.5"])
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "n1" in san.get_values_for_type(x509.DNSName)
    assert "10.0.0.5" in {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert key.stat().st_mode & 0o777 == 0o600
    before = cert.read_bytes()
    assert tls.ensure_serving_cert(tmp_path, "n1", ["10.0.0.5"]) == (cert, key)
    assert cert.read_bytes() == before
    tls.ensure_serving_cert(tmp_path, "n1", ["10.0.0.6"])
    assert cert.read_bytes() != before
