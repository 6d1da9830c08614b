"""The CRM port over a real Salesforce org, through simple-salesforce.

Install the extra: `pip install 'mrules[salesforce]'`. `SalesforceCrm.from_env()`
logs in with the variables of `ENV_HELP` (docs/crm.md says how to connect a
sandbox). Reads are SOQL on `SystemModstamp` cursors (queryAll to see the
recycle bin) and getDeleted; writes are sObject Collections (at most 200
records a call, `allOrNone=false`, one result per record); lead conversion
is the SOAP `convertLead` call (the REST API has none). API usage is read
from the `Sforce-Limit-Info` header of every response.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlencode, urlsplit
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import quote_soql_value

from mrules.crm.errors import TRANSIENT_CODES, CrmCallError, CrmError
from mrules.crm.model import check_value, parse_datetime
from mrules.crm.port import (
    MAX_BATCH,
    ApiUsage,
    Changes,
    ConvertResult,
    Cursor,
    Deleted,
    DeletedRecord,
    FieldInfo,
    LeadConvert,
    ObjectInfo,
    Record,
    WriteResult,
    with_system_fields,
)
from mrules.diagnostics import plural
from mrules.timetext import utc_text

__all__ = ["ENV_HELP", "CrmConfigError", "SalesforceCrm"]

ENV_HELP = """\
MRULES_SF_DOMAIN           'login' (production, the default), 'test' (a sandbox) or 'NAME.my'
MRULES_SF_API_VERSION      the REST API version (default 59.0; 42.0 or later)
One of:
  MRULES_SF_INSTANCE_URL + MRULES_SF_SESSION_ID          an existing session (access token)
  MRULES_SF_USERNAME + MRULES_SF_PASSWORD + MRULES_SF_SECURITY_TOKEN
                                                          a user's password and security token
  MRULES_SF_CONSUMER_KEY + MRULES_SF_CONSUMER_SECRET     OAuth client credentials (a connected
                                                          app; MRULES_SF_DOMAIN=NAME.my)
  MRULES_SF_CONSUMER_KEY + MRULES_SF_USERNAME + MRULES_SF_PRIVATE_KEY_FILE
                                                          OAuth JWT bearer
"""
_SOAP_NS = {
    "soapenv": "http://schemas.xmlsoap.org/soap/envelope/",
    "p": "urn:partner.soap.sforce.com",
}
_COMPOUND = frozenset({"address", "location"})
_PARSED_TYPES = frozenset({"boolean", "int", "double", "currency", "percent", "date", "datetime"})
"""Field types whose JSON value Salesforce reads as such: one it cannot read fails the whole
call (JSON_PARSER_ERROR), not the record."""
READ_LAG = dt.timedelta(minutes=2)
"""A sync reads a real org's changes up to now minus this: a record's SystemModstamp is set
when its transaction starts, so a slow transaction can commit a stamp older than a read that
came first. Reading a little behind the clock lets the cursor move past only what is final."""
T = TypeVar("T")
MIN_API_VERSION = 42.0
"""The first REST API version with sObject Collections, every write of the adapter: under
an older one each write answered 404 NOT_FOUND, and the sync stopped with exit 4."""
URL_LIMIT = 14_000
"""Bytes a query's URL may have, URL-encoded: Salesforce refuses a request whose URL and
headers pass 16,384 bytes (HTTP 414 URI Too Long or 431), and a SOQL query goes in the URL
of a GET. The rest is left for the headers (the session's token, the client's own)."""
FIND_CHUNK = 100
"""Values of a `find` in one query at most (fewer when they are long: URL_LIMIT)."""
QUERY_BATCH = 2000
"""Records Salesforce answers a query with at most, a call (the rest follow by
`nextRecordsUrl`, one call a page)."""
TIMEOUT = (30, 660)
"""Seconds to connect, and to wait for the next bytes of an answer: Salesforce ends a
request after 10 minutes, so a read that waits longer waits on a connection lost."""


class _TimedSession(requests.Session):
    """A requests session whose every request has `TIMEOUT` (requests has no default, and
    simple-salesforce sets none: a silently dropped connection waited for ever)."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", TIMEOUT)
        response = super().request(*args, **kwargs)
        if self.renewable and response.status_code == 401 and "/services/data/" in response.url:
            self.refusal = _check_401(response)
        return response

    renewable = True
    """False under a session given as it is, whose 401 simple-salesforce does not read."""
    refusal = ""
    """The message of the last REST answer of HTTP 401 (under a login)."""


def _check_401(response: requests.Response) -> str:
    """A REST answer of HTTP 401 must be Salesforce's `[{"errorCode": ...}]`: under a login,
    simple-salesforce reads `result.json()[0]["errorCode"]` to decide on logging in again,
    and any other body (a proxy's `{"error": ...}`, `[]`) raised KeyError or IndexError out
    of the adapter: an internal error (exit 70) where another answer of another shape is a
    failed call, retried."""
    try:
        body = response.json()
    except ValueError:
        return ""  # not JSON: simple-salesforce's JSONDecodeError, already a failed call
    if isinstance(body, list) and body and isinstance(body[0], dict) and "errorCode" in body[0]:
        return str(body[0].get("message") or "")
    raise CrmCallError(
        "UNKNOWN_EXCEPTION",
        "the org's answer is not of the shape Salesforce sends (HTTP 401 with"
        f" {response.text[:120]!r})",
        transient=True,
        http_status=401,
    )


class CrmConfigError(Exception):
    """The environment does not say how to log in."""


class SalesforceCrm:
    """The CRM port over simple-salesforce; every method is one API call or a few."""

    def __init__(self, sf: Salesforce) -> None:
        self._sf = sf
        self._describes: dict[str, ObjectInfo] = {}
        self._calls = 0
        self._converted_status: str | None = None
        self._renewed = False
        # The org's usage, from the `Sforce-Limit-Info` header of every answer, errors
        # included: simple-salesforce reads it from successful answers only (its
        # SalesforceError keeps the url, status, resource name and content, not the
        # headers), so after REQUEST_LIMIT_EXCEEDED its figure was the last success's.
        self._usage: tuple[int, int] | None = None
        self._usage_unknown = "yet: no answer of the org said it"
        session = getattr(sf, "session", None)
        if isinstance(session, requests.Session):
            session.hooks.setdefault("response", []).append(self._note_usage)
        refresh = getattr(sf, "_refresh_session", None)
        if callable(refresh) and getattr(sf, "_salesforce_login_partial", None) is not None:
            # simple-salesforce logs in again on each INVALID_SESSION_ID of a call, up to
            # four times: a session the org refuses right after a login (a user or app
            # whose sessions are not valid for the REST API) made five logins a call, and
            # was taken for an outage by every cycle. Once a call, then it is said.
            def refresh_once() -> None:
                if self._renewed:
                    raise _refused_after_login(str(getattr(sf.session, "refusal", "")))
                self._renewed = True
                refresh()

            sf._refresh_session = refresh_once  # type: ignore[method-assign]

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, session: requests.Session | None = None
    ) -> SalesforceCrm:
        """Log in with the MRULES_SF_* variables (ENV_HELP); CrmConfigError when none are set."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"MRULES_SF_{name}") or ""
            # A value read from a file keeps its line break (`export X=$(cat f)` drops it,
            # a `.env` file written on Windows or a pasted token keeps "\r" or "\n"): the
            # session went into the Authorization header, and requests refused the header
            # in a message that held the whole token, a failure for now retried every
            # cycle. Only the password is taken as it is (it may end with a space).
            return (value if name == "PASSWORD" else value.strip()) or None

        version = get("API_VERSION") or "59.0"
        if not re.fullmatch(r"[1-9][0-9]*\.[0-9]", version):
            raise CrmConfigError(
                f"MRULES_SF_API_VERSION is {version!r}: a REST API version such as 59.0"
                " (no leading v)"
            )
        if float(version) < MIN_API_VERSION:
            raise CrmConfigError(
                f"MRULES_SF_API_VERSION is {version!r}: mrules writes with sObject Collections"
                f" (composite/sobjects), which need {MIN_API_VERSION} or later (the default"
                " is 59.0)"
            )
        common: dict[str, Any] = {"version": version, "session": session or _TimedSession()}
        domain = get("DOMAIN")
        if domain:
            if not (get("SESSION_ID") and get("INSTANCE_URL")):  # a session takes no domain
                _check_domain(domain)
            common["domain"] = domain
        if get("PASSWORD") and not get("USERNAME") and not get("SESSION_ID"):
            # A password login missing its user: with a connected app's key and secret
            # beside it, the client credentials flow was made instead, silently, as the
            # app's run-as user, whose name every write then bore.
            raise CrmConfigError(_what_is_missing(get))
        # simple-salesforce warns (a UserWarning of many lines, its file and line
        # before the command's error) when a user has not approved the connected app;
        # the refusal says it, with what to do (_login_failed).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                if get("SESSION_ID") and get("INSTANCE_URL"):
                    _check_instance_url(get("INSTANCE_URL") or "")
                    _check_session_id(get("SESSION_ID") or "")
                    common.pop("domain", None)
                    sf = Salesforce(
                        session_id=get("SESSION_ID"), instance_url=get("INSTANCE_URL"), **common
                    )
                elif get("CONSUMER_KEY") and get("PRIVATE_KEY_FILE") and get("USERNAME"):
                    sf = Salesforce(
                        username=get("USERNAME"),
                        consumer_key=get("CONSUMER_KEY"),
                        privatekey=_private_key(get("PRIVATE_KEY_FILE") or ""),
                        **common,
                    )
                elif (
                    get("USERNAME")
                    and get("PASSWORD")
                    and get("CONSUMER_KEY")
                    and get("CONSUMER_SECRET")
                ):
                    # A connected app's OAuth password flow. simple-salesforce takes it only
                    # without a security token (given one, even "", it makes the SOAP login
                    # and leaves the app aside), and sends the password as it is: Salesforce
                    # wants the token appended to it, as the SOAP login does.
                    sf = Salesforce(
                        username=get("USERNAME"),
                        password=(get("PASSWORD") or "") + (get("SECURITY_TOKEN") or ""),
                        consumer_key=get("CONSUMER_KEY"),
                        consumer_secret=get("CONSUMER_SECRET"),
                        **common,
                    )
                elif get("USERNAME") and get("PASSWORD"):
                    sf = Salesforce(
                        username=get("USERNAME"),
                        password=get("PASSWORD"),
                        security_token=get("SECURITY_TOKEN") or "",
                        **common,
                    )
                elif get("CONSUMER_KEY") and get("CONSUMER_SECRET"):
                    if (domain or "login").lower() in ("login", "test"):
                        # Salesforce takes client credentials only at the org's My Domain;
                        # simple-salesforce then sent nothing and answered "You must submit
                        # either a security token or organizationId" (LOGIN_FAILED, exit 4).
                        raise CrmConfigError(
                            "MRULES_SF_CONSUMER_KEY + MRULES_SF_CONSUMER_SECRET (the client"
                            " credentials flow) need MRULES_SF_DOMAIN set to the org's My"
                            " Domain, NAME.my (a sandbox: NAME--SANDBOX.sandbox.my), not"
                            f" {domain or 'login'!r}: login and test refuse this flow"
                        )
                    sf = Salesforce(
                        consumer_key=get("CONSUMER_KEY"),
                        consumer_secret=get("CONSUMER_SECRET"),
                        **common,
                    )
                else:
                    raise CrmConfigError(_what_is_missing(get) + "\n" + ENV_HELP)
            except SalesforceAuthenticationFailed as e:
                raise _login_failed(e) from e
            except SalesforceError as e:
                raise CrmCallError("LOGIN_FAILED", str(e), transient=False) from e
            except requests.RequestException as e:  # the login endpoint not reached
                raise CrmCallError("CONNECTION_ERROR", str(e), transient=True) from e
            except OSError as e:  # the JWT flow's key file
                raise CrmConfigError(
                    f"MRULES_SF_PRIVATE_KEY_FILE: cannot read {e.filename or ''}: {e.strerror or e}"
                ) from e
            except (ExpatError, KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
                # A login answered 200 with what simple-salesforce cannot read (a proxy's
                # page that is no XML, an OAuth answer without its instance_url, a JSON
                # array): it raised ExpatError or AttributeError out of the command.
                reason = f"no {e}" if isinstance(e, KeyError) else str(e) or type(e).__name__
                raise CrmCallError(
                    "UNKNOWN_EXCEPTION",
                    "the org's answer to the login is not of the shape Salesforce sends"
                    f" ({reason[:120]})",
                    transient=True,
                ) from e
        if isinstance(sf.session, _TimedSession):
            sf.session.renewable = getattr(sf, "auth_type", "direct") != "direct"
        return cls(sf)

    def now(self) -> dt.datetime:
        """The time up to which a sync reads the org's changes: the wall clock minus READ_LAG."""
        return _utcnow().replace(microsecond=0) - READ_LAG

    def close(self) -> None:
        session = getattr(self._sf, "session", None)
        if session is not None:
            session.close()

    # -- calls --------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], calls: int = 1, *, expect: type | None = None) -> T:
        """One API call; `expect`: the JSON type its answer must have when it has one."""
        self._calls += calls
        self._renewed = False
        try:
            result = fn()
        except SalesforceExpiredSession as e:
            if self._can_log_in_again():
                raise self._error(e, "INVALID_SESSION_ID", True) from e
            raise _session_expired(_said(e)) from e
        except SalesforceRefusedRequest as e:
            raise self._error(e, "INSUFFICIENT_ACCESS", False) from e
        except SalesforceMalformedRequest as e:
            raise self._error(e, "MALFORMED_REQUEST", False) from e
        except SalesforceResourceNotFound as e:
            raise self._error(e, "NOT_FOUND", False) from e
        except SalesforceGeneralError as e:  # any status but 300 and 400-404
            code, transient = _http_code(e.status)
            raise self._error(e, code, transient) from e
        except SalesforceAuthenticationFailed as e:
            # The session expired and simple-salesforce's login made again was refused
            # (a password changed, a user frozen): trying again will not get past it.
            raise _login_failed(e) from e
        except SalesforceError as e:  # HTTP 300 (SalesforceMoreThanOneRecord), any other
            raise self._error(e, f"HTTP_{getattr(e, 'status', 0)}", False) from e
        except requests.JSONDecodeError as e:  # HTTP 200 with a page that is no JSON
            raise CrmCallError(
                "UNKNOWN_EXCEPTION",
                f"the org's answer is not of the shape Salesforce sends (not JSON: {e})",
                transient=True,
            ) from e
        except requests.RequestException as e:
            raise CrmCallError("CONNECTION_ERROR", self._hidden(str(e)), transient=True) from e
        if expect is not None and result is not None and not isinstance(result, expect):
            # A proxy or an outage page answering 200: read as such it was an internal error.
            raise CrmCallError(
                "UNKNOWN_EXCEPTION",
                f"the org answered a JSON {type(result).__name__} where a JSON"
                f" {'object' if expect is dict else 'array'} was expected",
                transient=True,
            )
        return result

    def _error(self, e: SalesforceError, default: str, transient: bool) -> CrmCallError:
        """`_call_error`, and a refusal for the API limit says the org's usage as its answer
        gave it (or that it is unknown), not the figure of the last success."""
        error = _call_error(e, default, transient)
        if error.code == "REQUEST_LIMIT_EXCEEDED":
            error = CrmCallError(
                error.code,
                f"{error.message} ({self.api_usage()})",
                transient=error.transient,
                http_status=error.http_status,
            )
        return error

    def _hidden(self, message: str) -> str:
        """`message` without the session's token, which a refused request may quote."""
        token = getattr(self._sf, "session_id", None)
        return message.replace(token, "[session id]") if token else message

    def _can_log_in_again(self) -> bool:
        """False for a session given as it is (MRULES_SF_SESSION_ID): nothing can renew it,
        so an expired one fails every call until a new one is given."""
        return getattr(self._sf, "auth_type", "direct") != "direct"

    def _note_usage(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A response hook: the usage an answer says (`api-usage=USED/LIMIT`), or none
        known after a refusal for the limit that says none."""
        info = response.headers.get("Sforce-Limit-Info")
        usage = Salesforce.parse_api_usage(info).get("api-usage") if info else None
        if usage is not None:
            self._usage = (int(usage.used), int(usage.total))
            self._usage_unknown = ""
        elif response.status_code >= 300 and b"REQUEST_LIMIT_EXCEEDED" in (response.content or b""):
            self._usage = None
            self._usage_unknown = "after the limit error: the org's answer did not say it"

    def api_usage(self) -> ApiUsage:
        if self._usage is None:
            return ApiUsage(used=0, limit=0, calls_made=self._calls, unknown=self._usage_unknown)
        used, limit = self._usage
        return ApiUsage(used=used, limit=limit, calls_made=self._calls)

    # -- reading ------------------------------------------------------------------------------

    def describe(self, sobject: str) -> ObjectInfo:
        if sobject not in self._describes:
            body = self._call(
                lambda: self._sf.restful(f"sobjects/{sobject}/describe/"), expect=dict
            )
            with _answer(f"describe {sobject}"):
                self._describes[sobject] = _object_info(body or {})
        return self._describes[sobject]

    def _field_list(
        self, sobject: str, fields: Sequence[str] | None, missing_ok: bool = False
    ) -> list[str]:
        if fields is None:
            info = self.describe(sobject)
            names = [f.name for f in info.fields.values() if f.type not in _COMPOUND]
        elif missing_ok:  # those the describe lists, in its order and spelling
            wanted = {f.lower() for f in fields}
            info = self.describe(sobject)
            names = [
                f.name
                for f in info.fields.values()
                if f.name.lower() in wanted and f.type not in _COMPOUND
            ]
        else:
            return with_system_fields(list(fields))
        names = with_system_fields(names)
        if "IsDeleted" not in info.fields:
            # Some objects have no recycle bin, and no such field: User (a user is
            # deactivated, never deleted), Group. Selected there, the org refuses the
            # query (INVALID_FIELD: No such column 'IsDeleted' on entity 'User').
            names.remove("IsDeleted")
        return names

    def _url_length(self, soql: str, include_deleted: bool) -> int:
        """The bytes of the URL simple-salesforce GETs for `soql` (requests encodes the
        query string as `urlencode` does)."""
        url = self._sf.base_url + ("queryAll/" if include_deleted else "query/")
        return len(url) + 1 + len(urlencode({"q": soql}))

    def _too_long(self, sobject: str, names: Sequence[str], length: int) -> CrmCallError:
        return CrmCallError(
            "QUERY_TOO_LONG",
            f"a query of {sobject} selecting {plural(len(names), 'field')} would have a URL of"
            f" {length} bytes, more than the {URL_LIMIT} mrules sends (Salesforce refuses a"
            " request past 16,384 bytes with HTTP 414): map fewer fields of"
            f" {sobject}, or fields with shorter API names",
            transient=False,
        )

    def query_changed(
        self,
        sobject: str,
        since: Cursor | None,
        until: dt.datetime,
        fields: Sequence[str] | None = None,
        *,
        include_deleted: bool = True,
        limit: int = 2000,
        missing_ok: bool = False,
    ) -> Changes:
        names = self._field_list(sobject, fields, missing_ok)
        where = f"SystemModstamp <= {_soql_time(until)}"
        if since is not None:
            ts = _soql_time(since.modstamp)
            where += (
                f" AND (SystemModstamp > {ts} OR (SystemModstamp = {ts}"
                f" AND Id > {quote_soql_value(since.last_id)}))"
            )
        soql = f"SELECT {', '.join(names)} FROM {sobject} WHERE {where} ORDER BY SystemModstamp, Id"
        if limit < QUERY_BATCH:
            # The one row past the page, to know whether there is more, comes in the same
            # answer. A page of Salesforce's whole batch asks for no such row: a LIMIT of
            # 2,001 cost a second call (the next page, of one record) every full page;
            # Salesforce's own `done` says whether more follow.
            soql += f" LIMIT {limit + 1}"
        length = self._url_length(soql, include_deleted)
        if length > URL_LIMIT:
            raise self._too_long(sobject, names, length)
        rows, last_page = self._query(soql, include_deleted, want=limit)
        with _answer(f"a query of {sobject}"):
            records = [_record(sobject, r) for r in rows[:limit]]
        cursor = since
        if records:
            cursor = Cursor(records[-1].system_modstamp, records[-1].id)
        return Changes(records=records, cursor=cursor, done=last_page and len(rows) <= limit)

    def _query(
        self, soql: str, include_deleted: bool, want: int | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The rows of `soql`, following `nextRecordsUrl` page by page until the last (or,
        with `want`, until `want` rows are read: a page past them is left unread); and
        whether the last page was read."""
        page = (
            self._call(lambda: self._sf.query(soql, include_deleted=include_deleted), expect=dict)
            or {}
        )
        with _answer("a query"):
            rows = list(page.get("records", []))
        while not page.get("done", True) and (want is None or len(rows) < want):
            # A page that is not the last names the next: one that does not (a proxy's
            # rewrite) ended the read there, taken for the whole answer, and the cursor
            # moved past the records of the pages never read.
            url = page.get("nextRecordsUrl")
            if not isinstance(url, str) or not url.startswith("/services/data/"):
                with _answer("a query"):
                    raise ValueError(
                        f"a page of {plural(len(rows), 'record')} with done false"
                        f" and nextRecordsUrl {url!r}"
                    )

            def more(u: str = url) -> Any:
                return self._sf.query_more(u, identifier_is_url=True)

            page = self._call(more, expect=dict) or {}
            with _answer("a query's next page"):
                rows += page.get("records", [])
        return rows, bool(page.get("done", True))

    def get_deleted(self, sobject: str, start: dt.datetime, end: dt.datetime) -> Deleted:
        params = {"start": _rest_time(start), "end": _rest_time(end)}
        body = self._call(
            lambda: self._sf.restful(f"sobjects/{sobject}/deleted/", params=params), expect=dict
        )
        body = body or {}
        with _answer(f"the deleted records of {sobject}"):
            return Deleted(
                records=[
                    DeletedRecord(str(r["id"]), parse_datetime(r["deletedDate"]))
                    for r in body.get("deletedRecords", [])
                ],
                earliest_date_available=parse_datetime(body["earliestDateAvailable"]),
                latest_date_covered=parse_datetime(body["latestDateCovered"]),
            )

    def find(
        self,
        sobject: str,
        field: str,
        values: Sequence[str],
        fields: Sequence[str] | None = None,
        *,
        missing_ok: bool = False,
    ) -> list[Record]:
        names = self._field_list(sobject, fields, missing_ok)
        out: list[Record] = []
        wanted = sorted({str(v).strip() for v in values if v})
        head = f"SELECT {', '.join(names)} FROM {sobject} WHERE {field} IN ("
        tail = ") ORDER BY CreatedDate, Id"
        # Percent-encoding goes a character at a time: a query's URL is the URL of its
        # head and tail plus each value's encoded length and a comma's (`%2C`) between.
        base = self._url_length(head + tail, False)
        comma = len(quote_plus(","))
        chunk: list[str] = []
        length = base
        for value in [*wanted, None]:
            size = 0 if value is None else len(quote_plus(quote_soql_value(value)))
            if chunk and (
                value is None or len(chunk) == FIND_CHUNK or length + comma + size > URL_LIMIT
            ):
                soql = head + ",".join(quote_soql_value(v) for v in chunk) + tail
                rows, _ = self._query(soql, False)
                with _answer(f"a search of {sobject}"):
                    out += [_record(sobject, r) for r in rows]
                chunk, length = [], base
            if value is None:
                break
            if base + size > URL_LIMIT:
                raise self._too_long(sobject, names, base + size)
            length += size + (comma if chunk else 0)
            chunk.append(value)
        return out

    # -- writing ------------------------------------------------------------------------------

    def create(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        return self._collection("POST", "composite/sobjects", sobject, records, allow_duplicates)

    def update(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        return self._collection("PATCH", "composite/sobjects", sobject, records, allow_duplicates)

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        path = f"composite/sobjects/{sobject}/{external_id_field}"
        return self._collection("PATCH", path, sobject, records, False)

    def _collection(
        self,
        method: str,
        path: str,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        allow_duplicates: bool,
    ) -> list[WriteResult]:
        _batch(records)
        if not records:
            return []
        try:
            return self._send(method, path, sobject, records, allow_duplicates)
        except CrmCallError as e:
            if e.code != "JSON_PARSER_ERROR":
                raise
            # A value the field's type cannot take (text in a number, date or checkbox
            # field) fails the whole call: Salesforce reads the body before any record,
            # and answers HTTP 400 JSON_PARSER_ERROR, naming no record. One record's value
            # stopped every cycle (exit 4). The records whose values the describe's types
            # refuse get the error of their own, as the local CRM gives it; the others are
            # sent again.
            refused = self._unparsable(sobject, records, e.message)
            if not refused:
                raise
        kept = [r for i, r in enumerate(records) if i not in refused]
        sent = iter(self._send(method, path, sobject, kept, allow_duplicates) if kept else [])
        return [refused[i] if i in refused else next(sent) for i in range(len(records))]

    def _send(
        self,
        method: str,
        path: str,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        allow_duplicates: bool,
    ) -> list[WriteResult]:
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": sobject}, **dict(r)} for r in records],
        }
        headers = {"Sforce-Duplicate-Rule-Header": "allowSave=true"} if allow_duplicates else {}
        results = self._call(
            lambda: self._sf.restful(path, method=method, json=body, headers=headers),
            expect=list,
        )
        with _answer(f"a {method} of {sobject} records"):
            out = [_write_result(r) for r in results or []]
        if len(out) != len(records):
            raise CrmCallError(
                "UNKNOWN_EXCEPTION",
                f"{plural(len(out), 'result')} for {plural(len(records), 'record')}: the outcome"
                " is unknown",
                transient=True,
            )
        return out

    def _unparsable(
        self, sobject: str, records: Sequence[Mapping[str, Any]], message: str
    ) -> dict[int, WriteResult]:
        """The records (by index) with a value the type of its field, as the describe gives
        it, cannot take, each with its error (the field named)."""
        info = self.describe(sobject)
        out: dict[int, WriteResult] = {}
        for i, record in enumerate(records):
            for name, value in record.items():
                f = info.fields.get(name)
                if f is None or f.type not in _PARSED_TYPES:
                    continue
                try:
                    check_value(f, value)
                except CrmError as err:
                    error = CrmError(
                        err.status_code, f"{err.message} (Salesforce: {message})", err.fields
                    )
                    out[i] = WriteResult(id=None, success=False, errors=(error,))
                    break
        return out

    def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        _batch(ids)
        if not ids:
            return []
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        results = self._call(
            lambda: self._sf.restful("composite/sobjects", method="DELETE", params=params),
            expect=list,
        )
        with _answer("a delete"):
            out = [_write_result(r) for r in results or []]
        if len(out) != len(ids):  # as for a write: which records went is unknown
            raise CrmCallError(
                "UNKNOWN_EXCEPTION",
                f"{plural(len(out), 'result')} for {plural(len(ids), 'record')} deleted: the"
                " outcome is unknown",
                transient=True,
            )
        return out

    def convert_leads(self, converts: Sequence[LeadConvert]) -> list[ConvertResult]:
        _batch(converts)
        if not converts:
            return []
        if any(c.converted_status is None for c in converts) and self._converted_status is None:
            rows, _ = self._query(
                "SELECT MasterLabel FROM LeadStatus WHERE IsConverted = true"
                " ORDER BY SortOrder LIMIT 1",
                False,
            )
            if not rows:
                raise CrmCallError(
                    "INVALID_STATUS", "the org has no converted lead status", transient=False
                )
            with _answer("the query of the converted lead status"):
                self._converted_status = str(rows[0]["MasterLabel"])
        envelope = _convert_envelope(self._sf.session_id, converts, self._converted_status)
        url = f"https://{self._sf.sf_instance}/services/Soap/u/{self._sf.sf_version}"

        def post() -> requests.Response:
            return self._sf.session.post(
                url,
                data=envelope.encode("utf-8"),
                headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'},
            )

        self._calls += 1
        try:
            response = post()
        except requests.RequestException as e:
            raise CrmCallError("CONNECTION_ERROR", self._hidden(str(e)), transient=True) from e
        return _convert_results(response, self._can_log_in_again(), len(converts))


def _private_key(path: str) -> str:
    """The PEM text of MRULES_SF_PRIVATE_KEY_FILE; CrmConfigError (exit 2) naming the file
    when it cannot be read or holds no private key, before any HTTP call."""
    where = f"MRULES_SF_PRIVATE_KEY_FILE {path}"
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read(1 << 20)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CrmConfigError(f"{where}: cannot be read ({reason})") from e
    try:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        loaded = load_pem_private_key(key.encode("utf-8"), password=None)
    except (ValueError, TypeError) as e:  # not PEM, or a key with a passphrase
        raise CrmConfigError(
            f"{where}: not a private key (an unencrypted PEM key is expected: {e})"
        ) from e
    if not isinstance(loaded, RSAPrivateKey):
        # Salesforce signs and checks the JWT bearer flow with RS256 only: another key
        # (EC, Ed25519) made pyjwt raise InvalidKeyError out of the command (exit 70).
        kind = type(loaded).__name__.removeprefix("_").removesuffix("PrivateKey") or "another"
        raise CrmConfigError(
            f"{where}: a key of type {kind}, where Salesforce's JWT bearer flow needs an RSA"
            " private key (RS256), the key of the certificate uploaded to the connected app"
        )
    return key


def _what_is_missing(get: Callable[[str], str | None]) -> str:
    """The variable(s) a half-given login lacks, named; or that none is set."""
    pairs = (
        ("SESSION_ID", ("INSTANCE_URL",)),
        ("INSTANCE_URL", ("SESSION_ID",)),
        ("USERNAME", ("PASSWORD",)),
        ("PASSWORD", ("USERNAME",)),
        ("SECURITY_TOKEN", ("USERNAME", "PASSWORD")),
        ("PRIVATE_KEY_FILE", ("CONSUMER_KEY", "USERNAME")),
        ("CONSUMER_KEY", ("CONSUMER_SECRET",)),
        ("CONSUMER_SECRET", ("CONSUMER_KEY",)),
    )
    for given, needs in pairs:
        if get(given):
            missing = [f"MRULES_SF_{n}" for n in needs if not get(n)]
            if missing:
                verb = "are" if len(missing) > 1 else "is"
                return f"MRULES_SF_{given} is set but {' and '.join(missing)} {verb} not"
    return "no Salesforce credentials in the environment (MRULES_SF_* variables)"


def _check_domain(domain: str) -> None:
    """MRULES_SF_DOMAIN is what simple-salesforce puts before `.salesforce.com`: a host
    (`getcloudy.my.salesforce.com`) or a URL given there became a login to
    `https://getcloudy.my.salesforce.com.salesforce.com`, a DNS failure taken for an org
    not reached (exit 4)."""
    if re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*", domain) and (
        not domain.lower().endswith(".salesforce.com")
    ):
        return
    host = (urlsplit(domain if "://" in domain else "//" + domain).hostname or "").strip(".")
    name = host[: -len(".salesforce.com")] if host.endswith(".salesforce.com") else ""
    raise CrmConfigError(
        f"MRULES_SF_DOMAIN is {domain!r}: 'login', 'test' or the org's My Domain without"
        " https:// and .salesforce.com, "
        + (f"here {name!r}" if name else "such as getcloudy.my or getcloudy--dev.sandbox.my")
    )


def _check_instance_url(url: str) -> None:
    """MRULES_SF_INSTANCE_URL must be a URL with a host: simple-salesforce takes the host
    from it (and calls it over https), and without one sends every call to `https://None/`."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (a port out of range, `[::1`: ValueError)
    except ValueError:
        parts = urlsplit("")
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        # No host, or none a URL can have (`https://[::1`, a port past 65535, a space):
        # ValueError out of simple-salesforce, or calls to no such host.
        raise CrmConfigError(
            f"MRULES_SF_INSTANCE_URL is {url!r}: the org's URL with https://, such as"
            " https://getcloudy.my.salesforce.com"
        )
    host = host.rstrip(".")
    if host.endswith(_LIGHTNING):
        # The address of Lightning pages in a browser, copied from its address bar: the
        # org answers the API there with a redirect to its My Domain, which requests
        # follows without the Authorization header (another host), and every call was
        # INVALID_SESSION_ID: "give a new session", when the session was fine.
        api = host.removesuffix(_LIGHTNING) + ".my.salesforce.com"
        raise CrmConfigError(
            f"MRULES_SF_INSTANCE_URL is {url!r}: the Lightning address of the org's pages,"
            f" where the API is not; the org's API URL is its My Domain: https://{api}"
        )


_LIGHTNING = ".lightning.force.com"


def _check_session_id(session_id: str) -> None:
    """MRULES_SF_SESSION_ID goes in an HTTP header: a space, a line break or a character
    no header carries inside it is a config error that names the variable, never the
    token (requests' own refusal quotes the whole header)."""
    if not re.fullmatch(r"[\x21-\x7e]+", session_id):
        raise CrmConfigError(
            "MRULES_SF_SESSION_ID holds a space, a line break or a character an HTTP header"
            " cannot carry: give the access token alone, on one line"
        )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _batch(records: Sequence[Any]) -> None:
    if len(records) > MAX_BATCH:
        raise CrmCallError(
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_BATCH} records into this call",
            transient=False,
        )


@contextlib.contextmanager
def _answer(what: str) -> Iterator[None]:
    """Reading the org's answer to `what`: one of another shape than Salesforce sends (a
    record without its Id, a time that is no time, results that are no objects) is a
    failed call, retried as the cycle's other failures are, not an internal error."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        reason = f"no {e}" if isinstance(e, KeyError) else str(e) or type(e).__name__
        raise CrmCallError(
            "UNKNOWN_EXCEPTION",
            f"the org's answer to {what} is not of the shape Salesforce sends ({reason[:120]})",
            transient=True,
        ) from e


def _login_failed(e: SalesforceAuthenticationFailed) -> CrmCallError:
    """LOGIN_FAILED in one line: simple-salesforce's message is the whole body of an answer
    that is not a login fault (a gateway's HTML page, a fault without its detail), tags,
    line breaks and all, which the command printed as its error."""
    # `auth_message` in 1.12.10 (tested); `message` for a release without that attribute.
    body = getattr(e, "auth_message", None)
    body = getattr(e, "message", "") if body is None else body
    text = " ".join(re.sub(r"<[^>]*>", " ", str(body)).split())
    if len(text) > 200:
        text = text[:199] + "…"
    code = (
        f" (HTTP {e.code})"  # not a login fault: the answer's status
        if isinstance(e.code, int)
        else f" (code: {e.code})"
        if e.code is not None
        else ""
    )
    if text == _NOT_APPROVED:
        text += (
            " (the JWT flow needs the integration user pre-authorized: in the connected"
            " app's policies, Permitted Users: Admin approved users are pre-authorized,"
            " and the user's profile or a permission set of the user added to the app)"
        )
    return CrmCallError("LOGIN_FAILED", f"Authentication failed{code}: {text}", transient=False)


_NOT_APPROVED = "user hasn't approved this consumer"
"""Salesforce's `invalid_grant` description for a JWT login of a user the connected app
does not pre-authorize (and who never approved it in a browser)."""


def _refused_after_login(message: str) -> CrmCallError:
    """INVALID_SESSION_ID for the session of a login just made again: not transient."""
    return CrmCallError(
        "INVALID_SESSION_ID",
        f"{message.strip() or 'Session expired or invalid'} (the org refused the session of"
        " a login just made again, as it did the one before: the integration user or the"
        " connected app may not use the REST API, for want of the API Enabled permission,"
        " of the connected app's api OAuth scope, or by a session policy such as sessions"
        " locked to an IP address; fix it in the org, then run the command again)",
        transient=False,
        http_status=401,
    )


def _session_expired(message: str) -> CrmCallError:
    """INVALID_SESSION_ID for a session given as it is: not transient, the fix is named."""
    return CrmCallError(
        "INVALID_SESSION_ID",
        f"{message.strip()} (the session of MRULES_SF_SESSION_ID expired or was revoked:"
        " give a new one, or log in with MRULES_SF_USERNAME or MRULES_SF_CONSUMER_KEY,"
        " whose sessions are renewed)",
        transient=False,
        http_status=401,
    )


_TRANSIENT_4XX = frozenset({408, 429})
"""4xx answers that say "not now" (a request timeout, too many requests): another 4xx
refuses the request itself (414 URI Too Long, 431, 405, 409, 415), and fails again."""


def _http_code(status: int) -> tuple[str, bool]:
    """The code and transience of an HTTP error whose answer names no errorCode: a 5xx is
    the org unavailable for now; a 4xx is `HTTP_414` and such, its own."""
    if status >= 500:
        return "SERVER_UNAVAILABLE", True
    return f"HTTP_{status}", status in _TRANSIENT_4XX


def _said(e: SalesforceError) -> str:
    """Salesforce's message in the answer of `e`; simple-salesforce's own text (`Expired
    session for URL. Response content: [{...}]`, the body as Python writes it) without."""
    content = getattr(e, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        message = content[0].get("message")
        if isinstance(message, str) and message.strip():
            return message
    return str(e)


def _call_error(e: SalesforceError, default: str, transient: bool) -> CrmCallError:
    code, message = default, str(e)
    content = getattr(e, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        code = content[0].get("errorCode", code)
        message = content[0].get("message", message)
    status = getattr(e, "status", 0)
    hint = _HINTS.get(code)
    if hint:
        message = f"{message} ({hint})"
    return CrmCallError(
        code, message, transient=transient or code in TRANSIENT_CODES, http_status=status
    )


_HINTS = {
    "QUERY_TIMEOUT": "Salesforce stopped a query that ran too long, as it does when the org"
    " is busy: the next cycle reads again",
    "INVALID_QUERY_LOCATOR": "the query's next page expired before it was read: the next"
    " cycle reads again",
}
"""What a transient code of a 400 answer means for the sync, added to Salesforce's message."""


def _soql_time(value: dt.datetime) -> str:
    """A SOQL datetime literal, `YYYY-MM-DDTHH:MM:SSZ`: the year in four digits always
    (`strftime("%Y")` writes the year 999 as `999` on Linux, which SOQL refuses)."""
    return utc_text(value)


def _rest_time(value: dt.datetime) -> str:
    """A REST API time parameter, `YYYY-MM-DDTHH:MM:SS+00:00` (a four-digit year)."""
    return utc_text(value).removesuffix("Z") + "+00:00"


def _record(sobject: str, row: Mapping[str, Any]) -> Record:
    fields = {k: v for k, v in row.items() if k != "attributes"}
    if not isinstance(fields["Id"], str):
        raise TypeError(f"a record's Id is not text: {str(fields['Id'])[:40]!r}")
    return Record(
        sobject=sobject,
        id=fields["Id"],
        fields=fields,
        system_modstamp=parse_datetime(fields["SystemModstamp"]),
        is_deleted=bool(fields.get("IsDeleted")),
    )


def _errors(items: Sequence[Mapping[str, Any]] | None) -> tuple[CrmError, ...]:
    return tuple(
        CrmError(
            str(e.get("statusCode", "UNKNOWN_EXCEPTION")),
            str(e.get("message", "")),
            tuple(e.get("fields") or ()),
        )
        for e in items or ()
    )


def _write_result(r: Mapping[str, Any]) -> WriteResult:
    if r.get("id") is not None and not isinstance(r["id"], str):
        raise TypeError(f"a result's id is not text: {str(r['id'])[:40]!r}")
    return WriteResult(
        id=r.get("id"),
        success=bool(r.get("success")),
        errors=_errors(r.get("errors")),
        created=bool(r.get("created", False)),
    )


def _object_info(body: Mapping[str, Any]) -> ObjectInfo:
    fields = {}
    for f in body.get("fields", []):
        nillable = bool(f.get("nillable", True))
        defaulted = bool(f.get("defaultedOnCreate", False))
        createable = bool(f.get("createable", False))
        fields[f["name"]] = FieldInfo(
            name=f["name"],
            label=f.get("label", f["name"]),
            type=f.get("type", "string"),
            length=int(f.get("length") or 0),
            nillable=nillable,
            createable=createable,
            updateable=bool(f.get("updateable", False)),
            required=createable and not nillable and not defaulted,
            defaulted_on_create=defaulted,
            restricted_picklist=bool(f.get("restrictedPicklist", False)),
            picklist_values=tuple(
                p["value"] for p in f.get("picklistValues") or () if p.get("active", True)
            ),
            reference_to=tuple(f.get("referenceTo") or ()),
            custom=bool(f.get("custom", False)),
            external_id=bool(f.get("externalId", False)),
        )
    return ObjectInfo(
        name=str(body.get("name", "")),
        key_prefix=body.get("keyPrefix") or "",
        custom=bool(body.get("custom", False)),
        fields=fields,
        createable=bool(body.get("createable", True)),
    )


def _convert_envelope(session_id: str, converts: Sequence[LeadConvert], default: str | None) -> str:
    def el(name: str, value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        return f"<p:{name}>{escape(str(value))}</p:{name}>"

    items = []
    for c in converts:
        items.append(
            "<p:leadConverts>"
            + el("accountId", c.account_id)
            + el("contactId", c.contact_id)
            + el("convertedStatus", c.converted_status or default)
            + el("doNotCreateOpportunity", c.do_not_create_opportunity)
            + el("leadId", c.lead_id)
            + el("opportunityName", c.opportunity_name)
            + el("overwriteLeadSource", c.overwrite_lead_source)
            + el("ownerId", c.owner_id)
            + el("sendNotificationEmail", False)
            + "</p:leadConverts>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_SOAP_NS["soapenv"]}" xmlns:p="{_SOAP_NS["p"]}">'
        "<soapenv:Header><p:SessionHeader>"
        f"<p:sessionId>{escape(session_id)}</p:sessionId>"
        "</p:SessionHeader></soapenv:Header>"
        f"<soapenv:Body><p:convertLead>{''.join(items)}</p:convertLead></soapenv:Body>"
        "</soapenv:Envelope>"
    )


def _convert_results(
    response: requests.Response, renewable: bool, expected: int
) -> list[ConvertResult]:
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError as e:
        if response.status_code == 200:  # a proxy's or gateway's page: as a REST call's
            with _answer("convertLead"):
                raise ValueError(f"not XML: {e}") from e
        code, transient = _http_code(response.status_code)
        raise CrmCallError(
            code,
            f"convertLead answered HTTP {response.status_code} with no SOAP body",
            transient=transient,
            http_status=response.status_code,
        ) from e
    fault = root.find(".//soapenv:Fault", _SOAP_NS)
    if fault is not None:
        code = (fault.findtext("faultcode") or "UNKNOWN_EXCEPTION").split(":")[-1]
        if code == "INVALID_SESSION_ID" and not renewable:
            raise _session_expired(fault.findtext("faultstring") or "")
        raise CrmCallError(
            code,
            fault.findtext("faultstring") or "",
            transient=code in TRANSIENT_CODES,
            http_status=response.status_code,
        )
    out = []
    for result in root.iterfind(".//p:result", _SOAP_NS):

        def text(name: str, node: ET.Element = result) -> str | None:
            value = node.findtext(f"p:{name}", namespaces=_SOAP_NS)
            return value or None

        errors = tuple(
            CrmError(
                text("statusCode", e) or "UNKNOWN_EXCEPTION",
                text("message", e) or "",
                tuple(x.text or "" for x in e.iterfind("p:fields", _SOAP_NS)),
            )
            for e in result.iterfind("p:errors", _SOAP_NS)
        )
        out.append(
            ConvertResult(
                lead_id=text("leadId") or "",
                success=text("success") == "true",
                account_id=text("accountId"),
                contact_id=text("contactId"),
                opportunity_id=text("opportunityId"),
                errors=errors,
            )
        )
    if len(out) != expected:
        raise CrmCallError(
            "UNKNOWN_EXCEPTION",
            f"the org's answer to convertLead is not of the shape Salesforce sends"
            f" ({plural(len(out), 'result')} for {plural(expected, 'lead')}): the outcome is"
            " unknown",
            transient=True,
            http_status=response.status_code,
        )
    return out
