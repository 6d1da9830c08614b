"""`mrules segment` writes its changes as it goes, within one transaction (docs/outputs.md).

It held every prospect it matched, with their history rows, until one commit at the end:
304 MB at 2 million events. It now writes them every `CHUNK` prospects into one SQLite
transaction committed at the end: memory does not follow the prospects matched, a reader
sees the store as it was until the end, and a failure or an interrupt leaves it as it was.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mrules
from conftest import mrules as cli
from mrules.api import compile_rules

RULES = """field city: text
list "Lyon"
segmentation rule "Lyonnais" {
  when all { city is "Lyon" }
  then { add to list "Lyon"; add tag "lyon" }
}
"""


def _store(path: str | Path, n: int) -> str | Path:
    """A store of `n` prospects, a quarter of them in Paris: a path, or a PostgreSQL URL."""
    events = (
        json.dumps(
            {
                "ts": "2026-11-01T09:00:00Z",
                "type": "prospect_update",
                "prospect": f"p{j:06d}@segment.example",
                "fields": {"city": "Lyon" if j % 4 else "Paris"},
            }
        )
        for j in range(n)
    )
    mrules.run(compile_rules(RULES), events, store=path).close()
    return path


def _rules(folder: Path) -> Path:
    path = folder / "rules.mr"
    path.write_text(RULES)
    return path


def _export(store: str | Path) -> str:
    result = cli("state", "export", "--store", str(store))
    assert result.exit_code == 0, result.output
    return str(result.stdout)


_MEASURE = """
import sys, tracemalloc
import mrules.cli.segment_cmd
from mrules.cli import main
mrules.cli.segment_cmd.CHUNK = 100  # prospects between two writes: both stores match more
tracemalloc.start()
try:
    main(["segment", sys.argv[1], "--store", sys.argv[2]], standalone_mode=False)
finally:
    sys.stderr.write(f"PEAK {tracemalloc.get_traced_memory()[1]}\\n")
"""


def _peak(rules: Path, store: str | Path) -> tuple[str, int]:
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(rules), str(store)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip(), int(res.stderr.rsplit("PEAK ", 1)[1])


def test_memory_does_not_follow_the_prospects_matched(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    small, large = 1000, 4000
    said_small, peak_small = _peak(rules, _store(tmp_path / "small.db", small))
    said_large, peak_large = _peak(rules, _store(tmp_path / "large.db", large))
    assert said_small == "Lyonnais: 750 prospects matched"
    assert said_large == "Lyonnais: 3,000 prospects matched"
    per_match = (peak_large - peak_small) / (3000 - 750)
    # Held until one commit, every matched prospect grew the peak by about 5 KB.
    assert per_match < 500, (peak_small, peak_large, per_match)


def test_chunks_give_what_one_commit_gave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mrules.cli.segment_cmd as segment_cmd

    rules = _rules(tmp_path)
    whole, chunked = _store(tmp_path / "whole.db", 600), _store(tmp_path / "chunked.db", 600)
    assert cli("segment", str(rules), "--store", str(whole)).exit_code == 0
    monkeypatch.setattr(segment_cmd, "CHUNK", 7)
    result = cli("segment", str(rules), "--store", str(chunked))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Lyonnais: 450 prospects matched\n"
    assert _export(chunked) == _export(whole)
    assert '"lyon"' in _export(chunked)
    rules_report = [cli("report", "rules", "--store", str(s), "--format", "json").stdout
                    for s in (whole, chunked)]  # fmt: skip
    assert rules_report[0] == rules_report[1]


class _Wrapped:
    """The store `mrules segment` opens, wrapped where it opens it (`open_store`): the
    engine writes through the store interface, looked up by name in both builds, while a
    patched `Engine.commit` is not seen by the compiled engine's own calls."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _wrap(monkeypatch: pytest.MonkeyPatch, wrapper: type[_Wrapped]) -> None:
    import mrules.cli.segment_cmd as segment_cmd

    real_open = segment_cmd.open_store
    monkeypatch.setattr(segment_cmd, "open_store", lambda *a, **k: wrapper(real_open(*a, **k)))


def test_a_store_without_one_transaction_gets_one_commit_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot hold its writes in one transaction (the store in memory; the
    SQLite and PostgreSQL stores can) is segmented whole and committed once, by `mrules
    segment`, as before the chunks."""
    rules = _rules(tmp_path)
    whole, plain = _store(tmp_path / "whole.db", 60), _store(tmp_path / "plain.db", 60)
    assert cli("segment", str(rules), "--store", str(whole)).exit_code == 0
    commits: list[int] = []

    class Untransacted(_Wrapped):
        def __getattr__(self, name: str) -> Any:
            if name == "one_transaction":
                raise AttributeError(name)
            return super().__getattr__(name)

        def commit(self, batch: Any) -> None:
            commits.append(len(batch.prospects))
            self._inner.commit(batch)

    _wrap(monkeypatch, Untransacted)
    result = cli("segment", str(rules), "--store", str(plain))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Lyonnais: 45 prospects matched\n"
    assert commits == [45]
    assert _export(plain) == _export(whole)


def _fail_at_the_third_write(
    monkeypatch: pytest.MonkeyPatch, store: str | Path, what: BaseException | None
) -> list[str]:
    """Make the third write of a chunk to the store read it from another connection, then
    raise `what`; returns what that reader saw (the store `_Wrapped`)."""
    import mrules.cli.segment_cmd as segment_cmd

    monkeypatch.setattr(segment_cmd, "CHUNK", 50)
    seen: list[str] = []
    commits = 0

    class Watched(_Wrapped):
        def commit(self, batch: Any) -> None:
            nonlocal commits
            self._inner.commit(batch)
            commits += 1
            if commits == 3:
                seen.append(_export(store))  # a reader meanwhile: another connection
                if what is not None:
                    # A copy: `what` lives as long as the module's parameters, and the
                    # traceback raising it would keep the engine and its prospects alive
                    # for every later test of the process (test_api counts them).
                    raise copy.copy(what)

    _wrap(monkeypatch, Watched)
    return seen


def test_a_reader_sees_the_store_as_it_was_until_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path / "s.db", 400)
    before = _export(store)
    seen = _fail_at_the_third_write(monkeypatch, store, None)
    result = cli("segment", str(_rules(tmp_path)), "--store", str(store))
    assert result.exit_code == 0, result.output
    assert seen == [before]  # two chunks written, none visible
    assert _export(store) != before


@pytest.mark.parametrize(
    ("what", "code", "says"),
    [
        (KeyboardInterrupt(), 130, "the store is as it was"),
        (OSError(28, "No space left on device"), 4, "No space left on device"),
    ],
)
def test_a_failure_or_an_interrupt_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: BaseException, code: int, says: str
) -> None:
    store = _store(tmp_path / "s.db", 400)
    before = _export(store)
    _fail_at_the_third_write(monkeypatch, store, what)
    result = cli("segment", str(_rules(tmp_path)), "--store", str(store))
    assert result.exit_code == code, result.output
    assert says in result.stderr and "Traceback" not in result.output
    monkeypatch.undo()
    assert _export(store) == before
    again = cli("segment", str(_rules(tmp_path)), "--store", str(store))  # starts over
    assert again.exit_code == 0 and again.stdout == "Lyonnais: 300 prospects matched\n"
