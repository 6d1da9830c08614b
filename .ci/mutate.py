#!/usr/bin/env python3
"""Mutation check of one module: does some test fail when its code is wrong?

Each mutant changes one thing in MODULE (a comparison flipped, `and` for `or`,
a `not` dropped, a constant off by one, an `if` negated, a `return None`, `min`
for `max`, a comparison or `AND`/`OR` inside an SQL string...), and the given
tests run against it, stopping at the first failure. A mutant the tests let
pass is a *survivor*: either it changes nothing a user can see (an equivalent
mutant: say why in the commit that looks at it), or a test is missing.

The tree is never touched: the repository is copied to a temporary folder and
the mutants are written there (`PYTHONPATH` points the tests at the copy's
`src/`, so run it from a venv with an editable install, pure Python).

    .venv/bin/python .ci/mutate.py src/mrules/policy.py tests/engine/test_cases.py tests/sync
    .venv/bin/python .ci/mutate.py src/mrules/sync/merge.py --list          # the mutants
    .venv/bin/python .ci/mutate.py src/mrules/sync/merge.py --show 39       # one as a diff
    .venv/bin/python .ci/mutate.py src/mrules/engine/settle.py --funcs _try_rule,_wake \\
        --only 3,7 tests/engine/test_cases.py

It prints one line a mutant, then the survivors and their count; exit 0 when
none survives, 1 otherwise, 2 when pytest ran no test (a test path that does
not exist, nothing collected: a pytest option with a value goes as `-k=EXPR`,
or argparse takes the value for a test path) or when the tests fail in the copy
before any mutant (each mutant would look killed). Give only the tests that
cover the module (`grep -l` its names in tests/): a mutant costs one run of them.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CMP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BIN = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Div: ast.Mult,
}
SQL = [
    (" >= ", " > "),
    (" <= ", " < "),
    (" > ", " >= "),
    (" < ", " <= "),
    (" AND ", " OR "),
    (" OR ", " AND "),
    ("DISTINCT ", ""),
    (" = ", " <> "),
    (" <> ", " = "),
    (" != ", " = "),
    (" IS NULL", " IS NOT NULL"),
    (" IS NOT NULL", " IS NULL"),
    ("LEFT JOIN", "JOIN"),
    ("MIN(", "MAX("),
    ("MAX(", "MIN("),
    ("min(", "max("),
    ("max(", "min("),
    (" ASC", " DESC"),
    (" DESC", " ASC"),
]
SWAP_CALL = {"min": "max", "max": "min", "any": "all", "all": "any", "sorted": "list"}
# pytest's exits that say nothing of the mutant: no test ran (any other failure kills it,
# a collection error too: the mutant broke an import)
NOTHING_RUN = {4: "a usage error, such as a path that does not exist", 5: "no tests collected"}
_SKIP_ALWAYS = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", "build"
)
_SKIP_STORES = shutil.ignore_patterns("*.db")


def SKIP_COPY(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: caches, venvs, and the stores runs left lying about, but
    not the stores under tests/ (fixtures: an old schema's store, read by migration tests)."""
    skipped = set(_SKIP_ALWAYS(folder, names))
    if "tests" not in Path(folder).resolve().relative_to(ROOT).parts:
        skipped |= set(_SKIP_STORES(folder, names))
    return skipped


def mutants(src: str) -> list[dict[str, Any]]:
    tree = ast.parse(src)
    docs, skip, in_f, funcs = set(), set(), set(), []
    for n in ast.walk(tree):
        if isinstance(n, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            funcs.append((n.name, n.lineno, n.end_lineno or n.lineno))
        if isinstance(n, ast.Import | ast.ImportFrom) or (
            isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
        ):
            skip.update(range(n.lineno, (n.end_lineno or n.lineno) + 1))
        if isinstance(n, ast.JoinedStr):
            in_f.update(id(v) for v in n.values)
    out: list[dict[str, Any]] = []

    def func(line: int) -> str:
        inside = [f for f in funcs if f[1] <= line <= f[2]]
        return max(inside, key=lambda f: f[1])[0] if inside else "<module>"

    def add(node: Any, new: str, what: str) -> None:
        if node.lineno not in skip:
            out.append(
                {
                    "line": node.lineno,
                    "col": node.col_offset,
                    "eline": node.end_lineno,
                    "ecol": node.end_col_offset,
                    "new": new,
                    "what": what,
                    "func": func(node.lineno),
                }
            )

    def sql(node: Any, text: str, remake: Any) -> None:
        for a, b in SQL:
            j = text.find(a)
            while j >= 0:
                add(
                    node,
                    remake(text[:j] + b + text[j + len(a) :]),
                    f"sql {a.strip()} -> {b.strip()}",
                )
                j = text.find(a, j + 1)

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for i, v in enumerate(node.values):
                if isinstance(v, ast.Constant) and isinstance(v.value, str):

                    def remake(t: str, i: int = i, node: ast.JoinedStr = node) -> str:
                        m = copy.deepcopy(node)
                        m.values[i].value = t  # type: ignore[attr-defined]
                        return ast.unparse(m)

                    sql(node, v.value, remake)
        if id(node) in in_f:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in CMP:
                    m = copy.deepcopy(node)
                    m.ops[i] = CMP[type(op)]()
                    add(
                        node,
                        f"({ast.unparse(m)})",
                        f"{type(op).__name__} -> {type(m.ops[i]).__name__}",
                    )
        elif isinstance(node, ast.BoolOp):
            m = copy.deepcopy(node)
            m.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            add(node, f"({ast.unparse(m)})", "and <-> or")
            if len(node.values) == 2:
                for k in range(2):
                    add(node, f"({ast.unparse(node.values[1 - k])})", f"drop operand {k + 1}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add(node, f"({ast.unparse(node.operand)})", "drop not")
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in BIN:
            m = copy.deepcopy(node)
            m.op = BIN[type(node.op)]()
            text = ast.unparse(m)
            add(node, text if isinstance(node, ast.AugAssign) else f"({text})", "arithmetic")
        elif isinstance(node, ast.Constant) and id(node) not in docs:
            v = node.value
            if isinstance(v, bool):
                add(node, repr(not v), "flip bool")
            elif isinstance(v, int):
                add(node, repr(v + 1), "constant + 1")
                if v:
                    add(node, repr(v - 1), "constant - 1")
            elif isinstance(v, str):
                sql(node, v, repr)
        elif isinstance(node, ast.If):
            add(node.test, f"(not ({ast.unparse(node.test)}))", "negate if")
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                add(node, "return None", "return None")
        elif isinstance(node, ast.Break | ast.Continue):
            add(node, "continue" if isinstance(node, ast.Break) else "break", "break <-> continue")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in SWAP_CALL
        ):
            m = copy.deepcopy(node)
            m.func.id = SWAP_CALL[node.func.id]  # type: ignore[attr-defined]
            add(node, ast.unparse(m), f"{node.func.id} -> {m.func.id}")  # type: ignore[attr-defined]
    out.sort(key=lambda d: (d["line"], d["col"], d["what"]))
    kept = []
    for i, m in enumerate(out):
        m["id"] = i
        try:
            ast.parse(apply(src, m))
        except SyntaxError:
            continue
        kept.append(m)
    return kept


def apply(src: str, m: dict[str, Any]) -> str:
    lines = src.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def at(line: int, col: int) -> int:  # ast columns count UTF-8 bytes
        return starts[line - 1] + len(lines[line - 1].encode()[:col].decode())

    return src[: at(m["line"], m["col"])] + m["new"] + src[at(m["eline"], m["ecol"]) :]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("module", help="the module to mutate, e.g. src/mrules/policy.py")
    ap.add_argument("tests", nargs="*", help="pytest paths (and options) that cover it")
    ap.add_argument("--funcs", help="only mutants inside these functions (comma-separated)")
    ap.add_argument("--only", help="only these mutant numbers (comma-separated)")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--show", type=int, help="print mutant N as a diff")
    ap.add_argument("--timeout", type=int, default=900, help="seconds a mutant's run may take")
    a, more = ap.parse_known_args()
    a.tests = [*a.tests, *more]  # pytest's own options (-k ...) and paths given after ours
    module = Path(a.module).resolve().relative_to(ROOT)
    src = (ROOT / module).read_text("utf-8")
    ms = mutants(src)
    if a.funcs:
        ms = [m for m in ms if m["func"] in a.funcs.split(",")]
    if a.only:
        ms = [m for m in ms if str(m["id"]) in a.only.split(",")]
    if a.show is not None:
        (m,) = [m for m in ms if m["id"] == a.show]
        sys.stdout.writelines(
            difflib.unified_diff(
                src.splitlines(True), apply(src, m).splitlines(True), f"a/{module}", f"b/{module}"
            )
        )
        return 0
    if a.list or not a.tests:
        for m in ms:
            print(f"{m['id']:4} line {m['line']:<5} {m['func']:28} {m['what']}")
        print(f"{len(ms)} mutants")
        return 0
    survivors = []
    with tempfile.TemporaryDirectory(prefix="mrules-mutate-") as tmp:
        copy_root = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy_root, ignore=SKIP_COPY, symlinks=True)
        target = copy_root / module
        env = dict(os.environ, PYTHONPATH=str(copy_root / "src"), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider"]
        # The tests must pass on the copy as it is: one that fails there (a fixture the
        # copy lacks, a test broken already) would count every mutant killed.
        r = subprocess.run([*cmd, *a.tests], cwd=copy_root, env=env, capture_output=True)
        if r.returncode:
            said = (r.stdout + r.stderr).decode()[-2000:]
            why = NOTHING_RUN.get(r.returncode)
            print(
                f"mutate.py: pytest ran no test (exit {r.returncode}: {why}); check the tests"
                f" given (a pytest option with a value goes as -k=EXPR):\n{said}"
                if why
                else f"mutate.py: the tests fail before any mutant (exit {r.returncode}),"
                f" so no mutant can be judged; make them pass first:\n{said}",
                file=sys.stderr,
            )
            return 2
        for m in ms:
            target.write_text(apply(src, m), "utf-8")
            t0 = time.monotonic()
            try:
                r = subprocess.run(
                    [*cmd, *a.tests], cwd=copy_root, env=env, capture_output=True, timeout=a.timeout
                )
                if r.returncode in NOTHING_RUN:  # the tests given are wrong, not the mutant
                    said = (r.stdout + r.stderr).decode()[-2000:]
                    print(
                        f"mutate.py: pytest ran no test (exit {r.returncode}: "
                        f"{NOTHING_RUN[r.returncode]}); check the tests given (a pytest option"
                        f" with a value goes as -k=EXPR):\n{said}",
                        file=sys.stderr,
                    )
                    return 2
                verdict = "killed" if r.returncode else "SURVIVED"
            except subprocess.TimeoutExpired:
                verdict = "killed (timeout)"
            if verdict == "SURVIVED":
                survivors.append(m)
            took = time.monotonic() - t0
            print(
                f"{m['id']:4} line {m['line']:<5} {m['func']:28} {m['what']:24}",
                f"{verdict} {took:.0f}s",
                flush=True,
            )
    print(
        f"{len(ms)} mutants, {len(survivors)} survived"
        + "".join(f"\n  {m['id']} line {m['line']} {m['func']}: {m['what']}" for m in survivors)
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
