"""How `mrules run` scales: cost per event, store size and memory at two stream sizes.

    python bench/bench_scale.py [--sizes 200000:20000,2000000:200000] [--seed 7]
                                [--cache bench/.cache] [--workdir /tmp/mrules-scale]
                                [--checkout PATH | --python PY] [--memory-store]
                                [--keep-plain] [--run-arg ARG]... [--loop] [--rounds N]

For each size EVENTS:PROSPECTS, generates the inputs with bench/generate.py
(cached in --cache, one directory per size and seed, the stream gzipped unless
--keep-plain: 2M events are 320 MB plain, 48 MB gzipped; a cached size is not
generated again), then runs `python -m mrules run RULES EVENTS --store DB -q`
as one process from --checkout (default: this one; PYTHONPATH=PATH/src, this
interpreter), or with --python PY, that interpreter's installed mrules (a venv
where `pip install .` put the compiled wheel), and measures it whole with
`os.wait4`: CPU and wall seconds, peak RSS. Then it counts the prospects
(`mrules state export`) and the store's bytes (the database file and its WAL,
after the run closed it).

It reports per size: CPU microseconds per event, store bytes per event, peak
RSS per prospect, and on Linux the bytes the run wrote and read per event (its
own I/O counters, `/proc/PID/io`: the machine's load hardly moves them; the
reads include the event file and the program's own files); and between the
first and the last size: the ratio of the cost per event (1.00 = flat) and the
marginal memory per prospect, (RSS_last - RSS_first) / (prospects_last -
prospects_first), which leaves out what does not grow with the stream (the
interpreter, the rule set). The fixed cost of a run (start-up, rules, an empty
store: one run over an empty stream) is measured too, and the "net" cost per
event leaves it out. With --memory-store it also runs `--store :memory:`
(skipped with the reason when the CLI refuses it). `--run-arg ARG`
(repeatable) adds ARG to every `mrules run` of the sizes, for example
`--run-arg=--cache-prospects=10000`. `--loop` also runs the hand-written loop
without persistence (handwritten_memory.py, the same semantics with plain
dicts) on each size, and reports how its own cost per event grows over the
same sizes. `--rounds N` runs every size N times, the sizes alternating, and
keeps each size's median round: on a shared machine one run of the small size
moves by 15% and more, enough to move the ratio from 1.4 to 1.6. Everything
goes to WORKDIR/scale_result.json.

At 2M events, generating takes about a minute and today's `mrules run` about
four minutes of CPU; `--sizes 200000:20000,1000000:100000` stops at 1M.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import compare  # noqa: E402

__all__ = ["ensure_cached", "main", "parse_sizes"]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'200000:20000,2000000:200000' -> [(200000, 20000), (2000000, 200000)]."""
    out = []
    for part in text.split(","):
        events, _, prospects = part.strip().partition(":")
        if not events.isdigit() or not prospects.isdigit():
            raise ValueError(f"a size is EVENTS:PROSPECTS, not {part!r}")
        if int(events) < 1 or int(prospects) < 1:
            raise ValueError(f"a size needs at least one event and one prospect: {part!r}")
        out.append((int(events), int(prospects)))
    return out


def ensure_cached(cache: Path, events: int, prospects: int, seed: int, plain: bool) -> Path:
    """The inputs for one size, generated once; returns the directory (rules/ and events)."""
    d = cache / f"e{events}-p{prospects}-s{seed}"
    stream = d / ("events.jsonl" if plain else "events.jsonl.gz")
    if (d / "done").exists() and stream.exists():
        return d
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    # In a process of its own: what it allocates would raise the peak RSS of every run
    # measured after it (see `_count_prospects`).
    subprocess.run(
        [sys.executable, str(BENCH / "generate.py"), str(d), "--prospects", str(prospects),
         "--events", str(events), "--seed", str(seed)],
        check=True,
    )  # fmt: skip
    if not plain:
        with (d / "events.jsonl").open("rb") as src, gzip.open(stream, "wb", 3) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        (d / "events.jsonl").unlink()
    (d / "done").write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 1)}))
    return d


def _stream(d: Path) -> Path:
    plain = d / "events.jsonl"
    return plain if plain.exists() else d / "events.jsonl.gz"


def _count_prospects(db: Path, env: dict[str, str]) -> int:
    """The prospects in the store, counted as `state export` writes them, never all held.

    A child's peak RSS (`wait4`) starts from its parent's: Linux carries the parent's
    high-water mark over at fork and exec. Holding a 2M store's export here (about 300
    MB) made every later run report at least that much.
    """
    cmd = [sys.executable, "-m", "mrules", "state", "export", "--store", str(db)]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        count = sum(1 for line in proc.stdout if line.strip())
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return count


def _loop(stream: Path, seed: int, work: Path) -> dict[str, Any]:
    """The hand-written loop without persistence over `stream`: its own CPU figure (the
    loop alone, no start-up), as it prints it; the same semantics, nothing stored."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "handwritten_memory.py"), str(stream), "--seed", str(seed)],
        capture_output=True,
        cwd=work,
        env=compare._env(ROOT / "src"),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            "the hand-written loop failed:\n" + proc.stderr.decode(errors="replace")[-3000:]
        )
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return {
        "cpu_s": out["cpu_s"],
        "prospects": out["prospects"],
        "cpu_us_per_event": out["cpu_s"] / out["lines"] * 1e6,
        "peak_rss_bytes": out["peak_rss_bytes"],
    }


def _median_round(runs: list[compare.Measure]) -> compare.Measure:
    """The round of median CPU (the lower middle one of an even count): its CPU, wall, RSS."""
    return sorted(runs, key=lambda m: m.cpu)[(len(runs) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200000:20000,2000000:200000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=BENCH / ".cache")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mrules-scale"))
    parser.add_argument(
        "--checkout", type=Path, default=ROOT, help="the mrules checkout to run (default: this)"
    )
    parser.add_argument(
        "--python",
        type=Path,
        metavar="PY",
        help="run this interpreter's installed mrules instead (no PYTHONPATH): e.g. a venv "
        "with the compiled wheel",
    )
    parser.add_argument(
        "--memory-store", action="store_true", help="also run with --store :memory:"
    )
    parser.add_argument(
        "--keep-plain", action="store_true", help="cache the streams as plain JSON Lines"
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="also run the hand-written loop without persistence (handwritten_memory.py) on "
        "each size: how much a program with no store at all slows as the stream grows",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="N",
        help="run every size N times, sizes alternating, and keep each size's median round "
        "(a shared machine's speed drifts by 15%% and more between runs of the small size)",
    )
    parser.add_argument(
        "--run-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for every `mrules run`, e.g. --run-arg=--cache-prospects=10000",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds needs at least 1")
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as e:
        parser.error(str(e))
    checkout = args.checkout.resolve()
    py = sys.executable
    if args.python is not None:
        py, env = str(args.python), compare._env(None)
        running = compare.installed_build(parser, args.python)
    else:
        env = compare._env(checkout / "src")
        found = compare._imported_from(env)
        if not found.is_relative_to(checkout):
            parser.error(f"with PYTHONPATH={checkout}/src this interpreter imports {found}")
        running = f"checkout {checkout}"
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"{running}; load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", file=sys.stderr)

    rows: list[dict[str, Any]] = []
    memory_note = None
    # The fixed cost (start-up, loading and compiling the rules, an empty store): one run of
    # the first size's rules over an empty stream, subtracted in the `net` figures.
    d0 = ensure_cached(args.cache.resolve(), *sizes[0], args.seed, args.keep_plain)
    empty = work / "empty.jsonl"
    empty.write_bytes(b"")
    fixed = compare.measure(
        [
            py,
            "-m",
            "mrules",
            "run",
            str(d0 / "rules"),
            str(empty),
            "-q",
            "--store",
            str(compare._fresh(work / "empty.db")),
        ],
        env,
        work,
    )
    if fixed.returncode != 0:
        raise SystemExit(
            "mrules run failed on an empty stream:\n"
            + fixed.stderr.decode(errors="replace")[-3000:]
        )
    print(
        f"  fixed cost (empty stream): {fixed.cpu:.2f} s CPU, peak {fixed.rss / 2**20:.0f} MiB",
        file=sys.stderr,
    )
    # Every round runs every size once, in order, so that a drift of the machine's speed
    # over the rounds hits each size alike; a size's figures are those of its median round.
    prepared = []
    for events, prospects in sizes:
        d = ensure_cached(args.cache.resolve(), events, prospects, args.seed, args.keep_plain)
        stream = _stream(d)
        cmd = [
            py, "-m", "mrules", "run", str(d / "rules"), str(stream), "-q",
            *args.run_arg,
        ]  # fmt: skip
        prepared.append((events, prospects, stream, cmd))
    runs: list[list[compare.Measure]] = [[] for _ in sizes]
    known_of: list[int] = [0 for _ in sizes]
    size_of: list[int] = [0 for _ in sizes]
    for round_no in range(1, args.rounds + 1):
        for i, (events, _prospects, _stream_path, cmd) in enumerate(prepared):
            db = compare._fresh(work / f"scale-{events}.db")
            m = compare.measure([*cmd, "--store", str(db)], env, work)
            if m.returncode != 0:
                raise SystemExit(
                    f"mrules run failed (exit {m.returncode}) at {events:,} events:\n"
                    + m.stderr.decode(errors="replace")[-3000:]
                )
            runs[i].append(m)
            if round_no == 1:  # the same stream makes the same store every round
                known_of[i] = _count_prospects(db, env)
                size_of[i] = compare._store_bytes(db)
            print(
                f"  [{round_no}/{args.rounds}] {events:,} events, {known_of[i]:,} prospects: "
                f"{m.cpu:.1f} s CPU, {m.wall:.1f} s wall, {m.cpu / events * 1e6:.1f} us/event, "
                f"store {size_of[i] / 2**20:.0f} MiB ({size_of[i] / events:.0f} B/event), "
                f"peak {m.rss / 2**20:.0f} MiB",
                file=sys.stderr,
            )
    for i, (events, prospects, stream, cmd) in enumerate(prepared):
        m = _median_round(runs[i])
        known, size = known_of[i], size_of[i]
        row: dict[str, Any] = {
            "events": events,
            "prospects_generated": prospects,
            "prospects": known,
            "stream": str(stream),
            "cpu_s": m.cpu,
            "wall_s": m.wall,
            "cpu_s_rounds": [r.cpu for r in runs[i]],
            "peak_rss_bytes": m.rss,
            "cpu_us_per_event": m.cpu / events * 1e6,
            "net_cpu_us_per_event": (m.cpu - fixed.cpu) / events * 1e6,
            "events_per_s_cpu": events / m.cpu,
            "store_bytes": size,
            "store_bytes_per_event": size / events,
            "peak_rss_per_prospect": m.rss / known if known else None,
        }
        if m.io is not None:  # the process's own reads and writes (Linux): load hardly moves them
            row["io"] = m.io
            row["written_bytes_per_event"] = m.io["wchar"] / events
            row["read_bytes_per_event"] = m.io["rchar"] / events
        if args.memory_store and memory_note is None:
            mm = compare.measure([*cmd, "--store", ":memory:"], env, work)
            for stray in work.glob(":memory:*"):
                stray.unlink()
            if mm.returncode != 0:
                reason = (mm.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
                memory_note = f"the CLI refuses it (exit {mm.returncode}: {reason})"
            else:
                row["memory_store"] = {
                    "cpu_s": mm.cpu,
                    "wall_s": mm.wall,
                    "peak_rss_bytes": mm.rss,
                    "cpu_us_per_event": mm.cpu / events * 1e6,
                    "peak_rss_per_prospect": mm.rss / known if known else None,
                }
        if args.loop:
            row["loop"] = _loop(stream, args.seed, work)
            print(
                f"  the loop without persistence, {events:,} events: "
                f"{row['loop']['cpu_s']:.1f} s CPU, {row['loop']['cpu_us_per_event']:.1f} us/event",
                file=sys.stderr,
            )
        rows.append(row)

    first, last = rows[0], rows[-1]
    summary: dict[str, Any] = {}
    if len(rows) > 1:
        summary["cost_per_event_ratio"] = last["cpu_us_per_event"] / first["cpu_us_per_event"]
        summary["net_cost_per_event_ratio"] = (
            last["net_cpu_us_per_event"] / first["net_cpu_us_per_event"]
        )
        grown = last["prospects"] - first["prospects"]
        summary["marginal_rss_per_prospect"] = (
            (last["peak_rss_bytes"] - first["peak_rss_bytes"]) / grown if grown else None
        )
        if "loop" in first and "loop" in last:
            summary["loop_cost_per_event_ratio"] = (
                last["loop"]["cpu_us_per_event"] / first["loop"]["cpu_us_per_event"]
            )
        if "memory_store" in first and "memory_store" in last:
            summary["memory_store_cost_per_event_ratio"] = (
                last["memory_store"]["cpu_us_per_event"] / first["memory_store"]["cpu_us_per_event"]
            )

    print()
    print(
        f"{'events':>10} {'prospects':>9} {'CPU s':>7} {'wall s':>7} {'us/event':>8} "
        f"{'net us/ev':>9} {'store B/ev':>10} {'peak MiB':>8} {'RSS B/prospect':>14}"
    )
    for r in rows:
        print(
            f"{r['events']:10,} {r['prospects']:9,} {r['cpu_s']:7.1f} {r['wall_s']:7.1f} "
            f"{r['cpu_us_per_event']:8.1f} {r['net_cpu_us_per_event']:9.1f} "
            f"{r['store_bytes_per_event']:10.0f} "
            f"{r['peak_rss_bytes'] / 2**20:8.0f} {r['peak_rss_per_prospect'] or 0:14,.0f}"
        )
        if len(r["cpu_s_rounds"]) > 1:
            spread = ", ".join(f"{c:.1f}" for c in r["cpu_s_rounds"])
            print(f"{'':>10} {'rounds':>9} CPU s {spread}")
        if "io" in r:
            print(
                f"{'':>10} {'I/O':>9} written {r['written_bytes_per_event']:,.0f} B/event"
                f" ({r['io']['syscw']:,} calls), read {r['read_bytes_per_event']:,.0f} B/event"
                f" ({r['io']['syscr']:,} calls)"
            )
        if "memory_store" in r:
            ms = r["memory_store"]
            print(
                f"{'':>10} {':memory:':>9} {ms['cpu_s']:7.1f} {ms['wall_s']:7.1f} "
                f"{ms['cpu_us_per_event']:8.1f} {'-':>9} {'-':>10} "
                f"{ms['peak_rss_bytes'] / 2**20:8.0f} "
                f"{ms['peak_rss_per_prospect'] or 0:14,.0f}"
            )
    if summary:
        print(
            f"cost per event, {last['events']:,} over {first['events']:,} events: "
            f"{summary['cost_per_event_ratio']:.2f} (1.00 = flat; without the fixed cost "
            f"{summary['net_cost_per_event_ratio']:.2f}); marginal peak RSS per "
            f"prospect: {summary['marginal_rss_per_prospect'] or 0:,.0f} B"
        )
    if "loop_cost_per_event_ratio" in summary:
        print(
            f"the hand-written loop without persistence, same sizes: "
            f"{first['loop']['cpu_us_per_event']:.1f} -> {last['loop']['cpu_us_per_event']:.1f}"
            f" us/event, {summary['loop_cost_per_event_ratio']:.2f}"
        )
    if memory_note:
        print(f":memory: store skipped: {memory_note}")
    out = work / "scale_result.json"
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "python": sys.version.split()[0],
                "rows": rows,
                "fixed": {"cpu_s": fixed.cpu, "wall_s": fixed.wall, "peak_rss_bytes": fixed.rss},
                "summary": summary,
                "memory_store_skipped": memory_note,
                "machine": {"cpus": os.cpu_count(), "load_after": os.getloadavg()},
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
