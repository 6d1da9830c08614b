"""One contract for the CRM port, run against the emulator and the Salesforce adapter.

The adapter runs over hand-written recordings shaped like Salesforce's
documented REST and SOAP answers (tests/crm/recorded/); each recording also
pins the requests the adapter must send (paths, SOQL, JSON bodies), in order.

`port(scenario)` gives the CRM port under test: the emulator (a fresh SQLite
file whose clock the test moves), or `SalesforceCrm` replaying
`recorded/<scenario>.json` in order with `responses`: each request must be
the next recorded one (method, path, query, JSON body), and every recorded
call must be made.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_time import T0, Clock

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmCallError
from mrules.crm.ids import to18
from mrules.crm.port import MAX_BATCH, CrmPort, Cursor, LeadConvert

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


UNTIL = T0 + dt.timedelta(hours=1)
LEUNG = {"LastName": "Chan", "Company": "Example SA", "Email": "leung@example.com"}


def _is_id(value: str | None, prefix: str) -> bool:
    return value is not None and len(value) == 18 and value[:3] == prefix and to18(value) == value


def test_create_then_update(port) -> None:
    crm = port("create_update")
    assert isinstance(crm, CrmPort)
    [created] = crm.create("Lead", [LEUNG])
    assert created.success and created.errors == ()
    assert _is_id(created.id, "00Q")
    [updated] = crm.update("Lead", [{"Id": created.id, "Phone": "+33 1 23 45 67 89"}])
    assert updated.success and updated.id == created.id
    usage = crm.api_usage()
    assert usage.calls_made == 2
    assert usage.used > 0 and usage.limit >= usage.used


def test_partial_failure_keeps_order_and_the_good_record(port) -> None:
    crm = port("partial_failure")
    results = crm.create(
        "Lead",
        [
            {"LastName": "Stone", "Company": "BigCorp", "Email": "bob@bigcorp.example"},
            {"LastName": "Petit"},
            {"LastName": "Ray", "Company": "Ray SARL", "Status": "Hot"},
            {"LastName": "a" * 81, "Company": "Long Ltd"},
        ],
    )
    assert [r.success for r in results] == [True, False, False, False]
    assert _is_id(results[0].id, "00Q")
    codes = [(r.errors[0].status_code, r.errors[0].fields) for r in results[1:]]
    assert codes == [
        ("REQUIRED_FIELD_MISSING", ("Company",)),
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ("Status",)),
        ("STRING_TOO_LONG", ("LastName",)),
    ]
    assert all(r.id is None for r in results[1:])


def test_query_since_a_cursor(port) -> None:
    crm = port("query_since_cursor")
    clock = Clock(crm)
    clock.at(0)
    [a] = crm.create(
        "Lead", [{"LastName": "Alpha", "Company": "Alpha Inc", "Email": "alpha@example.com"}]
    )
    clock.at(10)
    [b] = crm.create(
        "Lead", [{"LastName": "Beta", "Company": "Beta Inc", "Email": "beta@example.com"}]
    )
    fields = ["LastName", "Email"]
    everything = crm.query_changed("Lead", None, UNTIL, fields)
    assert [r.id for r in everything.records] == [a.id, b.id]
    assert everything.done
    assert everything.cursor == Cursor(T0 + dt.timedelta(minutes=10), b.id)
    assert everything.records[0].fields["Email"] == "alpha@example.com"
    assert everything.records[0].system_modstamp == T0
    after_a = crm.query_changed("Lead", Cursor(T0, a.id), UNTIL, fields)
    assert [r.id for r in after_a.records] == [b.id]
    page = crm.query_changed("Lead", None, UNTIL, fields, limit=1)
    assert [r.id for r in page.records] == [a.id]
    assert not page.done and page.cursor == Cursor(T0, a.id)


def test_delete_goes_to_the_recycle_bin(port) -> None:
    crm = port("deleted")
    clock = Clock(crm)
    [gone] = crm.create(
        "Lead", [{"LastName": "Gone", "Company": "Gone Ltd", "Email": "gone@example.com"}]
    )
    clock.at(10)
    [deleted] = crm.delete([gone.id])
    assert deleted.success and deleted.id == gone.id
    [again] = crm.delete([gone.id])
    assert not again.success and again.errors[0].status_code == "ENTITY_IS_DELETED"
    window = crm.get_deleted("Lead", T0.replace(hour=0), UNTIL)
    assert [d.id for d in window.records] == [gone.id]
    assert window.records[0].deleted_date == T0 + dt.timedelta(minutes=10)
    assert window.earliest_date_available <= T0 and window.latest_date_covered <= UNTIL
    changes = crm.query_changed("Lead", None, UNTIL, ["LastName", "Email"])
    assert [(r.id, r.is_deleted) for r in changes.records] == [(gone.id, True)]


def test_describe(port) -> None:
    crm = port("describe")
    info = crm.describe("Lead")
    assert info.key_prefix == "00Q" and not info.custom
    f = info.fields
    assert f["LastName"].required and f["LastName"].length == 80
    assert f["Company"].required and f["Email"].type == "email"
    assert not f["Status"].required and f["Status"].defaulted_on_create
    assert f["Status"].restricted_picklist and "Open - Not Contacted" in f["Status"].picklist_values
    assert not f["IsConverted"].createable and not f["IsConverted"].updateable
    assert "User" in f["OwnerId"].reference_to
    with pytest.raises(CrmCallError) as e:
        crm.describe("Invoice__c")
    assert not e.value.transient


def test_conversion_makes_the_lead_read_only(port) -> None:
    crm = port("conversion")
    clock = Clock(crm)
    [lead] = crm.create(
        "Lead", [{"LastName": "Blanc", "Company": "Example Org", "Email": "henry@example.org"}]
    )
    clock.at(20)
    [res] = crm.convert_leads(
        [LeadConvert(lead.id, "Closed - Converted", opportunity_name="Example Org Pilot")]
    )
    assert res.success and res.lead_id == lead.id
    assert _is_id(res.account_id, "001") and _is_id(res.contact_id, "003")
    assert _is_id(res.opportunity_id, "006")
    [refused] = crm.update("Lead", [{"Id": lead.id, "Phone": "+33 4 00 00 00 03"}])
    assert not refused.success
    assert refused.errors[0].status_code == "CANNOT_UPDATE_CONVERTED_LEAD"
    [contact] = crm.find("Contact", "Email", ["HENRY@example.org"], ["LastName", "Email"])
    assert contact.id == res.contact_id and contact.fields["LastName"] == "Blanc"


@pytest.mark.parametrize("kind", ["emulator", "salesforce"])
def test_batch_limit(kind: str, emulator, tmp_path) -> None:
    if kind == "emulator":
        crm = emulator
    else:
        pytest.importorskip("simple_salesforce")
        from simple_salesforce import Salesforce

        from mrules.crm.salesforce import SalesforceCrm

        crm = SalesforceCrm(Salesforce(session_id="x", instance_url="https://nowhere.invalid"))
    rows = [dict(LEUNG, Email=f"p{i}@example.com") for i in range(MAX_BATCH + 1)]
    with pytest.raises(CrmCallError) as e:
        crm.create("Lead", rows)
    assert e.value.code == "EXCEEDED_ID_LIMIT"
    assert crm.api_usage().calls_made == 0
