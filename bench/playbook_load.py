"""Cost of loading a playbook (YAML parse, checks, model) per step, with the garbage collector on and paused.

python bench/playbook_load.py [--reps N]

Every ``noetl run`` loads its playbook first, so on chains this is part of the per-step figures
of local_overhead.py. CPU time of this process, median of ``--reps`` loads.
"""

from __future__ import annotations

import argparse
import gc
import time

from common import machine, median
from gen import chain

from noetl.dsl.load import parse_yaml
from noetl.dsl.parse import load_playbook_text


def cpu_seconds(work, text: str, paused: bool) -> float:
    if paused:
        gc.disable()
    try:
        started = time.process_time()
        work(text)
        return time.process_time() - started
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    reps = max(parser.parse_args().reps, 3)
    print(f"# Playbook loading\n\nMachine: {machine()}\n")
    print("| kind | steps | GC | load ms/step | of which parse_yaml ms/step |")
    print("|---|---:|---|---:|---:|")
    for kind in ("noop", "python"):
        for n in (1_000, 10_000):
            text = chain(n, kind)
            for paused in (False, True):
                load = median([cpu_seconds(lambda t: load_playbook_text(t, "<bench>"), text, paused)
                               for _ in range(reps)])
                parse = median([cpu_seconds(parse_yaml, text, paused) for _ in range(reps)])
                print(f"| {kind} | {n:,} | {'paused' if paused else 'on'} | {load / n * 1e3:.3f} "
                      f"| {parse / n * 1e3:.3f} |")


if __name__ == "__main__":
    main()
