"""Comments and token positions recovered from a rule file's text, for the formatter.

The grammar ignores `#` comments, so the parser never sees them and the AST
cannot carry them. `scan` reads the text once more, skipping strings (`"..."`
with backslash escapes, never across a newline), and returns every comment
with its offset plus the positions of the other tokens (words, strings,
punctuation), which the printer uses to find braces and keywords that have no
span of their own in the AST.

`attach` then hands each comment to one printed line. Each printed line owns
the source ranges it stands for (a statement's span, a block header up to its
`{`, a closing `}`):

* a comment with code before it on its source line trails the line owning the
  nearest code before it (a second one on the same line goes before that line);
* a comment alone on its line goes before the line owning the code that contains
  or follows it, so a comment above a statement stays above it and one above a
  `}` stays inside the block, before the brace;
* a comment after the last code of the file stays at the end of the file;
* a line's comments keep their source order: when a line spread over several
  source lines has a comment at the end of one before a comment that goes
  above it, all go above it but the last, which trails it if it had code
  before it (`on submit # a` / `of form "f" { # b`: `# a` above, `# b` after).

Every comment lands on exactly one line, so none is lost or duplicated.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Comment", "Owner", "SourceIndex", "Token", "attach", "comment_texts", "scan"]


@dataclass(frozen=True)
class Comment:
    """A `#` comment: offsets, text without trailing blanks, and whether it has its own line."""

    start: int
    end: int
    text: str
    own_line: bool


@dataclass(frozen=True)
class Token:
    """A word, string or punctuation mark: enough to find braces and statement keywords."""

    start: int
    end: int
    text: str


# Strings first, so that a `#` inside a string is not a comment. Possessive: a string's
# characters one at a time in a `(...)*` kept a backtracking record each (150 bytes a
# character), and the optional closing quote never needs one given back.
_LEXEME = re.compile(
    r'(?P<string>"(?:[^"\\\r\n]++|\\.)*+"?)'
    r"|(?P<comment>#[^\r\n]*)"
    r"|(?P<punct>[{}\[\](),;])"
    r'|(?P<word>[^\s{}\[\](),;"#]+)'
    r"|(?P<space>\s+)"
)


def scan(text: str) -> tuple[list[Token], list[Comment]]:
    """Split a file's text into tokens and comments (whitespace dropped).

    >>> tokens, comments = scan('list "a#b"  # why\\n')
    >>> [t.text for t in tokens], [(c.text, c.own_line) for c in comments]
    (['list', '"a#b"'], [('# why', False)])
    """
    tokens: list[Token] = []
    comments: list[Comment] = []
    line_has_code = False
    for m in _LEXEME.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            if "\n" in m.group() or "\r" in m.group():
                line_has_code = False
        elif kind == "comment":
            comments.append(Comment(m.start(), m.end(), m.group().rstrip(), not line_has_code))
        else:
            tokens.append(Token(m.start(), m.end(), m.group()))
            line_has_code = True
    return tokens, comments


def comment_texts(text: str) -> list[str]:
    """The comments of a text, in order: what formatting must keep."""
    return [c.text for c in scan(text)[1]]


_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


class SourceIndex:
    """Token and comment positions of one file, with the look-ups the printer needs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens, self.comments = scan(text)
        self._starts = [t.start for t in self.tokens]
        self._comment_starts = [c.start for c in self.comments]

    def index_at(self, pos: int) -> int:
        """Index of the first token starting at or after `pos`."""
        return bisect.bisect_left(self._starts, pos)

    def find(self, pos: int, text: str) -> int:
        """Index of the first token spelled `text` at or after `pos` (-1 if none)."""
        for i in range(self.index_at(pos), len(self.tokens)):
            if self.tokens[i].text == text:
                return i
        return -1

    def brace_after(self, pos: int) -> int:
        """Offset of the first `{` at or after `pos`."""
        i = self.find(pos, "{")
        return self.tokens[i].start if i >= 0 else pos

    def close_of(self, open_pos: int) -> int:
        """Offset of the `}` that closes the block opened at `open_pos`."""
        depth = 0
        tokens = self.tokens
        # Indices, not a slice: a slice would copy every token to the end of the file,
        # once a block, which made formatting a large file quadratic.
        for i in range(self.index_at(open_pos), len(tokens)):
            tok = tokens[i]
            if tok.text == "{":
                depth += 1
            elif tok.text == "}":
                depth -= 1
                if depth == 0:
                    return tok.start
        return len(self.text)

    def body_tokens(self, open_pos: int) -> list[Token]:
        """Tokens directly inside the block opened at `open_pos` (nested blocks skipped)."""
        out: list[Token] = []
        depth = 0
        tokens = self.tokens
        for i in range(self.index_at(open_pos) + 1, len(tokens)):  # no slice: see close_of
            tok = tokens[i]
            if tok.text == "}":
                if depth == 0:
                    break
                depth -= 1
            elif tok.text == "{":
                depth += 1
            elif depth == 0:
                out.append(tok)
        return out

    def has_comment(self, start: int, end: int) -> bool:
        """Whether a comment starts in [start, end)."""
        i = bisect.bisect_left(self._comment_starts, start)
        return i < len(self.comments) and self.comments[i].start < end

    def blank_between(self, end: int, start: int) -> bool:
        """Whether the author left a blank line between two places with no code in between."""
        if start <= end:
            return False
        for tok in self.tokens[self.index_at(end) : self.index_at(start)]:
            if tok.text != ";":
                return False
        return _BLANK_LINE.search(self.text, end, start) is not None


@dataclass(eq=False)
class Owner:
    """What a printed line needs from `attach`: its source ranges and its comment slots."""

    ranges: tuple[tuple[int, int], ...] = ()
    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None


def attach(
    owners: Iterable[Owner],
    comments: Sequence[Comment],
    anchors: Mapping[int, int] | None = None,
) -> list[Comment]:
    """Give every comment to one owner; returns the comments left for the end of the file.

    `anchors` maps a trailing comment's offset to a source offset its line must hold
    (a `# mrules: ignore` comment and what it silences, `checker.suppression_anchors`):
    it trails the line that owns that offset instead.
    """
    spans = sorted((s, e, n, o) for n, o in enumerate(owners) for s, e in o.ranges)
    starts = [s for s, _, _, _ in spans]
    at_end: list[Comment] = []
    anchored: set[int] = set()
    for c in comments:
        anchor = anchors.get(c.start) if anchors and not c.own_line else None
        if anchor is not None:
            holder = _holder(spans, anchor)
            if holder is not None and holder.trailing is None:
                holder.trailing = c
                anchored.add(c.start)
                continue
        i = bisect.bisect_right(starts, c.start) - 1  # last range starting at or before c
        owner: Owner | None = None
        if not c.own_line and i >= 0:
            owner = spans[i][3]
            if owner.trailing is None:
                owner.trailing = c
                continue
        elif i >= 0 and spans[i][0] <= c.start < spans[i][1]:
            owner = spans[i][3]
        elif i + 1 < len(spans):
            owner = spans[i + 1][3]
        if owner is None:
            at_end.append(c)
        else:
            owner.leading.append(c)
    for o in {id(o): o for *_, o in spans}.values():
        o.leading.sort(key=lambda c: c.start)
        _keep_order(o, anchored)
    return at_end


def _keep_order(owner: Owner, anchored: set[int]) -> None:
    """Keep a line's comments in their source order: leading ones print above it and
    its trailing one after it, so the trailing one must be the last of them. A line
    spread over several source lines (`on submit # a` / `of # b` / `form "f" {`) can
    have a comment at the end of a source line before one that goes above: then all
    go above, but the last, which trails the line if it had code before it."""
    t = owner.trailing
    if t is None or t.start in anchored or not owner.leading:
        return
    if owner.leading[-1].start < t.start:
        return
    comments = sorted([*owner.leading, t], key=lambda c: c.start)
    last = comments[-1]
    if last.own_line:
        owner.leading, owner.trailing = comments, None
    else:
        owner.leading, owner.trailing = comments[:-1], last


def _holder(spans: Sequence[tuple[int, int, int, Owner]], offset: int) -> Owner | None:
    """The owner of the narrowest range holding `offset` (the printed line it is on)."""
    best: tuple[int, Owner] | None = None
    for s, e, _, o in spans:
        if s <= offset < e and (best is None or e - s < best[0]):
            best = (e - s, o)
    return best[1] if best is not None else None
