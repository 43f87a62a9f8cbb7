"""Cost of streaming logs: marginal ms per step of 1,000-step python chains, silent and printing.

python bench/streamed_logs.py [--reps N]

A reduced variant of local_overhead.py's chains (in-process ``noetl.run``, fresh NOETL_HOME per
run): ``python`` steps print nothing, ``python-print`` steps print one line each, so the second
row shows what storing a call's lines costs on top of its event.
"""

from __future__ import annotations

import argparse

from common import loadavg, median_run
from gen import TOOLS, chain

TOOLS["python-print"] = '{kind: python, code: "print(\'step done\')\\nresult = 1"}'
SIZES = (10, 1_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {loadavg()}\n")
    print("| kind | wall s (10) | wall s (1000) | ms/step marginal | CPU ms/step marginal |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("python", "python-print"):
        runs = {n: median_run(chain(n, kind), args.reps) for n in SIZES}
        wall = (runs[1000].wall - runs[10].wall) / 990 * 1e3
        cpu = (runs[1000].cpu - runs[10].cpu) / 990 * 1e3
        print(f"| {kind} | {runs[10].wall:.3f} | {runs[1000].wall:.3f} | {wall:.3f} | {cpu:.3f} |", flush=True)
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
