"""The web console in a real headless Chromium (Debian's package, driven by Playwright).

Screenshots go to ``$NOETL_TEST_ARTIFACTS`` when set, else to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import HERE, noetl

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (scripts/install-chromium.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.dialogs = dialogs
    yield tab
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NOETL_TEST_ARTIFACTS") or tmp_path) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_slow_loop(page: Any, console: str, *, rounds: int, pause: float) -> None:
    """Start console/slow from its run form and land on the new execution's page."""
    page.goto(f"{console}/catalog/entry?path=console/slow")
    page.fill("input[name='set:rounds']", str(rounds))
    page.fill("input[name='set:pause']", str(pause))
    page.click("#run-form button")
    page.wait_for_url("**/executions/*")


def test_a_failed_loop_iteration_in_the_graph_with_its_error_and_logs(page: Any, console: str,
                                                                      runs: dict[str, str], shots: Path) -> None:
    page.goto(f"{console}/")
    page.click(f"text={runs['loop']}")
    page.wait_for_url(f"**/executions/{runs['loop']}")
    assert page.get_attribute("g.node[data-step=start]", "class") == "node completed"
    assert page.get_attribute("g.node[data-step=divide]", "class") == "node failed"
    assert page.get_attribute("g.node[data-step=end]", "class") == "node pending"
    assert page.text_content("g.node[data-step=divide] .progress") == "4/4 (1 failed)"
    failed = page.locator("#step-divide")
    assert "[2] ZeroDivisionError: division by zero" in failed.inner_text()  # the kind once (58a9064)
    assert "at demo/console_loop:23" in failed.inner_text()
    assert "[2] dividing by 0" in failed.locator("pre.logs").inner_text()
    page.screenshot(path=str(shots / "execution.png"), full_page=True)


def test_start_a_run_from_the_form_and_watch_it_finish(page: Any, console: str, shots: Path) -> None:
    page.goto(f"{console}/catalog")
    page.click("text=console/slow")
    page.fill("input[name='set:rounds']", "3")
    page.fill("input[name='set:pause']", "0.3")
    page.screenshot(path=str(shots / "run-form.png"), full_page=True)
    page.click("#run-form button")
    page.wait_for_url("**/executions/*")
    # Live: the loop step is painted running while it runs, then the page shows the end.
    page.wait_for_selector("g.node.running[data-step=wait], g.node.completed[data-step=wait]")
    page.wait_for_selector("#exec-status.completed")
    page.wait_for_selector("g.node.completed[data-step=wait]")
    assert page.text_content("g.node[data-step=wait] .progress") == "3/3"


def test_cancel_a_running_execution(page: Any, console: str, shots: Path) -> None:
    start_slow_loop(page, console, rounds=200, pause=0.2)
    page.wait_for_selector("g.node.running[data-step=wait]")
    page.click("#cancel")
    page.wait_for_selector("#exec-status.cancelled")
    page.screenshot(path=str(shots / "cancelled.png"), full_page=True)


def test_a_hostile_playbook_name_is_shown_as_text(page: Any, console: str, runs: dict[str, str]) -> None:
    page.goto(f"{console}/")
    assert "<script>alert(1)</script>" in page.inner_text("#executions")
    page.goto(f"{console}/executions/{runs['hostile']}")
    assert page.inner_text("h1 .path") == "<script>alert(1)</script>"
    page.click("#step-start summary")
    assert "<b>not bold</b>" in page.inner_text("#step-start pre.logs")
    page.goto(f"{console}/catalog/entry?path=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<img src=x onerror=alert(2)>" in page.inner_text("#yaml")
    assert page.dialogs == []


def test_the_list_shows_a_new_execution_without_a_reload(page: Any, console: str) -> None:
    import httpx

    page.goto(f"{console}/?path=console/slow")
    page.evaluate("window.__same_page = true")
    started = httpx.post(f"{console}/console/actions/run", headers={"X-NoETL-Console": "1"},
                         json={"path": "console/slow", "set": {"rounds": "1", "pause": "0"}}).json()
    page.wait_for_selector(f"#executions >> text={started['execution_id']}")
    assert page.evaluate("window.__same_page") is True  # repainted by the live stream, not reloaded


def test_lines_of_a_running_loop_appear_under_their_step_without_a_reload(page: Any, console: str,
                                                                          shots: Path) -> None:
    start_slow_loop(page, console, rounds=40, pause=0.5)
    page.wait_for_selector("pre.logs[data-step-logs=wait]:has-text('round 1')", state="attached", timeout=30_000)
    assert page.text_content("#exec-status") == "running"  # 40 rounds of 0.5 s: still far from the end
    page.click("#step-wait summary")
    assert page.inner_text("pre.logs[data-step-logs=wait]").startswith("[0] round 0\n[1] round 1")
    page.screenshot(path=str(shots / "live-logs.png"), full_page=True)
    page.click("#cancel")
    page.wait_for_selector("#exec-status.cancelled")


def test_rerun_from_the_page_opens_the_new_execution(page: Any, console: str, runs: dict[str, str]) -> None:
    page.goto(f"{console}/executions/{runs['loop']}")
    page.click("#rerun")
    page.wait_for_url(lambda url: "/executions/" in url and runs["loop"] not in url)
    page.wait_for_selector("#exec-status.failed")  # the same payload: the same division by zero
    assert page.get_attribute("g.node[data-step=divide]", "class") == "node failed"
    page.click("#resume")  # continues it in place: the page reloads with the resumed run's events
    page.wait_for_selector("#events >> text=execution.resumed", timeout=30_000)
    page.wait_for_selector("#exec-status.failed")
    assert page.dialogs == []


def test_status_filter_and_diff_between_catalog_versions(page: Any, console: str, runs: dict[str, str],
                                                         home: Path, tmp_path: Path) -> None:
    page.goto(f"{console}/")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/?status=failed*")
    listed = page.inner_text("#executions")
    assert runs["loop"] in listed and runs["slow"] not in listed and runs["hostile"] not in listed

    text = (HERE / "loop_failure.yaml").read_text().replace("demo/console_loop", "console/versions")
    for number, items in enumerate(("[1, 2, 0, 4]", "[1, 2, 3]"), start=1):
        (tmp_path / f"v{number}.yaml").write_text(text.replace("[1, 2, 0, 4]", items))
        assert noetl(home, "catalog", "register", str(tmp_path / f"v{number}.yaml")).returncode == 0
    page.goto(f"{console}/catalog/entry?path=console/versions")
    page.click("text=Diff")
    page.wait_for_url("**/catalog/diff*")
    diff = page.inner_text("main")
    assert "-  items: [1, 2, 0, 4]" in diff and "+  items: [1, 2, 3]" in diff


def test_a_killed_run_turns_failed_on_its_open_page(page: Any, console: str, home: Path, tmp_path: Path) -> None:
    # The page of a running execution follows it live; when the process running it is killed
    # (no end is ever recorded) the page shows it failed as abandoned, as `noetl status` does.
    import signal
    import subprocess
    import sys

    playbook = tmp_path / "killed.yaml"  # a path of its own: the list shows only this run
    playbook.write_text((HERE / "slow_loop.yaml").read_text().replace("console/slow", "console/killed"))
    env = {**os.environ, "NOETL_HOME": str(home)}
    running = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(playbook),
                                "--set", "rounds=1000", "--set", "pause=0.2"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page.goto(f"{console}/?status=running&path=console/killed")
        link = page.wait_for_selector("#executions td:first-child a", timeout=30_000)
        execution_id = link.inner_text()
        link.click()
        page.wait_for_selector("g.node.running[data-step=wait]")
        page.wait_for_selector("pre.logs[data-step-logs=wait]:has-text('round 1')", state="attached")
    finally:
        os.kill(running.pid, signal.SIGKILL)
        running.wait()
    page.wait_for_selector("#exec-status.failed", timeout=30_000)
    assert "abandoned: the process that ran it" in page.inner_text("#exec-error")
    assert page.get_attribute("g.node[data-step=wait]", "class") == "node cancelled"
    assert execution_id in page.url


def test_a_hostile_step_name_is_text_in_the_graph_steps_and_live_updates(page: Any, console: str,
                                                                         home: Path) -> None:
    # The step's name is in the SVG graph, element ids, CSS selectors of the page's script and the
    # live stream's JSON: everywhere it stays text, and the page still follows the run live.
    name = "<img src=x onerror=alert(7)>"
    assert noetl(home, "catalog", "register", str(HERE / "hostile_step.yaml")).returncode == 0
    page.goto(f"{console}/catalog/entry?path=console/hostile_step")
    page.click("#run-form button")
    page.wait_for_url("**/executions/*")
    node = page.locator("g.node").filter(has_text="<img src=x")
    page.wait_for_function("() => [...document.querySelectorAll('g.node')].some("
                           "n => n.dataset.step.startsWith('<img') && n.classList.contains('running'))")
    page.wait_for_selector("#exec-status.failed", timeout=30_000)
    assert node.get_attribute("class") == "node failed" and node.get_attribute("data-step") == name
    assert node.locator(".progress").text_content() == "3/3 (1 failed)"
    step = page.locator("details.step.failed")
    assert name in step.locator("summary").first.inner_text()
    assert "<i>not italic</i> 0" in step.locator("pre.logs").inner_text()
    assert page.locator("main img").count() == 0 and page.locator("main i").count() == 0
    # A long name is shortened in the timeline's labels, keeping each call's loop index.
    assert "<img src=x onerro…[1]" in page.text_content("svg.timeline")
    assert page.dialogs == []


def test_run_now_on_the_schedules_page_opens_the_new_execution(page: Any, console: str, home: Path) -> None:
    added = noetl(home, "schedule", "add", "console/slow", "--cron", "0 3 1 1 *", "--name", "yearly",
                  "--payload", '{"rounds": 2, "pause": 0}')
    assert added.returncode == 0, added.stderr
    assert noetl(home, "schedule", "pause", "yearly").returncode == 0  # run now does not wait for the schedule
    page.goto(f"{console}/schedules")
    page.locator("#schedules tr", has_text="yearly").locator("button.run-now").click()
    page.wait_for_url("**/executions/*")
    page.wait_for_selector("#exec-status.completed", timeout=30_000)
    assert page.text_content("g.node[data-step=wait] .progress") == "2/2"
    execution_id = page.url.rsplit("/", 1)[1]
    page.goto(f"{console}/schedules")
    row = page.locator("#schedules tr", has_text="yearly")
    assert execution_id in row.inner_text() and "paused" in row.inner_text()
    assert noetl(home, "schedule", "delete", "yearly").returncode == 0


def test_the_event_table_of_a_long_run_pages_with_show_the_next(page: Any, console: str, home: Path) -> None:
    started = noetl(home, "run", str(HERE / "slow_loop.yaml"), "--set", "rounds=300", "--set", "pause=0", "--json")
    execution_id = __import__("json").loads(started.stdout)["execution_id"]
    page.goto(f"{console}/executions/{execution_id}")
    assert page.locator("#events tbody tr").count() == 200
    page.click("#events-more")
    page.wait_for_selector("#events-truncated", state="detached")  # 300 calls and their steps: all shown
    ids = [int(i) for i in page.eval_on_selector_all("#events tbody tr", "rows => rows.map(r => r.dataset.id)")]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 300
    assert page.text_content("g.node[data-step=wait] .progress") == "300/300"


def test_a_live_page_stops_adding_event_rows_at_a_page_and_offers_the_next(page: Any, console: str) -> None:
    start_slow_loop(page, console, rounds=2000, pause=0.01)
    page.evaluate("window.__same_page = true")
    page.wait_for_selector("#events-more", timeout=60_000)
    assert page.evaluate("window.__same_page") is True  # offered by the live page, not a reload
    shown = page.locator("#events tbody tr").count()
    assert 200 <= shown < 2000
    page.click("#events-more")
    page.wait_for_function(f"() => document.querySelectorAll('#events tbody tr').length > {shown}")
    ids = [int(i) for i in page.eval_on_selector_all("#events tbody tr", "rows => rows.map(r => r.dataset.id)")]
    assert ids == list(range(1, len(ids) + 1))
    page.click("#cancel")
    page.wait_for_selector("#exec-status.cancelled", timeout=30_000)


def test_log_out_from_any_page_forgets_the_token_and_a_refused_token_is_said_so(
        page: Any, home: Path, runs: dict[str, str]) -> None:
    from support.console import console_process

    with console_process(home, tokens="viewer-token-1=read") as console:
        page.goto(f"{console}/")
        page.wait_for_url("**/login?next=/")
        page.fill("input[name=token]", "mistyped-token")
        page.click("#login button")
        page.wait_for_selector("text=This server did not accept that token")
        assert "/login" in page.url
        page.fill("input[name=token]", "viewer-token-1")
        page.click("#login button")
        page.wait_for_selector(f"#executions >> text={runs['loop']}")
        page.goto(f"{console}/executions/{runs['loop']}")
        page.click("text=log out")  # from an execution's page, not the login page
        page.wait_for_url("**/login")
        assert "did not accept" not in page.inner_text("main")  # logged out, not refused
        page.goto(f"{console}/")
        page.wait_for_url("**/login?next=/")  # the token is gone: the list asks for it again
