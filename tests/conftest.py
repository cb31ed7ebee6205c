"""Shared fixtures: tiny checkpoints are written in tmp_path by each test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


CHROMIUM = "/usr/bin/chromium"  # Debian's package; scripts/browser.sh installs it
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian chromium driven by playwright, with a fresh user-data dir."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (as CI does)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new page; console errors and page errors are collected in `page.errors`."""
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.errors = errors
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    """A `hostile.Sandbox`: a process capped at 2 GiB of address space and 30 s per answer, in
    which hostile files are opened and read (tests/test_hostile_*.py)."""
    from hostile import Sandbox

    box = Sandbox()
    yield box
    box.close()
