"""Fire times of a cron expression in a time zone.

croniter parses the expression and walks it in the schedule's zone (``zoneinfo``), so local times
follow the zone's DST rules: a daily ``30 2 * * *`` in Europe/Berlin fires at 03:00 on the spring-
forward day (02:30 does not exist) and once on the fall-back day; an hourly ``0 * * * *`` fires at
both 02:00s of the fall-back night, an hour apart, as the wall clock shows them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from noetl.dsl.schedules import CATCHUP_POLICIES, OVERLAP_POLICIES, cron_problem  # noqa: F401 - one list of policies
from noetl.errors import InputError

MAX_FIRES_PER_WALK = 10_000  # a backfill or a long outage is walked in bounded steps


def check_cron(expr: str, where: str = "--cron") -> str:
    problem = cron_problem(expr)
    if problem:
        raise InputError(f"{where}: {problem}")
    return " ".join(str(expr).split())


def check_zone(name: str, where: str = "--tz") -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{where}: unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from None


def check_choice(value: str, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise InputError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def fire_times(expr: str, zone: str, *, after: datetime, until: datetime,
               limit: int = MAX_FIRES_PER_WALK) -> list[datetime]:
    """Fire times ``t`` with ``after < t <= until``, in UTC, oldest first (at most ``limit``)."""
    walker = croniter(expr, after.astimezone(ZoneInfo(zone)))
    found: list[datetime] = []
    while len(found) < limit:
        try:
            moment = walker.get_next(datetime).astimezone(UTC)
        except CroniterBadDateError:  # stored before expressions that never fire were refused
            break
        if moment > until:
            break
        if moment > after and (not found or moment > found[-1]):
            found.append(moment)
    return found


def utc_text(moment: datetime, timespec: str = "seconds") -> str:
    """The one text form of an instant in the schedule tables (they compare it as text: a "run now"
    instant with microseconds, ``...:01.5+00:00``, sorts after the whole second ``...:01+00:00``)."""
    return moment.astimezone(UTC).isoformat(timespec=timespec)


def parse_instant(text: str, where: str = "time") -> datetime:
    """An ISO 8601 instant; a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not an ISO 8601 time (e.g. 2026-03-29T00:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
