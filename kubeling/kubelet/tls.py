"""The kubelet's own serving certificate, for its HTTPS server (logs, exec, attach, stats).

A kubelet without a certificate from the cluster makes itself a self-signed
one, as the kubelet does when no ``--tls-cert-file`` is given: the API server
calls it with a client certificate from the cluster CA and does not verify the
kubelet's certificate (``--kubelet-certificate-authority`` unset). It is kept
across restarts and remade only when it no longer covers the node's names and
addresses or is about to expire.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("kubeling.kubelet.tls")

CERT_NAME = "kubelet.crt"
KEY_NAME = "kubelet.key"
_VALIDITY = dt.timedelta(days=365)
_RENEW_BEFORE = dt.timedelta(days=30)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _wanted_names(node_name: str, ips: list[str]) -> tuple[set[str], set[str]]:
    dns = {node_name, "localhost"}
    addrs = {"127.0.0.1"}
    for ip in ips:
        if not ip:
            continue
        try:
            addrs.add(str(ipaddress.ip_address(ip)))
        except ValueError:
            dns.add(ip)
    return dns, addrs


def _still_good(cert_path: Path, key_path: Path, dns: set[str], addrs: set[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc - _RENEW_BEFORE < dt.datetime.now(dt.UTC):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return dns <= have_dns and addrs <= have_ips


def ensure_serving_cert(dir: Path, node_name: str, ips: list[str]) -> tuple[Path, Path]:
    """(certificate, key) files of the kubelet's self-signed serving certificate in ``dir``,
    made when missing, expiring, or not covering ``node_name`` and ``ips``."""
    dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = dir / CERT_NAME, dir / KEY_NAME
    dns, addrs = _wanted_names(node_name, ips)
    if _still_good(cert_path, key_path, dns, addrs):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    # The kubelet names its self-signed certificate "<host>@<unix time>" and signs it with
    # a CA of that same name; one self-signed leaf is enough here.
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"{node_name}@{int(now.timestamp())}")])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(dns)]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addrs)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info("generated the kubelet serving certificate for %s (%s)", node_name,
             ", ".join(sorted(addrs)))
    return cert_path, key_path
