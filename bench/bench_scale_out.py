"""Scale-out: a bucketed replay in 2 processes (local, Dask) against one process.

    python bench/bench_scale_out.py [--events 200000] [--prospects 20000] [--seed 7]
                                    [--buckets 64] [--workers 2] [--engines local,dask]
                                    [--overhead 64,1024] [--workdir /tmp/mrules-scale-out]

Generates the bench workload (bench/generate.py, cached in WORKDIR) with
`round_robin = "by prospect"` added to its rules, then times, each as a
process measured whole (wall and CPU seconds of the process
and its children, from `getrusage`: pool workers and Dask's are included):

1. one process: `mrules run RULES events.jsonl --store single.db`;
2. the one-time partition pass: `mrules partition events.jsonl --buckets B`;
3. every engine: `mrules run RULES DIR --engine E --workers W` (Dask: a local
   cluster of W worker processes, `--dask-local W`), with the merge time it
   reports; the state export and the action log are compared with one
   process's, byte for byte;
4. fixed costs, on a stream of ticks only (nothing to replay): the cost of a
   bucket (in this process, `--workers 1`) and of Dask's scheduling per task,
   at each bucket count of --overhead.

Then it extrapolates to 64 workers: tasks = replay CPU / 64 + (per-bucket cost
+ scheduling) x buckets / 64; plus the merge, which is serial (its cost per
event measured here). Everything goes to WORKDIR/scale_out_result.json. The
machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BY_PROSPECT = 'settings {\n  round_robin = "by prospect"\n}\n'


def _timed(cmd: list[str], cwd: Path) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    return {"wall": time.perf_counter() - started, "rc": proc.returncode,
            "stderr": proc.stderr.decode()}  # fmt: skip


def _run(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Wall and CPU seconds of a command and everything it waited for."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = _timed(cmd, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r["rc"] not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({r['rc']}):\n{r['stderr']}")
    return r


def _merge_seconds(stderr: str) -> float | None:
    m = re.search(r"merge ([0-9.]+) s", stderr)
    return float(m.group(1)) if m else None


def _serial_seconds(stderr: str) -> float | None:
    """The merge's serial part (without the workers' preparation of each shard)."""
    m = re.search(r"\(serial ([0-9.]+) s\)", stderr)
    return float(m.group(1)) if m else None


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--prospects", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--buckets", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--overhead", default="64,1024", help="bucket counts for the fixed costs")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mrules-scale-out"))
    args = ap.parse_args(argv)

    import generate as gen

    work = args.workdir
    data = work / f"w-{args.events}-{args.prospects}-{args.seed}"
    if not (data / "events.jsonl").exists():
        gen.main([str(data), "--events", str(args.events), "--prospects", str(args.prospects),
                  "--seed", str(args.seed)])  # fmt: skip
    (data / "rules" / "zz-partitions.mr").write_text(BY_PROSPECT)
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    mrules = [sys.executable, "-m", "mrules"]
    rules, events = str(data / "rules"), str(data / "events.jsonl")
    result: dict[str, Any] = {"events": args.events, "workers": args.workers,
                              "buckets": args.buckets, "load_before": _load()}  # fmt: skip

    single = _run([*mrules, "run", rules, events, "--store", "single.db", "--actions",
                   "single.jsonl", "-q"], runs)  # fmt: skip
    result["single"] = {"wall": single["wall"], "cpu": single["cpu"]}
    part = _run([*mrules, "partition", events, "--buckets", str(args.buckets), "--out", "part",
                 "-q"], runs)  # fmt: skip
    result["partition"] = {"wall": part["wall"], "cpu": part["cpu"]}
    export = [*mrules, "state", "export", "--store"]
    reference = subprocess.run([*export, "single.db"], cwd=runs, capture_output=True).stdout
    for engine in [e for e in args.engines.split(",") if e]:
        extra = ["--dask-local", str(args.workers)] if engine == "dask" else []
        r = _run([*mrules, "run", rules, "part", "--engine", engine, "--workers",
                  str(args.workers), *extra, "--store", f"{engine}.db", "--actions",
                  f"{engine}.jsonl"], runs)  # fmt: skip
        same_export = (
            subprocess.run([*export, f"{engine}.db"], cwd=runs, capture_output=True).stdout
            == reference
        )
        same_log = (runs / f"{engine}.jsonl").read_bytes() == (runs / "single.jsonl").read_bytes()
        result[engine] = {
            "wall": r["wall"],
            "cpu": r["cpu"],
            "merge": _merge_seconds(r["stderr"]),
            "merge_serial": _serial_seconds(r["stderr"]),
            "events_per_s_ratio": single["wall"] / r["wall"],
            "cpu_ratio": r["cpu"] / single["cpu"],
            "identical_export": same_export,
            "identical_action_log": same_log,
        }

    # Fixed costs: a stream of ticks only, so a bucket does nothing but exist.
    ticks = runs / "ticks.jsonl"
    ticks.write_text("".join(f'{{"ts":"2026-11-02T{h:02d}:00:00Z","type":"tick"}}\n'
                             for h in range(4)))  # fmt: skip
    result["overhead"] = {}
    for n in [int(x) for x in args.overhead.split(",") if x]:
        folder = f"ticks-{n}"
        _run([*mrules, "partition", str(ticks), "--buckets", str(n), "--out", folder, "-q"], runs)
        here = _run([*mrules, "run", rules, folder, "--engine", "local", "--workers", "1",
                     "--store", f"{folder}-1.db"], runs)  # fmt: skip
        row: dict[str, Any] = {
            "per_bucket_wall": here["wall"] / n,
            "merge_per_bucket": (_merge_seconds(here["stderr"]) or 0.0) / n,
            "serial_merge_per_bucket": (_serial_seconds(here["stderr"]) or 0.0) / n,
        }
        if "dask" in args.engines:
            d = _run([*mrules, "run", rules, folder, "--engine", "dask", "--dask-local",
                      str(args.workers), "--store", f"{folder}-dask.db"], runs)  # fmt: skip
            # Dask's cost a task beyond the bucket's own (its workers share the tasks).
            row["dask_wall"] = d["wall"]
            row["dask_per_task_overhead"] = max(0.0, (d["wall"] * args.workers - here["wall"]) / n)
        result["overhead"][n] = row
    counts = sorted(result["overhead"])
    if len(counts) >= 2:  # a bucket's own cost, without the run's start-up: the slope
        lo, hi = result["overhead"][counts[0]], result["overhead"][counts[-1]]
        span = counts[-1] - counts[0]
        result["marginal"] = {
            "per_bucket": (hi["per_bucket_wall"] * counts[-1] - lo["per_bucket_wall"] * counts[0])
            / span,
        }
        if "dask_wall" in hi:
            result["marginal"]["dask_per_task"] = (hi["dask_wall"] - lo["dask_wall"]) / span
    result["load_after"] = _load()

    # Extrapolation to 64 workers on the same workload (and per 2M events, linearly).
    best = result.get("dask") or result.get("local")
    if best:
        # The merge's serial part stays serial; its preparation of each shard runs in the
        # workers, so it is divided among them as the tasks are.
        merge = best["merge_serial"] if best.get("merge_serial") is not None else best["merge"]
        merge = merge or 0.0
        replay_cpu = max(0.0, best["cpu"] - merge)
        marginal = result.get("marginal", {})
        n = max(result["overhead"]) if result["overhead"] else args.buckets
        # Dask's slope is measured with its workers sharing the tasks: x workers for one.
        per_bucket = marginal.get("per_bucket", 0.0) + max(
            0.0, marginal.get("dask_per_task", 0.0) * args.workers - marginal.get("per_bucket", 0.0)
        )
        tasks = replay_cpu / 64 + per_bucket * n / 64
        result["extrapolation_64_workers"] = {
            "buckets": n,
            "tasks_s": tasks,
            "merge_s": merge,
            "total_s": tasks + merge,
            "speedup_vs_single": single["wall"] / (tasks + merge),
            "merge_per_event_us": merge / args.events * 1e6,
        }
    (work / "scale_out_result.json").write_text(json.dumps(result, indent=2, default=str))
    _report(result)
    return 0


def _report(r: dict[str, Any]) -> None:
    print(f"workload: {r['events']:,} events; {r['workers']} workers; {r['buckets']} buckets;"
          f" load average {r['load_before']} -> {r['load_after']}")  # fmt: skip
    s = r["single"]
    print(f"one process           wall {s['wall']:7.2f} s  cpu {s['cpu']:7.2f} s")
    p = r["partition"]
    print(f"partition (once)      wall {p['wall']:7.2f} s  cpu {p['cpu']:7.2f} s"
          f"  ({p['wall'] / s['wall']:.2f}x one run)")  # fmt: skip
    for engine in ("local", "dask"):
        e = r.get(engine)
        if e:
            ratio = e["events_per_s_ratio"]
            print(f"{engine:5} x{r['workers']}              wall {e['wall']:7.2f} s  cpu"
                  f" {e['cpu']:7.2f} s  merge {e['merge']:.2f} s (serial"
                  f" {e.get('merge_serial') or 0:.2f} s)  events/s x{ratio:.2f}"
                  f"  cpu x{e['cpu_ratio']:.2f}  identical export/log:"
                  f" {e['identical_export']}/{e['identical_action_log']}")  # fmt: skip
    for n, o in r["overhead"].items():
        line = f"{n:5} buckets of ticks: {o['per_bucket_wall'] * 1000:.1f} ms a bucket"
        line += f", merge {o['merge_per_bucket'] * 1000:.2f} ms a bucket"
        line += f" (serial {o.get('serial_merge_per_bucket', 0) * 1000:.2f} ms)"
        if "dask_per_task_overhead" in o:
            line += f", Dask {o['dask_per_task_overhead'] * 1000:.1f} ms a task beyond it"
        print(line)
    m = r.get("marginal")
    if m:
        line = f"slope: {m['per_bucket'] * 1000:.1f} ms a bucket (one process)"
        if "dask_per_task" in m:
            line += f"; Dask {m['dask_per_task'] * 1000:.1f} ms of wall a task on {r['workers']}"
        print(line)
    x = r.get("extrapolation_64_workers")
    if x:
        print(f"64 workers, {x['buckets']} buckets: tasks {x['tasks_s']:.2f} s + merge"
              f" {x['merge_s']:.2f} s (serial, {x['merge_per_event_us']:.1f} us an event) ="
              f" {x['total_s']:.2f} s: x{x['speedup_vs_single']:.1f} one process")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
