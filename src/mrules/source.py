"""Source text with its path; line and column are derived from offsets on demand."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["Source"]


@dataclass(frozen=True)
class Source:
    """A rule file's text. Nodes keep character offsets; this turns them into lines.

    >>> s = Source("a\\nbc", "x.mr")
    >>> s.position(3)
    (2, 2)
    """

    text: str
    path: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        object.__setattr__(self, "_line_starts", tuple(starts))

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset, counting characters."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if line < 1 or line > len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)
