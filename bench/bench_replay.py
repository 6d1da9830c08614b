"""`mrules replay --diff` speed: the two runs and the comparison against one run (target <= 2.2x).

    python bench/bench_replay.py [--prospects 5000] [--events 50000] [--repeat 3] [--workdir DIR]

Generates the benchmark inputs with bench/generate.py, makes NEW rules by
lowering every `score >= N` threshold of the generated rules by 10, then, in
this process and alternating, `--repeat` times: one `mrules.run` of the new
rules in memory, `mrules.replay.diff_runs(old, new, events)` and the same
with `jobs=2` (the old rules in a forked process). Rule sets
are compiled beforehand on both sides (compiling is not what is compared).
Prints the best times (wall, and CPU seconds of this process) and their ratios.

Then, as a user runs them, whole processes of the command line, alternating,
`--repeat` times: `mrules run EVENTS` into a new on-disk store (the default),
`mrules run --store :memory:`, `mrules replay --diff OLD NEW EVENTS` with
`--jobs 1` and with the default `--jobs auto`; best wall and CPU seconds (the
children's user + system time) and the ratios to the two runs. `--no-cli`
skips this part.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prospects", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process timings")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mrules-bench-replay-"))
    import generate

    if not (work / "events.jsonl").exists():
        generate.main([str(work), "--prospects", str(args.prospects), "--events", str(args.events)])
    old = work / "rules"
    new = work / "rules-new"
    new.mkdir(exist_ok=True)
    for f in old.glob("*.mr"):
        text = f.read_text(encoding="utf-8")
        text = re.sub(r"score >= (\d+)", lambda m: f"score >= {max(0, int(m.group(1)) - 10)}", text)
        (new / f.name).write_text(text, encoding="utf-8")

    import mrules
    from mrules.api import compile_rules
    from mrules.replay import diff_runs

    old_cs, new_cs = compile_rules(str(old)), compile_rules(str(new))
    events = str(work / "events.jsonl")
    one, two, par, runs = float("inf"), float("inf"), float("inf"), float("inf")
    one_cpu, two_cpu = float("inf"), float("inf")
    for _ in range(args.repeat):
        started, cpu = time.perf_counter(), time.process_time()
        mrules.run(new_cs, events).close()
        one = min(one, time.perf_counter() - started)
        one_cpu = min(one_cpu, time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        d = diff_runs(old_cs, new_cs, events)
        two = min(two, time.perf_counter() - started)
        two_cpu = min(two_cpu, time.process_time() - cpu)
        runs = min(runs, d["seconds"]["runs"])
        started = time.perf_counter()
        diff_runs(old_cs, new_cs, events, jobs=2)
        par = min(par, time.perf_counter() - started)
    print(f"events: {d['events']['lines']:,}; prospects: {d['prospects']['new']:,}")
    print(
        f"MQL: {d['mql']['old']:,} -> {d['mql']['new']:,}; rules changed: "
        f"{sum(1 for r in d['rules'] if r['before'] != r['after'])}"
    )
    print(f"one run (in memory):    {one:.2f} s")
    print(
        f"replay --diff, its 2 runs (with their reads): {runs:.2f} s  = {runs / one:.2f}x one run"
    )
    print(f"replay --diff (2 runs + comparison): {two:.2f} s  = {two / one:.2f}x one run")
    print(
        f"CPU seconds: one run {one_cpu:.2f} s, replay --diff {two_cpu:.2f} s"
        f"  = {two_cpu / one_cpu:.2f}x (steadier than wall time on a shared machine)"
    )
    print(f"replay --diff --jobs 2:              {par:.2f} s  = {par / one:.2f}x one run")
    if not args.no_cli:
        _cli(work, old, new, events, args.repeat)
    return 0


def _timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cli(work: Path, old: Path, new: Path, events: str, repeat: int) -> None:
    """The commands as a user runs them, whole processes, alternating."""
    from mrules.replay import auto_jobs

    mrules = str(Path(sys.executable).with_name("mrules"))
    store = work / "cli-run.db"
    replay = [mrules, "replay", "--diff", str(old), str(new), events]
    cases = {
        "mrules run (on-disk store)": [mrules, "run", str(new), events, "--store", str(store)],
        "mrules run --store :memory:": [mrules, "run", str(new), events, "--store", ":memory:"],
        "mrules replay --diff --jobs 1": [*replay, "--jobs", "1"],
        "mrules replay --diff (--jobs auto)": replay,
    }
    best = {k: (float("inf"), float("inf")) for k in cases}
    for _ in range(repeat):
        for name, argv in cases.items():
            for p in work.glob("cli-run.db*"):
                p.unlink()
            wall, cpu = _timed(argv)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    print(
        f"\nwhole processes, best of {repeat} (load average {os.getloadavg()[0]:.1f}; "
        f"--jobs auto picks {auto_jobs()} now):"
    )
    base_wall, base_cpu = best["mrules run (on-disk store)"]
    mem_wall, mem_cpu = best["mrules run --store :memory:"]
    for name, (wall, cpu) in best.items():
        print(
            f"  {name:36s} wall {wall:6.2f} s ({wall / base_wall:.2f}x on-disk run, "
            f"{wall / mem_wall:.2f}x :memory: run)   CPU {cpu:6.2f} s "
            f"({cpu / base_cpu:.2f}x, {cpu / mem_cpu:.2f}x)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
