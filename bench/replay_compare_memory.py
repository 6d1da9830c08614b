"""The comparison of `mrules replay --diff` alone, on two stores a replay kept.

A replay into stores runs each side, then compares the two stores a prospect at
a time; in one process the runs' freed heap hides what the comparison takes.
This runs the comparison only, in a fresh process, and prints its CPU seconds,
the process's peak memory (VmHWM) and the report's sha256, so two trees can be
run side by side on the same stores:

    mrules replay --diff RULES RULES-NEW EVENTS --jobs 1 --store-dir /tmp/kept
    PYTHONPATH=OLD/src python bench/replay_compare_memory.py /tmp/kept
    python bench/replay_compare_memory.py /tmp/kept
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import orjson

from mrules import replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a --store-dir a replay kept (old.db, new.db)")
    ap.add_argument("--mql-list", default="MQL")
    args = ap.parse_args()
    sides = []
    for name in ("old", "new"):
        path = str(args.folder / f"{name}.db")
        st = replay._open_run(path)
        sides.append(replay._Side(name, None, {}, {}, st, path, 0.0, 0, 0))
    started = time.process_time()
    out = replay._compare(sides[0], sides[1], args.mql_list, 5)
    cpu = time.process_time() - started
    for side in sides:
        side.store.close()
    digest = hashlib.sha256(orjson.dumps(out, option=orjson.OPT_SORT_KEYS)).hexdigest()
    with open("/proc/self/status") as f:
        peak = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    print(f"compare: {cpu:.2f} s CPU, peak {peak} kB, report sha256 {digest[:16]}")


if __name__ == "__main__":
    main()
