"""Capture the request bodies the real kubectl sends, to use as test fixtures.

kubectl 1.32 encodes the objects of ``kubectl create ...`` and ``kubectl
autoscale`` in the Kubernetes protobuf encoding. To test our decoder against
what kubectl really sends, this tool runs a tiny plain-HTTP API server that
answers just enough (``/version``, legacy discovery, a few canned objects for
the GETs that ``create job --from`` and ``autoscale`` make) and saves every
POST body with its content type. Run it as a script to re-capture every
fixture::

    python -m tests.tools.capture_server tests/fixtures/protobuf

Each capture is written as ``<name>.bin`` (the body), ``<name>.txt`` (the
command, the request path and the content type) and, where kubectl can
render it, ``<name>.json``: the same command's ``--dry-run=client -o json``
output, which is kubectl's own JSON encoding of the object it sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubeling.api import kinds


@dataclass
class Capture:
    method: str
    path: str
    content_type: str
    body: bytes


# A CronJob whose pod template uses most of the PodSpec tree, so that
# ``kubectl create job --from=cronjob/rich`` sends all of it back.
SERVED = Path(__file__).resolve().parent.parent / "fixtures" / "protobuf" / "served"
RICH_CRONJOB: dict[str, Any] = json.loads((SERVED / "cronjob-rich.json").read_text())

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        },
    },
}

CANNED: dict[str, dict[str, Any]] = {
    "/apis/batch/v1/namespaces/default/cronjobs/rich": RICH_CRONJOB,
    "/apis/apps/v1/namespaces/default/deployments/web": DEPLOYMENT,
}


def _discovery(path: str) -> dict[str, Any] | None:
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            ],
        }
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g.name,
                    "versions": [
                        {"groupVersion": f"{g.name}/{v}", "version": v} for v in g.versions
                    ],
                    "preferredVersion": {
                        "groupVersion": f"{g.name}/{g.versions[0]}",
                        "version": g.versions[0],
                    },
                }
                for g in kinds.groups()
            ],
        }
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds.kinds_in(group, version):
        resources.append(
            {
                "name": k.resource,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": list(k.verbs),
                "shortNames": list(k.short_names),
                "categories": list(k.categories),
            }
        )
        for sub in k.subresources:
            sub_kind = "Scale" if sub == "scale" else k.kind
            resources.append(
                {
                    "name": f"{k.resource}/{sub}",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": sub_kind,
                    "verbs": ["get", "patch", "update", "create"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": kinds.api_version(group, version),
        "resources": resources,
    }


def _echo(path: str, body: bytes, content_type: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        try:
            obj = json.loads(body)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
    parts = path.strip("/").split("/")
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = rest[1] if rest and rest[0] == "namespaces" and len(rest) > 2 else ""
    resource = rest[2] if namespace else rest[0]
    kind = kinds.by_resource(group, resource)
    meta: dict[str, Any] = {"name": "captured"}
    if namespace:
        meta["namespace"] = namespace
    if resource == "serviceaccounts" and rest[-1] == "token":
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": meta,
            "spec": {"audiences": []},
            "status": {"token": "t", "expirationTimestamp": "2030-01-01T00:00:00Z"},
        }
    return {
        "apiVersion": kinds.api_version(group, version),
        "kind": kind.kind if kind else "Unknown",
        "metadata": meta,
    }


class CaptureServer:
    """A plain-HTTP fake API server on 127.0.0.1 that records every write."""

    def __init__(self) -> None:
        self.captures: list[Capture] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/version":
                    self._send(
                        200,
                        {
                            "major": "1",
                            "minor": "32",
                            "gitVersion": "v1.32.0",
                            "platform": "linux/amd64",
                        },
                    )
                    return
                doc = _discovery(path) or CANNED.get(path)
                if doc is None:
                    self._send(
                        404,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "reason": "NotFound",
                            "code": 404,
                            "message": f"{path} not found",
                        },
                    )
                    return
                self._send(200, doc)

            def _write(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                ctype = self.headers.get("Content-Type", "")
                path = self.path.split("?", 1)[0]
                server.captures.append(Capture(self.command, path, ctype, body))
                self._send(201 if self.command == "POST" else 200, _echo(path, body, ctype))

            do_POST = _write
            do_PUT = _write
            do_PATCH = _write
            do_DELETE = _write

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CaptureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "c",
                    "clusters": [
                        {"name": "c", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}
                    ],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [
                        {
                            "name": "c",
                            "context": {"cluster": "c", "user": "u", "namespace": "default"},
                        }
                    ],
                }
            )
        )
        return path


# name -> kubectl arguments. Every command makes exactly one write we keep (the last).
COMMANDS: dict[str, list[str]] = {
    "namespace": ["create", "namespace", "team-a"],
    "configmap": [
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
        "--from-literal=unicode=héllo",
    ],
    "secret_generic": [
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
        "--from-literal=pass=s3cr3t!",
        "--type=Opaque",
    ],
    "secret_tls": ["create", "secret", "tls", "tls", "--cert=@CERT@", "--key=@KEY@"],
    "secret_docker": [
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=registry.example.com",
        "--docker-username=bob",
        "--docker-password=pw",
        "--docker-email=bob@example.com",
    ],
    "deployment": [
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=0",
        "--port=80",
    ],
    "deployment_multi": [
        "create",
        "deployment",
        "multi",
        "--image=nginx",
        "--image=redis",
        "--replicas=3",
    ],
    "deployment_command": [
        "create",
        "deployment",
        "sleeper",
        "--image=busybox",
        "--",
        "sleep",
        "3600",
    ],
    "service_clusterip": ["create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443"],
    "service_headless": ["create", "service", "clusterip", "headless", "--clusterip=None"],
    "service_nodeport": [
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ],
    "service_loadbalancer": ["create", "service", "loadbalancer", "lb", "--tcp=5678:8080"],
    "service_externalname": [
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ],
    "job": ["create", "job", "once", "--image=busybox", "--", "echo", "hi"],
    "job_from_cronjob": ["create", "job", "manual", "--from=cronjob/rich"],
    "cronjob": [
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/1 * * * *",
        "--restart=OnFailure",
        "--",
        "date",
    ],
    "serviceaccount": ["create", "serviceaccount", "runner"],
    "quota": [
        "create",
        "quota",
        "q",
        "--hard=cpu=1,memory=1Gi,pods=10,services.nodeports=0",
        "--scopes=NotTerminating,BestEffort",
    ],
    "autoscale": ["autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=80"],
    "token": ["create", "token", "runner", "--duration=10m", "--audience=api"],
}


def _tls_files(directory: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def capture_all(out_dir: Path, only: list[str] | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, CaptureServer() as server:
        tmpdir = Path(tmp)
        config = server.kubeconfig(tmpdir)
        cert, key = _tls_files(tmpdir)
        env = dict(
            os.environ, KUBECONFIG=str(config), KUBECACHEDIR=str(tmpdir / "cache"), HOME=str(tmpdir)
        )
        for name, args in COMMANDS.items():
            if only and name not in only:
                continue
            argv = [a.replace("@CERT@", str(cert)).replace("@KEY@", str(key)) for a in args]
            before = len(server.captures)
            proc = subprocess.run(
                ["kubectl", *argv], env=env, capture_output=True, text=True, timeout=60
            )
            writes = server.captures[before:]
            if proc.returncode != 0 or not writes:
                print(f"{name}: FAILED rc={proc.returncode} {proc.stderr.strip()}", file=sys.stderr)
                continue
            cap = writes[-1]
            (out_dir / f"{name}.bin").write_bytes(cap.body)
            display = " ".join(args).replace("@CERT@", "tls.crt").replace("@KEY@", "tls.key")
            (out_dir / f"{name}.txt").write_text(
                f"kubectl {display}\n{cap.method} {cap.path}\nContent-Type: {cap.content_type}\n"
            )
            print(f"{name}: {cap.method} {cap.path} {cap.content_type} {len(cap.body)} bytes")
            # kubectl's own JSON rendering of the same object: the expected decoding.
            cut = argv.index("--") if "--" in argv else len(argv)
            dry_argv = [*argv[:cut], "--dry-run=client", "-o", "json", *argv[cut:]]
            dry = subprocess.run(
                ["kubectl", *dry_argv], env=env, capture_output=True, text=True, timeout=60
            )
            if dry.returncode == 0:
                (out_dir / f"{name}.json").write_text(dry.stdout)
            else:
                print(f"{name}: no --dry-run=client JSON: {dry.stderr.strip()}", file=sys.stderr)


if __name__ == "__main__":
    capture_all(
        Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/protobuf"), sys.argv[2:] or None
    )
