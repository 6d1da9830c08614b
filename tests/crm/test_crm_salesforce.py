"""The Salesforce adapter's own behaviour: logging in, errors, paging, headers, usage.

HTTP answers are hand-written in Salesforce's documented shapes; no network.
The live test at the end runs only against a real org (MRULES_SF_LIVE=1 and
credentials, see docs/crm.md).
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

responses = pytest.importorskip("responses")
pytest.importorskip("simple_salesforce")

from responses import matchers  # noqa: E402
from simple_salesforce import Salesforce  # noqa: E402

from mrules.crm.errors import CrmCallError  # noqa: E402
from mrules.crm.port import Cursor, LeadConvert  # noqa: E402
from mrules.crm.salesforce import CrmConfigError, SalesforceCrm  # noqa: E402

INSTANCE = "https://getcloudy.my.salesforce.com"
BASE = f"{INSTANCE}/services/data/v59.0/"
T = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
LEAD_ID = "00QDn000000001fMAA"


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def crm() -> SalesforceCrm:
    return SalesforceCrm(Salesforce(session_id="00D!token", instance_url=INSTANCE))


def test_no_credentials_says_which_variables() -> None:
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env({})
    assert "MRULES_SF_USERNAME" in str(e.value) and "MRULES_SF_CONSUMER_KEY" in str(e.value)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (  # the client credentials flow was made instead, as the app's run-as user
            {
                "MRULES_SF_PASSWORD": "S3cr3t-pw",
                "MRULES_SF_SECURITY_TOKEN": "T0K3N",
                "MRULES_SF_CONSUMER_KEY": "key",
                "MRULES_SF_CONSUMER_SECRET": "secret",
                "MRULES_SF_DOMAIN": "getcloudy.my",
            },
            "MRULES_SF_PASSWORD is set but MRULES_SF_USERNAME is not",
        ),
        (  # "no Salesforce credentials in the environment"
            {"MRULES_SF_SECURITY_TOKEN": "T0K3N"},
            "MRULES_SF_SECURITY_TOKEN is set but MRULES_SF_USERNAME and MRULES_SF_PASSWORD are not",
        ),
    ],
)
def test_a_password_login_without_its_user_is_named(http, env, said) -> None:
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env(env)
    assert str(e.value).startswith(said) and not http.calls
    assert "S3cr3t" not in str(e.value) and "T0K3N" not in str(e.value)


def test_session_from_the_environment(http) -> None:
    crm = SalesforceCrm.from_env(
        {"MRULES_SF_SESSION_ID": "00D!token", "MRULES_SF_INSTANCE_URL": INSTANCE}
    )
    http.add(
        "GET",
        BASE + "sobjects/Lead/deleted/",
        json={
            "deletedRecords": [],
            "earliestDateAvailable": "2026-10-18T00:00:00.000+0000",
            "latestDateCovered": "2026-11-02T09:00:00.000+0000",
        },
        match=[matchers.header_matcher({"Authorization": "Bearer 00D!token"})],
    )
    assert crm.get_deleted("Lead", T - dt.timedelta(days=1), T).records == []


def test_client_credentials(http) -> None:
    http.add(
        "POST",
        "https://getcloudy.my.salesforce.com/services/oauth2/token",
        json={
            "access_token": "00D!fromtoken",
            "instance_url": INSTANCE,
            "token_type": "Bearer",
        },
        match=[matchers.urlencoded_params_matcher({"grant_type": "client_credentials"})],
    )
    crm = SalesforceCrm.from_env(
        {
            "MRULES_SF_CONSUMER_KEY": "key",
            "MRULES_SF_CONSUMER_SECRET": "secret",
            "MRULES_SF_DOMAIN": "getcloudy.my",
        }
    )
    assert crm._sf.session_id == "00D!fromtoken"


@pytest.mark.parametrize("domain", [None, "login", "test", "TEST"])
def test_client_credentials_need_a_my_domain(http, domain) -> None:
    """Without MRULES_SF_DOMAIN=NAME.my, simple-salesforce made no call and refused with
    "You must submit either a security token or organizationId" (LOGIN_FAILED, exit 4):
    a missing variable, named as the others are (exit 2), before any HTTP call."""
    env = {"MRULES_SF_CONSUMER_KEY": "key", "MRULES_SF_CONSUMER_SECRET": "secret"}
    if domain is not None:
        env["MRULES_SF_DOMAIN"] = domain
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env(env)
    assert "MRULES_SF_DOMAIN" in str(e.value) and "NAME.my" in str(e.value)
    assert "secret" not in str(e.value) and not http.calls


SOAP_LOGIN = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">
<soapenv:Body><loginResponse><result><metadataServerUrl>https://getcloudy--dev.sandbox.my.salesforce.com/services/Soap/m/59.0/00DDn0000000001</metadataServerUrl>
<passwordExpired>false</passwordExpired><sandbox>true</sandbox>
<serverUrl>https://getcloudy--dev.sandbox.my.salesforce.com/services/Soap/u/59.0/00DDn0000000001</serverUrl>
<sessionId>00DDn0000000001!sandbox</sessionId><userId>005Dn000000001AAA</userId></result></loginResponse>
</soapenv:Body></soapenv:Envelope>"""

SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:sf="urn:fault.partner.soap.sforce.com">
<soapenv:Body><soapenv:Fault><faultcode>INVALID_LOGIN</faultcode>
<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.
</faultstring>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""

SANDBOX = {
    "MRULES_SF_USERNAME": "integration@getcloudy.com.dev",
    "MRULES_SF_PASSWORD": "pw",
    "MRULES_SF_SECURITY_TOKEN": "tok",
    "MRULES_SF_DOMAIN": "test",
}


def test_sandbox_password_login(http) -> None:
    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_LOGIN)
    crm = SalesforceCrm.from_env(SANDBOX)
    assert crm._sf.sf_instance == "getcloudy--dev.sandbox.my.salesforce.com"
    body = http.calls[0].request.body
    assert "<n1:password>pwtok</n1:password>" in (body if isinstance(body, str) else body.decode())


def test_values_read_with_their_line_break_log_in(http) -> None:
    """A `.env` file written on Windows: every value ends with "\r". The security token is
    appended to the password: "pwtok\r" was refused as INVALID_LOGIN, a login that works
    in the browser. Values are taken without their surrounding white space, but for the
    password, which may end with a space."""
    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_LOGIN)
    env = {k: v + "\r" for k, v in SANDBOX.items() if k != "MRULES_SF_PASSWORD"}
    crm = SalesforceCrm.from_env({**env, "MRULES_SF_PASSWORD": "pw "})
    assert crm._sf.sf_instance == "getcloudy--dev.sandbox.my.salesforce.com"
    body = http.calls[0].request.body
    body = body if isinstance(body, str) else body.decode()
    assert "<n1:password>pw tok</n1:password>" in body
    assert "<n1:username>integration@getcloudy.com.dev</n1:username>" in body


def test_a_failed_request_never_shows_the_session_id(http, crm) -> None:
    import requests

    http.add(
        "GET",
        BASE + "queryAll/",
        body=requests.exceptions.InvalidHeader("header value: 'Bearer 00D!token'"),
    )
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert "00D!token" not in str(e.value) and "[session id]" in str(e.value)


def test_a_connected_apps_password_flow_is_oauth(http) -> None:
    """With MRULES_SF_CONSUMER_KEY and MRULES_SF_CONSUMER_SECRET beside a password, the
    documented connected app's password flow: simple-salesforce made the SOAP login
    instead (given a security token, even ""), and the app was never used."""
    http.add(
        "POST",
        "https://test.salesforce.com/services/oauth2/token",
        json={"access_token": "00D!oauth", "instance_url": INSTANCE, "token_type": "Bearer"},
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "password",
                    "client_id": "key",
                    "client_secret": "secret",
                    "username": "integration@getcloudy.com.dev",
                    "password": "pwtok",  # the token appended, as Salesforce wants it
                }
            )
        ],
    )
    env = {**SANDBOX, "MRULES_SF_CONSUMER_KEY": "key", "MRULES_SF_CONSUMER_SECRET": "secret"}
    crm = SalesforceCrm.from_env(env)
    assert crm._sf.session_id == "00D!oauth" and crm._can_log_in_again()


@pytest.mark.parametrize(
    ("domain", "shown"),
    [
        ("https://getcloudy.my.salesforce.com/", "here 'getcloudy.my'"),
        ("test.salesforce.com", "here 'test'"),
        ("getcloudy my", "such as getcloudy.my"),
    ],
)
def test_a_domain_given_as_a_host_or_url_is_a_config_error(http, domain, shown) -> None:
    """simple-salesforce puts MRULES_SF_DOMAIN before `.salesforce.com`: a host or a URL
    there was a login to `test.salesforce.com.salesforce.com`, a DNS failure reported as
    an org not reached (exit 4). Refused before any call, with what to give instead."""
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env({**SANDBOX, "MRULES_SF_DOMAIN": domain})
    assert str(e.value).startswith(f"MRULES_SF_DOMAIN is {domain!r}: 'login', 'test' or")
    assert shown in str(e.value) and "pw" not in str(e.value) and not http.calls
    # A session takes no domain: one left in the environment is no error there.
    env = {"MRULES_SF_SESSION_ID": "00D!t", "MRULES_SF_INSTANCE_URL": INSTANCE}
    SalesforceCrm.from_env({**env, "MRULES_SF_DOMAIN": domain})


def test_refused_login(http) -> None:
    http.add(
        "POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_FAULT, status=500
    )
    with pytest.raises(CrmCallError) as e:
        SalesforceCrm.from_env(SANDBOX)
    assert e.value.code == "LOGIN_FAILED" and "INVALID_LOGIN" in e.value.message


def test_a_login_answer_that_is_a_page_is_one_line(http) -> None:
    """A gateway's page at the login endpoint: simple-salesforce's message is the whole body,
    which `cannot log in: LOGIN_FAILED: …` printed, tags and line breaks and all."""
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n" + "x " * 300
    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=page, status=502)
    with pytest.raises(CrmCallError) as e:
        SalesforceCrm.from_env(SANDBOX)
    assert e.value.code == "LOGIN_FAILED"
    assert e.value.message.startswith("Authentication failed (HTTP 502): 502 Bad Gateway x x")
    assert "\n" not in str(e.value) and "<" not in str(e.value) and len(str(e.value)) < 260


@pytest.mark.parametrize(
    ("status", "body", "code", "transient"),
    [
        (
            401,
            [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}],
            "INVALID_SESSION_ID",
            False,  # a session given as it is: nothing renews it (a login's is renewed)
        ),
        (
            403,
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            "REQUEST_LIMIT_EXCEEDED",
            True,
        ),
        (
            403,
            [{"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights"}],
            "INSUFFICIENT_ACCESS",
            False,
        ),
        (
            400,
            [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token: FROM"}],
            "MALFORMED_QUERY",
            False,
        ),
        (
            400,
            [{"errorCode": "INVALID_FIELD", "message": "No such column 'Nope' on entity 'Lead'."}],
            "INVALID_FIELD",
            False,
        ),
        (
            503,
            [{"errorCode": "SERVER_UNAVAILABLE", "message": "Service unavailable"}],
            "SERVER_UNAVAILABLE",
            True,
        ),
        (  # a query stopped for running too long: it can succeed later (it was not transient)
            400,
            [
                {
                    "errorCode": "QUERY_TIMEOUT",
                    "message": "Your query request was running for too long.",
                }
            ],
            "QUERY_TIMEOUT",
            True,
        ),
        (  # a next page asked after its cursor expired: the next cycle reads again
            400,
            [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}],
            "INVALID_QUERY_LOCATOR",
            True,
        ),
        (
            400,
            [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}],
            "UNABLE_TO_LOCK_ROW",
            True,
        ),
    ],
)
def test_failed_calls(http, crm, status, body, code, transient) -> None:
    http.add("GET", BASE + "queryAll/", json=body, status=status)
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert (e.value.code, e.value.transient) == (code, transient)


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (414, "HTTP_414", False),  # URI Too Long: the same request fails again
        (431, "HTTP_431", False),  # Request Header Fields Too Large
        (405, "HTTP_405", False),
        (409, "HTTP_409", False),
        (415, "HTTP_415", False),
        (408, "HTTP_408", True),  # a request timeout, and too many requests: for now
        (429, "HTTP_429", True),
        (502, "SERVER_UNAVAILABLE", True),
    ],
)
def test_other_http_errors_have_their_own_code(http, crm, status, code, transient) -> None:
    """Any status but 300 and 400-404 was SERVER_UNAVAILABLE: a 414 said the org was
    unavailable, when the request was refused for what it is."""
    http.add("GET", BASE + "queryAll/", body="<html><body>refused</body></html>", status=status)
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert (e.value.code, e.value.transient, e.value.http_status) == (code, transient, status)


def test_connection_error_is_transient(http, crm) -> None:
    import requests

    http.add("GET", BASE + "queryAll/", body=requests.ConnectionError("reset by peer"))
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert e.value.code == "CONNECTION_ERROR" and e.value.transient


def _row(i: int, minute: int) -> dict:
    rid = f"00QDn00000000{i:02d}AAA"
    return {
        "attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{rid}"},
        "Email": f"p{i}@example.com",
        "Id": rid,
        "SystemModstamp": f"2026-11-02T09:{minute:02d}:00.000+0000",
        "IsDeleted": False,
    }


def test_query_follows_next_records_url(http, crm) -> None:
    http.add(
        "GET",
        BASE + "queryAll/",
        json={
            "totalSize": 3,
            "done": False,
            "nextRecordsUrl": "/services/data/v59.0/query/01gDn000000001-2000",
            "records": [_row(1, 1), _row(2, 2)],
        },
        headers={"Sforce-Limit-Info": "api-usage=10/15000"},
    )
    http.add(
        "GET",
        INSTANCE + "/services/data/v59.0/query/01gDn000000001-2000",
        json={"totalSize": 3, "done": True, "records": [_row(3, 3)]},
        headers={"Sforce-Limit-Info": "api-usage=11/15000;per-app-api-usage=2/500(appName=mrules)"},
    )
    page = crm.query_changed("Lead", Cursor(T, "00QDn0000000000AAA"), T.replace(hour=10), ["Email"])
    assert [r.fields["Email"] for r in page.records] == [
        "p1@example.com",
        "p2@example.com",
        "p3@example.com",
    ]
    assert page.done and page.cursor == Cursor(T.replace(minute=3), "00QDn0000000003AAA")
    soql = http.calls[0].request.params["q"]
    assert soql == (
        "SELECT Email, Id, SystemModstamp, IsDeleted FROM Lead"
        " WHERE SystemModstamp <= 2026-11-02T10:00:00Z"
        " AND (SystemModstamp > 2026-11-02T09:00:00Z OR (SystemModstamp = 2026-11-02T09:00:00Z"
        " AND Id > '00QDn0000000000AAA')) ORDER BY SystemModstamp, Id"
    )
    usage = crm.api_usage()
    assert (usage.used, usage.limit, usage.calls_made) == (11, 15000, 2)


@pytest.mark.parametrize("next_url", [None, "", 42, "https://proxy.example/next"])
def test_a_page_not_the_last_that_names_no_next_is_a_failed_call(http, crm, next_url) -> None:
    """`done: false` with no `nextRecordsUrl` (a proxy's rewrite): the read ended there,
    taken for the whole answer (`done`), and the sync's cursor moved past the records of
    the pages never read. A failed call, retried by the next cycle, as any answer of
    another shape."""
    page = {"totalSize": 4, "done": False, "records": [_row(1, 1), _row(2, 2)]}
    if next_url is not None:
        page["nextRecordsUrl"] = next_url
    http.add("GET", BASE + "queryAll/", json=page)
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T.replace(hour=10), ["Email"])
    assert (e.value.code, e.value.transient) == ("UNKNOWN_EXCEPTION", True)
    assert "a page of 2 records with done false" in e.value.message


def test_fields_default_to_describe(http, crm) -> None:
    http.add(
        "GET",
        BASE + "sobjects/Lead/describe/",
        json={
            "name": "Lead",
            "keyPrefix": "00Q",
            "custom": False,
            "fields": [
                {"name": "Id", "type": "id"},
                {"name": "Email", "type": "email", "length": 80, "nillable": True},
                {"name": "Address", "type": "address"},
                {"name": "SystemModstamp", "type": "datetime"},
                {"name": "IsDeleted", "type": "boolean"},
            ],
        },
    )
    http.add("GET", BASE + "queryAll/", json={"totalSize": 0, "done": True, "records": []})
    http.add("GET", BASE + "query/", json={"totalSize": 0, "done": True, "records": []})
    crm.query_changed("Lead", None, T)
    assert (
        http.calls[1]
        .request.params["q"]
        .startswith("SELECT Id, Email, SystemModstamp, IsDeleted FROM Lead")
    )
    crm.find("Lead", "Email", ["o'hara@example.com"])  # describe is cached: no second call
    assert "IN ('o\\'hara@example.com')" in http.calls[2].request.params["q"]


def _refusing_long_urls(http) -> list:
    """A query endpoint that refuses a URL past 16,384 bytes as Salesforce does (414), and
    otherwise answers one lead for each email asked; the URLs asked, in order."""
    import json
    from urllib.parse import parse_qs, urlsplit

    urls = []

    def answer(request):
        urls.append(request.url)
        if len(request.url) > 16_384:
            return 414, {}, "<html><body>414 URI Too Long</body></html>"
        soql = parse_qs(urlsplit(request.url).query)["q"][0]
        emails = soql.split(" IN (", 1)[1].split(")", 1)[0][1:-1].split("','")
        rows = [
            {**_row(0, 1), "Email": e, "Id": f"00QDn{len(urls):04d}{i:05d}AAA"}
            for i, e in enumerate(emails)
        ]
        return 200, {}, json.dumps({"totalSize": len(rows), "done": True, "records": rows})

    http.add_callback("GET", BASE + "query/", callback=answer)
    return urls


def test_find_splits_its_values_to_keep_each_url_short(http, crm) -> None:
    """100 long emails a query: the URL passed 16,384 bytes, Salesforce answered 414 and the
    search failed (`SERVER_UNAVAILABLE`); each query's URL now stays under URL_LIMIT."""
    import mrules.crm.salesforce as sf

    urls = _refusing_long_urls(http)
    emails = [f"{i:03d}{'x' * 190}@example.com" for i in range(250)]
    found = crm.find("Lead", "Email", emails, ["Email"])
    assert sorted(r.fields["Email"] for r in found) == emails  # each asked once
    assert len(urls) > 3 and max(len(u) for u in urls) <= sf.URL_LIMIT
    before = len(urls)
    short = [f"p{i}@x.com" for i in range(250)]  # short values: 100 a query still
    assert len(crm.find("Lead", "Email", short, ["Email"])) == 250
    assert len(urls) - before == 3


def test_a_select_list_too_long_for_a_url_is_a_clear_error(http, crm) -> None:
    """Every field of an object with 700 custom fields: refused before it is sent, with
    the object named, instead of an HTTP 414 taken for an outage."""
    fields = [{"name": n, "type": "id" if n == "Id" else "string"} for n in ("Id", "Email")]
    fields += [{"name": f"Custom_Field_Number_{i:04d}__c", "type": "string"} for i in range(700)]
    fields += [
        {"name": "SystemModstamp", "type": "datetime"},
        {"name": "IsDeleted", "type": "boolean"},
    ]
    http.add("GET", BASE + "sobjects/Lead/describe/", json={"name": "Lead", "fields": fields})
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T)
    assert (e.value.code, e.value.transient) == ("QUERY_TOO_LONG", False)
    assert "a query of Lead selecting 704 fields would" in e.value.message
    # The fields asked that the describe lists, in its order; the others left out.
    http.add("GET", BASE + "queryAll/", json={"totalSize": 0, "done": True, "records": []})
    wanted = ["Custom_Field_Number_0003__c", "email", "Nope"]
    crm.query_changed("Lead", None, T, wanted, missing_ok=True)
    assert (
        http.calls[-1]
        .request.params["q"]
        .startswith(
            "SELECT Email, Custom_Field_Number_0003__c, Id, SystemModstamp, IsDeleted FROM Lead"
        )
    )


def _org_without_is_deleted(http, sobject: str, fields: list[str]) -> None:
    """The describe of an object with no recycle bin (User, Group: no `IsDeleted` field), and
    a query endpoint that refuses to select that field, as an org does (HTTP 400)."""
    import json
    from urllib.parse import parse_qs, urlsplit

    described = [{"name": "Id", "type": "id"}, {"name": "SystemModstamp", "type": "datetime"}]
    described += [{"name": f, "type": "string"} for f in fields]
    http.add(
        "GET", BASE + f"sobjects/{sobject}/describe/", json={"name": sobject, "fields": described}
    )

    def answer(request):
        soql = parse_qs(urlsplit(request.url).query)["q"][0]
        if "IsDeleted" in soql:
            error = {
                "errorCode": "INVALID_FIELD",
                "message": f"No such column 'IsDeleted' on entity '{sobject}'.",
            }
            return 400, {}, json.dumps([error])
        row = {"attributes": {"type": sobject}, "Id": "005Dn000000001AAA"}
        row |= {"SystemModstamp": "2026-10-01T08:00:00.000+0000"}
        row |= {f: "alan@x.com" if f == "Email" else "Sales" for f in fields}
        return 200, {}, json.dumps({"totalSize": 1, "done": True, "records": [row]})

    http.add_callback("GET", BASE + "query/", callback=answer)


def test_users_are_read_without_is_deleted(http, crm) -> None:
    """User has no IsDeleted field: the sync's read of the org's users (every plan's first
    query) selected it, and a real org refused it (INVALID_FIELD): every plan failed."""
    _org_without_is_deleted(http, "User", ["Email", "IsActive"])
    page = crm.query_changed(
        "User", None, T, ["Email", "IsActive"], include_deleted=False, missing_ok=True
    )
    assert [r.id for r in page.records] == ["005Dn000000001AAA"]
    assert page.records[0].is_deleted is False
    assert (
        http.calls[-1]
        .request.params["q"]
        .startswith("SELECT Email, IsActive, Id, SystemModstamp FROM User WHERE")
    )


def test_queues_are_read_without_is_deleted(http, crm) -> None:
    """Group (queues) has no IsDeleted field either."""
    _org_without_is_deleted(http, "Group", ["Name"])
    found = crm.find("Group", "Type", ["Queue"], ["Name"], missing_ok=True)
    assert [r.fields["Name"] for r in found] == ["Sales"]


def _org_parsing_employees(http) -> list[list[dict]]:
    """An org whose Lead.NumberOfEmployees is a number: a collection call with a value that
    is none fails whole, HTTP 400 JSON_PARSER_ERROR, as Salesforce reads the body before any
    record; otherwise each record is created. The records of each call, in order."""
    import json

    http.add(
        "GET",
        BASE + "sobjects/Lead/describe/",
        json={
            "name": "Lead",
            "fields": [
                {"name": "Id", "type": "id"},
                {"name": "LastName", "type": "string", "length": 80},
                {"name": "NumberOfEmployees", "label": "Employees", "type": "int"},
            ],
        },
    )
    calls: list[list[dict]] = []

    def answer(request):
        records = json.loads(request.body)["records"]
        calls.append(records)
        for r in records:
            value = r.get("NumberOfEmployees")
            if isinstance(value, str) and not value.isdigit():
                error = {
                    "errorCode": "JSON_PARSER_ERROR",
                    "message": f"Cannot deserialize instance of int from VALUE_STRING value"
                    f" {value} or request may be missing a required field at [line:1, column:90]",
                }
                return 400, {}, json.dumps([error])
        ids = [f"00QDn00000000{len(calls)}{i}AAA" for i in range(len(records))]
        return 200, {}, json.dumps([{"id": i, "success": True, "errors": []} for i in ids])

    http.add_callback("POST", BASE + "composite/sobjects", callback=answer)
    return calls


def test_a_value_the_org_cannot_parse_fails_its_record_not_the_call(http, crm) -> None:
    """Text in a number field (a prospect's text field mapped to NumberOfEmployees): the org
    refuses the whole collection call (JSON_PARSER_ERROR), and the cycle stopped, exit 4,
    every cycle, for every prospect. Now that record gets its own error, naming the field,
    and the others are written; the sync then writes it without that field."""
    from mrules.sync.apply import _write_keeping

    calls = _org_parsing_employees(http)
    records = [
        {"LastName": "Ann", "NumberOfEmployees": "11-50"},
        {"LastName": "Bob", "NumberOfEmployees": 40},
    ]
    results = crm.create("Lead", [dict(r) for r in records])
    assert [r.success for r in results] == [False, True]
    (error,) = results[0].errors
    assert (error.status_code, error.fields) == (
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ("NumberOfEmployees",),
    )
    assert "11-50" in error.message and "JSON_PARSER_ERROR" not in error.status_code
    assert [[r["LastName"] for r in c] for c in calls] == [["Ann", "Bob"], ["Bob"]]
    # As apply writes: the refused field set aside (held in the error queue), the record
    # written without it.
    calls.clear()
    results, aside = _write_keeping(crm, "create", "Lead", [dict(r) for r in records], set())
    assert [r.success for r in results] == [True, True]
    assert [[e.fields for e in errs] for errs in aside] == [[("NumberOfEmployees",)], []]
    assert calls[-1] == [{"attributes": {"type": "Lead"}, "LastName": "Ann"}]


def test_upsert_and_the_duplicate_header(http, crm) -> None:
    http.add(
        "PATCH",
        BASE + "composite/sobjects/Lead/Prospect_Id__c",
        json=[
            {"id": LEAD_ID, "success": True, "errors": [], "created": False},
            {"id": "00QDn000000001gMAA", "success": True, "errors": [], "created": True},
        ],
        match=[
            matchers.json_params_matcher(
                {
                    "allOrNone": False,
                    "records": [
                        {"attributes": {"type": "Lead"}, "Prospect_Id__c": "p-1", "LastName": "A"},
                        {"attributes": {"type": "Lead"}, "Prospect_Id__c": "p-2", "LastName": "B"},
                    ],
                }
            )
        ],
    )
    results = crm.upsert(
        "Lead",
        "Prospect_Id__c",
        [{"Prospect_Id__c": "p-1", "LastName": "A"}, {"Prospect_Id__c": "p-2", "LastName": "B"}],
    )
    assert [(r.success, r.created) for r in results] == [(True, False), (True, True)]
    http.add(
        "POST",
        BASE + "composite/sobjects",
        json=[{"id": LEAD_ID, "success": True, "errors": []}],
        match=[matchers.header_matcher({"Sforce-Duplicate-Rule-Header": "allowSave=true"})],
    )
    assert crm.create("Lead", [{"LastName": "A", "Company": "B"}], allow_duplicates=True)[0].success
    assert crm.create("Lead", []) == [] and crm.delete([]) == []


CONVERT_FAILED = f"""<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">
<soapenv:Body><convertLeadResponse><result><accountId xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>
<errors><fields>OwnerId</fields><message>Converted objects can only be owned by users.</message>
<statusCode>INVALID_CROSS_REFERENCE_KEY</statusCode></errors><leadId>{LEAD_ID}</leadId>
<success>false</success></result></convertLeadResponse></soapenv:Body></soapenv:Envelope>"""


def test_conversion_uses_the_orgs_converted_status(http, crm) -> None:
    http.add(
        "GET",
        BASE + "query/",
        json={
            "totalSize": 1,
            "done": True,
            "records": [{"attributes": {"type": "LeadStatus"}, "MasterLabel": "Qualified"}],
        },
        match=[
            matchers.query_param_matcher(
                {
                    "q": "SELECT MasterLabel FROM LeadStatus WHERE IsConverted = true"
                    " ORDER BY SortOrder LIMIT 1"
                }
            )
        ],
    )
    http.add("POST", INSTANCE + "/services/Soap/u/59.0", body=CONVERT_FAILED)
    [res] = crm.convert_leads([LeadConvert(LEAD_ID, do_not_create_opportunity=True)])
    body = http.calls[1].request.body.decode()
    assert "<p:convertedStatus>Qualified</p:convertedStatus>" in body
    assert "<p:doNotCreateOpportunity>true</p:doNotCreateOpportunity>" in body
    assert "<p:sessionId>00D!token</p:sessionId>" in body
    assert not res.success and res.lead_id == LEAD_ID and res.account_id is None
    assert (res.errors[0].status_code, res.errors[0].fields) == (
        "INVALID_CROSS_REFERENCE_KEY",
        ("OwnerId",),
    )


def test_conversion_fault(http, crm) -> None:
    fault = SOAP_FAULT.replace("INVALID_LOGIN", "INVALID_SESSION_ID")
    http.add("POST", INSTANCE + "/services/Soap/u/59.0", body=fault, status=500)
    with pytest.raises(CrmCallError) as e:
        crm.convert_leads([LeadConvert(LEAD_ID, "Closed - Converted")])
    assert e.value.code == "INVALID_SESSION_ID" and not e.value.transient
    assert "MRULES_SF_SESSION_ID expired" in e.value.message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<html><body>Service temporarily unavailable</body>", "not XML"),
        (
            CONVERT_FAILED.replace("<result>", "<other>").replace("</result>", "</other>"),
            "(0 results for 1 lead)",
        ),
    ],
)
def test_a_conversion_answer_of_another_shape_is_a_failed_call(http, crm, body, reason) -> None:
    # A proxy's page answering 200 was `HTTP_200`, not transient (the command stopped
    # with exit 4), where a REST call's answer of another shape is UNKNOWN_EXCEPTION,
    # transient; an envelope without results was no results, as if nothing was asked.
    http.add("POST", INSTANCE + "/services/Soap/u/59.0", body=body, status=200)
    with pytest.raises(CrmCallError) as e:
        crm.convert_leads([LeadConvert(LEAD_ID, "Closed - Converted")])
    assert e.value.code == "UNKNOWN_EXCEPTION" and e.value.transient
    assert "the org's answer to convertLead is not of the shape Salesforce sends (" in str(e.value)
    assert reason in str(e.value)


def test_a_rest_answer_that_is_no_json_is_a_failed_call_of_another_shape(http, crm) -> None:
    # It was CONNECTION_ERROR ("Expecting value: line 1 column 1"), as if the org was
    # never reached.
    http.add("GET", BASE + "sobjects/Lead/describe/", body="<html>gateway</html>", status=200)
    with pytest.raises(CrmCallError) as e:
        crm.describe("Lead")
    assert e.value.code == "UNKNOWN_EXCEPTION" and e.value.transient
    assert "not of the shape Salesforce sends (not JSON" in str(e.value)


LIVE = os.environ.get("MRULES_SF_LIVE") == "1" and any(
    os.environ.get(v)
    for v in ("MRULES_SF_USERNAME", "MRULES_SF_SESSION_ID", "MRULES_SF_CONSUMER_KEY")
)


@pytest.mark.skipif(
    not LIVE, reason="live org test: set MRULES_SF_LIVE=1 and MRULES_SF_* credentials"
)
def test_live_round_trip() -> None:  # pragma: no cover - needs a real org
    crm = SalesforceCrm.from_env()
    crm.describe("Lead")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    email = f"mrules-live-{int(since.timestamp())}@example.com"
    [made] = crm.create(
        "Lead", [{"LastName": "mrules live test", "Company": "mrules", "Email": email}]
    )
    assert made.success, made.errors
    try:
        [bad] = crm.create("Lead", [{"LastName": "no company"}])
        assert bad.errors[0].status_code == "REQUIRED_FIELD_MISSING"
        found = crm.find("Lead", "Email", [email.upper()], ["Email"])
        assert [r.id for r in found] == [made.id]
        changed = crm.query_changed(
            "Lead", Cursor(since), dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), ["Email"]
        )
        assert made.id in [r.id for r in changed.records]
    finally:
        assert crm.delete([made.id])[0].success
    assert crm.api_usage().used > 0


def test_a_merged_record_comes_with_its_master(http, crm) -> None:
    """queryAll returns a record deleted by a merge with `MasterRecordId` (the sync moves the
    link to it, docs/sync.md#inbound-what-comes-from-the-crm)."""
    http.add(
        "GET",
        BASE + "sobjects/Contact/describe/",
        json={
            "name": "Contact",
            "keyPrefix": "003",
            "custom": False,
            "fields": [
                {"name": "Id", "type": "id"},
                {"name": "Email", "type": "email", "length": 80, "nillable": True},
                {"name": "MasterRecordId", "type": "reference", "referenceTo": ["Contact"]},
                {"name": "SystemModstamp", "type": "datetime"},
                {"name": "IsDeleted", "type": "boolean"},
            ],
        },
    )
    loser, master = "003Dn0000000001AAA", "003Dn0000000002AAA"
    http.add(
        "GET",
        BASE + "queryAll/",
        json={
            "totalSize": 1,
            "done": True,
            "records": [
                {
                    "attributes": {
                        "type": "Contact",
                        "url": f"/services/data/v59.0/sobjects/Contact/{loser}",
                    },
                    "Id": loser,
                    "Email": "bob@x.com",
                    "MasterRecordId": master,
                    "SystemModstamp": "2026-11-02T09:05:00.000+0000",
                    "IsDeleted": True,
                }
            ],
        },
    )
    page = crm.query_changed("Contact", None, T.replace(hour=10))
    assert "MasterRecordId" in http.calls[1].request.params["q"]
    (r,) = page.records
    assert (r.id, r.is_deleted, r.fields["MasterRecordId"]) == (loser, True, master)


@pytest.mark.parametrize(("year", "shown"), [(999, "0999"), (2026, "2026")])
def test_soql_times_have_a_four_digit_year(http, crm, year, shown) -> None:
    """`strftime("%Y")` wrote the year 999 as `999` (glibc does not pad it): SOQL takes
    a datetime literal with four digits only. Times in another zone are sent in UTC."""
    http.add("GET", BASE + "queryAll/", json={"totalSize": 0, "done": True, "records": []})
    until = dt.datetime(year, 11, 2, 11, 0, 30, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    since = Cursor(dt.datetime(year, 1, 5, 8, 7, 6, tzinfo=dt.UTC), "00QDn0000000000AAA")
    crm.query_changed("Lead", since, until, ["Email"])
    soql = http.calls[0].request.params["q"]
    assert soql == (
        "SELECT Email, Id, SystemModstamp, IsDeleted FROM Lead"
        f" WHERE SystemModstamp <= {shown}-11-02T10:00:30Z"
        f" AND (SystemModstamp > {shown}-01-05T08:07:06Z OR (SystemModstamp ="
        f" {shown}-01-05T08:07:06Z AND Id > '00QDn0000000000AAA'))"
        " ORDER BY SystemModstamp, Id"
    )


@pytest.mark.parametrize(("year", "shown"), [(999, "0999"), (2026, "2026")])
def test_rest_times_have_a_four_digit_year(http, crm, year, shown) -> None:
    """getDeleted's `start` and `end` are `YYYY-MM-DDTHH:MM:SS+00:00`, four digits always."""
    http.add(
        "GET",
        BASE + "sobjects/Lead/deleted/",
        json={
            "deletedRecords": [],
            "earliestDateAvailable": "2026-10-18T00:00:00.000+0000",
            "latestDateCovered": "2026-11-02T09:00:00.000+0000",
        },
        match=[
            matchers.query_param_matcher(
                {"start": f"{shown}-11-01T09:00:00+00:00", "end": f"{shown}-11-02T09:00:00+00:00"}
            )
        ],
    )
    end = dt.datetime(year, 11, 2, 9, 0, tzinfo=dt.UTC)
    assert crm.get_deleted("Lead", end - dt.timedelta(days=1), end).records == []


_ROW = {
    "attributes": {"type": "Lead"},
    "Email": "a@x.com",
    "Id": LEAD_ID,
    "SystemModstamp": "2026-11-02T09:00:00.000+0000",
    "IsDeleted": False,
}
_STAMP = "2026-11-02T09:00:00.000+0000"


def _query(c: SalesforceCrm) -> object:
    return c.query_changed("Lead", None, T, ["Email"])


def _deleted(c: SalesforceCrm) -> object:
    return c.get_deleted("Lead", T, T)


def _create(c: SalesforceCrm) -> object:
    return c.create("Lead", [{"Email": "a@x.com"}])


@pytest.mark.parametrize(
    ("method", "path", "body", "call", "what"),
    [
        ("GET", "queryAll/", {"done": True, "records": 5}, _query, "a query"),
        ("GET", "queryAll/", {"done": True, "records": ["x"]}, _query, "a query of Lead"),
        (
            "GET",
            "queryAll/",
            {"done": True, "records": [{**_ROW, "Id": None}]},
            _query,
            "a query of Lead",
        ),
        (
            "GET",
            "queryAll/",
            {"done": True, "records": [{"Email": "a@x.com"}]},
            _query,
            "a query of Lead",
        ),
        (
            "GET",
            "queryAll/",
            {"done": True, "records": [{**_ROW, "SystemModstamp": "soon"}]},
            _query,
            "a query of Lead",
        ),
        (
            "GET",
            "queryAll/",
            {"done": True, "records": [{**_ROW, "SystemModstamp": 5}]},
            _query,
            "a query of Lead",
        ),
        (
            "GET",
            "sobjects/Lead/deleted/",
            {"deletedRecords": [], "latestDateCovered": _STAMP},
            _deleted,
            "the deleted records of Lead",
        ),
        (
            "GET",
            "sobjects/Lead/deleted/",
            {
                "deletedRecords": [{"deletedDate": _STAMP}],
                "earliestDateAvailable": _STAMP,
                "latestDateCovered": _STAMP,
            },
            _deleted,
            "the deleted records of Lead",
        ),
        ("POST", "composite/sobjects", ["x"], _create, "a POST of Lead records"),
        (
            "POST",
            "composite/sobjects",
            [{"success": False, "errors": 5}],
            _create,
            "a POST of Lead records",
        ),
        (
            "POST",
            "composite/sobjects",
            [{"id": 7, "success": True}],
            _create,
            "a POST of Lead records",
        ),
        (
            "GET",
            "sobjects/Lead/describe/",
            {"name": "Lead", "fields": [{"type": "string"}]},
            lambda c: c.describe("Lead"),
            "describe Lead",
        ),
        (
            "GET",
            "sobjects/Lead/describe/",
            {"name": "Lead", "fields": [{"name": "X", "length": "long"}]},
            lambda c: c.describe("Lead"),
            "describe Lead",
        ),
        ("DELETE", "composite/sobjects", [3], lambda c: c.delete([LEAD_ID]), "a delete"),
    ],
)
def test_an_answer_of_another_shape_is_a_failed_call(
    http, crm, method, path, body, call, what
) -> None:
    # A proxy, a gateway or a changed API answering 200 with JSON of another shape: each
    # was a KeyError, TypeError or ValueError, an internal error of the sync.
    http.add(method, BASE + path, json=body, status=200)
    with pytest.raises(CrmCallError) as e:
        call(crm)
    assert e.value.code == "UNKNOWN_EXCEPTION" and e.value.transient
    assert f"the org's answer to {what} is not of the shape Salesforce sends (" in str(e.value)


def test_a_delete_answered_with_fewer_results_than_ids_is_a_failed_call(http, crm) -> None:
    """Two ids deleted, one result: which record went is unknown. The writes said so
    (UNKNOWN_EXCEPTION, transient); the delete gave the one result as if it were all."""
    other = "00QDn000000002fMAA"
    http.add(
        "DELETE",
        BASE + "composite/sobjects",
        json=[{"id": LEAD_ID, "success": True, "errors": []}],
        match=[matchers.query_param_matcher({"ids": f"{LEAD_ID},{other}", "allOrNone": "false"})],
    )
    with pytest.raises(CrmCallError) as e:
        crm.delete([LEAD_ID, other])
    assert (e.value.code, e.value.transient) == ("UNKNOWN_EXCEPTION", True)
    assert "1 result for 2 records deleted: the outcome is unknown" in e.value.message


# -- logins that fail before, or while, the adapter talks to the org -------------------------


def test_an_unreachable_login_endpoint_is_a_failed_login(http) -> None:
    """A login whose endpoint cannot be reached (a mistyped My Domain, no network) raised
    requests' ConnectionError out of `from_env`: the command said "internal error"."""
    import requests

    http.add(
        "POST",
        "https://test.salesforce.com/services/Soap/u/59.0",
        body=requests.ConnectionError("Failed to resolve 'test.salesforce.com'"),
    )
    with pytest.raises(CrmCallError) as e:
        SalesforceCrm.from_env(SANDBOX)
    assert e.value.code == "CONNECTION_ERROR" and "Failed to resolve" in e.value.message


def test_a_missing_private_key_file_is_a_config_error(tmp_path) -> None:
    """The JWT flow opened a key file that is not there: FileNotFoundError, exit 70."""
    missing = tmp_path / "nope.key"
    env = {
        "MRULES_SF_CONSUMER_KEY": "key",
        "MRULES_SF_USERNAME": "integration@getcloudy.com",
        "MRULES_SF_PRIVATE_KEY_FILE": str(missing),
    }
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env(env)
    assert "MRULES_SF_PRIVATE_KEY_FILE" in str(e.value) and str(missing) in str(e.value)


@pytest.mark.parametrize("version", ["41.0", "20.0"])
def test_an_api_version_without_sobject_collections_is_a_config_error(http, version) -> None:
    """sObject Collections (every write) came with API 42.0: under an older version the
    login worked and each write answered 404 NOT_FOUND, stopping the sync (exit 4)."""
    env = {"MRULES_SF_SESSION_ID": "00D!token", "MRULES_SF_INSTANCE_URL": INSTANCE}
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env({**env, "MRULES_SF_API_VERSION": version})
    assert f"MRULES_SF_API_VERSION is '{version}'" in str(e.value)
    assert "need 42.0 or later" in str(e.value) and not http.calls


@pytest.mark.parametrize("version", ["v59.0", "latest"])
def test_a_bad_api_version_is_a_config_error(version) -> None:
    """`v59.0` raised ValueError from simple-salesforce's login (exit 70); with a session
    every call went to `…/data/vv59.0/` and failed as NOT_FOUND."""
    env = {**SANDBOX, "MRULES_SF_API_VERSION": version}
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env(env)
    assert "MRULES_SF_API_VERSION" in str(e.value)


@pytest.mark.parametrize(
    ("url", "api"),
    [
        (
            "https://getcloudy.lightning.force.com/lightning/page/home",
            "https://getcloudy.my.salesforce.com",
        ),
        (
            "https://getcloudy--dev.sandbox.lightning.force.com",
            "https://getcloudy--dev.sandbox.my.salesforce.com",
        ),
    ],
)
def test_a_lightning_address_as_instance_url_is_a_config_error(http, url, api) -> None:
    """The address bar's URL: the org answers the API there with a redirect to its My
    Domain, followed without the Authorization header, and every call failed as
    INVALID_SESSION_ID ("give a new session", when the session was fine)."""
    env = {"MRULES_SF_SESSION_ID": "00D!token", "MRULES_SF_INSTANCE_URL": url}
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env(env)
    assert f"MRULES_SF_INSTANCE_URL is {url!r}: the Lightning address" in str(e.value)
    assert str(e.value).endswith(f"the org's API URL is its My Domain: {api}")
    assert not http.calls


@pytest.mark.parametrize(
    "url",
    [
        "getcloudy.my.salesforce.com",
        "getcloudy.my.salesforce.com/",
        "https://",
        # No host a URL can have: a ValueError (exit 70), or calls to no such host.
        "https://[::1",
        "https://getcloudy.my.salesforce.com:99999",
        "https://get cloudy.my.salesforce.com",
    ],
)
def test_an_instance_url_without_https_host_is_a_config_error(url) -> None:
    """Without `https://`, simple-salesforce took no host from it: every call went to
    `https://None/…`, a connection error taken for an outage (retried, exit 0, forever)."""
    with pytest.raises(CrmConfigError) as e:
        SalesforceCrm.from_env({"MRULES_SF_SESSION_ID": "00D!token", "MRULES_SF_INSTANCE_URL": url})
    assert "MRULES_SF_INSTANCE_URL" in str(e.value) and "https://" in str(e.value)


INVALID_SESSION = [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]


def test_an_expired_session_logs_in_again(http) -> None:
    """A password login's session expiring mid-run: simple-salesforce logs in again once and
    repeats the call; the cycle goes on."""
    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_LOGIN)
    crm = SalesforceCrm.from_env(SANDBOX)
    base = "https://getcloudy--dev.sandbox.my.salesforce.com/services/data/v59.0/"
    http.add("GET", base + "queryAll/", json=INVALID_SESSION, status=401)
    http.add(
        "POST",
        "https://test.salesforce.com/services/Soap/u/59.0",
        body=SOAP_LOGIN.replace("!sandbox", "!fresh"),
    )
    http.add(
        "GET",
        base + "queryAll/",
        json={"totalSize": 0, "done": True, "records": []},
        match=[matchers.header_matcher({"Authorization": "Bearer 00DDn0000000001!fresh"})],
    )
    assert crm.query_changed("Lead", None, T, ["Email"]).records == []


@pytest.mark.parametrize("body", [{"error": "invalid_token"}, [], [{"message": "expired"}], "x"])
def test_a_401_of_another_shape_is_a_failed_call(http, body) -> None:
    """Under a login, simple-salesforce reads a 401's `json()[0]["errorCode"]`: a proxy's
    `{"error": ...}` raised KeyError out of the adapter, an internal error (exit 70)."""
    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_LOGIN)
    crm = SalesforceCrm.from_env(SANDBOX)
    base = "https://getcloudy--dev.sandbox.my.salesforce.com/services/data/v59.0/"
    http.add("GET", base + "queryAll/", json=body, status=401)
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert (e.value.code, e.value.transient, e.value.http_status) == (
        "UNKNOWN_EXCEPTION",
        True,
        401,
    )
    assert "the org's answer is not of the shape Salesforce sends (HTTP 401 with" in str(e.value)
    # A session given as it is: its 401 is an expired session, as it was.
    crm = SalesforceCrm.from_env(
        {"MRULES_SF_SESSION_ID": "00D!t", "MRULES_SF_INSTANCE_URL": INSTANCE}
    )
    http.add("GET", BASE + "queryAll/", json=body, status=401)
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert (e.value.code, e.value.transient) == ("INVALID_SESSION_ID", False)


def test_a_refused_login_again_mid_run_is_a_failed_login(http) -> None:
    """The session expired and the login made again was refused (the password changed, the
    user frozen): SalesforceAuthenticationFailed left the adapter, exit 70."""
    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_LOGIN)
    crm = SalesforceCrm.from_env(SANDBOX)
    base = "https://getcloudy--dev.sandbox.my.salesforce.com/services/data/v59.0/"
    http.add("GET", base + "queryAll/", json=INVALID_SESSION, status=401)
    http.add(
        "POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_FAULT, status=500
    )
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert e.value.code == "LOGIN_FAILED" and not e.value.transient
    assert "INVALID_LOGIN" in e.value.message


def test_more_than_one_record_is_a_failed_call(http, crm) -> None:
    """HTTP 300 (an external id matching several records) is SalesforceMoreThanOneRecord,
    which no clause caught: exit 70."""
    http.add(
        "GET",
        BASE + "sobjects/Lead/describe/",
        json=["/services/data/v59.0/sobjects/Lead/00QDn000000001fMAA"],
        status=300,
    )
    with pytest.raises(CrmCallError) as e:
        crm.describe("Lead")
    assert not e.value.transient and e.value.http_status == 300


def test_every_call_has_a_timeout(http) -> None:
    """requests waits for ever without a timeout, and simple-salesforce sets none: a
    connection the network dropped silently held the sync, and the store's lock, for ever."""
    import requests

    http.add("POST", "https://test.salesforce.com/services/Soap/u/59.0", body=SOAP_LOGIN)
    crm = SalesforceCrm.from_env(SANDBOX)
    base = "https://getcloudy--dev.sandbox.my.salesforce.com/services/data/v59.0/"
    http.add("GET", base + "queryAll/", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert e.value.code == "CONNECTION_ERROR" and e.value.transient
    assert [c.request.req_kwargs["timeout"] for c in http.calls] == [(30, 660), (30, 660)]


def test_a_whole_page_is_one_call_and_salesforce_says_whether_more_follow(http, crm) -> None:
    """A page of Salesforce's whole batch (2,000) asks for no row past it: its `done`
    says whether more follow, and the next page is not read (it was, for the 2,001st row
    of `LIMIT 2001`: a call more for every full page). A smaller page still asks for its
    one row more, which comes in the same answer."""
    rows = [_row(i, i % 60) for i in range(1, 2001)]
    http.add(
        "GET",
        BASE + "queryAll/",
        json={
            "totalSize": 2500,
            "done": False,
            "nextRecordsUrl": "/services/data/v59.0/query/01gDn000000001-2000",
            "records": rows,
        },
    )
    page = crm.query_changed("Lead", None, T.replace(hour=10), ["Email"])
    assert len(page.records) == 2000 and not page.done and len(http.calls) == 1
    assert not http.calls[0].request.params["q"].endswith("LIMIT 2001")
    http.add("GET", BASE + "queryAll/", json={"totalSize": 3, "done": True, "records": rows[:3]})
    page = crm.query_changed("Lead", None, T.replace(hour=10), ["Email"], limit=2)
    assert len(page.records) == 2 and not page.done and len(http.calls) == 2
    assert http.calls[1].request.params["q"].endswith(" ORDER BY SystemModstamp, Id LIMIT 3")


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        (
            {"Sforce-Limit-Info": "api-usage=15000/15000"},
            "API usage 15,000 of 15,000 calls in the last 24 hours",
        ),
        ({}, "API usage unknown after the limit error: the org's answer did not say it"),
    ],
)
def test_the_usage_after_the_limit_error_is_the_errors_own_or_unknown(
    http, crm, headers, said
) -> None:
    """simple-salesforce reads `Sforce-Limit-Info` from successful answers only (its
    SalesforceError has the url, status, resource name and content, not the headers):
    after REQUEST_LIMIT_EXCEEDED, `api_usage()` kept the last success's 14,990 of 15,000.
    It is now the error answer's, or unknown when that answer does not say it."""
    http.add(
        "GET",
        BASE + "sobjects/Lead/describe/",
        json={"name": "Lead", "fields": []},
        headers={"Sforce-Limit-Info": "api-usage=14990/15000"},
    )
    crm.describe("Lead")
    assert (crm.api_usage().used, crm.api_usage().limit) == (14990, 15000)
    limit = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    http.add("GET", BASE + "queryAll/", json=limit, status=403, headers=headers)
    with pytest.raises(CrmCallError) as e:
        crm.query_changed("Lead", None, T, ["Email"])
    assert e.value.transient and e.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert str(e.value) == f"REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded. ({said})"
    usage = crm.api_usage()
    assert str(usage) == said
    assert (usage.used, usage.limit) == ((15000, 15000) if headers else (0, 0))
    assert bool(usage.unknown) == (not headers)
