"""Shared fixtures: tiny checkpoints are written in tmp_path by each test module."""

from __future__ import annotations

import pytest

import striate
from striate.checkpoint import Checkpoint


@pytest.fixture(scope="session")
def minilm() -> Checkpoint:
    return striate.open("sample:minilm")


@pytest.fixture(scope="session")
def smollm2() -> Checkpoint:
    return striate.open("sample:smollm2")


@pytest.fixture(scope="session")
def efficientnet() -> Checkpoint:
    return striate.open("sample:efficientnet-lite0")
