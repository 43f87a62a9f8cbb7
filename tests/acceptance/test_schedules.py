"""`noetl schedule ...` and `noetl scheduler` as a user runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: reports/daily}
workload: {region: eu}
workflow:
  - step: start
    tool: {kind: python, input: {region: "{{ workload.region }}"}, code: "result = {'region': region}"}
"""


def test_schedule_add_list_pause_resume_backfill_delete(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("catalog", "register", str(playbook)).code == 0
    added = noetl("schedule", "add", "reports/daily", "--cron", "0 6 * * 1-5", "--tz", "Europe/Berlin",
                  "--payload", '{"region": "us"}', "--overlap", "queue", "--catchup", "all", "--json")
    assert added.code == 0, added.stderr
    view = added.json()
    assert (view["name"], view["cron"], view["timezone"], view["overlap"], view["catchup"], view["enabled"]) == (
        "reports/daily", "0 6 * * 1-5", "Europe/Berlin", "queue", "all", True)
    assert view["next_fire"] is not None
    listed = noetl("schedule", "list", "--json").json()
    assert [s["name"] for s in listed] == ["reports/daily"]
    assert "reports/daily" in noetl("schedule", "list").stdout

    paused = noetl("schedule", "pause", "reports/daily", "--json")
    assert paused.code == 0 and paused.json()["enabled"] is False and paused.json()["next_fire"] is None
    assert noetl("schedule", "resume", "reports/daily", "--json").json()["enabled"] is True

    # Mon 30 Mar .. Wed 1 Apr 2026 at 06:00 Berlin (CEST, UTC+2): three fire times.
    backfill = noetl("schedule", "backfill", "reports/daily", "--from", "2026-03-30T00:00:00Z",
                     "--to", "2026-04-01T23:00:00Z", "--json")
    assert backfill.code == 0, backfill.stderr
    rows = backfill.json()
    assert [r["scheduled_for"] for r in rows] == ["2026-03-30T04:00:00+00:00", "2026-03-31T04:00:00+00:00",
                                                  "2026-04-01T04:00:00+00:00"]
    assert {r["status"] for r in rows} == {"completed"}
    first = noetl("status", rows[0]["execution_id"], "--json").json()
    assert first["result"] == {"region": "us"}
    init = noetl("events", rows[0]["execution_id"], "--json").json()[0]
    assert init["meta"]["scheduled_for"] == "2026-03-30T04:00:00+00:00"
    assert init["meta"]["schedule"] == "reports/daily"
    # Each fire time runs once: a second backfill of the same range starts nothing.
    again = noetl("schedule", "backfill", "reports/daily", "--from", "2026-03-30T00:00:00Z",
                  "--to", "2026-04-01T23:00:00Z", "--json").json()
    assert [r["execution_id"] for r in again] == [None, None, None]

    assert noetl("schedule", "delete", "reports/daily", "--json").json() == {"name": "reports/daily", "deleted": True}
    assert noetl("schedule", "list", "--json").json() == []


def test_bad_schedules_are_one_line_errors_and_store_nothing(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    cases = {
        ("--cron", "61 * * * *"): "error: --cron: invalid cron expression '61 * * * *': the minute field '61' "
                                  "is not valid (0-59, a list a,b, a range a-b or a step */n)",
        ("--cron", "0 6 * 13 *"): "error: --cron: invalid cron expression '0 6 * 13 *': the month field '13' "
                                  "is not valid (1-12 or jan-dec, a list a,b, a range a-b or a step */n)",
        ("--cron", "0 6 * *"): "error: --cron: invalid cron expression '0 6 * *': 4 fields, not five (five "
                               "fields: minute hour day-of-month month weekday)",
        ("--cron", "0 6 * * *", "--tz", "Mars/Olympus"): "error: --tz: unknown time zone 'Mars/Olympus' (an IANA "
                                                         "name such as Europe/Berlin or UTC)",
        ("--cron", "0 6 * * *", "--overlap", "never"): "error: --overlap: 'never' is not one of skip, queue, allow",
        ("--cron", "0 6 * * *", "--catchup", "some"): "error: --catchup: 'some' is not one of none, latest, all",
        ("--cron", "0 6 * * *", "--payload", "[1]"): "error: --payload: the payload must be a JSON object, got list",
    }
    for args, message in cases.items():
        result = noetl("schedule", "add", str(playbook), *args)
        assert (result.code, result.stderr.strip()) == (2, message)
    missing = noetl("schedule", "add", "no/such/path", "--cron", "0 6 * * *")
    assert missing.code == 2 and missing.stderr.count("\n") == 1
    for command in (("pause", "nope"), ("resume", "nope"), ("delete", "nope"),
                    ("backfill", "nope", "--from", "2026-01-01", "--to", "2026-01-02")):
        result = noetl("schedule", *command)
        assert (result.code, result.stderr.strip()) == (2, "error: schedule 'nope' not found")
    bad_time = noetl("schedule", "backfill", "nope", "--from", "yesterday", "--to", "2026-01-02")
    assert bad_time.code == 2 and "--from: 'yesterday' is not an ISO 8601 time" in bad_time.stderr
    assert noetl("schedule", "list", "--json").json() == []


def test_noetl_scheduler_once_starts_nothing_before_the_first_fire_time(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("schedule", "add", str(playbook), "--cron", "0 0 1 1 *", "--catchup", "latest").code == 0
    # Nothing is due right after adding: only fire times after the schedule was added count.
    first = noetl("scheduler", "--once")
    assert first.code == 0 and first.stdout == ""
    assert "Traceback" not in first.stderr


DECLARED = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: nightly_report, path: reports/nightly}
schedules:
  - cron: "0 2 * * *"
    timezone: Europe/Berlin
    payload: {full: true}
  - name: hourly-check
    cron: "0 * * * *"
    overlap: queue
workflow:
  - step: start
"""

DECLARED_BAD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bad_schedules}
schedules:
  - cron: "61 2 * * *"
    timezone: Mars/Base
    overlp: skip
workflow:
  - step: start
"""


def test_schedules_declared_in_a_playbook_are_registered_with_it(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "nightly.yaml"
    playbook.write_text(DECLARED)
    registered = noetl("catalog", "register", str(playbook))
    assert registered.code == 0, registered.stderr
    assert registered.json()[0]["schedules"] == ["reports/nightly", "hourly-check"]
    schedules = {s["name"]: s for s in noetl("schedule", "list", "--json").json()}
    assert schedules["reports/nightly"]["timezone"] == "Europe/Berlin"
    assert schedules["reports/nightly"]["payload"] == {"full": True}
    assert schedules["hourly-check"]["overlap"] == "queue" and schedules["hourly-check"]["source"] == "playbook"
    assert "schedules:" in noetl("migrate", str(playbook)).stdout


def test_bad_declared_schedules_are_file_line_errors(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "bad.yaml"
    playbook.write_text(DECLARED_BAD)
    result = noetl("validate", str(playbook))
    assert result.code == 2
    lines = (result.stdout + result.stderr).splitlines()
    assert f"{playbook}:6:5: error: schedule cron: invalid cron expression '61 2 * * *': the minute field " \
           "'61' is not valid (0-59, a list a,b, a range a-b or a step */n)" in lines
    assert f"{playbook}:7:5: error: schedule timezone: unknown time zone 'Mars/Base' (an IANA name such as " \
           "Europe/Berlin or UTC)" in lines
    assert f"{playbook}:8:5: warning: unknown key 'overlp' in schedule (did you mean 'overlap'?)" in lines
    refused = noetl("catalog", "register", str(playbook))
    assert refused.code == 2
    assert noetl("catalog", "list", "--json").json() == [] and noetl("schedule", "list", "--json").json() == []


def test_backfill_exits_1_when_the_playbook_is_gone(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("schedule", "add", str(playbook), "--cron", "0 6 * * *").code == 0
    playbook.unlink()
    backfill = noetl("schedule", "backfill", "reports/daily", "--from", "2026-03-30T00:00:00Z",
                     "--to", "2026-03-30T23:00:00Z", "--json")
    assert backfill.code == 1, (backfill.stdout, backfill.stderr)
    assert [r["status"] for r in backfill.json()] == ["not-started"]
    assert "daily.yaml" in backfill.stderr


def test_a_backfill_of_more_fire_times_than_one_walk_is_refused_whole(noetl: Any, tmp_path: Path) -> None:
    # Eleven months of a per-minute schedule: cut at 10,000 fire times, the rest would be silently
    # left out of a backfill that reports success.
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("schedule", "add", str(playbook), "--cron", "* * * * *", "--name", "minutely").code == 0
    refused = noetl("schedule", "backfill", "minutely", "--from", "2026-01-01T00:00:00Z", "--to", "2026-12-01T00:00:00Z")
    assert refused.code == 2
    assert refused.stderr == ("error: the range 2026-01-01T00:00:00+00:00 .. 2026-12-01T00:00:00+00:00 holds more "
                              "than 10,000 fire times of schedule 'minutely' (* * * * *): backfill at most 10,000 "
                              "at a time\n")
    assert noetl("executions", "--json").json() == []


def test_a_cron_firing_every_second_or_never_is_refused(noetl: Any, tmp_path: Path) -> None:
    # A sixth field would be seconds: a schedule starting an execution every second, forever. A
    # date that never comes (30 February) has no next fire time to show or to wait for.
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    for cron, why in (("* * * * * *", "invalid cron expression '* * * * * *': 6 fields, not five"),
                      ("0 0 30 2 *", "cron expression '0 0 30 2 *' never fires")):
        result = noetl("schedule", "add", str(playbook), "--cron", cron)
        assert result.code == 2, result.stderr
        assert result.stderr.startswith(f"error: --cron: {why}") and result.stderr.count("\n") == 1, result.stderr
    listed = noetl("schedule", "list", "--json")
    assert listed.code == 0 and listed.json() == []
    assert noetl("schedule", "add", str(playbook), "--cron", "@hourly").code == 0


def test_schedule_trigger_runs_the_playbook_now_even_when_paused(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("catalog", "register", str(playbook)).code == 0
    assert noetl("schedule", "add", "reports/daily", "--cron", "0 6 * * *", "--payload", '{"region": "us"}').code == 0
    assert noetl("schedule", "pause", "reports/daily").code == 0

    ran = noetl("schedule", "trigger", "reports/daily", "--json")
    assert ran.code == 0, ran.stderr
    row = ran.json()
    assert (row["schedule"], row["status"]) == ("reports/daily", "completed")
    assert noetl("status", row["execution_id"], "--json").json()["result"] == {"region": "us"}
    first = noetl("events", row["execution_id"], "--json").json()[0]
    assert first["meta"]["schedule"] == "reports/daily" and first["meta"]["manual"] is True
    assert first["meta"]["scheduled_for"] == row["scheduled_for"]
    # A second "run now" is another execution; the schedule stays paused and its cursor untouched.
    again = noetl("schedule", "trigger", "reports/daily", "--json").json()
    assert again["execution_id"] != row["execution_id"]
    view = noetl("schedule", "list", "--json").json()[0]
    assert view["enabled"] is False and view["cursor"] is None

    missing = noetl("schedule", "trigger", "nope")
    assert missing.code == 2 and missing.stderr.strip() == "error: schedule 'nope' not found"

    failing = tmp_path / "failing.yaml"
    failing.write_text(PLAYBOOK.replace("reports/daily", "reports/failing").replace("result = {", "result = 1 / 0; x = {"))
    assert noetl("schedule", "add", str(failing), "--cron", "0 6 * * *").code == 0
    failed = noetl("schedule", "trigger", "reports/failing", "--json")
    assert failed.code == 1 and failed.json()["status"] == "failed"
    assert "ZeroDivisionError" in failed.json()["error"]


def test_schedule_commands_print_a_line_by_default_and_json_with_the_flag(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "daily.yaml"
    playbook.write_text(PLAYBOOK)
    added = noetl("schedule", "add", str(playbook), "--cron", "0 6 * * *", "--tz", "Europe/Berlin")
    assert added.code == 0, added.stderr
    assert added.stdout.split()[:4] == ["reports/daily", "0", "6", "*"]  # the line `schedule list` shows
    assert "Europe/Berlin" in added.stdout and "enabled" in added.stdout and "{" not in added.stdout
    paused = noetl("schedule", "pause", "reports/daily").stdout
    assert paused.splitlines() == [noetl("schedule", "list").stdout.strip()] and "paused  next -" in paused
    assert "enabled" in noetl("schedule", "resume", "reports/daily").stdout
    ran = noetl("schedule", "trigger", "reports/daily")
    assert ran.code == 0 and ran.stdout.startswith("execution ")
    assert ran.stdout.strip().endswith("completed (schedule reports/daily)")
    assert noetl("schedule", "delete", "reports/daily").stdout.strip() == "deleted schedule reports/daily"
    failing = tmp_path / "failing.yaml"
    failing.write_text(PLAYBOOK.replace("reports/daily", "reports/failing").replace("result = {", "result = 1 / 0; x = {"))
    assert noetl("schedule", "add", str(failing), "--cron", "0 6 * * *").code == 0
    failed = noetl("schedule", "trigger", "reports/failing")
    assert failed.code == 1 and failed.stdout.strip().endswith("failed (schedule reports/failing)")
    assert failed.stderr.startswith("error: ") and "ZeroDivisionError" in failed.stderr
