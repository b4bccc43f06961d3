"""Suite-wide pytest hooks: marker registration, automatic `integration` marking, and
the Hypothesis profile the fuzz tests run under."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The fuzz tests replay the same examples on every run, so a CI verdict never depends on
# luck: a failure found by chance after a change landed would block unrelated work. Set
# DOCKYARD_FUZZ_RANDOM=1 to explore new examples (do so before changing a parser).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("DOCKYARD_FUZZ_RANDOM") == "1" else "repeatable")

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    """Register markers here too, so the suite does not depend on pyproject for --strict-markers."""
    config.addinivalue_line("markers", "integration: needs a real Docker engine and nginx")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration, so `-m "not integration"` runs the fast tests."""
    for item in items:
        if INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
