"""Properties of the printer: generated trees print and parse back; layout noise is ignored."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mrules import ast
from mrules.checker import check_loaded, suppression_anchors, suppressions_kept
from mrules.comments import scan
from mrules.loader import load_text
from mrules.parser import parse_text
from mrules.printer import format_file, format_text
from mrules.source import Source
from strategies import SETTINGS, files, quoted_names, values

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted(
    [
        *(ROOT / "tests" / "fmt" / "identity").glob("*.mr"),
        *(ROOT / "tests" / "fmt" / "messy").glob("*.mr"),
        *(ROOT / "examples" / "getcloudy" / "rules").glob("*.mr"),
        *(ROOT / "rules").glob("*.mr"),
    ]
)


@SETTINGS
@given(
    st.one_of(
        quoted_names.map(lambda n: n.text),
        values.filter(lambda v: isinstance(v, ast.StringValue)).map(lambda v: v.value),
    )
)
def test_generated_names_and_literals_are_nfc(text: str) -> None:
    """The parser reads names and string literals in NFC: a generated tree that holds
    another form could never parse back to itself (a flaky property above)."""
    assert unicodedata.normalize("NFC", text) == text


@SETTINGS
@given(files)
def test_generated_trees_print_and_parse_back(file: ast.File) -> None:
    text = format_file(file)
    parsed, diags = parse_text(text, file.path)
    assert parsed is not None, (text, diags)
    assert ast.dump(parsed, spans=False) == ast.dump(file, spans=False)
    assert format_text(text, file.path) == text


def _statement_ends(file: ast.File) -> set[int]:
    """Offsets just after statements that may be followed by `;`."""
    ends: set[int] = set()
    for node in ast.walk(file):
        inner: tuple[ast.Node, ...] = ()
        if isinstance(node, ast.Group):
            inner = node.items
        elif isinstance(node, ast.Conditional):
            inner = node.actions
        elif isinstance(node, ast.CompletionActions | ast.PageAction):
            inner = node.body
        elif isinstance(node, ast.AutomationRule | ast.SegmentationRule):
            inner = node.then
        elif isinstance(node, ast.Scoring):
            inner = node.rows
        elif isinstance(node, ast.GradingProfile):
            inner = node.criteria
        elif isinstance(node, ast.Settings):
            inner = node.items
        elif isinstance(node, ast.Sync):
            inner = node.mappings
        if isinstance(node, ast.AutomationRule | ast.SegmentationRule | ast.DynamicList):
            inner = (*inner, *(p for p in (node.when, getattr(node, "repeat", None)) if p))
        ends.update(n.span.end for n in inner)
    return ends


@st.composite
def _perturbed(draw: st.DrawFn, text: str, path: str) -> str:
    """The same file with other whitespace between tokens and `;` after some statements.

    Kept as they were: whether a comment has code before it on its line, the
    newline after a comment, and whether a gap holds a blank line (blank lines
    are part of the layout fmt keeps).
    """
    tokens, comments = scan(text)
    file, _ = parse_text(text, path)
    assert file is not None
    ends = _statement_ends(file)
    pieces = sorted(
        [(t.start, t.end, False) for t in tokens] + [(c.start, c.end, True) for c in comments]
    )
    out: list[str] = []
    pos = 0
    prev_comment = False
    for start, end, is_comment in [*pieces, (len(text), len(text), False)]:
        gap = text[pos:start]
        blank = re.search(r"\n[^\S\n]*\n", gap) is not None
        newline = "\n" in gap
        spaces = st.text(st.sampled_from(" \t"), max_size=3)
        if blank:
            gap = "\n" * draw(st.integers(2, 4)) + draw(spaces)
        elif newline and (is_comment or prev_comment or draw(st.booleans())):
            gap = "\n" + draw(spaces)
        elif newline or pos in ends:
            gap = (
                draw(st.sampled_from([" ", "  ", "\t", "\n"]))
                if not (is_comment or prev_comment)
                else draw(st.sampled_from([" ", "\t "]))
            )
        else:
            gap = (
                draw(st.sampled_from(["", " ", " \t "]))
                if gap == ""
                else draw(st.sampled_from([" ", "  ", "\t"]))
            )
        if pos in ends and ";" not in (text[pos - 1], text[start:end]) and draw(st.booleans()):
            gap = ";" + gap
        if not newline and "\n" in gap and (is_comment or prev_comment):
            gap = " "
        out.append(gap)
        out.append(text[start:end])
        pos = end
        prev_comment = is_comment
    return "".join(out)


@st.composite
def _corpus_pairs(draw: st.DrawFn) -> tuple[Path, str]:
    path = draw(st.sampled_from(CORPUS))
    text = path.read_text("utf-8")
    return path, draw(_perturbed(text, path.name))


@SETTINGS
@given(_corpus_pairs())
def test_whitespace_and_semicolons_do_not_change_the_output(pair: tuple[Path, str]) -> None:
    path, noisy = pair
    assert format_text(noisy, path.name) == format_text(path.read_text("utf-8"), path.name)


@SETTINGS
@given(_corpus_pairs())
def test_comments_survive_noise(pair: tuple[Path, str]) -> None:
    path, noisy = pair
    out = format_text(noisy, path.name)
    assert sorted(c.text for c in scan(out)[1]) == sorted(c.text for c in scan(noisy)[1])


@st.composite
def _with_comments(draw: st.DrawFn) -> tuple[str, str]:
    """A corpus file with comments added between random tokens, alone or at line ends."""
    path = draw(st.sampled_from(CORPUS))
    text = path.read_text("utf-8")
    tokens, _ = scan(text)
    cuts = sorted(draw(st.sets(st.sampled_from([t.end for t in tokens]), max_size=6)))
    words = st.text(
        st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), max_size=8
    )
    out, pos = [], 0
    for n, cut in enumerate(cuts):
        out.append(text[pos:cut])
        lead = draw(st.sampled_from([" ", "\n", "\n\n", "\n  "]))
        out.append(f"{lead}#{n}{draw(words)}\n")
        pos = cut
    out.append(text[pos:])
    return path.name, "".join(out)


@SETTINGS
@given(_with_comments())
def test_comments_anywhere_are_kept_once_and_settle(case: tuple[str, str]) -> None:
    name, text = case
    once = format_text(text, name, verify=True)  # same rules, same comments
    assert format_text(once, name) == once


@st.composite
def _with_suppressions(draw: st.DrawFn) -> tuple[str, str]:
    """A corpus file with `# mrules: ignore[...]` at the end of lines that hold code: a
    code reported on that line (checked alone), another code, or a bare ignore.

    A comment silences what starts on its line; when that is several diagnostics that
    formatting puts on different lines, no place keeps it, and fmt refuses the file
    (test_fmt_cli). So each comment here silences what starts at one place, or nothing.
    """
    path = draw(st.sampled_from(CORPUS))
    text = path.read_text("utf-8")
    src = Source(text, path.name)
    on_line: dict[int, list[tuple[str, int]]] = {}
    for d in check_loaded(load_text(text, path.name)):
        on_line.setdefault(src.position(d.start)[0], []).append((d.code, d.start))
    lines = text.split("\n")
    with_code = [n for n, line in enumerate(lines, 1) if line.strip() and "#" not in line]
    if not with_code:
        return path.name, text
    chosen = draw(st.sets(st.sampled_from(with_code), min_size=1, max_size=4))
    for n in chosen:
        found = on_line.get(n, [])
        at = {code: {s for c, s in found if c == code} for code, _ in found}
        choices: list[list[str]] = [["MR312"], ["MR109", "MR305"]]
        choices += [[code] for code, starts in at.items() if len(starts) == 1]
        if len({s for _, s in found}) <= 1:
            choices.append([])  # a bare ignore: everything on the line
        codes = draw(st.sampled_from(choices))
        codes = [c for c in codes if len(at.get(c, ())) <= 1]
        lines[n - 1] += f"  # mrules: ignore[{', '.join(codes)}]" if codes else "  # mrules: ignore"
    return path.name, "\n".join(lines)


@SETTINGS
@given(_with_suppressions())
def test_suppression_comments_keep_silencing_what_they_silenced(case: tuple[str, str]) -> None:
    """fmt splits and joins lines; a `# mrules: ignore` comment covers its line, so it
    must land on the printed line of what it silences: lint reports the same codes."""
    name, text = case
    once = format_text(text, name, verify=True, anchors=suppression_anchors(text, name))
    assert suppressions_kept(text, once, name)
    assert format_text(once, name, anchors=suppression_anchors(once, name)) == once


@st.composite
def _commented_trees(draw: st.DrawFn) -> str:
    """A generated file in the canonical layout with comments at arbitrary token
    boundaries, each at the end of the code before it or alone on its line.

    The text is canonical, so fmt keeps its statements (and rule parts, sync
    options) in the order they are written: every comment has one place to go.
    """
    text = format_file(draw(files))
    tokens, _ = scan(text)
    bounds = sorted({0, *(t.start for t in tokens), *(t.end for t in tokens)})
    cuts = sorted(draw(st.lists(st.sampled_from(bounds), max_size=8)))
    words = st.text(
        st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), max_size=4
    )
    out, pos = [], 0
    for n, cut in enumerate(cuts):
        out.append(text[pos:cut])
        lead = draw(st.sampled_from([" ", "\n", "\n  "]))
        out.append(f"{lead}#{n}{draw(words)}\n")
        pos = cut
    out.append(text[pos:])
    return "".join(out)


@SETTINGS
@given(_commented_trees())
def test_comments_keep_their_order(text: str) -> None:
    """A comment between any two tokens (inside an item's head, a statement, a
    criterion) comes out in the order it went in, relative to every other comment."""
    out = format_text(text, "generated.mr", verify=True)
    assert [c.text for c in scan(out)[1]] == [c.text for c in scan(text)[1]]
    assert format_text(out, "generated.mr") == out
