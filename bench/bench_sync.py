"""Sync benchmark: plan + apply for N prospects against N CRM contacts (docs/sync.md#speed).

    .venv/bin/python bench/bench_sync.py [--prospects 100000] [--changed 0.10] [--workdir DIR]

Builds a store of N prospects with 5 mapped fields, a local CRM with the same
N people as contacts, and links them (a first cycle, timed too); then changes
`--changed` of the prospects (a field of ours) and `--changed` of the contacts
(a field in the CRM), half of them the same people (a conflict the field's
policy settles), and times one cycle: plan (read every prospect, the CRM's
changes since the cursor, merge) and apply (CRM writes, the sync file, the
facts through the engine). Prints one JSON object: records/s for the cycle
(wall clock and per CPU second), the first link, the connector's 4,800
records/hour (800 every 10 minutes), and the peak RSS of the first link and of
the cycle after each of their steps (before: the process with everything
imported and the files open; plan; apply; engine). Each step runs in a
process of its own, so a step's peak is its own, not the setup's.

    .venv/bin/python bench/bench_sync.py --prospects 100000 --setup-only --workdir DIR

stops after building the store and the CRM (to time or profile a first link on it).

    .venv/bin/python bench/bench_sync.py --prospects 100000 --store-cache-kib 2000

caps the store's page cache for the cycles (the store keeps up to 64 MB of its pages in
memory): how much of a step's peak is SQLite's cache rather than the sync's objects.

    .venv/bin/python bench/bench_sync.py --prospects 100000 --held-errors 6000

times idle cycles with that many prospects held in the error queue instead (a value of
ours the CRM refuses, too long for its field): after the first link, a cycle that is
refused for each, the cycle after it, then three idle cycles (nothing changed on either
side), timed; prints their plan and whole-cycle seconds and the errors still held.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mrules
from mrules.api import compile_rules
from mrules.crm.emulator import EmulatedCrm
from mrules.store import Store
from mrules.sync import SyncConfig, SyncDb, default_sync_path
from mrules.sync.apply import apply_plan, deliver
from mrules.sync.plan import make_plan

CONNECTOR_PER_HOUR = 800 * 6
FIELDS = (
    ("phone", "Phone", "most recent"),
    ("title", "Title", "ours"),
    ("lead_source", "LeadSource", "crm"),
    ("department", "Department__c", "ours"),
    ("description", "Notes__c", "most recent"),
)


def rules(n: int) -> str:
    maps = "\n".join(f'  map {f} <-> "{c}" prefer {p}' for f, c, p in FIELDS)
    decls = "\n".join(f"field {f}: text" for f, _c, _p in FIELDS)
    return f"""{decls}
sync salesforce {{
  objects lead, contact
  match by email
  every 10 minutes batch {max(n, 1)}
{maps}
}}
"""


def _rss_mb() -> int:
    """Peak resident memory of this process so far (MB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def setup(work: Path, n: int) -> None:
    """The store of N prospects and the local CRM of N contacts, the same people, unlinked."""
    store_path = work / "bench.db"
    for p in work.glob("bench.*"):
        p.unlink()
    compiled = compile_rules(rules(n))
    emails = [f"p{i:06d}@bench.example" for i in range(n)]
    custom = {
        "Department__c": {"type": "string", "length": 80},
        "Notes__c": {"type": "string", "length": 255},
    }
    crm = EmulatedCrm.open(
        work / "bench.crm.db",
        org={
            "edition": "plus",
            "clock": "2026-11-01T08:00:00Z",
            "custom_fields": {"Contact": custom, "Lead": custom},
        },
    )
    for i in range(0, n, 200):
        results = crm.create(
            "Contact",
            [
                {
                    "LastName": f"P{j}",
                    "Email": emails[j],
                    "Phone": f"+1 555 {j:06d}",
                    "Title": "Engineer",
                    "LeadSource": "Web",
                    "Department__c": "IT",
                    "Notes__c": f"d{j}",
                }
                for j in range(i, min(n, i + 200))
            ],
        )
        if not all(r.success for r in results):
            raise SystemExit(f"the CRM refused the seed: {results[0].errors}")
    crm.close()
    events = (
        json.dumps(
            {
                "ts": "2026-11-01T09:00:00Z",
                "type": "prospect_update",
                "prospect": e,
                "fields": {
                    "phone": f"+1 555 {j:06d}",
                    "title": "Engineer",
                    "lead_source": "Web",
                    "department": "IT",
                    "description": f"d{j}",
                },
            }
        )
        for j, e in enumerate(emails)
    )
    mrules.run(compiled, events, store=store_path).close()


def change(work: Path, n: int, changed: float, seed: int) -> int:
    """`changed` of the prospects changed on our side, as many in the CRM, half the same."""
    rnd = random.Random(seed)
    compiled = compile_rules(rules(n))
    emails = [f"p{i:06d}@bench.example" for i in range(n)]
    k = int(n * changed)
    ours = rnd.sample(range(n), k)
    theirs = ours[: k // 2] + rnd.sample(range(n), k - k // 2)
    crm = EmulatedCrm.open(work / "bench.crm.db")
    crm.set_clock(crm.now().replace(hour=9, minute=5))
    for i in range(0, len(theirs), 200):
        found = crm.find("Contact", "Email", [emails[j] for j in theirs[i : i + 200]])
        crm.update(
            "Contact", [{"Id": r.id, "Title": "Manager", "Notes__c": "edited"} for r in found]
        )
    crm.close()
    events = (
        json.dumps(
            {
                "ts": "2026-11-02T09:06:00Z",
                "type": "prospect_update",
                "prospect": emails[j],
                "fields": {"title": "Director", "phone": "+1 555 000000"},
            }
        )
        for j in ours
    )
    mrules.run(compiled, events, store=work / "bench.db", source="bench-changes").close()
    return k


def hold(work: Path, n: int, k: int) -> int:
    """`k` prospects given a department too long for the CRM's field (80 characters):
    the next cycle's update of each is refused and held in the error queue."""
    compiled = compile_rules(rules(n))
    events = (
        json.dumps(
            {
                "ts": "2026-11-02T09:06:00Z",
                "type": "prospect_update",
                "prospect": f"p{j:06d}@bench.example",
                "fields": {"department": "D" * 100},
            }
        )
        for j in range(k)
    )
    mrules.run(compiled, events, store=work / "bench.db", source="bench-held").close()
    return k


def held_errors(work: Path) -> int:
    db = SyncDb.open(default_sync_path(work / "bench.db"), readonly=True)
    try:
        return len(db.errors())
    finally:
        db.close()


def cycle(work: Path, n: int, at: float, store_cache_kib: int | None = None) -> dict[str, Any]:
    """One cycle (plan, apply, the facts through the engine), timed; run in a child process
    so that its peak memory is the cycle's own (plus the interpreter's)."""
    compiled = compile_rules(rules(n))
    config = SyncConfig.from_rules(compiled)
    store_path = work / "bench.db"
    crm = EmulatedCrm.open(work / "bench.crm.db")
    store = Store.open(store_path)
    if store_cache_kib is not None:  # an experiment: the store's page cache capped
        store._connection().execute(f"PRAGMA cache_size = -{int(store_cache_kib)}")
    db = SyncDb.open(default_sync_path(store_path))
    rss_before = _rss_mb()
    try:
        c0 = time.process_time()
        t0 = time.perf_counter()
        plan = make_plan(store, crm, db, config, at)
        pj = plan.as_json()
        t1 = time.perf_counter()
        rss_plan = _rss_mb()
        report = apply_plan(pj, store, crm, db, check_stale=False)
        t2 = time.perf_counter()
        rss_apply = _rss_mb()
        summary = pj["summary"]
        del plan, pj
        report.delivered = deliver(db, store, compiled)
        t3 = time.perf_counter()
        cpu = time.process_time() - c0
    finally:
        db.close()
        store.close()
        crm.close()
    return {
        **summary,
        **report.as_json(),
        "errors": len(report.errors),
        "plan_s": t1 - t0,
        "apply_s": t3 - t1,
        "crm_writes_s": round(t2 - t1, 2),
        "engine_s": round(t3 - t2, 2),
        "cpu_s": cpu,
        "rss_mb": {
            "before": rss_before,
            "plan": rss_plan,
            "apply": rss_apply,
            "engine": _rss_mb(),
        },
    }


def _child(fn: Any, *args: Any) -> Any:
    """`fn(*args)` in a fresh interpreter (its peak memory is its own)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prospects", type=int, default=100_000)
    ap.add_argument("--changed", type=float, default=0.10)
    ap.add_argument("--workdir")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--setup-only", action="store_true", help="build the store and the CRM, unlinked; stop"
    )
    ap.add_argument(
        "--store-cache-kib",
        type=int,
        help="cap the store's SQLite page cache during the cycles (KiB; default: the store's)",
    )
    ap.add_argument(
        "--held-errors",
        type=int,
        help="time idle cycles with this many prospects held in the error queue",
    )
    args = ap.parse_args(argv)
    n = args.prospects
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-sync-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    _child(setup, work, n)
    seed_s = time.perf_counter() - t
    if args.setup_only:
        print(json.dumps({"prospects": n, "setup_s": round(seed_s, 2), "workdir": str(work)}))
        return 0
    at0 = 1793610000.0  # 2026-11-02T09:00:00Z
    link = _child(cycle, work, n, at0, args.store_cache_kib)
    if args.held_errors:
        _child(hold, work, n, args.held_errors)
        _child(cycle, work, n, at0 + 600)  # refused, held
        _child(cycle, work, n, at0 + 1200)  # the engine took the cycle's facts in
        idle = [_child(cycle, work, n, at0 + 600 * (3 + i)) for i in range(3)]
        print(
            json.dumps(
                {
                    "prospects": n,
                    "held_errors": _child(held_errors, work),
                    "idle_plan_s": [round(c["plan_s"], 3) for c in idle],
                    "idle_cycle_s": [round(c["plan_s"] + c["apply_s"], 3) for c in idle],
                }
            )
        )
        return 0
    k = _child(change, work, n, args.changed, args.seed)
    second = _child(cycle, work, n, at0 + 600, args.store_cache_kib)
    total = second["plan_s"] + second["apply_s"]
    out = {
        "prospects": n,
        "crm_records": n,
        "mapped_fields": len(FIELDS),
        "changed_each_side": k,
        "setup_s": round(seed_s, 2),
        "first_link": {
            "plan_s": round(link["plan_s"], 2),
            "apply_s": round(link["apply_s"], 2),
            "records_per_s": round(n / (link["plan_s"] + link["apply_s"])),
            "cpu_s": round(link["cpu_s"], 2),
            "records_per_cpu_s": round(n / link["cpu_s"]),
            "linked": link["linked"],
        },
        "cycle": {
            "plan_s": round(second["plan_s"], 2),
            "apply_s": round(second["apply_s"], 2),
            "records_per_s": round(n / total),
            "cpu_s": round(second["cpu_s"], 2),
            "records_per_cpu_s": round(n / second["cpu_s"]),
            "of_which_crm_writes_s": second["crm_writes_s"],
            "of_which_engine_s": second["engine_s"],
            "updated_in_crm": second["updated"],
            "facts_for_engine": second["facts_for_engine"],
            "errors": second["errors"],
        },
        "connector_records_per_hour": CONNECTOR_PER_HOUR,
        "x_connector": round(n / total * 3600 / CONNECTOR_PER_HOUR),
        "store_cache_kib": args.store_cache_kib,
        "peak_rss_mb_by_step": {
            "first_link": link["rss_mb"],
            "cycle": second["rss_mb"],
        },
        "workdir": str(work),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
