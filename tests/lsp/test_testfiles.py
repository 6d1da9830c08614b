"""The names a rule test file writes, and a new name written back as YAML."""

from __future__ import annotations

import yaml
from hypothesis import given
from hypothesis import strategies as st

from mrules.lsp.testfiles import yaml_scalar

NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), min_size=1
)


@given(NAMES, st.sampled_from(["", "'", '"']))
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
