"""The verbs on resources: get, list, create, update, patch, delete, deletecollection.

Each handler turns a parsed request into one registry call and renders the
result; the semantics live in the registry. Subresources with a shape of
their own (scale, binding) are translated here to writes of the parent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubeling.api import errors, schema
from kubeling.api import field as field_errors
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.apiserver import codec, render
from kubeling.apiserver.codec import Want
from kubeling.apiserver.request import Request, RequestInfo
from kubeling.registry import verbs
from kubeling.registry.cache import Cached
from kubeling.registry.listing import ListOptions
from kubeling.registry.registry import Registry, WriteOptions, now_rfc3339

log = logging.getLogger("kubeling.apiserver")

Obj = dict[str, Any]

_FIELD_VALIDATION = ("Strict", "Warn", "Ignore")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = codec.JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def respond(status: int, payload: tuple[bytes, str], warnings: list[str] | None = None,
            ) -> Response:
    body, ctype = payload
    headers = []
    for w in warnings or ():
        escaped = w.replace("\\", "\\\\").replace('"', '\\"')
        headers.append((b"warning", f'299 - "{escaped}"'.encode()))
    return Response(status, body, ctype, headers)


_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions",
                 "DELETE": "DeleteOptions"}


def _go_strings(values: list[str]) -> str:
    return "[]string{" + ", ".join(orjson.dumps(v).decode() for v in values) + "}"


def write_options(req: Request) -> WriteOptions:
    """The write's options from the query; bad values are 422 on ``meta.k8s.io`` *Options."""
    causes: list[errors.Cause] = []
    dry = req.query.get("dryRun", [])
    if any(d != "All" for d in dry):
        causes.append({"reason": "FieldValueNotSupported", "field": "dryRun",
                       "message": f'Unsupported value: {_go_strings(dry)}: supported values: '
                                  '"All"'})
    fv = req.q("fieldValidation")
    if fv not in ("", *_FIELD_VALIDATION):
        causes.append(field_errors.not_supported(
            "fieldValidation", fv, ("", "Ignore", "Strict", "Warn")))
    fv = fv or "Warn"
    manager = req.q("fieldManager")
    if len(manager) > 128:
        causes.append(field_errors.too_long("fieldManager", 128))
    if causes:
        raise errors.invalid(_OPTIONS_KIND.get(req.method, "CreateOptions"), "", causes,
                             "meta.k8s.io")
    return WriteOptions(dry_run=bool(dry), field_manager=manager,
                        user_agent=req.headers.get("user-agent", ""), field_validation=fv,
                        body_owned=True)


def list_options(req: Request) -> ListOptions:
    return ListOptions(
        label_selector=req.q("labelSelector"),
        field_selector=req.q("fieldSelector"),
        limit=req.qint("limit"),
        continue_=req.q("continue"),
        resource_version=req.q("resourceVersion"),
        resource_version_match=req.q("resourceVersionMatch"),
    )


class Handlers:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # ----- reads -------------------------------------------------------------------

    async def get(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:
        c = await self.registry.get(kind, info.namespace, info.name, req.q("resourceVersion"))
        return respond(200, render.render_object(kind, c, info.version, want,
                                                 req.q("includeObject")))

    async def list(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:
        page = await self.registry.list(kind, info.namespace, list_options(req))
        return respond(200, render.render_list(
            kind, page.items, info.version, want, revision=page.revision,
            continue_token=page.continue_, remaining=page.remaining,
            include_object=req.q("includeObject")))

    # ----- writes ------------------------------------------------------------------

    async def create(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:
        if kind.namespaced and not info.namespace:
            raise errors.method_not_supported(kind.resource, "create", kind.group)
        body = codec.decode_body(req.headers.get("content-type"), req.body)
        opts = write_options(req)
        c = await self.registry.create(kind, info.namespace, body, opts, version=info.version)
        log.debug("create %s %s", kind.qualified_resource, _ref(c))
        return respond(201, render.render_object(kind, c, info.version, want), opts.warnings)

    async def update(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:
        body = codec.decode_body(req.headers.get("content-type"), req.body)
        opts = write_options(req)
        sub = info.subresource
        if sub == "scale":
            return await self._update_scale(req, info, kind, body, opts)
        if sub == "finalize" and kind.kind == "Namespace":
            return await self._finalize(info, kind, body, opts, want)
        if sub not in ("", "status"):
            raise errors.not_found(f"{kind.resource}/{sub}", info.name, kind.group)
        c, created = await self.registry.update(kind, info.namespace, info.name, body, opts,
                                                version=info.version, subresource=sub)
        log.debug("update %s %s%s", kind.qualified_resource, _ref(c), f" ({sub})" if sub else "")
        return respond(201 if created else 200,
                       render.render_object(kind, c, info.version, want), opts.warnings)

    async def patch(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:

        ctype, _ = codec.media_type(req.headers.get("content-type"))
        body = codec.decode_body(ctype, req.body, patch=True)
        opts = write_options(req)
        sub = info.subresource
        if ctype == codec.APPLY_PATCH:
            return await self._apply(req, info, kind, body, opts, want)
        if sub == "scale":
            return await self._patch_scale(req, info, kind, ctype, body, opts)
        if sub not in ("", "status"):
            raise errors.not_found(f"{kind.resource}/{sub}", info.name, kind.group)
        ptype = {codec.JSON_PATCH: verbs.JSON_PATCH, codec.MERGE_PATCH: verbs.MERGE_PATCH}.get(
            ctype, verbs.STRATEGIC_PATCH)
        c = await verbs.patch(self.registry, kind, info.namespace, info.name, ptype, body, opts,
                              subresource=sub, version=info.version)
        log.debug("patch %s %s%s", kind.qualified_resource, _ref(c), f" ({sub})" if sub else "")
        return respond(200, render.render_object(kind, c, info.version, want), opts.warnings)

    async def _apply(self, req: Request, info: RequestInfo, kind: Kind, body: Any,
                     opts: WriteOptions, want: Want) -> Response:
        from kubeling.api import apply

        if not opts.field_manager:
            raise errors.bad_request(
                "PATCH requests with apply content type must set the fieldManager parameter")
        if not isinstance(body, dict):
            raise errors.bad_request("the apply configuration must be an object")
        force = req.qbool("force")
        manager = opts.field_manager
        root = schema.kind_schema(kind.group, info.version, kind.kind)
        config = json_copy(body)
        config.setdefault("metadata", {})
        if info.subresource == "" and not config["metadata"].get("name"):
            config["metadata"]["name"] = info.name
        api_version = config.get("apiVersion") or ""

        def applied(live: Obj | None) -> Obj:
            return apply.apply_config(live, config, manager=manager, force=force, schema=root,
                                      api_version=api_version, now=now_rfc3339())

        opts.field_manager = "__apply__"
        c, created = await self.registry.mutate(
            kind, info.namespace, info.name, applied, opts, version=info.version,
            subresource=info.subresource, create=lambda: applied(None))
        log.debug("apply %s %s by %s", kind.qualified_resource, _ref(c), manager)
        return respond(201 if created else 200,
                       render.render_object(kind, c, info.version, want), opts.warnings)

    async def delete(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:
        options = self._delete_options(req)
        opts = write_options(req)
        if info.subresource:
            raise errors.method_not_supported(f"{kind.resource}/{info.subresource}", "delete")
        c, gone = await self.registry.delete(kind, info.namespace, info.name, options, opts)
        log.info("delete %s %s%s", kind.qualified_resource, _ref(c),
                 "" if gone else " (pending)")
        from kubeling.registry.strategy import strategy_for

        if gone and not strategy_for(kind).return_deleted_object:
            return respond(200, codec.encode(render.success_status(kind, c), want))
        return respond(200, render.render_object(kind, c, info.version, want))

    def _delete_options(self, req: Request) -> Obj:
        options: Obj = {}
        if req.body.strip():
            raw = codec.decode_body(req.headers.get("content-type"), req.body)
            if not isinstance(raw, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            options.update(raw)
        if req.q("gracePeriodSeconds"):
            options["gracePeriodSeconds"] = req.qint("gracePeriodSeconds")
        if req.q("propagationPolicy"):
            options["propagationPolicy"] = req.q("propagationPolicy")
        if req.q("orphanDependents"):
            options["orphanDependents"] = req.qbool("orphanDependents")
        return options

    async def delete_collection(self, req: Request, info: RequestInfo, kind: Kind,
                                want: Want) -> Response:
        options = self._delete_options(req)
        opts = write_options(req)
        lopts = list_options(req)
        lopts.limit = 0
        lopts.continue_ = ""
        page = await self.registry.list(kind, info.namespace, lopts)
        deleted: list[Cached] = []
        for c in page.items:
            meta = c.obj["metadata"]
            try:
                d, _ = await self.registry.delete(kind, meta.get("namespace"), meta["name"],
                                                  options, opts)
            except errors.StatusError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(d)
        log.info("deletecollection %s: %d deleted", kind.qualified_resource, len(deleted))
        return respond(200, render.render_list(kind, deleted, info.version, want,
                                               revision=self.registry.cache.revision))

    # ----- subresources --------------------------------------------------------------

    async def get_scale(self, info: RequestInfo, kind: Kind, want: Want) -> Response:
        c = await self.registry.get(kind, info.namespace, info.name)
        return respond(200, codec.encode(scale_of(kind, c.obj), want))

    async def _update_scale(self, req: Request, info: RequestInfo, kind: Kind, body: Any,
                            opts: WriteOptions) -> Response:
        if not isinstance(body, dict) or body.get("kind") not in (None, "Scale"):
            raise errors.bad_request("the body must be an autoscaling/v1 Scale")
        return await self._set_replicas(info, kind, lambda _obj: body, opts)

    async def _patch_scale(self, req: Request, info: RequestInfo, kind: Kind, ctype: str,
                           body: Any, opts: WriteOptions) -> Response:
        from kubeling.api import patch as patches

        def patched(obj: Obj) -> Obj:
            # The patch applies to the Scale of the object as it is now, so a patch that
            # names no resourceVersion never conflicts (as Kubernetes retries it).
            scale = scale_of(kind, obj)
            if ctype == codec.JSON_PATCH:
                return patches.apply_json_patch(scale, body)
            if ctype == codec.MERGE_PATCH:
                return patches.apply_merge_patch(scale, body)
            return patches.apply_strategic_merge_patch(
                scale, body, schema.kind_schema("autoscaling", "v1", "Scale"))

        return await self._set_replicas(info, kind, patched, opts)

    async def _set_replicas(self, info: RequestInfo, kind: Kind,
                            new_scale: Callable[[Obj], Obj], opts: WriteOptions) -> Response:
        replicas_set = 0

        def fn(obj: Obj) -> Obj:
            nonlocal replicas_set
            scale = new_scale(obj)
            spec = scale.get("spec") or {}
            replicas = spec.get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool):
                raise errors.bad_request("spec.replicas must be an integer")
            if replicas < 0:
                raise errors.invalid("Scale", info.name, [{
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                    "field": "spec.replicas"}], "autoscaling")
            want_rv = (scale.get("metadata") or {}).get("resourceVersion") or ""
            if want_rv and obj["metadata"].get("resourceVersion") != want_rv:
                raise errors.stale_conflict(kind.resource, info.name, kind.group)
            obj.setdefault("spec", {})["replicas"] = replicas
            replicas_set = replicas
            return obj

        c, _ = await self.registry.mutate(kind, info.namespace, info.name, fn, opts,
                                          version=kind.stored_version)
        log.info("scale %s %s to %d", kind.qualified_resource, _ref(c), replicas_set)
        return respond(200, codec.encode(scale_of(kind, c.obj)))

    async def _finalize(self, info: RequestInfo, kind: Kind, body: Any, opts: WriteOptions,
                        want: Want) -> Response:
        finalizers = ((body or {}).get("spec") or {}).get("finalizers") or []

        def fn(obj: Obj) -> Obj:
            obj.setdefault("spec", {})["finalizers"] = finalizers
            if not finalizers:
                obj["spec"].pop("finalizers")
            return obj

        c, _ = await self.registry.mutate(kind, None, info.name, fn, opts, subresource="finalize")
        return respond(200, render.render_object(kind, c, info.version, want))

    async def bind(self, req: Request, info: RequestInfo, kind: Kind, want: Want) -> Response:
        body = codec.decode_body(req.headers.get("content-type"), req.body)
        target = (body or {}).get("target") or {}
        name = ((body or {}).get("metadata") or {}).get("name") or info.name
        uid = (((body or {}).get("metadata") or {}).get("uid")) or ""
        await verbs.bind(self.registry, info.namespace or "", name, target.get("name") or "",
                         write_options(req), uid=uid)
        return respond(201, codec.encode({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                          "status": "Success", "code": 201}, want))


def scale_of(kind: Kind, obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of a scalable object."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    sel = spec.get("selector")
    if kind.kind == "ReplicationController" or (isinstance(sel, dict) and
                                                 "matchLabels" not in sel and
                                                 "matchExpressions" not in sel):
        selector = ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items()))
    else:
        from kubeling.api.selectors import selector_from_object

        selector = str(selector_from_object(sel)) if sel else ""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector},
    }


def _ref(c: Cached) -> str:
    meta = c.obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
