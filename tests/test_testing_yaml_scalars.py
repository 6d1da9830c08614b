"""`mrules test` reads test files' plain scalars as YAML 1.2's core schema: a zip code
`01234` keeps its digits, a country code `NO` and `yes`, `on`, `off` stay text
(docs/testing.md#how-values-are-read)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from mrules.cli import main

HERE = Path(__file__).parent / "testing"

CODES = """\
rules: rules.mr
tests:
  - name: codes keep their digits and letters
    events:
      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: a@x.example,
         fields: {zip: 01234, country: NO, flag: yes, on: off, time: 1:20, count: 1_000}}
    expect:
      prospects:
        a@x.example:
          fields: {zip: "01234", country: "NO", flag: "yes", "on": "off", time: "1:20",
                   count: "1_000"}
  - name: written plain in the expectation too
    events:
      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: b@x.example,
         fields: {zip: "01234", country: "NO", flag: "yes"}}
    expect:
      prospects:
        b@x.example:
          fields: {zip: 01234, country: NO, flag: yes}
  - name: numbers and booleans are still numbers and booleans
    events:
      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: c@x.example,
         fields: {n: 12, m: -3, x: 1.5, e: 1e3, zero: 0, t: true, nothing: ~}}
    expect:
      prospects:
        c@x.example:
          fields: {n: 12, m: -3, x: 1.5, e: 1000.0, zero: 0, t: true, nothing: null}
"""


def _mrules(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _write(folder: Path, text: str) -> Path:
    shutil.copy(HERE / "rules.mr", folder / "rules.mr")
    path = folder / "t.test.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_1_1_scalars_stay_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path, CODES)
    result = _mrules("test", str(path), "--format", "json")
    report = orjson.loads(result.stdout)
    assert [(o["name"], o["status"]) for o in report["tests"]] == [
        ("codes keep their digits and letters", "pass"),
        ("written plain in the expectation too", "pass"),
        ("numbers and booleans are still numbers and booleans", "pass"),
    ], result.stdout
    assert result.exit_code == 0


def test_a_broken_file_still_points_at_its_line_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "rules: rules.mr\n"
        "tests:\n"
        "  - name: one\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: a@x.example,\n"
        "         fields: {zip: 01234, country: NO}}\n"
        "    expcet: {}\n",
    )
    result = _mrules("test", str(path))
    assert result.exit_code == 2
    assert f"{path}:7:5: unknown key 'expcet' in a test (did you mean 'expect'?)" in (result.stdout)


@settings(max_examples=30, deadline=None)
@given(st.from_regex(r"0[0-9]{1,6}", fullmatch=True))
def test_a_number_with_a_leading_zero_keeps_its_digits(digits: str) -> None:
    import yaml

    from mrules.testing import _Loader

    assert yaml.load(f"zip: {digits}", Loader=_Loader) == {"zip": digits}


def test_a_name_that_looks_like_a_number_is_kept_as_written(tmp_path: Path) -> None:
    """A test's name is text: `name: 0x10` is the test "0x10", not the number 16 (and
    not a broken file, "a test needs a 'name'")."""
    path = _write(
        tmp_path,
        "rules: rules.mr\n"
        "tests:\n"
        "  - name: 0x10\n"
        "  - name: 16\n"
        "  - name: 1.50\n"
        "  - name: '2'\n"
        "  - name: 2.0\n",
    )
    result = _mrules("test", str(path), "--format", "json")
    report = orjson.loads(result.stdout)
    names = [(o["name"], o["status"]) for o in report["tests"]]
    assert names == [("0x10", "pass"), ("16", "pass"), ("1.50", "pass"), ("2", "pass"),
                     ("2.0", "pass")]  # fmt: skip
    assert result.exit_code == 0


def test_an_event_value_json_cannot_carry_is_named_in_the_test_file(tmp_path: Path) -> None:
    """`.nan` in an event was rejected as "not JSON ... at column 102" of a line the test
    file does not have; it is a broken file that names the value, at its event's line."""
    path = _write(
        tmp_path,
        "rules: rules.mr\n"
        "tests:\n"
        "  - name: one\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: a@x.example,\n"
        "         fields: {n: .nan}}\n",
    )
    result = _mrules("test", str(path))
    assert result.exit_code == 2
    assert f"{path}:5:9: event value 'fields.n' is nan, which an event cannot carry" in (
        result.stdout
    )
    assert "not JSON" not in result.stdout
