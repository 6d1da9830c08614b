"""A user's argument that a sync command echoes is shortened to its start and its length
(`shown_arg`): a 100,000-character email, time or path was repeated whole in the message,
and a path too long for the system was an internal error (exit 70)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .org import Org
from .test_held_for_permission import RULES, T0

LONG = "a" * 100_000


def _cases(org: Org) -> list[tuple[list[str], str]]:
    """(the command's arguments, what the one line says of the long value)."""
    rules, store = ["--rules", str(org.rules)], ["--store", str(org.store)]
    email = LONG + "@x.com"
    shown_email = f"{'a' * 40}… (100,006 characters)"
    shown = f"{'a' * 40}… (100,000 characters)"
    return [
        (["send", email, *rules, *store], f"{shown_email}: no live lead or contact in the CRM"),
        (["send", LONG, *rules, *store], f"'{shown}': not an email nor a CRM id"),
        (["retry", "--prospect", email, *store], f"no prospect '{shown_email}' in"),
        (["run", "--until", LONG, *rules, *store], f"--until '{shown}': not a time with a zone"),
        (["plan", "--at", LONG, *rules, *store], f"--at '{shown}': not a time with a zone"),
        (["status", "--store", LONG], f"--store {shown}: too long for a path"),
        (["plan", "--crm", LONG, *rules, *store], f"--crm {shown}: too long for a path"),
        (["apply", LONG, *rules, *store], f"PLAN {shown}: too long for a path"),
        (
            ["run", "--until", T0, "--changes", LONG, *rules, *store],
            f"--changes {shown}: too long for a path",
        ),
        (["plan", "--out", LONG, *rules, *store], f"--out {shown}: too long for a path"),
        (["status", "--format", LONG, *store], f"'{shown}' is not one of 'text', 'json'"),
    ]


@pytest.mark.parametrize("case", range(11))
def test_a_long_argument_is_echoed_by_its_start_and_length(tmp_path: Path, case: int) -> None:
    """Each message is one short line naming the value by its first 40 characters and its
    length, exit 2; before, it held the 100,000 characters (or, for a path, was exit 70)."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    args, said = _cases(org)[case]
    r = org.cli("sync", *args)
    assert r.exit_code == 2, r.output[:300]
    assert said in r.output, r.output[:300]
    assert len(r.output) < 400, r.output[:300]
    assert "Traceback" not in r.output and "internal error" not in r.output
