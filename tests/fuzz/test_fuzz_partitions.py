"""Fuzz harness (f): a partition folder of the example's events, damaged (its manifest's
values replaced by junk, or bytes of a bucket file or the identity file overwritten, cut
or emptied), then a partitioned `mrules run` and an appending `mrules partition`. Each
ends with a documented exit code and never an internal error; and a run that succeeds
on a folder whose events were not changed (the manifest or the identity file damaged, a
bucket file cut or emptied: all checked) ends in the state of the undamaged folder's run,
never with prospects left out without a word.

The default run tries a few seeded damages; the long one is opt-in:

    MRULES_FUZZ_FOLDERS=300 MRULES_FUZZ_SEED=1 .venv/bin/python -m pytest -m slow \\
        tests/fuzz/test_fuzz_partitions.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from fuzzing import cli, mutated

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
JUNK: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x",
    [],
    [1],
    {},
    {"a": 1},
    True,
    [None],
    "-5",
    [{}],
    "part-0000",
    "../../etc",
    65537,
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("partitions")
    shutil.copytree(EXAMPLE / "rules", d / "rules")
    # The example shares one round-robin counter, which a partitioned run refuses.
    (d / "rules" / "99-settings.mr").write_text('settings { round_robin = "by prospect" }\n')
    code, out = cli(
        "partition", str(EXAMPLE / "events.jsonl"), "--buckets", "4", "--out", str(d / "part")
    )
    assert code == 0, out
    code, out = cli("run", str(d / "rules"), str(d / "part"), "--store", str(d / "r.db"), "-q")
    assert code == 0, out
    code, state = cli("state", "export", "--store", str(d / "r.db"))
    assert code == 0 and state, state
    (d / "state.jsonl").write_text(state, "utf-8")
    return d


def _damage(folder: Path, work: Path, rng: random.Random) -> tuple[str, bool]:
    """Damage `work`'s copy of the folder; returns where, and whether events may have
    changed (bytes overwritten in a bucket file) so that a run may succeed otherwise."""
    if rng.random() < 0.5:
        manifest = json.loads((folder / "part" / "manifest.json").read_text("utf-8"))
        doc, place = mutated(manifest, rng, JUNK, renames=("bogus", "files"))
        (work / "part" / "manifest.json").write_text(json.dumps(doc), "utf-8")
        return f"manifest {place}", False
    files = sorted(
        p for p in (work / "part").rglob("*") if p.is_file() and p.name != "manifest.json"
    )
    target = rng.choice(files)
    data = bytearray(target.read_bytes())
    how = rng.choice(["bytes", "cut", "empty"])
    if how == "bytes" and data:
        for _ in range(rng.choice([1, 3, 10])):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == "cut":
        del data[rng.randrange(len(data) + 1) :]
    else:
        data = bytearray()
    target.write_bytes(bytes(data))
    return f"{target.name}: {how}", how == "bytes" and target.suffix == ".jsonl"


def _run(folder: Path, tmp_path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        work = tmp_path / "w"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(folder / "part", work / "part")
        where, events_changed = _damage(folder, work, rng)
        for args in (
            (
                "run",
                str(folder / "rules"),
                str(work / "part"),
                "--engine",
                "local",
                "--workers",
                "2",
                "--store",
                str(work / "r.db"),
                "-q",
            ),
            ("partition", str(EXAMPLE / "events.jsonl"), "--out", str(work / "part")),
        ):
            code, out = cli(*args)
            assert code in (0, 1, 2, 3, 4), f"{where}: {args[0]} exit {code}\n{out}"
            assert "internal error" not in out, f"{where}: {args[0]}\n{out}"
            if args[0] == "run" and code == 0 and not events_changed:
                state = cli("state", "export", "--store", str(work / "r.db"))[1]
                want = (folder / "state.jsonl").read_text("utf-8")
                assert state == want, f"{where}: the run succeeded in another state"


def test_the_undamaged_folder_runs(folder: Path, tmp_path: Path) -> None:
    code, out = cli(
        "run",
        str(folder / "rules"),
        str(folder / "part"),
        "--engine",
        "local",
        "--store",
        str(tmp_path / "r.db"),
        "-q",
    )
    assert code == 0, out


def test_damaged_partition_folders_short(folder: Path, tmp_path: Path) -> None:
    _run(folder, tmp_path, 4, seed=2)


@pytest.mark.slow
def test_damaged_partition_folders_long(folder: Path, tmp_path: Path) -> None:
    _run(
        folder,
        tmp_path,
        int(os.environ.get("MRULES_FUZZ_FOLDERS", "300")),
        seed=int(os.environ.get("MRULES_FUZZ_SEED", "1")),
    )
