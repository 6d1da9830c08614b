"""Shared test fixtures: paths into the repository, building a wheel of it, feeding a pipe,
running `mrules` in this process, a fresh working folder, a rule test file to run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

# Every property test, not only those decorated with strategies.SETTINGS: no deadline and
# no "input generation is slow" health check. On a loaded machine (CI's 2 cores, shared)
# both failed tests whose properties held: test_action_log's fast-line property stopped
# at "Hypothesis only generated 7 valid inputs after 1.10 seconds".
settings.register_profile(
    "mrules-suite",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("mrules-suite")

# Ctrl-C as in a terminal, whoever started the tests. A script that starts them in the
# background (`.ci/run &`, a runner without job control) leaves SIGINT ignored, and an
# ignored SIGINT is inherited by every `mrules` the tests start (which keeps it ignored on
# purpose, as under nohup) and by this process: every test that sends SIGINT, to a child
# or to itself, then saw a run end normally (exit 0, not 130). The tests of what an
# ignored SIGINT does set it up themselves.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"


CONTACT_RULES = 'form "Contact"\n\non submit of form "Contact" {\n  score +20\n}\n'
"""A rule file: a submit of the form `Contact` scores 20."""


def contact_test(rules: str | None, *cases: tuple[str, str]) -> str:
    """A test file of `rules` (CONTACT_RULES) with one case per (name, prospect): the
    prospect submits `Contact` and is expected to score 20. With `rules` None, no
    `rules:` line: the rules are found beside the tests folder.

    >>> print(contact_test("rules.mr", ("one", "a@x.example")), end="")
    rules: rules.mr
    tests:
      - name: one
        events:
          - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.example, asset: Contact}
        expect:
          prospects:
            a@x.example: {score: 20}
    """
    out = ("" if rules is None else f"rules: {rules}\n") + "tests:\n"
    for name, prospect in cases:
        out += (
            f"  - name: {name}\n    events:\n      - {{ts: 2026-11-02T09:00:00Z, type:"
            f" form_submit, prospect: {prospect}, asset: Contact}}\n    expect:\n"
            f"      prospects:\n        {prospect}: {{score: 20}}\n"
        )
    return out


def build_wheel(
    source: Path, out: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    """`pip wheel` of `source` (a checkout or an sdist) into `out`, with this venv's build
    tools (no build isolation) and the MRULES_* variables given here only: the build and
    the wheel it made, if any."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MRULES_")}
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(source)],
        capture_output=True, text=True, check=False, env={**clean, **env}, timeout=600,
    )  # fmt: skip
    wheels = sorted(out.glob("mrules-*.whl"))
    return build, wheels[0] if wheels else None


def run_reading_pipe(
    cmd: list[str], fifo: Path, data: bytes, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run `cmd`, which reads the named pipe `fifo` (as `<(zcat ...)` gives one), while a
    thread writes `data` into it; a command that never opens the pipe does not hang it."""

    def feed() -> None:
        with suppress(BrokenPipeError), fifo.open("wb") as w:
            w.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, cwd=cwd, check=False
        )
    finally:
        if writer.is_alive():  # the command never opened the pipe: open it so the writer ends
            with suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=60)


def stopped(run: subprocess.Popen[bytes], sig: int | None = signal.SIGTERM) -> bytes:
    """Stop a run started with pipes for stdin and stderr: send `sig` (None: close its
    standard input, the end of its stream), wait, SIGKILL it if it will not end; its
    standard error, read whole."""
    assert run.stdin is not None and run.stderr is not None
    try:
        if sig is None:
            run.stdin.close()
        else:
            run.send_signal(sig)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    err = run.stderr.read()
    run.stderr.close()
    if not run.stdin.closed:
        run.stdin.close()
    return err


def peak_bytes(work: Callable[[], object]) -> int:
    """The peak of Python's allocations while `work` runs (tracemalloc), in bytes."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def mrules(*args: str | Path) -> Result:
    """`mrules ARGS` in this process (click's runner); exceptions become the result's."""
    from mrules.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def leaf_commands(*names: str) -> list[tuple[str, click.Command]]:
    """Every command that runs (no group), as `(its words, the command)`: all of `mrules`
    ("mrules sync plan"), or only those under the top-level commands `names` ("sync plan")."""
    from mrules.cli import main

    ctx = click.Context(main)
    found: list[tuple[str, click.Command]] = []

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}")
        else:
            found.append((path, command))

    if not names:
        walk(main, "mrules")
    for name in names:
        top = main.get_command(ctx, name)
        assert top is not None, name
        walk(top, name)
    return found


def mrules_process(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mrules ARGS` in a process of its own in `cwd` (NO_COLOR set), its output as text,
    stopped after `timeout` seconds."""
    return subprocess.run(
        [sys.executable, "-m", "mrules", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder: paths in messages are shown relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def example_rules() -> Path:
    return EXAMPLE / "rules"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long fuzzing and kill tests (`slow`) are opt-in: `-m slow` or MRULES_SLOW=1."""
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("MRULES_SLOW"):
        return
    skip = pytest.mark.skip(reason="long run: opt in with -m slow or MRULES_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def example_store(folder: Path) -> Path:
    """The bundled example after `crm load` and `run` in FOLDER: g.db, its CRM g.crm.db."""
    store = folder / "g.db"
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", store).exit_code == 0
    assert (
        mrules("run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", store).exit_code == 0
    )
    return store


def example_rules_without_grading(folder: Path) -> Path:
    """A copy of the bundled example's rules in FOLDER/rules, less its grading rule
    (`Enterprise grading`): the rule change of the replay tests of a grade change."""
    rules = folder / "rules"
    shutil.copytree(EXAMPLE / "rules", rules)
    automation = rules / "30-automation.mr"
    text = automation.read_text(encoding="utf-8")
    start = text.index('automation rule "Enterprise grading"')
    automation.write_text(text[:start] + text[text.index('automation rule "Score decay"') :])
    return rules
