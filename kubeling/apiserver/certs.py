"""The cluster's PKI and credentials, made on first start and kept in the data dir.

A CA signs the API server's serving certificate, an admin client certificate
and the client certificate the API server calls kubelets with; an admin bearer
token and a node-join secret sit beside them. The join token an agent is given
(``join_token``) pins the CA by its hash, as k3s's ``K10...`` tokens do.
Files are written 0600 and never regenerated while they exist, so a restart
keeps every kubeconfig working.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("kubeling.certs")

_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def kubelet_client_cert(self) -> Path:
        """What the API server presents when it calls a kubelet (logs, exec, attach)."""
        return self.dir / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "apiserver-kubelet-client.key"

    @property
    def admin_token(self) -> Path:
        return self.dir / "admin.token"

    @property
    def node_token(self) -> Path:
        return self.dir / "node-token"


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _make_ca(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeling-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(pki.ca_key, _key_pem(key))
    _write(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def issue(pki: Pki, cert_path: Path, key_path: Path, *, common_name: str,
          organizations: tuple[str, ...] = (), server_names: tuple[str, ...] = (),
          client: bool = False) -> None:
    """Sign a leaf certificate with the cluster CA."""
    ca_cert, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(data_dir: Path, extra_names: tuple[str, ...] = ()) -> Pki:
    """Create whatever of the PKI and tokens is missing; keep what exists."""
    pki = Pki(data_dir / "pki")
    pki.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.dir, 0o700)
    if not pki.ca_cert.exists() or not pki.ca_key.exists():
        _make_ca(pki)
        log.info("generated cluster CA")
    if not pki.server_cert.exists():
        names = ("localhost", "127.0.0.1", "::1", socket.gethostname(), "kubernetes",
                 "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local", *extra_names)
        issue(pki, pki.server_cert, pki.server_key, common_name="kube-apiserver",
              server_names=tuple(dict.fromkeys(names)))
        log.info("generated API server serving certificate")
    if not pki.admin_cert.exists():
        issue(pki, pki.admin_cert, pki.admin_key, common_name="kubeling-admin",
              organizations=("system:masters",), client=True)
        log.info("generated admin client certificate")
    if not pki.kubelet_client_cert.exists() or not pki.kubelet_client_key.exists():
        issue(pki, pki.kubelet_client_cert, pki.kubelet_client_key,
              common_name="kube-apiserver-kubelet-client", organizations=("system:masters",),
              client=True)
        log.info("generated the API server's kubelet client certificate")
    if not pki.admin_token.exists():
        _write(pki.admin_token, secrets.token_hex(24).encode())
        log.info("generated admin token")
    if not pki.node_token.exists():
        _write(pki.node_token, secrets.token_hex(24).encode())
        log.info("generated node join token")
    return pki


NODE_USER = "node"  # the user part of a join token (K10<ca hash>::node:<secret>)


def ca_hash(ca_pem: bytes) -> str:
    """The SHA-256 of the CA certificate file's bytes, in hex (a join token's pin)."""
    return hashlib.sha256(ca_pem).hexdigest()


def node_secret(pki: Pki) -> str:
    return pki.node_token.read_text().strip()


def join_token(pki: Pki) -> str:
    """The full token an agent joins with: ``K10<sha256 of ca.crt>::node:<secret>``."""
    return f"K10{ca_hash(pki.ca_cert.read_bytes())}::{NODE_USER}:{node_secret(pki)}"
