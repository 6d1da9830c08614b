"""`mrules partition`: routing, the stable hash, the manifest, appends, and bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from mrules.cli import main
from mrules.partition import (
    HASH_VERSION,
    Manifest,
    PartitionError,
    bucket_of,
    partition,
    read_bucket_lines,
)


def _write(path: Path, events: list[dict | bytes]) -> Path:
    path.write_bytes(
        b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in events)
    )
    return path


def _buckets(folder: Path) -> dict[int, list[tuple[int, int]]]:
    m = Manifest.load(folder)
    return {
        b: [(o, ln) for o, ln, _ in read_bucket_lines(m.bucket_parts(folder, b))]
        for b in range(m.buckets)
    }


def _where(folder: Path, line: int) -> list[int]:
    return [b for b, keys in _buckets(folder).items() if (0, line) in keys]


TS = "2026-11-02T09:00:00Z"
LONG = "x" * 300  # a file name longer than any system takes


def test_the_hash_is_stable_and_versioned() -> None:
    # Pinned values: a change of hash needs a new HASH_VERSION (old folders are refused).
    assert HASH_VERSION == "blake2b-64/1"
    assert [bucket_of(k, 1024) for k in ("a@x.com", "leung@example.com", "visitor:v1")] == [
        bucket_of("a@x.com", 1 << 20) % 1024,
        bucket_of("leung@example.com", 1 << 20) % 1024,
        bucket_of("visitor:v1", 1 << 20) % 1024,
    ]
    assert bucket_of("leung@example.com", 64) == 35


def test_routing(tmp_path: Path) -> None:
    events = [
        {"ts": TS, "type": "page_view", "visitor": "v1", "url": "x.com/a"},  # 1: anonymous
        {"ts": TS, "type": "form_submit", "prospect": " A@X.com ", "visitor": "v1", "asset": "F"},
        {"ts": TS, "type": "tick"},  # 3: every bucket
        {"ts": TS, "type": "page_view", "visitor": "v9", "url": "x.com/b"},  # 4: never tied
        b"not json",  # 5: bucket 0, rejected there by the run
        {"ts": TS, "type": "email_open", "prospect": "a@x.com", "asset": "E"},  # 6
        {"ts": TS, "type": "identify", "prospect": "b@y.com", "visitor": "v1"},  # 7: b joins a
        {"ts": TS, "type": "email_open", "prospect": "b@y.com", "asset": "E"},  # 8
    ]
    src = _write(tmp_path / "e.jsonl", events)
    stats = partition([src], tmp_path / "p", 16)
    assert stats["events"] == 8 and stats["ticks"] == 1 and stats["unrouted"] == 1
    group = _where(tmp_path / "p", 2)
    assert len(group) == 1
    for line in (1, 6, 7, 8):  # the visitor's anonymous view, and b, tied by v1, go with a
        assert _where(tmp_path / "p", line) == group
    assert _where(tmp_path / "p", 3) == list(range(16))
    assert _where(tmp_path / "p", 4) == [bucket_of("visitor:v9", 16)]
    assert _where(tmp_path / "p", 5) == [0]
    m = Manifest.load(tmp_path / "p")
    assert m.buckets == 16 and m.hash == HASH_VERSION and m.until == TS
    assert m.files[0]["lines"] == 8 and m.files[0]["path"] == str(src.resolve())


def test_gzip_and_order_keys(tmp_path: Path) -> None:
    lines = [{"ts": TS, "type": "email_open", "prospect": f"p{i}@x.com", "asset": "E"}
             for i in range(50)]  # fmt: skip
    src = tmp_path / "e.jsonl.gz"
    src.write_bytes(gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in lines)))
    partition([src], tmp_path / "p", 4)
    got = sorted(k for keys in _buckets(tmp_path / "p").values() for k in keys)
    assert got == [(0, i) for i in range(1, 51)]


def _tied_later(tmp_path: Path) -> tuple[Path, Path]:
    """Two files: a visitor's view and a prospect's open, then the identify tying them."""
    first = _write(tmp_path / "1.jsonl", [
        {"ts": TS, "type": "page_view", "visitor": "v1", "url": "x.com/a"},
        {"ts": TS, "type": "email_open", "prospect": "a@x.com", "asset": "E"},
    ])  # fmt: skip
    second = _write(tmp_path / "2.jsonl", [
        {"ts": TS, "type": "identify", "prospect": "a@x.com", "visitor": "v1"},
    ])  # fmt: skip
    return first, second


def test_append_adds_a_part_and_moves_a_group_tied_later(tmp_path: Path) -> None:
    first, second = _tied_later(tmp_path)
    n = 64
    assert bucket_of("visitor:v1", n) != bucket_of("a@x.com", n)  # so the view must move
    folder = tmp_path / "p"
    partition([first], folder, n)
    before = (folder / "part-0000").stat().st_mtime_ns
    stats = partition([second], folder)
    assert stats["moved"] == 1
    assert (folder / "part-0000").stat().st_mtime_ns == before  # nothing written moves
    buckets = _buckets(folder)
    home = bucket_of("a@x.com", n)
    assert buckets[home] == [(0, 1), (0, 2), (1, 1)]
    assert (0, 1) not in buckets[bucket_of("visitor:v1", n)]
    assert [p["name"] for p in Manifest.load(folder).parts] == ["part-0000", "part-0001"]
    with pytest.raises(PartitionError, match="already in"):
        partition([second], folder)
    with pytest.raises(PartitionError, match="has 64 buckets"):
        partition([tmp_path / "1.jsonl"], folder, 8)


def test_a_third_part_routes_a_prospect_where_the_second_part_tied_it(tmp_path: Path) -> None:
    """Each append reads the identity of the latest part: a prospect the second part tied
    to a visitor written before (its group's bucket, not its own hash's) keeps its events
    of the third part with the others, whatever the first part's identity file says."""
    n = 64
    assert bucket_of("visitor:v1", n) != bucket_of("b@x.com", n)
    files = [
        _write(tmp_path / "1.jsonl", [{"ts": TS, "type": "page_view", "visitor": "v1",
                                       "url": "https://x.example/"}]),
        _write(tmp_path / "2.jsonl", [{"ts": TS, "type": "identify", "visitor": "v1",
                                       "prospect": "b@x.com"}]),
        _write(tmp_path / "3.jsonl", [{"ts": TS, "type": "email_open", "prospect": "B@x.com ",
                                       "asset": "E"}]),
    ]  # fmt: skip
    folder = tmp_path / "p"
    for f in files:
        partition([f], folder, n if f == files[0] else None)
    assert _buckets(folder)[bucket_of("visitor:v1", n)] == [(0, 1), (1, 1), (2, 1)]


def test_an_append_moves_a_prospect_s_lines_to_its_visitor_s_bucket_and_never_a_tick(
    tmp_path: Path,
) -> None:
    """The group keeps the bucket of its least key: here the visitor's, so the prospect's
    lines written before move there. A tick is in every bucket already, whatever it names:
    it is not moved (copied twice into one bucket, left out of the others)."""
    n = 4
    assert (bucket_of("visitor:vZ", n), bucket_of("zed@x.com", n)) == (3, 1)
    first = _write(tmp_path / "1.jsonl", [
        {"ts": TS, "type": "page_view", "visitor": "vZ", "url": "https://x.example/"},
        {"ts": TS, "type": "email_open", "prospect": "zed@x.com", "asset": "E"},
        {"ts": TS, "type": "tick", "prospect": "zed@x.com"},
    ])  # fmt: skip
    second = _write(tmp_path / "2.jsonl", [
        {"ts": TS, "type": "identify", "prospect": "zed@x.com", "visitor": "vZ"},
    ])  # fmt: skip
    folder = tmp_path / "p"
    partition([first], folder, n)
    assert partition([second], folder)["moved"] == 1
    buckets = _buckets(folder)
    assert buckets[3] == [(0, 1), (0, 2), (0, 3), (1, 1)]
    assert buckets[0] == buckets[1] == buckets[2] == [(0, 3)]


def test_an_append_moves_a_visitor_out_of_bucket_0_and_leaves_its_unroutable_lines(
    tmp_path: Path,
) -> None:
    """Bucket 0 also holds the lines that cannot be routed (a visitor that is not text or
    is empty, a line that is not JSON): a group moving out of it leaves them there. Ties
    the new file names with a visitor or a prospect that is not one tie nobody."""
    n = 4
    assert (bucket_of("visitor:v3", n), bucket_of("a@x.com", n)) == (0, 1)
    first = _write(tmp_path / "1.jsonl", [
        {"ts": TS, "type": "page_view", "visitor": "v3", "url": "https://x.example/"},
        {"ts": TS, "type": "page_view", "visitor": 5, "url": "https://x.example/"},
        {"ts": TS, "type": "page_view", "visitor": "", "url": "https://x.example/"},
        b'not json "visitor" "prospect"',
        {"ts": TS, "type": "email_open", "prospect": "a@x.com", "asset": "E"},
    ])  # fmt: skip
    second = _write(tmp_path / "2.jsonl", [
        {"ts": TS, "type": "email_open", "prospect": "a@x.com", "asset": "E"},
        b'not json "visitor" "prospect"',  # neither ends the search for ties
        b'["visitor", "prospect"]',
        {"ts": TS, "type": "identify", "prospect": "a@x.com", "visitor": 5},
        {"ts": TS, "type": "identify", "prospect": "not an email", "visitor": "v3"},
        {"ts": TS, "type": "identify", "prospect": "a@x.com", "visitor": ""},
        {"ts": TS, "type": "identify", "prospect": "a@x.com", "visitor": "v3"},
    ])  # fmt: skip
    folder = tmp_path / "p"
    partition([first], folder, n)
    assert partition([second], folder)["moved"] == 1
    buckets = _buckets(folder)
    assert buckets[0] == [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 5)]
    assert buckets[1] == [(0, 1), (0, 5), (1, 1), (1, 4), (1, 6), (1, 7)]


def test_a_part_file_not_the_size_partition_wrote_is_damage(tmp_path: Path) -> None:
    """A bucket file or skip list removed, cut or grown since `partition` is refused when
    a run sizes the buckets: read as it is, the run lost those lines (or, without the skip
    list, applied a moved line twice) and said nothing."""
    first, second = _tied_later(tmp_path)
    n = 64
    folder = tmp_path / "p"
    partition([first], folder, n)
    partition([second], folder)
    m = Manifest.load(folder)
    home, away = bucket_of("a@x.com", n), bucket_of("visitor:v1", n)
    sizes = [m.bucket_size(folder, b) for b in range(n)]
    assert sum(sizes) == sum(p["bytes"] for p in m.parts) > 0
    skip = folder / "part-0001" / f"b{away:05d}.skip"
    assert m.parts[1]["skip_sizes"] == {str(away): skip.stat().st_size}
    kept = skip.read_bytes()
    skip.unlink()
    with pytest.raises(PartitionError, match=r"b\d{5}\.skip: 0 bytes where .* wrote"):
        m.bucket_size(folder, away)
    skip.write_bytes(kept)
    lines = folder / "part-0000" / f"b{home:05d}.jsonl"
    with lines.open("ab") as f:
        f.write(b"0 9 {}\n")
    with pytest.raises(PartitionError, match="the partition folder is damaged"):
        m.bucket_size(folder, home)
    for part in m.parts:  # a folder an older mrules wrote has no sizes: nothing to check
        del part["sizes"], part["skip_sizes"]
    assert m.bucket_size(folder, home) == sizes[home] + len(b"0 9 {}\n")


def test_a_killed_pass_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    src = _write(tmp_path / "e.jsonl", [{"ts": TS, "type": "tick"}])
    folder = tmp_path / "p"
    partition([src], folder, 2)
    (folder / ".part-0001.tmp").mkdir()  # what a kill leaves
    other = _write(tmp_path / "f.jsonl", [{"ts": TS, "type": "tick"}])
    partition([other], folder)
    assert not (folder / ".part-0001.tmp").exists()
    assert len(Manifest.load(folder).parts) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl", "--buckets", "4", "--out", "p"], "no such file"),
        (["e.jsonl", "--out", "p"], "--buckets is needed"),
        (["e.jsonl", "--buckets", "0", "--out", "p"], "0 is not in the range"),
        (["e.jsonl", "--buckets", "4", "--out", "e.jsonl"], "is a file"),
        (["e.jsonl", "--buckets", "4", "--out", "full"], "not empty and not a partition"),
        (["-", "--buckets", "4", "--out", "p"], "not standard input"),
        (["bad.gz", "--buckets", "4", "--out", "p"], "broken gzip"),
        # it said `a folder, not an events file`, and nothing of what to do with it
        (["made", "--buckets", "4", "--out", "p"], "made: a partition folder, not an events file"),
        # a name past the system's limit: it was an internal error (OSError, exit 70)
        ([LONG, "--buckets", "4", "--out", "p"], "too long for a path on this system"),
        (["e.jsonl", "--buckets", "4", "--out", LONG], "too long for a path on this system"),
        (["e.jsonl", "--out", f"{LONG}/p"], "--out xxxxx"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "e.jsonl", [{"ts": TS, "type": "tick"}])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b not gzip")
    partition([tmp_path / "e.jsonl"], tmp_path / "made", 2)
    result = CliRunner().invoke(main, ["partition", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("hidden", [[], [".keep"]])
def test_an_existing_folder_with_nothing_shown_in_it_is_partitioned_into(
    tmp_path: Path, hidden: list[str]
) -> None:
    """`--out` may exist already, empty (or holding only hidden files); a folder holding
    anything else is refused (test_bad_input_is_one_line)."""
    events = _write(tmp_path / "e.jsonl", [{"ts": TS, "type": "tick"}])
    (tmp_path / "out").mkdir()
    for name in hidden:
        (tmp_path / "out" / name).write_text("")
    partition([events], tmp_path / "out", 2)
    assert Manifest.load(tmp_path / "out").buckets == 2


@pytest.mark.parametrize(("buckets", "ok"), [(0, False), (1, True), (65536, True), (65537, False)])
def test_partition_from_python_takes_1_to_65536_buckets(
    tmp_path: Path, buckets: int, ok: bool
) -> None:
    """`mrules partition --buckets` takes 1 to 65,536, and so does `partition()`."""
    events = _write(tmp_path / "e.jsonl", [{"ts": TS, "type": "email_open",
                                            "prospect": "a@x.com", "asset": "E"}])  # fmt: skip
    if ok:
        assert partition([events], tmp_path / "out", buckets)["buckets"] == buckets
        assert Manifest.load(tmp_path / "out").buckets == buckets
    else:
        with pytest.raises(PartitionError, match=f"--buckets must be 1 to 65536, not {buckets}"):
            partition([events], tmp_path / "out", buckets)
        assert not (tmp_path / "out").exists()


def test_a_damaged_manifest_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "manifest.json").write_text("{")
    with pytest.raises(PartitionError, match="damaged manifest"):
        Manifest.load(folder)
    (folder / "manifest.json").write_text('{"format": "mrules-partition", "hash": "crc32/0"}')
    with pytest.raises(PartitionError, match="partition the archive again"):
        Manifest.load(folder)


def _tick_partitioned(folder: Path, buckets: int) -> tuple[Path, Path]:
    """A one-tick stream partitioned into FOLDER/p, and a rule file: (stream, rules)."""
    src = _write(folder / "e.jsonl", [{"ts": TS, "type": "tick"}])
    rules = folder / "r.mr"
    rules.write_text('list "A"\n', "utf-8")
    assert (
        CliRunner()
        .invoke(
            main, ["partition", str(src), "--buckets", str(buckets), "--out", str(folder / "p")]
        )
        .exit_code
        == 0
    )
    return src, rules


def _partition_and_run_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[dict], object]
) -> list[Result]:
    """The tick archive partitioned into `p/` (two buckets) in `tmp_path`, made the working
    folder, its manifest altered by `change`: `partition` appending to it, then its local
    run."""
    monkeypatch.chdir(tmp_path)
    src, rules = _tick_partitioned(tmp_path, 2)
    manifest = orjson.loads((tmp_path / "p" / "manifest.json").read_bytes())
    change(manifest)
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest), "utf-8")  # 2**70
    return [
        CliRunner().invoke(main, args)
        for args in (
            ["partition", str(src), "--out", "p"],
            ["run", str(rules), "p", "--engine", "local", "--store", "r.db", "-q"],
        )
    ]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda m: m["files"].__setitem__(0, "x"), "files[0] is not an object"),
        (lambda m: m["files"][0].update(path=["a"]), "files[0]: path, label or part is not text"),
        (lambda m: m["files"][0].update(lines=-1), "files[0]: lines or events is not a count"),
        (lambda m: m["files"][0].update(anchor=[1]), "files[0]: anchor is not [line, check]"),
        (lambda m: m["parts"][0].update(name="../../etc"), "parts[0]: name is not a part's name"),
        (lambda m: m["parts"][0].update(files=[3]), "parts[0]: files is not a list of paths"),
        (lambda m: m.update(until_epoch="soon"), "until_epoch is not a number"),
        (
            lambda m: m.update(until_epoch=1e300),
            "until_epoch is not a time of the years 1 to 9999",
        ),  # with --now, an internal error (the clock overflowed)
        (lambda m: m["files"].append(dict(m["files"][0])), "files[1]: path repeats files[0]"),
        (lambda m: m["parts"].append(dict(m["parts"][0])), "parts[1]: name repeats parts[0]"),
        (lambda m: m.update(buckets=2**70), "buckets is not 1 to 65536"),
        # Raised by hand, or written as text or a bool: each read as a valid count, the
        # run ran buckets never written and an append routed new prospects to them.
        (lambda m: m.update(buckets=4), "parts[0] was written for 2 buckets, not 4"),
        (lambda m: m.update(buckets="2"), "buckets is not a whole number"),
        (lambda m: m.update(buckets=True), "buckets is not a whole number"),
        (lambda m: m.update(buckets=2.0), "buckets is not a whole number"),
        (
            lambda m: m["parts"][0].update(buckets="2"),
            "parts[0] was written for '2' buckets, not 2",
        ),
        (lambda m: m["files"][0].update(events=2**70), "files[0]: lines or events is not a count"),
        # Each read as no part at all: the run read nothing and ended with exit 0, its
        # prospects left out without a word.
        (lambda m: m.update(parts=[]), "files[0]: part is none of the parts"),
        (lambda m: m.update(parts={}), "parts is not a list"),
        (lambda m: m.update(parts=""), "parts is not a list"),
        (lambda m: m.update(files=""), "files is not a list"),
    ],
)
def test_a_damaged_manifest_entry_is_refused_by_partition_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: object, said: str
) -> None:
    # Entries were read as they were: a TypeError in `partition` (appending) or in a
    # partitioned run, an internal error; a part named `../../etc` was read outside.
    for result in _partition_and_run_after(tmp_path, monkeypatch, damage):  # type: ignore[arg-type]
        assert result.exit_code == 2, result.output
        assert f"damaged manifest ({said})" in result.output, result.output
        assert "internal error" not in result.output


def _one_bucket_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    """The tick archive partitioned into `p/` (one bucket) in `tmp_path`, made the working
    folder: the arguments of its local run, and its bucket file."""
    monkeypatch.chdir(tmp_path)
    _src, rules = _tick_partitioned(tmp_path, 1)
    args = ["run", str(rules), "p", "--engine", "local", "--store", "r.db", "-q"]
    return args, tmp_path / "p" / "part-0000" / "b00000.jsonl"


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda b: b"x" + b[1:], "b00000.jsonl: line 1 is damaged (not `FILE LINE EVENT`"),
        (
            lambda b: b"0" + b.split(b"\n", 1)[0][b.index(b" ", 2) :] + b"\n",
            "b00000.jsonl: line 1 is damaged",
        ),  # the line number lost
        (lambda b: b"7" + b[1:], "a line names file 7, not in the manifest"),
    ],
)
def test_a_damaged_bucket_line_is_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: object, said: str
) -> None:
    # A bucket file's `FILE LINE EVENT` prefix damaged: int() failed in the worker, an
    # internal error of the partitioned run.
    args, bucket = _one_bucket_run(tmp_path, monkeypatch)
    size = bucket.stat().st_size
    bucket.write_bytes(damage(bucket.read_bytes()))  # type: ignore[operator]
    if bucket.stat().st_size != size:  # the manifest's sizes see it first
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "b00000.jsonl: " in result.output and " bytes where " in result.output
    # The lines themselves are checked too: in a folder an older mrules wrote (no sizes),
    # or damaged without a change of size.
    manifest = tmp_path / "p" / "manifest.json"
    doc = json.loads(manifest.read_text("utf-8"))
    for part in doc["parts"]:
        del part["sizes"], part["skip_sizes"]
    manifest.write_text(json.dumps(doc), "utf-8")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert said in result.output and "partition the archive again" in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize(("keep", "said"), [(1, "1 byte where"), (2, "2 bytes where")])
def test_a_cut_bucket_file_says_its_size_in_agreement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: int, said: str
) -> None:
    # A bucket file cut to one byte was "1 bytes where `mrules partition` wrote ...".
    args, bucket = _one_bucket_run(tmp_path, monkeypatch)
    wrote = bucket.stat().st_size
    bucket.write_bytes(bucket.read_bytes()[:keep])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"b00000.jsonl: {said} `mrules partition` wrote {wrote:,} " in result.output


@pytest.mark.parametrize(
    ("version", "said"),
    [
        (2, "written by a newer mrules (manifest version 2; this mrules reads 1): upgrade"),
        ("2", "damaged manifest (version is not a number)"),
    ],
)
def test_a_manifest_of_another_version_is_refused_by_partition_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: object, said: str
) -> None:
    # A newer mrules's folder was read as this one's, whatever its entries meant there.
    for result in _partition_and_run_after(
        tmp_path, monkeypatch, lambda m: m.update(version=version)
    ):
        assert result.exit_code == 2, result.output
        assert said in result.output, result.output


def test_until_is_the_latest_time_whatever_the_offset(tmp_path: Path) -> None:
    src = _write(tmp_path / "e.jsonl", [
        {"ts": "2026-11-02T01:00:00+02:00", "type": "tick"},  # 2026-11-01T23:00Z
        {"ts": "2026-11-01T23:30:00Z", "type": "tick"},  # later, though its text sorts first
        {"ts": "2026-10-01T00:00:00Z", "type": "tick"},
    ])  # fmt: skip
    partition([src], tmp_path / "p", 2)
    assert Manifest.load(tmp_path / "p").until == "2026-11-01T23:30:00Z"


def test_until_is_a_later_time_written_on_the_day_before_the_latest(tmp_path: Path) -> None:
    """A time written with a negative offset can carry the date of the day before the
    latest time and still be later than it."""
    src = _write(tmp_path / "e.jsonl", [
        {"ts": "2026-11-02T05:00:00Z", "type": "tick"},
        {"ts": "2026-11-01T23:00:00-08:00", "type": "tick"},  # 2026-11-02T07:00Z
        {"ts": "2026-11-02T08:00:00+01:00", "type": "tick"},  # the same time: not later
        {"ts": "yesterday", "type": "tick"},  # not a time: rejected by the reader
    ])  # fmt: skip
    partition([src], tmp_path / "p", 2)
    assert Manifest.load(tmp_path / "p").until == "2026-11-01T23:00:00-08:00"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def test_partition_records_a_checksum_of_every_bucket_file_and_skip_list(tmp_path: Path) -> None:
    first, second = _tied_later(tmp_path)
    folder = tmp_path / "p"
    partition([first], folder, 64)
    partition([second], folder)  # moves the visitor's view: a copy and a skip list
    m = Manifest.load(folder)
    for part in m.parts:
        for suffix, key, sizes in ((".jsonl", "checksums", "sizes"),
                                   (".skip", "skip_checksums", "skip_sizes")):  # fmt: skip
            assert set(part[key]) == set(part[sizes])
            for b, want in part[key].items():
                path = folder / part["name"] / f"b{int(b):05d}{suffix}"
                assert want == _digest(path.read_bytes()), path
    assert m.parts[1]["skip_checksums"] and m.parts[1]["checksums"]


def _garble(path: Path) -> None:
    """The last line's prospect `pN@x.com` made `qN@x.com`: the same size, still an event."""
    data = bytearray(path.read_bytes())
    at = data.rindex(b'"prospect":"p') + len(b'"prospect":"')
    data[at] = ord("q")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bucket_file_garbled_without_a_change_of_size_is_a_damaged_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    # Only sizes were checked: a bucket file garbled in place (a bad disk, an edit) was
    # applied, its prospects changed without a word, and exit 0.
    monkeypatch.chdir(tmp_path)
    events = [{"ts": TS, "type": "email_open", "prospect": f"p{i}@x.com", "asset": "E"}
              for i in range(40)]  # fmt: skip
    src = _write(tmp_path / "e.jsonl", events)
    (tmp_path / "r.mr").write_text('list "A"\n', "utf-8")
    assert partition([src], tmp_path / "p", 4)["events"] == 40
    bucket = tmp_path / "p" / "part-0000" / "b00002.jsonl"
    size = bucket.stat().st_size
    _garble(bucket)
    assert bucket.stat().st_size == size
    args = ["run", "r.mr", "p", "--engine", "local", "--workers", workers, "--store", "r.db"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "part-0000/b00002.jsonl: not what `mrules partition` wrote" in result.output
    assert "the partition folder is damaged" in result.output
    assert "partition the archive again" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert not (tmp_path / "r.db").exists()  # nothing merged
    shards = [p.name for p in (tmp_path / "r.db.shards").glob("*/b*.db")]
    assert "b00002.db" not in shards  # nothing kept of the garbled bucket
    if workers == "1":  # one after the other, the largest first: those before it are kept
        assert shards, "the buckets done before were removed"
    # A folder written before mrules kept checksums: sizes only, as before (run as it is).
    manifest = tmp_path / "p" / "manifest.json"
    doc = json.loads(manifest.read_text("utf-8"))
    for part in doc["parts"]:
        del part["checksums"], part["skip_checksums"]
    manifest.write_text(json.dumps(doc), "utf-8")
    result = CliRunner().invoke(main, [*args[:-1], "old.db"])
    assert result.exit_code == 0, result.output  # the garbled line applied, as before
    export = CliRunner().invoke(main, ["state", "export", "--store", "old.db"])
    assert re.search(r'"q\d+@x\.com"', export.output), export.output


def test_a_garbled_skip_list_or_a_garbled_file_an_append_copies_is_damage(
    tmp_path: Path,
) -> None:
    first, second = _tied_later(tmp_path)
    folder = tmp_path / "p"
    partition([first], folder, 64)
    away = bucket_of("visitor:v1", 64)
    bucket = folder / "part-0000" / f"b{away:05d}.jsonl"
    kept = bucket.read_bytes()
    bucket.write_bytes(kept.replace(b"x.com/a", b"x.com/b"))
    # An append that copies a moved group's lines checks them as a run does: a garbled
    # line copied into the new part had a checksum of its own there, for good.
    with pytest.raises(PartitionError, match=r"b\d{5}\.jsonl: not what `mrules partition` wrote"):
        partition([second], folder)
    bucket.write_bytes(kept)
    partition([second], folder)
    m = Manifest.load(folder)
    skip = folder / "part-0001" / f"b{away:05d}.skip"
    skip.write_bytes(skip.read_bytes().replace(b"0 1", b"0 2"))  # another line skipped
    with pytest.raises(PartitionError, match=r"b\d{5}\.skip: not what `mrules partition` wrote"):
        list(read_bucket_lines(m.bucket_parts(folder, away), m.bucket_checksums(away)))


def test_a_pass_stopped_before_its_manifest_is_written_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C (or a kill) after the part was renamed into place and before the manifest
    # named it: the same command again was an internal error (`Directory not empty`, exit
    # 70), and the folder's identity file, written before the manifest, was already
    # ahead of it (the moved group's ties, without the part that moves its lines).
    first, second = _tied_later(tmp_path)
    clean, folder = tmp_path / "clean", tmp_path / "p"
    for f in (clean, folder):
        partition([first], f, 64)
    partition([second], clean)
    import mrules.partition as mp

    def stopped(path: Path, data: bytes) -> None:
        if path.name == "manifest.json":
            raise KeyboardInterrupt
        mp_atomic_write(path, data)

    mp_atomic_write = mp.atomic_write
    with monkeypatch.context() as m:
        m.setattr(mp, "atomic_write", stopped)
        result = CliRunner().invoke(main, ["partition", str(second), "--out", str(folder)])
    assert result.exit_code == 130, result.output
    assert (folder / "part-0001").is_dir()  # in place, not named by the manifest
    result = CliRunner().invoke(main, ["partition", str(second), "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert _buckets(folder) == _buckets(clean)
    assert (
        Manifest.load(folder).parts[1]["skip_sizes"] == Manifest.load(clean).parts[1]["skip_sizes"]
    )


def test_ctrl_c_during_partition_says_the_folder_is_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It said the writing commands' `what was committed is kept, and running the same
    # command again resumes`: a pass keeps nothing before its manifest, and resumes nothing.
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "e.jsonl", [{"ts": TS, "type": "tick"}])

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("mrules.partition._ties", ctrl_c)
    result = CliRunner().invoke(main, ["partition", "e.jsonl", "--buckets", "2", "--out", "p"])
    assert result.exit_code == 130, result.output
    assert result.output == (
        "mrules: error: interrupted; p is as it was before this command (a part is kept only"
        " once the manifest names it): run the same command again\n"
    )
    assert not (tmp_path / "p" / "manifest.json").exists()


def test_a_file_given_as_the_folder_of_a_partitioned_run_from_python_says_so(
    tmp_path: Path,
) -> None:
    # It said `e.jsonl/manifest.json: cannot read: Not a directory`.
    from mrules.scale import run_partitioned

    src = _write(tmp_path / "e.jsonl", [{"ts": TS, "type": "tick"}])
    with pytest.raises(
        PartitionError, match=r"e\.jsonl: a file, not a partition folder: partition"
    ):
        run_partitioned('list "A"\n', src, tmp_path / "r.db")
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".skip"])
def test_a_bucket_file_that_cannot_be_read_is_exit_2_for_partition_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    # A bucket file or skip list without read permission (or an I/O error) raised an
    # error neither command expected: an internal error, exit 70.
    import builtins

    import mrules.partition as mp

    monkeypatch.chdir(tmp_path)
    first, second = _tied_later(tmp_path)
    partition([first], tmp_path / "p", 64)
    (tmp_path / "r.mr").write_text('list "A"\n', "utf-8")
    real_open = builtins.open

    def refused(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith(suffix) and "part-" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    def read_bytes(self: Path) -> bytes:
        with refused(self, "rb") as f:  # type: ignore[attr-defined]
            return f.read()  # type: ignore[no-any-return]

    commands = [["run", "r.mr", "p", "--engine", "local", "--workers", "1", "--store", "r.db"]]
    if suffix == ".jsonl":  # the append copies the visitor's view out of its bucket file
        commands.insert(0, ["partition", str(second), "--out", "p"])
    else:
        partition([second], tmp_path / "p")  # a skip list, read by the run
    monkeypatch.setattr(mp, "open", refused, raising=False)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    for args in commands:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert f"{suffix}: cannot read: Permission denied" in result.output
        assert "run the same command again" in result.output
