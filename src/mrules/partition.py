"""Bucketing an event archive by prospect, once, for runs in many processes (docs/scale-out.md).

`partition(files, out, buckets)` rewrites JSONL event files (gzip too) into
`buckets` fixed hash buckets of the canonical prospect, so that every event
that can change a prospect lands in that prospect's bucket, and each bucket
can be run by the unchanged engine alone:

- **The key** of an event is its prospect's email as the event reader
  normalises it (stripped, lower case, NFC); a page view with only a
  `visitor` uses the prospect that visitor is tied to anywhere in the
  archive (a pre-pass reads the ties first), so a visitor's anonymous views
  are in its prospect's bucket before the tie. Prospects that share a
  visitor are one group and share a bucket. A visitor never tied goes by its
  own id. Ticks go to every bucket.
- **The hash** is stable and versioned (`HASH_VERSION`): the first 8 bytes of
  BLAKE2b of the key's UTF-8, big-endian, modulo the bucket count; never
  Python's `hash()`, which changes from process to process.
- **The order key**: each bucket line keeps its event's file ordinal and line
  number (`ORD LINE <the original line>`), so "file order" is defined once and
  a bucket run numbers its events as the original file does.
- **Lines that cannot be routed** (not JSON, a `prospect` that is not an
  email...) go to bucket 0 with their file and line; the run rejects them
  there exactly as a single-process run would.
- **The manifest** (`manifest.json`) records the files (absolute path, line
  count), the hash version, the bucket count, the parts and `until`, the
  latest event time. `identity.json.gz` records which bucket every prospect
  and visitor went to. Partitioning more files into the same folder appends a
  new part to every bucket; nothing already written moves. A new file that
  ties together prospects (or a visitor) already written to different buckets
  cannot be appended: it is refused, and the archive must be partitioned
  again into a new folder.

A part is written into a hidden temporary folder and renamed into place, then
the manifest is replaced atomically: a killed partition pass leaves the folder
as it was.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import heapq
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mrules.atomic import atomic_write
from mrules.diagnostics import plural
from mrules.events import (
    _BOM,
    Event,
    Reject,
    _Bad,
    _event,
    _normalise_email,
    gzip_trouble,
    is_cut_short,
    line_check,
    parse_line,
    parse_timestamp,
)
from mrules.loader import printable_path
from mrules.timetext import FIRST_TIME, LAST_TIME

__all__ = [
    "HASH_VERSION",
    "MANIFEST",
    "Manifest",
    "PartitionError",
    "bucket_of",
    "folder_holding",
    "is_partition_folder",
    "partition",
    "read_bucket_lines",
]

MANIFEST_VERSION = 1
"""The manifest's format; a folder of a later one (a newer mrules) is refused."""
HASH_VERSION = "blake2b-64/1"
"""BLAKE2b (8-byte digest) of the key's UTF-8, as a big-endian integer, modulo the buckets."""
CHECKSUM_BYTES = 16
"""A bucket file's checksum in the manifest: BLAKE2b with this digest size, in hex."""

MANIFEST = "manifest.json"
IDENTITY = "identity.json.gz"
FORMAT = "mrules-partition"
_VISITOR = "visitor:"  # the key of a visitor never tied to a prospect


_OUTPUT_FAILED = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM)
"""Why the partition folder cannot be made that is the disk's, not the command's: a
read-only or full disk, no permission. Raised as it is, for the exit code of an output
that failed (4), as a bucket file's write is; a folder on a read-only disk was exit 2."""


class PartitionError(Exception):
    """The archive cannot be partitioned, or the folder is not a partition; the message says why."""


def bucket_of(key: str, buckets: int) -> int:
    """The bucket of a routing key: stable across processes, machines and Python versions.

    >>> bucket_of("leung@example.com", 64), bucket_of("leung@example.com", 1)
    (35, 0)
    """
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


@dataclass
class Manifest:
    """What a partition folder holds (`manifest.json`)."""

    buckets: int
    hash: str = HASH_VERSION
    files: list[dict[str, Any]] = field(default_factory=list)  # path, label, lines, events
    parts: list[dict[str, Any]] = field(default_factory=list)  # name, files (ordinals), events
    until: str | None = None  # the latest event time of the archive (RFC 3339)
    until_epoch: float | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "version": MANIFEST_VERSION,
                "hash": self.hash,
                "buckets": self.buckets,
                "files": self.files,
                "parts": self.parts,
                "until": self.until,
                "until_epoch": self.until_epoch,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            raw = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise PartitionError(f"{folder}: not a partition folder (no {MANIFEST})") from None
        except NotADirectoryError:  # was "FILE/manifest.json: cannot read: Not a directory"
            raise PartitionError(
                f"{folder}: a file, not a partition folder: partition it first (mrules"
                " partition, or mrules.partition.partition)"
            ) from None
        except OSError as e:
            raise PartitionError(f"{path}: cannot read: {e.strerror or e}") from None
        except orjson.JSONDecodeError as e:
            raise PartitionError(f"{path}: damaged manifest ({e})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise PartitionError(f"{path}: not an mrules partition manifest")
        version = raw.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise PartitionError(f"{path}: damaged manifest (version is not a number)")
        if version > MANIFEST_VERSION:  # read as this one's, its entries meant other things
            raise PartitionError(
                f"{path}: written by a newer mrules (manifest version {version}; this mrules"
                f" reads {MANIFEST_VERSION}): upgrade mrules, or partition the archive again"
                " into a new folder"
            )
        if raw.get("hash") != HASH_VERSION:
            raise PartitionError(
                f"{path}: written with hash {raw.get('hash')!r}; this mrules routes with"
                f" {HASH_VERSION!r}: partition the archive again into a new folder"
            )
        try:
            for key in ("files", "parts"):
                # list() took a text or an object for an empty list: no part, nothing read.
                if not isinstance(raw[key], list):
                    raise TypeError(f"{key} is not a list")
            buckets = raw["buckets"]
            # int() took "4" and true (1 bucket) for a count: a hand edit read as valid.
            if isinstance(buckets, bool) or not isinstance(buckets, int):
                # 2**70 reads as a float: out of range, as any count past 65536
                wide = isinstance(buckets, float) and not 1 <= buckets <= 65536
                raise ValueError(
                    "buckets is not 1 to 65536" if wide else "buckets is not a whole number"
                )
            manifest = cls(
                buckets=buckets,
                files=list(raw["files"]),
                parts=list(raw["parts"]),
                until=raw.get("until"),
                until_epoch=raw.get("until_epoch"),
            )
            _check_entries(manifest)
        except (KeyError, TypeError, ValueError) as e:
            raise PartitionError(f"{path}: damaged manifest ({e})") from None
        return manifest

    def bucket_size(self, folder: Path, bucket: int) -> int:
        """The bytes of one bucket's part files. PartitionError when a part's bucket file or
        skip list is not the size `partition` wrote (removed, cut short, emptied, written
        to): read as they are, the run would leave out, or apply twice, the lines they lost."""
        total = 0
        for part in self.parts:
            for suffix, key in ((".jsonl", "sizes"), (".skip", "skip_sizes")):
                path = folder / part["name"] / f"b{bucket:05d}{suffix}"
                try:
                    have = path.stat().st_size
                except FileNotFoundError:
                    have = 0
                except OSError as e:
                    raise PartitionError(f"{path}: cannot read: {e.strerror or e}") from None
                sizes = part.get(key)
                want = None if sizes is None else sizes.get(str(bucket), 0)
                if want is not None and have != want:
                    raise PartitionError(
                        f"{path}: {plural(have, 'byte')} where `mrules partition` wrote {want:,}"
                        " (removed, cut short or written to since): the partition folder is"
                        " damaged; partition the archive again into a new folder"
                    )
                if suffix == ".jsonl":
                    total += have
        return total

    def bucket_checksums(self, bucket: int) -> list[tuple[str | None, str | None]]:
        """Every part's (bucket file, skip list) checksums for one bucket, in part order, as
        `bucket_parts` lists their paths; None where `partition` wrote no file (or a part
        written before mrules kept checksums: that file is checked by its size alone)."""
        return [
            (
                part.get("checksums", {}).get(str(bucket)),
                part.get("skip_checksums", {}).get(str(bucket)),
            )
            for part in self.parts
        ]

    def bucket_files(self, folder: Path, bucket: int) -> list[Path]:
        """The part files of one bucket, in part order (a part may have none for it)."""
        return [p for p, _ in self.bucket_parts(folder, bucket) if p.exists()]

    def bucket_parts(self, folder: Path, bucket: int) -> list[tuple[Path, Path]]:
        """Every part's (lines, skip list) paths for one bucket; either may not exist."""
        return [
            (
                folder / part["name"] / f"b{bucket:05d}.jsonl",
                folder / part["name"] / f"b{bucket:05d}.skip",
            )
            for part in self.parts
        ]


def _check_entries(m: Manifest) -> None:
    """The manifest's file and part entries as `partition` writes them (TypeError or
    ValueError naming the first that is not): read as they were, a damaged entry was an
    internal error of `partition` or of a partitioned run."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(what)

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63

    need(1 <= m.buckets <= 65536, "buckets is not 1 to 65536")

    paths: dict[str, int] = {}
    for n, f in enumerate(m.files):
        need(isinstance(f, dict), f"files[{n}] is not an object")
        need(
            all(isinstance(f.get(k), str) for k in ("path", "label", "part")),
            f"files[{n}]: path, label or part is not text",
        )
        # A file twice was two streams of one name in the merged store: an internal error.
        first = paths.setdefault(f["path"], n)
        need(first == n, f"files[{n}]: path repeats files[{first}]")
        need(
            whole(f.get("lines")) and whole(f.get("events")),
            f"files[{n}]: lines or events is not a count",
        )
        anchor = f.get("anchor")
        need(
            anchor is None
            or (isinstance(anchor, list) and len(anchor) == 2 and all(whole(x) for x in anchor)),
            f"files[{n}]: anchor is not [line, check]",
        )
    names: dict[str, int] = {}
    for n, part in enumerate(m.parts):
        need(isinstance(part, dict), f"parts[{n}] is not an object")
        name = part.get("name")
        need(
            isinstance(name, str)
            and name.startswith("part-")
            and "/" not in name
            and "\\" not in name,
            f"parts[{n}]: name is not a part's name",
        )
        first = names.setdefault(str(name), n)  # a part twice: its lines read twice
        need(first == n, f"parts[{n}]: name repeats parts[{first}]")
        # The count the part was routed with (absent from a folder older mrules wrote): a
        # `buckets` raised by hand ran buckets that were never written, and routed an
        # append's new prospects to them, apart from the groups already written.
        written = part.get("buckets", m.buckets)
        need(
            isinstance(written, int) and not isinstance(written, bool) and written == m.buckets,
            f"parts[{n}] was written for {written!r} buckets, not {m.buckets}",
        )
        files = part.get("files")
        need(
            isinstance(files, list) and all(isinstance(x, str) for x in files),
            f"parts[{n}]: files is not a list of paths",
        )
        need(
            whole(part.get("events")) and whole(part.get("bytes")),
            f"parts[{n}]: events or bytes is not a count",
        )
        for key in ("sizes", "skip_sizes"):  # absent from a folder older mrules wrote
            sizes = part.get(key, {})
            need(
                isinstance(sizes, dict)
                and all(k.isdigit() and int(k) < m.buckets and whole(v) for k, v in sizes.items()),
                f"parts[{n}]: {key} is not a size for each bucket",
            )
        for key, of in (("checksums", "sizes"), ("skip_checksums", "skip_sizes")):
            if key not in part:  # a folder written before mrules kept them: sizes alone
                continue
            sums = part[key]
            need(
                isinstance(sums, dict)
                and all(_is_checksum(v) for v in sums.values())
                and (of not in part or set(sums) == set(part[of])),
                f"parts[{n}]: {key} is not a checksum for each file of {of}",
            )
    # Each file's lines are in the part it names: a part the manifest lost is not read.
    for n, f in enumerate(m.files):
        need(f["part"] in names, f"files[{n}]: part is none of the parts")
    need(m.until is None or isinstance(m.until, str), "until is not a time")
    need(
        m.until_epoch is None
        or (isinstance(m.until_epoch, int | float) and not isinstance(m.until_epoch, bool)),
        "until_epoch is not a number",
    )
    # A time past the year 9999 (no event has one) was an internal error of a run with
    # `--now`, which meets it there (an overflow writing the clock).
    need(
        m.until_epoch is None or FIRST_TIME <= m.until_epoch <= LAST_TIME,
        "until_epoch is not a time of the years 1 to 9999",
    )


def _is_checksum(v: Any) -> bool:
    return (
        isinstance(v, str)
        and len(v) == 2 * CHECKSUM_BYTES
        and all(c in "0123456789abcdef" for c in v)
    )


def _checksum() -> Any:
    return hashlib.blake2b(digest_size=CHECKSUM_BYTES)


def _garbled(path: Path) -> str:
    return (
        f"{path}: not what `mrules partition` wrote (its checksum differs: changed in"
        " place since): the partition folder is damaged; partition the archive again into"
        " a new folder"
    )


def is_partition_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def folder_holding(path: str | Path) -> Path | None:
    """The partition folder `path` is one of the files of (its manifest, its identity
    file, a part's bucket file or skip list), or None.

    >>> folder_holding("/nowhere/manifest.json") is None
    True
    """
    p = Path(path)
    if p.name in (MANIFEST, IDENTITY) and is_partition_folder(p.parent):
        return p.parent
    if p.parent.name.startswith("part-") and is_partition_folder(p.parent.parent):
        return p.parent.parent
    return None


class _Groups:
    """Union-find over prospect emails and visitor keys: who must share a bucket."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while (up := parent.get(root, root)) != root:
            root = up
        while x != root:  # path compression
            up = parent[x]
            parent[x] = root
            x = up
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra
            self.parent.setdefault(ra, ra)


def _lines(path: Path) -> Iterator[bytes]:
    """The raw lines of an events file (gzip by name or magic bytes), as the reader splits them."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise PartitionError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        gz = path.name.endswith(".gz") or f.peek(2)[:2] == b"\x1f\x8b"
        stream: Any = gzip.GzipFile(fileobj=f, mode="rb") if gz else f
        try:
            yield from stream
        except (gzip.BadGzipFile, EOFError, OSError) as e:
            raise PartitionError(f"{path}: {gzip_trouble(e)}") from None
    finally:
        f.close()


def _cut_short(raw: bytes, line: int) -> bool:
    """Whether a file's last line, with no newline, is cut short (`events.is_cut_short`)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        item = parse_line(raw, line)
        return isinstance(item, Reject) and is_cut_short(item, raw)
    return False


def _email(value: Any) -> str | None:
    try:
        return _normalise_email(value)
    except _Bad:
        return None


def _is_tick(obj: dict[str, Any]) -> bool:
    kind = obj.get("type")
    return type(kind) is str and kind.strip().lower() == "tick"


def _load_identity(
    folder: Path, manifest: Manifest
) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """Where every prospect and visitor went, as of the manifest's last part: the copy in
    that part's folder (written with the part, so it is the manifest's own), or the
    folder's (a folder written before mrules kept one with each part)."""
    path = folder / IDENTITY
    if manifest.parts and (folder / manifest.parts[-1]["name"] / IDENTITY).exists():
        path = folder / manifest.parts[-1]["name"] / IDENTITY
    if not path.exists():
        return {}, {}, {}
    try:
        raw = orjson.loads(gzip.decompress(path.read_bytes()))
        return dict(raw["prospects"]), dict(raw["visitors"]), dict(raw["groups"])
    except (OSError, EOFError, KeyError, TypeError, orjson.JSONDecodeError) as e:
        raise PartitionError(f"{path}: damaged identity file ({e})") from None


def _ties(files: Sequence[Path], groups: _Groups) -> None:
    """Pass 1: every (prospect, visitor) pair an event names ties them into one group."""
    loads = orjson.loads
    for path in files:
        for line, raw in enumerate(_lines(path), 1):
            if b'"visitor"' not in raw or b'"prospect"' not in raw:
                continue
            if line == 1:  # a byte order mark, which the reader skips on line 1
                raw = raw.removeprefix(_BOM)
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(obj) is not dict:
                continue
            visitor = obj.get("visitor")
            email = _email(obj.get("prospect")) if obj.get("prospect") is not None else None
            if email is not None and type(visitor) is str and visitor:
                groups.union(email, _VISITOR + visitor)


def _owner(obj: Any) -> str | None:
    """The routing key of a parsed line: its prospect's email, or `visitor:ID`; None: neither."""
    if type(obj) is not dict or _is_tick(obj):
        return None
    who = obj.get("prospect")
    if who is not None:
        return _email(who)
    vid = obj.get("visitor")
    return _VISITOR + vid if type(vid) is str and vid else None


def _moved_lines(
    folder: Path, manifest: Manifest, moves: dict[int, dict[str, int]]
) -> tuple[dict[int, list[bytes]], dict[int, list[bytes]]]:
    """The written lines of prospects (and visitors) that join a group in another bucket.

    Returns the lines to add to each bucket (sorted by order key) and the order
    keys each bucket must skip from now on.
    """
    add: dict[int, list[tuple[int, int, bytes]]] = {}
    skip: dict[int, list[bytes]] = {}
    for source, keys in moves.items():
        sums = manifest.bucket_checksums(source)
        for (path, _), (want, _) in zip(manifest.bucket_parts(folder, source), sums, strict=True):
            # Checked as a run checks it: a garbled line copied into the new part would have
            # a checksum of its own there.
            for o, ln, raw in _part_lines(path, want):
                try:
                    key = _owner(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    continue
                to = keys.get(key) if key is not None else None
                if to is not None:
                    add.setdefault(to, []).append((o, ln, b"%d %d " % (o, ln) + raw))
                    skip.setdefault(source, []).append(b"%d %d\n" % (o, ln))
    return (
        {b: [rec for *_, rec in sorted(recs)] for b, recs in add.items()},
        skip,
    )


def partition(
    files: Sequence[str | Path],
    out: str | Path,
    buckets: int | None = None,
    *,
    progress: Any = None,
) -> dict[str, Any]:
    """Partition `files` into `out` (new, or a partition folder to append a part to).

    Returns what was done: events, rejected-to-bucket-0 lines, ticks, seconds, the part's name.

    Raises:
        PartitionError: a file cannot be read, the folder is not a partition or
            has another bucket count, a file is already in it, or a new file ties
            prospects already written to different buckets.
    """
    started = time.perf_counter()
    folder = Path(out)
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            if p.is_dir():
                if is_partition_folder(p):  # a folder partition wrote: it is run, not read
                    raise PartitionError(
                        f"{p}: a partition folder, not an events file: run it (mrules run"
                        f" RULES {p} --engine local), or give the archive's own files"
                    )
                raise PartitionError(f"{p}: a folder, not an events file")
            if p.exists():  # a named pipe such as <(zcat a.gz), a device
                raise PartitionError(
                    f"{p}: not a regular file (partition reads each file twice: give a file)"
                )
            raise PartitionError(f"{p}: no such file")
    if folder.exists() and not folder.is_dir():
        raise PartitionError(f"{folder}: not a folder")
    if folder.is_dir():  # its own bucket files (`find . -name '*.jsonl'`), its manifest
        inside = os.path.realpath(folder) + os.sep
        for p in paths:
            real = os.path.realpath(p)
            first = real[len(inside) :].split(os.sep, 1)[0] if real.startswith(inside) else None
            if first is not None and (
                first in (MANIFEST, IDENTITY) or first.startswith(("part-", "."))
            ):
                raise PartitionError(
                    f"{printable_path(str(p))}: a file of the partition folder {folder}, not an"
                    " events file: partitioned, it would be in the folder for good, every line"
                    " of it a rejected line; give the archive's own files"
                )
    if not folder.exists() and not folder.parent.is_dir():  # mrules creates no other folders
        raise PartitionError(
            f"--out {folder}: {folder.parent} does not exist or is not a folder; create it first"
        )
    if is_partition_folder(folder):
        manifest = Manifest.load(folder)
        if buckets is not None and buckets != manifest.buckets:
            raise PartitionError(
                f"{folder} has {plural(manifest.buckets, 'bucket')}, not {buckets}; new files"
                " append"
                f" to the same buckets (leave out --buckets, or use a new folder)"
            )
    else:
        if folder.exists() and any(x for x in folder.iterdir() if not x.name.startswith(".")):
            raise PartitionError(f"{folder}: not empty and not a partition folder")
        if buckets is None:
            raise PartitionError("--buckets is needed for a new partition folder")
        manifest = Manifest(buckets=buckets)
    if not 1 <= manifest.buckets <= 65536:
        raise PartitionError(f"--buckets must be 1 to 65536, not {manifest.buckets}")
    known = {f["path"] for f in manifest.files}
    for p in paths:
        if _source(p) in known:
            raise PartitionError(f"{p}: already in {folder} (a file is partitioned once)")
    if len({_source(p) for p in paths}) != len(paths):
        raise PartitionError("a file is named twice")
    n = manifest.buckets
    prospects, visitors, parent = _load_identity(folder, manifest)

    # Pass 1: ties (with those of the files already written), then each group's bucket.
    groups = _Groups()
    groups.parent = parent
    _ties(paths, groups)
    members: dict[str, list[str]] = {}
    for x in list(groups.parent):
        members.setdefault(groups.find(x), []).append(x)
    route: dict[str, int] = {}  # email or visitor key -> bucket, for grouped keys
    moves: dict[int, dict[str, int]] = {}  # bucket -> {key written there: its group's bucket}
    for root, keys in members.items():
        placed = {}
        for k in keys:
            b = visitors.get(k[len(_VISITOR) :]) if k.startswith(_VISITOR) else prospects.get(k)
            if b is not None:
                placed[k] = b
        if placed:
            # A group already written keeps its bucket; a new tie between groups written to
            # different buckets moves the others' lines there (a copy, and a skip list).
            bucket = placed[min(placed)]
            for k, b in placed.items():
                if b != bucket:
                    moves.setdefault(b, {})[k] = bucket
        else:
            emails = sorted(k for k in keys if not k.startswith(_VISITOR))
            bucket = bucket_of(emails[0] if emails else root, n)
        for k in keys:
            route[k] = bucket
            if k.startswith(_VISITOR):
                if k[len(_VISITOR) :] in visitors:
                    visitors[k[len(_VISITOR) :]] = bucket
            elif k in prospects:
                prospects[k] = bucket
    added, skipped = _moved_lines(folder, manifest, moves) if moves else ({}, {})

    # Pass 2: route every line.
    part_no = len(manifest.parts)
    name = f"part-{part_no:04d}"
    tmp = folder / f".{name}.tmp"
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        if e.errno in _OUTPUT_FAILED:  # the disk, not the command: exit 4, as a bucket's write
            raise
        raise PartitionError(f"--out {folder}: cannot create it: {e.strerror or e}") from None
    for stale in folder.glob(".part-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    if (folder / name).is_dir():
        # A part put into place by a pass stopped before it wrote the manifest (Ctrl-C, a
        # kill): not in the folder until the manifest names it, so written again. Its
        # rename onto that folder was an internal error (`Directory not empty`).
        shutil.rmtree(folder / name)
    tmp.mkdir()
    buffers: list[list[bytes]] = [[] for _ in range(n)]
    sizes = [0] * n
    # Each bucket file's checksum, of the bytes as they are written (no second read).
    sums: list[Any] = [None] * n
    buffered = 0
    limit = 32 << 20
    loads = orjson.loads
    cache: dict[Any, int] = {}
    all_buckets = range(n)
    stats: dict[str, Any] = {
        "events": 0, "unrouted": 0, "ticks": 0, "files": len(paths), "part": name,
        "unfinished": [],  # (file, line): a last line cut short, left out
    }  # fmt: skip
    latest: float | None = None  # the latest time of an event the reader takes
    latest_text: str | None = None
    floor = ""  # the UTC date of the day before the latest time seen
    new_files: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal buffered
        for b in all_buckets:
            chunk = buffers[b]
            if chunk:
                data = b"".join(chunk)
                with open(tmp / f"b{b:05d}.jsonl", "ab") as f:
                    f.write(data)
                if sums[b] is None:
                    sums[b] = _checksum()
                sums[b].update(data)
                buffers[b] = []
        buffered = 0

    try:
        for b, recs in added.items():  # earlier files' lines come first in a part
            buffers[b].extend(recs)
            sizes[b] += sum(len(r) for r in recs)
        skip_sizes: dict[str, int] = {}
        skip_sums: dict[str, str] = {}
        for b, skips in skipped.items():
            data = b"".join(skips)
            skip_sizes[str(b)] = (tmp / f"b{b:05d}.skip").write_bytes(data)
            skip_sums[str(b)] = hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).hexdigest()
        stats["moved"] = sum(len(r) for r in added.values())
        for i, path in enumerate(paths):
            ordinal = len(manifest.files) + i
            last = 0
            last_raw = b""
            count = 0
            line = 0
            # The file's latest time so far (epoch, ts, the line's JSON, line), not yet
            # known to be an event the reader takes: checked once, at the end of the file.
            top: tuple[float, str, dict[str, Any], int] | None = None
            floor = "" if latest is None else _day_before(latest)
            for raw in _lines(path):
                line += 1
                if not raw.strip():
                    continue  # blank lines: the reader skips them too
                if not raw.endswith(b"\n") and _cut_short(raw, line):
                    # As `mrules run` leaves it for its next run, not a rejected line: the
                    # file's lines end before it (the store continues after them).
                    stats["unfinished"].append((printable_path(str(path)), line))
                    continue
                last, last_raw = line, raw
                count += 1
                if not raw.endswith(b"\n"):
                    raw += b"\n"
                rec = b"%d %d " % (ordinal, line) + raw
                targets: Any = (0,)
                try:
                    # A byte order mark on line 1 is skipped by the reader: the event is
                    # routed as any other, not to bucket 0 as a line to reject.
                    obj = loads(raw.removeprefix(_BOM) if line == 1 else raw)
                except orjson.JSONDecodeError:
                    obj = None
                if type(obj) is dict:
                    who = obj.get("prospect")
                    if _is_tick(obj):  # a tick goes to every bucket, whatever else it names
                        targets = all_buckets
                        stats["ticks"] += 1
                    elif who is not None:
                        b = cache.get(who) if type(who) is str else None
                        if b is None:
                            email = _email(who)
                            if email is None:
                                stats["unrouted"] += 1
                            else:
                                b = route.get(email)
                                if b is None:
                                    b = prospects.get(email)
                                if b is None:
                                    b = bucket_of(email, n)
                                prospects[email] = b
                                if type(who) is str and len(cache) < 1_000_000:
                                    cache[who] = b
                                targets = (b,)
                        else:
                            targets = (b,)
                    elif type(obj.get("visitor")) is str and obj["visitor"]:
                        vid = obj["visitor"]
                        b = route.get(_VISITOR + vid)
                        if b is None:
                            b = visitors.get(vid)
                        if b is None:
                            b = bucket_of(_VISITOR + vid, n)
                        visitors[vid] = b
                        targets = (b,)
                    else:
                        stats["unrouted"] += 1
                    ts = obj.get("ts")
                    # A date before the day before the latest cannot be later than it,
                    # whatever its offset (offsets are under a day): only the others parse.
                    if type(ts) is str and ts[:10] >= floor:
                        try:
                            epoch = parse_timestamp(ts).timestamp()
                        except (ValueError, OverflowError):
                            epoch = None
                        if epoch is not None and (top is None or epoch > top[0]):
                            top = (epoch, ts, obj, line)
                            floor = _day_before(epoch)
                else:
                    stats["unrouted"] += 1
                for b in targets:
                    buffers[b].append(rec)
                    sizes[b] += len(rec)
                buffered += len(rec) * len(targets)
                if buffered > limit:
                    flush()
            if top is not None:
                # Only an event the reader takes moves a run's clock (and `--now` before
                # `until` is met at `until` in every bucket): the time of a line it
                # rejects is not the archive's. A rejected latest line (rare) means
                # reading the file again for its latest event.
                try:
                    found: tuple[float, str] | None = (_event(top[2], top[3]).ts_epoch, top[1])
                except _Bad:
                    found = _latest_event(path)
                if found is not None and (latest is None or found[0] > latest):
                    latest, latest_text = found
            stats["events"] += count
            new_files.append(
                {
                    "path": _source(path),
                    "label": printable_path(str(path)),
                    "lines": last,
                    # the store's check of the file's last line (`StateStore.stream_anchor`)
                    "anchor": [last, line_check(last_raw)] if last else None,
                    "events": count,
                    "part": name,
                }
            )
            if progress is not None:
                progress(i + 1, len(paths), stats["events"])
        flush()
        # The identity as of this part, with it: a pass stopped after the part was put into
        # place and before the manifest named it left the folder's identity ahead of the
        # manifest (ties to groups whose moves no listed part holds).
        (tmp / IDENTITY).write_bytes(
            gzip.compress(
                orjson.dumps(
                    {"prospects": prospects, "visitors": visitors, "groups": groups.parent}
                ),
                1,
            )
        )
        final = folder / name
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest.files.extend(new_files)
    manifest.parts.append(
        {
            "name": name,
            "buckets": n,  # the count it was routed with, checked against `buckets`
            "files": [f["path"] for f in new_files],
            "events": stats["events"],
            "bytes": sum(sizes),
            # Each bucket file's size, and each skip list's (none: empty or not written): a
            # run checks them, so a file removed or cut short is not a bucket left out.
            "sizes": {str(b): size for b, size in enumerate(sizes) if size},
            "skip_sizes": {b: size for b, size in skip_sizes.items() if size},
            # And their checksums (BLAKE2b), checked as a run reads them: a file garbled in
            # place keeps its size.
            "checksums": {str(b): h.hexdigest() for b, h in enumerate(sums) if sizes[b]},
            "skip_checksums": {b: skip_sums[b] for b, size in skip_sizes.items() if size},
        }
    )
    if latest is not None and (manifest.until_epoch is None or latest > manifest.until_epoch):
        manifest.until_epoch = latest
        manifest.until = latest_text
    # Only then the manifest: until it names the part, the part is not there.
    atomic_write(folder / MANIFEST, manifest.to_json())
    _share_identity(final, folder)
    stats["seconds"] = time.perf_counter() - started
    stats["buckets"] = n
    stats["until"] = manifest.until
    return stats


def _share_identity(part: Path, folder: Path) -> None:
    """The part's identity file as the folder's too, where an older mrules reads it: a hard
    link (no copy), or a copy where the file system has none."""
    tmp = folder / f".{IDENTITY}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(part / IDENTITY, tmp)
    except OSError:
        shutil.copyfile(part / IDENTITY, tmp)
    os.replace(tmp, folder / IDENTITY)


def _day_before(epoch: float) -> str:
    """The UTC date (YYYY-MM-DD) of the day before `epoch`."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch - 86400))


def _latest_event(path: Path) -> tuple[float, str] | None:
    """The latest time (epoch, as written) of an event of `path` the reader takes, if any."""
    found: tuple[float, str] | None = None
    for line, raw in enumerate(_lines(path), 1):
        item = parse_line(raw, line)
        if isinstance(item, Event) and (found is None or item.ts_epoch > found[0]):
            found = (item.ts_epoch, orjson.loads(item.raw.removeprefix(_BOM))["ts"])
    return found


def _source(path: Path) -> str:
    """A file's name in the manifest, as `mrules run` names it in the store: its absolute
    path, with the bytes of a name that is not UTF-8 as `\\xff` escapes (the manifest is
    JSON, the store's text UTF-8)."""
    return printable_path(str(path.resolve()))


def _record(rec: bytes, path: Path, n: int) -> tuple[int, int, bytes]:
    """A part file's line, `ORDINAL LINE EVENT`, as (file ordinal, line, the event line)."""
    try:
        o, ln, raw = rec.split(b" ", 2)
        ordinal, line = int(o), int(ln)
    except ValueError:
        raise PartitionError(_damaged_part(path, n)) from None
    if ordinal < 0 or line < 1:
        raise PartitionError(_damaged_part(path, n))
    return ordinal, line, raw


def _unreadable(path: Path, e: OSError) -> str:
    # An EventSourceError, which neither `partition` nor a partitioned run expected: an
    # internal error (exit 70) for a bucket file without read permission.
    return (
        f"{path}: cannot read: {e.strerror or e}; nothing was changed there (a partitioned"
        " run keeps the buckets it finished): once it can be read, run the same command again"
    )


def _damaged_part(path: Path, n: int) -> str:
    return (
        f"{path}: line {n} is damaged (not `FILE LINE EVENT` as partition writes it):"
        " partition the archive again into a new folder"
    )


def _part_lines(path: Path, want: str | None = None) -> Iterator[tuple[int, int, bytes]]:
    """A bucket file's lines; with `want`, its checksum is computed as it is read and
    compared once its last line is read (PartitionError), before the reader sees its end."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        if want is not None:  # the sizes see it first; a file removed since they were read
            raise PartitionError(
                f"{path}: missing, where `mrules partition` wrote it: the partition folder is"
                " damaged; partition the archive again into a new folder"
            ) from None
        return
    except OSError as e:
        raise PartitionError(_unreadable(path, e)) from None
    with f:
        if want is None:
            for n, rec in enumerate(f, 1):
                yield _record(rec, path, n)
            return
        h = _checksum()
        update = h.update
        for n, rec in enumerate(f, 1):
            update(rec)
            yield _record(rec, path, n)
        if h.hexdigest() != want:
            raise PartitionError(_garbled(path))


def read_bucket_lines(
    parts: Sequence[tuple[Path, Path]],
    checksums: Sequence[tuple[str | None, str | None]] | None = None,
) -> Iterator[tuple[int, int, bytes]]:
    """A bucket's lines in archive order: (file ordinal, line, the original line).

    `parts`: every part's (lines, skip list) paths, in part order. A line a later
    part's skip list names has moved to another bucket (an append tied its
    prospect to a group written there). `checksums` (`Manifest.bucket_checksums`):
    each file is checked as it is read, a skip list at once, a bucket file once its
    last line is read (before the reader is told it ended): PartitionError when one
    was changed in place since `partition` wrote it.
    """
    sums = list(checksums) if checksums is not None else [(None, None)] * len(parts)
    skips: list[set[tuple[int, int]]] = []
    for (_, skip), (_, want) in zip(parts, sums, strict=True):
        try:
            data = skip.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as e:
            raise PartitionError(_unreadable(skip, e)) from None
        if want is not None and (
            hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).hexdigest() != want
        ):
            raise PartitionError(_garbled(skip))
        try:
            skips.append({(int(a), int(b)) for a, b in (x.split() for x in data.splitlines())})
        except ValueError:
            raise PartitionError(
                f"{skip}: damaged (not `FILE LINE` lines as partition writes them):"
                " partition the archive again into a new folder"
            ) from None
    later: list[set[tuple[int, int]]] = [set() for _ in parts]
    for i in range(len(parts) - 2, -1, -1):
        later[i] = later[i + 1] | skips[i + 1]

    def lines(i: int, path: Path, want: str | None) -> Iterator[tuple[int, int, bytes]]:
        gone = later[i]
        for item in _part_lines(path, want):
            if not gone or (item[0], item[1]) not in gone:
                yield item

    streams = [lines(i, path, sums[i][0]) for i, (path, _) in enumerate(parts)]
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from heapq.merge(*streams, key=lambda item: (item[0], item[1]))
