"""`schedules:` in a playbook: cron schedules registered with the playbook's catalog entry.

```yaml
schedules:
  - name: nightly            # optional: defaults to the playbook path (#2, #3 ... for more)
    cron: "0 2 * * *"
    timezone: Europe/Berlin  # optional, UTC
    payload: {full: true}    # optional
    overlap: skip            # skip | queue | allow
    catchup: latest          # none | latest | all
    enabled: true
```
The checks here are the same ones `noetl schedule add` applies (noetl.scheduling.service).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OVERLAP_POLICIES = ("skip", "queue", "allow")
CATCHUP_POLICIES = ("none", "latest", "all")
SCHEDULE_KEYS = frozenset({"name", "cron", "timezone", "tz", "payload", "overlap", "catchup", "enabled"})


# The five fields of a cron expression, each with the values it takes.
CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day of month", "1-31"), ("month", "1-12 or jan-dec"),
               ("weekday", "0-7 or sun-sat"))
CRON_FORM = "five fields: minute hour day-of-month month weekday"


def cron_problem(expr: Any) -> str | None:
    # Imported for a playbook that declares schedules: importing croniter runs `file` on the
    # interpreter (platform.architecture), a process of its own on every first run.
    from croniter import CroniterBadDateError, croniter

    text = " ".join(str(expr or "").split())
    fields = text.split()
    # croniter also reads a sixth field, as seconds: a schedule starting an execution every second.
    if not text or (not text.startswith("@") and len(fields) != 5):
        return f"invalid cron expression {text!r}: {len(fields)} fields, not five ({CRON_FORM})"
    if not croniter.is_valid(text):
        return f"invalid cron expression {text!r}: {_bad_cron_field(fields)}"
    try:
        croniter(text, datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        return f"cron expression {text!r} never fires (a date that does not exist?)"
    return None


def _bad_cron_field(fields: list[str]) -> str:
    """Which field croniter refuses: each is tried alone, the others `*`."""
    from croniter import croniter

    if len(fields) == 5:
        for position, (name, values) in enumerate(CRON_FIELDS):
            alone = ["*"] * 5
            alone[position] = fields[position]
            if not croniter.is_valid(" ".join(alone)):
                return f"the {name} field {fields[position]!r} is not valid ({values}, a list a,b, a range a-b or a step */n)"
    return f"not a cron expression ({CRON_FORM}, or @hourly, @daily, @weekly, @monthly, @yearly)"


def zone_problem(name: Any) -> str | None:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)"
    return None


def choice_problem(value: Any, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"{value!r} is not one of {', '.join(choices)}"


def schedule_problems(entry: Any) -> list[tuple[tuple[Any, ...], str]]:
    """``(key path, message)`` of every problem of one `schedules:` item."""
    if not isinstance(entry, dict):
        return [((), "a schedule must be a mapping with at least `cron`")]
    found: list[tuple[tuple[Any, ...], str]] = []
    checks = [("cron", cron_problem(entry.get("cron")))]
    zone_key = "timezone" if "timezone" in entry else "tz"
    if zone_key in entry:
        checks.append((zone_key, zone_problem(entry[zone_key])))
    for key, choices in (("overlap", OVERLAP_POLICIES), ("catchup", CATCHUP_POLICIES)):
        if key in entry:
            checks.append((key, choice_problem(entry[key], choices)))
    if "payload" in entry and not isinstance(entry["payload"], dict):
        checks.append(("payload", "must be a mapping"))
    found.extend(((key,), f"schedule {key}: {message}") for key, message in checks if message)
    return found
