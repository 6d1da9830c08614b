"""`mrules sync --crm salesforce`: the commands over the Salesforce adapter, on recorded HTTP."""

from __future__ import annotations

RULES = """
user "alan@x.com"
field phone: text
form "Demo"
on submit of form "Demo" { assign to user "alan@x.com" }
sync salesforce {
  objects lead, contact
  match by email
  every 10 minutes batch 800
  map phone <-> "Phone" prefer most recent
}
"""
EVENTS = [
    {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "ann@x.com", "asset": "Demo"},
    {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "bob@x.com", "asset": "Demo"},
]
INSTANCE = "https://getcloudy.my.salesforce.com"

# The rest of this module runs the CLI as a user would, with MRULES_SF_* in the
# environment, against recorded/plan_apply.json: every request must be the next
# recorded one (method, path, SOQL, JSON body) and every recorded one must be made.

import datetime as dt  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from mrules.cli import main  # noqa: E402

RECORDED = Path(__file__).parent / "recorded"
ENV = {"MRULES_SF_SESSION_ID": "00DDn0000000001!recorded", "MRULES_SF_INSTANCE_URL": INSTANCE}
NOW = dt.datetime(2026, 11, 2, 9, 12, tzinfo=dt.UTC)


def _cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "rules.mr"
    rules.write_text(RULES, "utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), "utf-8")
    store = str(tmp_path / "s.db")
    assert _cli("run", str(rules), str(events), "--store", store).exit_code == 0
    return {"rules": str(rules), "store": store, "plan": str(tmp_path / "plan.json")}


WEBINAR = {
    "attributes": {"type": "Campaign"},
    "Id": "701Dn000000001AAA",
    "Name": "Webinar",
    "SystemModstamp": "2026-10-01T08:00:00.000+0000",
    "IsDeleted": False,
}
"""The org's campaign, as its query answers it, in the tests that read Campaign."""


def _org_world(tmp_path: Path, rules_text: str) -> tuple[str, list[str]]:
    """`rules_text` run over EVENTS into a new store: the store, and the common options of
    `sync` against the org."""
    rules = tmp_path / "rules.mr"
    rules.write_text(rules_text, "utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), "utf-8")
    store = str(tmp_path / "s.db")
    assert _cli("run", str(rules), str(events), "--store", store).exit_code == 0
    return store, ["--crm", "salesforce", "--rules", str(rules), "--store", store]


def _replay(name: str) -> Any:
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    from responses import matchers
    from responses.registries import OrderedRegistry

    cassette = json.loads((RECORDED / name).read_text("utf-8"))
    base = f"{cassette['instance_url']}/services/data/v{cassette['api_version']}/"
    mock = responses.RequestsMock(assert_all_requests_are_fired=True, registry=OrderedRegistry)
    for call in cassette["calls"]:
        req, res = call["request"], call["response"]
        match = []
        if "query" in req:
            match.append(matchers.query_param_matcher(req["query"]))
        if "json" in req:
            match.append(matchers.json_params_matcher(req["json"]))
        mock.add(
            req["method"],
            base + req["path"],
            match=match,
            status=res["status"],
            headers=res.get("headers", {}),
            json=res["json"],
        )
    return mock


def test_plan_and_apply_against_a_recorded_org(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)  # the SOQL reads up to now - 2 minutes
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with _replay("plan_apply.json"):
        plan = _cli("sync", "plan", *common, "--out", world["plan"], env=ENV)
        assert plan.exit_code == 2, plan.output
        assert "< link          bob@x.com  contact 003Dn000000001AAA" in plan.output
        assert "+ create        ann@x.com  lead" in plan.output
        assert 'Phone: ours (blank) <- CRM "+1 555 0101": crm wins' in plan.output
        saved = json.loads(Path(world["plan"]).read_text("utf-8"))
        assert saved["until"] == "2026-11-02T09:10:00.000+0000"
        applied = _cli("sync", "apply", world["plan"], *common, env=ENV)
        assert applied.exit_code == 0, applied.output
        assert "1 created, 1 linked" in applied.output and "0 errors" in applied.output
    state = _cli("state", "export", "--store", world["store"])
    people = {p["email"]: p for p in map(json.loads, state.output.splitlines())}
    assert (people["ann@x.com"]["crm_status"], people["ann@x.com"]["crm_id"]) == (
        "lead",
        "00QDn000000002AMAA",
    )
    assert (people["bob@x.com"]["crm_status"], people["bob@x.com"]["crm_id"]) == (
        "contact",
        "003Dn000000001AAA",
    )
    assert people["bob@x.com"]["fields"]["phone"] == "+1 555 0101"
    status = json.loads(
        _cli("sync", "status", "--store", world["store"], "--format", "json").output
    )
    assert status["links"] == 2 and status["queue"] == 0 and status["errors"] == 0
    # The org had no lead: the first read of Lead found none, and read up to the plan's time.
    assert status["cursors"] == {
        "Contact": "2026-11-01T08:00:00.000+0000",
        "Lead": "2026-11-02T09:10:00.000+0000",
    }


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "no Salesforce credentials in the environment"),
        ({"MRULES_SF_USERNAME": "me@x.com"}, "MRULES_SF_PASSWORD is not"),
        ({"MRULES_SF_SESSION_ID": "00D!x"}, "MRULES_SF_INSTANCE_URL is not"),
        ({"MRULES_SF_CONSUMER_KEY": "k"}, "MRULES_SF_CONSUMER_SECRET is not"),
        (  # client credentials at login.salesforce.com: refused there (it was exit 4)
            {"MRULES_SF_CONSUMER_KEY": "k", "MRULES_SF_CONSUMER_SECRET": "s"},
            "need MRULES_SF_DOMAIN set to the org's My Domain",
        ),
        (  # a host where its name goes: a DNS failure for an org not reached (exit 4)
            {
                "MRULES_SF_USERNAME": "me@x.com",
                "MRULES_SF_PASSWORD": "pw",
                "MRULES_SF_DOMAIN": "test.salesforce.com",
            },
            "MRULES_SF_DOMAIN is 'test.salesforce.com'",
        ),
    ],
)
def test_a_missing_variable_is_named(
    world: dict[str, str], env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("simple_salesforce")
    for k in [k for k in __import__("os").environ if k.startswith("MRULES_SF_")]:
        monkeypatch.delenv(k)
    # MRULES_CRM chooses the adapter when --crm is not given.
    r = _cli(
        "sync",
        "plan",
        "--rules",
        world["rules"],
        "--store",
        world["store"],
        env={"MRULES_CRM": "salesforce", **env},
    )
    assert r.exit_code == 2
    assert r.output.startswith("mrules: error: --crm salesforce: ") and named in r.output
    assert "Traceback" not in r.output


def test_the_missing_extra_is_named(world: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "simple_salesforce", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "mrules.crm.salesforce", raising=False)
    r = _cli(
        "sync",
        "apply",
        "--crm",
        "salesforce",
        "--rules",
        world["rules"],
        "--store",
        world["store"],
        env=ENV,
    )
    assert r.exit_code == 2
    assert "pip install 'mrules[salesforce]'" in r.output and "Traceback" not in r.output


def test_timed_changes_are_for_the_local_crm(world: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("simple_salesforce")
    changes = tmp_path / "c.jsonl"
    changes.write_text("", "utf-8")
    r = _cli(
        "sync",
        "run",
        "--crm",
        "salesforce",
        "--rules",
        world["rules"],
        "--store",
        world["store"],
        "--until",
        "2026-11-02T09:10:00Z",
        "--changes",
        str(changes),
        env=ENV,
    )
    assert r.exit_code == 2 and "--changes applies timed changes to the local CRM" in r.output


SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault>
<faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password,
 security token; or user locked out.</faultstring></soapenv:Fault></soapenv:Body>
</soapenv:Envelope>"""


def test_a_refused_login_exits_4(world: dict[str, str]) -> None:
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    env = {
        "MRULES_SF_USERNAME": "me@x.com.dev",
        "MRULES_SF_PASSWORD": "pw",
        "MRULES_SF_DOMAIN": "test",
    }
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(
            "POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_FAULT, status=500
        )
        r = _cli(
            "sync",
            "plan",
            "--crm",
            "salesforce",
            "--rules",
            world["rules"],
            "--store",
            world["store"],
            env=env,
        )
    assert r.exit_code == 4
    assert "cannot log in" in r.output and "INVALID_LOGIN" in r.output


def test_an_org_that_cannot_be_reached_at_login_exits_4_not_as_a_bug(
    world: dict[str, str],
) -> None:
    """No network, a proxy down, a mistyped MRULES_SF_DOMAIN: the login's HTTP call fails.
    That is the CRM failing (exit 4, one line), as a refused login is; it was a traceback
    and `internal error ... (this is a bug)`, exit 70."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import requests

    env = {"MRULES_SF_USERNAME": "me@x.com.dev", "MRULES_SF_PASSWORD": "pw"}
    for args in (
        ["crm", "describe", "Lead", "--crm", "salesforce", "--store", world["store"]],
        [
            "sync",
            "plan",
            "--crm",
            "salesforce",
            "--rules",
            world["rules"],
            "--store",
            world["store"],
        ],
    ):
        with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
            mock.add(
                "POST",
                "https://login.salesforce.com/services/Soap/u/59.0",
                body=requests.ConnectionError("Failed to resolve 'login.salesforce.com'"),
            )
            r = _cli(*args, env=env)
        assert r.exit_code == 4, r.output
        assert "cannot log in" in r.output and "CONNECTION_ERROR" in r.output
        assert "Traceback" not in r.output


def test_crm_describe_reads_the_org(world: dict[str, str]) -> None:
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    cassette = json.loads((RECORDED / "plan_apply.json").read_text("utf-8"))
    lead = next(c for c in cassette["calls"] if c["request"]["path"] == "sobjects/Lead/describe/")
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(
            "GET",
            f"{INSTANCE}/services/data/v59.0/sobjects/Lead/describe/",
            json=lead["response"]["json"],
        )
        r = _cli(
            "crm", "describe", "Lead", "--crm", "salesforce", "--store", world["store"], env=ENV
        )
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["keyPrefix"] == "00Q"
    required = [f["name"] for f in body["fields"] if f["required"]]
    assert required == ["LastName", "Company"]


def test_an_org_answering_another_shape_stops_the_command_with_exit_4(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gateway answering 200 with JSON of its own: the sync said "internal error".
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    base = f"{INSTANCE}/services/data/v59.0/"
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # The first call a plan makes describes User: fields without their names.
        mock.add("GET", base + "sobjects/User/describe/", json={"fields": [{"type": "id"}]})
        plan = _cli("sync", "plan", *common, env=ENV)
    assert plan.exit_code == 4, plan.output
    assert (
        "the org's answer to describe User is not of the shape Salesforce sends (no 'name')"
    ) in plan.output
    assert "internal error" not in plan.output


def test_an_unreachable_login_exits_4_and_a_bad_instance_url_exits_2(
    world: dict[str, str],
) -> None:
    """A login endpoint not reached was an internal error (exit 70, a traceback); an instance
    URL without its scheme sent every call to `https://None/` and each cycle said `retried
    later`, exit 0."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import requests

    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    env = {"MRULES_SF_USERNAME": "me@x.com", "MRULES_SF_PASSWORD": "pw", "MRULES_SF_DOMAIN": "x.my"}
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(
            "POST",
            "https://x.my.salesforce.com/services/Soap/u/59.0",
            body=requests.ConnectionError("Failed to resolve 'x.my.salesforce.com'"),
        )
        r = _cli("sync", "plan", *common, env=env)
    assert r.exit_code == 4, r.output
    assert "cannot log in: CONNECTION_ERROR" in r.output and "internal error" not in r.output
    env = {"MRULES_SF_SESSION_ID": "00D!x", "MRULES_SF_INSTANCE_URL": "getcloudy.my.salesforce.com"}
    r = _cli("sync", "apply", *common, env=env)
    assert r.exit_code == 2, r.output
    assert "MRULES_SF_INSTANCE_URL is 'getcloudy.my.salesforce.com'" in r.output


def test_an_expired_session_of_the_environment_exits_4(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MRULES_SF_SESSION_ID expired: nothing can log in again, yet the 401 was taken for an
    outage: `sync apply` said `the CRM failed for now (INVALID_SESSION_ID…): retried later`
    and exit 0, every cycle, with nothing ever synced."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    base = f"{INSTANCE}/services/data/v59.0/"
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    expired = [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]
    for command in ("apply", "plan"):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.add("GET", base + "sobjects/User/describe/", json=expired, status=401)
            r = _cli("sync", command, *common, env=ENV)
        assert r.exit_code == 4, r.output
        assert "INVALID_SESSION_ID" in r.output and "MRULES_SF_SESSION_ID" in r.output
        assert "retried later" not in r.output


SOAP_LOGIN = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">
<soapenv:Body><loginResponse><result><passwordExpired>false</passwordExpired>
<serverUrl>https://getcloudy.my.salesforce.com/services/Soap/u/59.0/00DDn0000000001</serverUrl>
<sessionId>00DDn0000000001!login</sessionId><userId>005Dn000000001AAA</userId></result>
</loginResponse></soapenv:Body></soapenv:Envelope>"""


def test_a_session_refused_again_after_a_new_login_stops_sync_run_with_exit_4(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The org refuses every session of a login that succeeds (a user or connected app
    whose sessions are not valid for the REST API): simple-salesforce logged in four times
    more for each call, and the refusal was taken for an outage: `sync run` said `the CRM
    failed for now (INVALID_SESSION_ID…): retried later` for every cycle, exit 0, nothing
    ever synced. One login again, and then the command stops (exit 4), saying why."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    env = {"MRULES_SF_USERNAME": "me@x.com", "MRULES_SF_PASSWORD": "pw"}
    login = "https://login.salesforce.com/services/Soap/u/59.0"
    refused = [
        {
            "errorCode": "INVALID_SESSION_ID",
            "message": "This session is not valid for use with the REST API",
        }
    ]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add("POST", login, body=SOAP_LOGIN)
        mock.add(
            "GET",
            f"{INSTANCE}/services/data/v59.0/sobjects/User/describe/",
            json=refused,
            status=401,
        )
        r = _cli(
            "sync",
            "run",
            "--until",
            "2026-11-02T10:00:00Z",
            "--crm",
            "salesforce",
            "--rules",
            world["rules"],
            "--store",
            world["store"],
            env=env,
        )
        logins = [c for c in mock.calls if c.request.url == login]
    assert r.exit_code == 4, r.output
    assert "INVALID_SESSION_ID" in r.output and "not valid for use with the REST API" in r.output
    assert "retried later" not in r.output and "Traceback" not in r.output
    assert len(logins) == 2  # the first login, and one again


def test_a_jwt_private_key_file_that_is_missing_or_not_a_key_exits_2(
    world: dict[str, str], tmp_path: Path
) -> None:
    """MRULES_SF_PRIVATE_KEY_FILE is a path the user gives: missing, unreadable or not a
    key, the message names the variable and the file, exit 2, before any HTTP call (it
    was `internal error ... (this is a bug)`, exit 70)."""
    pytest.importorskip("simple_salesforce")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("not a key\n", "utf-8")
    # An EC key: Salesforce's JWT flow is RS256 only; pyjwt raised InvalidKeyError (exit 70).
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for key_file in (str(tmp_path / "missing.pem"), str(tmp_path), str(not_a_key), str(ec_key)):
        env = {
            "MRULES_SF_CONSUMER_KEY": "3MVG9",
            "MRULES_SF_USERNAME": "me@x.com",
            "MRULES_SF_PRIVATE_KEY_FILE": key_file,
        }
        r = _cli(
            "crm", "describe", "Lead", "--crm", "salesforce", "--store", world["store"], env=env
        )
        assert r.exit_code == 2, r.output
        assert "MRULES_SF_PRIVATE_KEY_FILE" in r.output and key_file in r.output, r.output
        assert "Traceback" not in r.output
    assert "a key of type EC, where Salesforce's JWT bearer flow needs an RSA" in r.output


def _org_with_custom_fields(mock: Any, custom: int) -> list[str]:
    """An org whose Lead has `custom` custom fields of 25 characters (the describes of
    recorded/plan_apply.json, and no record), behind a server that refuses a URL past
    16,384 bytes as Salesforce does (414); answers the URLs asked, in order."""
    from responses import matchers  # noqa: F401  (responses is there: the caller skipped)

    cassette = json.loads((RECORDED / "plan_apply.json").read_text("utf-8"))
    base = f"{INSTANCE}/services/data/v59.0/"
    urls: list[str] = []
    for call in cassette["calls"][:6]:  # the describes of User, Group, Lead, Contact
        req, res = call["request"], call["response"]
        if not req["path"].endswith("describe/"):
            continue
        body = json.loads(json.dumps(res["json"]))
        if req["path"] == "sobjects/Lead/describe/":
            body["fields"] += [
                {"name": f"Custom_Field_Number_{i:04d}__c", "type": "string", "custom": True}
                for i in range(custom)
            ]
        mock.add("GET", base + req["path"], json=body)

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        urls.append(request.url)
        if len(request.url) > 16_384:
            return 414, {}, "<html><body>414 URI Too Long</body></html>"
        return 200, {}, json.dumps({"totalSize": 0, "done": True, "records": []})

    for path in ("query/", "queryAll/"):
        mock.add_callback("GET", base + path, callback=answer)
    return urls


def test_a_plan_on_an_org_with_700_custom_fields_keeps_its_urls_short(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan selected every field the describe lists: with 700 custom fields the URL of
    the Lead query passed 16,384 bytes, Salesforce answered 414, and every cycle stopped
    with `SERVER_UNAVAILABLE`, exit 4. A plan selects what it reads."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        urls = _org_with_custom_fields(mock, 700)
        plan = _cli("sync", "plan", *common, env=ENV)
    assert plan.exit_code == 2, plan.output
    assert "+ create        ann@x.com  lead" in plan.output
    assert urls and max(len(u) for u in urls) <= sf.URL_LIMIT
    assert not any("Custom_Field" in u for u in urls)


def test_a_query_timeout_is_retried_by_the_next_cycle(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Salesforce stops a query that runs too long (HTTP 400, QUERY_TIMEOUT): it was taken
    for a malformed request, and `sync apply` stopped with exit 4, when the same query
    can succeed later, as after the API limit."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    cassette = json.loads((RECORDED / "plan_apply.json").read_text("utf-8"))
    base = f"{INSTANCE}/services/data/v59.0/"
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    timeout = [
        {"errorCode": "QUERY_TIMEOUT", "message": "Your query request was running for too long."}
    ]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        for call in cassette["calls"][:6]:  # the describes of User, Group, Lead, Contact
            if call["request"]["path"].endswith("describe/"):
                mock.add("GET", base + call["request"]["path"], json=call["response"]["json"])
        mock.add("GET", base + "query/", json={"totalSize": 0, "done": True, "records": []})
        mock.add("GET", base + "queryAll/", json=timeout, status=400)  # the leads' changes
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert "QUERY_TIMEOUT" in r.output and "retried later" in r.output
    assert "ran too long" in r.output
    status = json.loads(
        _cli("sync", "status", "--store", world["store"], "--format", "json").output
    )
    assert status["cursors"] == {} and status["links"] == 0  # the next cycle reads again


def _describes(mock: Any) -> None:
    """The describes of recorded/plan_apply.json (User, Group, Lead, Contact)."""
    cassette = json.loads((RECORDED / "plan_apply.json").read_text("utf-8"))
    for call in cassette["calls"][:6]:
        if call["request"]["path"].endswith("describe/"):
            mock.add(
                "GET",
                f"{INSTANCE}/services/data/v59.0/" + call["request"]["path"],
                json=call["response"]["json"],
            )


def test_a_failed_user_read_stops_the_plan_and_a_lack_of_access_is_said(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any refusal of the User or Group read but a login's was taken for "no access": a
    MALFORMED_QUERY left every owner unknown, records went to the integration user, and
    nothing said so. Only a lack of access is skipped, with a note; else exit 4."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    base = f"{INSTANCE}/services/data/v59.0/"
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    malformed = [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token: 'FROM'"}]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _describes(mock)
        mock.add("GET", base + "query/", json=malformed, status=400)
        mock.add("GET", base + "queryAll/", json={"totalSize": 0, "done": True, "records": []})
        r = _cli("sync", "plan", *common, env=ENV)
    assert r.exit_code == 4, r.output
    assert "MALFORMED_QUERY" in r.output and "unexpected token" in r.output
    hidden = [{"errorCode": "INVALID_TYPE", "message": "sObject type 'User' is not supported."}]
    empty = {"totalSize": 0, "done": True, "records": []}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _describes(mock)
        mock.add("GET", base + "query/", json=hidden, status=400)  # User
        for _ in range(3):  # Group, then the searches by email
            mock.add("GET", base + "query/", json=empty)
        mock.add("GET", base + "queryAll/", json=empty)
        r = _cli("sync", "plan", *common, env=ENV)
    assert r.exit_code == 2, r.output
    assert "+ create        ann@x.com  lead" in r.output
    assert "note: the CRM's User records cannot be read (INVALID_TYPE" in r.output, r.output


def test_a_session_id_read_with_its_line_break_works_and_is_never_shown(
    world: dict[str, str],
) -> None:
    """MRULES_SF_SESSION_ID read from a file keeps its line break (a `.env` written on
    Windows: "\\r\\n"): requests refused the Authorization header in a message that quoted
    the whole token, and `sync apply` said `retried later`, exit 0, every cycle. The value
    is taken without its surrounding white space; one with a space or a line break inside
    is refused (exit 2), the variable named and the token never shown."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    from responses import matchers

    cassette = json.loads((RECORDED / "plan_apply.json").read_text("utf-8"))
    lead = next(c for c in cassette["calls"] if c["request"]["path"] == "sobjects/Lead/describe/")
    token = ENV["MRULES_SF_SESSION_ID"]
    describe = ["crm", "describe", "Lead", "--crm", "salesforce", "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(
            "GET",
            f"{INSTANCE}/services/data/v59.0/sobjects/Lead/describe/",
            json=lead["response"]["json"],
            match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
        )
        r = _cli(*describe, env={**ENV, "MRULES_SF_SESSION_ID": f" {token}\r\n"})
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["keyPrefix"] == "00Q"
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    for bad in (f"{token}\nexport X=1", token.replace("!", "! "), token + "\u00e9"):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            r = _cli("sync", "apply", *common, env={**ENV, "MRULES_SF_SESSION_ID": bad})
            assert not mock.calls
        assert r.exit_code == 2, r.output
        assert "MRULES_SF_SESSION_ID holds a space, a line break" in r.output
        assert token.split("!")[1] not in r.output and "Traceback" not in r.output


def _recorded_org(
    mock: Any,
    write: Any,
    answer: Any = None,
    fields: dict[str, list[Any]] | None = None,
    top: dict[str, dict[str, Any]] | None = None,
) -> None:
    """The org of recorded/plan_apply.json answering any order of calls: its describes
    (with `fields[OBJECT]` added, and the keys of `top[OBJECT]`, such as `createable`),
    each query `answer(soql)` when it gives one (a body, or an HTTP status and a body),
    else its recorded answer (none: no record), and `write` (when given) for sObject
    Collections creates."""
    from urllib.parse import parse_qs, urlsplit

    cassette = json.loads((RECORDED / "plan_apply.json").read_text("utf-8"))
    base = f"{INSTANCE}/services/data/v59.0/"
    answers = {}
    for call in cassette["calls"]:
        req = call["request"]
        if req["path"].endswith("describe/"):
            body = call["response"]["json"]
            more = (fields or {}).get(body["name"], [])
            body = {**body, **(top or {}).get(body["name"], {})}
            mock.add("GET", base + req["path"], json={**body, "fields": body["fields"] + more})
        elif "query" in req:
            answers[req["query"]["q"]] = call["response"]["json"]

    def query(request: Any) -> tuple[int, dict[str, str], str]:
        soql = parse_qs(urlsplit(request.url).query)["q"][0]
        empty = {"totalSize": 0, "done": True, "records": []}
        given = answer(soql) if answer is not None else None
        if isinstance(given, tuple):  # (HTTP status, body): a refusal
            return given[0], {}, json.dumps(given[1])
        return 200, {}, json.dumps(given or answers.get(soql, empty))

    for path in ("query/", "queryAll/"):
        mock.add_callback("GET", base + path, callback=query)
    if write is not None:
        mock.add_callback("POST", base + "composite/sobjects", callback=write)


def test_a_session_expiring_at_the_write_stops_the_cycle_and_the_next_one_does_it(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session of MRULES_SF_SESSION_ID expires between a cycle's reads and its write:
    exit 4 with Salesforce's message and what to do (it showed simple-salesforce's
    `Expired session for URL. Response content: [{'message': ...}]`); nothing is lost:
    with a new session the same command links and creates what the cycle had to."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    expired = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, lambda request: (401, {}, json.dumps(expired)))
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 4, r.output
    assert r.output.startswith(
        "mrules: error: the CRM refused the call: INVALID_SESSION_ID: Session expired or"
        " invalid (the session of MRULES_SF_SESSION_ID expired or was revoked: give a new one"
    ), r.output
    assert "Response content" not in r.output and "retried later" not in r.output
    created = [{"id": "00QDn000000002AMAA", "success": True, "errors": []}]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, lambda request: (200, {}, json.dumps(created)))
        r = _cli("sync", "apply", *common, env={**ENV, "MRULES_SF_SESSION_ID": "00DDn0!new"})
    assert r.exit_code == 0, r.output
    assert "1 created, 1 linked" in r.output and "0 errors" in r.output
    state = _cli("state", "export", "--store", world["store"])
    people = {p["email"]: p for p in map(json.loads, state.output.splitlines())}
    assert people["ann@x.com"]["crm_id"] == "00QDn000000002AMAA"
    assert people["bob@x.com"]["crm_id"] == "003Dn000000001AAA"


def test_a_jwt_user_who_has_not_approved_the_app_is_one_line_with_what_to_do(
    world: dict[str, str], tmp_path: Path
) -> None:
    """The commonest refusal of a JWT login (`invalid_grant`, "user hasn't approved this
    consumer"): simple-salesforce printed a UserWarning of eight lines, its file and
    line, before the command's error. One line now, saying what to set in the org."""
    import warnings

    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    env = {
        "MRULES_SF_CONSUMER_KEY": "3MVG9key",
        "MRULES_SF_USERNAME": "integration@getcloudy.com",
        "MRULES_SF_PRIVATE_KEY_FILE": str(key_file),
    }
    refused = {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(
            "POST", "https://login.salesforce.com/services/oauth2/token", json=refused, status=400
        )
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            r = _cli(
                "crm", "describe", "Lead", "--crm", "salesforce", "--store", world["store"], env=env
            )
    assert r.exit_code == 4, r.output
    assert not [w for w in shown if "simple_salesforce" in w.filename], shown
    assert r.output.count("\n") == 1 and "Warning" not in r.output, r.output
    assert r.output.startswith(
        "mrules: error: --crm salesforce: cannot log in: LOGIN_FAILED: Authentication failed"
        " (code: invalid_grant): user hasn't approved this consumer (the JWT flow needs the"
        " integration user pre-authorized"
    )


@pytest.mark.parametrize(
    ("url", "answer", "env"),
    [
        (  # a proxy's page that is no XML, where the SOAP login answers
            "https://login.salesforce.com/services/Soap/u/59.0",
            {"body": "Service temporarily rerouted"},
            {"MRULES_SF_USERNAME": "me@x.com", "MRULES_SF_PASSWORD": "pw"},
        ),
        (  # an OAuth answer without the instance_url
            "https://getcloudy.my.salesforce.com/services/oauth2/token",
            {"json": {"access_token": "00D!x", "token_type": "Bearer"}},
            {
                "MRULES_SF_CONSUMER_KEY": "k",
                "MRULES_SF_CONSUMER_SECRET": "s",
                "MRULES_SF_DOMAIN": "getcloudy.my",
            },
        ),
        (  # JSON of another shape, refused or not
            "https://getcloudy.my.salesforce.com/services/oauth2/token",
            {"json": ["gateway"], "status": 502},
            {
                "MRULES_SF_CONSUMER_KEY": "k",
                "MRULES_SF_CONSUMER_SECRET": "s",
                "MRULES_SF_DOMAIN": "getcloudy.my",
            },
        ),
    ],
)
def test_a_login_answer_of_another_shape_exits_4_not_as_a_bug(
    world: dict[str, str], url: str, answer: dict[str, Any], env: dict[str, str]
) -> None:
    """simple-salesforce raised ExpatError or AttributeError out of the login: `internal
    error ... (this is a bug)`, exit 70, and a traceback saved."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add("POST", url, **answer)
        r = CliRunner(env=env).invoke(
            main, ["crm", "describe", "Lead", "--crm", "salesforce", "--store", world["store"]]
        )
    assert r.exit_code == 4, r.output
    assert r.output.startswith(
        "mrules: error: --crm salesforce: cannot log in: UNKNOWN_EXCEPTION: the org's answer"
        " to the login is not of the shape Salesforce sends ("
    ), r.output
    assert r.output.count("\n") == 1


def _status(store: str) -> dict[str, Any]:
    return json.loads(_cli("sync", "status", "--store", store, "--format", "json").output)


def _world_of(tmp_path: Path, people: list[str]) -> dict[str, str]:
    """The rules of this module, and a form submitted by each of `people`."""
    rules = tmp_path / "rules.mr"
    rules.write_text(RULES, "utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps({**EVENTS[0], "prospect": p}) + "\n" for p in people), "utf-8"
    )
    store = str(tmp_path / "s.db")
    assert _cli("run", str(rules), str(events), "--store", store).exit_code == 0
    return {"rules": str(rules), "store": store}


def _lead_result(i: int) -> dict[str, Any]:
    return {"id": f"00QDn00000000{i}AMAA", "success": True, "errors": []}


def test_per_record_errors_of_a_write_keep_the_good_records_and_queue_the_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sObject Collections create (allOrNone false) answered record by record, as an
    org with duplicate and validation rules does: the good records are linked, each bad
    one is in the error queue with Salesforce's statusCode and message, and a record
    locked by another transaction (UNABLE_TO_LOCK_ROW) waits for the next cycle."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    people = ["ann@x.com", "dup@x.com", "val@x.com", "bad@x.com", "gone@x.com", "lock@x.com"]
    world = _world_of(tmp_path, people)
    refused = {
        "dup@x.com": ("DUPLICATES_DETECTED", "Use one of these records?", []),
        "val@x.com": (
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Company must be a real company name",
            ["Company"],
        ),
        "bad@x.com": ("INVALID_EMAIL_ADDRESS", "Email: invalid email address: bad@x.com", []),
        "gone@x.com": ("ENTITY_IS_DELETED", "entity is deleted", ["OwnerId"]),
        "lock@x.com": (
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records: 005Dn000000001AAA",
            [],
        ),
    }
    sent: list[list[str]] = []

    def write(request: Any) -> tuple[int, dict[str, str], str]:
        emails = [r["Email"] for r in json.loads(request.body)["records"]]
        sent.append(emails)
        results = []
        for i, email in enumerate(emails):
            if email in refused:
                code, message, fields = refused[email]
                error = {"statusCode": code, "message": message, "fields": fields}
                results.append({"success": False, "errors": [error]})
            else:
                results.append(_lead_result(i))
        return 200, {"Sforce-Limit-Info": "api-usage=52/15000"}, json.dumps(results)

    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, write)
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert sorted(sent[0]) == sorted(people)
    assert "1 created" in r.output and "4 errors" in r.output, r.output
    status = _status(world["store"])
    assert status["errors_by_code"] == {
        "DUPLICATES_DETECTED": 1,
        "ENTITY_IS_DELETED": 1,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION": 1,
        "INVALID_EMAIL_ADDRESS": 1,
    }, status
    shown = _cli("sync", "status", "--store", world["store"]).output
    for email, (code, message, _fields) in refused.items():
        if code != "UNABLE_TO_LOCK_ROW":
            assert f"{email} lead *record: {code} {message}" in shown, shown
    people_now = {
        p["email"]: p
        for p in map(
            json.loads, _cli("state", "export", "--store", world["store"]).output.splitlines()
        )
    }
    assert people_now["ann@x.com"]["crm_id"] == f"00QDn00000000{sent[0].index('ann@x.com')}AMAA"
    assert people_now["lock@x.com"]["crm_id"] is None
    assert status["queue"] >= 1  # the locked record is tried again by the next cycle


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            403,
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
        ),
        (
            503,
            [
                {
                    "message": "unable to obtain exclusive access to this record",
                    "errorCode": "UNABLE_TO_LOCK_ROW",
                }
            ],
        ),
        (503, [{"message": "Service Unavailable", "errorCode": "SERVER_UNAVAILABLE"}]),
    ],
)
def test_the_api_limit_or_an_outage_at_the_write_is_retried_and_nothing_lost(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch, status: int, body: list[Any]
) -> None:
    """The org's daily API limit (HTTP 403 REQUEST_LIMIT_EXCEEDED), a row lock or an
    outage (503) fails the cycle's write as a whole: `retried later`, exit 0, no error
    queued, the prospects kept in the queue; the next cycle writes them."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    # The limit's refusal says the org's usage, as its answer gives it (the figure of the
    # last success, 14,990, was shown by `api_usage()` after it: simple-salesforce reads
    # the header of successful answers only).
    usage = {"Sforce-Limit-Info": "api-usage=15000/15000"} if status == 403 else {}
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, lambda request: (status, usage, json.dumps(body)))
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    said = f"{body[0]['errorCode']}: {body[0]['message']}"
    if status == 403:
        said += " (API usage 15,000 of 15,000 calls in the last 24 hours)"
    assert f"the CRM failed for now ({said})" in r.output, r.output
    assert "retried later" in r.output
    before = _status(world["store"])
    assert before["errors"] == 0 and before["queue"] >= 1, before
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, lambda request: (200, {}, json.dumps([_lead_result(2)])))
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert "1 created" in r.output and "0 errors" in r.output
    after = _status(world["store"])
    assert after["queue"] == 0 and after["errors"] == 0 and after["links"] == 2


def _contact(n: int, email: str, minute: int) -> dict[str, Any]:
    rid = f"003Dn00000000{n}AAA"
    return {
        "attributes": {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{rid}"},
        "Email": email,
        "Phone": f"+1 555 010{n}",
        "OwnerId": "005Dn000000001AAA",
        "LastModifiedDate": f"2026-11-01T08:{minute:02d}:00.000+0000",
        "Id": rid,
        "SystemModstamp": f"2026-11-01T08:{minute:02d}:00.000+0000",
        "IsDeleted": False,
    }


def test_changes_read_in_more_than_one_page_are_all_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Salesforce answers a query in pages (`done: false`, `nextRecordsUrl`): the contacts
    of every page are read, linked and their values taken."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    world = _world_of(tmp_path, ["bob@x.com", "cid@x.com", "dee@x.com"])
    pages = [
        [_contact(1, "bob@x.com", 0)],
        [_contact(2, "cid@x.com", 1)],
        [_contact(3, "dee@x.com", 2)],
    ]
    locator = "/services/data/v59.0/query/01gDn00000000Ab-{}"

    def answer(soql: str) -> dict[str, Any] | None:
        if soql.startswith("SELECT Email, Phone, OwnerId, LastModifiedDate") and (
            "FROM Contact WHERE SystemModstamp <=" in soql
        ):
            return {
                "totalSize": 3,
                "done": False,
                "nextRecordsUrl": locator.format(1),
                "records": pages[0],
            }
        return None

    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, None, answer)
        for i, records in enumerate(pages[1:], start=1):
            last = i == len(pages) - 1
            mock.add(
                "GET",
                INSTANCE + locator.format(i),
                json={
                    "totalSize": 3,
                    "done": last,
                    **({} if last else {"nextRecordsUrl": locator.format(i + 1)}),
                    "records": records,
                },
            )
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert "0 created, 3 linked" in r.output, r.output
    state = _cli("state", "export", "--store", world["store"]).output.splitlines()
    people = {p["email"]: p for p in map(json.loads, state)}
    for n, email in enumerate(["bob@x.com", "cid@x.com", "dee@x.com"], start=1):
        assert people[email]["crm_id"] == f"003Dn00000000{n}AAA"
        assert people[email]["fields"]["phone"] == f"+1 555 010{n}"
    assert _status(world["store"])["cursors"]["Contact"] == "2026-11-01T08:02:00.000+0000"


def test_a_lead_found_converted_makes_the_prospect_follow_its_contact(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sales convert the lead a cycle created: the next cycle reads it with `IsConverted`
    and `ConvertedContactId`, and the prospect follows the contact (its id, its status,
    the contact's values), as Pardot's prospect does, even when the lead was merged into a
    contact of another email: only `ConvertedContactId` ties them."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, lambda request: (200, {}, json.dumps([_lead_result(2)])))
        assert _cli("sync", "apply", *common, env=ENV).exit_code == 0
    lead_id = "00QDn000000002AMAA"
    converted = {
        "attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{lead_id}"},
        "Email": "ann@x.com",
        "Phone": None,
        "OwnerId": "005Dn000000001AAA",
        "IsConverted": True,
        "ConvertedContactId": "003Dn000000002AAA",
        "LastModifiedDate": "2026-11-02T09:15:00.000+0000",
        "Id": lead_id,
        "SystemModstamp": "2026-11-02T09:15:00.000+0000",
        "IsDeleted": False,
    }
    contact = {  # an existing contact the lead was merged into, of another email
        **_contact(2, "ann.smith@x.com", 0),
        "LastModifiedDate": "2026-11-02T09:15:00.000+0000",
        "SystemModstamp": "2026-11-02T09:15:00.000+0000",
    }

    def answer(soql: str) -> dict[str, Any] | None:
        records = []
        if "FROM Lead WHERE SystemModstamp <= 2026-11-02T09:30:00Z AND" in soql:
            records = [converted]
        elif "FROM Contact WHERE SystemModstamp <= 2026-11-02T09:30:00Z AND" in soql:
            records = [contact]
        else:
            return None
        return {"totalSize": len(records), "done": True, "records": records}

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW + dt.timedelta(minutes=20))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _recorded_org(mock, None, answer)
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    state = _cli("state", "export", "--store", world["store"]).output.splitlines()
    ann = next(p for p in map(json.loads, state) if p["email"] == "ann@x.com")
    assert (ann["crm_status"], ann["crm_id"]) == ("contact", "003Dn000000002AAA")
    assert ann["fields"]["phone"] == "+1 555 0102"
    assert _status(world["store"])["links"] == 2


def test_a_session_expiring_between_two_write_batches_loses_and_doubles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """250 leads to create: the first call of 200 succeeds, then MRULES_SF_SESSION_ID
    expires (HTTP 401 on the second). Exit 4, the message counts what the cycle wrote;
    with a new session the same command links the 200 the org has (found by email) and
    creates the other 50: 250 leads in the org, one for each prospect."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import re

    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    people = [f"p{i:03d}@x.com" for i in range(250)]
    world = _world_of(tmp_path, people)
    leads: dict[str, dict[str, Any]] = {}  # the org's leads, by email
    posts: list[int] = []

    def lead(email: str) -> dict[str, Any]:
        rid = f"00QDn0000{len(leads) + 1:05d}AAA"
        return {
            "attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{rid}"},
            "Email": email,
            "Phone": None,
            "OwnerId": "005Dn000000001AAA",
            "IsConverted": False,
            "ConvertedContactId": None,
            "LastModifiedDate": "2026-11-02T09:11:00.000+0000",
            "Id": rid,
            "SystemModstamp": "2026-11-02T09:11:00.000+0000",
            "IsDeleted": False,
        }

    def write(expire_at: int) -> Any:
        def answer(request: Any) -> tuple[int, dict[str, str], str]:
            posts.append(len(json.loads(request.body)["records"]))
            if len(posts) == expire_at:
                expired = [
                    {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
                ]
                return 401, {}, json.dumps(expired)
            results = []
            for r in json.loads(request.body)["records"]:
                leads[r["Email"]] = lead(r["Email"])
                results.append({"id": leads[r["Email"]]["Id"], "success": True, "errors": []})
            return 200, {}, json.dumps(results)

        return answer

    def query(soql: str) -> dict[str, Any] | None:
        searched = re.search(r"FROM Lead WHERE Email IN \((.*)\)", soql)
        if searched:
            records = [leads[e] for e in re.findall(r"'([^']*)'", searched.group(1)) if e in leads]
        elif "FROM Lead WHERE SystemModstamp" in soql:
            records = sorted(leads.values(), key=lambda r: r["Id"])
        else:
            return None
        return {"totalSize": len(records), "done": True, "records": records}

    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, write(expire_at=2), query)
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 4, r.output
    assert posts == [200, 50] and len(leads) == 200
    assert "INVALID_SESSION_ID: Session expired or invalid" in r.output
    assert "200 records created" in r.output and "writes nothing twice" in r.output
    monkeypatch.setattr(sf, "_utcnow", lambda: NOW + dt.timedelta(minutes=10))
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, write(expire_at=0), query)
        r = _cli("sync", "apply", *common, env={**ENV, "MRULES_SF_SESSION_ID": "00DDn0!new"})
    assert r.exit_code == 0, r.output
    assert "50 created, 200 linked" in r.output and "0 errors" in r.output
    assert len(leads) == 250 and posts[2:] == [50]
    state = _cli("state", "export", "--store", world["store"]).output.splitlines()
    linked = {p["email"]: p["crm_id"] for p in map(json.loads, state)}
    assert {linked[e] for e in people} == {leads[e]["Id"] for e in people}
    assert len(set(linked.values())) == 250


def test_a_plan_says_which_mapped_fields_the_org_lacks_or_will_refuse(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The org's describe decides before any write: a mapped field the org lacks (or
    hides from the integration user: describe lists only what it may see) is a note and
    is not synced; a formula field (not createable, not updateable) shows the error the
    org would answer, in the plan, and nothing is sent."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    rules = Path(world["rules"])
    rules.write_text(
        RULES.replace(
            'map phone <-> "Phone" prefer most recent',
            'map phone <-> "Score_Band__c" prefer ours\n  map rating <-> "Rating__c" prefer ours',
        ).replace("field phone: text", "field phone: text\nfield rating: text"),
        "utf-8",
    )
    events = [{**EVENTS[0], "type": "prospect_update", "fields": {"phone": "A"}}]
    events_file = rules.parent / "more.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    ran = _cli("run", str(rules), str(events_file), "--store", world["store"])
    assert ran.exit_code == 0, ran.output
    formula = {
        "name": "Score_Band__c",
        "label": "Score Band",
        "type": "string",
        "length": 1300,
        "nillable": True,
        "createable": False,
        "updateable": False,
        "calculated": True,
        "custom": True,
        "defaultedOnCreate": False,
    }
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _recorded_org(mock, None, fields={"Lead": [formula], "Contact": [formula]})
        r = _cli("sync", "plan", *common, env=ENV)
        assert not [c for c in mock.calls if c.request.method != "GET"]
    assert r.exit_code == 2, r.output
    assert "note: Lead has no field Rating__c: not synced on Leads" in r.output, r.output
    assert "note: Contact has no field Rating__c: not synced on Contacts" in r.output
    assert "expected error INVALID_FIELD_FOR_INSERT_UPDATE on Score_Band__c" in r.output


@pytest.mark.parametrize("spelled", ["Salesforce", "SALESFORCE"])
def test_crm_salesforce_is_taken_in_any_case(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    """`--crm Salesforce` (or MRULES_CRM=SALESFORCE) was taken for a local CRM file of that
    name: `Salesforce: no such CRM file (create one with mrules crm load)`, exit 2, for a
    user who meant the org. A file so named is `./Salesforce`."""
    pytest.importorskip("simple_salesforce")
    for k in [k for k in __import__("os").environ if k.startswith("MRULES_SF_")]:
        monkeypatch.delenv(k)
    common = ["--rules", world["rules"], "--store", world["store"]]
    r = _cli("sync", "plan", "--crm", spelled, *common)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("mrules: error: --crm salesforce: no Salesforce credentials")
    r = _cli("sync", "plan", *common, env={"MRULES_CRM": spelled})
    assert r.output.startswith("mrules: error: --crm salesforce: no Salesforce credentials")
    r = _cli("sync", "plan", "--crm", f"./{spelled}", *common)
    assert r.output.startswith(f"mrules: error: {spelled}: no such CRM file"), r.output


def _paging_org(mock: Any, contacts: list[dict[str, Any]]) -> list[str]:
    """The org of `_recorded_org` with `contacts` changed, answering their query as
    Salesforce does: at most 2,000 records an answer, the rest by `nextRecordsUrl`, the
    SOQL's LIMIT and cursor obeyed. Returns the URLs of the Contact reads made."""
    import re
    from urllib.parse import urlsplit

    reads: list[str] = []
    pending: dict[str, list[dict[str, Any]]] = {}
    locator = "/services/data/v59.0/query/01gDn00000000Zz-{}"

    def page(rows: list[dict[str, Any]]) -> dict[str, Any]:
        if len(rows) <= 2000:
            return {"totalSize": len(rows), "done": True, "records": rows}
        url = locator.format(len(pending) + 1)
        pending[url] = rows[2000:]
        return {
            "totalSize": len(rows),
            "done": False,
            "nextRecordsUrl": url,
            "records": rows[:2000],
        }

    def answer(soql: str) -> dict[str, Any] | None:
        if "FROM Contact WHERE SystemModstamp <=" not in soql or "Phone" not in soql:
            return None
        reads.append(soql)
        after = re.search(r"Id > '(\w+)'", soql)
        rows = [c for c in contacts if after is None or c["Id"] > after.group(1)]
        limit = re.search(r" LIMIT (\d+)$", soql)
        if limit:
            rows = rows[: int(limit.group(1))]
        return page(rows)

    def more(request: Any) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url).path
        reads.append(url)
        return 200, {}, json.dumps(page(pending.pop(url)))

    _recorded_org(mock, None, answer)
    mock.add_callback("GET", re.compile(re.escape(INSTANCE + locator[:-2]) + ".*"), callback=more)
    return reads


def test_a_full_page_of_changes_costs_one_call(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,500 contacts changed: two answers of Salesforce (2,000 records, then 500), two
    calls. The query asked for 2,001 rows to know whether more followed, and the 2,001st
    came in a second answer of its own: three calls, one more for every full page."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    contacts = []
    for i in range(2500):
        stamp = (start + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        rid = f"003Dn{i:010d}AAA"
        contacts.append(
            {
                "attributes": {
                    "type": "Contact",
                    "url": f"/services/data/v59.0/sobjects/Contact/{rid}",
                },
                "Email": f"c{i}@elsewhere.example",
                "Phone": None,
                "OwnerId": "005Dn000000001AAA",
                "LastModifiedDate": stamp,
                "Id": rid,
                "SystemModstamp": stamp,
                "IsDeleted": False,
            }
        )
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        reads = _paging_org(mock, contacts)
        r = _cli("sync", "plan", *common, "--format", "json", env=ENV)
    assert r.exit_code == 2, r.output
    assert len(reads) == 2, reads
    plan = json.loads(r.output)
    assert plan["cursors_to"]["Contact"] == ["2026-11-01T00:41:39.000+0000", contacts[-1]["Id"]]


CAMPAIGN_RULES = (
    RULES.replace("objects lead, contact", "objects lead, contact, campaign")
    .replace(
        'assign to user "alan@x.com" }',
        'assign to user "alan@x.com"\n  add to crm campaign "Webinar" status "Responded" }',
    )
    .replace('form "Demo"\n', 'form "Demo"\ncrm campaign "Webinar"\n')
)


def _describe(name: str, prefix: str, fields: list[tuple[str, str]]) -> dict[str, Any]:
    """A describe answer of `name` with `fields` (name, type) and the system fields."""
    every = [*fields, ("Id", "id"), ("SystemModstamp", "datetime"), ("IsDeleted", "boolean")]
    return {
        "name": name,
        "label": name,
        "keyPrefix": prefix,
        "custom": False,
        "fields": [
            {
                "name": f,
                "label": f,
                "type": t,
                "nillable": True,
                "createable": f not in ("Id", "SystemModstamp", "IsDeleted"),
                "updateable": f not in ("Id", "SystemModstamp", "IsDeleted"),
                "defaultedOnCreate": False,
                "length": 80 if t == "string" else 0,
                "custom": False,
                "externalId": False,
                "picklistValues": [],
                "referenceTo": [],
                "restrictedPicklist": False,
            }
            for f, t in every
        ],
    }


def test_campaign_unreadable_leads_and_contacts_go_on_and_the_next_cycle_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integration user that may not read Campaign (the describe answers NOT_FOUND, a
    query `sObject type 'Campaign' is not supported`) stopped the whole `sync apply`,
    exit 4: leads and contacts waited with it. The cycle goes on without the campaign
    part, says it in one line naming the object and the permission, holds each
    membership in the error queue, and exits 3 (partly done); once the access is given,
    the next cycle reads the campaigns from where it was and writes the memberships."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    store, common = _org_world(tmp_path, CAMPAIGN_RULES)
    base = f"{INSTANCE}/services/data/v59.0/"
    not_found = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    unsupported = [
        {"errorCode": "INVALID_TYPE", "message": "sObject type 'Campaign' is not supported."}
    ]

    def refused(soql: str) -> Any:
        return (400, unsupported) if " FROM Campaign " in soql else None

    created = [{"id": "00QDn000000002AMAA", "success": True, "errors": []}]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        for name in ("Campaign", "CampaignMember"):
            mock.add("GET", f"{base}sobjects/{name}/describe/", json=not_found, status=404)
        _recorded_org(mock, lambda request: (200, {}, json.dumps(created)), refused)
        planned = _cli("sync", "plan", *common, "--format", "json", env=ENV)
        r = _cli("sync", "apply", *common, env=ENV)
    assert planned.exit_code == 2, planned.output
    # The plan says the memberships will be held, as apply holds them.
    plan = json.loads(planned.output)
    held = [o for o in plan["ops"] if o["op"] == "campaign_member"]
    assert [(e["field"], e["code"]) for o in held for e in o["expected_errors"]] == [
        ("*campaign", "NOT_FOUND"),
        ("*campaign", "NOT_FOUND"),
    ], held
    assert plan["summary"]["expected_errors"] == 2
    assert r.exit_code == 3, r.output
    assert r.output.count("error NOT_FOUND") == 2, r.output
    assert "1 created, 1 linked" in r.output, r.output
    said = (
        "  not done: the integration user may not read Campaign (NOT_FOUND: The requested"
        " resource does not exist): give it Read on Campaign (its profile or a permission"
        " set); the rest syncs without it, and each cycle tries Campaign again"
    )
    assert said in r.output.splitlines(), r.output
    assert "Traceback" not in r.output and "refused the call" not in r.output
    status = _status(store)
    assert status["links"] == 2 and status["queue"] == 2, status
    assert status["errors_by_code"] == {"NOT_FOUND": 2}, status
    assert set(status["cursors"]) == {"Contact", "Lead"}, status  # Campaign: read again
    assert [n["object"] for n in status["no_access"]] == ["Campaign", "CampaignMember"]
    shown = _cli("sync", "status", "--store", store).output.splitlines()
    assert "not done by the last cycle: " + said.removeprefix("  not done: ") in shown, shown

    campaign = {
        "attributes": {"type": "Campaign"},
        "Id": "701Dn000000001AAA",
        "Name": "Webinar",
        "Type": "Webinar",
        "Status": "Planned",
        "BudgetedCost": None,
        "ActualCost": None,
        "StartDate": None,
        "SystemModstamp": "2026-10-01T08:00:00.000+0000",
        "IsDeleted": False,
    }

    def readable(soql: str) -> Any:
        if " FROM Campaign " in soql:
            return {"totalSize": 1, "done": True, "records": [campaign]}
        return None

    members: list[dict[str, Any]] = []

    def write(request: Any) -> tuple[int, dict[str, str], str]:
        records = json.loads(request.body)["records"]
        members.extend(records)
        ok = [{"id": f"00vDn00000000{i}AAA", "success": True, "errors": []} for i in range(2)]
        return 200, {}, json.dumps(ok[: len(records)])

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            "GET",
            f"{base}sobjects/Campaign/describe/",
            json=_describe(
                "Campaign",
                "701",
                [
                    ("Name", "string"),
                    ("Type", "picklist"),
                    ("Status", "picklist"),
                    ("BudgetedCost", "currency"),
                    ("ActualCost", "currency"),
                    ("StartDate", "date"),
                ],
            ),
        )
        mock.add(
            "GET",
            f"{base}sobjects/CampaignMember/describe/",
            json=_describe(
                "CampaignMember",
                "00v",
                [
                    ("CampaignId", "reference"),
                    ("ContactId", "reference"),
                    ("LeadId", "reference"),
                    ("Status", "picklist"),
                    ("HasResponded", "boolean"),
                    ("CreatedDate", "datetime"),
                ],
            ),
        )
        _recorded_org(mock, write, readable)
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert "2 campaign members" in r.output and "not done" not in r.output, r.output
    assert sorted(m.get("LeadId") or m.get("ContactId") for m in members) == [
        "003Dn000000001AAA",
        "00QDn000000002AMAA",
    ]
    assert {m["CampaignId"] for m in members} == {"701Dn000000001AAA"}
    status = _status(store)
    assert status["queue"] == 0 and status["errors"] == 0, status
    assert "Campaign" in status["cursors"] and status["no_access"] == [], status


def test_campaign_unreadable_sync_plan_says_it_and_sync_run_exits_3(
    world: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync plan` says what it leaves out (`not done:`, `no_access` in JSON) and exits 2
    as a plan with work does; `sync run` says it once on standard error, runs every
    cycle due, and exits 3."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    rules = tmp_path / "campaign.mr"
    rules.write_text(CAMPAIGN_RULES, "utf-8")
    base = f"{INSTANCE}/services/data/v59.0/"
    common = ["--crm", "salesforce", "--rules", str(rules), "--store", world["store"]]
    insufficient = [
        {"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights on object id"}
    ]
    created = [{"id": "00QDn000000002AMAA", "success": True, "errors": []}]
    for command, code in (
        (["plan", "--format", "json"], 2),
        (["run", "--until", "2026-11-02T09:25:00Z"], 3),
    ):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            for name in ("Campaign", "CampaignMember"):
                mock.add("GET", f"{base}sobjects/{name}/describe/", json=insufficient, status=403)
            _recorded_org(mock, lambda request: (200, {}, json.dumps(created)))
            r = _cli("sync", *command[:1], *common, *command[1:], env=ENV)
        assert r.exit_code == code, r.output
        if command[0] == "plan":
            plan = json.loads(r.output)
            assert [n["object"] for n in plan["no_access"]] == ["Campaign", "CampaignMember"]
            assert plan["no_access"][0]["said"].startswith(
                "the integration user may not read Campaign (INSUFFICIENT_ACCESS:"
                " insufficient access rights on object id): give it Read on Campaign"
            )
        else:
            lines = r.output.splitlines()
            said = [ln for ln in lines if ln.startswith("not done: ")]
            assert [ln.split(" (")[0] for ln in said] == [
                "not done: the integration user may not read Campaign",
                "not done: the integration user may not read CampaignMember",
            ], r.output
            # The leads and contacts went on: Ann's lead created, Bob linked.
            assert "2026-11-02T09:00:00Z  created     1  linked    1" in r.output, r.output


def test_opportunities_and_accounts_unreadable_are_left_out_and_their_cursors_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`objects ... opportunity, account` with an integration user that may read contact
    roles but not opportunities, nor accounts: exit 4 stopped leads and contacts too.
    They go on; neither opportunities nor their roles are taken (an opportunity closed
    without its roles read would never send its won or lost), both cursors stay, and the
    command says each object left out and exits 3."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    world = _world_of(tmp_path, ["ann@x.com", "bob@x.com"])
    rules = Path(world["rules"])
    rules.write_text(
        RULES.replace("objects lead, contact", "objects lead, contact, opportunity, account"),
        "utf-8",
    )
    base = f"{INSTANCE}/services/data/v59.0/"
    common = ["--crm", "salesforce", "--rules", str(rules), "--store", world["store"]]
    not_found = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    insufficient = [{"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights"}]
    role_fields = [
        ("OpportunityId", "reference"),
        ("ContactId", "reference"),
        ("Role", "picklist"),
        ("IsPrimary", "boolean"),
    ]
    created = [{"id": "00QDn000000002AMAA", "success": True, "errors": []}]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(
            "GET",
            f"{base}sobjects/OpportunityContactRole/describe/",
            json=_describe("OpportunityContactRole", "00K", role_fields),
        )
        mock.add("GET", f"{base}sobjects/Opportunity/describe/", json=not_found, status=404)
        mock.add("GET", f"{base}sobjects/Account/describe/", json=insufficient, status=403)
        _recorded_org(mock, lambda request: (200, {}, json.dumps(created)))
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 3, r.output
    assert "1 created, 1 linked" in r.output, r.output
    said = [ln.split(" (")[0] for ln in r.output.splitlines() if "not done:" in ln]
    assert said == [
        "  not done: the integration user may not read Opportunity",
        "  not done: the integration user may not read Account",
    ], r.output
    status = _status(world["store"])
    assert set(status["cursors"]) == {"Contact", "Lead"}, status
    assert status["links"] == 2 and status["opportunities"] == 0, status


TASK_RULES = RULES.replace(
    'assign to user "alan@x.com" }',
    'assign to user "alan@x.com"\n  create crm task "Call back" (due in 1 day) }',
)


def _task_world(tmp_path: Path) -> list[str]:
    """Ann (no CRM record: created as a lead) and Bob (a contact of the org), each with a
    task to create; the common options of `sync` against the org."""
    return _org_world(tmp_path, TASK_RULES)[1]


def _writes_of(sobject: str, writes: list[dict[str, Any]], refusal: Any = None) -> Any:
    """An sObject Collections create: the records of `sobject` kept in `writes` (or, for
    them, `refusal`, an HTTP status and body); each record created."""

    def write(request: Any) -> tuple[int, dict[str, str], str]:
        records = json.loads(request.body)["records"]
        if records[0]["attributes"]["type"] == sobject:
            if refusal is not None:
                return refusal[0], {}, json.dumps(refusal[1])
            writes.extend(records)
        prefix = {"Lead": "00Q", "Task": "00T", "CampaignMember": "00v"}[
            records[0]["attributes"]["type"]
        ]
        ok = [
            {"id": f"{prefix}Dn00000000{i}AMAA", "success": True, "errors": []}
            for i in range(2, 2 + len(records))
        ]
        return 200, {}, json.dumps(ok)

    return write


def test_task_unreadable_leads_and_contacts_go_on_and_the_next_cycle_writes_the_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integration user that may not read Task (its search answered `sObject type
    'Task' is not supported`) stopped the whole `sync apply`, exit 4, though the plan's
    search found nothing and said nothing. The plan now says it (`no_access`, each task an
    expected error); apply creates Ann's lead and links Bob, holds both tasks in the error
    queue, says it in one line naming the object and the permission, and exits 3;
    `sync status` keeps it; once the access is given, the next cycle writes the tasks."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = _task_world(tmp_path)
    store = common[-1]
    unsupported = [
        {"errorCode": "INVALID_TYPE", "message": "sObject type 'Task' is not supported."}
    ]

    def refused(soql: str) -> Any:
        return (400, unsupported) if " FROM Task " in soql else None

    tasks: list[dict[str, Any]] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, _writes_of("Task", tasks), refused)
        planned = _cli("sync", "plan", *common, "--format", "json", env=ENV)
        shown = _cli("sync", "plan", *common, env=ENV)
        r = _cli("sync", "apply", *common, env=ENV)
    assert planned.exit_code == 2, planned.output
    plan = json.loads(planned.output)
    assert [(n["object"], n["code"]) for n in plan["no_access"]] == [("Task", "INVALID_TYPE")]
    held = [o for o in plan["ops"] if o["op"] == "task"]
    assert [(e["field"], e["code"]) for o in held for e in o["expected_errors"]] == [
        ("*task-access", "INVALID_TYPE"),
        ("*task-access", "INVALID_TYPE"),
    ], held
    assert plan["summary"]["expected_errors"] == 2
    said = (
        "not done: the integration user may not read Task (INVALID_TYPE: sObject type 'Task'"
        " is not supported.): give it Read on Task (its profile or a permission set); the"
        " rest syncs without it, and each cycle tries Task again"
    )
    assert "  " + said in shown.output.splitlines(), shown.output
    assert r.exit_code == 3, r.output
    assert "1 created, 1 linked" in r.output, r.output
    assert "  " + said in r.output.splitlines(), r.output
    assert "Traceback" not in r.output and "refused the call" not in r.output
    assert tasks == []
    status = _status(store)
    assert status["links"] == 2 and status["queue"] == 2, status
    assert status["errors_by_code"] == {"INVALID_TYPE": 2}, status
    assert {e["field"] for e in status["error_queue"]} == {"*task-access"}, status
    assert [n["object"] for n in status["no_access"]] == ["Task"], status
    text = _cli("sync", "status", "--store", store).output.splitlines()
    assert "not done by the last cycle: " + said.removeprefix("not done: ") in text, text
    # The next plan, the records linked by now: it looks for the held tasks, and says it.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _recorded_org(mock, _writes_of("Task", tasks), refused)
        again = _cli("sync", "plan", *common, "--format", "json", env=ENV)
    assert again.exit_code == 2, again.output
    plan = json.loads(again.output)
    assert [n["object"] for n in plan.get("no_access", ())] == ["Task"], plan
    assert plan["summary"]["expected_errors"] == 2, plan["summary"]

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _recorded_org(mock, _writes_of("Task", tasks))
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert "2 tasks" in r.output and "not done" not in r.output, r.output
    assert sorted(t["WhoId"] for t in tasks) == ["003Dn000000001AAA", "00QDn000000002AMAA"]
    assert {t["Subject"] for t in tasks} == {"Call back"}
    status = _status(store)
    assert status["queue"] == 0 and status["errors"] == 0, status
    assert status["no_access"] == [], status


def test_a_task_create_refused_whole_for_access_holds_the_tasks_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The integration user may read Task but not create it: the create call, refused
    whole (INSUFFICIENT_ACCESS), stopped the cycle with exit 4 after the leads were
    written. The tasks are held in the error queue, the line names Create on Task, and
    `sync apply` and `sync run` exit 3."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = _task_world(tmp_path)
    store = common[-1]
    insufficient = [
        {"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights on object id"}
    ]
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        _recorded_org(mock, _writes_of("Task", [], (403, insufficient)))
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 3, r.output
    assert "1 created, 1 linked" in r.output, r.output
    said = [ln for ln in r.output.splitlines() if "not done:" in ln]
    assert said == [
        "  not done: the integration user may not create Task (INSUFFICIENT_ACCESS:"
        " insufficient access rights on object id): give it Create on Task (its profile or"
        " a permission set); the rest syncs without it, and each cycle tries Task again"
    ], r.output
    status = _status(store)
    assert status["links"] == 2 and status["queue"] == 2, status
    assert status["errors_by_code"] == {"INSUFFICIENT_ACCESS": 2}, status
    # sync run: the cycles due go on (the held tasks back off), the line once, exit 3.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _recorded_org(mock, _writes_of("Task", [], (403, insufficient)))
        r = _cli("sync", "run", *common, "--until", "2026-11-02T09:45:00Z", env=ENV)
    assert r.exit_code == 3, r.output
    assert [ln.split(" (")[0] for ln in r.output.splitlines() if "not done:" in ln] == [
        "not done: the integration user may not create Task"
    ], r.output
    assert _status(store)["queue"] == 2


def test_a_campaign_member_create_refused_whole_for_access_holds_the_members_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The integration user may read Campaign but not create CampaignMember: the create
    call refused whole (INSUFFICIENT_ACCESS) holds each membership in the error queue
    (`*campaign`), says it in one line naming Create on CampaignMember, and exits 3; the
    leads and contacts were written, and the next cycle, with the access, writes the
    memberships and empties the queue."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    store, common = _org_world(tmp_path, CAMPAIGN_RULES)
    base = f"{INSTANCE}/services/data/v59.0/"
    campaign = WEBINAR

    def readable(soql: str) -> Any:
        if " FROM Campaign " in soql:
            return {"totalSize": 1, "done": True, "records": [campaign]}
        return None

    def describes(mock: Any) -> None:
        for name, prefix, fields in (
            ("Campaign", "701", [("Name", "string")]),
            ("CampaignMember", "00v", [("CampaignId", "reference"), ("Status", "picklist")]),
        ):
            mock.add(
                "GET", f"{base}sobjects/{name}/describe/", json=_describe(name, prefix, fields)
            )

    insufficient = [
        {"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights on object id"}
    ]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        describes(mock)
        _recorded_org(mock, _writes_of("CampaignMember", [], (403, insufficient)), readable)
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 3, r.output
    assert "1 created, 1 linked" in r.output, r.output
    said = [ln for ln in r.output.splitlines() if "not done:" in ln]
    assert said == [
        "  not done: the integration user may not create CampaignMember (INSUFFICIENT_ACCESS:"
        " insufficient access rights on object id): give it Create on CampaignMember (its"
        " profile or a permission set); the rest syncs without it, and each cycle tries"
        " CampaignMember again"
    ], r.output
    assert "Traceback" not in r.output and "refused the call" not in r.output
    status = _status(store)
    assert status["links"] == 2 and status["queue"] == 2, status
    assert status["errors_by_code"] == {"INSUFFICIENT_ACCESS": 2}, status
    assert {e["field"] for e in status["error_queue"]} == {"*campaign"}, status
    assert [n["object"] for n in status["no_access"]] == ["CampaignMember"], status

    members: list[dict[str, Any]] = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        describes(mock)
        _recorded_org(mock, _writes_of("CampaignMember", members), readable)
        r = _cli("sync", "apply", *common, env=ENV)
    assert r.exit_code == 0, r.output
    assert "2 campaign members" in r.output and "not done" not in r.output, r.output
    assert {m["CampaignId"] for m in members} == {"701Dn000000001AAA"}
    status = _status(store)
    assert status["queue"] == 0 and status["errors"] == 0 and status["no_access"] == [], status


MEMBER_RULES = CAMPAIGN_RULES.replace("objects lead, contact, campaign", "objects lead, contact")


@pytest.mark.parametrize("unreadable", ["Campaign", "CampaignMember"])
def test_a_membership_lookup_refused_for_access_is_said_by_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unreadable: str
) -> None:
    """The plan looks up the memberships of the records it links (Bob's contact): the
    campaign by name, then its members. A lookup the integration user may not make was
    dropped without a word (the plan's own read of Campaign says it). The plan now says
    it (`not done:`, `no_access`), once; with Campaign unreadable, each membership is an
    expected error, as apply holds it."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    _, common = _org_world(tmp_path, MEMBER_RULES)
    base = f"{INSTANCE}/services/data/v59.0/"
    campaign = WEBINAR
    unsupported = [
        {"errorCode": "INVALID_TYPE", "message": f"sObject type '{unreadable}' is not supported."}
    ]
    looked: list[str] = []

    def answer(soql: str) -> Any:
        for name in ("Campaign", "CampaignMember"):
            if f" FROM {name} " in soql:
                looked.append(name)
                if name == unreadable:
                    return 400, unsupported
                if name == "Campaign":
                    return {"totalSize": 1, "done": True, "records": [campaign]}
        return None

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for name, prefix, fields in (
            ("Campaign", "701", [("Name", "string")]),
            ("CampaignMember", "00v", [("CampaignId", "reference"), ("ContactId", "reference")]),
        ):
            mock.add(
                "GET", f"{base}sobjects/{name}/describe/", json=_describe(name, prefix, fields)
            )
        _recorded_org(mock, None, answer)
        planned = _cli("sync", "plan", *common, "--format", "json", env=ENV)
        shown = _cli("sync", "plan", *common, env=ENV)
    assert unreadable in looked, looked  # the lookup was made, and refused
    assert planned.exit_code == 2, planned.output
    plan = json.loads(planned.output)
    assert [(n["object"], n["code"]) for n in plan.get("no_access", ())] == [
        (unreadable, "INVALID_TYPE")
    ]
    said = (
        f"  not done: the integration user may not read {unreadable} (INVALID_TYPE: sObject"
        f" type '{unreadable}' is not supported.): give it Read on {unreadable} (its profile"
        f" or a permission set); the rest syncs without it, and each cycle tries {unreadable}"
        " again"
    )
    assert shown.exit_code == 2 and said in shown.output.splitlines(), shown.output
    members = [o for o in plan["ops"] if o["op"] == "campaign_member"]
    assert [o["prospect"] for o in members] == ["ann@x.com", "bob@x.com"], members
    expected = [(e["field"], e["code"]) for o in members for e in o.get("expected_errors", ())]
    if unreadable == "Campaign":  # apply holds each membership without trying
        assert expected == [("*campaign", "INVALID_TYPE")] * 2, members
    else:
        assert expected == [], members


@pytest.mark.parametrize("createable", [True, False])
def test_a_plan_says_a_create_the_describe_does_not_allow_would_be_refused(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch, createable: bool
) -> None:
    """`sync plan` could not know a lead's create would be refused: the Lead describe says
    whether the integration user may create it (`createable`). When it may not, each
    create is an expected error naming the permission to give; when it may, none."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    import mrules.crm.salesforce as sf

    monkeypatch.setattr(sf, "_utcnow", lambda: NOW)
    common = ["--crm", "salesforce", "--rules", world["rules"], "--store", world["store"]]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _recorded_org(mock, None, top={"Lead": {"createable": createable}})
        planned = _cli("sync", "plan", *common, "--format", "json", env=ENV)
        shown = _cli("sync", "plan", *common, env=ENV)
        described = _cli("crm", "describe", "Lead", "--crm", "salesforce", env=ENV)
    assert described.exit_code == 0, described.output
    assert json.loads(described.output)["createable"] is createable  # what the plan read
    assert planned.exit_code == 2, planned.output
    plan = json.loads(planned.output)
    (create,) = [o for o in plan["ops"] if o["op"] == "create"]
    assert create["prospect"] == "ann@x.com"
    said = (
        "the integration user may not create Lead (the CRM's describe says so): give it"
        " Create on Lead (its profile or a permission set)"
    )
    if createable:
        assert "expected_errors" not in create, create
        assert plan["summary"]["expected_errors"] == 0
        assert said not in shown.output
    else:
        assert create["expected_errors"] == [
            {"field": "*record", "code": "INSUFFICIENT_ACCESS_OR_READONLY", "message": said}
        ], create
        assert plan["summary"]["expected_errors"] == 1
        line = f"      expected error INSUFFICIENT_ACCESS_OR_READONLY on *record: {said}"
        assert line in shown.output.splitlines(), shown.output
