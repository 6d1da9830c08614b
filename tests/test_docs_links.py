"""The documentation stands alone: every link resolves inside the repository.

For README.md, CONTRIBUTING.md, CHANGELOG.md, bench/README.md and docs/*.md:

* every relative link (and image) names a file or folder of the repository, and
  every `#anchor` names a heading of its target, by GitHub's slug rules;
* every "§N" is a link to the numbered section N of a page (docs/pardot.md for
  Pardot's behaviour, or the page's own numbered sections), and "§N-k" to a
  section whose numbered list has an item k; an RFC section may link to the RFC;
* no text points at files a user of the repository does not have (`shared/...`,
  the research notes the docs were written from);
* paths the prose names (`docs/...`, `src/...`, `tests/...`) exist.

The checker is a few functions over one file's text; the last tests feed it
broken pages so that each rule is seen failing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import ROOT

DOCS = sorted(
    {
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "CHANGELOG.md",
        ROOT / "bench" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    }
)

# Text that points outside the repository: the folder the docs were written from.
OUTSIDE = ("shared/", "pardot-semantics")
# External hosts a "§" may link to (a section of an RFC).
SECTION_HOSTS = ("https://www.rfc-editor.org/rfc/", "https://datatracker.ietf.org/doc/html/rfc")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(\S+)")
_REF_USE = re.compile(r"\[([^\]]+)\]\[([^\]]*)\]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SECTION_REF = re.compile(r"§(\d+(?:\.\d+)*)(?:-(\d+))?")
_SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:\s|$)")
_REPO_PATH = re.compile(r"(?<![\w./-])((?:docs|src|tests|bench|grammar)/[\w./-]*[\w/])")


@dataclass(frozen=True)
class Heading:
    line: int
    level: int
    text: str  # as rendered: no markup
    slug: str


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
            else:
                out.append((number, line))
        elif (
            m
            and m.group(1)[0] == fence[0]
            and len(m.group(1)) >= len(fence)
            and not line.strip().strip(fence[0])
        ):
            fence = None
    return out


def without_code(line: str) -> str:
    """The line with inline code spans blanked out (same length, so columns hold)."""
    return _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def rendered(markdown: str) -> str:
    """Heading markdown as GitHub renders it to text: code, links, emphasis, HTML."""
    parts, pos = [], 0
    for m in _CODE_SPAN.finditer(markdown):
        parts.append(_render_inline(markdown[pos : m.start()]))
        parts.append(m.group(2).strip() if m.group(2).strip() else m.group(2))
        pos = m.end()
    parts.append(_render_inline(markdown[pos:]))
    return "".join(parts)


def _render_inline(text: str) -> str:
    text = _LINK.sub(lambda m: m.group(2), text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("*", "")
    return re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)


def slug(text: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, each space a hyphen."""
    kept = []
    for ch in text.lower():
        if ch in "-_ " or ch.isalnum() or unicodedata.category(ch).startswith("M"):
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def headings(text: str) -> list[Heading]:
    out: list[Heading] = []
    seen: dict[str, int] = {}
    for number, line in prose_lines(text):
        m = _HEADING.match(line)
        if not m:
            continue
        shown = rendered(m.group(2))
        base = slug(shown)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append(
            Heading(number, len(m.group(1)), shown, base if count == 0 else f"{base}-{count}")
        )
    return out


def section_body(text: str, heading: Heading) -> list[str]:
    """The lines between a heading and the next heading."""
    lines = text.splitlines()
    later = [h.line for h in headings(text) if h.line > heading.line]
    end = later[0] - 1 if later else len(lines)
    return lines[heading.line : end]


def problems(page: Path, root: Path) -> list[str]:
    """Everything wrong with one page's links, section references and paths."""
    text = page.read_text("utf-8")
    name = page.relative_to(root).as_posix()
    found: list[str] = []

    for needle in OUTSIDE:
        for number, line in enumerate(text.splitlines(), 1):
            if needle in line:
                found.append(
                    f"{name}:{number}: mentions {needle!r}, which is not in the repository"
                )

    lines = prose_lines(text)
    definitions = {}
    for _, line in lines:
        m = _REF_DEF.match(line)
        if m:
            definitions[m.group(1).lower()] = m.group(2)

    for number, line in lines:
        bare = without_code(line)
        where = f"{name}:{number}"
        links = list(_LINK.finditer(bare))
        targets = [m.group(3).strip("<>") for m in links]
        definition = _REF_DEF.match(bare)
        if definition:
            targets.append(definition.group(2))
        for m in _REF_USE.finditer(bare):
            label = (m.group(2) or m.group(1)).lower()
            if label not in definitions:
                found.append(f"{where}: reference link [{label}] has no definition")
        for target in targets:
            found += [f"{where}: {p}" for p in _link_problems(page, root, target)]

        covered: list[tuple[int, int]] = []
        for m in links:
            inner = m.start(2), m.end(2)
            if "§" not in m.group(2):
                continue
            covered.append(inner)
            found += [
                f"{where}: {p}" for p in _section_problems(page, root, m.group(2), m.group(3))
            ]
        for pos, ch in enumerate(bare):
            if ch == "§" and not any(start <= pos < end for start, end in covered):
                found.append(
                    f"{where}: '{bare[pos : pos + 8].strip()}' is not a link to its section"
                )

        for m in _REPO_PATH.finditer(line):
            if not (root / m.group(1)).exists():
                found.append(f"{where}: names {m.group(1)}, which is not in the repository")
    return found


def _link_problems(page: Path, root: Path, target: str) -> list[str]:
    if not target or _SCHEME.match(target):
        return [] if target else ["empty link"]
    path, _, anchor = target.partition("#")
    file = (page.parent / unquote(path)).resolve() if path else page
    try:
        file.relative_to(root.resolve())
    except ValueError:
        return [f"link {target!r} leaves the repository"]
    if not file.exists():
        return [f"link {target!r}: no such file"]
    if anchor and file.suffix == ".md":
        slugs = {h.slug for h in headings(file.read_text("utf-8"))}
        if unquote(anchor) not in slugs:
            return [f"link {target!r}: no heading with that anchor in {file.name}"]
    return []


def _section_problems(page: Path, root: Path, label: str, target: str) -> list[str]:
    m = _SECTION_REF.fullmatch(label.strip())
    if not m:
        return [f"link text {label!r} is not one section reference (§N or §N-k)"]
    number, item = m.group(1), m.group(2)
    if _SCHEME.match(target):
        if target.startswith(SECTION_HOSTS) and target.endswith(f"#section-{number}"):
            return []
        return [f"{label} links to {target!r}, not to a numbered section"]
    path, _, anchor = target.partition("#")
    file = (page.parent / unquote(path)).resolve() if path else page
    if not anchor or not file.is_file() or file.suffix != ".md":
        return [f"{label} links to {target!r}, not to a section of a page"]
    text = file.read_text("utf-8")
    heading = next((h for h in headings(text) if h.slug == unquote(anchor)), None)
    if heading is None:
        return []  # reported as a broken anchor
    own = _SECTION_NUMBER.match(heading.text)
    if own is None or own.group(1) != number:
        return [f"{label} links to the section {heading.text!r}"]
    if item and not any(
        re.match(rf"^\s{{0,3}}{item}\.\s", line) for line in section_body(text, heading)
    ):
        return [f"{label}: section {number} has no numbered item {item}"]
    return []


# --- the repository's documentation ----------------------------------------------------


@pytest.mark.parametrize("page", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_page_links_resolve_inside_the_repository(page: Path) -> None:
    found = problems(page, ROOT)
    assert not found, "\n".join(found)


def test_the_pages_checked_are_there() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    assert {"README.md", "docs/pardot.md", "docs/semantics.md", "docs/language.md"} <= names
    assert all(p.is_file() for p in DOCS)


def test_pardot_sections_cited_by_the_docs_exist() -> None:
    """The sections of pardot.md the other pages cite, by the numbers they use."""
    cited = set()
    for page in DOCS:
        for m in _LINK.finditer(page.read_text("utf-8")):
            if m.group(3).startswith("pardot.md#"):
                cited.add(m.group(3).removeprefix("pardot.md#"))
    numbered = {h.slug for h in headings((ROOT / "docs" / "pardot.md").read_text("utf-8"))}
    assert cited, "no page cites pardot.md"
    assert cited <= numbered


# --- the checker itself, on planted mistakes ------------------------------------------------


def test_slugs_follow_github() -> None:
    text = (
        "# The mrules language\n"
        "## 9. The CRM connector: `sync`\n"
        "### 2.3 Firing semantics\n"
        "## Identity ([§1](x.md#a), §7.2)\n"
        "### `url_ignore_*` and *emphasis*\n"
        "## Notes\n## Notes\n"
        "```\n# not a heading\n```\n"
    )
    assert [h.slug for h in headings(text)] == [
        "the-mrules-language",
        "9-the-crm-connector-sync",
        "23-firing-semantics",
        "identity-1-72",
        "url_ignore_-and-emphasis",
        "notes",
        "notes-1",
    ]


def _site(tmp_path: Path, page: str) -> list[str]:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pardot.md").write_text(
        "# Pardot\n## 2. Completion actions\n### 2.3 Firing semantics\n1. one\n2. two\n", "utf-8"
    )
    (tmp_path / "docs" / "page.md").write_text(page, "utf-8")
    return problems(tmp_path / "docs" / "page.md", tmp_path)


GOOD = (
    "# Page\nSee [pardot](pardot.md), [§2.3-2](pardot.md#23-firing-semantics) and [top](#page).\n"
)


def test_a_clean_page_has_no_problem(tmp_path: Path) -> None:
    assert _site(tmp_path, GOOD) == []


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("# P\n[gone](missing.md)\n", "no such file"),
        ("# P\n[up](../../etc/passwd)\n", "leaves the repository"),
        ("# P\n[bad](pardot.md#no-such-section)\n", "no heading with that anchor"),
        ("# P\n[self](#nowhere)\n", "no heading with that anchor"),
        ("# P\n[x][nolabel]\n", "has no definition"),
        ("# P\nAs Pardot says (§2.3).\n", "is not a link to its section"),
        ("# P\n[§2](pardot.md#23-firing-semantics)\n", "links to the section"),
        ("# P\n[§2.3-7](pardot.md#23-firing-semantics)\n", "no numbered item 7"),
        ("# P\n[§2.3](https://example.com/x)\n", "not to a numbered section"),
        ("# P\n[§2.3, §2.5](pardot.md#23-firing-semantics)\n", "not one section reference"),
        ("# P\nThe contract is shared/spec/events.md.\n", "not in the repository"),
        ('# P\ninclude "../shared/lists"\n', "not in the repository"),
        ("# P\nSee `docs/nothing.md`.\n", "names docs/nothing.md"),
    ],
)
def test_a_planted_mistake_is_reported(tmp_path: Path, page: str, expected: str) -> None:
    found = _site(tmp_path, page)
    assert any(expected in p for p in found), found


def test_code_is_not_prose(tmp_path: Path) -> None:
    page = "# P\n`[x](missing.md)` and `§9`\n```\n[y](missing.md) §3\n```\n"
    assert _site(tmp_path, page) == []
