"""Fixtures for the CRM tests: an emulated CRM, and the Salesforce adapter over recorded HTTP.

`port(scenario)` gives the CRM port under test: the emulator (a fresh SQLite
file whose clock the test moves), or `SalesforceCrm` replaying
`recorded/<scenario>.json` in order with `responses`: each request must be
the next recorded one (method, path, query, JSON body), and every recorded
call must be made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_helpers import T0

from mrules.crm.emulator import EmulatedCrm

RECORDED = Path(__file__).parent / "recorded"


def _matchers(request: dict[str, Any]) -> list[Any]:
    from responses import matchers

    out: list[Any] = []
    if "query" in request:
        out.append(matchers.query_param_matcher(request["query"]))
    if "json" in request:
        out.append(matchers.json_params_matcher(request["json"]))
    for fragment in request.get("body_contains", ()):

        def contains(req: Any, fragment: str = fragment) -> tuple[bool, str]:
            body = req.body.decode() if isinstance(req.body, bytes) else str(req.body or "")
            return (fragment in body, f"the body lacks {fragment!r}")

        out.append(contains)
    return out


@pytest.fixture
def replay() -> Iterator[Callable[[str], Any]]:
    """replay(scenario) -> SalesforceCrm answering from recorded/<scenario>.json."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    from responses.registries import OrderedRegistry
    from simple_salesforce import Salesforce

    from mrules.crm.salesforce import SalesforceCrm

    mock = responses.RequestsMock(assert_all_requests_are_fired=True, registry=OrderedRegistry)
    mock.start()

    def make(scenario: str) -> SalesforceCrm:
        cassette = json.loads((RECORDED / f"{scenario}.json").read_text(encoding="utf-8"))
        base = f"{cassette['instance_url']}/services/data/v{cassette['api_version']}/"
        for call in cassette["calls"]:
            req, res = call["request"], call["response"]
            url = req.get("url") or base + req["path"]
            kwargs: dict[str, Any] = {"status": res["status"], "headers": res.get("headers", {})}
            if "json" in res:
                kwargs["json"] = res["json"]
            else:
                kwargs["body"] = res["body"]
            mock.add(req["method"], url, match=_matchers(req), **kwargs)
        sf = Salesforce(
            session_id="00DDn0000000001!recorded",
            instance_url=cassette["instance_url"],
            version=cassette["api_version"],
        )
        return SalesforceCrm(sf)

    try:
        yield make
    finally:
        try:
            mock.stop()
            mock.reset()
        except AssertionError:
            raise


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatedCrm]:
    crm = EmulatedCrm.open(tmp_path / "t.crm.db")
    crm.set_clock(T0)
    yield crm
    crm.close()


@pytest.fixture(params=["emulator", "salesforce"])
def port(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Any]:
    """port(scenario): the CRM port under test, for one recorded scenario."""
    if request.param == "emulator":
        crm = EmulatedCrm.open(tmp_path / "contract.crm.db")
        crm.set_clock(T0)
        request.addfinalizer(crm.close)
        return lambda scenario: crm
    replay = request.getfixturevalue("replay")
    return replay
