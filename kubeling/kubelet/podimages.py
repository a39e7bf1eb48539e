"""Image pulls per ``imagePullPolicy``, with the kubelet's events and pull back-off."""

from __future__ import annotations

from kubeling.client.events import NORMAL, WARNING
from kubeling.client.interface import Obj
from kubeling.kubelet.backoff import Backoff
from kubeling.kubelet.context import KubeletContext
from kubeling.kubelet.pullsecrets import credentials
from kubeling.runtime.protocol import RuntimeFailure

REGISTRY_UNAVAILABLE = "RegistryUnavailable"  # a runtime's reason: the registry was unreachable


class StartError(Exception):
    """A container could not be started this sync: ``reason`` becomes its waiting reason."""

    def __init__(self, reason: str, message: str, *, retry_in: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_in = retry_in


def pull_policy(container: Obj) -> str:
    policy = container.get("imagePullPolicy")
    if policy:
        return str(policy)
    image = str(container.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def go_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.3f}s"


class ImagePuller:
    def __init__(self, ctx: KubeletContext) -> None:
        self.ctx = ctx
        o = ctx.options
        self.backoff = Backoff(ctx.clock, initial=o.backoff_initial, maximum=o.backoff_max,
                               reset=o.backoff_reset)
        self._failed_at: dict[str, float] = {}

    async def ensure(self, pod: Obj, container: Obj) -> str:
        """Make the container's image present; its image ref. Raises StartError."""
        ctx, image = self.ctx, str(container.get("image", ""))
        policy = pull_policy(container)
        info = await ctx.runtime.image_status(image)
        if info is not None and policy != "Always":
            ctx.recorder.event(pod, NORMAL, "Pulled",
                               f"Container image \"{image}\" already present on machine")
            return info.id
        if info is None and policy == "Never":
            message = f"Container image \"{image}\" is not present with pull policy of Never"
            ctx.recorder.event(pod, WARNING, "ErrImageNeverPull", message)
            raise StartError("ErrImageNeverPull", message)
        key = f"{pod['metadata']['uid']}/{image}"
        failed = self._failed_at.get(key)
        if failed is not None and self.backoff.in_backoff(key, failed):
            message = f"Back-off pulling image \"{image}\""
            ctx.recorder.event(pod, NORMAL, "BackOff", message)
            raise StartError("ImagePullBackOff", message,
                             retry_in=self.backoff.remaining(key, failed))
        ctx.recorder.event(pod, NORMAL, "Pulling", f"Pulling image \"{image}\"")
        start = ctx.clock.monotonic()
        try:
            ref = await ctx.runtime.pull_image(
                image, auth=credentials(pod, image, ctx.objects))
        except RuntimeFailure as exc:
            if exc.reason == REGISTRY_UNAVAILABLE and info is not None:
                # Always, but the registry cannot be reached: the copy on the machine
                # (imported, or pulled before) runs rather than nothing.
                ctx.recorder.event(pod, WARNING, "Failed",
                                   f"Failed to pull image \"{image}\": {exc.message}; using "
                                   f"the image present on the machine")
                return info.id
            now = ctx.clock.now()
            self._failed_at[key] = now
            delay = self.backoff.next(key, now)
            ctx.recorder.event(pod, WARNING, "Failed",
                               f"Failed to pull image \"{image}\": {exc.message}")
            ctx.recorder.event(pod, WARNING, "Failed", "Error: ErrImagePull")
            # Look again halfway through the back-off, as the kubelet's own syncs do: the
            # waiting reason then turns to ImagePullBackOff until the next attempt.
            raise StartError("ErrImagePull", exc.message, retry_in=delay / 2) from exc
        self._failed_at.pop(key, None)
        took = go_seconds(ctx.clock.monotonic() - start)
        info = await ctx.runtime.image_status(image)
        size = info.size if info is not None else 0
        ctx.recorder.event(pod, NORMAL, "Pulled",
                           f"Successfully pulled image \"{image}\" in {took} ({took} including "
                           f"waiting). Image size: {size} bytes.")
        return ref

    def forget(self, uid: str) -> None:
        self.backoff.forget(f"{uid}/")
        for key in [k for k in self._failed_at if k.startswith(f"{uid}/")]:
            del self._failed_at[key]
