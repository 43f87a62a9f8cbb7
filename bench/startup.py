"""Where the start-up of `noetl run` goes, in CPU instructions (valgrind's callgrind).

    python bench/startup.py [--out bench/results/startup.md] [--base DIR]

Wall time on a shared machine swings with the load; an instruction count does not (the same
interpreter, bytecode and input give the same count whatever else runs). This script counts the
instructions of `noetl run` on a 3-step playbook and of importing each layer it needs on its own,
with bytecode cached (PYTHONPYCACHEPREFIX) as after `pip install`, and also records the median wall
time of 10 runs for scale. The run is measured as a user's second run of a playbook (its checks in
the cache of validated playbooks, NOETL_HOME kept) and as a first run (a fresh NOETL_HOME).
``--base DIR`` also measures the whole run of NoETL exported at DIR (``git archive``), put first on
PYTHONPATH, in the same run of this script, and times the two trees in turn (20 runs each). Needs `valgrind` (Debian package).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: three}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next: {arcs: [{step: b}]}
  - step: b
    tool: {kind: noop}
    next: {arcs: [{step: end}]}
  - step: end
"""
# Each layer is measured on its own (one interpreter each); later ones include the earlier ones. A run
# again from the cache imports neither pydantic nor the playbook models (noetl.dsl.records).
LAYERS = [
    ("python -c pass", "pass"),
    ("+ asyncio (as `noetl` imports it: without ssl)", "import noetl.cli, asyncio"),
    ("+ click, sqlite3", "import noetl.cli, asyncio, click, sqlite3"),
    ("+ the modules `noetl run` imports first", "import noetl.cli.running, noetl.api, noetl.runtime.local"),
]
# Not on that path, for scale: what a first run, `noetl validate` or the server add to load a playbook.
MODELS = ("pydantic and the playbook models (noetl.dsl.model), not imported by a run again",
          "import noetl.cli.running, noetl.api, noetl.runtime.local, noetl.dsl.model")


def instructions(argv: list[str], env: dict[str, str]) -> int:
    with tempfile.NamedTemporaryFile(prefix="callgrind-") as out:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", *argv],
                              env=env, capture_output=True, text=True, check=False, cwd=env["NOETL_BENCH_CWD"])
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise RuntimeError(f"callgrind gave no count: {proc.stderr[-500:]}")
    return int(match.group(1))


def measure_run(run: list[str], env: dict[str, str]) -> tuple[list[float], int]:
    """Wall times of 10 runs and the instructions of one, after a first run (bytecode, cache)."""
    subprocess.run(run, env=env, capture_output=True, check=True, cwd=env["NOETL_BENCH_CWD"])
    walls = []
    for _ in range(10):
        began = time.perf_counter()
        subprocess.run(run, env=env, capture_output=True, check=True, cwd=env["NOETL_BENCH_CWD"])
        walls.append(time.perf_counter() - began)
    return walls, instructions(run, env)


def interleaved(run: list[str], envs: list[dict[str, str]], rounds: int = 20) -> list[list[tuple[float, float]]]:
    """(wall, CPU) times of ``run`` under each env, taken in turn (one of each per round), so that a
    change in the machine's load falls on all of them alike."""
    times: list[list[tuple[float, float]]] = [[] for _ in envs]
    for _ in range(rounds):
        for env, taken in zip(envs, times, strict=True):
            began, used = time.perf_counter(), _children_cpu()
            subprocess.run(run, env=env, capture_output=True, check=True, cwd=env["NOETL_BENCH_CWD"])
            taken.append((time.perf_counter() - began, _children_cpu() - used))
    return times


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _medians(taken: list[tuple[float, float]]) -> str:
    walls, cpus = [w for w, _ in taken], [c for _, c in taken]
    return (f"wall median **{statistics.median(walls):.3f} s** (min {min(walls):.3f} s), "
            f"CPU median {statistics.median(cpus):.3f} s")


def base_lines(base: str | None, measured: tuple[list[float], int] | None,
               turns: list[list[tuple[float, float]]] | None) -> list[str]:
    if base is None or measured is None or turns is None:
        return []
    walls, total = measured
    (this, then) = turns
    return [f"- the same run of the NoETL tree at {base} (on PYTHONPATH), in this run of the script: "
            f"**{total / 1e6:.0f} M** instructions; wall median {statistics.median(walls):.3f} s, "
            f"min {min(walls):.3f} s",
            f"- interleaved, {len(this)} runs each (load average {os.getloadavg()[0]:.1f} after): this tree "
            f"{_medians(this)}; the tree at {base} {_medians(then)}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup.md"))
    parser.add_argument("--base", help="a NoETL tree (git archive) to measure the whole run of too")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="noetl-startup-") as folder:
        playbook = Path(folder) / "three.yaml"
        playbook.write_text(PLAYBOOK)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        # Every process starts in the temporary folder: with `python -m`, a NoETL tree in the working
        # directory would come first on sys.path (before --base's PYTHONPATH).
        env.update(PYTHONPYCACHEPREFIX=str(Path(folder) / "pycache"), NOETL_HOME=str(Path(folder) / "home"),
                   NOETL_BENCH_CWD=folder)
        run = [python, "-m", "noetl.cli.main", "run", str(playbook)]
        walls, total = measure_run(run, env)
        first_run = instructions(run, {**env, "NOETL_HOME": str(Path(folder) / "fresh-home")})
        base = turns = None
        if args.base:
            base_env = {**env, "PYTHONPATH": str(Path(args.base).resolve()), "NOETL_HOME": str(Path(folder) / "base")}
            base = measure_run(run, base_env)
            turns = interleaved(run, [env, base_env])
        layers = []
        for label, code in LAYERS:
            subprocess.run([python, "-c", code], env=env, check=True, cwd=folder)
            layers.append((label, instructions([python, "-c", code], env)))
        models = instructions([python, "-c", MODELS[1]], env)
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip() or "unknown"
    lines = ["# Start-up of `noetl run`", "",
             f"Command: `python bench/startup.py{' --base ' + args.base if args.base else ''}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, at {revision}); interpreter {python}, "
             "bytecode cached; a 3-step playbook (python, noop, noop), run again on the same NOETL_HOME as a "
             "user would (each run adds an execution to its store).", "",
             f"- wall time: median {statistics.median(walls):.3f} s, min {min(walls):.3f} s of 10 runs "
             f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when measured)",
             f"- instructions of the whole run: **{total / 1e6:.0f} M**; a first run of the playbook "
             f"(fresh NOETL_HOME, so its checks are not cached yet): {first_run / 1e6:.0f} M", *base_lines(args.base, base, turns),
             "",
             "| layer | instructions (M) | added (M) | share of the run |", "|---|---:|---:|---:|"]
    previous = 0
    for label, count in layers:
        lines.append(f"| {label} | {count / 1e6:.0f} | {(count - previous) / 1e6:.0f} | "
                     f"{(count - previous) / total:.0%} |")
        previous = count
    lines.append(f"| running the playbook (store, engine, tools) | {total / 1e6:.0f} | "
                 f"{(total - previous) / 1e6:.0f} | {(total - previous) / total:.0%} |")
    lines += ["", f"- {MODELS[0]}: {(models - layers[-1][1]) / 1e6:.0f} M more"]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text + "\n" + READING, encoding="utf-8")


READING = """\
## Reading

A run again of a playbook (the usual case: a playbook is written once and run many times) takes its
checked and validated form from the cache of validated playbooks in NOETL_HOME as plain records of
the models (noetl.dsl.records), so it neither parses YAML nor runs the checks, and it imports
neither pydantic nor the playbook model classes, YAML, Jinja (without templates in the playbook),
croniter nor OpenSSL (asyncio's ssl support waits for a TLS connection). A first run still does all
of it. Each layer is measured in an interpreter of its own, importing asyncio as the `noetl` command
does (without ssl; `import asyncio` alone costs about 30 M more).

What remains is the interpreter with its site packages, asyncio, click and sqlite3, NoETL's own
modules for the run (CLI, engine, runtime, SQLite store, python tool), and the run itself.
"""


if __name__ == "__main__":
    main()
