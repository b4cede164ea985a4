"""benchmarks.bench_end_to_end.StepClock: one step per call, or per group of overlapping calls (our guidance
halves run in two threads)."""

import threading
import time

import torch

from benchmarks.bench_end_to_end import StepClock


class _Sleeper(torch.nn.Module):
    def forward(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


def test_sequential_calls_are_steps_and_overlapping_calls_one_step():
    module = _Sleeper()
    clock = StepClock(module)
    module(0.02)
    module(0.02)
    assert len(clock.step_times(0)) == 2
    clock.reset()
    barrier = threading.Barrier(2)

    def half(seconds):
        barrier.wait()
        module(seconds)

    threads = [threading.Thread(target=half, args=(seconds,)) for seconds in (0.05, 0.1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (step,) = clock.step_times(0)
    # From the first start to the last end: at least the longer call.
    assert step >= 0.1
