"""Three months of Get Cloudy history before the story, for the reports.

    python examples/getcloudy/history/generate.py [OUTDIR]

writes (by default beside this script) `events.jsonl` (August to October
2026: anonymous visits, prospects coming in through the LinkedIn landing
page, the webinar registration and the consult form, then pricing visits,
newsletter clicks and consult requests), `crm/` (the CRM those prospects
meet: users, the Inside Sales queue, accounts, the contacts sales works
with, four campaigns with their costs and members, opportunities with
amounts, created and close dates) and `crm-changes.jsonl` (deals won and
lost in October). One seeded `random.Random`, no clock: the same files every
time. The README runs them ("For three months of history before the story").
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import sys
from pathlib import Path

START = dt.datetime(2026, 8, 3, tzinfo=dt.UTC)
END = dt.datetime(2026, 10, 31, 20, 0, tzinfo=dt.UTC)
SITE = "https://www.getcloudy.com"
FIRST = (
    "ana",
    "bruno",
    "chloe",
    "david",
    "emma",
    "felix",
    "gaia",
    "hugo",
    "ines",
    "jules",
    "karim",
    "lea",
    "marc",
    "nina",
    "oscar",
    "paula",
    "quentin",
    "rosa",
    "sami",
    "theo",
)
LAST = (
    "martin",
    "bernard",
    "dubois",
    "thomas",
    "robert",
    "richard",
    "petit",
    "durand",
    "leroy",
    "moreau",
    "simon",
    "laurent",
)
COMPANIES = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "wonka",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
)
SIZES = ("1-10", "11-50", "51-200", "200+")
# CRM campaigns: id, name, type, status, budgeted, actual cost (LinkedIn's cost is in the rules)
CAMPAIGNS = (
    ("camp-consult", "Get Cloudy Consult 2026", "Advertisement", "In Progress", 5000, 4200),
    ("camp-webinar", "Webinar Cloud Security", "Webinar", "Completed", 2000, 1500),
    ("camp-linkedin", "LinkedIn Ads Q3", "Advertisement", "Completed", 4000, None),
    ("camp-lyon", "Trade show Lyon 2026", "Trade Show", "Completed", 8000, 8000),
)
CHANNEL_CAMPAIGN = {"ads": "camp-linkedin", "webinar": "camp-webinar", "direct": "camp-consult"}


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(out: Path, seed: int = 2026) -> dict[str, int]:
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    span = (END - START).total_seconds()

    def at(offset: float) -> dt.datetime:
        return START + dt.timedelta(seconds=min(offset, span))

    # anonymous visitors who never fill a form
    for v in range(40):
        t = at(rng.random() * span)
        for k in range(rng.randint(1, 3)):
            page = rng.choice(("/", "/blog/migrate", "/pricing", "/careers/", "/consult"))
            events.append(
                {
                    "ts": _ts(t + dt.timedelta(minutes=7 * k)),
                    "type": "page_view",
                    "visitor": f"h-anon-{v}",
                    "url": SITE + page,
                }
            )
    people = []
    for n in range(160):
        name = f"{FIRST[n % len(FIRST)]}.{LAST[(n * 7) % len(LAST)]}{n}"
        company = COMPANIES[n % len(COMPANIES)]
        email = f"{name}@{company}.example"
        channel = rng.choices(("ads", "webinar", "direct"), (35, 25, 40))[0]
        created = at(rng.random() * span * 0.9)
        visitor = f"h-v{n}" if rng.random() < 0.7 else None
        people.append(
            {
                "email": email,
                "company": company,
                "channel": channel,
                "created": created,
                "visitor": visitor,
                "assigned": None,
            }
        )
        fields = {
            "first_name": name.split(".")[0].title(),
            "company": company.title(),
            "company_size": rng.choice(SIZES),
        }
        if visitor:  # a visit or two before converting
            for k in range(rng.randint(1, 2)):
                seen = created - dt.timedelta(hours=rng.randint(1, 72), minutes=k)
                if seen > START:
                    events.append(
                        {
                            "ts": _ts(seen),
                            "type": "page_view",
                            "visitor": visitor,
                            "url": SITE + rng.choice(("/", "/blog/security", "/pricing")),
                        }
                    )
        first = {"ts": _ts(created), "prospect": email, "fields": fields}
        if visitor:
            first["visitor"] = visitor
        if channel == "ads":
            events.append({**first, "type": "landing_page_submit", "asset": "Cloud Guide"})
        elif channel == "webinar":
            events.append({**first, "type": "form_submit", "asset": "Webinar registration"})
        else:
            events.append({**first, "type": "form_submit", "asset": "Demande Get Cloudy"})
            people[-1]["assigned"] = created
        # engagement over the following weeks
        t = created
        for _ in range(rng.randint(0, 6)):
            t += dt.timedelta(hours=rng.randint(6, 240))
            if t >= END:
                break
            kind = rng.random()
            if kind < 0.45:
                events.append(
                    {
                        "ts": _ts(t),
                        "type": "page_view",
                        "prospect": email,
                        "url": "https://getcloudy.com/pricing",
                    }
                )
            elif kind < 0.7:
                events.append(
                    {
                        "ts": _ts(t),
                        "type": "email_click",
                        "prospect": email,
                        "asset": "Newsletter",
                        "url": "https://getcloudy.com/blog/migrate",
                    }
                )
            elif kind < 0.8:
                events.append(
                    {
                        "ts": _ts(t),
                        "type": "file_download",
                        "prospect": email,
                        "asset": "Cloud Buyer Guide.pdf",
                    }
                )
            elif people[-1]["assigned"] is None:
                events.append(
                    {
                        "ts": _ts(t),
                        "type": "form_submit",
                        "prospect": email,
                        "asset": "Demande Get Cloudy",
                    }
                )
                people[-1]["assigned"] = t
    events.sort(key=lambda e: (str(e["ts"]), json.dumps(e, sort_keys=True)))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "events.jsonl").open("w", encoding="utf-8") as f:
        for i, e in enumerate(events, 1):
            f.write(json.dumps({"id": f"h{i:05d}", **e}, ensure_ascii=False) + "\n")

    # The CRM: the assigned prospects sales worked become contacts, most with a deal.
    crm = out / "crm"
    crm.mkdir(exist_ok=True)
    (crm / "org.json").write_text(
        json.dumps(
            {"edition": "plus", "clock": "2026-08-01T08:00:00Z", "api_daily_limit": 15000}, indent=2
        )
        + "\n"
    )
    _csv(
        crm / "User.csv",
        ("Id", "Username", "Email", "FirstName", "LastName", "Alias", "IsActive"),
        [
            ("alan", "alan@getcloudy.com", "alan@getcloudy.com", "Alan", "Martin", "amart", "true"),
            (
                "leung-user",
                "leung@getcloudy.com",
                "leung@getcloudy.com",
                "Leung",
                "Chan",
                "lchan",
                "true",
            ),
            ("sam", "sam@getcloudy.com", "sam@getcloudy.com", "Sam", "Durand", "sdura", "true"),
        ],
    )
    (crm / "Group.jsonl").write_text(
        json.dumps({"Id": "queue-inside-sales", "Name": "Inside Sales", "Type": "Queue"}) + "\n"
    )
    _csv(
        crm / "Account.csv",
        ("Id", "Name", "OwnerId"),
        [(f"acc-{c}", c.title(), "alan") for c in COMPANIES],
    )
    _csv(
        crm / "Campaign.csv",
        (
            "Id",
            "Name",
            "Type",
            "Status",
            "IsActive",
            "StartDate",
            "BudgetedCost",
            "ActualCost",
            "OwnerId",
        ),
        [
            (
                i,
                name,
                typ,
                status,
                "true",
                "2026-08-01",
                budget,
                "" if cost is None else cost,
                "leung-user",
            )
            for i, name, typ, status, budget, cost in CAMPAIGNS
        ],
    )
    _csv(
        crm / "CampaignMemberStatus.csv",
        ("CampaignId", "Label", "HasResponded", "IsDefault"),
        [
            (i, label, str(resp).lower(), str(default).lower())
            for i, *_ in CAMPAIGNS
            for label, resp, default in (("Sent", False, True), ("Responded", True, False))
        ],
    )
    worked = [p for p in people if p["assigned"] is not None and rng.random() < 0.55]
    contacts, members, opps, roles, changes = [], [], [], [], []
    for k, p in enumerate(worked):
        cid = f"contact-h{k}"
        p["contact"] = cid
        first, last = p["email"].split("@")[0].split(".")
        contacts.append(
            {
                "Id": cid,
                "FirstName": first.title(),
                "LastName": last.title(),
                "Email": p["email"],
                "AccountId": f"acc-{p['company']}",
                "OwnerId": rng.choice(("alan", "sam")),
            }
        )
        joined = [(CHANNEL_CAMPAIGN[p["channel"]], p["created"])]
        if rng.random() < 0.35:  # met at the trade show in September
            joined.append(("camp-lyon", dt.datetime(2026, 9, 24, 10, tzinfo=dt.UTC)))
        if p["channel"] != "webinar" and rng.random() < 0.3:
            joined.append(("camp-webinar", dt.datetime(2026, 9, 10, 16, tzinfo=dt.UTC)))
        for camp, when in joined:
            members.append((f"member-h{len(members)}", camp, cid, "Responded", _ts(when)))
    # deals: one per account among the contacts sales worked, the first contact primary
    by_account: dict[str, list[dict[str, object]]] = {}
    for p in worked:
        by_account.setdefault(str(p["company"]), []).append(p)
    for company, team in sorted(by_account.items()):
        for d in range(1 + (len(team) > 3)):
            lead = team[d % len(team)]
            assigned = lead["assigned"]
            assert isinstance(assigned, dt.datetime)
            created = min(assigned + dt.timedelta(days=rng.randint(2, 20)), END)
            oid = f"opp-h-{company}-{d}"
            amount = rng.choice((6000, 9000, 12000, 18000, 24000, 36000, 48000))
            fate = rng.choices(("won", "lost", "open", "won later"), (40, 25, 20, 15))[0]
            close = created + dt.timedelta(days=rng.randint(7, 45))
            stage = {
                "won": "Closed Won",
                "lost": "Closed Lost",
                "open": "Proposal/Price Quote",
                "won later": "Negotiation/Review",
            }[fate]
            if fate in ("won", "lost"):
                close = min(close, END)
            primary = CHANNEL_CAMPAIGN[str(lead["channel"])] if rng.random() < 0.8 else ""
            opps.append(
                (
                    oid,
                    f"{company.title()} cloud {d + 1}",
                    f"acc-{company}",
                    stage,
                    amount,
                    close.date().isoformat(),
                    primary,
                    "alan",
                    _ts(created),
                )
            )
            for r, p in enumerate(team[d : d + 3] or [lead]):
                roles.append(
                    (
                        f"role-{oid}-{r}",
                        oid,
                        p["contact"],
                        "Decision Maker" if r == 0 else "Influencer",
                        "true" if r == 0 else "false",
                    )
                )
            if fate == "won later" and created + dt.timedelta(days=5) < END:
                when = min(created + dt.timedelta(days=rng.randint(5, 25)), END)
                changes.append(
                    {
                        "at": _ts(when),
                        "op": "win",
                        "id": oid,
                        "amount": amount,
                        "close_date": when.date().isoformat(),
                    }
                )
    with (crm / "Contact.jsonl").open("w", encoding="utf-8") as f:
        for c in contacts:
            f.write(json.dumps(c) + "\n")
    _csv(
        crm / "CampaignMember.csv",
        ("Id", "CampaignId", "ContactId", "Status", "CreatedDate"),
        members,
    )
    _csv(
        crm / "Opportunity.csv",
        (
            "Id",
            "Name",
            "AccountId",
            "StageName",
            "Amount",
            "CloseDate",
            "CampaignId",
            "OwnerId",
            "CreatedDate",
        ),
        opps,
    )
    _csv(
        crm / "OpportunityContactRole.csv",
        ("Id", "OpportunityId", "ContactId", "Role", "IsPrimary"),
        roles,
    )
    changes.sort(key=lambda c: (c["at"], c["id"]))
    with (out / "crm-changes.jsonl").open("w", encoding="utf-8") as f:
        for c in changes:
            f.write(json.dumps(c) + "\n")
    return {
        "events": len(events),
        "prospects": len(people),
        "contacts": len(contacts),
        "opportunities": len(opps),
        "members": len(members),
        "changes": len(changes),
    }


def _csv(path: Path, head: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    print(json.dumps(generate(folder)))
