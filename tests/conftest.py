"""Test-wide settings: the suite is offline by construction, so the hub is switched off for every test; and
accelerate's process-wide state is reset before each test, so a trainer built with one mixed precision (the
evaluation recipes train in bf16) never leaks into the next test's trainer."""

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
