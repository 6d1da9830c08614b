"""Single-process reference runs and partitioned runs, as the bytes users compare."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

import mrules
from mrules.outputs import ActionLog, export_records, write_rejects
from mrules.partition import partition
from mrules.scale.driver import run_partitioned, write_all_rejects
from mrules.store import Store

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
import generate as gen  # noqa: E402  (bench/generate.py: the bench workload)

__all__ = [
    "BY_PROSPECT",
    "ROOT",
    "assert_same",
    "gen",
    "getcloudy_rules",
    "invoke",
    "outputs",
    "partitioned",
    "single",
]

ROOT = Path(__file__).resolve().parents[2]
BY_PROSPECT = 'settings {\n  round_robin = "by prospect"\n}\n'
"""What a rule set needs to be split by prospect (docs/semantics.md, Partitioned runs)."""


def getcloudy_rules(folder: Path) -> Path:
    """The bundled example's rules in `folder/rules`, set up for partitioned runs."""
    import shutil

    rules = folder / "rules"
    shutil.copytree(ROOT / "examples/getcloudy/rules", rules)
    (rules / "zz-partitions.mr").write_text(BY_PROSPECT)
    return rules


def invoke(*args: str) -> Any:
    """`mrules ARGS` in this process (click's runner), exceptions not caught."""
    from click.testing import CliRunner

    from mrules.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def outputs(store: Any, log: Path, rejects: bytes) -> dict[str, bytes]:
    export = b"".join(orjson.dumps(r) + b"\n" for r in export_records(store))
    return {"export": export, "actions": log.read_bytes(), "rejects": rejects}


def single(rules: Any, files: list[Path], tmp: Path, now: float | None = None) -> dict[str, bytes]:
    """One process, one `mrules run` a file (as a user would), into one SQLite store."""
    tmp.mkdir(parents=True, exist_ok=True)
    st = Store.open(tmp / "single.db")
    log = ActionLog(tmp / "single.actions.jsonl", st)
    rejects = b""
    try:
        for i, f in enumerate(files):
            mrules.run(rules, f, st, on_commit=lambda b: log.write(b.ledger_entries()),
                       now=now if i == len(files) - 1 else None)  # fmt: skip
            out = tmp / f"single.rejects.{i}.jsonl"
            if write_rejects(out, st, str(f.resolve())):
                rejects += out.read_bytes()
        log.close()
        return outputs(st, tmp / "single.actions.jsonl", rejects)
    finally:
        st.close()


def partitioned(
    rules: Any,
    files: list[Path],
    tmp: Path,
    buckets: int,
    *,
    engine: str = "local",
    workers: int = 1,
    now: float | None = None,
    parts: bool = False,
    **options: Any,
) -> dict[str, bytes]:
    """Partition (one part, or a part a file with `parts`), run bucket by bucket, merge."""
    tmp.mkdir(parents=True, exist_ok=True)
    folder = tmp / "part"
    if (folder / "manifest.json").exists():
        pass  # partitioned already (a rerun)
    elif parts:
        for f in files:
            partition([f], folder, buckets)
    else:
        partition(files, folder, buckets)
    report = run_partitioned(rules, folder, tmp / "multi.db", engine=engine, workers=workers,
                             actions=tmp / "multi.actions.jsonl", now=now, **options)  # fmt: skip
    assert report.buckets == buckets
    with Store.open(tmp / "multi.db", readonly=True) as st:
        out = tmp / "multi.rejects.jsonl"
        n = write_all_rejects(out, st, [str(f.resolve()) for f in files])
        return outputs(st, tmp / "multi.actions.jsonl", out.read_bytes() if n else b"")


def assert_same(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    for key in ("export", "actions", "rejects"):
        if a[key] != b[key]:
            la, lb = a[key].splitlines(), b[key].splitlines()
            first = next(
                (i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y),
                min(len(la), len(lb)),
            )
            raise AssertionError(
                f"{key} differs at line {first + 1} ({len(la)} vs {len(lb)} lines):\n"
                f"  single: {la[first][:400] if first < len(la) else None!r}\n"
                f"  multi:  {lb[first][:400] if first < len(lb) else None!r}"
            )


MRULES = [sys.executable, "-m", "mrules"]


def interruptible_run(folder: Path, engine: str = "local") -> list[str]:
    """The bench workload (6,000 events) in `folder`, run once in one process (`one.db`,
    `one.jsonl`) and partitioned into 8 buckets: the command of a partitioned run of it
    (`many.db`, `many.jsonl`), slow enough to be stopped half-way."""
    import subprocess

    gen.main([str(folder), "--prospects", "300", "--events", "6000", "--seed", "4"])
    (folder / "rules" / "zz-partitions.mr").write_text(BY_PROSPECT)
    one = subprocess.run(
        [*MRULES, "run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl",
         "-q"], cwd=folder, capture_output=True)  # fmt: skip
    assert one.returncode == 0, one.stderr.decode()
    subprocess.run([*MRULES, "partition", "events.jsonl", "--buckets", "8", "--out", "part"],
                   check=True, cwd=folder, capture_output=True)  # fmt: skip
    return [*MRULES, "run", "rules", "part", "--engine", engine, "--workers", "2",
            "--store", "many.db", "--actions", "many.jsonl", "--commit-every", "200"]  # fmt: skip


def assert_rerun_matches_one_process(folder: Path, cmd: list[str]) -> None:
    """`cmd` run again completes, with the action log and state of the one-process run."""
    import subprocess

    again = subprocess.run(cmd, cwd=folder, capture_output=True)
    assert again.returncode == 0, again.stderr.decode()
    assert (folder / "one.jsonl").read_bytes() == (folder / "many.jsonl").read_bytes()
    export = [*MRULES, "state", "export", "--store"]
    assert (
        subprocess.run([*export, "one.db"], cwd=folder, capture_output=True).stdout
        == subprocess.run([*export, "many.db"], cwd=folder, capture_output=True).stdout
    )
