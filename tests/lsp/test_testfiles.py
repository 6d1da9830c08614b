"""The names a rule test file writes, and a new name written back as YAML."""

from __future__ import annotations

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from mrules.lsp.testfiles import yaml_scalar

NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), min_size=1
)


@given(NAMES, st.sampled_from(["", "'", '"']))
@example("\x85", "")  # NEL: a line break to YAML 1.1, read back as a space
@example("\u2028", "'")
@example("true", "")
def test_a_new_name_reads_back_as_the_same_text_wherever_it_is_written(
    name: str, style: str
) -> None:
    # A rename writes the new name in place of a plain or quoted scalar: in a block
    # mapping, a flow sequence and as a flow mapping's key, it must read back as itself
    # (`true`, `1`, `a: b`, `x #y` as text, not a boolean, a number or a comment).
    written = yaml_scalar(name, style)
    assert "\n" not in written
    assert yaml.safe_load(f"k: {written}\n") == {"k": name}
    assert yaml.safe_load(f"k: [{written}, x]\n") == {"k": [name, "x"]}
    assert yaml.safe_load(f"k: {{{written}: 1}}\n") == {"k": {name: 1}}


def test_a_name_reached_twice_through_a_yaml_alias_is_found_once(tmp_path) -> None:
    # `*mql` is the node `&mql` names, with its span: the name was found once per use,
    # and a rename sent two edits of one range, which editors refuse as overlapping.
    from pathlib import Path

    from mrules.lsp.testfiles import find_names

    text = (
        "tests:\n"
        "  - name: t\n"
        "    given:\n"
        "      prospects:\n"
        "        a@x.com: {lists: &mql [MQL]}\n"
        "    expect:\n"
        "      prospects:\n"
        "        a@x.com: {lists: *mql}\n"
    )
    (tmp_path / "rules").mkdir()
    names = find_names(tmp_path / "rules", text, Path(tmp_path / "tests" / "t.test.yaml"))
    assert [(n.value, text[n.start : n.end]) for n in names] == [("MQL", "MQL")]


# Rule text written in a test file of the rule set (a case's own `rules: |`): the names
# it declares and uses were never renamed, leaving the test's rules and its YAML names
# apart. A rename writes into the scalar only where it reads back as the renamed rule
# text; any other occurrence is left as it is (and logged), never corrupted.
OLD = "MQL"
RULE_TEXT = (
    'list "{name}"\n'
    'automation rule "R" priority 1 {{\n'
    'when all {{ in list "{name}" }}\n'
    'then {{ add to list "{name}" }}\n'
    "}}\n"
)


def _as_yaml(value: str, style: str, indent: int) -> str:
    """`value` written as the `rules` of a case, in a YAML style."""
    pad = " " * indent
    if style in ("|", "|-", "|+"):
        body = value if style != "|-" else value.rstrip("\n")
        lines = "".join(pad + line + "\n" if line else "\n" for line in body.split("\n")[:-1])
        last = body.split("\n")[-1]
        return style + "\n" + lines + (pad + last + "\n" if last else "")
    if style == "'":
        return "'" + value.replace("'", "''").replace("\n", "\n\n" + pad) + "'\n"
    import json

    return json.dumps(value) + "\n"


@given(
    st.sampled_from(["|", "|-", "|+", "'", '"']),
    st.integers(2, 8),
    NAMES.filter(lambda n: "\\" not in n),
    st.sampled_from(["", "\n"]),
)
@example("|", 2, 'He said "hi"', "")
@example('"', 2, "Hot", "")
@example("'", 4, "it's", "")
def test_a_rename_in_rule_text_reads_back_as_the_renamed_rules(
    style: str, indent: int, new: str, extra: str
) -> None:
    from pathlib import Path

    from mrules.lsp.analysis import quote
    from mrules.lsp.testfiles import _NOT_PRINTABLE, RuleTextName, find_names, rule_text_edit

    value = RULE_TEXT.format(name=OLD) + extra
    text = (
        "rules: ../rules\n"
        "tests:\n"
        "  - name: of the rule set\n"
        "    given: {prospects: {a@x.com: {lists: [MQL]}}}\n"
        "  - name: own rules\n"
        "    rules: " + _as_yaml(value, style, 4 + indent) + "    given:\n"
        "      prospects:\n"
        "        a@x.com: {lists: [MQL]}\n"
    )
    before = yaml.safe_load(text)
    assert before["tests"][1]["rules"].rstrip("\n") == value.rstrip("\n")  # chomping aside
    root = Path("/nonexistent/p/rules")
    names = [
        n
        for n in find_names(root, text, root.parent / "tests" / "t.test.yaml")
        if isinstance(n, RuleTextName) and n.value == OLD and n.namespaces == ("list",)
    ]
    if style == '"':  # written `\"MQL\"`: no precise edit (logged), left out
        assert names == []
        return
    assert len(names) == 3  # the declaration and both uses, each where the file has it
    assert all(text[n.start : n.end] == f'"{OLD}"' for n in names)
    written = quote(new)
    kept = [n for n in names if rule_text_edit(text, n, written)]
    if style.startswith("|") and not _NOT_PRINTABLE.search(written):
        # a literal block holds any line of printable text as it is
        assert kept == names
    edited = text
    for n in sorted(kept, key=lambda n: n.start, reverse=True):
        edited = edited[: n.start] + written + edited[n.end :]
    after = yaml.safe_load(edited)
    rules = before["tests"][1]["rules"]
    for n in sorted(kept, key=lambda n: n.span[0], reverse=True):
        s, e = n.span
        rules = rules[:s] + written + rules[e:]
    assert after["tests"][1]["rules"] == rules
    after["tests"][1]["rules"] = before["tests"][1]["rules"]
    assert after == before  # nothing else of the file changed
