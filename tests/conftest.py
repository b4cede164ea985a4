"""Test-wide settings: the suite is offline by construction, so the hub is switched off for every test."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
