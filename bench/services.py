"""Services benchmark: proxy programming, cluster DNS, and traffic through a ClusterIP.

``python -m bench.services`` (as root, with runc, busybox-static and nft) runs
three parts and prints their figures:

- ``proxy``: 1,000 Services of 10 endpoints each programmed into nftables;
  the first full sync and endpoint change → rule in place, p50/p99
  (bench/proxysync.py, beside ``nft -f`` of the same ruleset alone);
- ``dns``: queries per second and p99 latency against the cluster DNS with
  1,000 Services loaded (bench/dnsperf.py);
- ``traffic``: one ``kubeling server`` running OCI pods and its proxy; a busybox
  ``httpd`` pod is asked by a load generator (bench/httpload.py) running in a
  client pod's network namespace, directly at the pod's IP and through the
  Service's ClusterIP, alternating, in the same run. The goal is a ClusterIP
  rate at least 90 % of the direct one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Server

CGROUP_PARENT = f"kubeling-bench-svc-{os.getpid()}"
CLIENT_MARK = "7771"  # the client pod sleeps this long: how its process is found
SERVE = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"


def kubectl(server: Server, *args: str, input: str | None = None) -> str:
    out = subprocess.run(["kubectl", "--kubeconfig", str(server.kubeconfig), *args],
                         capture_output=True, text=True, input=input, check=False,
                         env={**os.environ, "KUBECACHEDIR": str(server.data_dir / "kcache")})
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def wait(what: str, fn: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = fn()
        except RuntimeError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def manifests() -> str:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                        "containers": [{"name": "httpd", "image": "busybox:1.36",
                                        "imagePullPolicy": "IfNotPresent",
                                        "command": ["sh", "-c", SERVE]}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
              "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                       "imagePullPolicy": "IfNotPresent",
                                       "command": ["sleep", CLIENT_MARK]}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [web, svc, client]})


def client_pid() -> int:
    out = subprocess.run(["pgrep", "-f", f"^sleep {CLIENT_MARK}$"], capture_output=True,
                         text=True, check=False).stdout.split()
    return int(out[0]) if out else 0


def load_from_pod(pid: int, url: str, seconds: float, concurrency: int) -> dict[str, float]:
    """bench/httpload.py in the client pod's network namespace (the host's Python, the pod's
    address, routes and the path its packets take through the bridge and the rules)."""
    out = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", sys.executable, "-m", "bench.httpload", url,
         "--seconds", str(seconds), "--concurrency", str(concurrency)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def traffic(args: argparse.Namespace, workdir: Path) -> dict[str, list[dict[str, float]]]:
    from tests.imagebuild import build_image

    imports = workdir / "agent" / "images-import"
    imports.mkdir(parents=True)
    build_image(imports / "busybox.tar", name="busybox:1.36")
    server = Server(workdir)
    server.start("--log-level", "warning", agent=True, server_args=(
        "--kubelet-port", "0", "--kubelet-health-port", "0", "--runtime", "oci",
        "--cgroup-parent", CGROUP_PARENT, "--cluster-dns-port", "0"))
    results: dict[str, list[dict[str, float]]] = {"direct": [], "clusterip": []}
    try:
        kubectl(server, "apply", "-f", "-", input=manifests())

        def pod_ip() -> str:
            return kubectl(server, "get", "pods", "-l", "app=web", "-o",
                           "jsonpath={.items[0].status.podIP}").strip()

        def ready_endpoint() -> bool:
            out = kubectl(server, "get", "endpointslices", "-l",
                          "kubernetes.io/service-name=web", "-o", "json")
            return any((e.get("conditions") or {}).get("ready")
                       for s in json.loads(out)["items"] for e in s.get("endpoints") or [])

        direct = f"http://{wait('the web pod IP', pod_ip)}:8080/"
        wait("a ready endpoint of web", ready_endpoint)
        vip = kubectl(server, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").strip()
        clusterip = f"http://{vip}/"
        pid = wait("the client pod's process", client_pid)
        # A new connection per request: the client's ports must not run out within a round
        # (the pod's namespace has its own port range).
        subprocess.run(["nsenter", "-t", str(pid), "-n", "sysctl", "-q", "-w",
                        "net.ipv4.ip_local_port_range=1024 65535"], check=True)
        load_from_pod(pid, clusterip, 1.0, 4)  # warm both paths up
        load_from_pod(pid, direct, 1.0, 4)
        for i in range(args.rounds):
            for name, url in (("direct", direct), ("clusterip", clusterip)):
                r = load_from_pod(pid, url, args.seconds, args.concurrency)
                results[name].append(r)
                print(f"  round {i + 1} {name:<9} {url:<28} {r['rate']:8.0f} req/s "
                      f"p50 {r['p50_ms']:6.2f} ms p99 {r['p99_ms']:6.2f} ms "
                      f"max {r['max_ms']:7.1f} ms, {r['over_900ms']:.0f} over 0.9 s, "
                      f"failures {r['failures']:.0f}", flush=True)
    finally:
        try:
            kubectl(server, "delete", "deploy,pods,svc", "--all", "--wait=false")
        except RuntimeError:
            pass
        server.stop()
        subprocess.run(["nft", "delete", "table", "ip", "kubeling"], capture_output=True,
                       check=False)
        from bench.pods import kill_leftovers
        from tests.ocitools import sweep

        kill_leftovers(workdir)
        sweep(workdir / "agent", CGROUP_PARENT)
    return results


def summary(results: dict[str, list[dict[str, float]]]) -> None:
    def mean(name: str, key: str) -> float:
        rows = results[name]
        return sum(r[key] for r in rows) / len(rows) if rows else 0.0

    d, c = mean("direct", "rate"), mean("clusterip", "rate")
    print(f"traffic: direct {d:.0f} req/s (p99 {mean('direct', 'p99_ms'):.2f} ms), "
          f"ClusterIP {c:.0f} req/s (p99 {mean('clusterip', 'p99_ms'):.2f} ms): "
          f"ClusterIP at {100 * c / d if d else 0:.1f} % of direct (goal ≥ 90 %)", flush=True)


def other_parts(parts: set[str]) -> None:
    """The proxy and DNS parts, each its own process (they start their own servers)."""
    root = Path(__file__).resolve().parent.parent
    for part, module, title in (("proxy", "bench.proxysync", "proxy programming"),
                                ("dns", "bench.dnsperf", "cluster DNS")):
        if part in parts:
            print(f"== {title} ({module})", flush=True)
            subprocess.run([sys.executable, "-m", module], cwd=root, check=False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="proxy,dns,traffic")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=4,
                   help="requests in flight (busybox httpd's accept backlog is small: more "
                        "measures its SYN drops and 1 s retransmits, on both paths)")
    args = p.parse_args()
    parts = {s.strip() for s in args.parts.split(",") if s.strip()}
    print(f"kubeling Services benchmark: {os.cpu_count()} CPUs", flush=True)
    other_parts(parts)
    if "traffic" in parts:
        print("== traffic through a ClusterIP beside direct pod access", flush=True)
        with tempfile.TemporaryDirectory(prefix="kubeling-bench-svc-") as tmp:
            summary(traffic(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
