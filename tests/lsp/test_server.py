"""`mrules lsp` over its protocol: a subprocess, a pygls client, real JSON-RPC on stdio."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types

ROOT = Path(__file__).resolve().parents[2]
DECLS = """\
field company_size: picklist ["1-10", "11-50", "200+"]
list "MQL"
list "Customers"
form "Demo \U0001f389"
user "alan@getcloudy.com"
"""
RULES = """\
on submit of form "Demo \U0001f389" {
  add to list "MQL"
  assign to user "alan@getcloudy.com"
}

automation rule "Big" priority 10 {
  when all { company_size is "200+" }
  then { add to list "MQL" }
}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "00-decls.mr").write_text(DECLS, "utf-8")
    (rules / "10-rules.mr").write_text(RULES, "utf-8")
    return tmp_path


def pos(text: str, needle: str, delta: int = 0) -> types.Position:
    """The LSP position (UTF-16 columns) of `needle` in `text`."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    col_text = text[text.rfind("\n", 0, offset) + 1 : offset]
    return types.Position(line, len(col_text.encode("utf-16-le")) // 2)


def completions(s, uri: str, at: types.Position) -> list[types.CompletionItem]:
    """What the server offers at `at` in the document `uri`."""
    got = s.run(
        s.client.text_document_completion_async(
            types.CompletionParams(types.TextDocumentIdentifier(uri), at)
        )
    )
    return list(got.items)


def test_capabilities(session_factory, project: Path) -> None:
    s = session_factory(project)
    caps = s.init.capabilities
    assert caps.hover_provider and caps.definition_provider and caps.references_provider
    assert caps.rename_provider and caps.document_symbol_provider
    assert caps.document_formatting_provider and caps.code_action_provider
    assert caps.completion_provider is not None
    assert caps.position_encoding in (None, types.PositionEncodingKind.Utf16)
    assert s.init.server_info.name == "mrules"


def test_diagnostics_as_you_type_in_an_unsaved_buffer(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(uri) == []
    before = len(s.events)
    broken = RULES.replace('add to list "MQL" }', 'add to list "MQl" }')
    s.change(uri, broken)
    [d] = s.diagnostics_of(uri, before)
    assert d.code == "MR103" and d.source == "mrules"
    assert "did you mean 'MQL'?" in d.message
    assert d.range.start == pos(broken, '"MQl"')
    assert d.range.end == pos(broken, '"MQl"', 5)
    assert d.code_description.href.endswith("diagnostics.md#mr103-unknown-list")
    # the file on disk is unchanged: the server checked the buffer
    assert (project / "rules" / "10-rules.mr").read_text("utf-8") == RULES


def test_the_whole_folder_is_the_program(session_factory, project: Path) -> None:
    s = session_factory(project)
    decls = s.open("rules/00-decls.mr")
    rules = s.uri("rules/10-rules.mr")
    s.diagnostics_of(decls)
    s.diagnostics_of(rules)  # the first check publishes for every file of the folder
    before = len(s.events)
    s.change(decls, DECLS.replace('list "MQL"\n', ""))  # the other file's uses break
    got = s.diagnostics_of(rules, before)
    assert [d.code for d in got] == ["MR103", "MR103"]


def test_utf16_positions_after_a_non_bmp_character(session_factory, project: Path) -> None:
    s = session_factory(project)
    text = 'on submit of form "Demo \U0001f389" { add to list "MQl" }\n'
    (project / "rules" / "10-rules.mr").write_text(text, "utf-8")
    uri = s.open("rules/10-rules.mr")
    [d] = s.diagnostics_of(uri)
    # the emoji is 2 UTF-16 units: '"MQl"' starts at character 42, not 41
    assert d.range.start == types.Position(0, 42) == pos(text, '"MQl"')
    hov = s.run(
        s.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(0, 43))
        )
    )
    assert hov is not None and "unknown" not in hov.contents.value
    assert hov.range.start == types.Position(0, 42)


def test_hover_on_names_fields_and_keywords(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")

    def hover(needle: str, delta: int = 1) -> str:
        h = s.run(
            s.client.text_document_hover_async(
                types.HoverParams(types.TextDocumentIdentifier(uri), pos(RULES, needle, delta))
            )
        )
        return h.contents.value if h else ""

    assert "declared at rules/00-decls.mr:2" in hover('"MQL"')
    field = hover("company_size")
    assert "picklist" in field and '"200+"' in field and "00-decls.mr:1" in field
    assert "least one criterion" not in hover("all {") and "Every criterion" in hover("all {")
    assert "automation rule" in hover("automation").lower()


def test_go_to_definition_and_references(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    locs = s.run(
        s.client.text_document_definition_async(
            types.DefinitionParams(types.TextDocumentIdentifier(uri), pos(RULES, '"MQL"', 2))
        )
    )
    [loc] = locs
    assert loc.uri == s.uri("rules/00-decls.mr")
    assert loc.range.start == types.Position(1, 5)
    refs = s.run(
        s.client.text_document_references_async(
            types.ReferenceParams(
                text_document=types.TextDocumentIdentifier(uri),
                position=pos(RULES, '"MQL"', 2),
                context=types.ReferenceContext(include_declaration=True),
            )
        )
    )
    assert sorted((r.uri.rsplit("/", 1)[1], r.range.start.line) for r in refs) == [
        ("00-decls.mr", 1),
        ("10-rules.mr", 1),
        ("10-rules.mr", 7),
    ]


def test_rename_a_declared_name_everywhere(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    edit = s.run(
        s.client.text_document_rename_async(
            types.RenameParams(
                types.TextDocumentIdentifier(uri), pos(RULES, '"MQL"', 2), 'Marketing "Q" Leads'
            )
        )
    )
    changes = edit.changes
    assert sorted(len(v) for v in changes.values()) == [1, 2]
    assert {e.new_text for v in changes.values() for e in v} == {'"Marketing \\"Q\\" Leads"'}
    field = s.run(
        s.client.text_document_rename_async(
            types.RenameParams(
                types.TextDocumentIdentifier(uri), pos(RULES, "company_size"), "size"
            )
        )
    )
    assert {e.new_text for v in field.changes.values() for e in v} == {"size"}


def test_prepare_rename_offers_the_name_without_its_quotes(session_factory, project: Path) -> None:
    """An editor that asks first (VS Code, Neovim) offers the placeholder as the text to
    edit: the name itself. It offered the text of the range, quotes and escapes
    included, and rename quoted what the user typed again."""
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            rename=types.RenameClientCapabilities(prepare_support=True)
        )
    )
    s = session_factory(project, capabilities=caps)
    assert s.init.capabilities.rename_provider.prepare_provider
    text = RULES.replace('"MQL"', '"Big \\"Q\\""')
    (project / "rules" / "00-decls.mr").write_text(DECLS.replace('"MQL"', '"Big \\"Q\\""'), "utf-8")
    uri = s.open("rules/10-rules.mr", text)
    for needle, name in [('"Demo', "Demo \U0001f389"), ('"Big', 'Big "Q"')]:
        at = pos(text, needle, 2)
        prepared = s.run(
            s.client.text_document_prepare_rename_async(
                types.PrepareRenameParams(types.TextDocumentIdentifier(uri), at)
            )
        )
        assert prepared.placeholder == name
        assert prepared.range.start == pos(text, needle)
        written = 'form "Demo \U0001f389"' if needle == '"Demo' else 'list "Big \\"Q\\""'
        assert prepared.range.end == pos(text, needle, len(written) - written.index('"'))
        edit = s.run(
            s.client.text_document_rename_async(
                types.RenameParams(types.TextDocumentIdentifier(uri), at, prepared.placeholder)
            )
        )
        assert {e.new_text for v in edit.changes.values() for e in v} == {
            written[written.index('"') :]
        }


def test_rename_refuses_a_bad_field_name(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    with pytest.raises(Exception, match="not a field name"):
        s.run(
            s.client.text_document_rename_async(
                types.RenameParams(
                    types.TextDocumentIdentifier(uri), pos(RULES, "company_size"), "Company Size"
                )
            )
        )


def test_rename_refuses_a_name_the_language_cannot_hold(session_factory, project: Path) -> None:
    """A NUL or a lone surrogate is an error in a string (MR015), and a carriage return
    a line break to the editor: a rename to one broke every file it edited."""
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    for new in ("MQ\x00L", "MQ\ud800L", "MQ\rL"):
        with pytest.raises(Exception, match="a name is one line of text"):
            s.run(
                s.client.text_document_rename_async(
                    types.RenameParams(types.TextDocumentIdentifier(uri), pos(RULES, '"MQL"'), new)
                )
            )


@pytest.mark.parametrize(
    "needle, new, why",
    [
        ('"MQL"', "Customers", "list 'Customers' is already declared at rules/00-decls.mr:3"),
        ("company_size", "email", "field 'email' is already a Pardot default field"),
        ("company_size", "score", "'score' starts a criterion"),
        ("company_size", "days", "'days' starts a criterion"),
    ],
)
def test_rename_refuses_a_name_that_is_taken_or_a_criterion_keyword(
    session_factory, project: Path, needle: str, new: str, why: str
) -> None:
    # A rename to a name already declared merged the two (`list "Customers"` declared
    # twice, every use of both one list); a field renamed to `score`, `days`... could
    # no longer be tested (MR205): the rule set was broken by one rename, without a word.
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    with pytest.raises(Exception, match=re.escape(why)):
        s.run(
            s.client.text_document_rename_async(
                types.RenameParams(types.TextDocumentIdentifier(uri), pos(RULES, needle, 1), new)
            )
        )
    same = s.run(  # renaming a name to itself is no clash
        s.client.text_document_rename_async(
            types.RenameParams(types.TextDocumentIdentifier(uri), pos(RULES, '"MQL"', 1), "MQL")
        )
    )
    assert {e.new_text for v in same.changes.values() for e in v} == {'"MQL"'}


def test_completion_keywords_names_and_values(session_factory, project: Path) -> None:
    s = session_factory(project)
    text = RULES
    uri = s.open("rules/10-rules.mr", text)

    def labels(needle: str, delta: int) -> list[str]:
        result = s.run(
            s.client.text_document_completion_async(
                types.CompletionParams(types.TextDocumentIdentifier(uri), pos(text, needle, delta))
            )
        )
        return [i.label for i in result.items]

    assert labels('company_size is "', len('company_size is "')) == ["1-10", "11-50", "200+"]
    text = RULES.replace('company_size is "200+"', 'company_size is "1')  # unclosed, typed
    s.change(uri, text)
    assert labels('company_size is "1', len('company_size is "1')) == ["1-10", "11-50"]
    text = RULES
    s.change(uri, text)
    assert labels('add to list "MQL" }', len("add to list ")) == ["Customers", "MQL"]
    assert labels('assign to user "', len("assign to user ")) == ["alan@getcloudy.com"]
    kw = labels("when all {", len("when all {"))
    assert {"score", "not", "any", "in", "visited"} <= set(kw) and "company_size" in kw
    assert "then" not in kw


@pytest.mark.parametrize("typed, cursor", [('"M"', 2), ('""', 1), ('"MQ\\"L"', 2)])
def test_a_name_completed_in_a_closed_string_replaces_the_closing_quote(
    session_factory, project: Path, typed: str, cursor: int
) -> None:
    # Editors close a quote as it is typed (the VS Code extension does): `add to list "M"`
    # with the cursor after M. The completion replaced only `"M`, so accepting "MQL" made
    # `"MQL""`, a syntax error. It now replaces the string up to its closing quote.
    s = session_factory(project)
    text = RULES.replace('then { add to list "MQL" }', f"then {{ add to list {typed} }}")
    uri = s.open("rules/10-rules.mr", text)
    at = pos(text, f"list {typed} }}", len("list ") + cursor)
    got = completions(s, uri, at)
    [item] = [i for i in got if i.label == "MQL"]
    line = text.splitlines()[at.line]
    edit = item.text_edit
    done = line[: edit.range.start.character] + edit.new_text + line[edit.range.end.character :]
    assert done == '  then { add to list "MQL" }'
    assert edit.range.start.character <= at.character <= edit.range.end.character


def test_document_symbols(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/00-decls.mr")
    syms = s.run(
        s.client.text_document_document_symbol_async(
            types.DocumentSymbolParams(types.TextDocumentIdentifier(uri))
        )
    )
    assert [x.name for x in syms] == [
        "field company_size",
        "list MQL",
        "list Customers",
        "form Demo \U0001f389",
        "user alan@getcloudy.com",
    ]


def test_formatting_through_fmt(session_factory, project: Path) -> None:
    s = session_factory(project)
    uri = s.open("rules/00-decls.mr", 'list   "MQL"\nlist "Customers"')
    edits = s.run(
        s.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                types.TextDocumentIdentifier(uri), types.FormattingOptions(2, True)
            )
        )
    )
    [edit] = edits
    assert edit.new_text == 'list "MQL"\nlist "Customers"\n'
    assert edit.range.start == types.Position(0, 0)
    s.change(uri, 'list "MQL" @')  # syntax errors: nothing to change
    edits = s.run(
        s.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                types.TextDocumentIdentifier(uri), types.FormattingOptions(2, True)
            )
        )
    )
    assert not edits


def test_formatting_leaves_a_suppression_it_would_split_alone(
    session_factory, tmp_path: Path
) -> None:
    """As `mrules fmt` does: a bare ignore after a one-line block silences both undeclared
    tags; spread over lines, one comment would cover only the first, and a warning would
    appear after formatting in the editor. The document is left as it is."""
    text = 'form "F"\ntag "t"\n'
    text += 'on submit of form "F" { add tag "u" add tag "v" }  # mrules: ignore\n'
    (tmp_path / "a.mr").write_text(text, "utf-8")
    s = session_factory(tmp_path)
    uri = s.open("a.mr", text)
    assert s.diagnostics_of(uri) == []
    edits = s.run(
        s.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                types.TextDocumentIdentifier(uri), types.FormattingOptions(2, True)
            )
        )
    )
    assert not edits
    fmt = subprocess.run(
        [sys.executable, "-m", "mrules", "fmt", "--check", str(tmp_path / "a.mr")],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 1 and "a comment covers one line" in fmt.stderr


def test_code_action_fixes_a_misspelt_name(session_factory, project: Path) -> None:
    s = session_factory(project)
    broken = RULES.replace("company_size is", "compnay_size is").replace(
        'add to list "MQL" }', 'add to list "MQl" }'
    )
    uri = s.open("rules/10-rules.mr", broken)
    diags = s.diagnostics_of(uri)
    assert [d.code for d in diags] == ["MR102", "MR103"]
    fixes = {}
    for d in diags:
        actions = s.run(
            s.client.text_document_code_action_async(
                types.CodeActionParams(
                    types.TextDocumentIdentifier(uri), d.range, types.CodeActionContext([d])
                )
            )
        )
        [action] = actions
        assert action.kind == types.CodeActionKind.QuickFix
        [edit] = action.edit.changes[uri]
        fixes[d.code] = edit.new_text
    assert fixes == {"MR102": "company_size", "MR103": '"MQL"'}


def test_config_and_suppressions_apply(session_factory, project: Path) -> None:
    """Warnings are filtered by the configuration and suppression comments; errors never."""
    (project / "mrules.toml").write_text('ignore = ["MR109"]\n', "utf-8")
    s = session_factory(project)
    second = 'automation rule "Small" priority 10 {  # mrules: ignore[MR312]\n'
    second += '  when all { company_size is "1-10" }\n  then { add tag "small" }\n}\n'
    uri = s.open("rules/10-rules.mr", RULES + second)
    assert s.diagnostics_of(uri) == []
    # an error stays, whatever the configuration or a comment says: `run` refuses it
    (project / "mrules.toml").write_text('ignore = ["MR103", "MR109"]\n', "utf-8")
    s = session_factory(project)
    text = RULES.replace('add to list "MQL" }', 'add to list "MQl" }  # mrules: ignore[MR103]')
    uri = s.open("rules/10-rules.mr", text)
    assert sorted(d.code for d in s.diagnostics_of(uri)) == ["MR030", "MR103"]


def test_formatting_a_document_that_cannot_be_read_changes_nothing(
    session_factory, project: Path
) -> None:
    """Formatting a URI the editor never opened reads the file: a missing file, a
    folder or bytes that are not UTF-8 give no edits, not an error with a traceback."""
    s = session_factory(project)
    (project / "latin1.mr").write_bytes(b'list "Caf\xe9"\n')
    (project / "folder.mr").mkdir()
    for rel in ("gone.mr", "latin1.mr", "folder.mr"):
        edits = s.run(
            s.client.text_document_formatting_async(
                types.DocumentFormattingParams(
                    types.TextDocumentIdentifier(s.uri(rel)), types.FormattingOptions(2, True)
                )
            )
        )
        assert edits is None, rel
    uri = s.open("rules/00-decls.mr", 'list   "MQL"')  # and the server still formats
    edits = s.run(
        s.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                types.TextDocumentIdentifier(uri), types.FormattingOptions(2, True)
            )
        )
    )
    assert [e.new_text for e in edits] == ['list "MQL"\n']


def test_a_broken_workspace_never_kills_the_server(session_factory, tmp_path: Path) -> None:
    s = session_factory(tmp_path)
    uri = s.open("new.mr", 'list "A" @\n\x00 "\udcff')  # not on disk, garbage
    diags = s.diagnostics_of(uri)
    assert diags and all(d.source == "mrules" for d in diags)
    hov = s.run(
        s.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(5, 99))
        )
    )
    assert hov is None


def test_the_example_opens_clean(session_factory, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "getcloudy" / "rules", tmp_path / "rules")
    s = session_factory(tmp_path)
    uri = s.open("rules/30-automation.mr")
    assert s.diagnostics_of(uri) == []


def test_a_configuration_change_is_applied(session_factory, project: Path) -> None:
    s = session_factory(project)
    warned = RULES.replace('add to list "MQL" }', 'add to list "MQL"\n add tag "new" }')
    uri = s.open("rules/10-rules.mr", warned)
    assert [d.code for d in s.diagnostics_of(uri)] == ["MR109"]
    (project / "mrules.toml").write_text('ignore = ["MR109"]\n', "utf-8")
    before = len(s.events)
    s.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [
                types.FileEvent(
                    uri=(project / "mrules.toml").as_uri(), type=types.FileChangeType.Created
                )
            ]
        )
    )
    s.wait_for(lambda: any(u == uri for u, _ in s.events[before:]))
    assert s.diagnostics[uri] == []


def test_files_changed_on_disk_are_watched_when_the_client_lets_servers_ask(
    session_factory, project: Path
) -> None:
    """Neovim, Helix and Emacs report changes on disk only to a server that registers for
    them: a list deleted from a file on disk (a git checkout) left its uses clean until
    the next keystroke. The server asks for rule files and settings."""
    caps = types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                dynamic_registration=True
            )
        )
    )
    s = session_factory(project, capabilities=caps)
    uri = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(uri) == []
    s.wait_for(lambda: bool(s.registrations))
    [registration] = s.registrations
    assert registration.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES
    globs = {w["globPattern"] for w in registration.register_options["watchers"]}
    assert globs == {"**/*.mr", "**/mrules.toml", "**/pyproject.toml"}
    decls = project / "rules" / "00-decls.mr"
    decls.write_text(DECLS.replace('list "MQL"\n', ""), "utf-8")
    before = len(s.events)
    s.client.workspace_did_change_watched_files(  # what the client sends for that glob
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(uri=decls.as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    assert {d.code for d in s.diagnostics_of(uri, before)} == {"MR103"}


def test_no_registration_for_a_client_that_does_not_take_one(
    session_factory, project: Path
) -> None:
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(uri) == []
    s.run(s.client.shutdown_async(None))  # every message before it has been read
    s.shut_down = True
    assert s.registrations == []


def test_a_bad_configuration_is_shown_once_and_defaults_apply(
    session_factory, project: Path
) -> None:
    (project / "mrules.toml").write_text("ignores = 1\n", "utf-8")
    s = session_factory(project)
    shown = s.messages
    uri = s.open("rules/10-rules.mr", RULES.replace('"MQL" }', '"MQl" }'))
    assert [d.code for d in s.diagnostics_of(uri)] == ["MR103"]
    before = len(s.events)
    s.change(uri, RULES.replace('"MQL" }', '"MQx" }'))
    s.diagnostics_of(uri, before)  # the second check is done
    s.wait_for(lambda: bool(shown))
    assert len(shown) == 1 and "unknown key 'ignores'" in shown[0]


def test_a_bad_configuration_is_shown_once_beside_a_good_project(
    session_factory, tmp_path: Path
) -> None:
    """Two projects in one workspace, one with a bad mrules.toml: its error popped up again
    at each keystroke after a file of the other project was checked or hovered."""
    for name in ("bad", "good"):
        (tmp_path / name / "rules").mkdir(parents=True)
        (tmp_path / name / "rules" / "a.mr").write_text(DECLS, "utf-8")
    (tmp_path / "bad" / "mrules.toml").write_text("ignores = 1\n", "utf-8")
    s = session_factory(tmp_path)
    bad, good = s.open("bad/rules/a.mr"), s.open("good/rules/a.mr")
    s.diagnostics_of(bad)
    s.diagnostics_of(good)
    for n in range(3):
        before = len(s.events)
        s.change(bad, DECLS + "#" * n)
        s.diagnostics_of(bad, before)
        s.run(
            s.client.text_document_hover_async(
                types.HoverParams(types.TextDocumentIdentifier(good), types.Position(1, 1))
            )
        )
    s.shutdown()  # every message sent before it has been read
    assert len(s.messages) == 1 and "unknown key 'ignores'" in s.messages[0]


def test_a_file_that_cannot_be_read_is_shown_once(session_factory, project: Path) -> None:
    """One .mr file of the folder not UTF-8: lint says so, the server published nothing and
    said nothing. It shows the error once, and diagnostics come back once it is fixed."""
    (project / "rules" / "latin.mr").write_bytes(b'list "A\xe9"\n')
    s = session_factory(project)
    shown = s.messages
    uri = s.open("rules/10-rules.mr", RULES.replace('"MQL" }', '"MQl" }'))
    s.wait_for(lambda: bool(shown))
    s.change(uri, RULES.replace('"MQL" }', '"MQx" }'))
    (project / "rules" / "latin.mr").write_text('list "A"\n', "utf-8")
    before = len(s.events)
    s.change(uri, RULES.replace('"MQL" }', '"MQl" }'))
    assert [d.code for d in s.diagnostics_of(uri, before)] == ["MR103"]
    assert len(shown) == 1 and "latin.mr" in shown[0] and "UTF-8" in shown[0]


def test_code_action_removes_an_unused_suppression(session_factory, project: Path) -> None:
    s = session_factory(project)
    text = RULES.replace("priority 10 {", "priority 10 {  # mrules: ignore[MR101]")
    uri = s.open("rules/10-rules.mr", text)
    [d] = s.diagnostics_of(uri)
    assert d.code == "MR030"
    [action] = s.run(
        s.client.text_document_code_action_async(
            types.CodeActionParams(
                types.TextDocumentIdentifier(uri), d.range, types.CodeActionContext([d])
            )
        )
    )
    assert action.title == "Remove the unused suppression"
    [edit] = action.edit.changes[uri]
    assert edit.new_text == "" and edit.range == d.range == types.Range(
        pos(text, "# mrules"), pos(text, "[MR101]", 7)
    )


def test_a_file_in_a_hidden_folder_of_the_rule_root_is_checked(
    session_factory, project: Path
) -> None:
    """A rule folder's hidden folders (and virtual environments) are not part of its rule
    set (`mrules lint rules`); a file opened in one is its own folder's rule set, and is
    checked, not left without diagnostics."""
    (project / "mrules.toml").write_text('rules = ["rules"]\n', "utf-8")
    (project / "rules" / ".drafts").mkdir()
    draft = 'list "A"\nlist "A"\n'
    (project / "rules" / ".drafts" / "d.mr").write_text(draft, "utf-8")
    s = session_factory(project)
    uri = s.open("rules/.drafts/d.mr", draft)
    assert [d.code for d in s.diagnostics_of(uri)] == ["MR101"]
    rules = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(rules) == []  # the draft's list is not declared twice there


def test_an_unsaved_file_in_a_hidden_folder_is_not_in_the_rule_root(
    session_factory, project: Path
) -> None:
    """A new file not saved yet joins the rule set of the folder it is in; one in a
    hidden folder of the rule root does not join the root's, as on disk it would not."""
    (project / "mrules.toml").write_text('rules = ["rules"]\n', "utf-8")
    (project / "rules" / ".drafts").mkdir()
    s = session_factory(project)
    draft = s.open("rules/.drafts/new.mr", 'list "MQL"\n')  # MQL is declared in 00-decls
    assert s.diagnostics_of(draft) == []
    before = len(s.events)
    decls = s.open("rules/00-decls.mr")  # the root's rule set is checked: not with the draft
    assert s.diagnostics_of(decls) == []
    s.change(draft, 'list "MQL"\n\n')  # (its own rule set publishes it again)
    assert s.diagnostics_of(draft, before) == []
    assert all(n == 0 for uri, n in s.events[before:] if uri == draft), s.events[before:]


def test_a_lone_carriage_return_ends_a_line(session_factory, project: Path) -> None:
    # LSP counts `\r` alone as a line end, as editors show it. The server did not: the
    # comment on line 0 hid the rest of the file, and every position was on line 0.
    s = session_factory(project)
    text = 'list "Leads"  # the lists\rtag "t"\rlst "B"\r'
    uri = s.open("rules/20-cr.mr", text)
    [d] = s.diagnostics_of(uri)
    assert d.code == "MR001"
    assert d.range == types.Range(types.Position(2, 0), types.Position(2, 3))


def test_completion_and_hover_in_a_file_whose_lines_end_with_a_lone_cr(
    session_factory, project: Path
) -> None:
    # Completion looked for the line's start at the last `\n`: in a file of lone `\r`
    # line ends, a `#` on an earlier line hid the string the cursor is in (no names
    # offered), and hover said every name was declared on line 1.
    s = session_factory(project)
    text = '# lists\rlist "Leads"  # the list\rtag "t"\ron submit of form "Demo \U0001f389" {\r'
    text += '  add to list "Leads"\r  add to list "L'
    uri = s.open("rules/20-cr.mr", text)
    got = completions(s, uri, types.Position(5, 16))
    assert [i.label for i in got] == ["Leads"]
    assert got[0].text_edit.range == types.Range(types.Position(5, 14), types.Position(5, 16))
    h = s.run(
        s.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(1, 7))
        )
    )
    assert "declared at rules/20-cr.mr:2" in h.contents.value


def test_positions_past_the_end_of_a_line_stay_before_its_crlf() -> None:
    from mrules.lsp.server import Lines

    lines = Lines('list "A"\r\ntag "t"\rqueue "q"\n', types.PositionEncodingKind.Utf16)
    # a column past the end of a line is its end: before `\r\n`, never between them
    assert lines.offset(types.Position(0, 99)) == 8
    assert lines.offset(types.Position(1, 99)) == 17
    assert lines.offset(types.Position(2, 0)) == 18
    assert lines.position(18) == types.Position(2, 0)
    assert lines.position(9) == types.Position(0, 8)  # between `\r` and `\n`: its end


def test_a_file_with_many_diagnostics_is_split_into_lines_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each diagnostic's range was computed on a line table made again for it: a file with
    3,000 diagnostics took seconds to publish at every keystroke."""
    from mrules.lsp import server as lsp_server
    from mrules.lsp.analysis import analyze

    text = 'form "F"\n' + "".join(
        f'on submit of form "F" {{ add to list "L{i}" }}\n' for i in range(300)
    )
    (tmp_path / "a.mr").write_text(text, "utf-8")
    analysis = analyze([tmp_path])
    made: list[str] = []

    class Counted(lsp_server.Lines):
        def __init__(self, text: str, encoding: str) -> None:
            made.append(text)
            super().__init__(text, encoding)

    monkeypatch.setattr(lsp_server, "Lines", Counted)
    ls = lsp_server.MrulesLanguageServer()
    diagnostics = [ls.to_lsp(analysis, d) for d in analysis.diagnostics]
    assert len(made) == 1
    unknown = [d for d in diagnostics if d.code == "MR103"]
    assert len(unknown) == 300
    for i, d in enumerate(unknown):
        assert d.range.start == pos(text, f'"L{i}"')
        assert d.range.end == pos(text, f'"L{i}"', len(f'"L{i}"'))


def test_a_file_name_that_is_not_utf8(session_factory, project: Path) -> None:
    # `%FF` in a URI is the byte 0xFF of a file name that is not UTF-8; it was read as
    # U+FFFD, a file that does not exist, so its diagnostics went nowhere.
    import os

    folder = os.fsencode(project / "rules")
    with open(folder + b"/30-\xff.mr", "w", encoding="utf-8") as f:
        f.write('list "Leads"\nlst "B"\n')
    s = session_factory(project)
    uri = s.uri("rules") + "/30-%FF.mr"
    s.versions[uri] = 1
    s.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri, "mrules", 1, 'list "Leads"\nlst "B"\n')
        )
    )
    [d] = s.diagnostics_of(uri)
    assert d.code == "MR001" and d.range.start == types.Position(1, 0)
    # nor to a file named with the escapes the name is shown with (`30-\xff.mr`)
    assert [u for u in s.diagnostics if "30-" in u] == [uri]


def test_changes_to_a_file_whose_path_has_a_space(session_factory, tmp_path: Path) -> None:
    # The editor writes a space as `%20`; pygls keeps open documents by the decoded URI,
    # so every change was "to a document never opened", ignored: the diagnostics of
    # the text as first opened stayed for good.
    rules = tmp_path / "My rules"
    rules.mkdir()
    (rules / "a.mr").write_text('list "A"\n', "utf-8")
    s = session_factory(tmp_path)
    uri = s.open("My rules/a.mr")
    assert "%20" in uri and s.diagnostics_of(uri) == []
    before = len(s.events)
    s.change(uri, 'list "A"\nlst "B"\n')
    [d] = s.diagnostics_of(uri, before)
    assert d.code == "MR001"


def test_a_workspace_opened_through_a_symbolic_link(
    session_factory, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The editor names files by the path it opened (a link to the project: a home folder
    on another disk, `/tmp` on macOS); the diagnostics went to the real path, a document
    the editor did not have open, so the open file showed none, and go to definition
    opened the file a second time under its other name."""
    link = tmp_path_factory.mktemp("elsewhere") / "project"
    link.symlink_to(project, target_is_directory=True)
    s = session_factory(link)
    uri = (link / "rules" / "10-rules.mr").as_uri()
    broken = RULES.replace('add to list "MQL" }', 'add to list "MQl" }')
    s.versions[uri] = 1
    s.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="mrules", version=1, text=broken)
        )
    )
    [d] = s.diagnostics_of(uri)
    assert d.code == "MR103"
    assert not any(u.startswith(project.as_uri()) for u, _ in s.events)
    [location] = s.run(
        s.client.text_document_definition_async(
            types.DefinitionParams(types.TextDocumentIdentifier(uri), pos(broken, '"MQL"', 1))
        )
    )
    assert location.uri == (link / "rules" / "00-decls.mr").as_uri()
    assert location.range.start == pos(DECLS, '"MQL"')


def test_a_file_outside_the_workspace_is_checked_alone(session_factory, project: Path) -> None:
    # A file opened from outside the workspace (a download, a file in the home folder)
    # made its whole folder, and every folder below it, the rule set: all of it read
    # and checked at every keystroke, and diagnostics published for files never opened.
    outside = project / "downloads"
    (outside / "deep").mkdir(parents=True)
    (outside / "x.mr").write_text('list "A"\n', "utf-8")
    (outside / "deep" / "other.mr").write_text('list "A"\nlst\n', "utf-8")
    s = session_factory(project / "rules")
    uri = s.open("../downloads/x.mr")
    assert s.diagnostics_of(uri) == []  # not MR101: the other file's list is not its
    assert [u for u, _ in s.events if "other.mr" in u] == []
    unsaved = s.open("../downloads/new.mr", 'list "B"\nlst\n')  # not on disk yet
    assert [d.code for d in s.diagnostics_of(unsaved)] == ["MR001"]
    inside = s.open("10-rules.mr")  # a workspace file: its folder is its rule set
    assert s.diagnostics_of(inside) == []
    assert s.messages == []


@pytest.mark.parametrize("separator", ["\x0c", "\x85", "\u2028", "\x1e"])
def test_incremental_changes_count_only_lsp_line_ends(
    session_factory, project: Path, separator: str
) -> None:
    # An editor's ranges count lines as LSP does (`\n`, `\r\n`, `\r`). pygls applied
    # them to its own lines, also split at a form feed (whitespace to the language), a
    # NEL, U+2028...: the edit landed elsewhere, and the server checked a text the
    # editor never showed.
    s = session_factory(project)
    uri = s.open("rules/20-sep.mr", f'list "A"  # a{separator}b\nlist "B"\nlist "C"\ntag "B"\n')
    assert s.diagnostics_of(uri) == []
    before = len(s.events)
    s.versions[uri] += 1
    s.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=s.versions[uri]),
            [  # two changes in one notification: `list "B"` -> `tag "B"`, `"C"` -> `"A"`
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(1, 0), types.Position(1, 4)), text="tag"
                ),
                types.TextDocumentContentChangePartial(  # past the end: up to the line's
                    range=types.Range(types.Position(2, 5), types.Position(2, 99)), text='"A"'
                ),
            ],
        )
    )
    got = [(d.message.split("\n")[0], d.range.start) for d in s.diagnostics_of(uri, before)]
    assert sorted(got, key=lambda g: g[1].line) == [
        ("list 'A' is declared twice", types.Position(2, 5)),
        ("tag 'B' is declared twice", types.Position(3, 4)),
    ]


def test_closing_an_unsaved_file_outside_the_workspace_clears_it(
    session_factory, project: Path
) -> None:
    # A file outside the workspace is checked alone; closed unsaved (or deleted, then
    # closed), there is nothing left to check: the server showed "mrules cannot check
    # .../new.mr: no such file or folder", and its diagnostics stayed for good.
    (project / "downloads").mkdir()
    s = session_factory(project / "rules")
    uri = s.open("../downloads/new.mr", 'list "B"\nlst\n')  # not on disk
    assert [d.code for d in s.diagnostics_of(uri)] == ["MR001"]
    before = len(s.events)
    s.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    assert s.diagnostics_of(uri, before) == []
    assert (
        s.run(  # and nothing to answer about it
            s.client.text_document_document_symbol_async(
                types.DocumentSymbolParams(types.TextDocumentIdentifier(uri))
            )
        )
        == []
    )
    before = len(s.events)
    uri = s.open("../downloads/new.mr", "lst\n")  # reopened: checked again
    assert [d.code for d in s.diagnostics_of(uri, before)] == ["MR001"]
    assert s.messages == []


def test_editing_an_included_file_of_a_subfolder_checks_the_includer_again(
    session_factory, tmp_path: Path
) -> None:
    # `common/lists.mr` opened is its own folder's rule set, and also a file of the rule
    # set of `main.mr`, which includes it. Only the first was checked after a change: a
    # list deleted from the included file still resolved in the includer, until the
    # includer itself changed.
    rules = tmp_path / "rules"
    (rules / "common").mkdir(parents=True)
    (rules / "common" / "lists.mr").write_text('list "MQL"\n', "utf-8")
    (rules / "main.mr").write_text(
        'include "common/lists"\nform "F"\non submit of form "F" { add to list "MQL" }\n',
        "utf-8",
    )
    s = session_factory(tmp_path)
    main = s.open("rules/main.mr")
    assert s.diagnostics_of(main) == []
    lists = s.open("rules/common/lists.mr")
    assert s.diagnostics_of(lists) == []
    before = len(s.events)
    s.change(lists, 'list "Leads"\n')  # unsaved: the buffer is what counts
    got = s.diagnostics_of(main, before)
    assert [(d.code, d.message.split("\n")[0]) for d in got] == [("MR103", "unknown list 'MQL'")]
    before = len(s.events)
    s.change(lists, 'list "MQL"\n')
    assert s.diagnostics_of(main, before) == []


def test_completion_in_settings_and_scoring_offers_settings_and_activities(
    session_factory, project: Path
) -> None:
    # A bare name in `settings { }` is a setting, at a row of `scoring { }` an activity:
    # the server offered prospect fields there (`company_size`, `city`...), and a field
    # accepted was an unknown setting (MR610) or scoring activity (MR601).
    from mrules.settings import SETTINGS

    s = session_factory(project)
    text = "settings {\n  url_ignore_w = false\n}\nscoring {\n  form sub +50\n}\n"
    uri = s.open("rules/20-knobs.mr", text)
    assert [d.code for d in s.diagnostics_of(uri)] == ["MR610", "MR601"]

    def items(needle: str, delta: int) -> list[types.CompletionItem]:
        return completions(s, uri, pos(text, needle, delta))

    assert sorted(i.label for i in items("url_ignore_w", 0)) == sorted(SETTINGS)
    [setting] = items("url_ignore_w", len("url_ignore_w"))
    [activity] = items("form sub", len("form sub"))
    assert "form submission" in [i.label for i in items("form sub", 0)]
    assert "company_size" not in [i.label for i in items("form sub", 0)]
    lines = text.split("\n")
    for item in (activity, setting):  # the later line first: the earlier's columns hold
        r = item.text_edit.range
        line = lines[r.start.line]
        lines[r.start.line] = (
            line[: r.start.character] + item.text_edit.new_text + line[r.end.character :]
        )
    before = len(s.events)
    s.change(uri, "\n".join(lines))
    assert s.diagnostics_of(uri, before) == []


def test_code_action_fixes_a_misspelt_name_holding_an_apostrophe(
    session_factory, project: Path
) -> None:
    # The hint is `did you mean 'O'Brien list'?`: the quick fix read the name up to its
    # first apostrophe, found no `'?` there, and offered nothing.
    s = session_factory(project)
    s.open("rules/20-lists.mr", 'list "O\'Brien list"\n')
    text = 'on submit of form "Demo \U0001f389" { add to list "O\'Brien lst" }\n'
    uri = s.open("rules/30-use.mr", text)
    [d] = s.diagnostics_of(uri)
    assert d.code == "MR103"
    [action] = s.run(
        s.client.text_document_code_action_async(
            types.CodeActionParams(
                types.TextDocumentIdentifier(uri), d.range, types.CodeActionContext([d])
            )
        )
    )
    [edit] = action.edit.changes[uri]
    assert edit.new_text == '"O\'Brien list"'
    fixed = text[: text.index('"O')] + edit.new_text + text[text.index(" }") :]
    before = len(s.events)
    s.change(uri, fixed)
    assert s.diagnostics_of(uri, before) == []


def test_a_file_of_a_subfolder_keeps_its_own_rule_sets_diagnostics_after_an_edit(
    session_factory, tmp_path: Path
) -> None:
    # `a/y.mr` is its own folder's rule set and one of the workspace folder's too. After
    # an edit both are checked; it shows what either says of it (the outer: nothing).
    (tmp_path / "a").mkdir()
    (tmp_path / "x.mr").write_text('list "MQL"\n', "utf-8")
    text = 'form "F"\non submit of form "F" { add to list "MQL" }\n'
    (tmp_path / "a" / "y.mr").write_text(text, "utf-8")
    s = session_factory(tmp_path)
    y = s.uri("a/y.mr")
    s.diagnostics_of(s.open("x.mr"))
    assert s.diagnostics_of(y) == []  # as a file of the workspace folder's rule set
    before = len(s.events)
    s.open("a/y.mr")  # both rule sets publish for it, its own last
    s.wait_for(lambda: sum(u == y for u, _ in s.events[before:]) >= 2)
    assert [d.code for d in s.diagnostics[y]] == ["MR103"]  # `a/` has no MQL
    before = len(s.events)
    s.change(y, text + "\n")
    s.wait_for(lambda: sum(u == y for u, _ in s.events[before:]) >= 2)
    assert [d.code for d in s.diagnostics[y]] == ["MR103"]


def test_completion_after_add_to_list_offers_only_static_lists(
    session_factory, project: Path
) -> None:
    # A dynamic list's members come from its criteria: `add to list` or `remove from
    # list` naming one is MR303. Completion offered dynamic lists there too.
    s = session_factory(project)
    s.open("rules/20-dyn.mr", 'dynamic list "Hot" {\n  when all { score >= 100 }\n}\n')
    text = RULES.replace(
        '  add to list "MQL"\n', '  add to list ""\n  remove from list ""\n  if in list "" {}\n'
    )
    uri = s.open("rules/10-rules.mr", text)

    def labels(needle: str) -> list[str]:
        return [i.label for i in completions(s, uri, pos(text, needle, len(needle) - 1))]

    assert labels('add to list ""') == ["Customers", "MQL"]
    assert labels('remove from list ""') == ["Customers", "MQL"]
    assert labels('if in list ""') == ["Customers", "Hot", "MQL"]


def test_completion_of_field_types_sync_objects_and_crm_types(
    session_factory, project: Path
) -> None:
    # After `field x:`, `objects` and `as` a bare name is a field type, a Salesforce
    # object, a Salesforce field type: the server offered prospect fields there, each
    # an error once accepted (MR201, MR502, MR505).
    s = session_factory(project)
    text = (
        'field tier: pick ["Gold"]\n'
        "sync salesforce {\n"
        "  objects lead, con\n"
        '  map tier <-> "Tier__c" as multipick prefer ours\n'
        "}\n"
    )
    uri = s.open("rules/20-sync.mr", text)
    assert [d.code for d in s.diagnostics_of(uri)] == ["MR201", "MR502", "MR505"]
    lines = text.split("\n")
    for needle in (": pick", ", con", "as multipick"):
        at = pos(text, needle, len(needle))
        got = completions(s, uri, at)
        assert "company_size" not in [i.label for i in got]
        [item] = got
        r = item.text_edit.range
        line = lines[r.start.line]
        lines[r.start.line] = (
            line[: r.start.character] + item.text_edit.new_text + line[r.end.character :]
        )
    before = len(s.events)
    s.change(uri, "\n".join(lines))
    assert s.diagnostics_of(uri, before) == []
    # a statement after `objects ...`: `map` takes a field again
    offered = [i.label for i in completions(s, uri, pos(text, "map ", 4))]
    assert "tier" in offered and "lead" not in offered


def test_completion_of_a_groups_members_offers_users(session_factory, project: Path) -> None:
    # A group's members are users (MR104 when not declared): completion in its list
    # offered nothing.
    s = session_factory(project)
    text = 'group "Sales" [""]\n'
    uri = s.open("rules/20-group.mr", text)
    got = completions(s, uri, pos(text, '""', 1))
    [item] = got
    assert item.label == "alan@getcloudy.com"
    r = item.text_edit.range
    done = text[: r.start.character] + item.text_edit.new_text + text[r.end.character :]
    assert done == 'group "Sales" ["alan@getcloudy.com"]\n'
    before = len(s.events)
    s.change(uri, done)
    assert s.diagnostics_of(uri, before) == []


def test_completion_after_increment_offers_only_number_fields(
    session_factory, project: Path
) -> None:
    # `increment` needs a number field (MR213 for any other): completion offered every
    # field there, text and picklist ones included.
    from mrules.symbols import BUILTIN_FIELDS

    s = session_factory(project)
    s.open("rules/20-fields.mr", "field visits: number\nfield note: text\n")
    text = RULES.replace('  add to list "MQL"\n', "  increment \n")
    uri = s.open("rules/10-rules.mr", text)
    got = completions(s, uri, pos(text, "increment ", len("increment ")))
    numbers = [name for name, kind in BUILTIN_FIELDS.items() if kind == "number"]
    assert [i.label for i in got] == sorted([*numbers, "visits"])


def test_completion_of_a_multiselects_values_in_a_list(session_factory, project: Path) -> None:
    # `set tier = ["Gold", "|`: a multiselect is set to a list of its values, and
    # completion offered none of them inside the list (only after `= "`).
    s = session_factory(project)
    s.open("rules/20-tier.mr", 'field tier: multiselect ["Gold", "Silver"]\n')
    text = RULES.replace('  add to list "MQL"\n', '  set tier = ["Gold", ""]\n')
    uri = s.open("rules/10-rules.mr", text)
    got = completions(s, uri, pos(text, '""]', 1))
    assert [i.label for i in got] == ["Gold", "Silver"]
    assert [i.text_edit.new_text for i in got] == ['"Gold"', '"Silver"']


def test_completion_of_member_statuses_and_grading_criteria(session_factory, project: Path) -> None:
    # `add to crm campaign "C" status "|` takes a status C declares (MR112), `mark "|"`
    # a criterion of a grading profile (MR114): completion offered nothing there.
    s = session_factory(project)
    s.open(
        "rules/20-crm.mr",
        'crm campaign "Web \\"A\\"" statuses ["Sent", "Responded"]\n'
        'grading profile "P" {\n  criterion "Job" 2/3\n}\n',
    )
    text = RULES.replace(
        '  add to list "MQL"\n',
        '  add to crm campaign "Web \\"A\\"" status ""\n  mark "" of profile "P" as met\n',
    )
    uri = s.open("rules/10-rules.mr", text)

    def labels(needle: str) -> list[str]:
        return [i.label for i in completions(s, uri, pos(text, needle, len(needle) - 1))]

    assert labels('status ""') == ["Sent", "Responded"]
    assert labels('mark ""') == ["Job"]


def test_completion_of_a_settings_words(session_factory, project: Path) -> None:
    # `unknown_assets = "|` takes one of a few words, `grade_start` a grade (MR611,
    # MR613): completion offered nothing there.
    from mrules.checker.values import GRADES
    from mrules.settings import CHOICES

    s = session_factory(project)
    text = 'settings {\n  unknown_assets = ""\n  grade_start = ""\n}\n'
    uri = s.open("rules/20-settings.mr", text)

    def labels(needle: str) -> list[str]:
        return [i.label for i in completions(s, uri, pos(text, needle, len(needle) - 1))]

    assert labels('unknown_assets = ""') == list(CHOICES["unknown_assets"])
    assert labels('grade_start = ""') == list(GRADES)


OUTER = 'list "MQL"\nlist "Dup"\n'
INNER = (
    'list "Dup"\nform "F"\non submit of form "F" { add to list "MQL" }\n'
    'on submit of form "G" { add to list "Dup" }\n'
)


def test_a_file_in_two_rule_sets_shows_the_union_of_their_diagnostics(
    session_factory, tmp_path: Path
) -> None:
    # `b/y.mr` is its own folder's rule set and one of the workspace folder's too. Each
    # rule set's publication replaced the other's: the editor showed the errors of the
    # one checked last. Now both, each once.
    (tmp_path / "b").mkdir()
    (tmp_path / "a.mr").write_text(OUTER, "utf-8")
    (tmp_path / "b" / "y.mr").write_text(INNER, "utf-8")
    s = session_factory(tmp_path)
    y = s.uri("b/y.mr")
    s.diagnostics_of(s.open("a.mr"))
    assert [d.code for d in s.diagnostics_of(y)] == ["MR101", "MR105"]  # the outer's
    before = len(s.events)
    s.open("b/y.mr")
    s.wait_for(lambda: sum(u == y for u, _ in s.events[before:]) >= 2)
    # the inner's (MQL unknown, G unknown) with the outer's (Dup twice, G unknown)
    assert [d.code for d in s.diagnostics[y]] == ["MR103", "MR105", "MR101"]
    before = len(s.events)
    s.change(y, INNER.replace("MQL", "Dup"))  # the inner's MR103 goes, the outer's stay
    s.wait_for(lambda: sum(u == y for u, _ in s.events[before:]) >= 2)
    assert [d.code for d in s.diagnostics[y]] == ["MR105", "MR101"]
    before = len(s.events)
    s.change(s.uri("a.mr"), 'list "MQL"\n')  # not open: a notice the client ignores
    a = s.open("a.mr", 'list "MQL"\n')  # the outer's MR101 goes, the inner's stay
    s.wait_for(lambda: any(u == y for u, _ in s.events[before:]))
    s.wait_for(lambda: [d.code for d in s.diagnostics[y]] == ["MR105"])
    assert s.diagnostics_of(a) == []


def test_navigation_in_a_file_of_two_rule_sets_uses_the_innermost(
    session_factory, tmp_path: Path
) -> None:
    # With two configured rule roots, one inside the other, a file of the inner one was
    # navigated in the first one listed: the outer, whose `a.mr` uses the inner's list.
    (tmp_path / "mrules.toml").write_text('rules = ["rules", "rules/sub"]\n', "utf-8")
    (tmp_path / "rules" / "sub").mkdir(parents=True)
    outer = 'form "A"\non submit of form "A" { add to list "L" }\n'
    (tmp_path / "rules" / "a.mr").write_text(outer, "utf-8")
    text = 'list "L"\nform "F"\non submit of form "F" { add to list "L" }\n'
    (tmp_path / "rules" / "sub" / "y.mr").write_text(text, "utf-8")
    s = session_factory(tmp_path)
    y = s.open("rules/sub/y.mr")
    assert s.diagnostics_of(y) == []
    doc = types.TextDocumentIdentifier(y)
    at = pos(text, '"L" }', 1)
    [decl] = s.run(s.client.text_document_definition_async(types.DefinitionParams(doc, at)))
    assert decl.uri == y
    refs = s.run(
        s.client.text_document_references_async(
            types.ReferenceParams(
                context=types.ReferenceContext(include_declaration=True),
                text_document=doc,
                position=at,
            )
        )
    )
    assert {r.uri for r in refs} == {y}
    edit = s.run(s.client.text_document_rename_async(types.RenameParams(doc, at, "Leads")))
    assert set(edit.changes) == {y}
    assert len(edit.changes[y]) == 2


TESTS_YAML = """\
rules: ../rules
tests:
  - name: MQL and a demo make the Big rule match  # free text: left alone
    given:
      prospects:
        a@x.com: {lists: [MQL], fields: {company_size: "200+"}}
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: "Demo \\U0001f389"}
    expect:
      prospects:
        a@x.com:
          lists: {include: [MQL], exclude: [Customers]}
          assigned: alan@getcloudy.com
      actions:
        - {action: add to list, list: 'MQL', rule: Big}
      rules: {Big: 1}
"""


def test_rename_and_references_reach_the_rule_sets_test_files(
    session_factory, project: Path
) -> None:
    # A rule test names lists, users, fields, assets and rules: renaming one in the rules
    # left the tests naming the old one (a broken test file at the next `mrules test`).
    import yaml

    (project / "tests").mkdir()
    test_file = project / "tests" / "mql.test.yaml"
    test_file.write_text(TESTS_YAML, "utf-8")
    (project / "other").mkdir()  # a test of other rules: left alone
    (project / "other" / "o.test.yaml").write_text(
        'rules: |\n  list "MQL"\ntests:\n  - name: x\n    given:\n'
        "      prospects:\n        a@x.com: {lists: [MQL]}\n",
        "utf-8",
    )
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(uri) == []
    doc = types.TextDocumentIdentifier(uri)
    test_uri = test_file.resolve().as_uri()

    def rename(needle: str, new: str) -> str:
        edit = s.run(
            s.client.text_document_rename_async(types.RenameParams(doc, pos(RULES, needle), new))
        )
        assert set(edit.changes) >= {test_uri}
        assert not any("other" in u for u in edit.changes)
        lines = TESTS_YAML.split("\n")
        for e in sorted(edit.changes[test_uri], key=lambda e: e.range.start, reverse=True):
            r = e.range
            assert r.start.line == r.end.line
            line = lines[r.start.line]
            lines[r.start.line] = line[: r.start.character] + e.new_text + line[r.end.character :]
        return "\n".join(lines)

    renamed = yaml.safe_load(rename('"MQL"', "Hot: leads"))
    case = renamed["tests"][0]
    assert case["name"] == "MQL and a demo make the Big rule match"
    assert case["given"]["prospects"]["a@x.com"]["lists"] == ["Hot: leads"]
    prospect = case["expect"]["prospects"]["a@x.com"]
    assert prospect["lists"] == {"include": ["Hot: leads"], "exclude": ["Customers"]}
    assert case["expect"]["actions"][0]["list"] == "Hot: leads"
    renamed = yaml.safe_load(rename('"Big"', "true"))  # still text, not a boolean
    assert renamed["tests"][0]["expect"]["rules"] == {"true": 1}
    assert renamed["tests"][0]["expect"]["actions"][0]["rule"] == "true"
    renamed = yaml.safe_load(rename('"Demo', "Démo 2"))
    assert renamed["tests"][0]["events"][0]["asset"] == "Démo 2"
    renamed = yaml.safe_load(rename('"alan', "bob@getcloudy.com"))
    assert renamed["tests"][0]["expect"]["prospects"]["a@x.com"]["assigned"] == "bob@getcloudy.com"
    renamed = yaml.safe_load(rename("company_size", "size"))
    assert renamed["tests"][0]["given"]["prospects"]["a@x.com"]["fields"] == {"size": "200+"}
    refs = s.run(
        s.client.text_document_references_async(
            types.ReferenceParams(
                context=types.ReferenceContext(include_declaration=False),
                text_document=doc,
                position=pos(RULES, '"MQL"'),
            )
        )
    )
    assert sum(r.uri == test_uri for r in refs) == 3


def test_a_file_that_is_not_a_rule_file_is_in_no_rule_set(session_factory, tmp_path: Path) -> None:
    # An editor may hand the server another file as mrules (a `.txt` set to the mrules
    # language, a test file's YAML): its folder was loaded as a rule set all the same, and
    # one with no rule files was shown to the user as an error.
    (tmp_path / "notes").mkdir()
    s = session_factory(tmp_path)
    uri = s.open("notes/todo.txt", 'list "A"\n')
    doc = types.TextDocumentIdentifier(uri)
    hover = s.run(s.client.text_document_hover_async(types.HoverParams(doc, types.Position(0, 6))))
    assert hover is None
    assert (
        s.run(s.client.text_document_document_symbol_async(types.DocumentSymbolParams(doc))) == []
    )
    rule = s.open("x.mr", 'list "A"\n')  # checked: any message came before
    assert s.diagnostics_of(rule) == []
    assert s.messages == []
    assert all(u != uri for u, _ in s.events)


def test_workspace_folders_added_and_removed_are_loaded_and_dropped(
    session_factory, tmp_path: Path
) -> None:
    # The server had no handler for `workspace/didChangeWorkspaceFolders`: a folder added
    # was not read until a restart (its open file stayed checked alone: "unknown list"),
    # and a folder removed kept its rule set, its diagnostics and its names.
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "a.mr").write_text('list "A"\n', "utf-8")
    b = tmp_path / "b"
    b.mkdir()
    (b / "decls.mr").write_text('list "MQL"\n', "utf-8")
    uses = (
        'automation rule "R" priority 1 {\n  when all { in list "MQL" }\n'
        '  then { add to list "MQL" }\n}\n'
    )
    (b / "rules.mr").write_text(uses, "utf-8")
    (b / "bad.mr").write_text(
        'automation rule "S" priority 2 {\n  when all { score >= 1 }\n'
        '  then { add to list "Nope" }\n}\n',
        "utf-8",
    )
    s = session_factory(tmp_path / "a")
    assert s.init.capabilities.workspace.workspace_folders.supported
    assert s.init.capabilities.workspace.workspace_folders.change_notifications
    rules = s.open("../b/rules.mr")  # outside the workspace: checked alone
    assert {d.code for d in s.diagnostics_of(rules)} == {"MR103"}
    bad = (b / "bad.mr").resolve().as_uri()
    folder_b = types.WorkspaceFolder(b.as_uri(), "b")
    before = len(s.events)
    s.client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(types.WorkspaceFoldersChangeEvent([folder_b], []))
    )
    s.wait_for(lambda: any(u == bad for u, n in s.events[before:] if n))
    s.wait_for(lambda: s.diagnostics[rules] == [])  # the folder's rule set: MQL declared
    assert [d.code for d in s.diagnostics[bad]] == ["MR103"]
    doc = types.TextDocumentIdentifier(rules)
    at = pos(uses, '"MQL"', 1)
    found = s.run(s.client.text_document_definition_async(types.DefinitionParams(doc, at)))
    assert [loc.uri for loc in found] == [(b / "decls.mr").resolve().as_uri()]
    before = len(s.events)
    s.client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(types.WorkspaceFoldersChangeEvent([], [folder_b]))
    )
    s.wait_for(lambda: (bad, 0) in s.events[before:])  # cleared
    # the open file is outside the workspace again: checked alone, its names not found
    s.wait_for(lambda: {d.code for d in s.diagnostics[rules]} == {"MR103"})
    assert s.diagnostics[bad] == []
    found = s.run(s.client.text_document_definition_async(types.DefinitionParams(doc, at)))
    assert found is None


def test_a_test_file_nested_too_deeply_is_skipped_and_logged(
    session_factory, project: Path
) -> None:
    # A test file nested past the YAML reader's depth limit: references and rename
    # skip it, without failing, and the server's log says which file and why (it was
    # skipped without a word).
    (project / "tests").mkdir()
    (project / "tests" / "mql.test.yaml").write_text(TESTS_YAML, "utf-8")
    deep = "tests:\n  - name: t\n    given: " + "[" * 5000 + "]" * 5000 + "\n"
    (project / "tests" / "deep.test.yaml").write_text(deep, "utf-8")
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(uri) == []
    doc = types.TextDocumentIdentifier(uri)
    refs = s.run(
        s.client.text_document_references_async(
            types.ReferenceParams(
                context=types.ReferenceContext(include_declaration=False),
                text_document=doc,
                position=pos(RULES, '"MQL"'),
            )
        )
    )
    test_uri = (project / "tests" / "mql.test.yaml").resolve().as_uri()
    assert sum(r.uri == test_uri for r in refs) == 3
    assert not any("deep" in r.uri for r in refs)
    edit = s.run(
        s.client.text_document_rename_async(types.RenameParams(doc, pos(RULES, '"MQL"'), "Hot"))
    )
    assert not any("deep" in u for u in edit.changes)
    s.shutdown()
    s.exit()
    assert s.ended(30) == 0
    stderr = s.run(s.client._server.stderr.read()).decode()
    assert "deep.test.yaml: skipped for rename and references: nested too deeply" in stderr


def test_rename_and_references_reach_names_in_a_test_files_rule_text(
    session_factory, project: Path
) -> None:
    # A test file of the rule set whose case writes its own rules (`rules: |`): the
    # names of that rule text were never renamed, so the case's rules and its YAML
    # names (renamed) no longer matched.
    import yaml

    text = (
        "tests:\n"
        "  - name: of the rules\n"
        "    given: {prospects: {a@x.com: {lists: [MQL]}}}\n"
        "  - name: own rules\n"
        "    rules: |\n"
        '        list "MQL"\n'
        '        automation rule "R" priority 1 {\n'
        '          when all { in list "MQL" }\n'
        '          then { add tag "t" }\n'
        "        }\n"
        '        tag "t"\n'
        "    given: {prospects: {b@x.com: {lists: [MQL]}}}\n"
    )
    (project / "tests").mkdir()
    test_file = project / "tests" / "own.test.yaml"
    test_file.write_text(text, "utf-8")
    s = session_factory(project)
    uri = s.open("rules/10-rules.mr")
    assert s.diagnostics_of(uri) == []
    doc = types.TextDocumentIdentifier(uri)
    test_uri = test_file.resolve().as_uri()
    at = pos(RULES, '"MQL"')
    refs = s.run(
        s.client.text_document_references_async(
            types.ReferenceParams(
                context=types.ReferenceContext(include_declaration=True),
                text_document=doc,
                position=at,
            )
        )
    )
    assert sum(r.uri == test_uri for r in refs) == 4  # two in YAML, two in the rule text
    edit = s.run(s.client.text_document_rename_async(types.RenameParams(doc, at, "Hot leads")))
    lines = text.split("\n")
    for e in sorted(edit.changes[test_uri], key=lambda e: e.range.start, reverse=True):
        r = e.range
        line = lines[r.start.line]
        lines[r.start.line] = line[: r.start.character] + e.new_text + line[r.end.character :]
    renamed = yaml.safe_load("\n".join(lines))
    assert renamed["tests"][1]["rules"] == (
        'list "Hot leads"\nautomation rule "R" priority 1 {\n'
        '  when all { in list "Hot leads" }\n  then { add tag "t" }\n}\ntag "t"\n'
    )
    assert renamed["tests"][1]["given"]["prospects"]["b@x.com"]["lists"] == ["Hot leads"]


def _rename_mql_to_hot(s):  # s: a session_factory session
    """The workspace edit of renaming the list "MQL" to "Hot" from the rule file."""
    doc = types.TextDocumentIdentifier(s.open("rules/10-rules.mr"))
    return s.run(
        s.client.text_document_rename_async(types.RenameParams(doc, pos(RULES, '"MQL"'), "Hot"))
    )


def test_rename_leaves_test_files_behind_a_link_to_a_folder(
    session_factory, project: Path, tmp_path_factory
) -> None:
    # The workspace's test files are those `mrules test` runs: a link to a folder found in
    # the workspace is not entered (docs/testing.md), so its test files are not edited.
    (project / "tests").mkdir()
    test_file = project / "tests" / "mql.test.yaml"
    test_file.write_text(TESTS_YAML, "utf-8")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "far.test.yaml").write_text(
        TESTS_YAML.replace("../rules", str(project / "rules")), "utf-8"
    )
    (project / "linked").symlink_to(elsewhere, target_is_directory=True)
    edit = _rename_mql_to_hot(session_factory(project))
    assert test_file.resolve().as_uri() in edit.changes
    assert not any("far.test.yaml" in u for u in edit.changes), edit.changes


def test_rename_skips_a_named_pipe_named_like_a_test_file(session_factory, project: Path) -> None:
    # `mrules test` refuses a named pipe called x.test.yaml unread; the server read it to
    # find names to rename, and waited for a writer that never came: no answer, ever.
    (project / "tests").mkdir()
    test_file = project / "tests" / "mql.test.yaml"
    test_file.write_text(TESTS_YAML, "utf-8")
    os.mkfifo(project / "tests" / "pipe.test.yaml")
    edit = _rename_mql_to_hot(session_factory(project))
    assert test_file.resolve().as_uri() in edit.changes


def test_a_wildcard_whose_query_the_views_lose_is_shown_at_its_url(
    session_factory, project: Path
) -> None:
    s = session_factory(project)
    text = 'page action "Search" on "https://x.example/search?q=*" { score +1 }\n'
    uri = s.open("rules/20-pages.mr", text)
    [d] = s.diagnostics_of(uri)
    assert d.code == "MR406" and d.severity == types.DiagnosticSeverity.Warning
    assert d.range.start == pos(text, '"https://')
    assert d.range.end == pos(text, " {")
    assert "url_ignore_query = false" in d.message  # the hint, after the message
    assert d.code_description.href.endswith(
        "diagnostics.md#mr406-wildcard-with-a-query-string-while-queries-are-ignored"
    )
