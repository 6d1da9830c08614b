"""Chunked checker tests (STYLE R13): each `---` chunk of tests/checker/*.mr is a rule set.

A trailing `### CODE "regex"` (or `### "regex"`) comment says a diagnostic
must start on that line with that code and a message matching the regex;
every other line must produce nothing. Both directions are checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mrules.checker import check_loaded
from mrules.loader import load_text
from mrules.source import Source

HERE = Path(__file__).parent
EXPECT = re.compile(r'###\s*(?:(MR\d{3})\s+)?"((?:[^"\\]|\\.)*)"')


def chunks() -> list[tuple[str, int, str]]:
    """(file name, first line number, text) of every chunk."""
    out = []
    for path in sorted(HERE.glob("*.mr")):
        lines = path.read_text("utf-8").split("\n")
        start = 0
        for i, line in enumerate([*lines, "---"]):
            if line.strip() == "---":
                if any(x.strip() for x in lines[start:i]):
                    out.append((path.name, start + 1, "\n".join(lines[start:i])))
                start = i + 1
    return out


@pytest.mark.parametrize(
    ("name", "first", "text"), chunks(), ids=[f"{n}:{f}" for n, f, _ in chunks()]
)
def test_chunk(name: str, first: int, text: str) -> None:
    assert text.lstrip().startswith("#"), "each chunk starts with a comment saying what it covers"
    want = [
        (i, code, regex)
        for i, line in enumerate(text.split("\n"), 1)
        for code, regex in EXPECT.findall(line)
    ]
    src = Source(text, "chunk.mr")
    got = [
        (src.position(d.start)[0], d.code, d.message)
        for d in check_loaded(load_text(text, "chunk.mr"))
    ]
    unmatched = list(got)
    missing = []
    for line, code, regex in want:
        hit = next(
            (
                g
                for g in unmatched
                if g[0] == line
                and code in ("", g[1])
                and re.search(regex.replace('\\"', '"'), g[2])
            ),
            None,
        )
        if hit is None:
            missing.append(f"{name}:{first + line - 1}: want {code} /{regex}/")
        else:
            unmatched.remove(hit)
    extra = [f"{name}:{first + line - 1}: got {code} {msg!r}" for line, code, msg in unmatched]
    assert not missing and not extra, "\n".join(missing + extra)
