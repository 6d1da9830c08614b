"""Shared test fixtures: paths into the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"


@pytest.fixture
def example_rules() -> Path:
    return EXAMPLE / "rules"
