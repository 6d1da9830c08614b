"""`mrules replay --diff` runs a large history into two stores in a temporary folder, not
in memory, and removes the folder whatever happens (docs/replay.md).

In memory, each side kept its whole history until the report was made: 3.6 GB at 2
million events, enough for a laptop's out-of-memory killer. Beyond 20 MB of event text
(`mrules.replay.IN_MEMORY_UP_TO`), or from standard input or a pipe, each side now runs
into an SQLite store in a folder of the system's temporary folder (TMPDIR), the same
report byte for byte; `--in-memory` keeps the old way, `--store-dir` keeps the stores.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import mrules.replay
from mrules.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"

RULES = """list "MQL"
page action "P" on "x.example/p" { score +1 }
automation rule "Hot" priority 10 {
  when all { score >= 3 }
  then { add to list "MQL" }
}
"""


def _rules(folder: Path, threshold: int) -> Path:
    folder.mkdir()
    (folder / "rules.mr").write_text(RULES.replace(">= 3", f">= {threshold}"))
    return folder


def _events(path: Path, n: int, prospects: int = 50) -> Path:
    """N page views of PROSPECTS prospects, a minute apart: the history grows, they do not."""
    with path.open("w") as f:
        for j in range(n):
            minute = 9 * 60 + j
            f.write(
                json.dumps(
                    {
                        "ts": f"2026-11-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:"
                        f"{minute % 60:02d}:00Z",
                        "type": "page_view",
                        "prospect": f"p{j % prospects:03d}@replay.example",
                        "url": "https://x.example/p",
                    }
                )
                + "\n"
            )
    return path


def _without_timings(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("seconds"), d["old"].pop("seconds"), d["new"].pop("seconds")
    return d


def test_a_large_history_runs_on_disk_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    events = _events(tmp_path / "events.jsonl", 400)
    args = ["replay", "--diff", str(old), str(new), str(events), "--format", "json"]
    in_memory = CliRunner().invoke(main, [*args, "--in-memory"], catch_exceptions=False)
    assert in_memory.exit_code == 0, in_memory.output

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # TMPDIR, as Python reads it
    monkeypatch.setattr(mrules.replay, "IN_MEMORY_UP_TO", 1000)  # bytes: the file is more
    seen: list[list[str]] = []
    made = mrules.replay._new_stores

    def spy(store_dir: Any) -> Any:
        got = made(store_dir)
        seen.append([str(store_dir), *got[:2]])
        return got

    monkeypatch.setattr(mrules.replay, "_new_stores", spy)
    on_disk = CliRunner().invoke(main, args, catch_exceptions=False)
    assert on_disk.exit_code == 0, on_disk.output
    ((folder, old_db, new_db),) = seen
    assert Path(folder).parent == scratch and Path(folder).name.startswith("mrules-replay-")
    assert (old_db, new_db) == (f"{folder}/old.db", f"{folder}/new.db")
    assert list(scratch.iterdir()) == []  # the stores and their folder are gone
    report = _without_timings(orjson.loads(on_disk.stdout))
    assert report == _without_timings(orjson.loads(in_memory.stdout))
    assert report["prospects"]["changed"] > 0  # a change to report

    # A small history stays in memory (faster), no folder made.
    monkeypatch.setattr(mrules.replay, "IN_MEMORY_UP_TO", 20_000_000)
    seen.clear()
    small = CliRunner().invoke(main, args, catch_exceptions=False)
    assert small.exit_code == 0 and seen == [["None", ":memory:", ":memory:"]]


_MEASURE = """
import sys, tracemalloc
import mrules, mrules.replay
from mrules.cli import main
mrules.replay.IN_MEMORY_UP_TO = 10_000  # bytes: both files are more
# A store commits every 20,000 lines: what a run holds between commits, at this size.
run = mrules.run
mrules.run = lambda *args, **kwargs: run(*args, **{**kwargs, "commit_every": 250})
tracemalloc.start()
try:
    main(["replay", "--diff", sys.argv[1], sys.argv[2], sys.argv[3], "--format", "json",
          "--jobs", "1"], standalone_mode=False)
finally:
    sys.stderr.write(f"PEAK {tracemalloc.get_traced_memory()[1]}\\n")
"""


def _peak(old: Path, new: Path, events: Path) -> int:
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(old), str(new), str(events)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert orjson.loads(res.stdout)["events"]["lines"] > 0
    return int(res.stderr.rsplit("PEAK ", 1)[1])


def test_memory_does_not_follow_the_history(tmp_path: Path) -> None:
    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    small, large = 1000, 4000
    peak_small = _peak(old, new, _events(tmp_path / "small.jsonl", small))
    peak_large = _peak(old, new, _events(tmp_path / "large.jsonl", large))
    per_event = (peak_large - peak_small) / (large - small)
    # In memory, the history of both sides grew the peak by about 1.4 KB an event.
    assert per_event < 200, (peak_small, peak_large, per_event)


def _replay_process(
    tmp_path: Path, env: dict[str, str], jobs: str = "1", *, session: bool = False
) -> subprocess.Popen[str]:
    """A replay of 60,000 events from standard input (so on disk); `session`: in a process
    group of its own, for a kill of the replay and its second process together."""
    events = _events(tmp_path / "events.jsonl", 60_000, prospects=2000)
    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    return subprocess.Popen(
        [sys.executable, "-m", "mrules", "replay", "--diff", str(old), str(new), "-",
         "--jobs", jobs],
        stdin=events.open("rb"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env}, start_new_session=session,
    )  # fmt: skip


def _wait_for(
    scratch: Path, pattern: str, proc: subprocess.Popen[Any], besides: Path | None = None
) -> Path:
    """The one file of `scratch` that `pattern` names (not in folder `besides`), once `proc`
    (still running) made it."""
    deadline = time.monotonic() + 120
    while not (found := [f for f in scratch.glob(pattern) if f.parent != besides]):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [one] = found
    return one


@pytest.mark.parametrize("jobs", ["1", "2"])  # 2: the old rules' store is a child's
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_leaves_no_temporary_store(tmp_path: Path, sig: int, jobs: str) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = _replay_process(tmp_path, {"TMPDIR": str(scratch)}, jobs)
    deadline = time.monotonic() + 120
    while not list(scratch.glob("mrules-replay-*/new.db")):  # standard input: on disk
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # inside the run
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("jobs", ["1", "2"])  # 2: the old rules' store is a child's
def test_a_killed_replays_folder_goes_with_the_next_replay_a_running_ones_stays(
    tmp_path: Path, jobs: str
) -> None:
    """A replay killed outright (SIGKILL, the out-of-memory killer) left its folder of
    temporary stores in TMPDIR for good: gigabytes at 2 million events. The next replay
    removes it, and says so; it never touches the folder of a replay still running."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "NO_COLOR": "1"}
    (tmp_path / "killed").mkdir()
    killed = _replay_process(tmp_path / "killed", {"TMPDIR": str(scratch)}, jobs, session=True)
    left = _wait_for(scratch, "mrules-replay-*/new.db", killed).parent
    time.sleep(0.3)  # inside the runs: both sides' stores are open
    os.killpg(killed.pid, signal.SIGKILL)  # the replay and, with --jobs 2, its child
    killed.communicate(timeout=60)
    assert left.is_dir() and (left / "new.db").exists()  # what a kill leaves

    # A replay from standard input holds its folder while it reads its events.
    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    running = subprocess.Popen(
        [sys.executable, "-m", "mrules", "replay", "--diff", str(old), str(new), "-",
         "--jobs", jobs, "--format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    held = _wait_for(scratch, "mrules-replay-*/.events-*", running, besides=left).parent
    assert not left.exists()  # removed before the running replay made its own folder

    # A second replay meanwhile, in memory and on disk: the running one's folder stays.
    events = _events(tmp_path / "events.jsonl", 300)
    for where in ("--in-memory", None):
        with events.open("rb") as stdin:
            other = subprocess.run(
                [sys.executable, "-m", "mrules", "replay", "--diff", str(old), str(new),
                 "-" if where is None else str(events), *([where] if where else [])],
                stdin=stdin, capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
        assert other.returncode == 0, other.stderr
        assert other.stderr == ""  # nothing removed, nothing to say
        assert running.poll() is None and held.is_dir()

    out, err = running.communicate(events.read_bytes(), timeout=300)
    assert running.returncode == 0, err
    assert orjson.loads(out)["events"]["lines"] == 300
    assert re.fullmatch(
        rf"mrules: removed {re.escape(str(left))} \(\d+(\.\d)? [kMG]B\), the temporary stores of a"
        rf" replay that was killed \(process {killed.pid}\)\n",
        err.decode(),
    ), err
    assert list(scratch.iterdir()) == []


def test_a_full_temporary_folder_exits_4_and_leaves_nothing(tmp_path: Path) -> None:
    from tests.test_faults import tmpfs

    with tmpfs(tmp_path / "small", "256k") as small:
        proc = _replay_process(tmp_path, {"TMPDIR": str(small)})
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 4, err
        assert list(small.iterdir()) == []
    assert err.startswith("mrules: error: ") and "Traceback" not in err
    assert "full" in err and "TMPDIR" in err and "--store-dir" in err


def test_the_size_that_decides_is_the_event_text(tmp_path: Path) -> None:
    import gzip

    from mrules.replay import runs_on_disk

    events = _events(tmp_path / "e.jsonl", 200)
    size = events.stat().st_size
    packed = tmp_path / "e.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes()))
    assert packed.stat().st_size < size // 4  # compressed far below the text's size
    for path in (events, packed):  # a .gz by what it holds, not by its own size
        assert runs_on_disk(str(path), limit=size - 1)
        assert not runs_on_disk(str(path), limit=size)
    assert runs_on_disk("-", limit=10**12)  # standard input: not known before it is read


_MEASURE_STDIN = """
import io, sys, tracemalloc
import mrules, mrules.replay
from mrules.cli import main
run = mrules.run
mrules.run = lambda *args, **kwargs: run(*args, **{**kwargs, "commit_every": 250})
tracemalloc.start()
try:
    main(["replay", "--diff", sys.argv[1], sys.argv[2], "-", "--format", "json",
          "--jobs", "1"], standalone_mode=False)
finally:
    sys.stderr.write(f"PEAK {tracemalloc.get_traced_memory()[1]}\\n")
"""


def _peak_from_stdin(old: Path, new: Path, events: Path) -> tuple[int, dict[str, Any]]:
    with events.open("rb") as stdin:
        res = subprocess.run(
            [sys.executable, "-c", _MEASURE_STDIN, str(old), str(new)],
            stdin=stdin, capture_output=True, timeout=300,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return int(res.stderr.rsplit(b"PEAK ", 1)[1]), orjson.loads(res.stdout)


def test_standard_input_is_kept_on_disk_not_in_memory(tmp_path: Path) -> None:
    """From standard input the stores are on disk, and so are the events: each side reads
    a copy in the stores' folder, not the whole history held in memory (about 100 B an
    event of this stream when its lines were kept), and the copy is removed."""
    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    small, large = 1000, 4000
    peak_small, _ = _peak_from_stdin(old, new, _events(tmp_path / "small.jsonl", small))
    events = _events(tmp_path / "large.jsonl", large)
    peak_large, report = _peak_from_stdin(old, new, events)
    per_event = (peak_large - peak_small) / (large - small)
    assert per_event < 60, (peak_small, peak_large, per_event)

    # The same report as the file's (but the source's name), run in memory.
    args = ["replay", "--diff", str(old), str(new), str(events), "--format", "json"]
    in_memory = CliRunner().invoke(main, [*args, "--in-memory"], catch_exceptions=False)
    assert in_memory.exit_code == 0, in_memory.output
    expected = _without_timings(orjson.loads(in_memory.stdout))
    report = _without_timings(report)
    assert report["events"].pop("source") == "-"
    expected["events"].pop("source")
    assert report == expected and report["events"]["lines"] == large


def test_standard_input_beside_a_store_dir_leaves_only_the_stores(tmp_path: Path) -> None:
    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    events = _events(tmp_path / "events.jsonl", 300)
    kept = tmp_path / "kept"
    with events.open("rb") as stdin:
        res = subprocess.run(
            [sys.executable, "-m", "mrules", "replay", "--diff", str(old), str(new), "-",
             "--store-dir", str(kept), "--format", "json"],
            stdin=stdin, capture_output=True, timeout=300,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in kept.iterdir() if not p.name.endswith(".lock")) == [
        "new.db",
        "old.db",
    ]
    export = subprocess.run(
        [sys.executable, "-m", "mrules", "state", "export", "--store", str(kept / "new.db")],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert export.returncode == 0 and export.stdout.count(b"\n") == 50


_HOLD_OLD_RULES_THEN_DIE = """
import os, signal
from mrules.replay import _revision_tree
with _revision_tree("HEAD", "rules") as (tree, _root, _rel):
    print(tree, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # killed outright while it holds the old rules
"""


def test_a_killed_replays_old_rules_go_with_the_next_replay(tmp_path: Path) -> None:
    """`--old-rev` takes the old rules from git into a folder of TMPDIR while it compiles
    them; a replay killed meanwhile left it for good. The next replay removes it."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "NO_COLOR": "1"}
    repo = tmp_path / "repo"
    repo.mkdir()
    _rules(repo / "rules", 3)
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "v1"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", *args],
                       cwd=repo, check=True, capture_output=True)  # fmt: skip
    killed = subprocess.Popen(
        [sys.executable, "-c", _HOLD_OLD_RULES_THEN_DIE],
        cwd=repo, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    tree, _ = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    left = Path(tree.strip()).parent
    assert left.parent == scratch and (Path(tree.strip()) / "rules").is_dir()

    (repo / "rules" / "rules.mr").write_text(RULES.replace(">= 3", ">= 10"))  # the change
    res = subprocess.run(
        [sys.executable, "-m", "mrules", "replay", "--diff", "--old-rev", "HEAD", "rules",
         str(_events(tmp_path / "events.jsonl", 30))],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(
        rf"mrules: removed {re.escape(str(left))} \(\d+ kB\), the temporary old rules of a"
        rf" replay that was killed \(process {killed.pid}\)\n",
        res.stderr,
    ), res.stderr
    assert list(scratch.iterdir()) == []  # and its own old rules gone after it


_KILLED_MAKING_ITS_FOLDER = """
import fcntl, os, signal, sys
from mrules.scratch import held_folder

if sys.argv[1] == "made":  # killed as soon as its folder is made
    mkdir = os.mkdir

    def killed_after(path, *args, **kwargs):
        mkdir(path, *args, **kwargs)
        if os.path.basename(path).startswith("mrules-replay-"):
            os.kill(os.getpid(), signal.SIGKILL)

    os.mkdir = killed_after
else:  # killed as it takes its lock
    fcntl.flock = lambda fd, how: os.kill(os.getpid(), signal.SIGKILL)
with held_folder("mrules-replay-"):
    pass
"""


@pytest.mark.parametrize("when", ["made", "locking"])
def test_a_replay_killed_while_it_makes_its_folder_leaves_nothing_for_good(
    tmp_path: Path, when: str
) -> None:
    """A replay's folder was made, then its lock taken: one killed in between left a folder
    with no lock in it, which no replay removed. The lock is taken first now, and what a
    replay killed at either moment leaves, the next one removes."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "NO_COLOR": "1"}
    killed = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MAKING_ITS_FOLDER, when],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _out, err = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, err
    assert list(scratch.iterdir())  # what it left
    left = [p for p in scratch.iterdir() if p.is_dir()]

    old, new = _rules(tmp_path / "old", 3), _rules(tmp_path / "new", 10)
    res = subprocess.run(
        [sys.executable, "-m", "mrules", "replay", "--diff", str(old), str(new),
         str(_events(tmp_path / "events.jsonl", 30))],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert list(scratch.iterdir()) == []
    if left:  # a folder is said to be removed; a lock file alone is not
        [folder] = left
        assert re.fullmatch(
            rf"mrules: removed {re.escape(str(folder))} \(0 kB\), the temporary stores of a"
            rf" replay that was killed \(process {killed.pid}\)\n",
            res.stderr,
        ), res.stderr
    else:
        assert res.stderr == ""
