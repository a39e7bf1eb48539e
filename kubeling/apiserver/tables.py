"""Server-side tables: what ``kubectl get`` shows, computed the way kube-apiserver does.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
the cells it is given, so the columns and the cell logic per kind (pod status
reasoning, ports, ages, ``<none>``) follow Kubernetes' printers. The server
always fills the wide (priority 1) columns; kubectl hides them without -o wide.
Kinds without a printer get the server's default table (Name, Created At).
Pure functions, no I/O: the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from kubeling.api.kinds import Kind
from kubeling.api.quantity import parse_quantity
from kubeling.api.selectors import format_label_selector, format_labels, selector_from_object

Obj = Mapping[str, Any]
Row = Callable[[Obj, datetime], list[Any]]

_NAME = ("Name", "string", 0, "@metadata.name", "name")
_AGE = ("Age", "string", 0, "@metadata.creationTimestamp", "")
_CONTAINERS = ("Containers", "string", 1, "Names of each container in the template.", "")
_IMAGES = ("Images", "string", 1, "Images referenced by each container in the template.", "")


def human_duration(seconds: float) -> str:
    """duration.HumanDuration: "5s", "3m20s", "2d3h", "<invalid>" for the future."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    """translateTimestampSince: ``<unknown>`` for a missing time."""
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _g(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _age(obj: Obj, now: datetime) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


def _qty(value: Any) -> str:
    if value is None or value == "":
        return "0"
    try:
        return parse_quantity(value).canonical()
    except ValueError:
        return str(value)


def _containers(pod_spec: Any) -> tuple[str, str]:
    cs = _g(pod_spec, "containers") or []
    return (",".join(str(c.get("name") or "") for c in cs),
            ",".join(str(c.get("image") or "") for c in cs))


def _selector_string(sel: Any) -> str:
    try:
        return str(selector_from_object(sel))
    except ValueError:
        return "<invalid>"


def _cond_true(conditions: Any, ctype: str) -> bool:
    for c in conditions or []:
        if c.get("type") == ctype:
            return bool(c.get("status") == "True")
    return False


# --- pods -------------------------------------------------------------------------------

def _pod(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    restarts = 0
    sidecar_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    sidecars = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total += len(sidecars)

    def later(cur: datetime | None, st: Obj) -> datetime | None:
        t = parse_time(_g(st, "lastState", "terminated", "finishedAt"))
        return t if t is not None and (cur is None or t > cur) else cur

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, st in enumerate(init_statuses):
        restarts += int(st.get("restartCount") or 0)
        last_restart = later(last_restart, st)
        is_sidecar = st.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += int(st.get("restartCount") or 0)
            last_sidecar_restart = later(last_sidecar_restart, st)
        terminated = _g(st, "state", "terminated")
        waiting = _g(st, "state", "waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and st.get("started"):
            if st.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = f"Init:Signal:{terminated['signal']}"
                else:
                    reason = f"Init:ExitCode:{int(terminated.get('exitCode') or 0)}"
            else:
                reason = "Init:" + terminated["reason"]
        elif waiting is not None and waiting.get("reason") and (
                waiting["reason"] != "PodInitializing"):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or _cond_true(status.get("conditions"), "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for st in reversed(status.get("containerStatuses") or []):
            restarts += int(st.get("restartCount") or 0)
            last_restart = later(last_restart, st)
            waiting = _g(st, "state", "waiting")
            terminated = _g(st, "state", "terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{int(terminated.get('exitCode') or 0)}"
            elif st.get("ready") and _g(st, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _cond_true(status.get("conditions"), "Ready") else "NotReady"

    deleting = _meta(obj).get("deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") or "") if ips else ""
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        true = 0
        for gate in gates:
            for c in status.get("conditions") or []:
                if c.get("type") == gate.get("conditionType"):
                    true += c.get("status") == "True"
                    break
        gates_text = f"{true}/{len(gates)}"
    return [_name(obj), f"{ready}/{total}", reason, restarts_text, _age(obj, now),
            pod_ip or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_text]


def _pod_conditions(obj: Obj) -> list[dict[str, str]] | None:
    phase = _g(obj, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return None


# --- workloads --------------------------------------------------------------------------

def _replicas(obj: Obj, now: datetime, *, selector: str) -> list[Any]:
    spec = obj.get("spec") or {}
    names, images = _containers(_g(spec, "template", "spec"))
    sel = format_labels(spec.get("selector")) if selector == "map" else format_label_selector(
        spec.get("selector"))
    return [_name(obj), int(spec.get("replicas") or 0), int(_g(obj, "status", "replicas") or 0),
            int(_g(obj, "status", "readyReplicas") or 0), _age(obj, now), names, images, sel]


def _deployment(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers(_g(spec, "template", "spec"))
    return [_name(obj), f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}",
            int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
            _age(obj, now), names, images, _selector_string(spec.get("selector"))]


def _statefulset(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    names, images = _containers(_g(spec, "template", "spec"))
    ready = int(_g(obj, "status", "readyReplicas") or 0)
    return [_name(obj), f"{ready}/{int(spec.get('replicas') or 0)}", _age(obj, now),
            names, images]


def _daemonset(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    names, images = _containers(_g(spec, "template", "spec"))
    return [_name(obj), int(st.get("desiredNumberScheduled") or 0),
            int(st.get("currentNumberScheduled") or 0), int(st.get("numberReady") or 0),
            int(st.get("updatedNumberScheduled") or 0), int(st.get("numberAvailable") or 0),
            format_labels(_g(spec, "template", "spec", "nodeSelector")), _age(obj, now),
            names, images, format_label_selector(spec.get("selector"))]


def _job(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    succeeded = int(st.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((end or now) - start).total_seconds())
    conds = st.get("conditions")
    if _cond_true(conds, "Complete"):
        status = "Complete"
    elif _cond_true(conds, "Failed"):
        status = "Failed"
    elif _meta(obj).get("deletionTimestamp") is not None:
        status = "Terminating"
    elif _cond_true(conds, "Suspended"):
        status = "Suspended"
    elif _cond_true(conds, "FailureTarget"):
        status = "FailureTarget"
    else:
        status = "Running"
    names, images = _containers(_g(spec, "template", "spec"))
    return [_name(obj), status, completions, duration, _age(obj, now), names, images,
            format_label_selector(spec.get("selector"))]


def _cronjob(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    last = _g(obj, "status", "lastScheduleTime")
    suspend = spec.get("suspend")
    job_spec = _g(spec, "jobTemplate", "spec") or {}
    names, images = _containers(_g(job_spec, "template", "spec"))
    return [_name(obj), spec.get("schedule") or "", spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(_g(obj, "status", "active") or []), since(last, now) if last else "<none>",
            _age(obj, now), names, images, format_label_selector(job_spec.get("selector"))]


def _controller_revision(obj: Obj, now: datetime) -> list[Any]:
    owner = "<none>"
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            group = str(ref.get("apiVersion") or "").rpartition("/")[0]
            kind = str(ref.get("kind") or "")
            owner = (f"{kind}.{group}" if group else kind).lower() + "/" + str(ref.get("name"))
            break
    return [_name(obj), owner, int(obj.get("revision") or 0), _age(obj, now)]


def _hpa_metrics(specs: list[Obj], statuses: list[Obj]) -> str:
    if not specs:
        return "<none>"
    out: list[str] = []
    for i, spec in enumerate(specs):
        mtype = spec.get("type")
        st = statuses[i] if i < len(statuses) else {}
        key = {"External": "external", "Pods": "pods", "Object": "object",
               "Resource": "resource", "ContainerResource": "containerResource"}.get(
                   str(mtype))
        if key is None:
            out.append("<unknown type>")
            continue
        src = spec.get(key) or {}
        target = src.get("target") or {}
        current_src = st.get(key) if isinstance(st, Mapping) else None
        current = (current_src or {}).get("current") or {}
        if key in ("external", "object", "pods"):
            if key == "pods" or target.get("averageValue") is not None:
                cur = _qty(current.get("averageValue")) if current_src else "<unknown>"
                avg = " (avg)" if key != "pods" else ""
                out.append(f"{cur}/{_qty(target.get('averageValue'))}{avg}")
            else:
                cur = _qty(current.get("value")) if current_src else "<unknown>"
                out.append(f"{cur}/{_qty(target.get('value'))}")
            continue
        name = src.get("name") or ""
        if target.get("averageValue") is not None:
            cur = _qty(current.get("averageValue")) if current_src else "<unknown>"
            out.append(f"{name}: {cur}/{_qty(target['averageValue'])}")
        else:
            util = current.get("averageUtilization")
            cur = f"{util}%" if current_src and util is not None else "<unknown>"
            want = target.get("averageUtilization")
            out.append(f"{name}: {cur}/{f'{want}%' if want is not None else '<auto>'}")
    if len(out) > 2:
        return ", ".join(out[:2]) + f" + {len(out) - 2} more..."
    return ", ".join(out)


def _hpa(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [_name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            _hpa_metrics(spec.get("metrics") or [], st.get("currentMetrics") or []),
            "<unset>" if min_pods is None else str(min_pods), int(spec.get("maxReplicas") or 0),
            int(st.get("currentReplicas") or 0), _age(obj, now)]


# --- networking ---------------------------------------------------------------------------

def _service_external_ip(spec: Obj, status: Obj) -> str:
    stype = spec.get("type") or ""
    external = list(spec.get("externalIPs") or [])
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if stype == "LoadBalancer":
        seen = sorted({i.get("ip") or i.get("hostname") for i in
                       _g(status, "loadBalancer", "ingress") or []
                       if i.get("ip") or i.get("hostname")})
        if external:
            return ",".join([*seen, *external])
        return ",".join(seen) if seen else "<pending>"
    if stype == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _service(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            ports.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            ports.append(f"{p.get('port')}/{proto}")
    return [_name(obj), spec.get("type") or "", ips[0] if ips else "<none>",
            _service_external_ip(spec, obj.get("status") or {}), ",".join(ports) or "<none>",
            _age(obj, now), format_labels(spec.get("selector"))]


def _join_host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoints(obj: Obj, now: datetime) -> list[Any]:
    subsets = obj.get("subsets") or []
    if not subsets:
        return [_name(obj), "<none>", _age(obj, now)]
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addrs = [a.get("ip") or "" for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        for port in ports or [None]:
            count += len(addrs)
            for ip in addrs:
                if len(shown) == 3:
                    break
                shown.append(ip if port is None else _join_host_port(ip, port.get("port")))
    text = ",".join(shown)
    if count > 3:
        text = f"{text} + {count - 3} more..."
    return [_name(obj), text, _age(obj, now)]


def _with_more(items: list[str], count: int) -> str:
    text = ",".join(items[:3])
    if count > 3:
        return f"{text} + {count - 3} more..."
    return text or "<unset>"


def _endpoint_slice(obj: Obj, now: datetime) -> list[Any]:
    ports = []
    for p in obj.get("ports") or []:
        ports.append(str(p["port"]) if p.get("port") is not None else (p.get("name") or "*"))
    addrs = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_name(obj), obj.get("addressType") or "", _with_more(ports, len(ports)),
            _with_more(addrs, len(addrs)), _age(obj, now)]


# --- config, identity, namespaces, nodes, events --------------------------------------------

def _configmap(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
            _age(obj, now)]


def _secret(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), obj.get("type") or "", len(obj.get("data") or {}), _age(obj, now)]


def _service_account(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), len(obj.get("secrets") or []), _age(obj, now)]


def _namespace(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _g(obj, "status", "phase") or "", _age(obj, now)]


def _node(obj: Obj, now: datetime) -> list[Any]:
    status = obj.get("status") or {}
    states = []
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            states = ["Ready" if c.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if _g(obj, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for k, v in (_meta(obj).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and len(k) > len("node-role.kubernetes.io/"):
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        for a in status.get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address") or "")
        return "<none>"

    return [_name(obj), ",".join(states), ",".join(sorted(roles)) or "<none>", _age(obj, now),
            info.get("kubeletVersion") or "", address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _core_event(obj: Obj, now: datetime) -> list[Any]:
    first = (since(obj.get("firstTimestamp"), now) if obj.get("firstTimestamp")
             else since(obj.get("eventTime"), now))
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = int(obj.get("count") or 0)
    series = obj.get("series")
    if series is not None:
        last = since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1
    io = obj.get("involvedObject") or {}
    target = str(io.get("kind") or "").lower()
    if io.get("name"):
        target = f"{target}/{io['name']}"
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return [last, obj.get("type") or "", obj.get("reason") or "", target,
            io.get("fieldPath") or "", f"{component}, {instance}" if instance else component,
            str(obj.get("message") or "").strip(), first, count, _name(obj)]


def _events_v1(obj: Obj, now: datetime) -> list[Any]:
    # The server prints events.k8s.io events through the core printer, field by field.
    source = obj.get("deprecatedSource") or {}
    core = {
        "metadata": obj.get("metadata"), "involvedObject": obj.get("regarding") or {},
        "message": obj.get("note"), "reason": obj.get("reason"), "type": obj.get("type"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount"), "eventTime": obj.get("eventTime"),
        "series": obj.get("series"), "source": source,
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
    }
    return _core_event(core, now)


# --- storage, quota, coordination --------------------------------------------------------------

def _access_modes(modes: Any) -> str:
    have = set(modes or [])
    return ",".join(short for mode, short in (
        ("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP")) if mode in have)


def _storage_class_of(obj: Obj) -> str:
    ann = _meta(obj).get("annotations") or {}
    if "volume.beta.kubernetes.io/storage-class" in ann:
        return str(ann["volume.beta.kubernetes.io/storage-class"])
    return str(_g(obj, "spec", "storageClassName") or "")


def _pv(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    claim = spec.get("claimRef")
    claim_text = f"{claim.get('namespace') or ''}/{claim.get('name') or ''}" if claim else ""
    phase = _g(obj, "status", "phase") or ""
    if _meta(obj).get("deletionTimestamp") is not None:
        phase = "Terminating"
    return [_name(obj), _qty((spec.get("capacity") or {}).get("storage")),
            _access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy") or "", phase, claim_text,
            _storage_class_of(obj), spec.get("volumeAttributesClassName") or "<unset>",
            _g(obj, "status", "reason") or "", _age(obj, now), spec.get("volumeMode") or "<unset>"]


def _pvc(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = status.get("phase") or ""
    if _meta(obj).get("deletionTimestamp") is not None:
        phase = "Terminating"
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        capacity = _qty((status.get("capacity") or {}).get("storage"))
    return [_name(obj), phase, spec.get("volumeName") or "", capacity, modes,
            _storage_class_of(obj), spec.get("volumeAttributesClassName") or "<unset>",
            _age(obj, now), spec.get("volumeMode") or "<unset>"]


def _resource_quota(obj: Obj, now: datetime) -> list[Any]:
    hard = _g(obj, "status", "hard") or {}
    used = _g(obj, "status", "used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for res in sorted(hard):
        text = f"{res}: {_qty(used.get(res))}/{_qty(hard[res])}"
        parts = res.split(".")
        (limits if len(parts) > 1 and parts[0] == "limits" else requests).append(text)
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _lease(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _g(obj, "spec", "holderIdentity") or "", _age(obj, now)]


def _storage_class(obj: Obj, now: datetime) -> list[Any]:
    ann = _meta(obj).get("annotations") or {}
    name = _name(obj)
    if (ann.get("storageclass.kubernetes.io/is-default-class") == "true"
            or ann.get("storageclass.beta.kubernetes.io/is-default-class") == "true"):
        name += " (default)"
    return [name, obj.get("provisioner") or "", obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate", bool(obj.get("allowVolumeExpansion")),
            _age(obj, now)]


def _default(obj: Obj, now: datetime) -> list[Any]:
    created = parse_time(_meta(obj).get("creationTimestamp"))
    text = (created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created
            else "0001-01-01T00:00:00Z")
    return [_name(obj), text]


# --- columns per kind ------------------------------------------------------------------------

Col = tuple[str, str, int, str, str]


def _c(name: str, desc: str, *, type_: str = "string", priority: int = 0) -> Col:
    return (name, type_, priority, desc, "")


_INT = "integer"
_TEMPLATE_SELECTOR = "@spec.selector"

_PRINTERS: dict[tuple[str, str], tuple[tuple[Col, ...], Row]] = {
    ("", "Pod"): ((
        _NAME, _c("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _c("Status", "The aggregate status of the containers in this pod."),
        _c("Restarts", "The number of times the containers in this pod have been restarted "
           "and when the last container in this pod has restarted."),
        _AGE, _c("IP", "@status.podIP", priority=1), _c("Node", "@spec.nodeName", priority=1),
        _c("Nominated Node", "@status.nominatedNodeName", priority=1),
        _c("Readiness Gates", "@spec.readinessGates", priority=1)), _pod),
    ("", "ReplicationController"): ((
        _NAME, _c("Desired", "@spec.replicas", type_=_INT),
        _c("Current", "@status.replicas", type_=_INT),
        _c("Ready", "@status.readyReplicas", type_=_INT), _AGE, _CONTAINERS, _IMAGES,
        _c("Selector", _TEMPLATE_SELECTOR, priority=1)),
        lambda o, n: _replicas(o, n, selector="map")),
    ("apps", "ReplicaSet"): ((
        _NAME, _c("Desired", "@spec.replicas", type_=_INT),
        _c("Current", "@status.replicas", type_=_INT),
        _c("Ready", "@status.readyReplicas", type_=_INT), _AGE, _CONTAINERS, _IMAGES,
        _c("Selector", _TEMPLATE_SELECTOR, priority=1)),
        lambda o, n: _replicas(o, n, selector="object")),
    ("apps", "Deployment"): ((
        _NAME, _c("Ready", "Number of the pod with ready state"),
        _c("Up-to-date", "@status.updatedReplicas"),
        _c("Available", "@status.availableReplicas"), _AGE, _CONTAINERS, _IMAGES,
        _c("Selector", _TEMPLATE_SELECTOR, priority=1)), _deployment),
    ("apps", "StatefulSet"): ((
        _NAME, _c("Ready", "Number of the pod with ready state"), _AGE, _CONTAINERS, _IMAGES),
        _statefulset),
    ("apps", "DaemonSet"): ((
        _NAME, _c("Desired", "@status.desiredNumberScheduled", type_=_INT),
        _c("Current", "@status.currentNumberScheduled", type_=_INT),
        _c("Ready", "@status.numberReady", type_=_INT),
        _c("Up-to-date", "@status.updatedNumberScheduled", type_=_INT),
        _c("Available", "@status.numberAvailable", type_=_INT),
        _c("Node Selector", "@spec.template.spec.nodeSelector"), _AGE, _CONTAINERS, _IMAGES,
        _c("Selector", _TEMPLATE_SELECTOR, priority=1)), _daemonset),
    ("apps", "ControllerRevision"): ((
        _NAME, _c("Controller", "Controller of the object"), _c("Revision", "@revision"), _AGE),
        _controller_revision),
    ("batch", "Job"): ((
        _NAME, _c("Status", "Status of the job."), _c("Completions", "@status.succeeded"),
        _c("Duration", "Time required to complete the job."), _AGE, _CONTAINERS, _IMAGES,
        _c("Selector", _TEMPLATE_SELECTOR, priority=1)), _job),
    ("batch", "CronJob"): ((
        _NAME, _c("Schedule", "@spec.schedule"), _c("Timezone", "@spec.timeZone"),
        _c("Suspend", "@spec.suspend", type_="boolean"),
        _c("Active", "@status.active", type_=_INT),
        _c("Last Schedule", "@status.lastScheduleTime"), _AGE, _CONTAINERS, _IMAGES,
        _c("Selector", "@spec.jobTemplate.spec.selector", priority=1)), _cronjob),
    ("autoscaling", "HorizontalPodAutoscaler"): ((
        _NAME, _c("Reference", "@spec.scaleTargetRef"), _c("Targets", "@spec.metrics"),
        _c("MinPods", "@spec.minReplicas"), _c("MaxPods", "@spec.maxReplicas"),
        _c("Replicas", "@status.currentReplicas"), _AGE), _hpa),
    ("", "Service"): ((
        _NAME, _c("Type", "@spec.type"), _c("Cluster-IP", "@spec.clusterIP"),
        _c("External-IP", "@spec.externalIPs"), _c("Port(s)", "@spec.ports"), _AGE,
        _c("Selector", "@spec.selector", priority=1)), _service),
    ("", "Endpoints"): ((_NAME, _c("Endpoints", "@subsets"), _AGE), _endpoints),
    ("discovery.k8s.io", "EndpointSlice"): ((
        _NAME, _c("AddressType", "@addressType"), _c("Ports", "@ports"),
        _c("Endpoints", "@endpoints"), _AGE), _endpoint_slice),
    ("", "ConfigMap"): ((_NAME, _c("Data", "@data"), _AGE), _configmap),
    ("", "Secret"): ((_NAME, _c("Type", "@type"), _c("Data", "@data"), _AGE), _secret),
    ("", "ServiceAccount"): ((_NAME, _c("Secrets", "@secrets"), _AGE), _service_account),
    ("", "Namespace"): ((_NAME, _c("Status", "The status of the namespace"), _AGE), _namespace),
    ("", "Node"): ((
        _NAME, _c("Status", "The status of the node"), _c("Roles", "The roles of the node"),
        _AGE, _c("Version", "@status.nodeInfo.kubeletVersion"),
        _c("Internal-IP", "@status.addresses", priority=1),
        _c("External-IP", "@status.addresses", priority=1),
        _c("OS-Image", "@status.nodeInfo.osImage", priority=1),
        _c("Kernel-Version", "@status.nodeInfo.kernelVersion", priority=1),
        _c("Container-Runtime", "@status.nodeInfo.containerRuntimeVersion", priority=1)),
        _node),
    ("", "PersistentVolume"): ((
        _NAME, _c("Capacity", "@spec.capacity"), _c("Access Modes", "@spec.accessModes"),
        _c("Reclaim Policy", "@spec.persistentVolumeReclaimPolicy"),
        _c("Status", "@status.phase"), _c("Claim", "@spec.claimRef"),
        _c("StorageClass", "StorageClass of the pv"),
        _c("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        _c("Reason", "@status.reason"), _AGE,
        _c("VolumeMode", "@spec.volumeMode", priority=1)), _pv),
    ("", "PersistentVolumeClaim"): ((
        _NAME, _c("Status", "@status.phase"), _c("Volume", "@spec.volumeName"),
        _c("Capacity", "@status.capacity"), _c("Access Modes", "@status.accessModes"),
        _c("StorageClass", "StorageClass of the pvc"),
        _c("VolumeAttributesClass", "VolumeAttributesClass of the pvc"), _AGE,
        _c("VolumeMode", "@spec.volumeMode", priority=1)), _pvc),
    ("", "ResourceQuota"): ((
        _NAME, _c("Request", "Request represents a minimum amount of cpu/memory that a "
                  "container may consume."),
        _c("Limit", "Limits control the maximum amount of cpu/memory that a container may "
           "use independent of contention on the node."), _AGE), _resource_quota),
    ("coordination.k8s.io", "Lease"): ((
        _NAME, _c("Holder", "@spec.holderIdentity"), _AGE), _lease),
    ("storage.k8s.io", "StorageClass"): ((
        _NAME, _c("Provisioner", "@provisioner"), _c("ReclaimPolicy", "@reclaimPolicy"),
        _c("VolumeBindingMode", "@volumeBindingMode"),
        _c("AllowVolumeExpansion", "@allowVolumeExpansion"), _AGE), _storage_class),
}

_EVENT_COLUMNS: tuple[Col, ...] = (
    _c("Last Seen", "@lastTimestamp"), _c("Type", "@type"), _c("Reason", "@reason"),
    _c("Object", "@involvedObject"), _c("Subobject", "@involvedObject.fieldPath", priority=1),
    _c("Source", "@source", priority=1), _c("Message", "@message"),
    _c("First Seen", "@firstTimestamp", priority=1), _c("Count", "@count", priority=1),
    ("Name", "string", 1, "@metadata.name", "name"))
# Both event kinds print through the core printer, so their descriptions come from core/v1.
_PRINTERS[("", "Event")] = (_EVENT_COLUMNS, _core_event)
_PRINTERS[("events.k8s.io", "Event")] = (_EVENT_COLUMNS, _events_v1)

_DEFAULT_COLUMNS: tuple[Col, ...] = (
    _NAME, ("Created At", "date", 0, "@metadata.creationTimestamp", ""))
_DESCRIBED_AS = {("events.k8s.io", "Event"): ("", "v1", "Event")}


@cache
def _description(group: str, version: str, kind: str, ref: str) -> str:
    if not ref.startswith("@"):
        return ref
    from kubeling.api.schema import Struct, kind_schema

    node: Any = kind_schema(group, version, kind)
    parts = ref[1:].split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, Struct) or part not in node.fields:
            return ""
        info = node.fields[part]
        if i == len(parts) - 1:
            return info.description
        node = info.node
        while not isinstance(node, Struct) and hasattr(node, "item"):
            node = node.item
    return ""


def _printer(kind: Kind) -> tuple[tuple[Col, ...], Row]:
    return _PRINTERS.get((kind.group, kind.kind), (_DEFAULT_COLUMNS, _default))


def column_definitions(kind: Kind) -> list[dict[str, Any]]:
    """The Table's columnDefinitions for ``kind`` (wide columns have priority 1)."""
    cols, _ = _printer(kind)
    group, version, kname = _DESCRIBED_AS.get(
        (kind.group, kind.kind), (kind.group, kind.stored_version, kind.kind))
    return [{"name": name, "type": type_, "format": fmt,
             "description": _description(group, version, kname, desc), "priority": priority}
            for name, type_, priority, desc, fmt in cols]


def row_cells(kind: Kind, obj: Obj, now: datetime) -> list[Any]:
    """The cells of one row, every column included (the server always prints wide)."""
    _, row = _printer(kind)
    return row(obj, now)


def _row_object(obj: Obj, include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def make_table(kind: Kind, objs: Iterable[Obj], *, include_object: str = "Metadata",
               resource_version: str = "", continue_token: str = "",
               remaining: int | None = None, now: datetime, columns: bool = True,
               ) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table as kube-apiserver renders it.

    ``include_object`` is the ``includeObject`` query parameter (Metadata, Object,
    None). ``columns=False`` is the server's NoHeaders (watch events after the first):
    columnDefinitions is then null, as Go marshals the empty slice.
    """
    _, row = _printer(kind)
    rows = []
    for obj in objs:
        entry: dict[str, Any] = {"cells": row(obj, now)}
        if kind.group == "" and kind.kind == "Pod":
            conditions = _pod_conditions(obj)
            if conditions:
                entry["conditions"] = conditions
        entry["object"] = _row_object(obj, include_object)
        rows.append(entry)
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": column_definitions(kind) if columns else None, "rows": rows}
