"""The CLI under the process environments users and CI give it: a closed standard output,
a locale that is not UTF-8, ... Each test runs the real program as a subprocess with one
thing of its environment varied, and expects what it does in the usual one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrules.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"
RULES = EXAMPLE / "rules"
EVENTS = EXAMPLE / "events.jsonl"


def mrules(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    **options: object,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "mrules", *map(str, args)],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        **{"capture_output": True, **options},
    )


def closed_stdout(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """`mrules ARGS >&-`: the program starts with no standard output at all."""
    return subprocess.run(
        [sys.executable, "-m", "mrules", *map(str, args)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        preexec_fn=lambda: os.close(1),  # after the redirections, before the program
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "s.db"
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", path).returncode == 0
    assert mrules("run", RULES, EVENTS, "--store", path).returncode == 0
    return path


def test_a_closed_stdout_is_exit_4_for_every_command_that_prints(store: Path) -> None:
    """With standard output closed (`>&-`) Python has none, and `click.echo` drops what it
    is given: `sync plan`, `--help`, `--version`, `lint --explain`, `crm describe` and
    `sync status` printed nothing and exited 0; `crm export` (and `lsp`) was an internal
    error, exit 70. A closed output is exit 4 (docs/exit-codes.md)."""
    commands: list[list[str | Path]] = [
        ["--help"],
        ["--version"],
        ["lint", "--help"],
        ["lint", "--explain", "MR102"],
        ["sync", "plan", "--rules", RULES, "--store", store],
        ["crm", "export", "--store", store],
        ["crm", "describe", "Lead", "--store", store],
    ]
    for args in commands:
        res = closed_stdout(*args)
        err = res.stderr.decode()
        assert res.returncode == ExitCode.STORE, (args, err)
        assert err == (
            "mrules: error: standard output is closed: nothing can be written; give it a"
            " file (> FILE)\n"
        ), (args, err)


def test_a_closed_stdout_is_no_error_for_a_command_that_prints_nothing_there() -> None:
    res = closed_stdout("run", RULES, EVENTS, "--store", ":memory:")
    assert res.returncode == ExitCode.OK, res.stderr.decode()
    assert b"events applied" in res.stderr


ASCII_LOCALE = {"PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C"}
"""A locale that is not UTF-8: Python decodes the command line and names files as ASCII."""


def _ascii_locale_or_skip() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
        env={**os.environ, **ASCII_LOCALE}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    if probe.stdout.strip() == "utf-8":
        pytest.skip("this Python decodes the command line as UTF-8 in the C locale")


def test_an_email_with_accents_is_found_whatever_the_locale(tmp_path: Path) -> None:
    """Under a locale that is not UTF-8, Python decodes `josé@exämple.com` on the command
    line with a lone surrogate for each byte past ASCII: `explain` said the email was
    "not UTF-8 text, so no prospect has it" (exit 2), and `state export --prospect`,
    `report html --timeline` and `sync retry --prospect` refused it the same way."""
    _ascii_locale_or_skip()
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"ts":"2026-11-02T09:00:00Z","id":"x1","type":"form_submit","visitor":"v-1",'
        '"prospect":"josé@exämple.com","asset":"Demande Get Cloudy",'
        '"fields":{"first_name":"José"}}\n',
        encoding="utf-8",
    )
    store = tmp_path / "s.db"
    assert mrules("run", RULES, events, "--store", store).returncode == 0
    for env in ({}, ASCII_LOCALE):
        res = mrules("explain", "josé@exämple.com", "--store", store, env=env)
        assert res.returncode == 0, (env, res.stderr.decode())
        assert res.stdout.decode().startswith("josé@exämple.com: score "), env
        res = mrules("state", "export", "--prospect", "josé@exämple.com", "--store", store, env=env)
        assert res.returncode == 0, (env, res.stderr.decode())
        assert '"email":"josé@exämple.com"' in res.stdout.decode(), env
        page = tmp_path / "r.html"
        res = mrules("report", "html", page, "--store", store, "--timeline", "josé@exämple.com",
                     env=env)  # fmt: skip
        assert res.returncode == 0, (env, res.stderr.decode())
    # bytes that are not UTF-8 are still refused, in either locale
    for env in ({}, ASCII_LOCALE):
        res = subprocess.run(
            [sys.executable, "-m", "mrules", "explain", b"jos\xe9@x.com", "--store", store],
            env={**os.environ, **env}, capture_output=True, check=False,
        )  # fmt: skip
        assert res.returncode == ExitCode.USAGE, env
        assert b"is not UTF-8 text" in res.stderr, env


def test_an_include_with_accents_is_found_whatever_the_locale(tmp_path: Path) -> None:
    """Rule text is UTF-8, and so is the file name an include gives. Under a locale that
    is not UTF-8, `include "partagé/listes"` looked for the name as the locale spells it:
    `no rule file 'partagé/listes' under r\\udcc3\\udca8gles` (the folder's name shown
    with lone surrogates), though `partagé/listes.mr` is there."""
    _ascii_locale_or_skip()
    root = tmp_path / "règles"
    (root / "partagé").mkdir(parents=True)
    (root / "partagé" / "listes.mr").write_text('list "Clients"\n', encoding="utf-8")
    (root / "a.mr").write_text(
        'include "partagé/listes"\n'
        'automation rule "Été" priority 1 {\n'
        '  when all { in list "Clients" }\n'
        "  then { score +1 }\n"
        "}\n",
        encoding="utf-8",
    )
    (root / "b.mr").write_text('include "nulle/part"\n', encoding="utf-8")
    for env in ({}, ASCII_LOCALE):
        res = mrules("lint", "règles/a.mr", env=env, cwd=tmp_path)
        assert res.returncode == 0, (env, res.stdout.decode(), res.stderr.decode())
        res = mrules("lint", "règles/b.mr", env=env, cwd=tmp_path)
        assert res.returncode == ExitCode.DIAGNOSTICS, env
        assert "no rule file 'nulle/part' under règles\n" in res.stdout.decode(), env


def test_report_html_under_python_oo_is_a_usage_error_not_a_crash(store: Path) -> None:
    """`python -OO` (PYTHONOPTIMIZE=2) strips docstrings, from which altair builds its
    chart classes: `report html` was an internal error (exit 70, a traceback file)."""
    r = mrules("report", "html", "-", "--store", store, env={"PYTHONOPTIMIZE": "2"})
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert r.stderr.decode() == (
        "mrules: error: report html needs Python's docstrings, which `python -OO`"
        " (PYTHONOPTIMIZE=2) removes: run it without\n"
    )
    assert r.stdout == b""
    r = mrules("report", "html", "-", "--store", store)
    assert r.returncode == 0 and r.stdout.startswith(b"<!DOCTYPE html>"), r.stderr


def test_a_sync_cycle_leaves_no_file_open_under_warnings(tmp_path: Path) -> None:
    """`PYTHONWARNINGS=always` (or `-W error`): `sync apply` and `sync run` printed a
    ResourceWarning a cycle, for the temporary files of the plan's spools."""
    db = tmp_path / "s.db"
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", db).returncode == 0
    assert mrules("run", RULES, EVENTS, "--store", db, "-q").returncode == 0
    warn = {"PYTHONWARNINGS": "always::ResourceWarning"}
    r = mrules("sync", "apply", "--rules", RULES, "--store", db, env=warn)
    assert r.returncode == 0, r.stderr
    assert b"Warning" not in r.stderr, r.stderr.decode()
    changes = EXAMPLE / "crm-changes.jsonl"
    r = mrules("sync", "run", "--rules", RULES, "--store", db, "--changes", changes,
               "--until", "2026-11-10T00:00:00Z", env=warn)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert b"Warning" not in r.stderr, r.stderr.decode()


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_characters_the_output_encoding_lacks_are_escaped_not_a_crash(
    tmp_path: Path, unbuffered: str
) -> None:
    """Under `PYTHONIOENCODING=latin-1` (or a Latin-1 locale), `mrules lint` of a list
    named "日本" was an internal error, exit 70, at its first message: standard output
    refused the characters. They are written as escapes, as on standard error; what a
    command writes as UTF-8 bytes (`fmt -`) stays UTF-8."""
    rules = tmp_path / "a.mr"
    rules.write_text('list "日本"\nlist "日本"  # 日本\n', encoding="utf-8")
    env = {"PYTHONIOENCODING": "latin-1", "PYTHONUNBUFFERED": unbuffered}
    res = mrules("lint", rules, env=env)
    assert res.returncode == ExitCode.DIAGNOSTICS, res.stderr
    assert b"internal error" not in res.stderr, res.stderr
    assert b"list '\\u65e5\\u672c' is declared twice" in res.stdout, res.stdout
    res = mrules("fmt", "-", input=rules.read_bytes(), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'list "日本"\nlist "日本"  # 日本\n'.encode(), res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("lint", RULES),
        ("test", EXAMPLE),
        ("run", RULES, EVENTS, "--store", "STORE"),
    ],
    ids=["lint", "test", "run"],
)
def test_a_deleted_working_folder_is_a_usage_error_not_a_crash(
    tmp_path: Path, args: tuple[str | Path, ...]
) -> None:
    # A shell left in a folder that was deleted since (a CI step's checkout replaced, `rm
    # -rf` from another terminal): every path is shown from the working folder, and asking
    # for it was an internal error (exit 70) with a traceback file.
    gone = tmp_path / "gone"
    gone.mkdir()
    store = tmp_path / "s.db"
    argv = [str(store) if a == "STORE" else str(a) for a in args]
    script = 'cd "$1" && rmdir "$1" && shift && exec "$@"'
    res = subprocess.run(
        ["sh", "-c", script, "sh", str(gone), sys.executable, "-m", "mrules", *argv],
        capture_output=True,
        text=True,
    )
    assert res.returncode == ExitCode.USAGE, res.stderr
    assert res.stderr.startswith("mrules: error: the working folder no longer exists"), res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert not store.exists()
