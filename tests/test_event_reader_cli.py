"""The event reader's reasons and errors as `mrules run` shows them (docs/events.md).

Found by mutation testing of `events.py`: the cut of a long value in a reason, an
asset name sent in decomposed Unicode, and the words for a gzip stream that breaks
on standard input (where it cannot be checked first) all passed the suite changed.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import orjson
import pytest

from conftest import mrules

MRULES = (sys.executable, "-m", "mrules")
TS = "2026-11-02T09:00:00Z"
RULES = """\
list "Demo"
form "Démo"
on submit of form "Démo" {
  add to list "Demo"
}
"""


def _run(tmp_path: Path, lines: list[dict[str, object]]) -> tuple[int, list[dict[str, object]]]:
    """`mrules run` on `lines` with the rules above: its exit status and its rejects."""
    (tmp_path / "r.mr").write_text(RULES, encoding="utf-8")
    events = tmp_path / "ev.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    res = mrules("run", tmp_path / "r.mr", events, "--store", tmp_path / "s.db", "-q")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    rejects = tmp_path / "s.rejects.jsonl"
    text = rejects.read_text("utf-8") if rejects.exists() else ""
    return res.exit_code, [json.loads(x) for x in text.splitlines()]


def test_a_value_in_a_reason_is_shown_whole_up_to_60_characters_then_cut(
    tmp_path: Path,
) -> None:
    sixty, sixty_one = "t" * 60, "u" * 61
    code, rejects = _run(
        tmp_path, [{"ts": TS, "type": sixty}, {"ts": TS, "type": sixty_one}, {"ts": TS}]
    )
    assert code == 3
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (1, f"unknown type '{sixty}'"),
        (2, f"unknown type '{'u' * 60}...'"),
        (3, "missing required key 'type'"),
    ]


def test_an_asset_named_in_decomposed_unicode_is_the_form_the_rules_declare(
    tmp_path: Path,
) -> None:
    """`Démo` sent as `De` + combining accent (macOS, some forms) is the form `Démo`."""
    decomposed = unicodedata.normalize("NFD", "Démo")
    assert decomposed != "Démo"
    code, rejects = _run(
        tmp_path,
        [{"ts": TS, "type": "form_submit", "prospect": "ann@x.example", "asset": decomposed}],
    )
    assert (code, rejects) == (0, [])
    out = mrules("state", "export", "--store", tmp_path / "s.db")
    assert out.exit_code == 0, out.output
    (ann,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert ann["lists"] == ["Demo"]


def test_a_last_line_with_no_newline_that_is_whole_json_is_rejected_not_left(
    tmp_path: Path,
) -> None:
    """Only a last line that is not whole JSON may still be being written: one that is
    whole JSON but not a valid event is rejected at once (exit 3), not left for the
    next run, also behind a byte order mark (a one-line file saved by Notepad)."""
    (tmp_path / "r.mr").write_text(RULES, encoding="utf-8")
    events = tmp_path / "ev.jsonl"
    events.write_bytes(b"\xef\xbb\xbf" + orjson.dumps({"ts": TS}))
    res = mrules("run", tmp_path / "r.mr", events, "--store", tmp_path / "s.db", "-q")
    assert res.exit_code == 3, res.output
    assert "no newline" not in res.stderr
    rejects = (tmp_path / "s.rejects.jsonl").read_text("utf-8").splitlines()
    assert [(r["line"], r["reason"]) for r in map(json.loads, rejects)] == [
        (1, "missing required key 'type'")
    ]


def _run_on_standard_input(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """`mrules run` reading `data` from a pipe: a pipe cannot be read twice, so a gzip
    stream is not checked first and its damage is found where the reading reaches it."""
    (tmp_path / "r.mr").write_text(RULES, encoding="utf-8")
    args = [*MRULES, "run", str(tmp_path / "r.mr"), "-", "--store", str(tmp_path / "s.db"), "-q"]
    return subprocess.run(args, input=data, capture_output=True, check=False)


TICKS = b"".join(
    orjson.dumps({"ts": TS, "type": "tick", "id": f"e{n}"}) + b"\n" for n in range(1, 4)
)


def test_a_gzip_stream_cut_short_on_standard_input_says_it_ended_early(tmp_path: Path) -> None:
    packed = gzip.compress(TICKS)
    res = _run_on_standard_input(tmp_path, packed[: len(packed) // 2])
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(
        b"mrules: error: <stdin>: broken gzip data: Compressed file ended before the"
        b" end-of-stream marker was reached; "
    ), res.stderr


def test_a_gzip_stream_whose_check_fails_on_standard_input_is_broken_not_plain_text(
    tmp_path: Path,
) -> None:
    """Its lines were read whole; the CRC at its end does not match them: broken gzip
    data, not `not gzip data, though its name ends in .gz` (a pipe has no name)."""
    packed = bytearray(gzip.compress(TICKS))
    packed[-8] ^= 0xFF  # the CRC-32 of the data, in the gzip trailer
    res = _run_on_standard_input(tmp_path, bytes(packed))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(b"mrules: error: <stdin>: broken gzip data: CRC check failed"), (
        res.stderr
    )
    assert b"the store keeps lines 1-3 of standard input" in res.stderr


def test_a_file_that_opens_but_cannot_be_read_says_why_in_words(tmp_path: Path) -> None:
    """`/proc/self/mem` opens, and its first read fails (EIO): the message gives the
    system's words, not Python's `[Errno 5] ...`."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem here: Linux's")
    (tmp_path / "r.mr").write_text(RULES, encoding="utf-8")
    res = mrules("run", tmp_path / "r.mr", "/proc/self/mem", "--store", tmp_path / "s.db", "-q")
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(
        "mrules: error: /proc/self/mem: cannot read: Input/output error; "
    ), res.stderr
