"""Side by side, in one run: mrules against the hand-written loops and against another checkout.

    python bench/compare.py [--prospects 20000] [--events 200000] [--seed 7] [--repeat 3]
                            [--workdir DIR] [--baseline-worktree PATH] [--before-worktree PATH]
                            [--only a,b,c,d,e,f,g,h,n] [--no-check] [--python PY] [--tmpfs DIR]

Every variant runs as its own process with the same interpreter, started by
this script, and is measured whole (start-up, rule loading, the run, closing
the store): wall seconds, CPU seconds (user + system, from `os.wait4`, so for
that process alone) and peak RSS. The variants run one after the other,
`--repeat` rounds, so that load on a shared machine hits each alike; the table
shows the best (lowest) CPU and wall of the rounds and the highest peak RSS.

  a  loop, no persistence   bench/handwritten_memory.py: plain dicts, nothing written
  b  loop, SQLite store     bench/handwritten.py --store: the same loop writing what
                            mrules writes through mrules.store.Store
  c  mrules run             `python -m mrules run RULES EVENTS --store DIR/c.db -q`, this
                            checkout (PYTHONPATH=<this checkout>/src), pure Python; with
                            --python PY, that interpreter without PYTHONPATH: a venv where
                            this checkout's wheel is installed (`pip install .`, compiled)
  d  mrules run :memory:    the same with `--store :memory:`; skipped, with the reason,
                            when the CLI refuses it
  e  mrules run, baseline   (c) from the checkout given by --baseline-worktree PATH (for
                            example `git worktree add /tmp/mrules-before <commit>`), run
                            with PYTHONPATH=PATH/src and this interpreter
  f  mrules run, before     (c) from a second checkout, --before-worktree PATH (say, the
                            branch point of the change being measured)
  g  mrules :memory:, before  (d) from that second checkout
  h  baseline, tmpfs, one     (e) with its store in --tmpfs DIR (default /dev/shm) and
     transaction              the whole stream in one transaction (`--batch-size`, the
                              baseline's name for it): the baseline without the disk's
                              cost and with one commit. Issue 7's own table gave this
                              2.4 times (e)'s events/s; where it gives less, the disk
                              costs (e) less, and a multiple of (e) is harder to reach
  n  engine, nothing stored   bench/engine_only.py with (c)'s interpreter and build: the
                              engine builds every batch, a store that keeps nothing drops
                              it. No store, however fast, takes (c) below this in one
                              process: "n against e" is the most any store design can give

Events/s are events over whole-process CPU seconds (and over wall seconds);
"x loop" divides by (a)'s, "x base" by (e)'s, "x before" by (f)'s (for (d),
by (g)'s). `--before-worktree .` with `--python` puts this checkout's compiled
build (c, d) beside its pure-Python one (f, g). Unless --no-check, the final
states are compared afterwards: (a)'s against `mrules state export` of (c)'s
store, (e)'s and (f)'s stores exported by their own checkouts against (c)'s, and (n)'s
engine against (c)'s store (engine_only.py once more, untimed; the
figures mean little if these differ; the exit status is then 1). Inputs come
from bench/generate.py (reused when DIR has them for the same arguments).
Everything is written to DIR/compare_result.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import handwritten_memory as hm  # noqa: E402

__all__ = ["Measure", "Variant", "installed_build", "main", "measure"]

NAMES = {
    "a": "loop, no persistence",
    "b": "loop, SQLite store",
    "c": "mrules run",
    "d": "mrules run --store :memory:",
    "e": "mrules run, baseline checkout",
    "f": "mrules run, before checkout",
    "g": "mrules :memory:, before checkout",
    "h": "baseline, tmpfs, one transaction",
    "n": "mrules engine, nothing stored",
}


@dataclass
class Measure:
    """One process: wall and CPU seconds, peak RSS, exit status, what it printed."""

    wall: float
    cpu: float
    rss: int
    returncode: int
    stdout: bytes
    stderr: bytes
    io: dict[str, int] | None = None  # its /proc/PID/io counters, where Linux gives them


@dataclass
class Variant:
    key: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    store: Path | None = None
    runs: list[Measure] = field(default_factory=list)
    skipped: str | None = None


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> Measure:
    """Run cmd to completion; its own CPU and peak RSS come from wait4 (this child only).

    On Linux, the child's I/O counters too (`io`: bytes and calls of reads and writes,
    `/proc/PID/io`), read once it has exited and before it is reaped. Unlike seconds,
    the machine's load hardly moves them: the same run counts about the same bytes.
    """
    with open(os.devnull, "rb") as devnull:
        out_path, err_path = cwd / ".stdout", cwd / ".stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            w0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdin=devnull, stdout=out, stderr=err, env=env, cwd=cwd)
            io = _exited_io(proc.pid)
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - w0
            proc.returncode = os.waitstatus_to_exitcode(status)
    return Measure(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss * 1024,
        proc.returncode,
        out_path.read_bytes(),
        err_path.read_bytes(),
        io,
    )


def _exited_io(pid: int) -> dict[str, int] | None:
    """Wait for `pid` to exit without reaping it, then read its I/O counters (None off Linux)."""
    waitid, nowait = getattr(os, "waitid", None), getattr(os, "WNOWAIT", None)
    if waitid is None or nowait is None or not Path(f"/proc/{pid}/io").exists():
        return None
    waitid(os.P_PID, pid, os.WEXITED | nowait)
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:  # not readable here (another user's, a hardened /proc)
        return None
    return {k: int(v) for k, _, v in (line.partition(": ") for line in text.splitlines())}


def _env(src: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def installed_build(parser: argparse.ArgumentParser, python: Path) -> str:
    """`PY: mrules --version` for --python PY, or a usage error if it cannot run mrules."""
    try:
        build = subprocess.run(
            [str(python), "-m", "mrules", "--version"],
            env=_env(None),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as e:
        parser.error(f"--python {python}: {e.strerror or e}")
    if build.returncode != 0:
        parser.error(f"{python} cannot run mrules: {build.stderr.strip()[-300:]}")
    return f"{python}: {build.stdout.strip()}"


def _imported_from(env: dict[str, str]) -> Path:
    out = subprocess.run(
        [sys.executable, "-c", "import mrules; print(mrules.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(out).resolve()


def _fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()
    return path


def _store_bytes(path: Path) -> int:
    return sum(
        Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists()
    )


def plan(
    keys: str,
    work: Path,
    rules: Path,
    events: Path,
    seed: int,
    baseline: Path | None,
    before: Path | None = None,
    python: Path | None = None,
    tmpfs: Path = Path("/dev/shm"),
) -> list[Variant]:
    py = sys.executable
    here = _env(ROOT / "src")
    mrules = [py, "-m", "mrules", "run", str(rules), str(events), "-q", "--store"]
    # (c) and (d): this checkout from source, or its installed wheel under --python
    ours = [str(python), *mrules[1:]] if python is not None else mrules
    ours_env = _env(None) if python is not None else here
    out = []
    for key in keys:
        cwd = work / f"run-{key}"
        cwd.mkdir(exist_ok=True)
        if key == "a":
            out.append(
                Variant(
                    key,
                    [py, str(BENCH / "handwritten_memory.py"), str(events), "--seed", str(seed)],
                    here,
                    cwd,
                )
            )
        elif key == "b":
            db = work / "b.db"
            out.append(
                Variant(
                    key,
                    [
                        py,
                        str(BENCH / "handwritten.py"),
                        str(events),
                        "--seed",
                        str(seed),
                        "--store",
                        str(db),
                    ],
                    here,
                    cwd,
                    db,
                )
            )
        elif key == "c":
            db = work / "c.db"
            out.append(Variant(key, [*ours, str(db)], ours_env, cwd, db))
        elif key == "d":
            # In its own directory: a CLI that refuses :memory: may leave ':memory:.lock'.
            out.append(Variant(key, [*ours, ":memory:"], ours_env, cwd))
        elif key in "eh":
            if baseline is None:
                v = Variant(key, [], here, cwd)
                v.skipped = "no --baseline-worktree given"
                out.append(v)
                continue
            if key == "e":
                db = work / "e.db"
                out.append(Variant(key, [*mrules, str(db)], _env(baseline / "src"), cwd, db))
                continue
            db = tmpfs / f"mrules-compare-{os.getpid()}-h.db"
            one = [*mrules, str(db), "--batch-size", str(10**9)]  # one transaction
            out.append(Variant(key, one, _env(baseline / "src"), cwd, db))
        elif key == "n":
            engine_only = [ours[0], str(BENCH / "engine_only.py"), str(rules), str(events)]
            out.append(Variant(key, engine_only, ours_env, cwd))
        elif key in "fg":
            if before is None:
                v = Variant(key, [], here, cwd)
                v.skipped = "no --before-worktree given"
                out.append(v)
                continue
            db = work / "f.db" if key == "f" else None
            target = str(db) if db is not None else ":memory:"
            out.append(Variant(key, [*mrules, target], _env(before / "src"), cwd, db))
    return out


def _best(v: Variant, lines: int) -> dict[str, Any]:
    cpu = min(m.cpu for m in v.runs)
    wall = min(m.wall for m in v.runs)
    return {
        "variant": v.key,
        "name": NAMES[v.key],
        "cpu_s": cpu,
        "wall_s": wall,
        "peak_rss_bytes": max(m.rss for m in v.runs),
        "runs": len(v.runs),
        "events_per_s_cpu": lines / cpu,
        "events_per_s_wall": lines / wall,
        "all_cpu_s": [round(m.cpu, 3) for m in v.runs],
        "all_wall_s": [round(m.wall, 3) for m in v.runs],
    }


def check_states(
    variants: dict[str, Variant],
    events: Path,
    seed: int,
    baseline: Path | None,
    before: Path | None = None,
) -> dict[str, Any]:
    """Final states compared: (a) with (c)'s store, (e)'s and (f)'s stores with (c)'s, and
    (n)'s engine with (c)'s store."""
    result: dict[str, Any] = {}
    c = variants.get("c")
    if c is None or not c.runs:
        return result
    here = _env(ROOT / "src")
    mrules_here = [sys.executable, "-m", "mrules"]
    ours = hm.mrules_export(c.store, mrules_here, here)  # type: ignore[arg-type]
    result["prospects"] = len(ours)
    if "a" in variants and variants["a"].runs:
        loop = hm.run(events, seed=seed)
        count, diffs = hm.compare_exports(loop.export(), ours)
        result["a vs c"] = {"mismatching_prospects": count, "first": diffs}
    n = variants.get("n")
    if n is not None and n.runs:
        m = measure([*n.cmd, "--check-against", str(c.store)], n.env, n.cwd)
        if m.returncode != 0:
            raise SystemExit(f"{NAMES['n']}: the state check failed: {m.stderr.decode()[-2000:]}")
        found = json.loads(m.stdout.decode().strip().splitlines()[-1])
        result["n vs c"] = {"mismatching_prospects": found["mismatching_prospects"], "first": []}
    for key, checkout in (("e", baseline), ("f", before)):
        other = variants.get(key)
        if other is None or not other.runs or checkout is None:
            continue
        theirs = hm.mrules_export(other.store, mrules_here, _env(checkout / "src"))  # type: ignore[arg-type]
        count, diffs = hm.compare_exports(theirs, ours)
        result[f"{key} vs c"] = {
            "mismatching_prospects": count,
            "first": [d.replace(": loop ", f": {NAMES[key]} ") for d in diffs],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prospects", type=int, default=20000)
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mrules-compare"))
    parser.add_argument(
        "--baseline-worktree",
        type=Path,
        metavar="PATH",
        help="another checkout of mrules (e.g. a git worktree of an older "
        "commit) to run as variant e",
    )
    parser.add_argument(
        "--before-worktree",
        type=Path,
        metavar="PATH",
        help="a second checkout (e.g. the branch point of the change measured) to run as "
        "variants f (SQLite store) and g (:memory:)",
    )
    parser.add_argument("--only", default="abcdefg", help="variants to run, e.g. 'acefhn'")
    parser.add_argument(
        "--tmpfs",
        type=Path,
        default=Path("/dev/shm"),
        metavar="DIR",
        help="where variant h keeps its store (a memory file system) [default: /dev/shm]",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the state comparison")
    parser.add_argument(
        "--python",
        type=Path,
        metavar="PY",
        help="run (c) and (d) with this interpreter and no PYTHONPATH: a venv with this "
        "checkout's wheel installed (compiled), e.g. /tmp/venv/bin/python",
    )
    args = parser.parse_args(argv)
    keys = "".join(k for k in "abcdefghn" if k in args.only.replace(",", ""))
    if args.repeat < 1 or not keys:
        parser.error(
            "--repeat must be at least 1 and --only name some of a, b, c, d, e, f, g, h, n"
        )
    baseline = args.baseline_worktree.resolve() if args.baseline_worktree else None
    before = args.before_worktree.resolve() if args.before_worktree else None
    for checkout in (baseline, before):
        if checkout is None:
            continue
        if not (checkout / "src" / "mrules").is_dir():
            parser.error(f"{checkout} is not an mrules checkout (no src/mrules)")
        found = _imported_from(_env(checkout / "src"))
        if not found.is_relative_to(checkout):
            parser.error(
                f"with PYTHONPATH={checkout}/src this interpreter imports mrules "
                f"from {found}, not from that checkout"
            )
    found = _imported_from(_env(ROOT / "src"))
    if not found.is_relative_to(ROOT):
        parser.error(f"this interpreter imports mrules from {found}, not {ROOT}/src")
    if args.python is not None:
        print(f"(c), (d): {installed_build(parser, args.python)}", file=sys.stderr)

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    import bench_run  # generate.py's inputs, cached per arguments

    events = bench_run.ensure_inputs(work, args.prospects, args.events, args.seed)
    rules = work / "rules"
    variants = plan(
        keys, work, rules, events, args.seed, baseline, before, args.python, args.tmpfs.resolve()
    )
    print(
        f"inputs: {events} ({args.events:,} events, {args.prospects:,} prospects, seed "
        f"{args.seed}); {args.repeat} rounds of {', '.join(v.key for v in variants)}; "
        f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    for rnd in range(args.repeat):
        for v in variants:
            if v.skipped:
                continue
            if v.store is not None:
                _fresh(v.store)
            m = measure(v.cmd, v.env, v.cwd)
            if m.returncode != 0:
                reason = (m.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
                if v.key == "d" and not v.runs:
                    v.skipped = f"the CLI refuses it (exit {m.returncode}: {reason})"
                    for stray in v.cwd.glob(":memory:*"):
                        stray.unlink()
                    print(
                        f"  [{rnd + 1}/{args.repeat}] {v.key} skipped: {v.skipped}", file=sys.stderr
                    )
                    continue
                raise SystemExit(
                    f"{NAMES[v.key]} failed (exit {m.returncode}): "
                    f"{' '.join(v.cmd)}\n{m.stderr.decode(errors='replace')[-3000:]}"
                )
            v.runs.append(m)
            print(
                f"  [{rnd + 1}/{args.repeat}] {v.key} {NAMES[v.key]}: {m.wall:.2f} s wall, "
                f"{m.cpu:.2f} s CPU, {m.rss / 2**20:.0f} MiB peak",
                file=sys.stderr,
            )

    rows = [_best(v, args.events) for v in variants if v.runs]
    by_key = {r["variant"]: r for r in rows}
    for r in rows:
        for ref in ("a", "e", "f"):
            base = by_key.get("g" if ref == "f" and r["variant"] == "d" else ref)
            r[f"x_{ref}_cpu"] = r["events_per_s_cpu"] / base["events_per_s_cpu"] if base else None
            r[f"x_{ref}_wall"] = (
                r["events_per_s_wall"] / base["events_per_s_wall"] if base else None
            )
        v = next(v for v in variants if v.key == r["variant"])
        if v.store is not None and v.store.exists():
            r["store_bytes"] = _store_bytes(v.store)
            r["store_bytes_per_event"] = r["store_bytes"] / args.events
        if v.key in "ab":  # the loops print their own figures: the loop alone, no start-up
            inner = json.loads(v.runs[0].stdout.decode().strip().splitlines()[-1])
            r["inner_events_per_s_cpu_first_round"] = inner["events_per_s_cpu"]

    def x(value: float | None) -> str:
        return f"{value:9.3f}" if value is not None else f"{'-':>9}"

    print()
    print(
        f"{'':2} {'variant':31} {'wall s':>7} {'CPU s':>7} {'ev/s CPU':>9} {'ev/s wall':>9} "
        f"{'x loop':>9} {'x base':>9} {'x before':>9} {'peak MiB':>8} {'B/event':>7}"
    )
    for r in rows:
        per = r.get("store_bytes_per_event")
        print(
            f"{r['variant']:2} {r['name']:31} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} "
            f"{r['events_per_s_cpu']:9,.0f} {r['events_per_s_wall']:9,.0f} "
            f"{x(r['x_a_cpu'])} {x(r['x_e_cpu'])} {x(r['x_f_cpu'])} "
            f"{r['peak_rss_bytes'] / 2**20:8.0f} "
            f"{'-' if per is None else str(round(per)):>7}"
        )
    print(
        f"(whole processes, best of {args.repeat} rounds; events/s over CPU seconds; 'x loop', "
        "'x base' and 'x before' compare CPU events/s with a, e and f (d with g); B/event: "
        "store file + WAL)"
    )
    for v in variants:
        if v.skipped:
            print(f"{v.key}: skipped: {v.skipped}")
    if "h" in by_key:  # the baseline without the disk's cost: how much of (e) the disk is
        h = by_key["h"]
        for key in ("e", "c"):
            if key in by_key:
                r = by_key[key]
                print(
                    f"{key} against h: CPU x{r['events_per_s_cpu'] / h['events_per_s_cpu']:.2f},"
                    f" wall x{r['events_per_s_wall'] / h['events_per_s_wall']:.2f}"
                )
                r["x_h_cpu"] = r["events_per_s_cpu"] / h["events_per_s_cpu"]
                r["x_h_wall"] = r["events_per_s_wall"] / h["events_per_s_wall"]
        h_store = next(v.store for v in variants if v.key == "h")
        if h_store is not None:
            _fresh(h_store)  # not left in memory (tmpfs)

    if "n" in by_key and "e" in by_key:  # the engine alone: the ceiling of any store
        n, e = by_key["n"], by_key["e"]
        n["x_ceiling_cpu"] = n["events_per_s_cpu"] / e["events_per_s_cpu"]
        n["x_ceiling_wall"] = n["events_per_s_wall"] / e["events_per_s_wall"]
        print(
            f"n against e: CPU x{n['x_ceiling_cpu']:.2f}, wall x{n['x_ceiling_wall']:.2f}"
            " (what (c) would reach with a store that cost nothing)"
        )

    checks: dict[str, Any] = {}
    if not args.no_check:
        checks = check_states({v.key: v for v in variants}, events, args.seed, baseline, before)
        for name, res in checks.items():
            if isinstance(res, dict):
                print(
                    f"state check {name}: {res['mismatching_prospects']} mismatching "
                    f"prospects of {checks['prospects']:,}"
                )
                for d in res["first"]:
                    print("  " + d)
    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "python": sys.version.split()[0],
        "rows": rows,
        "skipped": {v.key: v.skipped for v in variants if v.skipped},
        "checks": checks,
        "machine": {"cpus": os.cpu_count(), "load_after": os.getloadavg()},
    }
    out = work / "compare_result.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    bad = any(isinstance(r, dict) and r["mismatching_prospects"] for r in checks.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
