"""The documentation of each diagnostic code, as `mrules lint --explain MR312` prints it.

The text is docs/diagnostics.md itself, shipped inside the package
(`mrules/docs` is a link to the repository's `docs/` folder, like the grammar),
and read with `importlib.resources`, so an installed mrules finds it.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

__all__ = ["code_doc", "diagnostics_doc", "help_anchor"]

_SECTION_RE = re.compile(r"^## (MR\d{3}): (.+)$", re.MULTILINE)
_LINK_RE = re.compile(r"\[([^\]]+)\]\([^)]*\)")


@functools.cache
def diagnostics_doc() -> str:
    """docs/diagnostics.md, as shipped in the package."""
    return importlib.resources.files("mrules").joinpath("docs", "diagnostics.md").read_text("utf-8")


@functools.cache
def _sections() -> dict[str, str]:
    doc = diagnostics_doc()
    heads = list(_SECTION_RE.finditer(doc))
    out = {}
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        out[head.group(1)] = doc[head.start() : nxt.start() if nxt else len(doc)].rstrip() + "\n"
    return out


def code_doc(code: str) -> str | None:
    """The section of one code (its title, what it means, an example, the fix), or None.

    Links become their text, since a terminal cannot follow them.

    >>> code_doc("MR312").splitlines()[0]
    '## MR312: automation rules share a priority'
    """
    section = _sections().get(code.upper())
    return _LINK_RE.sub(r"\1", section) if section else None


def help_anchor(code: str, title: str) -> str:
    """The anchor GitHub gives the section `## MR312: title` (`mr312-automation-rules-...`).

    >>> help_anchor("MR312", "automation rules share a priority")
    'mr312-automation-rules-share-a-priority'
    """
    text = f"{code}: {title}".lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
