"""Spark plugin overheads against raw pyspark, measured in the same run, each side in fresh processes (fresh JVMs).

- cold: a Spark task's first call (flyte run, session start, code bundle shipped, query) vs
  ``SparkSession.builder.getOrCreate()`` + the same query, both timed from before pyspark/flyte are imported.
- warm: later calls of the task in the same run vs the raw query repeated on the live session (median per call);
  and, since a query's own jitter is larger than the plugin's cost, the time of a warm call of a task that does no
  Spark work (the whole per-call cost of flyte + the plugin on a live session).

Targets (issue 4): cold <= raw + 5 %; warm <= raw + 10 ms. ``BENCH_SPARK_REPEATS`` (default 3) alternates raw and
flyte processes that many times; medians are reported, since a shared machine's JVM start times vary widely.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

MASTER_THREADS = 2
WARM_CALLS = 15
QUERY_ROWS = 200_000
NOOP_CALLS = 300


def _query(session) -> int:  # type: ignore[no-untyped-def]
    return int(session.range(QUERY_ROWS).selectExpr("sum(id) AS s").collect()[0][0])


def raw_side() -> dict[str, object]:
    started = time.perf_counter()
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master(f"local[{MASTER_THREADS}]").appName("bench-raw")
               .config("spark.log.level", "WARN").config("spark.ui.showConsoleProgress", "false").getOrCreate())
    _query(session)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(WARM_CALLS):
        begin = time.perf_counter()
        _query(session)
        warm.append(time.perf_counter() - begin)
    session.stop()
    return {"cold": cold, "warm": warm}


def flyte_side() -> dict[str, object]:
    started = time.perf_counter()
    import flyte
    from flyteplugins.spark.task import Spark

    spark_env = flyte.TaskEnvironment(name="bench_spark", plugin_config=Spark(
        spark_conf={"spark.executor.instances": str(MASTER_THREADS)}))
    driver_env = flyte.TaskEnvironment(name="bench_spark_driver")

    @spark_env.task
    async def query() -> int:
        return _query(flyte.ctx().data["spark_session"])

    @spark_env.task
    async def noop() -> None:
        flyte.ctx().data["spark_session"]

    @driver_env.task
    async def driver() -> dict:
        await query()
        cold = time.perf_counter() - started
        warm = []
        for _ in range(WARM_CALLS):
            begin = time.perf_counter()
            await query()
            warm.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        for _ in range(NOOP_CALLS):
            await noop()
        return {"cold": cold, "warm": warm, "noop": (time.perf_counter() - begin) / NOOP_CALLS}

    return flyte.with_runcontext(progress="quiet").run(driver).outputs()[0]  # type: ignore[no-any-return]


def _in_fresh_process(side: str) -> dict[str, object]:
    code = f"import json, benchmarks.bench_spark as b; print('BENCH' + json.dumps(b.{side}()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "FLYTE_PROGRESS": "quiet"})
    for line in done.stdout.splitlines():
        if line.startswith("BENCH"):
            return json.loads(line[5:])  # type: ignore[no-any-return]
    raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")


def main() -> None:
    repeats = int(os.environ.get("BENCH_SPARK_REPEATS", "3"))
    raw_cold, ours_cold, raw_warm, ours_warm, noop = [], [], [], [], []
    for _ in range(repeats):
        raw, ours = _in_fresh_process("raw_side"), _in_fresh_process("flyte_side")
        raw_cold.append(raw["cold"])
        ours_cold.append(ours["cold"])
        raw_warm.append(statistics.median(raw["warm"]))  # type: ignore[arg-type]
        ours_warm.append(statistics.median(ours["warm"]))  # type: ignore[arg-type]
        noop.append(ours["noop"])
    cold_ratio = statistics.median(ours_cold) / statistics.median(raw_cold)
    paired = statistics.median(o / r for o, r in zip(ours_cold, raw_cold, strict=True))
    warm_delta_ms = (statistics.median(ours_warm) - statistics.median(raw_warm)) * 1e3
    print(f"spark cold first call: flyte {statistics.median(ours_cold):.2f} s vs raw getOrCreate+query "
          f"{statistics.median(raw_cold):.2f} s -> ratio {cold_ratio:.3f} (paired median {paired:.3f}; "
          f"target <= 1.05; {repeats} alternating pairs)")
    print(f"spark warm call: flyte {statistics.median(ours_warm) * 1e3:.1f} ms vs raw query "
          f"{statistics.median(raw_warm) * 1e3:.1f} ms -> +{warm_delta_ms:.1f} ms per call "
          f"(ratio {statistics.median(ours_warm) / statistics.median(raw_warm):.3f}; target <= +10 ms)")
    print(f"spark warm call of a task doing no Spark work: {statistics.median(noop) * 1e3:.3f} ms per call "
          "(flyte + plugin cost on a live session)")


if __name__ == "__main__":
    main()
