"""The commands that read a whole store, two source trees side by side on one store.

    python bench/bench_read_commands.py STORE --before OLD/src [--after NEW/src] [--repeat 1]
        [--segment RULES]

Runs each command of `COMMANDS` (standard output to /dev/null) under the
sources in `--before` and in `--after` (default: this checkout's `src`),
alternating, `--repeat` times, each as a whole process (`python -m mrules`
with PYTHONPATH set to the tree: the tree's modules win over the installed
ones). Prints, per command, the best wall and CPU seconds (user + system of
the child) and the peak resident memory (MB, the child's `ru_maxrss`) of each
tree, and their ratios after/before. A tree of another commit:
`git archive COMMIT src | tar -x -C /tmp/before`.

Every command is one a user runs: `state outbox`, `state export` (all of it,
and `--prospect EMAIL`, EMAIL the store's first prospect unless given),
`report rules`; with `--segment RULES`, `segment RULES` too, each time on a fresh
copy of the store (made beside it, before the clock starts, removed after). The store
itself is only read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["COMMANDS", "main", "measure"]

HERE = Path(__file__).resolve().parent

COMMANDS: dict[str, list[str]] = {
    "state outbox": ["state", "outbox"],
    "state export": ["state", "export"],
    "state export --prospect": ["state", "export", "--prospect", "{email}"],
    "report rules": ["report", "rules"],
}


def measure(src: Path, args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak MB of `python -m mrules ARGS` under `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mrules", *args], stdout=sink, stderr=subprocess.PIPE, env=env
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"`mrules {' '.join(args)}` under {src} exited {code}: {err[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--before", type=Path, required=True, help="the older tree's src")
    parser.add_argument("--after", type=Path, default=HERE.parent / "src")
    parser.add_argument("--email", help="the prospect of --prospect [default: the first]")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--segment", metavar="RULES", help="measure `segment RULES` too")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for tree in (args.before, args.after):
        if not (tree / "mrules" / "__init__.py").is_file():
            parser.error(f"{tree} is no source tree (no mrules/__init__.py in it)")
    email = args.email
    if email is None:
        uri = f"file:{args.store}?mode=ro"
        with sqlite3.connect(uri, uri=True) as conn:
            row = conn.execute("SELECT min(email) FROM prospects").fetchone()
        email = row[0]
    print(f"{args.store}: before {args.before}, after {args.after}, best of {args.repeat}")
    print(
        f"{'command':<26} {'wall s before':>13} {'after':>7} {'ratio':>6}"
        f" {'CPU s before':>12} {'after':>7} {'ratio':>6}"
        f" {'MB before':>9} {'after':>6} {'ratio':>6}"
    )
    commands = dict(COMMANDS)
    if args.segment:
        commands["segment"] = ["segment", args.segment]
    copy = args.store.with_name(args.store.name + ".bench-copy")
    for name, template in commands.items():
        store = copy if name == "segment" else args.store
        cmd = [a.replace("{email}", email) for a in template] + ["--store", str(store)]
        best: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for side, tree in (("before", args.before), ("after", args.after)):
                if store == copy:  # segment changes the store: each run its own copy
                    shutil.copyfile(args.store, copy)
                try:
                    got = measure(tree, cmd)
                finally:
                    for leftover in (copy, *copy.parent.glob(copy.name + "[.-]*")):
                        leftover.unlink(missing_ok=True)
                old = best.get(side, list(got))
                best[side] = [min(a, b) for a, b in zip(old, got, strict=True)]
        b, a = best["before"], best["after"]
        print(
            f"{name:<26} {b[0]:>13.2f} {a[0]:>7.2f} {a[0] / b[0]:>6.2f}"
            f" {b[1]:>12.2f} {a[1]:>7.2f} {a[1] / b[1]:>6.2f}"
            f" {b[2]:>9.0f} {a[2]:>6.0f} {a[2] / b[2]:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
