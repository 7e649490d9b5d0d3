"""When a schedule fires: cron expressions (``croniter``: five fields, read in an IANA time zone,
daylight saving time included) and one-time ``at`` times. Every error is a ``ValueError`` whose
message says what is wrong, for a 400 naming the field."""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime

from croniter import croniter

#: ``@hourly`` and its kin, as cron knows them (``@reboot`` means nothing here).
NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: An ISO 8601 time, to the second or finer, with an offset or without one (then read in the
#: schedule's time zone): ``2026-12-24T18:00:00+01:00``, ``2026-12-24T18:00``, ``...Z``.
AT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zones this machine knows."""
    return frozenset(zoneinfo.available_timezones())


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The time zone ``name`` (``Europe/Paris``, ``UTC``); ``ValueError`` for one it does not know."""
    if name not in time_zones():
        raise ValueError(f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'.")
    return zoneinfo.ZoneInfo(name)


def cron_next(cron: str, time_zone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` names, read in ``time_zone`` (a time
    that daylight saving time skips fires at the first minute that exists); in UTC."""
    start = after.astimezone(zone(time_zone))
    return croniter(cron, start).get_next(datetime).astimezone(UTC)


def cron_checked(cron: str, time_zone: str, now: datetime) -> datetime:
    """``cron`` checked (five fields: minute, hour, day of month, month, day of week; or one of
    ``NICKNAMES``), and its first time after ``now``; ``ValueError`` saying what is wrong."""
    fields = cron.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in NICKNAMES)) or cron != cron.strip():
        raise ValueError("Use five fields (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *'.")
    zone(time_zone)
    if not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a cron expression croniter reads.")
    try:
        return cron_next(cron, time_zone, now)
    except Exception as exc:  # croniter's errors on expressions it parsed: a date that never comes
        raise ValueError(f"{cron!r} names no time that comes: {exc}") from None


def at_parsed(text: str, time_zone: str) -> datetime:
    """``text`` (``AT``) as a time in UTC: without an offset it is read in ``time_zone``."""
    if not re.fullmatch(AT, text):
        raise ValueError("Use an ISO 8601 time such as '2026-12-24T18:00:00+01:00'.")
    try:
        moment = datetime.fromisoformat(text.upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone(time_zone))
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"Not a time: {exc}.") from None
