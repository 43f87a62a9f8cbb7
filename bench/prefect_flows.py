"""Prefect 3 side of prefect_compare.py; runs inside bench/.venvs/prefect.

Prints one JSON line once warmed up, then reads commands from stdin, one a line
(``sequential N`` or ``mapped N``), and answers each with the wall seconds of that flow run.
"""

from __future__ import annotations

import json
import sys
import time

import prefect
from prefect import flow, task


@task
def inc(x: int) -> int:
    return x + 1


@flow
def sequential(n: int) -> None:
    for i in range(n):
        inc(i)


@flow
def mapped(n: int) -> list[int]:
    return [future.result() for future in inc.map(range(n))]


def seconds(flow_function, n: int) -> float:
    started = time.perf_counter()
    flow_function(n)
    return time.perf_counter() - started


def main() -> None:
    first = seconds(sequential, 1)  # starts the temporary API server and its SQLite database
    print(json.dumps({"version": prefect.__version__, "first_flow": first}), flush=True)
    flows = {"sequential": sequential, "mapped": mapped}
    for line in sys.stdin:
        name, n = line.split()
        print(seconds(flows[name], int(n)), flush=True)


if __name__ == "__main__":
    main()
