"""The reports fixture's store, built once through the CLI as a user would."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main

FIXTURE = Path(__file__).parent / "fixture"


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fixture's store and sync file, built through the CLI (rules read as `rules`)."""
    path = str(tmp_path_factory.mktemp("reports") / "fx.db")
    old = Path.cwd()
    os.chdir(FIXTURE)  # locations read `rules/rules.mr:N`, the same on every machine
    try:
        cli("crm", "load", "crm", "--store", path)
        runner = CliRunner()
        result = runner.invoke(main, ["run", "rules", "events.jsonl", "--store", path])
        assert result.exit_code == 0, result.output
        cli(
            "sync", "run", "--rules", "rules", "--store", path,
            "--until", "2026-11-24T00:00:00Z", "--changes", "crm-changes.jsonl",
        )  # fmt: skip
    finally:
        os.chdir(old)
    yield path


@pytest.fixture
def copy(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the reports fixture's store and sync file, in the working folder."""
    target = tmp_path / "fx.db"
    shutil.copy(store, target)
    shutil.copy(Path(store).with_name("fx.sync.db"), tmp_path / "fx.sync.db")
    monkeypatch.chdir(tmp_path)
    return target
