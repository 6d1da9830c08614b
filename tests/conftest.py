"""Shared test fixtures: paths into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"


@pytest.fixture
def example_rules() -> Path:
    return EXAMPLE / "rules"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long fuzzing and kill tests (`slow`) are opt-in: `-m slow` or MRULES_SLOW=1."""
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("MRULES_SLOW"):
        return
    skip = pytest.mark.skip(reason="long run: opt in with -m slow or MRULES_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
