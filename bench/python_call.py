"""Cost of one python tool call of trivial code, everything of the tool included.

python bench/python_call.py [CODE] [--calls N]

Runs ``run_python`` of CODE (default ``result = 1``, which runs on the event loop: brief code)
N times (default 3,000) in one process after 200 warm-up calls and prints µs per call, wall and
CPU. Point PYTHONPATH at another tree's ``noetl`` to measure that tree; alternate the trees.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import loadavg

from noetl.tools.base import ToolCall
from noetl.tools.python import run_python


async def per_call(code: str, calls: int) -> tuple[float, float]:
    def call() -> ToolCall:
        return ToolCall(execution_id="bench", step="s", task="s", args={}, context={})

    for _ in range(200):
        await run_python({"code": code}, call())
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await run_python({"code": code}, call())
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("code", nargs="?", default="result = 1")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    wall, cpu = asyncio.run(per_call(args.code, args.calls))
    print(f"{args.code!r}: {wall:.1f} µs wall, {cpu:.1f} µs CPU per call (load {loadavg()})")


if __name__ == "__main__":
    main()
