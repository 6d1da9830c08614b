"""Chunked checker tests (STYLE R13): each `---` chunk of tests/checker/*.mr is a rule set.

A trailing `### CODE "regex"` (or `### "regex"`) comment says a diagnostic
must start on that line with that code and a message matching the regex;
every other line must produce nothing. Both directions are checked. A
`hint "regex"` after it says the diagnostic's hint must match that regex too.
A chunk with a `### note "regex"` comment has its related notes checked the
same way: each note in the chunk must point at a line marked with a matching
`note`, and each marked line must get one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mrules.checker import check_loaded
from mrules.loader import load_text
from mrules.source import Source

HERE = Path(__file__).parent
QUOTED = r'"((?:[^"\\]|\\.)*)"'
EXPECT = re.compile(rf"###\s*(?:(MR\d{{3}})\s+)?{QUOTED}(?:\s+hint\s+{QUOTED})?")
NOTE = re.compile(rf"###\s*note\s+{QUOTED}")


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
        (i, code, regex, hint)
        for i, line in enumerate(text.split("\n"), 1)
        for code, regex, hint in EXPECT.findall(line)
    ]
    src = Source(text, "chunk.mr")
    diags = check_loaded(load_text(text, "chunk.mr"))
    got = [(src.position(d.start)[0], d.code, d.message, d.hint or "") for d in diags]
    unmatched = list(got)
    missing = []
    for line, code, regex, hint in want:
        hit = next(
            (
                g
                for g in unmatched
                if g[0] == line
                and code in ("", g[1])
                and re.search(regex.replace('\\"', '"'), g[2])
                and re.search(hint.replace('\\"', '"'), g[3])
            ),
            None,
        )
        if hit is None:
            missing.append(f"{name}:{first + line - 1}: want {code} /{regex}/ hint /{hint}/")
        else:
            unmatched.remove(hit)
    extra = [
        f"{name}:{first + line - 1}: got {code} {msg!r} hint {hint!r}"
        for line, code, msg, hint in unmatched
    ]
    notes = [
        (i, regex) for i, line in enumerate(text.split("\n"), 1) for regex in NOTE.findall(line)
    ]
    if notes:
        for d in diags:
            for note in d.related:
                if note.path != "chunk.mr":
                    continue
                line = src.position(note.start)[0]
                hit = next(
                    (
                        n
                        for n in notes
                        if n[0] == line and re.search(n[1].replace('\\"', '"'), note.message)
                    ),
                    None,
                )
                if hit is None:
                    extra.append(f"{name}:{first + line - 1}: got note {note.message!r}")
                else:
                    notes.remove(hit)
        missing += [f"{name}:{first + line - 1}: want note /{regex}/" for line, regex in notes]
    assert not missing and not extra, "\n".join(missing + extra)
