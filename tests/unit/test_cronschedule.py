"""Cron schedules: the robfig/cron v3 standard language and the next firing time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.controllers.cronschedule import CronError, parse, parse_duration


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(t: float | None) -> str:
    assert t is not None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("* * * * *", "2024-01-01T10:00:30", "2024-01-01T10:01"),
    ("* * * * *", "2024-01-01T10:00:00", "2024-01-01T10:01"),
    ("*/15 * * * *", "2024-01-01T10:01:00", "2024-01-01T10:15"),
    ("5/20 * * * *", "2024-01-01T10:26:00", "2024-01-01T10:45"),
    ("0 9-17/4 * * *", "2024-01-01T13:00:00", "2024-01-01T17:00"),
    ("30 2 * * *", "2024-01-01T03:00:00", "2024-01-02T02:30"),
    ("0 0 1,15 * *", "2024-01-02T00:00:00", "2024-01-15T00:00"),
    ("0 0 * * MON", "2024-01-01T00:00:00", "2024-01-08T00:00"),  # 2024-01-01 is a Monday
    ("0 0 * * sat,sun", "2024-01-01T00:00:00", "2024-01-06T00:00"),
    ("0 0 1 FEB-MAR *", "2024-03-05T00:00:00", "2025-02-01T00:00"),
    ("0 0 29 2 *", "2024-03-01T00:00:00", "2028-02-29T00:00"),
    ("0 0 31 * *", "2024-04-01T00:00:00", "2024-05-31T00:00"),
    # both day fields restricted: either matches (the 13th, or any Friday)
    ("0 0 13 * 5", "2024-01-01T00:00:00", "2024-01-05T00:00"),
    ("0 0 13 * 5", "2024-01-12T00:00:00", "2024-01-13T00:00"),
    # one of them is a star: both must match
    ("0 0 * * 5", "2024-01-05T00:00:00", "2024-01-12T00:00"),
    ("0 0 ? * 5", "2024-01-05T00:00:00", "2024-01-12T00:00"),
    ("@hourly", "2024-01-01T10:59:59", "2024-01-01T11:00"),
    ("@daily", "2024-01-01T10:00:00", "2024-01-02T00:00"),
    ("@midnight", "2024-01-01T10:00:00", "2024-01-02T00:00"),
    ("@weekly", "2024-01-01T10:00:00", "2024-01-07T00:00"),
    ("@monthly", "2024-01-01T10:00:00", "2024-02-01T00:00"),
    ("@yearly", "2024-01-01T10:00:00", "2025-01-01T00:00"),
    ("@annually", "2024-01-01T10:00:00", "2025-01-01T00:00"),
])
def test_next_firing(spec: str, after: str, expected: str) -> None:
    assert iso(parse(spec).next(ts(after))) == expected


def test_every_duration() -> None:
    s = parse("@every 1h30m")
    assert s.next(ts("2024-01-01T10:00:00")) == ts("2024-01-01T11:30:00")
    assert parse_duration("1.5h") == 5400
    assert parse_duration("90s") == 90


def test_time_zone_prefix_and_field() -> None:
    # 06:00 in Tokyo is 21:00 UTC the day before
    assert iso(parse("CRON_TZ=Asia/Tokyo 0 6 * * *").next(ts("2024-01-01T00:00:00"))) \
        == "2024-01-01T21:00"
    assert iso(parse("0 6 * * *", time_zone="Asia/Tokyo").next(ts("2024-01-01T00:00:00"))) \
        == "2024-01-01T21:00"
    # New York in summer is UTC-4, in winter UTC-5
    ny = parse("0 12 * * *", time_zone="America/New_York")
    assert iso(ny.next(ts("2024-07-01T00:00:00"))) == "2024-07-01T16:00"
    assert iso(ny.next(ts("2024-12-01T00:00:00"))) == "2024-12-01T17:00"


def test_a_skipped_wall_time_is_not_a_firing() -> None:
    # 02:30 does not exist in New York on 2024-03-10 (clocks jump from 02:00 to 03:00)
    s = parse("30 2 * * *", time_zone="America/New_York")
    assert iso(s.next(ts("2024-03-10T05:00:00"))) == "2024-03-11T06:30"


@pytest.mark.parametrize(("spec", "message"), [
    ("* * * *", "expected exactly 5 fields, found 4"),
    ("* * * * * *", "expected exactly 5 fields, found 6"),
    ("60 * * * *", "above maximum (59)"),
    ("* 24 * * *", "above maximum (23)"),
    ("* * 0 * *", "below minimum (1)"),
    ("* * * 13 *", "above maximum (12)"),
    ("* * * * 7", "above maximum (6)"),
    ("5-1 * * * *", "beyond end of range"),
    ("*/0 * * * *", "step of range should be a positive number"),
    ("x * * * *", "failed to parse int from x"),
    ("1,,2 * * * *", "empty value"),
    ("@fortnightly", "unrecognized descriptor"),
    ("CRON_TZ=Nowhere/Land * * * * *", "unknown time zone"),
    ("@every 5 parsecs", "invalid duration"),
    ("", "empty spec string"),
])
def test_errors(spec: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)):
        parse(spec)


@given(minute=st.integers(0, 59), hour=st.integers(0, 23),
       after=st.integers(1_600_000_000, 1_900_000_000))
def test_daily_schedule_fires_within_a_day_at_its_time(minute: int, hour: int,
                                                       after: int) -> None:
    nxt = parse(f"{minute} {hour} * * *").next(after)
    assert nxt is not None
    assert after < nxt <= after + 86400
    t = datetime.fromtimestamp(nxt, UTC)
    assert (t.hour, t.minute, t.second) == (hour, minute, 0)
