"""How long the console's page of a big execution takes to open, in a real headless Chromium.

    python bench/console_page.py [--items 10000] [--repeat 5] [--server] [--compare-with REF]

One loop of ``--items`` python iterations runs with ``noetl run`` into a private local store and
``noetl ui`` serves it; with ``--server``, a server and two workers on a throwaway PostgreSQL cluster
(fsync on) run it and the server serves it. Chromium opens the execution's page ``--repeat`` times
(load event, the page's script run). Printed per code: the median and worst page load in the browser and the median
time of the page's HTML alone (httpx). With ``--compare-with REF`` a ``noetl ui`` on the code of git
revision REF is measured before the working tree's, over the same store, so both see the same load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import loadavg
from distributed import export_revision, start  # bench/distributed.py (also sets sys.path)

from noetl.demo.postgres import free_port

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: console_page, path: bench/console_page}}
workflow:
  - step: start
    next: [{{step: big}}]
  - step: big
    loop: {{in: "{{{{ range({items}) | list }}}}", iterator: i}}
    tool: {{kind: python, input: {{i: "{{{{ iter.i }}}}"}}, code: "result = {{'i': i}}"}}
    next: [{{step: end}}]
  - step: end
"""
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def big_execution(home: Path, items: int) -> str:
    playbook = home / "big.yaml"
    playbook.write_text(PLAYBOOK.format(items=items))
    env = {**os.environ, "NOETL_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "noetl.cli.main", "run", str(playbook), "--json"], env=env,
                          capture_output=True, text=True, check=True)
    import json

    document = json.loads(done.stdout)
    assert document["status"] == "completed", document
    return str(document["execution_id"])


def ui(home: Path, code: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "NOETL_HOME": str(home)}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    process = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "ui", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("noetl ui did not start")


def on_server(items: int, sides: list[tuple[str, Path | None]], repeat: int, browser: object) -> None:
    from support.pgcluster import postgres_cluster
    from test_distributed_cluster import REPO

    with postgres_cluster(durable=True) as pg, tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        cluster = start(pg, 2, Path(home), concurrency=8)
        try:
            execution_id = cluster.execute(cluster.register(PLAYBOOK.format(items=items))["path"])
            assert cluster.wait(execution_id, timeout=1800)["status"] == "completed"
            events = len(cluster.client.get(f"/api/executions/{execution_id}/events").json())
            print(f"server and 2 workers on PostgreSQL: {events:,} events\n")
            header()
            for name, code in sides:
                cluster.stop_server()
                cluster.env["PYTHONPATH"] = str(code or REPO)
                cluster.start_server()
                row(name, measure(browser, f"{cluster.url}/executions/{execution_id}", repeat))
        finally:
            cluster.close()


def on_local(items: int, sides: list[tuple[str, Path | None]], repeat: int, browser: object, work: Path) -> None:
    home = work / "home"
    home.mkdir()
    execution_id = big_execution(home, items)
    print("noetl ui over the local store\n")
    header()
    for name, code in sides:
        process, url = ui(home, code)
        try:
            page = measure(browser, f"{url}/executions/{execution_id}", repeat)
        finally:
            process.terminate()
            process.wait(timeout=30)
        row(name, page)


def header() -> None:
    print("| code | page load in Chromium, median (worst) s | of which: response, render s | page HTML alone (httpx) s |")
    print("|---|---|---|---|")


def row(name: str, page: dict[str, float]) -> None:
    print(f"| {name} | {page['load']:.2f} ({page['worst']:.2f}) | {page['served']:.2f}, {page['rendered']:.2f} "
          f"| {page['html']:.2f} |", flush=True)


def measure(browser: object, url: str, repeat: int) -> dict[str, float]:
    html = []
    for _ in range(repeat):
        began = time.perf_counter()
        assert httpx.get(url, timeout=60).status_code == 200
        html.append(time.perf_counter() - began)
    loads: list[float] = []
    served: list[float] = []
    rendered: list[float] = []
    for _ in range(repeat):
        context = browser.new_context()  # type: ignore[attr-defined]
        tab = context.new_page()
        began = time.perf_counter()
        tab.goto(url, wait_until="load", timeout=60_000)
        loads.append(time.perf_counter() - began)
        # The browser's own split: the page's bytes arriving, then parsing, layout and the script.
        timing = tab.evaluate("() => { const t = performance.getEntriesByType('navigation')[0];"
                              " return [t.responseEnd - t.requestStart, t.loadEventEnd - t.responseEnd]; }")
        served.append(timing[0] / 1000)
        rendered.append(timing[1] / 1000)
        context.close()
    return {"load": statistics.median(loads), "worst": max(loads), "html": statistics.median(html),
            "served": statistics.median(served), "rendered": statistics.median(rendered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare-with", default=None, metavar="REF")
    parser.add_argument("--server", action="store_true", help="a server and 2 workers on PostgreSQL")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="noetl-bench-console-"))
    before = export_revision(args.compare_with, work / "before") if args.compare_with else None
    sides = ([(args.compare_with, before)] if before is not None else []) + [("working tree", None)]
    print(f"{args.items:,} iterations; load average before: {loadavg()}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            if args.server:
                on_server(args.items, sides, args.repeat, browser)
            else:
                on_local(args.items, sides, args.repeat, browser, work)
        finally:
            browser.close()
    print(f"\nload average after: {loadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
