"""Cron schedules as CronJobs write them, and the next time each one fires.

Kubernetes parses ``spec.schedule`` with robfig/cron v3's standard parser, so
this accepts the same language: five fields (minute, hour, day of month,
month, day of week) made of ``*``/``?``, numbers, ``a-b`` ranges, ``/step``
steps (``n/step`` meaning ``n-max/step``) and comma lists; month and weekday
names (``JAN``, ``mon``; weekdays 0-6 with 0 for Sunday); the descriptors
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``,
``@hourly`` and ``@every <duration>``; and a ``CRON_TZ=<zone>`` (or ``TZ=``)
prefix. When both day fields are restricted a day matches either of them;
when one is ``*`` both must match, as cron has always done.

Times are epoch seconds; wall-clock matching happens in the schedule's time
zone (UTC unless one is given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {n: i + 1 for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
WEEKDAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SEARCH_YEARS = 5

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}


class CronError(ValueError):
    """The schedule cannot be parsed; the message says why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (_Field("minute", 0, 59), _Field("hour", 0, 23), _Field("day of month", 1, 31),
           _Field("month", 1, 12, MONTHS), _Field("day of week", 0, 6, WEEKDAYS))


def _number(text: str, f: _Field) -> int:
    if f.names is not None and text.lower() in f.names:
        return f.names[text.lower()]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}")
    return int(text)


def _range(expr: str, f: _Field) -> tuple[set[int], bool]:
    """The values one comma-separated part allows, and whether it was a bare ``*``."""
    range_part, slash, step_part = expr.partition("/")
    star = False
    if range_part in ("*", "?"):
        start, end, star = f.low, f.high, True
    else:
        low_text, dash, high_text = range_part.partition("-")
        start = _number(low_text, f)
        end = _number(high_text, f) if dash else start
        if slash and not dash:
            end = f.high
    step = 1
    if slash:
        if not step_part.isdigit():
            raise CronError(f"failed to parse int from {step_part}")
        step = int(step_part)
        if step == 0:
            raise CronError("step of range should be a positive number")
        if step > 1:
            star = False
    if start < f.low:
        raise CronError(f"beginning of range ({start}) below minimum ({f.low}): {expr}")
    if end > f.high:
        raise CronError(f"end of range ({end}) above maximum ({f.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    return set(range(start, end + 1, step)), star


def _field(text: str, f: _Field) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronError(f"empty value in {f.name} field: {text!r}")
        got, part_star = _range(part, f)
        values |= got
        star = star or part_star
    return frozenset(values), star


def parse_duration(text: str) -> float:
    """Seconds of a Go duration string (``90s``, ``1h30m``, ``1.5h``)."""
    pos = 0
    total = 0.0
    if not text:
        raise CronError("invalid duration \"\"")
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise CronError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; :meth:`next` is the first firing strictly after a time."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool
    weekday_star: bool
    zone: tzinfo = UTC
    every: float = 0.0

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow

    def next(self, after: float) -> float | None:
        """Epoch seconds of the first firing after ``after``; None if none within 5 years."""
        if self.every:
            return float(int(after) + self.every)
        local = datetime.fromtimestamp(int(after), self.zone).replace(tzinfo=None)
        t = local.replace(second=0) + timedelta(minutes=1)
        limit = t.year + SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            at = t.replace(tzinfo=self.zone)
            if at.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != t:
                t += timedelta(minutes=1)  # a wall time skipped by a DST change
                continue
            ts = at.timestamp()
            if ts > after:
                return ts
            t += timedelta(minutes=1)
        return None


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA database); ``""``/``UTC``/``Local`` handled."""
    if name in ("", "UTC", "Etc/UTC"):
        return UTC
    if name == "Local":
        return datetime.now().astimezone().tzinfo or UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


def parse(spec: str, *, time_zone: str | None = None) -> Schedule:
    """Parse a schedule; ``time_zone`` (a CronJob's ``spec.timeZone``) is used when the
    schedule has no ``CRON_TZ=`` prefix of its own."""
    text = spec.strip()
    tz = zone(time_zone or "")
    if text.startswith(("CRON_TZ=", "TZ=")):
        prefix, _, text = text.partition(" ")
        tz = zone(prefix.partition("=")[2])
        text = text.strip()
    if not text:
        raise CronError("empty spec string")
    if text.startswith("@every"):
        seconds = parse_duration(text[len("@every"):].strip())
        return Schedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(),
                        True, True, tz, every=float(max(1, int(seconds))))
    if text.startswith("@"):
        if text.lower() not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = DESCRIPTORS[text.lower()]
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    parsed = [_field(value, f) for value, f in zip(fields, _FIELDS, strict=True)]
    return Schedule(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0],
                    parsed[2][1], parsed[4][1], tz)
