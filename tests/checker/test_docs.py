"""docs/diagnostics.md and checker.CODES agree, and every documented example yields its code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mrules.checker import CODES, check_loaded
from mrules.loader import load_text

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "diagnostics.md").read_text("utf-8")
SECTION = re.compile(r"^## (MR\d{3}): (.+)$", re.MULTILINE)
BLOCK = re.compile(r"^```mrules\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# Parser and loader codes whose examples live in the parser's own tests and corpora.
TESTED_ELSEWHERE = {
    "MR001",
    "MR002",
    "MR003",
    "MR004",
    "MR012",
    "MR020",
    "MR021",
    "MR022",
    "MR023",
    "MR024",
}
# Loader codes about files on disk (links, chains of files): their examples are
# shell sessions (```text), and tests/test_loader.py produces each through the CLI.
ON_DISK = {"MR022", "MR023", "MR024"}
TEXT_BLOCK = re.compile(r"^```text\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def sections() -> dict[str, tuple[str, str]]:
    """code -> (title, body) for every `## MRxxx: title` section."""
    heads = list(SECTION.finditer(DOC))
    out = {}
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        body = DOC[head.end() : nxt.start() if nxt else len(DOC)]
        out[head.group(1)] = (head.group(2).strip(), body)
    return out


def test_every_code_is_documented_once_with_its_title() -> None:
    found = sections()
    assert len(SECTION.findall(DOC)) == len(found), "a code has two sections"
    assert sorted(found) == sorted(CODES)
    for code, (title, _) in found.items():
        assert title == CODES[code], code


@pytest.mark.parametrize("code", sorted(CODES))
def test_documented_example_yields_its_code(code: str) -> None:
    _, body = sections()[code]
    if code in ON_DISK:
        assert not BLOCK.findall(body), f"{code}: a rule-text example could be tested here"
        assert any(f"error[{code}]" in b for b in TEXT_BLOCK.findall(body)), code
        return
    blocks = BLOCK.findall(body)
    assert blocks, f"{code} has no ```mrules example"
    for block in blocks:
        codes = {d.code for d in check_loaded(load_text(block, "example.mr"))}
        assert code in codes, f"{code} example yields {sorted(codes)}:\n{block}"


def test_every_code_is_produced_by_a_checker_chunk() -> None:
    expected = set()
    for path in (ROOT / "tests" / "checker").glob("*.mr"):
        expected |= set(re.findall(r"###\s*(MR\d{3})", path.read_text("utf-8")))
    missing = set(CODES) - TESTED_ELSEWHERE - expected
    assert not missing, f"codes no chunk produces: {sorted(missing)}"
    assert expected <= set(CODES), f"chunks expect unknown codes: {sorted(expected - set(CODES))}"
