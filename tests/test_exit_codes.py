"""The exit-code table: docs/exit-codes.md lists exactly `ExitCode`, and each code is given.

Every code is provoked through the CLI as a user would meet it; the store and
output failures in more ways in test_faults.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mrules.cli import common, main
from mrules.exitcodes import ExitCode
from mrules.store import Store

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "getcloudy" / "rules"
EVENTS = ROOT / "examples" / "getcloudy" / "events.jsonl"
DOC = ROOT / "docs" / "exit-codes.md"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_doc_table_lists_exactly_the_exit_codes() -> None:
    rows = re.findall(r"^\| (\d+) \| ([A-Z_]+) \| (.+?) \| (.+?) \|$", DOC.read_text(), re.M)
    assert {name: int(code) for code, name, *_ in rows} == {c.name: c.value for c in ExitCode}
    assert len(rows) == len(ExitCode), "one row a code"
    for _code, _name, meaning, commands in rows:
        assert meaning.strip() and commands.strip()


def test_the_readme_table_is_the_doc_table() -> None:
    """The README prints the table too (short): the same codes, and every command that
    exits 3 named in its row (it named `mrules run` only), and every CRM object whose
    missing access exits 3 (it named Campaign only)."""
    readme = (ROOT / "README.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    short = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme, re.M))
    assert {int(code) for code in short} == {c.value for c in ExitCode}
    rows = re.findall(r"^\| (\d+) \| [A-Z_]+ \| (.+?) \| (.+?) \|$", DOC.read_text(), re.M)
    for code, meaning, given_by in rows:
        if code == "3":  # the few commands that give it, each named, and the objects
            objects = re.search(r"may not read or write \(([A-Z][\w, ]+)", meaning)
            assert objects is not None, meaning
            for sobject in objects.group(1).split(", "):
                assert re.search(rf"\b{sobject}\b", short[code]), (code, sobject)
            for command in re.findall(r"`([a-z -]+)`", given_by):
                assert f"`{command}`" in short[code] or f"`mrules {command}`" in short[code], (
                    code,
                    command,
                )


def test_the_cli_aliases_are_the_table() -> None:
    assert common.EXIT_OK is ExitCode.OK
    assert common.EXIT_DIAGNOSTICS is ExitCode.DIAGNOSTICS
    assert common.EXIT_USAGE is ExitCode.USAGE
    assert common.EXIT_REJECTS is ExitCode.REJECTS
    assert common.EXIT_STORE is ExitCode.STORE
    assert common.EXIT_BUSY is ExitCode.BUSY
    assert common.EXIT_INTERRUPTED is ExitCode.INTERRUPTED
    assert common.EXIT_INTERNAL not in {c.value for c in ExitCode}
    assert f"exits **{common.EXIT_INTERNAL}**" in DOC.read_text()


@pytest.fixture
def bad_rules(tmp_path: Path) -> Path:
    p = tmp_path / "bad.mr"
    p.write_text('automation rule "x" priority 1 { when all { compnay_size is "1" } }\n')
    return p


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = tmp_path / "s.db"
    res = invoke("run", RULES, EVENTS, "--store", s, "-q")
    assert res.exit_code == 0, res.output
    return s


def test_0_ok(store: Path) -> None:
    assert invoke("lint", RULES).exit_code == ExitCode.OK
    assert invoke("state", "export", "--store", store).exit_code == ExitCode.OK


def test_1_diagnostics(bad_rules: Path, tmp_path: Path) -> None:
    assert invoke("lint", bad_rules).exit_code == ExitCode.DIAGNOSTICS
    res = invoke("run", bad_rules, EVENTS, "--store", tmp_path / "x.db")
    assert res.exit_code == ExitCode.DIAGNOSTICS


def test_2_usage(tmp_path: Path, store: Path) -> None:
    assert invoke("lint", tmp_path / "missing.mr").exit_code == ExitCode.USAGE
    assert invoke("run", RULES, tmp_path / "missing.jsonl").exit_code == ExitCode.USAGE
    assert invoke("state", "export", "--store", tmp_path / "none.db").exit_code == ExitCode.USAGE
    assert invoke("explain", "nobody@x.example", "--store", store).exit_code == ExitCode.USAGE
    res = invoke("run", RULES, EVENTS, "--store", store, "--actions", tmp_path / "no" / "a.jsonl")
    assert res.exit_code == ExitCode.USAGE
    # segment reads a store: a mistyped path made a new empty one and "0 matched", exit 0.
    res = invoke("segment", RULES, "--store", tmp_path / "typo.db")
    assert res.exit_code == ExitCode.USAGE and "no store at" in res.stderr
    assert not (tmp_path / "typo.db").exists()
    assert invoke("segment", RULES, "--store", ":memory:").exit_code == ExitCode.USAGE
    for args in (["state", "export"], ["run", RULES, EVENTS], ["report", "funnel"],
                 ["explain", "a@x.example"], ["sync", "status"]):  # fmt: skip
        res = invoke(*args, "--store", "")  # was an internal error, or "store . is a folder"
        assert res.exit_code == ExitCode.USAGE, (args, res.output)
        assert "--store needs a path: an empty path" in res.stderr, res.stderr
        assert "Traceback" not in res.output
    for folder in ("/", ".", str(tmp_path) + "/"):  # folders: the default outputs crashed
        res = invoke("run", RULES, EVENTS, "--store", folder, "-q")
        assert res.exit_code == ExitCode.USAGE and "is a folder, not a file" in res.stderr
    res = invoke("run", RULES, EVENTS, "--store", tmp_path / "none", "-q")  # made a file
    assert res.exit_code == 0
    res = invoke("run", RULES, EVENTS, "--store", f"{tmp_path}/nothere/", "-q")
    assert res.exit_code == ExitCode.USAGE and "names a folder, and there is none" in res.stderr
    assert not (tmp_path / "nothere").exists()
    # an explicit --sync-db that is not there was ignored: no SQL or won stages, exit 0
    res = invoke("explain", "leung@example.com", "--store", store, "--timeline",
                 "--sync-db", tmp_path / "nope.sync.db")  # fmt: skip
    assert res.exit_code == ExitCode.USAGE and "no such file" in res.stderr


def test_3_rejects(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_bytes(EVENTS.read_bytes() + b"{broken\n")
    res = invoke("run", RULES, events, "--store", tmp_path / "r.db", "-q")
    assert res.exit_code == ExitCode.REJECTS


def test_4_store(tmp_path: Path, store: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for args in (
        ["run", RULES, EVENTS, "--store", empty],
        ["state", "export", "--store", empty],
        ["state", "outbox", "--store", empty],
        ["explain", "a@x.example", "--store", empty],
        ["segment", RULES, "--store", empty],
    ):
        res = invoke(*args)
        assert res.exit_code == ExitCode.STORE, (args, res.output)
        assert res.stderr.startswith("mrules: error: store ") and "0 bytes" in res.stderr


def test_a_run_whose_stderr_reader_is_gone_exits_4_its_work_kept(tmp_path: Path) -> None:
    """`mrules run ... 2>&1 | head -0`: the summary table met a closed pipe and rich's own
    answer (a silent exit 1, the code of a rule set with errors) ended as Python's 120.
    Now it is 4, as for a full disk, and what the run committed is kept."""
    db = tmp_path / "piped.db"

    def mrules(*args: str | Path) -> int:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before a byte is written
        try:
            return subprocess.run(
                [sys.executable, "-m", "mrules", *map(str, args)],
                stdout=subprocess.DEVNULL,
                stderr=write_end,
            ).returncode
        finally:
            os.close(write_end)

    assert mrules("run", RULES, EVENTS, "--store", db) == ExitCode.STORE
    with Store.open(db, readonly=True) as s:
        assert s.stream_position(str(EVENTS.resolve())) == len(EVENTS.read_bytes().splitlines())
    assert mrules("run", RULES, EVENTS, "--store", ":memory:") == ExitCode.STORE
    res = invoke("run", RULES, EVENTS, "--store", db)  # the same command again: all applied
    assert res.exit_code == ExitCode.OK, res.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_stderr_that_cannot_be_written_still_gives_the_documented_code(tmp_path: Path) -> None:
    """The run's summary goes to stderr: when it cannot be written, what the run committed
    is kept and the exit code is 4 (an output failed), never Python's own 1 or 120."""
    db = tmp_path / "full.db"

    def mrules(*args: str | Path) -> int:
        with open("/dev/full", "wb") as full:
            return subprocess.run(
                [sys.executable, "-m", "mrules", *map(str, args)],
                stdout=subprocess.DEVNULL,
                stderr=full,
            ).returncode

    assert mrules("run", RULES, EVENTS, "--store", db) == ExitCode.STORE
    with Store.open(db, readonly=True) as s:
        assert s.stream_position(str(EVENTS.resolve())) == len(EVENTS.read_bytes().splitlines())
    assert mrules("lint", tmp_path / "nothere") == ExitCode.USAGE  # the message lost, not the code
    res = invoke("run", RULES, EVENTS, "--store", db)  # the same command again: all applied
    assert res.exit_code == ExitCode.OK, res.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_help_version_and_usage_errors_on_an_output_that_takes_nothing() -> None:
    """`mrules --help` and `--version` print while click parses the arguments, before any
    command runs: on a full disk they were an internal error (exit 70, a traceback file),
    on a closed pipe click's exit 1. A usage error whose message cannot be written was an
    internal error too; it keeps its code 2, as every command's does. With standard
    output buffered (PYTHONUNBUFFERED unset), what it still held failed again at exit:
    "Exception ignored", exit 120."""
    for unbuffered in ("1", ""):
        _outputs_that_take_nothing({**os.environ, "PYTHONUNBUFFERED": unbuffered})


def _outputs_that_take_nothing(env: dict[str, str]) -> None:
    def mrules(*args: str, stdout: Any = subprocess.DEVNULL, stderr: Any = None) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "mrules", *args],
            stdout=stdout,
            stderr=subprocess.PIPE if stderr is None else stderr,
            text=True,
            env=env,
        )

    for args in (["--help"], ["--version"], ["run", "--help"]):
        with open("/dev/full", "wb") as full:
            r = mrules(*args, stdout=full)
        assert r.returncode == ExitCode.STORE, (args, r.stderr)
        assert r.stderr == "mrules: error: cannot write the output: No space left on device\n"
        read, write = os.pipe()
        os.close(read)
        try:
            r = mrules(*args, stdout=write)
        finally:
            os.close(write)
        assert r.returncode == ExitCode.STORE, (args, r.stderr)
        assert "broken pipe" in r.stderr
    for args in (["frob"], ["run", "--bogus"]):
        assert mrules(*args).returncode == ExitCode.USAGE
        with open("/dev/full", "wb") as full:
            r = mrules(*args, stderr=full)
        assert r.returncode == ExitCode.USAGE, args


def test_4_a_file_that_is_not_sqlite_gets_no_lock_file(tmp_path: Path) -> None:
    """`--store events.jsonl` (a slip of the argument order) was refused only after the
    writers' lock was taken, and left events.jsonl.lock beside the events."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENTS.read_bytes())
    res = invoke("run", RULES, EVENTS, "--store", events, "-q")
    assert res.exit_code == ExitCode.STORE
    assert "is not an mrules store (not a SQLite database)" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]
    assert events.read_bytes() == EVENTS.read_bytes()


@contextlib.contextmanager
def _held_elsewhere(store: Path) -> Iterator[None]:
    """The store held open by another process, as a running `mrules run` holds it (held by
    this one, a second open is told so instead: waiting would never end)."""
    code = "import sys; from mrules.store import Store; s = Store.open(sys.argv[1]);"
    code += " print('ready', flush=True); sys.stdin.readline()"
    p = subprocess.Popen([sys.executable, "-c", code, str(store)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield
    finally:
        p.kill()
        p.wait(timeout=10)


def test_5_busy(store: Path) -> None:
    sync = ["--rules", RULES, "--store", store]
    with _held_elsewhere(store):  # another process holds it: a second writer is refused
        for args in (
            ["run", RULES, EVENTS, "--store", store],
            ["segment", RULES, "--store", store],
            ["run", RULES, EVENTS, "--store", store, "--wait-timeout", "0.2"],
            # The sync writes the store too, and takes the same two options.
            ["sync", "plan", *sync],
            ["sync", "plan", *sync, "--wait-timeout", "0.2"],
            ["sync", "apply", *sync, "--wait-timeout", "0.2"],
            ["sync", "run", *sync, "--wait-timeout", "0.2", "--until", "2026-12-21T00:00:00Z"],
            ["sync", "send", "bob@bigcorp.example", *sync, "--wait-timeout", "0.2"],
        ):
            res = invoke(*args)
            assert res.exit_code == ExitCode.BUSY, res.output
            assert "in use by another mrules process" in res.stderr
            waited = "--wait-timeout" in args  # then --wait is no advice: it was given
            assert ("give --wait-timeout more seconds" in res.stderr) == waited
            assert ("add --wait" in res.stderr) != waited
        # Readers are never busy.
        assert invoke("state", "export", "--store", store).exit_code == ExitCode.OK


def test_5_busy_through_a_symlink(tmp_path: Path, store: Path) -> None:
    """The lock sits beside the store's real file: a symlink to a store in use was a
    second "exclusive" writer, stopped only by a constraint failing in its commit."""
    link = tmp_path / "link.db"
    link.symlink_to(store)
    with _held_elsewhere(store):
        res = invoke("run", RULES, EVENTS, "--store", link, "-q")
        assert res.exit_code == ExitCode.BUSY, res.output
        assert "in use by another mrules process" in res.stderr
    assert not (tmp_path / "link.db.lock").exists()


def test_4_an_output_without_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the user may not write (partition --out in a read-only folder) was an
    internal error (PermissionError, exit 70); it is an output that failed: exit 4."""
    import mrules.partition

    def denied(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro" / "p"))

    monkeypatch.setattr(mrules.partition, "partition", denied)
    res = invoke("partition", EVENTS, "--buckets", "2", "--out", tmp_path / "ro" / "p")
    assert res.exit_code == ExitCode.STORE, res.output
    assert "cannot write" in res.stderr and "Permission denied" in res.stderr
    assert "internal error" not in res.output


def test_130_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mrules.engine

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mrules.engine.Engine, "run", interrupted)
    res = invoke("run", RULES, EVENTS, "--store", tmp_path / "i.db", "-q")
    assert res.exit_code == ExitCode.INTERRUPTED
    assert "interrupted" in res.stderr and "running the same command again resumes" in res.stderr
    assert "Aborted" not in res.output
    monkeypatch.setattr(mrules.engine.Engine, "segment", interrupted)
    res = invoke("segment", RULES, "--store", tmp_path / "i.db")
    assert res.exit_code == ExitCode.INTERRUPTED and "interrupted" in res.stderr


# The signal arrives as the command starts to load what every command needs.
_SIGNAL_AS_IT_STARTS = """
import os, signal, sys
class Hook:
    def find_spec(self, name, path, target=None):
        if name == "mrules.cli.common":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.{sig})
        return None
sys.meta_path.insert(0, Hook())
from mrules.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_130_interrupted_as_it_starts(tmp_path: Path, sig: str) -> None:
    """Ctrl-C or SIGTERM in the first tenth of a second (the imports every command makes)
    reached click, which said `Aborted!` and exited 1: the code of a rule set with errors."""
    res = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AS_IT_STARTS.format(sig=sig), "run", str(RULES),
         str(EVENTS), "--store", str(tmp_path / "i.db"), "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == ExitCode.INTERRUPTED, res.stderr
    assert res.stderr == "mrules: error: interrupted; nothing was done\n"
    assert not (tmp_path / "i.db").exists()


# SIGINT (Ctrl-C) as the command opens its input (`TARGET`): the store, the sync or CRM
# file, or a rule file. The command is running; nothing it reads is changed.
_SIGNAL_AS_IT_READS = """
import os, signal, sys
target, argv = sys.argv[1], sys.argv[2:]
def hook(event, args):
    if event in ("open", "sqlite3.connect") and args and target in str(args[0]):
        if not getattr(hook, "sent", False):
            hook.sent = True
            os.kill(os.getpid(), signal.SIGINT)
sys.addaudithook(hook)
from mrules.cli import main
main(argv, prog_name="mrules")
"""

_READ_ONLY = [
    ("explain", ["explain", "bob@bigcorp.example", "--store", "{store}"], "s.db"),
    ("state export", ["state", "export", "--store", "{store}"], "s.db"),
    ("state outbox", ["state", "outbox", "--store", "{store}"], "s.db"),
    ("sync plan", ["sync", "plan", "--rules", "{rules}", "--store", "{store}"], "s.sync.db"),
    ("sync status", ["sync", "status", "--store", "{store}"], "s.sync.db"),
    ("crm export", ["crm", "export", "--store", "{store}"], "s.crm.db"),
    ("crm describe", ["crm", "describe", "Lead", "--store", "{store}"], "s.crm.db"),
    ("lint", ["lint", "{rules}"], ".mr"),
    ("fmt --check", ["fmt", "--check", "{rules}"], ".mr"),
    ("parse", ["parse", "{rules}"], ".mr"),
]


# Ctrl-C (or SIGTERM) while pydantic builds a validator: at `import mrules.cli.common`
# (the diagnostics' classes), or on the first AST node of a class the rules make (a tenth
# of a second of every command that loads rules). pydantic-core turns a KeyboardInterrupt
# raised in its build into a SchemaError, which the hook does in its place, the signal
# sent as the build starts.
_SIGNAL_AS_PYDANTIC_BUILDS = """
import os, signal, sys
import pydantic_core
import pydantic._internal._model_construction as construction
at, sig, argv = sys.argv[1], getattr(signal, sys.argv[2]), sys.argv[3:]
build = construction.SchemaSerializer
def interrupted_build(schema, *args, **kwargs):
    construction.SchemaSerializer = build
    try:
        os.kill(os.getpid(), sig)
        return build(schema, *args, **kwargs)
    except KeyboardInterrupt as e:
        name = type(e).__name__
        raise pydantic_core.SchemaError(f"Error building `model` serializer: {name}: ") from None
from mrules.cli import main
if at == "load":
    import mrules.cli.common
construction.SchemaSerializer = interrupted_build
main(argv, prog_name="mrules")
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("at", ["import", "load"])
def test_130_interrupted_while_pydantic_builds(tmp_path: Path, at: str, sig: str) -> None:
    """It was an internal error (exit 70, `SchemaError: Error building ...` and a saved
    traceback) for one Ctrl-C in thirty sent to a starting `mrules sync run`, and a bare
    Python traceback as the command started."""
    store = tmp_path / "i.db"
    for args in (["run", str(RULES), str(EVENTS), "--store", str(store), "-q"],
                 ["lint", str(RULES)]):  # fmt: skip
        res = subprocess.run(
            [sys.executable, "-c", _SIGNAL_AS_PYDANTIC_BUILDS, at, sig, *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == ExitCode.INTERRUPTED, res.stderr
        assert res.stderr.startswith("mrules: error: interrupted"), res.stderr
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert not store.exists()


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with its CRM file and sync file, as the README's sync example makes them."""
    s = tmp_path_factory.mktemp("synced") / "s.db"
    assert invoke("crm", "load", RULES.parent / "crm", "--store", s).exit_code == 0
    assert invoke("run", RULES, EVENTS, "--store", s, "-q").exit_code == 0
    assert invoke("sync", "apply", "--rules", RULES, "--store", s).exit_code == 0
    return s


@pytest.mark.parametrize(("name", "args", "target"), _READ_ONLY, ids=[r[0] for r in _READ_ONLY])
def test_130_a_read_only_command_does_not_speak_of_resuming(
    synced: Path, name: str, args: list[str], target: str
) -> None:
    """Ctrl-C in a command that writes nothing (explain, state export, sync plan, lint...)
    said "what was committed is kept, and running the same command again resumes", the
    message of the commands that write a store. It says there is nothing to resume."""
    before = {p.name: p.read_bytes() for p in synced.parent.iterdir() if p.suffix == ".db"}
    argv = [a.format(store=synced, rules=RULES) for a in args]
    res = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AS_IT_READS, target, *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == ExitCode.INTERRUPTED, res.stderr
    assert res.stderr == (
        f"mrules: error: interrupted; `mrules {name.split(' --')[0]}` changes nothing and"
        " leaves no file half-written: run the same command again\n"
    )
    assert before == {p.name: p.read_bytes() for p in synced.parent.iterdir() if p.suffix == ".db"}


def test_an_internal_error_is_one_line_and_a_saved_traceback(tmp_path: Path) -> None:
    """Only the `mrules` program itself reports a bug this way (CliRunner sees the bug)."""
    script = (
        "import sys, mrules.state as s\n"
        "def boom(*a, **k): raise RuntimeError('boom \\ud800')\n"
        "s.Prospect.from_json = boom\n"
        "from mrules.cli import main\n"
        "sys.argv = ['mrules', 'state', 'export', '--store', sys.argv[1]]\n"
        "main()\n"
    )
    shutil.copy(EVENTS, tmp_path / "ev.jsonl")
    store = tmp_path / "s.db"
    assert invoke("run", RULES, tmp_path / "ev.jsonl", "--store", store, "-q").exit_code == 0
    res = subprocess.run(
        [sys.executable, "-c", script, str(store)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == common.EXIT_INTERNAL, res.stderr
    first, second = res.stderr.splitlines()
    assert first.startswith("mrules: internal error: RuntimeError: boom")
    assert first.endswith("(this is a bug; please report it)")
    saved = Path(second.removeprefix("Traceback saved to "))
    try:
        assert "RuntimeError" in saved.read_text() and "Traceback" in saved.read_text()
    finally:
        saved.unlink()


@pytest.mark.parametrize(
    "command", [["run"], ["fmt"], ["segment"], ["explain"], ["test"], ["replay"], ["lint"]]
)
def test_help_points_at_the_table(command: list[str]) -> None:
    res = invoke(*command, "--help")
    assert res.exit_code == 0
    assert "docs/exit-codes.md" in res.output


def test_a_pipe_closed_mid_output_is_exit_4_also_under_pythonunbuffered(tmp_path: Path) -> None:
    """Under `PYTHONUNBUFFERED=1` (set in many CI images) standard output has no buffer:
    a raw file whose write takes part of the bytes when `head` closes the pipe, and says
    so only by its result. `mrules lint --format json | head -c 100` lost the rest of its
    output without a word and exited 1 (the rule errors' code), not 4."""
    rules = tmp_path / "big.mr"
    rules.write_text(
        "".join(f'on submit of form "F{i}" {{ add to list "Nope{i}" }}\n' for i in range(3000))
    )
    for unbuffered in ("1", ""):
        env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
        p = subprocess.Popen(
            [sys.executable, "-m", "mrules", "lint", str(rules), "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert p.stdout is not None and p.stderr is not None
        assert len(p.stdout.read(100)) == 100
        p.stdout.close()  # as `head -c 100` does, with most of the output still to come
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == ExitCode.STORE, (unbuffered, err)
        assert "broken pipe" in err, err
    whole = subprocess.run(
        [sys.executable, "-m", "mrules", "lint", str(rules), "--format", "json"],
        capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert whole.returncode == ExitCode.DIAGNOSTICS, whole.stderr
    assert len(json.loads(whole.stdout)) > 0
