"""Where B2's sustained time goes: ``python -m bench.b2_breakdown [--rounds N] [--repeats N]``.

An ablation of B2's pipeline (``bench.b2_pipeline``), each variant in a fresh process, the variants
interleaved ``--repeats`` times:

* ``log``: B2's baseline (no filters, the log trigger);
* ``workflow``: B2's candidate (data + exprs filters, argoWorkflow trigger, SqliteStore);
* ``workflow-no-filters``: the candidate without its filters;
* ``workflow-no-store-write``: the candidate with a store whose ``create`` writes nothing (an
  ablation only: it shows what the durable write costs, it is not a pipeline anyone runs);
* ``workflow-no-store-fsync``: the candidate with the store's commits not fsynced
  (``synchronous=OFF``; an ablation only: it separates the wait for the disk from the rest of
  the store's work).

For each: the sustained rate (median round, as B2 measures it), and per event the CPU time of
every thread (``/proc/self/task``) and the time the event loop waited in ``select`` (idle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

VARIANTS = ("log", "workflow", "workflow-no-filters", "workflow-no-store-write", "workflow-no-store-fsync")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by thread name."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        name = names.get(int(tid), f"thread {tid}")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


async def _child(variant: str, rounds: int, count: int) -> dict[str, Any]:
    import bench.b2_pipeline as b2

    base = "log" if variant == "log" else "workflow"
    if variant == "workflow-no-filters":
        original = b2.sensor_manifest

        def without_filters(variant: str) -> dict[str, Any]:
            manifest = original(variant)
            manifest["spec"]["dependencies"][0].pop("filters", None)
            return manifest

        b2.sensor_manifest = without_filters
    b2.SUSTAINED_ROUNDS = rounds
    with tempfile.TemporaryDirectory(prefix="bench-b2-breakdown-") as folder:
        pipeline = b2.Pipeline(Path(folder), base)
        if variant == "workflow-no-store-write":

            async def create_nothing(obj: dict[str, Any]) -> dict[str, Any]:
                return obj

            pipeline.store.create = create_nothing  # type: ignore[method-assign]
        await pipeline.start()
        if variant == "workflow-no-store-fsync":
            pipeline.store._db().execute("PRAGMA synchronous=OFF")  # the writer's connection
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        select = selector.select
        idle = [0.0]

        def timed_select(timeout: float | None = None) -> Any:
            started = time.perf_counter()
            try:
                return select(timeout)
            finally:
                idle[0] += time.perf_counter() - started

        selector.select = timed_select
        before, started = _thread_cpu(), time.perf_counter()
        result = await b2.B2()._sustained(pipeline, count)
        wall, after = time.perf_counter() - started, _thread_cpu()
        await pipeline.stop()
    events = rounds * count
    threads = {name: (seconds - before.get(name, 0.0)) / events * 1e6 for name, seconds in after.items()}
    return {
        "variant": variant,
        "rate": result["sustained_rate"],
        "wall_us": wall / events * 1e6,
        "idle_us": idle[0] / events * 1e6,
        "threads_us": {name: round(value, 1) for name, value in threads.items() if value > 0.05},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="sustained rounds per process (default 10)")
    parser.add_argument("--count", type=int, default=2000, help="events per round (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="processes per variant, interleaved (default 3)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.rounds, args.count))))
        return
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            print(f"  {variant} {repeat + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
            command = [sys.executable, "-m", "bench.b2_breakdown", "--child", variant,
                       "--rounds", str(args.rounds), "--count", str(args.count)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    baseline = statistics.median(run["rate"] for run in runs["log"])
    print("| variant | events/s (median) | vs log | wall us/event | loop idle us/event | CPU us/event by thread |")
    print("|---|---|---|---|---|---|")
    for variant, results in runs.items():
        rate = statistics.median(run["rate"] for run in results)
        middle = sorted(results, key=lambda run: run["rate"])[len(results) // 2]
        threads = ", ".join(f"{name} {value:.0f}" for name, value in middle["threads_us"].items())
        print(f"| {variant} | {rate:,.0f} | {rate / baseline:.2f}x | {middle['wall_us']:.0f} | "
              f"{middle['idle_us']:.0f} | {threads} |")  # fmt: skip


if __name__ == "__main__":
    main()
