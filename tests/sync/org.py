"""An org for CLI-driven sync tests: a store, its local CRM (one user `alan@x.example`,
campaign "C" with statuses Sent and Responded) and a rule file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mrules.cli import main
from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmCallError, CrmError
from mrules.crm.port import WriteResult

__all__ = ["Org", "Refusal"]


class Org:
    """A store, its local CRM (one user, campaign "C") and a rule file, driven by the CLI."""

    def __init__(self, tmp: Path, rules: str) -> None:
        self.tmp = tmp
        self.rules = tmp / "rules.mr"
        self.rules.write_text(rules, "utf-8")
        self.store = tmp / "s.db"
        self.events = tmp / "ev.jsonl"
        seed = tmp / "seed"
        seed.mkdir()
        (seed / "org.json").write_text(json.dumps({"clock": "2026-11-01T00:00:00Z"}), "utf-8")
        (seed / "User.csv").write_text(
            "Id,Username,Email,LastName\nalan,alan@x.example,alan@x.example,Alan\n", "utf-8"
        )
        (seed / "Campaign.csv").write_text("Id,Name\ncamp-c,C\n", "utf-8")
        (seed / "CampaignMemberStatus.csv").write_text(
            "CampaignId,Label,HasResponded,IsDefault\n"
            "camp-c,Sent,false,true\ncamp-c,Responded,true,false\n",
            "utf-8",
        )
        self.ok("crm", "load", str(seed), "--store", str(self.store))

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    def ok(self, *args: str) -> str:
        r = self.cli(*args)
        assert r.exit_code == 0, (args, r.output)
        return r.output

    def submit(self, *lines: tuple[str, str, str]) -> None:
        with self.events.open("a") as f:
            for ts, who, form in lines:
                e = {"ts": ts, "type": "form_submit", "prospect": who, "asset": form}
                f.write(json.dumps(e) + "\n")
        self.ok("run", str(self.rules), str(self.events), "--store", str(self.store))

    def update(self, ts: str, who: str, fields: dict[str, object]) -> None:
        """A `prospect_update` of `who`'s fields, run."""
        e = {"ts": ts, "type": "prospect_update", "prospect": who, "fields": fields}
        with self.events.open("a") as f:
            f.write(json.dumps(e) + "\n")
        self.ok("run", str(self.rules), str(self.events), "--store", str(self.store))

    def sync(self, *args: str) -> Result:
        return self.cli("sync", *args, "--rules", str(self.rules), "--store", str(self.store))

    def status(self) -> dict[str, object]:
        out = self.ok("sync", "status", "--store", str(self.store), "--format", "json")
        return json.loads(out)  # type: ignore[no-any-return]

    def crm_rows(self, sobject: str) -> list[dict[str, object]]:
        crm = EmulatedCrm.open(self.tmp / "s.crm.db", create=False)
        try:
            return [dict(r.fields) for r in crm.records(sobject)]
        finally:
            crm.close()


class Refusal:
    """The local CRM's `method` (create, update) refuses `sobject` from its `nth` call on:
    the whole call (`error` a `CrmCallError`), or each of its records (a `CrmError`, or a
    tuple of them for a record refused for several reasons at once, as an org answers an
    sObject Collections call record by record).

    `calls` holds the size of every call for `sobject`; `lift()` gives the CRM back its
    own method (the access given, the field fixed)."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        method: str,
        sobject: str,
        error: CrmCallError | CrmError | tuple[CrmError, ...],
        nth: int = 1,
    ) -> None:
        self.calls: list[int] = []
        self._monkeypatch, self._method = monkeypatch, method
        self._original = original = getattr(EmulatedCrm, method)
        calls = self.calls

        def refusing(crm: EmulatedCrm, name: str, records: Any, **kw: Any) -> Any:
            if name == sobject:
                calls.append(len(records))
                if len(calls) >= nth:
                    if isinstance(error, CrmCallError):
                        raise error
                    errors = error if isinstance(error, tuple) else (error,)
                    return [WriteResult(None, False, errors) for _ in records]
            return original(crm, name, records, **kw)

        monkeypatch.setattr(EmulatedCrm, method, refusing)

    def lift(self) -> None:
        self._monkeypatch.setattr(EmulatedCrm, self._method, self._original)
