"""`mrules crm load` given what is not an export file (a device, a named pipe), the same
file twice, a CRM file that is a folder, and one that cannot be made."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import mrules

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"
CHANGES = ROOT / "examples" / "getcloudy" / "crm-changes.jsonl"


def test_a_character_device_is_named_for_what_it_is(tmp_path: Path) -> None:
    r = mrules("crm", "load", os.devnull, "--store", tmp_path / "s.db")
    assert r.exit_code == 2, r.output
    assert "a character device, not a file" in r.output  # was: "no such file or folder"
    assert not (tmp_path / "s.crm.db").exists()


def test_a_named_pipe_is_named_for_what_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "Lead.jsonl"
    os.mkfifo(fifo)
    r = mrules("crm", "load", fifo, "--store", tmp_path / "s.db")
    assert r.exit_code == 2, r.output
    assert "a named pipe, not a file" in r.output
    assert not (tmp_path / "s.crm.db").exists()


def _leads(crm: Path) -> list[dict[str, object]]:
    r = mrules("crm", "export", "--crm", crm, "--object", "Lead")
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_the_same_file_given_twice_loads_once(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    leads = folder / "Lead.jsonl"
    rows = [{"LastName": "Blanc", "Company": "X", "Email": "a@x.com"}]  # no Id: a new lead
    leads.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    crm = tmp_path / "c.crm.db"
    same = tmp_path / "in" / ".." / "in" / "Lead.jsonl"
    r = mrules("crm", "load", leads, leads, same, folder, "--crm", crm)
    assert r.exit_code == 0, r.output
    assert "loaded 1 Lead" in r.stdout
    assert r.stderr.count("is given more than once: loaded once") == 3
    assert len(_leads(crm)) == 1  # was: one lead a time the file was named


def test_the_crm_file_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    (tmp_path / "s.crm.db").mkdir()  # NAME.crm.db made a folder by mistake
    for args in (
        ["export"],
        ["describe", "Lead"],
        ["apply-changes", str(CHANGES)],
        ["load", str(SEED)],
    ):
        r = mrules("crm", *args, "--store", store)
        assert r.exit_code == 2, (args, r.output)  # was exit 4, as for a damaged file
        assert "is a folder, not a CRM file" in r.output


@pytest.mark.parametrize(
    "command",
    [["export"], ["load", str(SEED)], ["describe", "Lead"], ["apply-changes", str(CHANGES)]],
)
def test_crm_option_a_folder_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    """docs/crm.md: a folder as `--crm` is exit 2 with `... is a folder, not a CRM file`
    (it was click's usage block and "File '.' is a directory")."""
    shutil.copytree(SEED, tmp_path / "seed")
    r = mrules("crm", *command, "--crm", tmp_path)
    assert r.exit_code == 2, r.output
    assert r.stderr == f"mrules: error: {tmp_path}: is a folder, not a CRM file\n"


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder the user cannot write: mode 555, or for root (whom modes do not stop) a
    read-only bind mount; skipped where neither can be made."""
    folder, ro = tmp_path / "data", tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(ro)], capture_output=True).returncode:
        pytest.skip("needs a read-only bind mount (mount --bind failed)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_load_into_an_unwritable_folder_is_exit_4(unwritable: Path) -> None:
    """docs/exit-codes.md: a CRM file that cannot be written is exit 4, as `run`'s store
    is (it was exit 2, `cannot open the CRM file: unable to open database file`)."""
    r = mrules("crm", "load", SEED, "--store", unwritable / "x.db")
    assert r.exit_code == 4, r.output
    assert r.stderr == (
        f"mrules: error: {unwritable / 'x.crm.db'}: cannot create the CRM file: unable to"
        f" open database file; its folder {unwritable} is read-only or not writable: make"
        " it writable, or give a path in another folder\n"
    )
    assert not (unwritable / "x.crm.db").exists()


def test_a_crm_file_sqlite_cannot_make_is_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same where the folder looks writable but SQLite cannot make the file."""
    import mrules.crm.emulator as emulator

    def cannot(*_: object, **__: object) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(emulator.sqlite3, "connect", cannot)
    r = mrules("crm", "load", SEED, "--crm", tmp_path / "c.crm.db")
    assert r.exit_code == 4, r.output
    assert "c.crm.db: cannot create the CRM file: unable to open database file" in r.stderr
    assert "internal error" not in r.output


def test_a_missing_crm_file_or_folder_is_still_exit_2(tmp_path: Path) -> None:
    r = mrules("crm", "export", "--crm", tmp_path / "none.crm.db")
    assert r.exit_code == 2, r.output
    assert "no such CRM file" in r.stderr
    r = mrules("crm", "load", SEED, "--store", tmp_path / "nodir" / "x.db")
    assert r.exit_code == 2, r.output
    assert "does not exist; create it first" in r.stderr


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("Id,LastName,LastName,Company", 'the field "LastName" twice, in columns 2 and 3'),
        (
            "Id,LastName,Company,lastname",
            'the field "LastName" twice, in columns 2 and 4 (as "LastName" and "lastname")',
        ),
    ],
)
def test_a_csv_header_naming_a_field_twice_is_refused(
    tmp_path: Path, header: str, said: str
) -> None:
    """docs/crm.md: a CSV whose header names a field twice loads none of its rows (every
    value of that field would be a guess: the last one was kept), and the other files load;
    exit 3, as for other refused rows."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Lead.csv").write_text(f"{header}\nd1,A,B,Acme\n", "utf-8")
    (folder / "Contact.jsonl").write_text('{"LastName": "Kept"}\n', "utf-8")
    crm = tmp_path / "c.crm.db"
    r = mrules("crm", "load", folder, "--crm", crm)
    assert r.exit_code == 3, r.output
    assert f"{folder / 'Lead.csv'}:1: the header names {said}: none of this file's rows" in r.stderr
    assert "loaded 1 Contact" in r.stdout
    assert _leads(crm) == []


def test_a_jsonl_row_giving_a_field_twice_is_refused(tmp_path: Path) -> None:
    leads = tmp_path / "Lead.jsonl"
    leads.write_text(
        '{"Id": "d1", "LastName": "A", "LastName": "B", "Company": "Acme"}\n'
        '{"Id": "d2", "LastName": "A", "lastname": "B", "Company": "Acme"}\n'
        '{"Id": "d3", "LastName": "A", "Company": "Acme"}\n',
        "utf-8",
    )
    crm = tmp_path / "c.crm.db"
    r = mrules("crm", "load", leads, "--crm", crm)
    assert r.exit_code == 3, r.output
    assert f'{leads}:1: the field "LastName" is given twice: the row is refused' in r.stderr
    assert (
        f'{leads}:2: the field "LastName" is given twice (as "LastName" and "lastname"):'
        " the row is refused" in r.stderr
    )
    assert [lead["LastName"] for lead in _leads(crm)] == ["A"]  # d3 only


def test_two_files_of_one_object_are_refused_before_anything_loads(tmp_path: Path) -> None:
    """docs/crm.md: one file per object. `Lead.csv` and `lead.jsonl` with the same Id
    printed `loaded 2 Lead` and kept one record, exit 0: which file's values were kept
    was a matter of load order. Now exit 2 naming both, and no CRM file is made."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Lead.csv").write_text("Id,LastName,Company\nd1,A,Acme\n", "utf-8")
    (folder / "lead.jsonl").write_text('{"Id": "d1", "LastName": "B", "Company": "Acme"}\n')
    (folder / "Contact.jsonl").write_text('{"LastName": "C"}\n', "utf-8")
    for args in ([folder], [folder / "Contact.jsonl", folder / "Lead.csv", folder / "lead.jsonl"]):
        r = mrules("crm", "load", *args, "--store", tmp_path / "s.db")
        assert r.exit_code == 2, r.output
        assert r.stderr == (
            f"mrules: error: {folder / 'Lead.csv'} and {folder / 'lead.jsonl'} are both files"
            " of the object Lead: give one file per object (merge them, or load them one at"
            " a time)\n"
        )
        assert not (tmp_path / "s.crm.db").exists()
    # Either one alone loads; the same file named twice is still loaded once.
    r = mrules("crm", "load", folder / "Lead.csv", folder / "Lead.csv", "--crm", tmp_path / "c.db")
    assert r.exit_code == 0 and "loaded 1 Lead" in r.stdout, r.output


def test_an_org_file_with_a_utf8_bom_is_read_as_the_export_files_are(tmp_path: Path) -> None:
    """A BOM (as Windows editors write one) was `cannot read the org file: Unexpected UTF-8
    BOM (decode using utf-8-sig)`, exit 2, though the export files beside it take one."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "org.json").write_bytes(b'\xef\xbb\xbf{"edition": "growth"}\n')
    (folder / "Lead.csv").write_bytes(b"\xef\xbb\xbfLastName,Company\nBlanc,X\n")
    crm = tmp_path / "c.crm.db"
    r = mrules("crm", "load", folder, "--crm", crm)
    assert r.exit_code == 0, r.output
    assert "loaded 1 Lead" in r.stdout
    r = mrules("crm", "describe", "Lead", "--crm", crm)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b'{\n  "edition": "plus",\n  \xff}', "org.json:3: the org file is not UTF-8 (invalid"
         " start byte at byte 3 of the line)"),
        (b'{\n  "edition": "plus",\n  nope}', "org.json:3: the org file is not JSON: Expecting"
         " property name enclosed in double quotes (column 3)"),
        (b"\n", "org.json: the org file is empty: it holds one JSON object, {...}"),
    ],
)  # fmt: skip
def test_an_org_file_that_cannot_be_read_says_where(tmp_path: Path, data: bytes, said: str) -> None:
    """They said Python's words, `'utf-8' codec can't decode byte 0xff in position 26` and
    `Expecting value: line 1 column 1 (char 0)`, and never the line."""
    org = tmp_path / "org.json"
    org.write_bytes(data)
    r = mrules("crm", "load", org, "--crm", tmp_path / "c.crm.db")
    assert r.exit_code == 2, r.output
    assert r.stderr == f"mrules: error: {tmp_path}/{said}\n"
    assert not (tmp_path / "c.crm.db").exists()
