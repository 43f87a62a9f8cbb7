"""The web console over the local store (`noetl ui`), read and driven over real HTTP."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import httpx
import pytest
from support.console import console_process

from .conftest import HERE, noetl, run_json

ACTION = {"X-NoETL-Console": "1"}
# httpx's default 5 s is short for a page of `noetl ui` on a loaded 2-core machine.
HTTP_SECONDS = 30
get = functools.partial(httpx.get, timeout=HTTP_SECONDS)
post = functools.partial(httpx.post, timeout=HTTP_SECONDS)


def test_list_shows_executions_with_status_and_filters(console: str, runs: dict[str, str]) -> None:
    page = get(f"{console}/").text
    assert runs["loop"] in page and runs["slow"] in page
    failed = get(f"{console}/", params={"status": "failed"}).text
    assert runs["loop"] in failed and runs["slow"] not in failed
    by_path = get(f"{console}/", params={"path": "console/slow"}).text
    assert runs["slow"] in by_path and runs["loop"] not in by_path
    assert runs["loop"] not in get(f"{console}/", params={"since": "2999-01-01"}).text
    bad = get(f"{console}/", params={"since": "yesterday-ish"}).text
    assert "since &#39;yesterday-ish&#39;: expected an ISO date/time" in bad
    jump = get(f"{console}/", params={"id": runs["loop"]}, follow_redirects=False)
    assert jump.status_code == 303 and jump.headers["location"] == f"/executions/{runs['loop']}"


def test_a_list_page_that_is_not_a_number_is_the_first_page_with_a_line(console: str, runs: dict[str, str]) -> None:
    answer = get(f"{console}/", params={"page": "abc"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "page &#39;abc&#39; is not a number: showing the first page" in answer.text
    assert runs["loop"] in answer.text


def test_execution_page_shows_graph_status_progress_error_line_and_logs(console: str, runs: dict[str, str]) -> None:
    page = get(f"{console}/executions/{runs['loop']}").text
    assert '<g class="node completed" data-step="start"' in page
    assert '<g class="node failed" data-step="divide"' in page
    assert '<g class="node pending" data-step="end"' in page
    assert "4/4 (1 failed)" in page and "3 done, 1 failed of 4" in page
    # The failed iteration, its error at the playbook's own line (code line 2 is file line 23), its output.
    assert "[2] ZeroDivisionError" in page and "at demo/console_loop:23" in page
    # Its kind is the label, said once, as the CLI says it (the message starts with it too).
    assert "[2] ZeroDivisionError</b>: division by zero" in page
    assert "ZeroDivisionError: ZeroDivisionError" not in page.replace("</b>", "")
    assert "[2] dividing by 0" in page
    assert 'class="timeline"' in page and "divide[3]" in page
    assert get(f"{console}/executions/123").status_code == 404


def test_a_loop_with_more_events_than_the_page_lists_shows_its_whole_run(console: str, home: Path) -> None:
    # The event table stops at 2,000 rows; the graph, progress and timeline still show every event
    # (they showed the loop running at 1994/2500 and its next step pending, on a completed run).
    execution_id = run_json(home, "slow_loop.yaml", "--set", "rounds=2500", "--set", "pause=0")["execution_id"]
    page = get(f"{console}/executions/{execution_id}").text
    assert '<g class="node completed" data-step="wait"' in page and "2500/2500" in page
    assert '<g class="node completed" data-step="end"' in page
    # The table pages (it held 2,000 rows, which Chromium took over a second to lay out): the first
    # 200 come with the page, each "Show the next" brings 200 more, up to the last event.
    assert page.count('<tr class="ev-') == 200
    assert f"The first 200 events are shown; all of them: <code>noetl events {execution_id} --json" in page
    assert 'id="events-more" data-after="200"' in page
    after, shown, more = 200, 200, True
    while more:
        next_rows = get(f"{console}/console/events/{execution_id}", params={"after": after}).json()
        shown += next_rows["rows"].count('<tr class="ev-')
        assert f'data-id="{after + 1}"' in next_rows["rows"]
        after, more = next_rows["last_event_id"], next_rows["more"]
    events = json.loads(noetl(home, "events", execution_id, "--json").stdout)
    assert shown == len(events) and after == events[-1]["event_id"]
    assert get(f"{console}/console/events/123").status_code == 404
    assert "[2499] round 2499" in page  # the lines its last iterations printed
    # 2,500 results are more than the page shows of a result: it says where the whole one is.
    assert f'<p class="muted whole-result">The whole result: <code>noetl result {execution_id} wait</code>' in page
    assert f"noetl result {execution_id} start" not in page  # a small result is shown whole
    whole = get(f"{console}/executions/{execution_id}/results/wait")
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    assert len(whole.json()["results"]) == 2500 and whole.json()["stats"]["total"] == 2500
    missing = get(f"{console}/executions/{execution_id}/results/nope")
    assert missing.status_code == 404 and "has no step of that name" in missing.text


def test_user_data_is_escaped_and_scripts_are_locked_down(console: str, runs: dict[str, str]) -> None:
    for url in (f"{console}/", f"{console}/executions/{runs['hostile']}", f"{console}/catalog"):
        answer = get(url)
        assert "<script>alert" not in answer.text and "<b>not bold</b>" not in answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]
    page = get(f"{console}/executions/{runs['hostile']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;not bold&lt;/b&gt;" in page


def test_catalog_yaml_versions_diff_and_run_form(console: str, home: Path, tmp_path: Path) -> None:
    changed = tmp_path / "loop.yaml"
    changed.write_text((HERE / "loop_failure.yaml").read_text().replace("[1, 2, 0, 4]", "[1, 2, 4]"))
    assert noetl(home, "catalog", "register", str(changed)).returncode == 0
    listing = get(f"{console}/catalog").text
    assert "demo/console_loop" in listing and "console/slow" in listing
    entry = get(f"{console}/catalog/entry", params={"path": "demo/console_loop"}).text
    assert 'id="L7"' in entry and "items: [1, 2, 4]" in entry
    # --set-style defaults: the string "10" is shown quoted so that it stays a string.
    assert 'name="set:label" value="&#34;10&#34;"' in entry and 'name="set:items" value="[1, 2, 4]"' in entry
    diff = get(f"{console}/catalog/diff", params={"path": "demo/console_loop", "a": "1", "b": "2"}).text
    assert '<span class="del">-  items: [1, 2, 0, 4]</span>' in diff
    assert '<span class="add">+  items: [1, 2, 4]</span>' in diff


def test_run_form_starts_an_execution_with_set_typing(console: str, home: Path) -> None:
    answer = post(f"{console}/console/actions/run", headers=ACTION, json={
        "path": "console/slow", "version": "", "payload": '{"pause": 0}', "set": {"rounds": "2"}})
    assert answer.status_code == 200, answer.text
    execution_id = answer.json()["execution_id"]
    doc = _wait_for_end(home, execution_id)
    assert doc["status"] == "completed"
    assert len(doc["steps"]["wait"]["result"]["results"]) == 2  # "2" read as the number 2
    bad = post(f"{console}/console/actions/run", headers=ACTION,
                     json={"path": "console/slow", "payload": "[1]"})
    assert bad.status_code == 400 and "payload must be a JSON object" in bad.json()["error"]
    broken = post(f"{console}/console/actions/run", headers=ACTION,
                        json={"path": "console/slow", "payload": "[1"})
    # the form's field, not the command line's --payload
    assert broken.status_code == 400 and broken.json()["error"].startswith("payload: invalid JSON at line 1"), \
        broken.text
    missing = post(f"{console}/console/actions/run", headers=ACTION, json={"path": "nope"})
    assert missing.status_code == 404


def test_cancel_stops_a_running_execution(console: str, home: Path) -> None:
    started = post(f"{console}/console/actions/run", headers=ACTION, json={
        "path": "console/slow", "set": {"rounds": "100", "pause": "0.2"}}).json()
    answer = post(f"{console}/console/actions/cancel/{started['execution_id']}", headers=ACTION)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert _wait_for_end(home, started["execution_id"])["status"] == "cancelled"


def test_actions_need_the_console_header_and_same_origin(console: str, runs: dict[str, str]) -> None:
    url = f"{console}/console/actions/cancel/{runs['slow']}"
    assert post(url).status_code == 403
    assert post(url, headers={**ACTION, "Origin": "http://evil.example"}).status_code == 403


def test_live_stream_of_a_finished_execution_ends(console: str, runs: dict[str, str]) -> None:
    with httpx.stream("GET", f"{console}/console/stream/{runs['loop']}", timeout=HTTP_SECONDS) as answer:
        text = "".join(answer.iter_text())
    assert "event: update" in text and '"divide": {"status": "failed"' in text and "event: end" in text


def test_credentials_page_shows_names_and_types_never_data(console: str, home: Path, tmp_path: Path) -> None:
    credential = tmp_path / "cred.yaml"
    credential.write_text("name: warehouse\ntype: postgres\ndata: {host: db, password: s3cr3t-value}\n")
    assert noetl(home, "register", "credential", "-f", str(credential)).returncode == 0
    page = get(f"{console}/credentials").text
    assert "warehouse" in page and "postgres" in page and "s3cr3t-value" not in page


def test_with_a_token_pages_need_login_and_actions_need_the_header(home: Path, runs: dict[str, str]) -> None:
    with console_process(home, token="tok-123") as url:
        first = get(f"{url}/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        assert runs["loop"] in get(f"{url}/", cookies={"noetl_token": "tok-123"}).text
        cancel = f"{url}/console/actions/cancel/{runs['slow']}"
        # The cookie alone never authorises an action (a forged cross-site request would carry it).
        assert post(cancel, headers=ACTION, cookies={"noetl_token": "tok-123"}).status_code == 401
        done = post(cancel, headers={**ACTION, "Authorization": "Bearer tok-123"})
        assert done.status_code == 200 and done.json()["cancelled"] is False


def test_schedules_page_lists_the_stores_schedules(console: str, home: Path) -> None:
    added = noetl(home, "schedule", "add", "console/slow", "--cron", "0 6 * * 1-5", "--tz", "Europe/Paris",
                  "--name", "<b>weekday</b>")
    assert added.returncode == 0, added.stderr
    page = get(f"{console}/schedules").text
    assert "&lt;b&gt;weekday&lt;/b&gt;" in page and "0 6 * * 1-5" in page and "Europe/Paris" in page
    assert ">active<" in page
    assert noetl(home, "schedule", "pause", "<b>weekday</b>").returncode == 0
    assert ">paused<" in get(f"{console}/schedules").text


def test_schedules_page_shows_next_fire_times_triggers_and_webhooks_never_their_secrets(
        console: str, home: Path) -> None:
    assert noetl(home, "schedule", "add", "console/slow", "--cron", "30 4 * * *", "--name", "nightly").returncode == 0
    assert noetl(home, "trigger", "add", "--on-path", "demo/console_loop", "--on", "failed", "--run",
                 "console/slow", "--name", "<i>on-fail<i>").returncode == 0
    assert noetl(home, "hook", "add", "deploy", "--path", "console/slow", "--secret", "hook-secret-91f3").returncode == 0
    page = get(f"{console}/schedules").text
    row = page[page.index("<td>nightly</td>"):].split("</tr>")[0]
    assert " 04:30:00</td>" in row  # the next fire time, UTC
    triggers = page[page.index('id="triggers"'):].split("</table>")[0]
    assert "&lt;i&gt;on-fail&lt;i&gt;" in triggers and "demo/console_loop" in triggers and ">failed<" in triggers
    hooks = page[page.index('id="hooks"'):].split("</table>")[0]
    assert "POST /api/hooks/deploy" in hooks and "signed (HMAC-SHA256)" in hooks
    assert "hook-secret-91f3" not in page
    assert noetl(home, "trigger", "delete", "<i>on-fail<i>").returncode == 0  # the other tests' runs start nothing


def test_a_read_token_views_but_cannot_run_or_cancel(home: Path, runs: dict[str, str]) -> None:
    with console_process(home, tokens="viewer-1=read,runner-1=execute") as url:
        viewer = {"Cookie": "noetl_token=viewer-1"}
        assert runs["loop"] in get(f"{url}/", headers=viewer).text
        entry = get(f"{url}/catalog/entry", params={"path": "console/slow"}, headers=viewer).text
        assert 'id="run-form"' not in entry and "Your role can view but not run playbooks." in entry
        assert 'id="cancel"' not in get(f"{url}/executions/{runs['slow']}", headers=viewer).text
        run = {"path": "console/slow", "set": {"rounds": "1", "pause": "0"}}
        refused = post(f"{url}/console/actions/run", json=run,
                             headers={**ACTION, "Authorization": "Bearer viewer-1"})
        assert refused.status_code == 403 and "the 'read' role cannot do this" in refused.json()["error"]
        allowed = post(f"{url}/console/actions/run", json=run,
                             headers={**ACTION, "Authorization": "Bearer runner-1"})
        assert allowed.status_code == 200


def _wait_for_end(home: Path, execution_id: str, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = json.loads(noetl(home, "status", execution_id, "--json").stdout)
        if doc["status"] != "running":
            return doc  # type: ignore[no-any-return]
        time.sleep(0.2)
    pytest.fail(f"execution {execution_id} still running after {timeout} s")


def test_a_running_steps_lines_are_on_its_page_and_in_the_live_stream(console: str, home: Path,
                                                                       tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    release = tmp_path / "release"
    playbook = HERE.parent / "fixtures" / "playbooks" / "streamed_logs.yaml"
    env = {**os.environ, "NOETL_HOME": str(home), "NOETL_SECRET_STREAM_TOKEN": "tok-console-7d2e"}
    running = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(playbook), "--set",
                                f"release={release}", "--json"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline and "tick 1" not in page:
            listed = noetl(home, "executions", "--status", "running", "--path", "streamed", "--json")
            rows = json.loads(listed.stdout or "[]")
            if rows:
                page = get(f"{console}/executions/{rows[0]['execution_id']}").text
            time.sleep(0.2)
        execution_id = rows[0]["execution_id"]
        assert 'data-step-logs="start">tick 1' in page and "tok-console-7d2e" not in page
        seen: list[str] = []
        with httpx.stream("GET", f"{console}/console/stream/{execution_id}", timeout=60) as answer:
            for chunk in answer.iter_lines():
                if chunk.startswith("data: ") and '"logs"' in chunk:
                    seen += [line["line"] for line in json.loads(chunk[6:])["logs"]]
                if "tick 1" in seen:
                    break
        assert seen[:3] == ["tick 1", "token ***", "warned"]  # a stream from the start sends every line
    finally:
        release.touch()
        out, _ = running.communicate(timeout=60)
    assert json.loads(out)["status"] == "completed"


def test_a_run_whose_process_was_killed_is_shown_failed_abandoned(console: str, home: Path) -> None:
    # `noetl status` and `noetl executions` record such a run as failed (abandoned); the console
    # over the same store shows it so too, without any CLI command having looked at it first.
    import json
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "NOETL_HOME": str(home)}
    running = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(HERE / "slow_loop.yaml"),
                                "--set", "rounds=1000", "--set", "pause=0.2"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        rows: list[dict[str, str]] = []
        while not rows:
            assert time.monotonic() < deadline and running.poll() is None, "the run did not start"
            listed = noetl(home, "executions", "--status", "running", "--path", "console/slow", "--json")
            rows = json.loads(listed.stdout or "[]")
            time.sleep(0.1)
        execution_id = rows[0]["execution_id"]
        assert 'data-status="running"' in get(f"{console}/executions/{execution_id}").text
    finally:
        os.kill(running.pid, signal.SIGKILL)
        running.wait()

    deadline = time.monotonic() + 30  # the console looks at the owning processes every few seconds
    while execution_id in get(f"{console}/?status=running").text:
        assert time.monotonic() < deadline, "the killed run is still listed as running"
        time.sleep(0.2)
    page = get(f"{console}/executions/{execution_id}").text
    assert 'data-status="failed"' in page and "abandoned: the process that ran it" in page
    with httpx.stream("GET", f"{console}/console/stream/{execution_id}", timeout=HTTP_SECONDS) as answer:
        text = "".join(answer.iter_text())
    assert 'event: end\ndata: {"status": "failed"}' in text


def test_rerun_and_resume_from_the_local_console(console: str, home: Path, runs: dict[str, str]) -> None:
    import json

    page = get(f"{console}/executions/{runs['loop']}").text
    assert f'<button id="rerun" data-url="/console/actions/rerun/{runs["loop"]}" >' in page
    rerun = post(f"{console}/console/actions/rerun/{runs['loop']}", headers=ACTION)
    assert rerun.status_code == 200, rerun.text
    again = rerun.json()["execution_id"]
    assert again != runs["loop"] and rerun.json()["rerun_of"] == runs["loop"]
    assert _wait_for_end(home, again)["status"] == "failed"  # the same playbook text and payload: 10 / 0 again
    first = json.loads(noetl(home, "events", again, "--json").stdout)[0]
    assert first["meta"]["rerun_of"] == runs["loop"]

    resumed = post(f"{console}/console/actions/resume/{again}", headers=ACTION)
    assert resumed.status_code == 200 and resumed.json()["execution_id"] == again, resumed.text
    assert _wait_for_end(home, again)["status"] == "failed"
    types = [e["event_type"] for e in json.loads(noetl(home, "events", again, "--json").stdout)]
    assert "execution.resumed" in types
    # The resumed loop's progress counts the iterations the resume kept, not only the one it ran again.
    page = get(f"{console}/executions/{again}").text
    assert "4/4 (1 failed)" in page and "3 done, 1 failed of 4" in page

    refused = post(f"{console}/console/actions/resume/{runs['slow']}", headers=ACTION)
    assert refused.status_code == 400
    assert refused.json()["error"].endswith("only a failed, cancelled or abandoned execution can be resumed")
    assert post(f"{console}/console/actions/resume/{again}").status_code == 403  # not from another page


def test_run_now_of_an_unknown_schedule_is_a_404_and_needs_the_console_header(console: str) -> None:
    missing = post(f"{console}/console/actions/trigger-schedule", headers=ACTION, json={"name": "no-such"})
    assert missing.status_code == 404 and missing.json() == {"error": "schedule 'no-such' not found"}
    assert post(f"{console}/console/actions/trigger-schedule", headers=ACTION, json={}).status_code == 400
    assert post(f"{console}/console/actions/trigger-schedule", json={"name": "no-such"}).status_code in (401, 403)


def test_login_sends_the_browser_back_only_to_a_page_of_this_console(console: str) -> None:
    """`/login?next=//evil.example` sent the browser, token just typed, to another site after the
    login (a path that starts with `//`, or `/\\` or `/<tab>/`, which browsers read so, names a host)."""
    def next_of(target: str) -> str:
        page = get(f"{console}/login", params={"next": target}).text
        return page.split('data-next="', 1)[1].split('"', 1)[0]

    assert next_of("/executions/123?tab=logs") == "/executions/123?tab=logs"
    for foreign in ("//evil.example/login", "/\\evil.example", "/\t/evil.example", "/\n/evil.example",
                    "https://evil.example/", "evil.example"):
        assert next_of(foreign) == "/", foreign


def test_numbers_past_64_bits_in_a_pages_query_are_no_500(console: str, runs: dict[str, str]) -> None:
    """A page number, an event id or a version past SQLite's 64-bit integers was a 500
    (`?page=99999999999999999999999`); each is as far beyond every row as it says."""
    far = "99999999999999999999999"
    listing = get(f"{console}/", params={"page": far})
    assert listing.status_code == 200 and runs["loop"] not in listing.text
    more = get(f"{console}/console/events/{runs['loop']}", params={"after": far})
    assert more.status_code == 200 and more.json()["rows"] == "", more.text
    for page, params in (("/catalog/entry", {"path": "demo/console_loop", "version": far}),
                         ("/catalog/diff", {"path": "demo/console_loop", "a": far, "b": "1"})):
        assert get(f"{console}{page}", params=params).status_code == 404, page


def test_a_malformed_catalog_version_is_a_400_page_and_an_unknown_one_a_404(console: str, runs: dict[str, str]) -> None:
    bad = get(f"{console}/catalog/entry", params={"path": "console/slow", "version": "abc"})
    assert bad.status_code == 400 and "version must be a version number, got &#39;abc&#39;" in bad.text
    assert get(f"{console}/catalog/entry", params={"path": "console/slow", "version": "999"}).status_code == 404
    diff = get(f"{console}/catalog/diff", params={"path": "console/slow", "a": "1", "b": "x"})
    assert diff.status_code == 400


def test_a_catalog_entry_lists_every_version_latest_first(console: str, home: Path, tmp_path: Path) -> None:
    text = (HERE / "loop_failure.yaml").read_text().replace("demo/console_loop", "console/three_versions")
    for number in range(3):
        (tmp_path / f"v{number}.yaml").write_text(text + f"# version {number + 1}\n")
        assert noetl(home, "catalog", "register", str(tmp_path / f"v{number}.yaml")).returncode == 0
    page = get(f"{console}/catalog/entry", params={"path": "console/three_versions", "version": "2"}).text
    links = [f'version={n}"' for n in (3, 2, 1)]
    assert all(link in page for link in links) and page.index(links[0]) < page.index(links[1]) < page.index(links[2])
    assert 'version=2" class="on">2</a>' in page and "# version 2" in page
    assert '<option selected>1</option>' in page and '<option selected>2</option>' in page  # diff 1 with 2
