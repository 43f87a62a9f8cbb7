"""Cost of handing a trivial callable to the python tool's daemon-thread pool and back.

python bench/thread_handoff.py [--calls N] [--rounds N]

Interleaves, round by round, the two ways a thread-mode step's result comes back to the event loop:
through the loop's future (woken from the thread) and through the brief wait a lone step gets.
Prints µs per call, wall and CPU, for each round.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import loadavg, machine

from noetl.tools.python_threads import _thread_pool


async def per_call(calls: int, brief_wait: bool) -> tuple[float, float]:
    pool = _thread_pool()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await pool.run(int, brief_wait=brief_wait)
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


async def main(calls: int, rounds: int) -> None:
    print(f"# Thread hand-off\n\nMachine: {machine()}\n")
    print("| round | through the loop's future, µs wall / CPU | brief wait, µs wall / CPU |")
    print("|---:|---:|---:|")
    await per_call(200, brief_wait=False)  # the pool's thread started, code warm
    for number in range(1, rounds + 1):
        future_wall, future_cpu = await per_call(calls, brief_wait=False)
        brief_wall, brief_cpu = await per_call(calls, brief_wait=True)
        print(f"| {number} | {future_wall:.1f} / {future_cpu:.1f} | {brief_wall:.1f} / {brief_cpu:.1f} |")
    print(f"\nLoad average at the end: {loadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
