"""Inline suppressions: `# mrules: ignore[MR312]` silences a code on its line.

Rules (code MR030):

* `# mrules: ignore[MR312]` (several codes: `ignore[MR312, MR109]`) at the end
  of a line silences those codes for diagnostics that start on that line;
  `# mrules: ignore` with no codes silences every code there;
* `# mrules: ignore-file[MR109]`, anywhere in a file, silences the codes in the
  whole file (it needs codes: a file is never silenced entirely);
* a suppression that silences nothing is a warning (MR030), so stale ones do
  not pile up; MR030 itself cannot be suppressed;
* errors are never silenced: `mrules run` refuses a rule set with an error, so a
  lint that hid one would pass rules that cannot run. A suppression naming an
  error is an MR030 warning that says so;
* a suppression written some other way (`ignore MR312`, `ignore[MR312` left
  open, `ignore-files[...]`) silences nothing and is an MR030 warning: read as
  a bare `ignore`, a typo silenced every code on its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mrules.comments import scan
from mrules.diagnostics import Diagnostic, Severity
from mrules.source import Source

__all__ = [
    "UNUSED",
    "Suppression",
    "apply_suppressions",
    "suppression_targets",
    "suppressions",
]

UNUSED = "MR030"
_MARK = "mrules:"
_SUPPRESS_RE = re.compile(r"#\s*mrules:\s*(ignore-file|ignore)\b\s*(?:\[([^\]]*)\])?")
_CODE_RE = re.compile(r"MR[0-9]{3}")
_INDENT = re.compile(r"[^\S\n]*")
# What may follow a suppression without codes: nothing, or another comment (`# why`).
_BARE_END = re.compile(r"\s*(?:#.*)?", re.DOTALL)


@dataclass
class Suppression:
    """One `# mrules: ignore...` comment: where, which codes (empty: all), which it used."""

    path: str
    start: int
    end: int
    line: int
    codes: tuple[str, ...]
    whole_file: bool
    used: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)  # codes it would silence, but are errors
    malformed: bool = False  # not written as the forms above: silences nothing


def suppressions(src: Source) -> list[Suppression]:
    """Every suppression comment of a file (a cheap test first: most files have none)."""
    if _MARK not in src.text:
        return []
    found = []
    for comment in scan(src.text)[1]:
        m = _SUPPRESS_RE.match(comment.text)
        if m is None:
            continue
        codes = tuple(c.strip() for c in (m.group(2) or "").split(",") if c.strip())
        malformed = m.group(2) is None and not _BARE_END.fullmatch(comment.text, m.end())
        start = comment.start
        found.append(
            Suppression(
                src.path,
                start,
                comment.end,
                src.position(start)[0],
                codes,
                m.group(1) == "ignore-file",
                malformed=malformed,
            )
        )
    return found


def apply_suppressions(
    diags: Iterable[Diagnostic], sources: Mapping[str, Source]
) -> list[Diagnostic]:
    """The diagnostics no suppression silences, plus MR030 for each unused suppression."""
    diags = list(diags)
    by_file: dict[str, list[Suppression]] = {}
    malformed: list[Suppression] = []
    for path, src in sources.items():
        found: list[Suppression] = []
        for s in suppressions(src):
            (malformed if s.malformed else found).append(s)
        if found:
            by_file[path] = found
    if not by_file:
        return diags + [d for s in malformed for d in _unused(s)]
    kept: list[Diagnostic] = []
    for d in diags:
        marks = by_file.get(d.path)
        if not marks or d.code == UNUSED:
            kept.append(d)
            continue
        line = sources[d.path].position(d.start)[0]
        hits = [
            s
            for s in marks
            if (s.whole_file or s.line == line)
            and (d.code in s.codes or (not s.codes and not s.whole_file))
        ]
        if not hits:
            kept.append(d)
        elif d.severity is Severity.ERROR:
            kept.append(d)
            for hit in hits:  # each comment that would silence it is told it cannot
                hit.errors.add(d.code)
        else:
            hits[0].used.add(d.code)
    for marks in by_file.values():
        for s in marks:
            kept.extend(_unused(s))
    for s in malformed:
        kept.extend(_unused(s))
    return kept


def suppression_targets(
    diags: Iterable[Diagnostic], sources: Mapping[str, Source], path: str
) -> dict[int, int]:
    """For each line suppression of `path`, the offset its printed line must hold.

    That is where the first diagnostic it names starts (errors too: the MR030 that
    says they cannot be silenced stays beside them), or, when it names nothing
    reported there, the first code of its line. Keyed by the comment's offset.
    """
    src = sources.get(path)
    if src is None:
        return {}
    marks = [s for s in suppressions(src) if not s.whole_file]
    if not marks:
        return {}
    targets: dict[int, int] = {}
    for d in sorted((d for d in diags if d.path == path), key=lambda d: d.start):
        line = src.position(d.start)[0]
        for s in marks:
            if s.line == line and s.start not in targets and (not s.codes or d.code in s.codes):
                targets[s.start] = d.start
    for s in marks:
        if s.start not in targets:
            begin = src.text.rfind("\n", 0, s.start) + 1
            first = _INDENT.match(src.text, begin).end()  # type: ignore[union-attr]
            if first < s.start:  # code before the comment on its line
                targets[s.start] = first
    return targets


def _unused(s: Suppression) -> Iterable[Diagnostic]:
    def warn(message: str, hint: str) -> Diagnostic:
        return Diagnostic(
            code=UNUSED,
            severity=Severity.WARNING,
            message=message,
            path=s.path,
            start=s.start,
            end=s.end,
            hint=hint,
        )

    if s.malformed:
        yield warn(
            "not a suppression: it silences nothing",
            "write `# mrules: ignore[MR312]` (codes in brackets), or `# mrules: ignore`"
            " alone for every code on the line",
        )
        return
    bad = [c for c in s.codes if not _CODE_RE.fullmatch(c)]
    if bad:
        yield warn(f"'{bad[0]}' in a suppression is not a code", "write codes like MR312")
        return
    if s.whole_file and not s.codes:
        yield warn("a file-wide suppression needs codes", "write `# mrules: ignore-file[MR109]`")
        return
    if s.errors:
        yield warn(
            f"errors cannot be silenced: {', '.join(sorted(s.errors))} stops `mrules run`"
            " whatever lint shows",
            "fix the error, then remove the comment"
            if not s.used and not (set(s.codes) - s.errors)
            else "fix the error, then remove its code from the comment"
            if s.codes
            else "fix the error; the comment still silences the warnings of its line",
        )
    if not s.codes:
        if not s.used and not s.errors:
            yield warn("unused suppression: nothing is reported on this line", "remove the comment")
        return
    unused = [c for c in s.codes if c not in s.used and c not in s.errors]
    if unused:
        where = "in this file" if s.whole_file else "on this line"
        yield warn(
            f"unused suppression of {', '.join(unused)}: not reported {where}",
            "remove it from the comment",
        )
