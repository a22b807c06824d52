"""Core overheads, each as a ratio or difference against the plain-Python baseline measured in the same run.

- ``import flyte`` wall time vs ``import anyio, msgspec, cloudpickle`` (the dependency floor), fresh interpreters.
- Nested-call overhead: a task awaiting a child task vs a plain ``await`` of the same function, sequential and
  gathered, for 1,000 and 10,000 children: microseconds per call and peak traced memory.

Targets (issue 2): <= 20 us per nested call; import <= 1.3x the floor; 10,000 concurrent children <= 0.5 s, <= 200 MB.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import tracemalloc

import flyte

env = flyte.TaskEnvironment(name="bench")


async def plain_child(x: int) -> int:
    return x + 1


child = env.task(plain_child)


@env.task
async def sequential_parent(n: int) -> int:
    total = 0
    for i in range(n):
        total += await child(i)
    return total


@env.task
async def gathered_parent(n: int) -> int:
    return sum(await asyncio.gather(*[child(i) for i in range(n)]))


async def plain_sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += await plain_child(i)
    return total


async def plain_gathered(n: int) -> int:
    return sum(await asyncio.gather(*[plain_child(i) for i in range(n)]))


def _import_seconds(*statements: str, repeats: int = 15) -> list[float]:
    """Median import time of each statement in fresh interpreters, interleaved so machine noise hits all alike."""
    samples: list[list[float]] = [[] for _ in statements]
    for _ in range(repeats):
        for index, statement in enumerate(statements):
            out = subprocess.run(
                [sys.executable, "-c", f"import time; t=time.perf_counter(); {statement}; print(time.perf_counter()-t)"],
                capture_output=True, text=True, check=True,
            ).stdout
            samples[index].append(float(out))
    return [statistics.median(s) for s in samples]


def _timed(coro_factory) -> tuple[float, float]:
    """Median seconds of 5 runs, and peak traced MiB of one more."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        asyncio.run(coro_factory())
        samples.append(time.perf_counter() - start)
    tracemalloc.start()
    asyncio.run(coro_factory())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(samples), peak / 2**20


async def _flyte(parent, n):
    run = await flyte.with_runcontext(progress="quiet").run.aio(parent, n=n)
    return run.outputs()[0]


def _compile_sdk() -> None:
    """Write the SDK's bytecode first, as an installed (non-editable) package has it, so imports are compared in
    their steady state rather than with a first-time compile that site-packages never pays."""
    import compileall
    import os

    compileall.compile_dir(os.path.dirname(flyte.__file__), quiet=1)


def main() -> dict[str, float]:
    results: dict[str, float] = {}
    _compile_sdk()
    floor, ours = _import_seconds("import anyio, msgspec, cloudpickle", "import flyte")
    results["import_ratio"] = ours / floor
    print(f"import flyte: {ours * 1e3:.1f} ms vs deps floor {floor * 1e3:.1f} ms -> {ours / floor:.2f}x (target <= 1.3x)")

    # A run's fixed cost (temp dir, root action, teardown) is not a per-call cost: measured once and subtracted.
    empty_s, _ = _timed(lambda: _flyte(sequential_parent, 0))
    print(f"empty run (fixed cost, subtracted below): {empty_s * 1e3:.2f} ms")
    for n in (1_000, 10_000):
        for label, parent, plain in (("sequential", sequential_parent, plain_sequential),
                                     ("gathered", gathered_parent, plain_gathered)):
            base_s, base_mb = _timed(lambda plain=plain, n=n: plain(n))
            ours_s, ours_mb = _timed(lambda parent=parent, n=n: _flyte(parent, n))
            per_call = (ours_s - empty_s - base_s) / n * 1e6
            results[f"{label}_{n}_us_per_call"] = per_call
            print(f"{label:>10} {n:>6} children: {ours_s * 1e3:8.1f} ms (plain await {base_s * 1e3:6.1f} ms) "
                  f"-> overhead {per_call:5.1f} us/call (target <= 20); peak {ours_mb:6.1f} MiB (plain {base_mb:5.1f})")
            results[f"{label}_{n}_seconds"] = ours_s
            results[f"{label}_{n}_peak_mib"] = ours_mb
    print(f"10,000 concurrent children: {results['gathered_10000_seconds']:.3f} s (target <= 0.5 s), "
          f"{results['gathered_10000_peak_mib']:.0f} MiB traced peak (target <= 200 MB)")
    return results


if __name__ == "__main__":
    main()
