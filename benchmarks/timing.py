"""Timing of repeated calls, shared by the benchmarks: the wall and CPU seconds of every call, and the two
summaries the results files report.

- `fastest`: the call with the least wall time, the one least disturbed by other processes on a shared machine
  (for a fixed piece of work timed a few times: a decode, a sampling run, a preprocessing pass).
- `median_time`: the median wall and CPU seconds, a typical call (for steps that vary from call to call, e.g.
  training steps with fresh random inputs).
CPU seconds are this process's, all threads (`time.process_time`): unlike wall time they do not grow when other
processes take the cores.
"""

import statistics
import time
from collections.abc import Callable
from typing import NamedTuple


class CallTime(NamedTuple):
    """One call: wall seconds, and CPU seconds of this process (all threads)."""

    wall: float
    cpu: float


def time_calls(function: Callable[[], object], repeats: int, warmup: int = 0) -> list[CallTime]:
    """Call ``function`` ``warmup`` times untimed, then ``repeats`` times timed; one CallTime per timed call."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        function()
        times.append(CallTime(time.perf_counter() - started, time.process_time() - cpu_started))
    return times


def fastest(times: list[CallTime]) -> CallTime:
    """The call with the least wall time (with its own CPU time)."""
    return min(times, key=lambda call: call.wall)


def median_time(times: list[CallTime]) -> CallTime:
    """Median wall seconds and median CPU seconds, each over all calls."""
    return CallTime(statistics.median(call.wall for call in times), statistics.median(call.cpu for call in times))
