"""Per-key exponential back-off, as the kubelet paces container restarts and image pulls.

A failed container is restarted after 10 s, then 20 s, 40 s... up to 5 min
(Kubernetes' ``flowcontrol.Backoff``). The delay is measured from the moment
the container finished, and it starts over once ``reset`` seconds have passed
since the back-off was last extended. Times are wall-clock seconds from the
agent's ``Clock`` (container finish times are wall-clock too).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeling.utils.clock import Clock


@dataclass
class _Entry:
    delay: float
    updated: float  # when the delay was last set (clock.now())


class Backoff:
    def __init__(self, clock: Clock, *, initial: float = 10.0, maximum: float = 300.0,
                 reset: float = 600.0) -> None:
        self.clock = clock
        self.initial = initial
        self.maximum = maximum
        self.reset = reset
        self._entries: dict[str, _Entry] = {}

    def _live(self, key: str, at: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and at - entry.updated > self.reset:
            return None
        return entry

    def delay(self, key: str) -> float:
        """The current delay for ``key`` (0 when it has none)."""
        entry = self._live(key, self.clock.now())
        return entry.delay if entry else 0.0

    def in_backoff(self, key: str, since: float) -> bool:
        """Whether an event at ``since`` (e.g. a container's finish) is still inside the
        current back-off window of ``key``."""
        entry = self._live(key, self.clock.now())
        return entry is not None and self.clock.now() - since < entry.delay

    def remaining(self, key: str, since: float) -> float:
        """Seconds until the window that started at ``since`` ends (0 when over)."""
        entry = self._live(key, self.clock.now())
        if entry is None:
            return 0.0
        return max(0.0, since + entry.delay - self.clock.now())

    def next(self, key: str, at: float) -> float:
        """Extend the back-off of ``key`` for a failure at ``at``; the new delay."""
        now = self.clock.now()
        entry = self._entries.get(key)
        if entry is None or at - entry.updated > self.reset:
            entry = _Entry(self.initial, now)
        else:
            entry = _Entry(min(entry.delay * 2, self.maximum), now)
        self._entries[key] = entry
        return entry.delay

    def forget(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (a pod that is gone)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        now = self.clock.now()
        for key in [k for k, e in self._entries.items() if now - e.updated > 2 * self.reset]:
            del self._entries[key]


def go_duration(seconds: float) -> str:
    """A duration as Go prints it in kubelet messages: ``10s``, ``1m20s``, ``5m0s``."""
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"
