"""Per-task cost of Prefect 3 against per-step cost of NoETL, same machine, same run.

python bench/prefect_compare.py [--reps N]

Prefect runs in its own virtualenv, bench/.venvs/prefect (created on first use; never a project
dependency), offline: a fresh PREFECT_HOME, no PREFECT_API_URL, so flows run against Prefect's
temporary local server and its SQLite database; telemetry off. Prefect is measured twice: with its
default log level (INFO: every task run logged to the console and to its API) and with WARNING
(NoETL's in-process runs print nothing). Prefect and NoETL runs alternate; before each Prefect run
the script waits until Prefect's server has finished recording the previous flow in the
background. Reported per task/step: wall time, and CPU time (for Prefect, its client and server
processes, background recording included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, loadavg, machine, median, timed_run
from gen import chain, loop

VENV = BENCH / ".venvs" / "prefect"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ["prefect>=3,<4", "fastapi==0.154.0"]
LOG_LEVELS = ("INFO", "WARNING")  # Prefect's default, and quiet


def ensure_venv() -> None:
    if PYTHON.exists():
        return
    print(f"creating {VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)


class Prefect:
    """A Prefect process kept running (its temporary server started once), timing flows on demand."""

    def __init__(self, folder: str, log_level: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=folder, PREFECT_LOGGING_LEVEL=log_level, PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   # its default 20 s is too short for its temporary server to start on a busy machine
                   PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
        self.log = open(os.path.join(folder, "stderr.log"), "w+")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([str(PYTHON), str(BENCH / "prefect_flows.py")], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.info = json.loads(self._answer())

    def _answer(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise SystemExit(f"the Prefect process failed:\n{self.log.read()[-3000:]}")
        return line

    def cpu_seconds(self) -> float:
        """CPU time so far of the Prefect process and its children (the temporary API server)."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat.parent.name == str(self.proc.pid) or fields[1] == str(self.proc.pid):
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def settle(self, limit: float = 60.0) -> None:
        """Wait until the server has finished recording the last flow (under 5% CPU for 1 s)."""
        before, deadline = self.cpu_seconds(), time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.cpu_seconds()
            if now - before < 0.05:
                return
            before = now

    def run(self, flow: str, n: int) -> tuple[float, float]:
        """Wall seconds of one flow run, and CPU seconds of client and server until the server is idle."""
        self.settle()
        cpu = self.cpu_seconds()
        self.proc.stdin.write(f"{flow} {n}\n")
        self.proc.stdin.flush()
        wall = float(self._answer())
        self.settle()
        return wall, self.cpu_seconds() - cpu

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per measurement (median); at least 3")
    reps = max(parser.parse_args().reps, 3)
    ensure_venv()
    where = machine()
    workloads = [("200 sequential tasks / 200-step python chain", "sequential", chain(200, "python"), 200),
                 ("1,000-item `task.map` / 1,000-element parallel loop", "mapped", loop(1_000, "parallel"), 1_000)]
    timed_run(chain(10, "python"))  # warm-up: imports
    rows, started, version = [], [], ""
    for level in LOG_LEVELS:
        with tempfile.TemporaryDirectory(prefix="prefect-home-") as home:
            prefect = Prefect(home, level)
            version = prefect.info["version"]
            started.append(f"{prefect.info['first_flow']:.1f} s")
            try:
                times: dict[str, list[tuple[float, ...]]] = {flow: [] for _, flow, _, _ in workloads}
                for _ in range(reps):  # interleaved, so that a busy moment hits both alike
                    for _, flow, playbook, n in workloads:
                        theirs, ours = prefect.run(flow, n), timed_run(playbook)
                        times[flow].append((*theirs, ours.wall, ours.cpu))
            finally:
                prefect.close()
        for name, flow, _, n in workloads:
            figures = [median(list(column)) / n * 1e3 for column in zip(*times[flow], strict=True)]
            rows.append((f"{name}, Prefect log level {level}", *figures, times[flow]))
    print(f"# NoETL vs Prefect {version}\n\nMachine: {where}\n")
    print(f"Median of {reps} interleaved runs each, per task/step, both warmed up (Prefect's first flow, "
          f"which starts its temporary server, took {' and '.join(started)} and is not counted). "
          "Wall: Prefect's flow call returns before its server has recorded everything; that later work "
          "is not in its wall time. CPU: Prefect's client and server processes until the server is idle "
          "again; NoETL's one process. Prefect INFO (its default) logs every task run to the console "
          "and to its API; WARNING does neither.\n")
    print("| workload (Prefect / NoETL) | Prefect wall ms/task | NoETL wall ms/step | wall ratio "
          "| Prefect CPU ms/task | NoETL CPU ms/step | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, pw, pc, nw, nc, _ in rows:
        print(f"| {name} | {pw:.2f} | {nw:.3f} | **{pw / nw:.0f}x** | {pc:.2f} | {nc:.3f} | **{pc / nc:.0f}x** |")
    print("\nEach run, seconds (Prefect wall, Prefect CPU / NoETL wall, NoETL CPU):\n")
    for name, *_, runs in rows:
        print(f"- {name}: " + "; ".join(f"{pw:.2f}, {pc:.2f} / {nw:.3f}, {nc:.3f}" for pw, pc, nw, nc in runs))
    print(f"\nLoad average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
