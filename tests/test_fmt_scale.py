"""`mrules fmt` on a large file: work that follows the file's size, not its square."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules import comments
from mrules.cli import main

RULE = """\
automation rule "r{i}" priority {i} {{
  when all {{
    score >= {i}
    visited "site.example/p{i}" within 3 days
  }}
  then {{
    add tag "t"
  }}
}}
"""


def _big_file(tmp_path: Path, rules: int) -> Path:
    path = tmp_path / "big.mr"
    text = 'tag "t"\n\n' + "\n".join(RULE.format(i=i) for i in range(rules))
    path.write_text(text.replace("  ", "    "))  # four spaces a level: fmt rewrites it
    return path


class _CountingList(list):
    """A token list that counts the tokens each read hands out (a slice: all it copies)."""

    handed = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        got = super().__getitem__(key)
        _CountingList.handed += len(got) if isinstance(key, slice) else 1
        return got


def test_finding_each_block_end_reads_that_block_not_the_rest_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The printer asks where each block closes and which tokens are directly in it; each
    # answer copied every token from the block to the end of the file, so 10,000 rules
    # took 5.5 s of CPU to format and 20,000 took 17 s.
    tokens = []
    real_init = comments.SourceIndex.__init__

    def counting_init(self: comments.SourceIndex, text: str) -> None:
        real_init(self, text)
        self.tokens = _CountingList(self.tokens)
        tokens.append(len(self.tokens))

    monkeypatch.setattr(comments.SourceIndex, "__init__", counting_init)
    _CountingList.handed = 0
    path = _big_file(tmp_path, 400)
    result = CliRunner().invoke(main, ["fmt", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 file reformatted" in result.stderr
    assert tokens, "the printer indexes the file's tokens"
    # A block's end is found by reading its own tokens: a few passes over the file in all
    # (with the slices, about 400 / 2 passes).
    assert _CountingList.handed < 8 * sum(tokens), (_CountingList.handed, tokens)


def test_formatting_does_not_run_the_cyclic_collector(tmp_path: Path) -> None:
    # The parse trees, tokens and lines of a file hold no cycles, yet each collection
    # rescanned all of them: formatting twice as many rules took 3 times as long
    # (`mrules lint` pauses the collector for the same reason).
    path = _big_file(tmp_path, 300)
    collections: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    was_enabled = gc.isenabled()
    gc.enable()
    gc.collect()
    gc.callbacks.append(record)
    try:
        result = CliRunner().invoke(main, ["fmt", "--check", str(path)], catch_exceptions=False)
    finally:
        gc.callbacks.remove(record)
        if not was_enabled:
            gc.disable()
    assert result.exit_code == 1, result.output  # would reformat
    assert "1 file would be reformatted" in result.stderr
    # The command's own set-up allocates too little to matter; formatting 300 rules
    # allocates enough for hundreds of collections.
    assert len(collections) < 20, len(collections)
    assert gc.isenabled()  # given back to the process
