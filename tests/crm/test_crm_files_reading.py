"""How `mrules crm load` reads a folder of exports: each row or file it cannot take is
said and the others load; and how `crm export` lists objects."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"


def mrules(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def exported(store: Path, *objects: str) -> list[tuple[str, str]]:
    args: list[str | Path] = ["crm", "export", "--store", store]
    for o in objects:
        args += ["--object", o]
    result = mrules(*args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return [(r["attributes"]["type"], r.get("Email") or r["Id"]) for r in rows]


def test_a_folder_of_odd_files_loads_every_row_it_can(tmp_path: Path) -> None:
    d = tmp_path / "crm"
    shutil.copytree(SEED, d)
    with (d / "Lead.csv").open("a", encoding="utf-8") as f:
        f.write("l1,A,Co,a@x.example,,,,,,,,one too many\n")  # line 5
        f.write("l2,B\n")  # line 6: fewer values
        f.write("l3,Cy,Cole,Co,c@x.example,,,Open - Not Contacted,sam,,2026-10-20T10:00:00Z\n")
    users = list(csv.DictReader((d / "User.csv").open(encoding="utf-8")))
    (d / "User.csv").unlink()  # as JSON Lines, a blank line between two rows
    (d / "User.jsonl").write_text(
        '{"Id": "u0", "Id": "u00"}\n'  # a key twice: this row is refused, not the rest
        + '{"Id": "u1", "LastName": NaN}\n'  # no JSON value: the same
        + json.dumps(users[0])
        + "\n\n"
        + "".join(json.dumps(u) + "\n" for u in users[1:]),
        "utf-8",
    )
    (d / "Task.csv").write_text("", "utf-8")  # empty: not even a header
    (d / "Aaa.csv").write_text("x\n", "utf-8")  # two files named after no object
    (d / "Bbb.csv").write_text("x\n", "utf-8")
    store = tmp_path / "g.db"
    # Lead.csv given alone, then again in its folder: the folder's other files after it
    result = mrules("crm", "load", d / "Lead.csv", d, "--store", store)
    assert result.exit_code == 3, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith(str(d))]
    unknown = (
        ": a file is named after its object (Lead.jsonl, Contact.csv), or after a custom"
        " object org.json declares; none of its rows is loaded"
    )
    assert said == [
        f"{d / 'Aaa.csv'}: no object named 'Aaa'{unknown}",
        f"{d / 'Bbb.csv'}: no object named 'Bbb'{unknown}",
        f"{d / 'Lead.csv'}:5: more values than the header has columns",
        f"{d / 'Lead.csv'}:6: fewer values than the header has columns",
        f'{d / "User.jsonl"}:1: the field "Id" is given twice: the row is refused',
        f"{d / 'User.jsonl'}:2: not JSON: NaN is no JSON value (write a number, or null for"
        " none): the row is refused",
    ]
    assert f"{d / 'Lead.csv'} is given more than once: loaded once" in result.stderr
    assert "4 rows refused, 2 files not loaded; the others loaded" in result.stderr
    assert "3 User," in result.stdout and "4 Lead," in result.stdout
    assert "4 OpportunityContactRole," in result.stdout and "0 Task " in result.stdout
    assert ("Lead", "c@x.example") in exported(store, "Lead")
    # the same object asked twice is exported once, and the next one still
    both = exported(store, "Lead", "Lead", "User")
    assert [kind for kind, _ in both] == ["Lead"] * 4 + ["User"] * 5


def load_one(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str]:
    """A folder holding only the file `name` (any other file it held gone), `crm load` of
    it (exit 3 asked: the file has something refused), and the file's path and what the
    load said on standard error."""
    d = tmp_path / "crm"
    d.mkdir(exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    (d / name).write_bytes(data)
    result = mrules("crm", "load", d, "--store", tmp_path / "g.db")
    assert result.exit_code == 3, result.output
    return d / name, result.stderr


def test_a_byte_not_utf8_is_placed_by_its_line_and_byte(tmp_path: Path) -> None:
    path, said = load_one(tmp_path, "Lead.csv", b"Id,LastName,Company\nl1,Bl\xe9,Co\n")
    assert (
        f"{path}:2: not UTF-8 (invalid continuation byte at byte 6 of the line):"
        " none of this file's rows is loaded"
    ) in said
    path, said = load_one(tmp_path, "Lead.csv", b"\xffId,LastName,Company\n")
    assert f"{path}:1: not UTF-8 (invalid start byte at byte 1 of the line)" in said
    # a file that starts with a blank line counts it
    path, said = load_one(tmp_path, "Lead.jsonl", b'\n{"LastName": "Bl\xe9"}\n')
    assert f"{path}:2: not UTF-8 (invalid continuation byte at byte 17 of the line)" in said


def test_an_export_file_or_org_file_that_cannot_be_read_is_said_in_words(
    tmp_path: Path,
) -> None:
    d = tmp_path / "crm"
    d.mkdir()
    shutil.copy(SEED / "User.csv", d)
    # a file that is there and cannot be read: a link to /proc/self/mem (reading it at
    # offset 0 fails with EIO), as a disk's read error would
    (d / "Lead.csv").symlink_to("/proc/self/mem")
    result = mrules("crm", "load", d, "--store", tmp_path / "g.db")
    assert result.exit_code == 3, result.output
    assert f"{d / 'Lead.csv'}: cannot read: Input/output error\n" in result.stderr
    assert "1 file not loaded; the others loaded" in result.stderr
    assert "loaded 3 User, 0 Lead" in result.stdout
    org = tmp_path / "org"
    org.mkdir()
    (org / "org.json").symlink_to("/proc/self/mem")
    result = mrules("crm", "load", org, "--store", tmp_path / "h.db")
    assert result.exit_code == 2, result.output
    assert f"{org / 'org.json'}: cannot read the org file: Input/output error" in (result.stderr)


def test_a_header_naming_a_field_twice_past_an_empty_cell_is_refused(tmp_path: Path) -> None:
    path, said = load_one(tmp_path, "Lead.csv", b"Id,,LastName,Company,lastname\nl1,,A,Co,B\n")
    assert (
        f'{path}:1: the header names the field "LastName" twice, in columns 3 and 5'
        ' (as "LastName" and "lastname"): none of this file\'s rows is loaded'
    ) in said


def test_a_deleted_campaigns_member_statuses_are_exported_with_it(tmp_path: Path) -> None:
    store = tmp_path / "g.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    changes = tmp_path / "del.jsonl"
    changes.write_text('{"at": "2026-11-03T10:00:00Z", "op": "delete", "id": "camp-webinar"}\n')
    assert mrules("crm", "apply-changes", changes, "--store", store).exit_code == 0
    webinar = "7015e0000000002AAA"
    assert ("Campaign", webinar) in exported(store, "Campaign")  # deleted, still exported
    result = mrules("crm", "export", "--store", store, "--object", "CampaignMemberStatus")
    statuses = [json.loads(line) for line in result.stdout.splitlines()]
    # its statuses go with it: loaded back, the campaign has them (the export is whole)
    assert [(s["CampaignId"], s["Label"]) for s in statuses if s["CampaignId"] == webinar] == [
        (webinar, "Registered"),
        (webinar, "Attended"),
    ]
