"""Suite-wide pytest hooks: marker registration and automatic `integration` marking."""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    """Register markers here too, so the suite does not depend on pyproject for --strict-markers."""
    config.addinivalue_line("markers", "integration: needs a real Docker engine and nginx")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration, so `-m "not integration"` runs the fast tests."""
    for item in items:
        if INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
