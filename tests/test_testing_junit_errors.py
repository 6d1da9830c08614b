"""`mrules test --format junit`: the `message` of an error says what the error is."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from mrules.cli import main


def _mrules(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_junit_says_which_error_the_rules_have(tmp_path: Path) -> None:
    """JUnit's `message` of a test whose rules have errors was `... the rules have
    errors:`, all that CI annotations show; it gives the first error too."""
    import xml.etree.ElementTree as ET

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "rules.mr").write_text("list {\n")
    path = tmp_path / "t.test.yaml"
    path.write_text("rules: bad\ntests:\n  - name: a\n")
    result = _mrules("test", str(path), "--format", "junit")
    assert result.exit_code == 1
    error = ET.fromstring(result.stdout_bytes).find(".//error")
    assert error is not None
    assert error.get("message", "").startswith(f"{path}:1: the rules have errors: ")
    assert "error[MR001]: unexpected '{'" in error.get("message", "")
