"""benchmarks/timing.py: every call is timed once, warm-ups are not, and the summaries pick the right calls."""

import pytest

from benchmarks.timing import CallTime, fastest, median_time, time_calls


def test_time_calls_times_each_repeat_after_untimed_warmups():
    calls = []
    times = time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert len(times) == 3
    assert all(call.wall >= 0 and call.cpu >= 0 for call in times)


def test_time_calls_measures_cpu_work():
    times = time_calls(lambda: sum(range(200_000)), repeats=2)
    assert all(call.wall > 0 and call.cpu > 0 for call in times)


def test_time_calls_rejects_no_repeats():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_calls(lambda: None, repeats=0)


def test_fastest_is_the_least_wall_time_with_its_own_cpu_time():
    times = [CallTime(3.0, 1.0), CallTime(1.0, 5.0), CallTime(2.0, 0.5)]
    assert fastest(times) == CallTime(1.0, 5.0)


def test_median_time_takes_each_median_separately():
    times = [CallTime(3.0, 1.0), CallTime(1.0, 5.0), CallTime(2.0, 0.5)]
    assert median_time(times) == CallTime(2.0, 1.0)
