"""A partitioned run gives, byte for byte, what one process gives: export, action log, rejects.

Streams: the Get Cloudy example, the engine's conformance cases, and generated
streams (with lines the reader rejects), at 1, 2, 7 and 64 buckets, one file
and two, on the local engine (in this process and in 2 worker processes).
The control test shows the comparison can fail: the same stream with one
prospect's events shuffled does not give the same bytes.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from scale_helpers import assert_same, gen, partitioned, single

from mrules.api import compile_rules
from mrules.events import parse_timestamp

ROOT = Path(__file__).resolve().parents[2]
BY_PROSPECT = 'settings {\n  round_robin = "by prospect"\n}\n'


def _bad_lines(lines: list[bytes]) -> list[bytes]:
    """Lines the reader rejects, spread through the stream (kept with their file and line)."""
    out = list(lines)
    out.insert(10, b"this is not json\n")
    out.insert(500, b'{"ts":"yesterday","type":"tick"}\n')  # a bad tick: every bucket rejects it
    out.insert(900, b'{"ts":"2026-09-02T00:00:00Z","type":"form_submit","prospect":42}\n')
    out.insert(1200, b"\n")  # blank: skipped, not rejected
    out.insert(1500, b"[1, 2]\n")
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("generated")
    gen.main([str(tmp), "--prospects", "300", "--events", "4000", "--seed", "3"])
    (tmp / "rules" / "zz-partitions.mr").write_text(BY_PROSPECT)
    lines = _bad_lines((tmp / "events.jsonl").read_bytes().splitlines(keepends=True))
    whole = tmp / "events.jsonl"
    whole.write_bytes(b"".join(lines))
    first, second = tmp / "a.jsonl", tmp / "b.jsonl.gz"
    first.write_bytes(b"".join(lines[:2500]))
    import gzip

    second.write_bytes(gzip.compress(b"".join(lines[2500:])))
    rules = compile_rules(tmp / "rules")
    return {
        "rules": rules,
        "whole": whole,
        "two": [first, second],
        "single": single(rules, [whole], tmp / "ref-whole"),
        "single2": single(rules, [first, second], tmp / "ref-two"),
    }


@pytest.mark.parametrize("buckets", [1, 2, 7, 64])
def test_generated_stream(generated: dict[str, Any], tmp_path: Path, buckets: int) -> None:
    ref = generated["single"]
    assert ref["rejects"].count(b"\n") == 4 and ref["actions"].count(b"\n") > 5000
    got = partitioned(generated["rules"], [generated["whole"]], tmp_path, buckets)
    assert_same(ref, got)


def test_generated_two_files_in_processes(generated: dict[str, Any], tmp_path: Path) -> None:
    """Two files (one gzipped), two workers: as two `mrules run`s on one store."""
    got = partitioned(generated["rules"], generated["two"], tmp_path, 7, workers=2)
    assert_same(generated["single2"], got)


def test_generated_two_parts_appended(generated: dict[str, Any], tmp_path: Path) -> None:
    """The second file partitioned later into the same folder (a new part): the same result."""
    got = partitioned(generated["rules"], generated["two"], tmp_path, 7, parts=True)
    assert_same(generated["single2"], got)


@pytest.mark.parametrize(("buckets", "workers"), [(2, 1), (7, 2)])
def test_prepared_rows_in_many_chunks(
    generated: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    buckets: int,
    workers: int,
) -> None:
    """Each shard's prepared rows written as many pickles (as large buckets are): the same."""
    from mrules.scale import merge

    monkeypatch.setattr(merge, "CHUNK", 7)
    got = partitioned(generated["rules"], [generated["whole"]], tmp_path, buckets,
                      workers=workers)  # fmt: skip
    assert_same(generated["single"], got)


def test_now_moves_every_bucket(generated: dict[str, Any], tmp_path: Path) -> None:
    now = parse_timestamp("2026-12-31T00:00:00Z").timestamp()
    ref = single(generated["rules"], [generated["whole"]], tmp_path / "ref", now=now)
    got = partitioned(generated["rules"], [generated["whole"]], tmp_path / "p", 7, now=now)
    assert ref["actions"] != generated["single"]["actions"]  # --now did something
    assert_same(ref, got)


def test_a_now_before_the_archive_ends_is_met_as_one_process_meets_it(
    generated: dict[str, Any], tmp_path: Path
) -> None:
    """One process moves its clock to `now` only forward: a `now` before the archive's
    last event re-checks the time-based rules at its clock, the archive's latest time.
    Each bucket re-checked them at its own clock, its latest event, earlier: a "Score
    decay" or a reminder came out at another time (or not at all)."""
    now = parse_timestamp("2026-09-02T00:00:00Z").timestamp()
    ref = single(generated["rules"], [generated["whole"]], tmp_path / "ref", now=now)
    got = partitioned(generated["rules"], [generated["whole"]], tmp_path / "p", 7, now=now)
    assert ref["actions"] != generated["single"]["actions"]  # the tick did something
    assert_same(ref, got)


def _shuffled_within_prospect(lines: list[bytes]) -> tuple[list[bytes], str]:
    """The busiest prospect's events in another order (everything else in place)."""
    where: dict[str, list[int]] = {}
    for i, raw in enumerate(lines):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("prospect"), str):
            where.setdefault(obj["prospect"].strip().lower(), []).append(i)
    email, idx = max(where.items(), key=lambda kv: len(kv[1]))
    moved = [lines[i] for i in idx]
    random.Random(5).shuffle(moved)
    out = list(lines)
    for i, raw in zip(idx, moved, strict=True):
        out[i] = raw
    return out, email


def test_control_shuffling_within_a_prospect_is_seen(
    generated: dict[str, Any], tmp_path: Path
) -> None:
    """The comparison is not vacuous: one prospect's events in another order give other bytes."""
    lines = generated["whole"].read_bytes().splitlines(keepends=True)
    shuffled, email = _shuffled_within_prospect(lines)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(shuffled))
    got = partitioned(generated["rules"], [path], tmp_path / "p", 7)
    with pytest.raises(AssertionError, match="differs"):
        assert_same(generated["single"], got)
    assert email.encode() in got["export"]


def test_getcloudy(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "examples/getcloudy/rules", rules)
    (rules / "zz-partitions.mr").write_text(BY_PROSPECT)
    compiled = compile_rules(rules)
    events = ROOT / "examples/getcloudy/events.jsonl"
    ref = single(compiled, [events], tmp_path / "ref")
    for buckets in (2, 7):
        assert_same(ref, partitioned(compiled, [events], tmp_path / f"p{buckets}", buckets))


def _cases() -> list[Any]:
    """The engine's conformance cases with one run each, in time order, no shared turn."""
    found = []
    for path in sorted((ROOT / "tests/engine/cases").rglob("*.yaml")):
        for case in yaml.safe_load_all(path.read_text()):
            if not case or "runs" in case or "xfail" in case:
                continue
            found.append(pytest.param(case, id=f"{path.parent.name}/{path.stem}/{case['name']}"))
    return found


def _in_time_order(events: str) -> bool:
    last = None
    for raw in events.splitlines():
        try:
            obj = orjson.loads(raw)
            ts = parse_timestamp(obj["ts"]).timestamp()
        except Exception:
            continue
        if last is not None and ts < last:
            return False
        last = ts
    return True


@pytest.mark.parametrize("case", _cases())
def test_conformance_cases(case: dict[str, Any], tmp_path: Path) -> None:
    """Every engine case that fits a partitioned run (docs/semantics.md) gives the same bytes."""
    from mrules.api import RuleSetError
    from mrules.scale.driver import ScaleError

    if not _in_time_order(case["events"]):
        pytest.skip("events out of time order: a bucket's clock may be earlier (documented)")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.mr").write_text(case["rules"])
    try:
        compiled = compile_rules(rules_dir)
    except RuleSetError:
        pytest.skip("the case's rules have errors (a lint case)")
    events = tmp_path / "events.jsonl"
    events.write_text(case["events"])
    now = parse_timestamp(str(case["now"])).timestamp() if case.get("now") else None
    ref = single(compiled, [events], tmp_path / "ref", now=now)
    try:
        got = partitioned(compiled, [events], tmp_path / "p", 3, now=now)
    except ScaleError as e:
        assert "round_robin" in str(e)
        pytest.skip("shared round-robin turn: refused for partitioned runs (documented)")
    assert_same(ref, got)


def test_a_bucket_that_dies_half_way_is_run_again(
    generated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that stops mid-bucket leaves no shard; the rerun gives the same bytes.

    (tests/scale/test_scale_cli.py kills a real worker process with SIGKILL; slow.)
    """
    import mrules.scale.tasks as tasks
    from mrules.partition import partition
    from mrules.scale.driver import run_partitioned

    real = tasks.parse_line
    calls = {"n": 0}

    def dying(data: bytes, line: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 1500:
            raise KeyboardInterrupt  # what a kill looks like from inside
        return real(data, line)

    folder = tmp_path / "part"
    partition([generated["whole"]], folder, 4)
    monkeypatch.setattr(tasks, "parse_line", dying)
    with pytest.raises(KeyboardInterrupt):
        run_partitioned(generated["rules"], folder, tmp_path / "multi.db", workers=1)
    shards = list((tmp_path / "multi.db.shards").glob("*/b*.db"))
    assert 0 < len(shards) < 4  # some buckets done, the one that died not
    assert not list((tmp_path / "multi.db.shards").glob("*/.b*.tmp"))
    assert not (tmp_path / "multi.db").exists()
    monkeypatch.setattr(tasks, "parse_line", real)
    got = partitioned(generated["rules"], [generated["whole"]], tmp_path, 4)
    assert_same(generated["single"], got)
