"""Parse-and-check benchmark: time `parse_text` and `checker.check` on generated rule sets.

Not a timed test: run it by hand (`.venv/bin/python bench/bench_parse.py`) and read the
table. The target from the issue is 10,000 rules parsed and checked in under 1 s on one
core, with a per-rule cost that stays flat as N grows (linear total cost).

The generator is deterministic (seeded) and produces a realistic mix: declarations of
fields, lists, users and assets; page actions, a third of them on wildcard URLs;
completion actions with conditional groups; automation rules with nested criteria.
Every name a rule uses is declared, so the checker sees a clean program.
Times are CPU seconds of this process (`time.process_time`), the best of
`--repeat` runs, so that other work on a shared machine skews them less than it
would skew wall-clock time. `--lark` times the reference path (Lark's own lexer and
parse tree, what every text took before the fast path) for comparison. `--whole`
times whole `mrules lint` processes instead, as a user runs them: the least CPU
seconds of `--repeat` runs, net of the fixed cost (linting a 100-rule file);
`--before CHECKOUT` times another checkout's lint too, interleaved, for ratios.
`--whole --instructions` counts the instructions each lint executes instead, under
valgrind's callgrind (one round: the count is the same every time, whatever else the
machine runs), for a per-rule figure that a shared machine's load cannot move.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["generate", "main"]

_FIELD_TYPES = ("text", "number", "date", "boolean")


def _declarations(r: int) -> list[str]:
    return [
        f"field custom_{r}: {_FIELD_TYPES[r % len(_FIELD_TYPES)]}",
        f'list "List {r}"',
        f'user "user{r}@example.com"',
        f'form "Form {r}" folder "Campaigns/{r % 17}"',
    ]


def _page_action(r: int, rng: random.Random) -> str:
    url = f"example.com/section{r % 50}/page{r}" + ("*" if r % 3 == 0 else "")
    return (
        f'page action "Page {r}" on "{url}" {{\n'
        f"  score +{rng.randint(1, 25)}\n"
        + ("  priority\n" if r % 4 == 0 else "")
        + f'  add tag "visited-{r % 20}"\n'
        "}"
    )


def _completion_actions(r: int, rng: random.Random) -> str:
    d = 2 * rng.randrange(r // 2 + 1)  # declarations come at even r, before rule r
    return (
        f'on submit of form "Form {r - 1}" {{\n'
        f'  add to list "List {d}"\n'
        f"  score +{rng.randint(5, 50)}\n"
        f'  set lead_source_{d % 5} = "Web {r}"\n'
        f'  if company contains "Acme" {{ assign to user "user{d}@example.com" }}\n'
        f'  if custom_{d} is not empty {{ add tag "hot-{r % 20}"; notify assigned user }}\n'
        "}"
    )


def _automation_rule(r: int, rng: random.Random) -> str:
    d = 2 * rng.randrange(r // 2 + 1)
    return (
        f'automation rule "Rule {r}" priority {r} {{\n'
        "  when all {\n"
        f"    score >= {rng.randint(10, 200)}\n"
        f'    not in list "List {d}"\n'
        "    any {\n"
        f'      submitted form "Form {d}"\n'
        f'      visited "example.com/section{d % 50}*" within {rng.randint(1, 90)} days\n'
        f"      grade >= B-\n"
        "    }\n"
        "  }\n" + ("  repeat every 30 days at most 3 times\n" if r % 5 == 0 else "") + "  then {\n"
        f'    add to list "List {d}"\n'
        f'    add tag "rule-{r % 20}"\n'
        "  }\n"
        "}"
    )


def generate(n: int, seed: int = 7) -> str:
    """The text of a rule set with `n` top-level rules (items), the same for a given seed."""
    rng = random.Random(seed)
    parts = [f"field lead_source_{i}: text" for i in range(5)]
    parts += [f'tag "{prefix}-{i}"' for prefix in ("visited", "hot", "rule") for i in range(20)]
    kinds = (_page_action, _completion_actions, _automation_rule)
    count = len(parts)
    r = 0
    while count < n:
        if r % 2 == 0:
            for decl in _declarations(r):
                parts.append(decl)
                count += 1
        else:
            parts.append(kinds[(r // 2) % 3](r, rng))
            count += 1
        r += 1
    return "\n".join(parts[:n]) + "\n"


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        result = None  # free the last run's tree before the clock starts, not inside it
        gc.collect()
        t0 = time.process_time()
        result = fn()
        times.append(time.process_time() - t0)
    return min(times), result


def _lint_env(checkout: Path | None) -> dict[str, str]:
    """The environment of a lint process: `checkout`'s code if given, else the installed."""
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout / "src")
    return env


def _lint_cpu(path: Path, checkout: Path | None) -> float:
    """CPU seconds (user + system) of one whole `mrules lint PATH` process.

    `checkout`: run that checkout's code (`PYTHONPATH=CHECKOUT/src`, this interpreter)
    instead of the installed mrules.
    """
    env = _lint_env(checkout)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "mrules", "lint", str(path)],
        capture_output=True,
        check=False,
        env=env,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"mrules lint {path} failed:\n{done.stdout.decode()}{done.stderr.decode()}"
        )
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _lint_instructions(path: Path, checkout: Path | None) -> float:
    """Instructions one whole `mrules lint PATH` process executes, counted by callgrind."""
    env = _lint_env(checkout)
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "mrules", "lint", str(path)],
        capture_output=True, check=False, env=env, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"mrules lint {path} under valgrind failed:\n{done.stdout}{done.stderr}")
    return float(callgrind_total(done.stderr))


def callgrind_total(stderr: str) -> int:
    """The instruction count callgrind prints as it ends (`==PID== Collected : N`)."""
    for line in reversed(stderr.splitlines()):
        head, _, count = line.partition("Collected :")
        if count and head.startswith("=="):
            return int(count.strip())
    raise SystemExit(f"no instruction count in valgrind's output:\n{stderr[-2000:]}")


# The fixed cost of a lint: start-up, and the first use of each AST class the generated
# rules use (a class's validator is built then); a rule set this small has them all.
_BASE_RULES = 100


def whole_process(
    sizes: list[int], repeat: int, before: Path | None = None, instructions: bool = False
) -> int:
    """Time `mrules lint` as a user runs it; the cost per rule is net of a small rule set's.

    Per rule: (CPU(n) - CPU(_BASE_RULES)) / (n - _BASE_RULES), the cost each rule beyond
    the fixed cost adds.

    With `before`, that checkout's lint runs too, interleaved with this one's in each
    of the `repeat` rounds, so both see the same machine. With `instructions`, the cost
    is callgrind's instruction count (billions; thousands a rule), one round.
    """
    measure = _lint_instructions if instructions else _lint_cpu
    if instructions:
        repeat = 1  # the count does not vary from run to run
    scale, unit, per_unit = (1e-9, "G", "k/rule") if instructions else (1.0, "s", "us/rule")
    variants: list[tuple[str, Path | None]] = [("now", None)]
    if before is not None:
        variants.insert(0, ("before", before))
    best: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[int, Path] = {}
        for n in (_BASE_RULES, *sizes):
            paths[n] = Path(tmp, f"r{n}.mr")
            paths[n].write_text(generate(n), encoding="utf-8")
        for _ in range(repeat):
            for n in paths:
                for name, checkout in variants:
                    cost = measure(paths[n], checkout) * scale
                    best[name, n] = min(best.get((name, n), float("inf")), cost)
    what = "instructions (G), callgrind" if instructions else f"least CPU of {repeat} rounds"
    print(
        f"mrules lint, whole process, {what}; 'net' leaves out "
        f"the fixed cost, a {_BASE_RULES}-rule file's"
    )
    header = f"{'rules':>7}"
    for name, _ in variants:
        header += f" {name + ' ' + unit:>9} {name + ' ' + per_unit + ' net':>18}"
    if before is not None:
        header += f" {'now/before':>10}"
    print(header)
    per_rule: dict[str, list[float]] = {name: [] for name, _ in variants}
    for n in paths:
        row = f"{n:>7}"
        for name, _ in variants:
            cost, fixed = best[name, n], best[name, _BASE_RULES]
            base = n == _BASE_RULES
            net = 0.0 if base else (cost - fixed) / (n - _BASE_RULES) * 1e6  # us or k instr
            if not base:
                per_rule[name].append(net)
            row += f" {cost:>9.2f} {'':>18}" if base else f" {cost:>9.2f} {net:>18.1f}"
        if before is not None:
            row += f" {best['now', n] / best['before', n]:>10.2f}"
        print(row)
    for name, values in per_rule.items():
        if len(values) > 1:
            print(f"{name}: per-rule net cost max/min {max(values) / min(values):.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print one table row for each size: seconds and microseconds per rule."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,5000,10000", help="comma-separated rule counts")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the best is shown")
    ap.add_argument("--profile", action="store_true", help="cProfile one parse of the last size")
    ap.add_argument(
        "--whole",
        action="store_true",
        help="time whole `mrules lint` processes instead (CPU net of a 100-rule file's)",
    )
    ap.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="with --whole: also time this checkout's lint (a git worktree), interleaved",
    )
    ap.add_argument(
        "--lark",
        action="store_true",
        help="time the reference path (Lark's lexer and tree) instead of the fast one",
    )
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="with --whole: count instructions under valgrind's callgrind, not CPU seconds",
    )
    args = ap.parse_args(argv)
    if args.instructions and not args.whole:
        ap.error("--instructions counts whole `mrules lint` processes: add --whole")
    if args.instructions and shutil.which("valgrind") is None:
        ap.error("--instructions needs valgrind on the PATH (Debian: apt-get install valgrind)")
    if args.whole:
        sizes = [int(x) for x in args.sizes.split(",")]
        return whole_process(sizes, args.repeat, args.before, args.instructions)

    from mrules import ast
    from mrules.parser import _fast_parser, lark_parser, parse_text, parse_text_with_lark

    parse = parse_text_with_lark if args.lark else parse_text  # the same contract

    try:
        from mrules.checker import check
    except ImportError as e:
        check = None
        print(f"note: checker not available ({e}); timing parse only", file=sys.stderr)

    t0 = time.perf_counter()
    lark_parser()
    fast = _fast_parser()
    print(f"parser build (once per process): {time.perf_counter() - t0:.3f} s")
    if args.lark:
        print("timing the reference path: parse_text_with_lark")
    elif fast is None:
        print("note: the fast path is off for this grammar; parse_text uses Lark", file=sys.stderr)
    parse('list "warm-up"')

    header = f"{'rules':>7} {'chars':>9} {'parse s':>8} {'us/rule':>8}"
    if check is not None:
        header += f" {'check s':>8} {'us/rule':>8} {'total s':>8}"
    print(header)
    per_rule = []
    for n in (int(s) for s in args.sizes.split(",")):
        text = generate(n)
        parse_s, (file, diags) = _best(lambda text=text: parse(text, "bench.mr"), args.repeat)
        if file is None or diags:
            print(f"generated text does not parse: {diags[:3]}", file=sys.stderr)
            return 1
        row = f"{n:>7} {len(text):>9} {parse_s:>8.3f} {parse_s / n * 1e6:>8.1f}"
        total = parse_s
        if check is not None:
            program = ast.Program(files=(file,))
            check_s, found = _best(lambda p=program: check(p), args.repeat)
            total += check_s
            row += f" {check_s:>8.3f} {check_s / n * 1e6:>8.1f} {total:>8.3f}"
            if found:
                print(
                    f"  note: the checker reported {len(found)} diagnostics, first: "
                    f"{found[0].code} {found[0].message}",
                    file=sys.stderr,
                )
        per_rule.append(total / n * 1e6)
        print(row)
    if len(per_rule) > 1:
        spread = max(per_rule) / min(per_rule)
        print(f"per-rule cost max/min: {spread:.2f} (1.0 = perfectly linear)")
        print(f"median per-rule total: {statistics.median(per_rule):.1f} us")

    if args.profile:
        import cProfile
        import pstats

        text = generate(n)
        prof = cProfile.Profile()
        prof.runcall(parse, text, "bench.mr")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
