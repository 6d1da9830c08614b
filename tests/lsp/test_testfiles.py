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
