"""Reports benchmark: each report over a store of 1M events and 100k prospects.

    .venv/bin/python bench/bench_reports.py [--prospects 100000] [--events 1000000]
        [--workdir DIR] [--repeat 1]

Builds (once per workdir; later runs reuse it) the benchmark inputs of
bench/generate.py, runs them into a store with `mrules.run`, and writes a
synthetic sync file beside it: a third of the prospects linked to contacts,
one opportunity per 8 prospects (1 to 3 contact roles, a third won, a primary
campaign for most), 40 CRM campaigns with costs, and 1 to 3 campaign
memberships per linked contact. Then times each report (`mrules.reports`)
and prints one JSON object: seconds per report, and the store's size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import mrules
from mrules import reports
from mrules.store import Store
from mrules.sync.db import SyncDb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC).timestamp()


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_store(work: Path, prospects: int, events: int) -> Path:
    store = work / "bench.db"
    if store.exists():
        return store
    generate.main([str(work), "--prospects", str(prospects), "--events", str(events)])
    t = time.perf_counter()
    mrules.run(work / "rules", work / "events.jsonl", store=str(store))
    print(f"store built in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return store


def build_sync(store: Path, seed: int = 11) -> Path:
    path = store.with_name("bench.sync.db")
    if path.exists():
        return path
    rng = random.Random(seed)
    with Store.open(store, readonly=True) as s:
        assert s._conn is not None
        emails = [r[0] for r in s._conn.execute("SELECT email FROM prospects ORDER BY id")]
    db = SyncDb.open(path)
    c = db.conn
    c.execute("BEGIN")
    campaigns = [f"701{i:04d}" for i in range(40)]
    c.executemany(
        "INSERT INTO campaign (id, name, type, status, budgeted_cost, actual_cost, deleted)"
        " VALUES (?, ?, 'Webinar', 'Completed', ?, ?, 0)",
        [(cid, f"Campaign {i}", 1000.0 * (i + 1), 900.0 * (i + 1)) for i, cid in
         enumerate(campaigns)],
    )  # fmt: skip
    linked = [e for e in emails if rng.random() < 1 / 3]
    contacts = [f"003{i:012d}" for i in range(len(linked))]
    c.executemany(
        "INSERT INTO link (prospect, object, crm_id) VALUES (?, 'contact', ?)",
        zip(linked, contacts, strict=True),
    )
    members = []
    for contact in contacts:
        for _ in range(rng.randint(1, 3)):
            members.append(
                (f"00v{len(members):012d}", rng.choice(campaigns), contact,
                 _iso(START + rng.random() * 60 * 86400))
            )  # fmt: skip
    c.executemany(
        "INSERT OR IGNORE INTO campaign_member (id, campaign, contact, created, deleted)"
        " VALUES (?, ?, ?, ?, 0)",
        members,
    )
    opps, roles = [], []
    for i in range(len(emails) // 8):
        created = START + rng.random() * 60 * 86400
        won = rng.random() < 1 / 3
        opp = f"006{i:012d}"
        opps.append(
            (opp, float(rng.randint(1, 100) * 500), _iso(created + rng.random() * 40 * 86400)[:10],
             int(won), int(won or rng.random() < 0.3), _iso(created),
             rng.choice(campaigns) if rng.random() < 0.8 else None, _iso(created))
        )  # fmt: skip
        for k, contact in enumerate(rng.sample(contacts, rng.randint(1, 3))):
            roles.append((f"00K{len(roles):012d}", opp, contact, int(k == 0)))
    c.executemany(
        "INSERT INTO opportunity (id, amount, close_date, is_won, is_closed, deleted, at,"
        " campaign, created) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        opps,
    )
    c.executemany(
        "INSERT INTO opportunity_role (id, opportunity, contact, is_primary, deleted)"
        " VALUES (?, ?, ?, ?, 0)",
        roles,
    )
    c.execute("COMMIT")
    c.close()
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prospects", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mrules-bench-reports-"))
    work.mkdir(parents=True, exist_ok=True)
    store = build_store(work, args.prospects, args.events)
    build_sync(store)
    jobs = {
        "funnel (cohort, by month)": lambda: reports.funnel(store, by="month"),
        "funnel (stage, by week)": lambda: reports.funnel(store, by="week", reading="stage"),
        "campaigns": lambda: reports.campaigns(store),
        "rules": lambda: reports.rules_report(store),
        "scores": lambda: reports.scores(store),
    }
    seconds = {}
    for name, job in jobs.items():
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            job()
            best = min(best, time.perf_counter() - t)
        seconds[name] = round(best, 2)
    with Store.open(store, readonly=True) as s:
        assert s._conn is not None
        counts = {
            t: s._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("prospects", "history")
        }
    print(
        json.dumps(
            {"seconds": seconds, **counts, "store_mb": round(store.stat().st_size / 2**20)},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
