"""The registry: the semantics of every API write and read, over a Store.

Both the HTTP API server and the in-process client call this, so admission,
defaulting, validation, conversion, managed fields and optimistic concurrency
are the same whichever way a request arrives. Objects reach the registry as
dicts in the version the caller speaks and are stored in the kind's storage
version; reads come from the watch cache after it has caught up with the
store (consistent reads), except lists of an older page (from the store).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from kubeling.api import conversion, errors, fields, kinds, schema, selectors
from kubeling.api.defaults import apply_defaults
from kubeling.api.defaults.batch import prepare_job_for_create
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.api.normalize import normalize
from kubeling.api.validation import validate_create, validate_status_update, validate_update
from kubeling.registry import managed, master
from kubeling.registry.allocator import (
    DEFAULT_SERVICE_CIDR,
    NODE_PORT_RANGE,
    ServiceAllocator,
)
from kubeling.registry.cache import Cached, WatchCache
from kubeling.registry.listing import ListOptions, decode_continue, encode_continue
from kubeling.registry.strategy import (
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
    strategy_for,
)
from kubeling.storage.interface import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
)

log = logging.getLogger("kubeling.registry")

Obj = dict[str, Any]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


_RANDOM_POOL = bytearray()


def new_uid() -> str:
    """A random (version 4) UUID, from the OS's random bytes drawn 4 KiB at a time."""
    global _RANDOM_POOL
    if len(_RANDOM_POOL) < 16:
        _RANDOM_POOL = bytearray(os.urandom(4096))
    raw = bytes(_RANDOM_POOL[-16:])
    del _RANDOM_POOL[-16:]
    return str(uuid.UUID(bytes=raw, version=4))


_last_stamp: tuple[int, str] = (-1, "")


def now_rfc3339(clock: Callable[[], float] = time.time) -> str:
    """The time in RFC 3339 at second precision (formatted once per second)."""
    global _last_stamp
    second = int(clock())
    if second != _last_stamp[0]:
        _last_stamp = (second, _rfc3339_at(second))
    return _last_stamp[1]


def _rfc3339_at(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(obj: Obj) -> bytes:
    meta = obj.get("metadata")
    if meta is not None and "resourceVersion" in meta:
        rv = meta.pop("resourceVersion")
        try:
            return orjson.dumps(obj)
        finally:
            meta["resourceVersion"] = rv
    return orjson.dumps(obj)


def _from_kv(kv: KeyValue) -> Cached:
    return Cached.from_kv(kv)


def _normalize(kind: Kind, obj: Obj) -> None:
    normalize(schema.kind_schema(kind.group, kind.stored_version, kind.kind), obj)


def _written(key: str, obj: Obj, kv: KeyValue) -> Cached:
    """The object just stored, with its new resourceVersion, without decoding it again."""
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return Cached(key, obj, kv.mod_revision)


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    user_agent: str = ""
    field_validation: str = "Ignore"
    warnings: list[str] = field(default_factory=list)
    # The caller hands the body over (freshly decoded): the registry need not copy it.
    body_owned: bool = False


@dataclass
class ListPage:
    items: list[Cached]
    revision: int
    continue_: str = ""
    remaining: int | None = None


class Registry:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: tuple[int, int] = NODE_PORT_RANGE) -> None:
        self.store = store
        self.clock = clock
        self.cache = WatchCache(store)
        self.services = ServiceAllocator(service_cidr, node_port_range)
        self._svc_lock = asyncio.Lock()

    async def start(self) -> None:
        await self.cache.start()
        ns_kind = kinds.by_resource("", "namespaces")
        assert ns_kind is not None
        for name in SYSTEM_NAMESPACES:
            if self.cache.get(ns_kind.key(None, name)) is None:
                obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                try:
                    await self.create(ns_kind, None, obj,
                                      WriteOptions(field_manager="kubeling-apiserver"))
                    log.info("created namespace %s", name)
                except errors.StatusError as exc:
                    if exc.code != 409:
                        raise
        svc_kind = kinds.by_resource("", "services")
        assert svc_kind is not None
        if self.cache.get(svc_kind.key("default", "kubernetes")) is None:
            # Its target port is the API server's, set by reconcile_master_endpoints.
            svc = master.service(self.services.first_ip, 6443)
            try:
                await self.create(svc_kind, "default", svc,
                                  WriteOptions(field_manager="kubeling-apiserver"))
                log.info("created service default/kubernetes at %s", self.services.first_ip)
            except errors.StatusError as exc:
                if exc.code != 409:
                    raise

    async def reconcile_master_endpoints(self, ip: str, port: int) -> None:
        """Point the ``kubernetes`` Service (port 443, ``https``), the Endpoints and the
        EndpointSlice ``default/kubernetes`` at the API server listening on ``ip:port``.
        Idempotent: call it whenever the server (re)starts listening."""
        await master.MasterEndpoints(self, WriteOptions(field_manager="kubeling-apiserver")) \
            .reconcile(self.services.first_ip, ip, port)
        log.info("service default/kubernetes leads to %s:%d", ip, port)

    async def stop(self) -> None:
        await self.cache.stop()

    # ----- reads -----------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str,
                  resource_version: str = "") -> Cached:
        if resource_version in ("", None):
            await self.cache.sync()
        elif resource_version != "0":
            await self._wait_rv(resource_version)
        c = self.cache.get(kind.key(namespace, name))
        if c is None:
            raise errors.not_found(kind.resource, name, kind.group)
        return c

    async def _wait_rv(self, resource_version: str) -> int:
        try:
            rv = int(resource_version)
        except ValueError:
            raise errors.bad_request(
                f"invalid resource version {resource_version!r}") from None
        try:
            await self.cache.wait_for(rv)
        except TimeoutError:
            raise errors.timeout(
                f"Too large resource version: {rv}, current: {self.cache.revision}") from None
        return rv

    def predicate(self, kind: Kind, opts: ListOptions) -> Callable[[Obj], bool] | None:
        ls = selectors.parse_label_selector(opts.label_selector) if opts.label_selector else None
        fs = fields.parse_field_selector(opts.field_selector) if opts.field_selector else None
        if fs is not None:
            fs = fields.check_field_selector(kind, fs)
        if ls is not None and ls.empty:
            ls = None
        if ls is None and fs is None:
            return None

        def match(obj: Obj) -> bool:
            if ls is not None and not ls.matches((obj.get("metadata") or {}).get("labels")):
                return False
            if fs is None:
                return True
            if kind.storage_of:
                obj = conversion.from_storage(kind, obj, kind.preferred_version)
            return fs.matches(fields.selectable_fields(kind, obj))

        return match

    async def list(self, kind: Kind, namespace: str | None, opts: ListOptions) -> ListPage:
        pred = self.predicate(kind, opts)
        prefix = kind.key_prefix(namespace)
        rp = kind.key_prefix()
        start_key = ""
        if opts.continue_:
            if opts.resource_version not in ("", None):
                raise errors.bad_request(
                    "specifying resource version is not allowed when using continue")
            rv, start = decode_continue(opts.continue_)
            start_key = prefix + start
        elif opts.resource_version in ("", None):
            if opts.resource_version_match:
                raise errors.bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided")
            await self.cache.sync()
            rv = self.cache.revision
        elif opts.resource_version == "0":
            rv = self.cache.revision
        else:
            match = opts.resource_version_match
            if match == "Exact":
                try:
                    rv = int(opts.resource_version)
                except ValueError:
                    raise errors.bad_request(
                        f"invalid resource version {opts.resource_version!r}") from None
            elif match in ("", "NotOlderThan"):
                await self._wait_rv(opts.resource_version)
                rv = self.cache.revision
            else:
                raise errors.bad_request(
                    f"invalid resourceVersionMatch {match!r}: supported values: "
                    "\"Exact\", \"NotOlderThan\"")
        limit = max(0, opts.limit)
        if self.cache.last_change(rp) <= rv <= self.cache.revision:
            return self._list_cache(rp, prefix, start_key, rv, limit, pred)
        return await self._list_store(prefix, start_key, rv, limit, pred)

    def _list_cache(self, rp: str, prefix: str, start_key: str, rv: int, limit: int,
                    pred: Callable[[Obj], bool] | None) -> ListPage:
        candidates = self.cache.list(rp, prefix, start_key)
        if pred is not None:
            if limit:
                items: list[Cached] = []
                last_seen = -1
                for i, c in enumerate(candidates):
                    if pred(c.obj):
                        if len(items) == limit:
                            last_seen = i
                            break
                        items.append(c)
                if last_seen >= 0:
                    return ListPage(items, rv, self._token(rv, prefix, items[-1].key))
                return ListPage(items, rv)
            return ListPage([c for c in candidates if pred(c.obj)], rv)
        if limit and len(candidates) > limit:
            items = candidates[:limit]
            return ListPage(items, rv, self._token(rv, prefix, items[-1].key),
                            len(candidates) - limit)
        return ListPage(candidates, rv)

    @staticmethod
    def _token(rv: int, prefix: str, last_key: str) -> str:
        return encode_continue(rv, last_key[len(prefix):] + "\x00")

    async def _list_store(self, prefix: str, start_key: str, rv: int, limit: int,
                          pred: Callable[[Obj], bool] | None) -> ListPage:
        items: list[Cached] = []
        key = start_key
        while True:
            try:
                res = await self.store.list(prefix, revision=rv, limit=limit or 0, start_key=key)
            except CompactedError as exc:
                if not start_key:
                    raise errors.resource_expired(exc.requested, exc.compacted) from None
                raise errors.StatusError(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use "
                    "the continue token in this response to retrieve the remainder of the "
                    "results. Continuing with the provided token results in an inconsistent "
                    "list - objects that were created, modified, or deleted between the time "
                    "the first chunk was returned and now may show up in the list.",
                ) from None
            except FutureRevisionError as exc:
                raise errors.timeout(
                    f"Too large resource version: {exc.requested}, current: {exc.current}"
                ) from None
            for kv in res.kvs:
                c = _from_kv(kv)
                if pred is None or pred(c.obj):
                    items.append(c)
                    if limit and len(items) == limit:
                        break
            if limit and len(items) == limit:
                last = items[-1].key
                more = res.more or res.kvs[-1].key != last
                if more:
                    remaining = res.remaining if pred is None else None
                    return ListPage(items, rv, self._token(rv, prefix, last), remaining)
                return ListPage(items, rv)
            if not res.more or not res.kvs:
                return ListPage(items, rv)
            key = res.kvs[-1].key + "\x00"

    # ----- writes ----------------------------------------------------------------

    def _check_target(self, kind: Kind, namespace: str | None, obj: Obj, version: str,
                      name: str | None = None, *, owned: bool = False) -> Obj:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        av = obj.get("apiVersion")
        kd = obj.get("kind")
        expected_av = kinds.api_version(kind.group, version)
        if kd is not None and kd != kind.kind:
            raise errors.bad_request(
                f"the kind in the data ({kd}) does not match the expected kind ({kind.kind})"
                if av in (None, expected_av) else
                f"the API version in the data ({av}) does not match the expected API version "
                f"({expected_av})")
        if av is not None and av != expected_av:
            raise errors.bad_request(
                f"the API version in the data ({av}) does not match the expected API version "
                f"({expected_av})")
        if not owned:
            obj = json_copy(obj)
        obj["apiVersion"] = expected_av
        obj["kind"] = kind.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if kind.namespaced:
            ns = meta.get("namespace")
            if ns and namespace and ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request")
            if namespace:
                meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the "
                    f"URL ({name})")
            meta["name"] = name
        return obj

    async def _admit_namespace(self, kind: Kind, namespace: str | None, name: str = "") -> None:
        if not kind.namespaced or not namespace:
            return
        ns_kind = kinds.by_resource("", "namespaces")
        assert ns_kind is not None
        key = ns_kind.key(None, namespace)
        c = self.cache.get(key)
        if c is None:
            await self.cache.sync()
            c = self.cache.get(key)
        if c is None:
            raise errors.not_found("namespaces", namespace)
        if (c.obj.get("status") or {}).get("phase") == "Terminating" or \
                c.obj["metadata"].get("deletionTimestamp"):
            resource = kind.qualified_resource
            named = f"{resource} {orjson.dumps(name).decode()}" if name else resource
            raise errors.StatusError(
                403, "Forbidden",
                f"{named} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
                name=name or None, kind=kind.resource, group=kind.group,
                causes=[{"reason": "NamespaceTerminating",
                         "message": f"namespace {namespace} is being terminated",
                         "field": "metadata.namespace"}],
            )

    def _in_storage_version(self, kind: Kind, obj: Obj, version: str) -> Obj:
        return conversion.to_storage(kind, obj, version)

    def _raise_invalid(self, kind: Kind, obj: Obj, causes: Sequence[errors.Cause]) -> None:
        if causes:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.invalid(kind.kind, name, [*causes], kind.group)

    async def create(self, kind: Kind, namespace: str | None, obj: Obj,
                     opts: WriteOptions | None = None, *, version: str = "") -> Cached:
        if kind.kind == "Service" and not kind.group:
            async with self._svc_lock:
                try:
                    return await self._create(kind, namespace, obj, opts, version=version)
                finally:
                    self.services.settle()
        return await self._create(kind, namespace, obj, opts, version=version)

    def _services(self) -> builtins.list[Obj]:
        svc = kinds.by_resource("", "services")
        assert svc is not None
        return [c.obj for c in self.cache.list(svc.key_prefix(), svc.key_prefix())]

    async def _create(self, kind: Kind, namespace: str | None, obj: Obj,
                      opts: WriteOptions | None = None, *, version: str = "") -> Cached:
        opts = opts or WriteOptions()
        version = version or kind.preferred_version
        obj = self._check_target(kind, namespace, obj, version, owned=opts.body_owned)
        obj = managed.check_fields(kind, version, obj, opts)
        obj = self._in_storage_version(kind, obj, version)
        kind = kinds.storage_kind(kind)
        meta = obj["metadata"]
        apply_defaults(kind, obj)
        _normalize(kind, obj)
        await self._admit_namespace(kind, meta.get("namespace"), meta.get("name") or "")
        generated = not meta.get("name") and bool(meta.get("generateName"))
        for attempt in range(8):
            if generated:
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice(_NAME_CHARS) for _ in range(5))
            self._prepare_new(kind, obj)
            if kind.kind == "Service" and not kind.group:
                await self.cache.sync()
                self.services.allocate(obj, self._services())
            self._raise_invalid(kind, obj, validate_create(kind, obj))
            managed.on_create(kind, obj, opts, now_rfc3339(self.clock))
            key = kind.key(meta.get("namespace"), meta["name"])
            if opts.dry_run:
                if self.cache.get(key) is not None:
                    raise errors.already_exists(kind.resource, meta["name"], kind.group)
                return Cached(key, obj, 0)
            value = _encode(obj)
            self.cache.expect(key, value, obj)
            try:
                kv = await self.store.create(key, value)
            except KeyExistsError:
                self.cache.unexpect(key, value)
                if generated and attempt < 7:
                    continue
                raise errors.already_exists(kind.resource, meta["name"], kind.group) from None
            except BaseException:
                self.cache.unexpect(key, value)
                raise
            log.debug("created %s %s", kind.resource, key)
            return _written(key, obj, kv)
        raise AssertionError("unreachable")

    def _prepare_new(self, kind: Kind, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion",
                  "selfLink"):
            meta.pop(f, None)
        meta.pop("generation", None)
        prepare_for_create(kind, obj)
        hook = _AFTER_UID.get((kind.group, kind.kind))
        if hook is not None:
            hook(obj)

    async def update(self, kind: Kind, namespace: str | None, name: str, obj: Obj,
                     opts: WriteOptions | None = None, *, version: str = "",
                     subresource: str = "") -> tuple[Cached, bool]:
        """Replace an object (PUT). Returns (object, created)."""
        opts = opts or WriteOptions()
        version = version or kind.preferred_version
        obj = self._check_target(kind, namespace, obj, version, name, owned=opts.body_owned)
        obj = managed.check_fields(kind, version, obj, opts)
        new_in = self._in_storage_version(kind, obj, version)
        kind = kinds.storage_kind(kind)
        apply_defaults(kind, new_in)
        want_rv = new_in["metadata"].get("resourceVersion") or ""
        return await self._write(kind, namespace, name, lambda _old: new_in, opts,
                                 subresource=subresource, precondition_rv=want_rv,
                                 version=version)

    async def _write(self, kind: Kind, namespace: str | None, name: str,
                     mutate: Callable[[Obj | None], Obj], opts: WriteOptions, *,
                     subresource: str = "", precondition_rv: str = "", version: str = "",
                     create_ok: bool | None = None) -> tuple[Cached, bool]:
        """The guaranteed-update loop shared by update and patch."""
        if kind.kind == "Service" and not kind.group and subresource == "":
            async with self._svc_lock:
                try:
                    return await self._write_once(kind, namespace, name, mutate, opts,
                                                  subresource=subresource,
                                                  precondition_rv=precondition_rv,
                                                  version=version, create_ok=create_ok)
                finally:
                    self.services.settle()
        return await self._write_once(kind, namespace, name, mutate, opts,
                                      subresource=subresource, precondition_rv=precondition_rv,
                                      version=version, create_ok=create_ok)

    async def _write_once(self, kind: Kind, namespace: str | None, name: str,
                          mutate: Callable[[Obj | None], Obj], opts: WriteOptions, *,
                          subresource: str = "", precondition_rv: str = "", version: str = "",
                          create_ok: bool | None = None) -> tuple[Cached, bool]:
        key = kind.key(namespace, name)
        st = strategy_for(kind)
        allow_create = st.allow_create_on_update if create_ok is None else create_ok
        for _ in range(50):
            current = await self.store.get(key)
            if current is None:
                if not allow_create or subresource:
                    raise errors.not_found(kind.resource, name, kind.group)
                new = mutate(None)
                new["metadata"].pop("resourceVersion", None)
                if precondition_rv:
                    raise errors.not_found(kind.resource, name, kind.group)
                created = await self.create(kind, namespace, new, opts,
                                            version=kind.stored_version)
                return created, True
            old = _from_kv(current).obj
            new = mutate(old)
            _normalize(kind, new)
            new_rv = new["metadata"].get("resourceVersion") or ""
            if not new_rv:
                # An unconditional update is made against what is stored now.
                new["metadata"]["resourceVersion"] = str(current.mod_revision)
            if precondition_rv and precondition_rv != str(current.mod_revision):
                raise errors.stale_conflict(kind.resource, name, kind.group)
            if new_rv and new_rv != str(current.mod_revision):
                raise errors.stale_conflict(kind.resource, name, kind.group)
            if subresource == "status":
                new = prepare_for_status_update(kind, new, old)
            new = self._prepare_update(kind, new, old, subresource)
            if kind.kind == "Service" and not kind.group and subresource == "":
                await self.cache.sync()
                self.services.allocate(new, self._services(), old)
            if subresource == "status":
                causes = validate_status_update(kind, new, old)
            elif subresource == "binding":
                causes = []  # the binding itself was checked by its handler
            else:
                causes = validate_update(kind, new, old)
            self._raise_invalid(kind, new, causes)
            managed.on_update(kind, old, new, opts, now_rfc3339(self.clock),
                              subresource=subresource)
            if self._finalized(new):
                if opts.dry_run:
                    return Cached(key, new, current.mod_revision), False
                return await self._delete_now(kind, key, new, current.mod_revision), False
            new["metadata"].pop("resourceVersion", None)
            encoded = _encode(new)
            if encoded == current.value:
                return _from_kv(current), False
            if opts.dry_run:
                new["metadata"]["resourceVersion"] = str(current.mod_revision)
                return Cached(key, new, current.mod_revision), False
            self.cache.expect(key, encoded, new)
            try:
                kv = await self.store.update(key, encoded,
                                             expected_mod_revision=current.mod_revision)
            except (RevisionMismatchError, KeyNotFoundError):
                self.cache.unexpect(key, encoded)
                continue
            except BaseException:
                self.cache.unexpect(key, encoded)
                raise
            return _written(key, new, kv), False
        raise errors.conflict(kind.resource, name, kind.group,
                              "too many concurrent updates; please try again")

    def _prepare_update(self, kind: Kind, new: Obj, old: Obj, subresource: str) -> Obj:
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        # System fields come from the stored object.
        for f in ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation"):
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        if not meta.get("uid"):
            meta["uid"] = old_meta.get("uid")
        meta.pop("selfLink", None)
        if subresource == "":
            prepare_for_update(kind, new, old)
        return new

    @staticmethod
    def _finalized(obj: Obj) -> bool:
        meta = obj["metadata"]
        return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") and \
            not (obj.get("kind") == "Namespace" and (obj.get("spec") or {}).get("finalizers")) \
            and not (obj.get("kind") == "Pod" and meta.get("deletionGracePeriodSeconds"))

    async def _delete_now(self, kind: Kind, key: str, last: Obj, expected: int) -> Cached:
        try:
            prev, rev = await self.store.delete(key, expected_mod_revision=expected)
        except KeyNotFoundError:
            raise errors.not_found(kind.resource, last["metadata"]["name"], kind.group) from None
        except RevisionMismatchError:
            raise errors.stale_conflict(kind.resource, last["metadata"]["name"],
                                        kind.group) from None
        log.debug("deleted %s", key)
        return Cached(key, _from_kv(prev).obj, rev)

    async def mutate(self, kind: Kind, namespace: str | None, name: str,
                     fn: Callable[[Obj], Obj], opts: WriteOptions | None = None, *,
                     subresource: str = "", version: str = "",
                     create: Callable[[], Obj] | None = None) -> tuple[Cached, bool]:
        """Read-modify-write with a function of the stored object (patches, scale, binding).

        ``fn`` gets a private copy of the object in ``version`` and returns the new one
        in that version. With ``create``, a missing object is created from ``create()``.
        """
        wopts = opts or WriteOptions()
        version = version or kind.preferred_version

        def step(old: Obj | None) -> Obj:
            if old is None:
                assert create is not None
                return create()
            mine = conversion.from_storage(kind, json_copy(old), version)
            out = fn(mine)
            # ``fn`` worked on a private copy: what it returns is ours.
            out = self._check_target(kind, namespace, out, version, name, owned=True)
            out = managed.check_fields(kind, version, out, wopts)
            out = self._in_storage_version(kind, out, version)
            apply_defaults(skind, out)
            return out

        skind = kinds.storage_kind(kind)

        if create is not None:
            key = kind.key(namespace, name)
            if await self.store.get(key) is None:
                obj = create()
                return await self.create(kind, namespace, obj, wopts, version=version), True
        return await self._write(skind, namespace, name, step, wopts, subresource=subresource,
                                 version=version, create_ok=False)

    # ----- delete ----------------------------------------------------------------

    async def delete(self, kind: Kind, namespace: str | None, name: str,
                     options: Obj | None = None, opts: WriteOptions | None = None,
                     ) -> tuple[Cached, bool]:
        """Delete (or start deleting) an object. Returns (object, gone_now)."""
        options = options or {}
        opts = opts or WriteOptions()
        key = kind.key(namespace, name)
        if kind.kind == "Namespace" and name in UNDELETABLE_NAMESPACES:
            raise errors.forbidden(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        for _ in range(50):
            current = await self.store.get(key)
            if current is None:
                raise errors.not_found(kind.resource, name, kind.group)
            obj = _from_kv(current).obj
            meta = obj["metadata"]
            self._check_preconditions(kind, name, obj, options.get("preconditions") or {})
            policy = options.get("propagationPolicy")
            if policy is None and options.get("orphanDependents") is not None:
                policy = "Orphan" if options["orphanDependents"] else "Background"
            if policy not in (None, "Orphan", "Background", "Foreground"):
                raise errors.invalid("DeleteOptions", "", [{
                    "reason": "FieldValueNotSupported",
                    "message": f'Unsupported value: "{policy}": supported values: '
                               '"Foreground", "Background", "Orphan"',
                    "field": "propagationPolicy"}])
            grace = self._grace_period(kind, obj, options)
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            pending_ns = kind.kind == "Namespace"
            graceful = grace is not None and grace > 0
            if not finalizers and not pending_ns and not graceful:
                if opts.dry_run:
                    return Cached(key, obj, current.mod_revision), True
                try:
                    prev, rev = await self.store.delete(
                        key, expected_mod_revision=current.mod_revision)
                except (RevisionMismatchError, KeyNotFoundError):
                    continue
                return Cached(key, _from_kv(prev).obj, rev), True
            # Graceful or finalized deletion: mark the object and keep it.
            new = json_copy(obj)
            nmeta = new["metadata"]
            already = bool(nmeta.get("deletionTimestamp"))
            if already and not graceful:
                if finalizers == list(meta.get("finalizers") or []):
                    return Cached(key, obj, current.mod_revision), False
            nmeta["finalizers"] = finalizers
            if not nmeta["finalizers"]:
                nmeta.pop("finalizers")
            if graceful:
                assert grace is not None
                old_grace = nmeta.get("deletionGracePeriodSeconds")
                if already and old_grace is not None and old_grace <= grace:
                    return Cached(key, obj, current.mod_revision), False
                nmeta["deletionGracePeriodSeconds"] = grace
                nmeta["deletionTimestamp"] = _rfc3339_at(self.clock() + grace)
            else:
                if not already:
                    nmeta["deletionTimestamp"] = now_rfc3339(self.clock)
                nmeta["deletionGracePeriodSeconds"] = 0
            if pending_ns:
                new.setdefault("status", {})["phase"] = "Terminating"
            nmeta.pop("resourceVersion", None)
            if opts.dry_run:
                return Cached(key, new, current.mod_revision), False
            try:
                kv = await self.store.update(key, _encode(new),
                                             expected_mod_revision=current.mod_revision)
            except (RevisionMismatchError, KeyNotFoundError):
                continue
            return _from_kv(kv), False
        raise errors.conflict(kind.resource, name, kind.group,
                              "too many concurrent updates; please try again")

    def _check_preconditions(self, kind: Kind, name: str, obj: Obj, pre: Obj) -> None:
        meta = obj["metadata"]
        uid = pre.get("uid")
        if uid and uid != meta.get("uid"):
            raise errors.conflict(
                kind.resource, name, kind.group,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{meta.get('uid')}")
        rv = pre.get("resourceVersion")
        if rv and rv != meta.get("resourceVersion"):
            raise errors.conflict(
                kind.resource, name, kind.group,
                f"Precondition failed: ResourceVersion in precondition: {rv}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}")

    @staticmethod
    def _grace_period(kind: Kind, obj: Obj, options: Obj) -> int | None:
        """Seconds of graceful deletion, or None when the kind deletes at once."""
        if kind.kind != "Pod":
            return None
        requested = options.get("gracePeriodSeconds")
        spec = obj.get("spec") or {}
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        requested = int(requested)
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        return max(0, requested) if requested > 0 else 0


def _job_after_uid(obj: Obj) -> None:
    prepare_job_for_create(obj, obj["metadata"]["uid"])


_AFTER_UID: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("batch", "Job"): _job_after_uid,
}
