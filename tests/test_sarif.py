"""SARIF and GitHub annotations from `mrules lint`: valid against the vendored SARIF 2.1.0
schema, with the tool version, help links that land on a section of docs/diagnostics.md,
related locations and paths relative to SRCROOT; annotations escaped as GitHub reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from mrules import __version__
from mrules.cli import main
from mrules.diagnostics import DOCS_URL, PROJECT_URL, _artifact

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests" / "sarif" / "sarif-schema-2.1.0.json").read_text("utf-8"))
RULES = """\
list "MQL"
list "MQL"
form "Demo"
on submit of form "Demo" { add to list "MQl" }
automation rule "A" priority 1 { when all { score > 1 } then { score +1 } }
automation rule "B" priority 1 { when all { score > 2 } then { score +1 } }
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my rules").mkdir()
    (tmp_path / "my rules" / "main.mr").write_text(RULES, "utf-8")
    return tmp_path


def sarif(*args: str) -> dict:
    result = CliRunner().invoke(main, ["lint", "--format", "sarif", *args])
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)


def anchors() -> set[str]:
    doc = (ROOT / "docs" / "diagnostics.md").read_text("utf-8")
    return {
        re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^## (.+)$", doc, re.MULTILINE)
    }


def test_sarif_validates_against_the_2_1_0_schema(project: Path) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(sarif("my rules"))


def test_a_schema_violation_is_caught() -> None:  # the validation above can fail
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate({"version": "2.1.0", "runs": [{}]})


def test_tool_version_information_and_help_links(project: Path) -> None:
    driver = sarif("my rules")["runs"][0]["tool"]["driver"]
    assert driver["version"] == __version__
    assert driver["informationUri"] == PROJECT_URL and "invalid" not in PROJECT_URL
    ids = [r["id"] for r in driver["rules"]]
    assert ids == ["MR101", "MR103", "MR312"]
    known = anchors()
    for rule in driver["rules"]:
        base, anchor = rule["helpUri"].split("#")
        assert base == f"{DOCS_URL}/diagnostics.md"
        assert anchor in known, anchor
        assert anchor.startswith(rule["id"].lower() + "-")
    assert {r["defaultConfiguration"]["level"] for r in driver["rules"]} == {"error", "warning"}


def test_paths_are_relative_to_srcroot_and_related_locations_kept(project: Path) -> None:
    run = sarif("my rules")["runs"][0]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == project.resolve().as_uri() + "/"
    dup = next(r for r in run["results"] if r["ruleId"] == "MR101")
    where = dup["locations"][0]["physicalLocation"]
    assert where["artifactLocation"] == {"uri": "my%20rules/main.mr", "uriBaseId": "SRCROOT"}
    assert where["region"]["startLine"] == 2
    [related] = dup["relatedLocations"]
    assert related["message"]["text"] == "first declared here"
    assert related["physicalLocation"]["region"]["startLine"] == 1
    assert run["tool"]["driver"]["rules"][dup["ruleIndex"]]["id"] == "MR101"


def test_library_and_absolute_paths() -> None:
    assert _artifact("library/pardot-default-scoring.mr") == {
        "uri": "pardot-default-scoring.mr",
        "uriBaseId": "MRULES_LIBRARY",
    }
    assert _artifact("/tmp/a b.mr") == {"uri": "file:///tmp/a%20b.mr"}
    assert _artifact("<stdin>") == {"uri": "%3Cstdin%3E"}


def test_a_projects_own_library_folder_is_relative_to_srcroot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule folder named `library` at the root of a repository is the project's own:
    its files are at SRCROOT, not taken for the library bundled with mrules (code
    scanning looked for `x.mr` in the installed package, and found nothing)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "x.mr").write_text('list "A"\nlist "A"\n', "utf-8")
    run = sarif("library")["runs"][0]
    jsonschema.Draft4Validator(SCHEMA).validate({"version": "2.1.0", "runs": [run]})
    [result] = run["results"]
    where = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert where == {"uri": "library/x.mr", "uriBaseId": "SRCROOT"}
    related = result["relatedLocations"][0]["physicalLocation"]["artifactLocation"]
    assert related == {"uri": "library/x.mr", "uriBaseId": "SRCROOT"}
    assert set(run["originalUriBaseIds"]) == {"SRCROOT"}


def test_a_bundled_library_file_is_relative_to_mrules_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "main.mr").write_text(
        'include "library/pardot-default-grading"\n'
        'grading profile "Default" {\n  criterion "Industry" 2/3\n}\n',
        "utf-8",
    )
    run = sarif("main.mr")["runs"][0]
    places = [
        loc["physicalLocation"]["artifactLocation"]
        for r in run["results"]
        for loc in (*r["locations"], *r.get("relatedLocations", []))
    ]
    assert {"uri": "pardot-default-grading.mr", "uriBaseId": "MRULES_LIBRARY"} in places
    assert {"uri": "main.mr", "uriBaseId": "SRCROOT"} in places
    assert set(run["originalUriBaseIds"]) == {"SRCROOT", "MRULES_LIBRARY"}


def test_sarif_file_alongside_annotations(project: Path) -> None:
    result = CliRunner().invoke(
        main, ["lint", "my rules", "--format", "github", "--sarif-file", "out.sarif"]
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("::error file=my rules/main.mr,line=2,")
    jsonschema.Draft4Validator(SCHEMA).validate(json.loads(Path("out.sarif").read_text()))


def test_sarif_file_dash_is_standard_output(project: Path) -> None:
    """`--sarif-file -` is standard output, as `-` is for every command (it wrote a file
    named `-`): with `--format sarif` the report is printed once; with another format,
    which standard output takes already, it is refused before linting."""
    result = CliRunner().invoke(
        main, ["lint", "my rules", "--format", "sarif", "--sarif-file", "-"]
    )
    assert result.exit_code == 1 and not Path("-").exists()
    jsonschema.Draft4Validator(SCHEMA).validate(json.loads(result.stdout))
    result = CliRunner().invoke(main, ["lint", "my rules", "--sarif-file", "-"])
    assert result.exit_code == 2 and not Path("-").exists() and result.stdout == ""
    assert "--sarif-file -: standard output takes the text report" in result.stderr


def test_sarif_file_in_a_missing_folder_is_a_usage_error(project: Path) -> None:
    """Exit 2 before linting, as every output in a missing folder (it was exit 4 after)."""
    result = CliRunner().invoke(main, ["lint", "my rules", "--sarif-file", "nodir/out.sarif"])
    assert result.exit_code == 2
    assert "nodir does not exist; create it first" in result.stderr
    assert result.stdout == ""  # refused before any linting


def test_github_annotations_escape_file_names_and_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a,b:c%.mr").write_text(
        'tag "x"\nform "F"\non submit of form "F" { add tag "50%" }\n', "utf-8"
    )
    result = CliRunner().invoke(main, ["lint", "a,b:c%.mr", "--format", "github"])
    [line] = result.stdout.splitlines()
    assert line.startswith("::warning file=a%2Cb%3Ac%25.mr,line=3,col=33,")
    assert "title=MR109::unknown tag '50%25'" in line


def test_github_annotations_name_files_from_the_workspace_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub places an annotation by its path from the repository root (the workspace):
    lint run in a sub-folder (`working-directory: marketing`) named `rules/a.mr`, which
    is not the file, and the annotation missed its line of the pull request."""
    project = tmp_path / "repo" / "marketing"
    (project / "rules").mkdir(parents=True)
    (project / "rules" / "a.mr").write_text('list "A"\nlist "A"\n', "utf-8")
    (tmp_path / "other.mr").write_text('list "B"\nlist "B"\n', "utf-8")
    monkeypatch.chdir(project)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "repo"))
    result = CliRunner().invoke(main, ["lint", "rules", "--format", "github"])
    assert result.stdout.startswith("::error file=marketing/rules/a.mr,line=2,"), result.stdout
    text = CliRunner().invoke(main, ["lint", "rules"])  # the other formats: as before
    assert text.stdout.startswith("rules/a.mr:2:6: error[MR101]")
    outside = CliRunner().invoke(main, ["lint", str(tmp_path / "other.mr"), "--format", "github"])
    assert outside.stdout.startswith(f"::error file={tmp_path.resolve().as_posix()}/other.mr,")
    monkeypatch.delenv("GITHUB_WORKSPACE")  # not in a workflow: from the working folder
    result = CliRunner().invoke(main, ["lint", "rules", "--format", "github"])
    assert result.stdout.startswith("::error file=rules/a.mr,line=2,"), result.stdout


def _srcroot_and_uris(doc: dict) -> tuple[str, list[str]]:
    run = doc["runs"][0]
    locations = [
        loc["physicalLocation"]["artifactLocation"]
        for res in run["results"]
        for loc in [*res["locations"], *res.get("relatedLocations", [])]
    ]
    assert all(loc["uriBaseId"] == "SRCROOT" for loc in locations), locations
    return run["originalUriBaseIds"]["SRCROOT"]["uri"], [loc["uri"] for loc in locations]


def test_sarif_names_files_from_the_workspace_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code scanning reads a SARIF path from the repository root (it does not resolve
    `originalUriBaseIds`): lint run in a sub-folder (`working-directory: marketing`) gave
    `rules/a.mr`, which is not the file, and the alerts missed it. In a workflow, SRCROOT
    is the workspace, when lint runs inside it; the file of --sarif-file too."""
    repo = tmp_path / "repo"
    project = repo / "marketing"
    (project / "rules").mkdir(parents=True)
    (project / "rules" / "a.mr").write_text('list "A"\nlist "A"\n', "utf-8")
    monkeypatch.chdir(project)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(repo))
    doc = sarif("rules")
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    in_repo = (repo.resolve().as_uri() + "/", ["marketing/rules/a.mr"] * 2)
    assert _srcroot_and_uris(doc) == in_repo
    result = CliRunner().invoke(
        main, ["lint", "rules", "--format", "github", "--sarif-file", "../mrules.sarif"]
    )
    assert result.exit_code == 1, result.output
    assert _srcroot_and_uris(json.loads((repo / "mrules.sarif").read_text("utf-8"))) == in_repo
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "elsewhere"))  # lint runs outside it
    assert _srcroot_and_uris(sarif("rules")) == (
        project.resolve().as_uri() + "/",
        ["rules/a.mr"] * 2,
    )
    monkeypatch.delenv("GITHUB_WORKSPACE")  # not in a workflow: from the working folder
    assert _srcroot_and_uris(sarif("rules")) == (
        project.resolve().as_uri() + "/",
        ["rules/a.mr"] * 2,
    )


def test_github_annotations_over_several_lines_have_no_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub takes `col` and `endColumn` on one line only (its runner logs the command
    as invalid and drops them, the checks API refuses them): a span over several lines
    (a conditional group) is given by its lines alone; one on a line keeps its columns."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.mr").write_text(
        'form "F"\non submit of form "F" {\n  if any {\n    score > 10\n    score < 2\n'
        '  } { add tag "t" }\n}\ntag "t"\n',
        "utf-8",
    )
    result = CliRunner().invoke(main, ["lint", "a.mr", "--format", "github"])
    assert result.exit_code == 1, result.output
    [line] = result.stdout.splitlines()
    assert line.startswith("::error file=a.mr,line=3,endLine=6,title=MR222::"), line
    (tmp_path / "a.mr").write_text('list "A"\nlist "A"\n', "utf-8")
    result = CliRunner().invoke(main, ["lint", "a.mr", "--format", "github"])
    assert result.stdout.startswith("::error file=a.mr,line=2,col=6,endLine=2,endColumn=9,")


def test_sarif_names_a_file_beside_the_working_folder_from_the_workspace_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file outside the folder lint runs in (`lint ../other` in `marketing`) but inside
    the workspace was an absolute `file://` URI of the runner's disk, where annotations
    name it `other/a.mr`: it is a path from SRCROOT, the repository root, too."""
    repo = tmp_path / "repo"
    (repo / "marketing").mkdir(parents=True)
    (repo / "other").mkdir()
    (repo / "other" / "a.mr").write_text('list "A"\nlist "A"\n', "utf-8")
    (tmp_path / "outside.mr").write_text('list "B"\nlist "B"\n', "utf-8")
    monkeypatch.chdir(repo / "marketing")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(repo))
    doc = sarif("../other")
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    assert _srcroot_and_uris(doc) == (repo.resolve().as_uri() + "/", ["other/a.mr"] * 2)
    [loc] = sarif(str(tmp_path / "outside.mr"))["runs"][0]["results"][0]["locations"]
    assert loc["physicalLocation"]["artifactLocation"] == {
        "uri": (tmp_path / "outside.mr").resolve().as_uri()
    }
