"""Overhead of the local runtime, everything included (events in SQLite, fresh NOETL_HOME per run).

python bench/local_overhead.py [--reps N] [--gc-threshold N]

Prints Markdown: chains of noop / python steps, loops, a 10,000-element parallel loop in a
subprocess (time and peak RSS), start-up of the ``noetl run`` command and its slowest imports.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, REPO, loadavg, machine, median, median_run, timed_run
from gen import chain, loop

CHAIN_SIZES = (10, 1_000, 10_000)
KINDS = ("noop", "python", "python-inline")  # python: default thread isolation
HEAVY = ("duckdb", "psycopg", "httpx", "fastapi", "uvicorn", "sqlalchemy", "pandas", "numpy")

# Peak RSS is read from VmHWM: ru_maxrss of a child started from this (large) process keeps the
# parent's high-water mark across fork/exec on Linux, so it overstates the child's own peak.
BIG_LOOP_CHILD = """
import gc, json, sys
gc.set_threshold(*{threshold!r})
sys.path.insert(0, {bench!r})
from common import timed_run
from gen import loop
wall, cpu, _ = timed_run(loop(10_000, "parallel"))
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(json.dumps({{"wall": wall, "cpu": cpu, "vmhwm_kb": int(hwm[0])}}))
"""


def per_step(seconds: dict[int, float], n: int) -> float:
    """Marginal ms per step: (T(n) - T(10)) / (n - 10), fixed start-up cost removed."""
    return (seconds[n] - seconds[10]) / (n - 10) * 1e3


def chains(reps: int) -> None:
    print(f"## Chains (in-process `noetl.run`, median of {reps} runs per size)\n")
    print("ms/step: wall T(n)/n; marginal (T(n)-T(10))/(n-10) of wall and of the process's CPU time; "
          "GC: share of the wall time spent in the garbage collector.\n")
    print("| kind | steps | wall s | ms/step T(n)/n | ms/step marginal | CPU ms/step marginal | GC |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    growth = []
    for kind in KINDS:
        runs = {n: median_run(chain(n, kind), reps) for n in CHAIN_SIZES}
        wall = {n: r.wall for n, r in runs.items()}
        cpu = {n: r.cpu for n, r in runs.items()}
        for n, r in runs.items():
            marginal = f"{per_step(wall, n):.3f} | {per_step(cpu, n):.3f}" if n > 10 else "- | -"
            print(f"| {kind} | {n:,} | {r.wall:.3f} | {r.wall / n * 1e3:.3f} | {marginal} | {r.gc / r.wall:.0%} |")
        big, mid = CHAIN_SIZES[-1], CHAIN_SIZES[-2]
        growth.append(f"{kind} {per_step(wall, big) / per_step(wall, mid):.2f}")
    print(f"\nLinear growth, marginal ms/step at {CHAIN_SIZES[-1]:,} / at {CHAIN_SIZES[-2]:,} "
          f"(1.00 = linear): {', '.join(growth)}.\n")


def loops(reps: int) -> None:
    print(f"## Loops of trivial python tasks (median of {reps})\n")
    print("| loop | wall s | CPU s | ms/element |")
    print("|---|---:|---:|---:|")
    for mode in ("sequential", "parallel"):
        r = median_run(loop(1_000, mode), reps)
        print(f"| 1,000 {mode} (in-process) | {r.wall:.3f} | {r.cpu:.3f} | {r.wall:.3f} |")
    runs = []
    child = BIG_LOOP_CHILD.format(bench=str(BENCH), threshold=gc.get_threshold())
    for _ in range(reps):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout
        runs.append({**json.loads(out), "process": time.perf_counter() - started})
    wall, cpu, process = (median([r[key] for r in runs]) for key in ("wall", "cpu", "process"))
    peak = max(r["vmhwm_kb"] for r in runs) / 1024
    print(f"| 10,000 parallel (subprocess) | {wall:.3f} | {cpu:.3f} | {wall / 10:.3f} |")
    print(f"\n10,000-element parallel loop in its own process: `noetl.run` {wall:.2f} s, whole subprocess "
          f"{process:.2f} s (median of {reps}); peak RSS (VmHWM) **{peak:.0f} MB** (max over runs).\n")


def noetl_command() -> tuple[str, str]:
    venv = REPO / ".venv" / "bin" / "noetl"
    exe = str(venv) if venv.exists() else shutil.which("noetl")
    if exe is None:
        raise SystemExit("no `noetl` command found")
    first = Path(exe).read_text(errors="replace").splitlines()[0]
    interpreter = first[2:].strip() if first.startswith("#!") else sys.executable
    return exe, interpreter


def startup(runs: int = 10) -> None:
    exe, interpreter = noetl_command()
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as folder:
        playbook = Path(folder) / "three.yaml"
        playbook.write_text(chain(3, "python"))
        # Bytecode of every module cached, as after `pip install`; kept out of the source tree.
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(Path(folder) / "pycache")

        def wall(argv: list[str], env: dict[str, str], home: str | None = None) -> float:
            with tempfile.TemporaryDirectory(prefix="noetl-home-") as fresh:
                started = time.perf_counter()
                subprocess.run(argv, env={**env, "NOETL_HOME": home or fresh}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
                return time.perf_counter() - started

        command = [exe, "run", str(playbook)]
        kept_home = str(Path(folder) / "home")  # a user's second run: the playbook's checks are cached
        wall(command, cached, kept_home)  # compiles the bytecode, warms the file cache, fills the cache
        times: dict[str, list[float]] = {"again": [], "cached": [], "as_is": [], "bare": []}
        for _ in range(runs):  # interleaved, so that a busy moment hits all of them alike
            times["again"].append(wall(command, cached, kept_home))
            times["cached"].append(wall(command, cached))
            times["as_is"].append(wall(command, dict(os.environ)))
            times["bare"].append(wall([interpreter, "-c", "pass"], cached))
        again, cli, as_is, bare = (f"{median(t):.3f} s (min {min(t):.3f})" for t in times.values())
        trace = subprocess.run([interpreter, "-X", "importtime", "-m", "noetl.cli.main", "run", str(playbook)],
                               env={**cached, "NOETL_HOME": kept_home}, capture_output=True, text=True).stderr
    imports = []
    for line in trace.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, total, name = (part.strip() for part in line[len("import time:"):].split("|"))
            imports.append((int(total), int(own), name))
    heavy = sorted({name for _, _, name in imports if name.split(".")[0] in HEAVY})
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE") or "unset"
    print(f"## Start-up: `{exe} run` of a 3-step python playbook\n")
    print(f"Interpreter `{interpreter}`, median of {runs} runs:\n")
    print(f"- bytecode cached (as installed), the playbook run again on the same NOETL_HOME (its checks cached): "
          f"**{again}** wall;")
    print(f"- bytecode cached, a fresh NOETL_HOME each run (the playbook's first run): {cli};")
    print(f"- this shell's environment as is (PYTHONDONTWRITEBYTECODE={flag}), fresh NOETL_HOME: {as_is};")
    print(f"- bare `python -c pass`: {bare}.\n")
    print(f"Sum of import times (bytecode cached, under `-X importtime`): {sum(o for _, o, _ in imports) / 1e3:.0f} ms; "
          f"heavy modules imported: {', '.join(heavy) or 'none'} (watched: {', '.join(HEAVY)}).\n")
    print("Top imports by cumulative time (`python -X importtime -m noetl.cli.main run ...`, run again):\n")
    print("| cumulative ms | self ms | module |")
    print("|---:|---:|---|")
    for total, own, name in sorted(imports, reverse=True)[:15]:
        print(f"| {total / 1e3:.1f} | {own / 1e3:.1f} | `{name}` |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per measurement (median); at least 3")
    parser.add_argument("--gc-threshold", type=int, metavar="N",
                        help="run with gc.set_threshold(N, 20, 10) instead of Python's default (700, 10, 10)")
    args = parser.parse_args()
    reps = max(args.reps, 3)
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 20, 10)
    print(f"# Local runtime overhead\n\nMachine: {machine()}; gc thresholds {gc.get_threshold()}\n")
    timed_run(chain(10, "python"))  # warm-up: imports, compiled code
    chains(reps)
    loops(reps)
    startup()
    print(f"Load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
