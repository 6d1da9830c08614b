"""The benchmark's ceiling: bench/handwritten.py's loop with no persistence at all.

    python bench/handwritten_memory.py EVENTS [--seed 7] [--reader lean|mrules]
                                       [--export FILE] [--check-against STORE]

What the fastest honest hand-written program for bench/generate.py's workload
looks like: plain dicts and slotted objects in memory, the same semantics as
`Baseline` (and so as mrules: settle until quiet in priority order, throttles,
once per email link, first open only, visitor attach, ticks), and nothing
else. No ledger rows, no activity rows, no JSON encoding, no SQLite, no
batches: a ledger entry is only a sequence number (the `seq` that pending CRM
work carries), the outbox is a count, pending CRM work is kept per prospect
because `mrules state export` shows it.

`--reader lean` (the default) reads the stream with its own few lines
(`orjson.loads`, `datetime.fromisoformat`, the email stripped and lowercased):
it trusts the generator's output, which has no invalid lines, where mrules's
`read_events` validates every key. `--reader mrules` uses `read_events`.

`export()` gives every prospect in the shape of `mrules state export`, so the
result can be compared with a store mrules wrote (`--check-against STORE` runs
`mrules state export --store STORE` and compares; the rule's file:line in
pending CRM work is left out, the loop has no rule files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import handwritten as hw

from mrules.events import Event, Reject, read_events
from mrules.urls import normalize_url

__all__ = ["MemoryLoop", "compare_exports", "main", "read_export", "read_lean"]

_new_event = tuple.__new__


class _Drop(list):  # type: ignore[type-arg]
    """A list that keeps nothing (the batch rows a persisting loop would write)."""

    def append(self, item: Any) -> None:
        pass


class _Sink:
    """Stands where `Baseline` keeps its batch: every row appended to it is dropped."""

    def __init__(self) -> None:
        self.ledger = self.activities = self.applied_ids = self.outbox = _Drop()
        self.crm_pending = self.rejects = self.attach_visitor = _Drop()


def read_lean(path: str | Path) -> Iterator[Event]:
    """The generator's stream as `Event`s, without validation (it writes no invalid line);
    a `.gz` stream (bench_scale.py's cache) is read through gzip, as `mrules run` reads it."""
    loads = orjson.loads
    fromiso = dt.datetime.fromisoformat
    event = Event
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        for line, data in enumerate(f, 1):
            o = loads(data)
            get = o.get
            email = get("prospect")
            if email is not None:
                email = email.strip().lower()
            yield _new_event(
                event,
                (
                    line,
                    get("id"),
                    None,
                    fromiso(o["ts"]).timestamp(),
                    o["type"],
                    email,
                    get("visitor"),
                    get("url"),
                    get("asset"),
                    get("fields") or {},
                    get("user"),
                    get("object"),
                    get("crm_id"),
                    get("status"),
                    data,  # raw: what `owner_since` reads on a CRM reassignment
                ),
            )


# What each automation rule reads, as precisely as a hand-written program for these rules
# knows it (`Baseline` uses the coarser facts the engine tracks: "act", "time"). A fact a
# rule does not read here can only make it false, never true, so not trying the rule
# after that change cannot change the outcome: "time" passing only closes a `within`
# window; "act" is split into the two page visits the rules read ("a:pricing",
# "a:docs"), which page views set only when they touch them; "assigned" and "act" do
# not move `days since` or `created` towards true.
LEAN_READS: dict[str, frozenset[str]] = {
    "Enterprise fast lane": frozenset(("f:company_size", "act")),
    "Pricing interest": frozenset(("a:pricing", "score")),
    "Docs readers": frozenset(("a:docs",)),
    "Whitepaper downloaders": frozenset(("act",)),
    "Email engaged": frozenset(("act",)),
    "Score decay": frozenset(("time", "score")),
    "Cold prospects": frozenset(("time", "score")),
}
_PRICING = "site.example/products/3"
_DOCS = "site.example/docs/1"


def lean_model(model: hw.Model) -> hw.Model:
    """The same rules, trying each after the changes of `LEAN_READS`."""
    unknown = LEAN_READS.keys() - {r.name for r in model.rules}
    if unknown:
        raise ValueError(f"LEAN_READS names rules the model does not have: {sorted(unknown)}")
    rules = [
        hw.Rule(r.name, LEAN_READS[r.name], r.when, r.actions, r.repeat, r.max_times, r.timers)
        if r.name in LEAN_READS
        else r
        for r in model.rules
    ]
    return hw.Model(model.exact, model.wildcards, model.blocks, rules)


class MemoryLoop(hw.Baseline):
    """`Baseline` with every persistence path removed: state in memory, nothing written.

    With `lean=True` (the default) it also tries fewer rules after a change
    (`LEAN_READS`) and finds a wildcard page by its prefix in a dict rather than
    by trying every prefix; the outcome is the same (the tests compare it).
    """

    def __init__(self, model: hw.Model, *, ticks: str = "wake", lean: bool = True) -> None:
        super().__init__(lean_model(model) if lean else model, None, source="-", ticks=ticks)
        self.lean = lean
        self.batch = _Sink()  # type: ignore[assignment]
        self.pending: dict[str, list[tuple[int, float, str, dict[str, Any]]]] = {}
        self.sent = 0
        self.wild_by_prefix = {}
        for prefix, block in model.wildcards:
            assert prefix.endswith("/"), prefix  # what the prefix walk below relies on
            self.wild_by_prefix.setdefault(prefix, block)

    def page_view(self, e: Event) -> None:
        if not self.lean:
            return super().page_view(e)
        url = e.url or ""
        # Set before `tie`: the page visits it replays add their facts here.
        self.changed = changed = {"time"}
        if e.prospect is not None:
            p = self.prospect(e.prospect, "page_view")
            if e.visitor is not None:
                self.tie(e.visitor, p)
        else:
            vid = e.visitor
            v = self.visitors.get(vid)  # type: ignore[arg-type]
            if v is not None and v.prospect is not None:
                p = self.prospect(v.prospect, "page_view")
            else:
                if v is None:
                    v = self.visitors[vid] = hw.V(None)  # type: ignore[index]
                if v.history is None:
                    v.history = []
                v.history.append((e.ts_epoch, url))
                return
        u = normalize_url(url, hw.SETTINGS)
        self.visited(p, u, e.ts_epoch)
        self.score(p, "scoring", "page view", hw.LOC, 1, {"activity": "page view"})
        block = self.m.exact.get(u)
        if block is None:
            wild = self.wild_by_prefix
            block = wild.get(u + "/")  # the wildcard's base page itself
            i = len(u)
            while block is None and i > 0:  # longest prefix first, as Baseline tries them
                i = u.rfind("/", 0, i)
                if i < 0:
                    break
                block = wild.get(u[: i + 1])
        if block is not None:
            self.run_block(p, block, "page:" + block.name)
        else:
            self.settle(p, changed)

    def visited(self, p: hw.P, u: str, ts: float) -> None:
        if p.last_activity is None or ts > p.last_activity:
            p.last_activity = ts
        if u == _PRICING:
            hw._touch(p, "visited|" + _PRICING, ts)
            self.changed.add("a:pricing")
        if u.startswith(_DOCS):
            hw._touch(p, "visited|" + _DOCS + "*", ts)
            self.changed.add("a:docs")

    def run(self, items: Iterable[Event | Reject]) -> None:
        apply = self.apply
        for item in items:
            self.lines += 1
            if type(item) is Reject:
                self.rejected += 1
            else:
                apply(item)

    def commit(self, line: int) -> None:
        pass

    def log(
        self,
        p: hw.P,
        kind: str,
        name: str,
        loc: str,
        action: str,
        args: dict[str, Any],
        before: Any,
        after: Any,
    ) -> None:
        self.seq += 1

    def activity(self, email: str | None, e: Event) -> None:
        pass

    def outbox(self, p: hw.P, kind: str, name: str, what: str, payload: dict[str, Any]) -> None:
        self.seq += 1
        self.sent += 1

    def crm_work(self, p: hw.P, kind: str, name: str, work: str, payload: dict[str, Any]) -> None:
        self.seq += 1
        self.pending.setdefault(p.email, []).append(
            (self.seq, self.now, work, {**payload, "rule": name})
        )

    # ----------------------------------------------------------------- output

    def export(self) -> list[dict[str, Any]]:
        """Every prospect as `mrules state export` prints it (pending CRM work without `at`)."""
        iso = _iso
        out = []
        for email in sorted(self.prospects):
            p = self.prospects[email]
            assigned = None
            if p.assigned_kind is not None:
                assigned = {
                    "kind": p.assigned_kind,
                    "name": p.assigned_to,
                    "at": iso(p.assigned_at),
                }
                if p.reassigned_at is not None:  # as `state export`: only once reassigned
                    assigned["reassigned_at"] = iso(p.reassigned_at)
            out.append(
                {
                    "email": p.email,
                    "created": iso(p.created),
                    "score": p.score,
                    "category_scores": dict(p.categories),
                    "grade": None,
                    "profile": None,
                    "fields": dict(p.fields),
                    "lists": sorted(p.lists),
                    "dynamic_lists": sorted(p.dynamic),
                    "tags": sorted(p.tags),
                    "assigned": assigned,
                    "crm_status": p.crm_status,
                    "crm_id": p.crm_id,
                    "do_not_sync": p.do_not_sync,
                    "opted_out": p.opted_out,
                    "source_campaign": p.campaign,
                    "last_activity": iso(p.last_activity),
                    "pending_crm": [
                        {"seq": seq, "time": iso(ts), "kind": kind, **payload}
                        for seq, ts, kind, payload in self.pending.get(email, ())
                    ],
                }
            )
        return out


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def read_export(lines: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """`mrules state export` output as records in email order, brought to the loop's shape:
    lists and tags sorted, pending CRM work without the rule's file:line."""
    out = []
    for text in lines:
        if not text.strip():
            continue
        r = orjson.loads(text)
        for key in ("lists", "dynamic_lists", "tags"):
            r[key] = sorted(r[key])
        for work in r["pending_crm"]:
            work.pop("at", None)
        out.append(r)
    return sorted(out, key=lambda r: r["email"])


def compare_exports(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]], show: int = 5
) -> tuple[int, list[str]]:
    """Mismatching prospects between two exports (both as `read_export`/`export` give them),
    with the first few described."""
    a = {r["email"]: r for r in ours}
    b = {r["email"]: r for r in theirs}
    count, diffs = 0, []
    for email in sorted(a.keys() | b.keys()):
        x, y = a.get(email), b.get(email)
        if x == y:
            continue
        count += 1
        if len(diffs) < show:
            if x is None or y is None:
                diffs.append(f"prospect {email}: only in {'mrules' if x is None else 'loop'}")
            else:
                keys = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
                diffs.append(
                    f"prospect {email}: "
                    + "; ".join(f"{k}: loop {x.get(k)!r} / mrules {y.get(k)!r}" for k in keys)
                )
    return count, diffs


def mrules_export(
    store: Path, mrules_cmd: list[str] | None = None, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`mrules state export --store STORE`, read back with `read_export`."""
    cmd = (mrules_cmd or [sys.executable, "-m", "mrules"]) + [
        "state",
        "export",
        "--store",
        str(store),
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return read_export(proc.stdout.splitlines())


def run(
    events: Path,
    seed: int = 7,
    reader: str = "lean",
    model: hw.Model | None = None,
    ticks: str = "wake",
    lean: bool = True,
) -> MemoryLoop:
    loop = MemoryLoop(model or hw.build_model(seed), ticks=ticks, lean=lean)
    loop.run(read_lean(events) if reader == "lean" else read_events(events))
    return loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=Path, help="events.jsonl from bench/generate.py")
    parser.add_argument("--seed", type=int, default=7, help="the seed the rules were made with")
    parser.add_argument("--reader", choices=("lean", "mrules"), default="lean")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="try rules after the same coarse facts as Baseline (no LEAN_READS, no prefix index)",
    )
    parser.add_argument("--export", type=Path, help="write the final state here (JSON Lines)")
    parser.add_argument(
        "--check-against",
        type=Path,
        metavar="STORE",
        help="compare the final state with `mrules state export --store STORE`",
    )
    args = parser.parse_args(argv)
    model = hw.build_model(args.seed)
    w0, c0 = time.perf_counter(), time.process_time()
    loop = run(args.events, reader=args.reader, model=model, lean=not args.plain)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        orjson.dumps(
            {
                "lines": loop.lines,
                "prospects": len(loop.prospects),
                "ledger_entries": loop.seq,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "events_per_s_cpu": round(loop.lines / cpu),
                "peak_rss_bytes": rss,
            }
        ).decode()
    )
    if args.export:
        with args.export.open("wb") as f:
            for r in loop.export():
                f.write(orjson.dumps(r) + b"\n")
    if args.check_against:
        count, diffs = compare_exports(loop.export(), mrules_export(args.check_against))
        print(
            f"differential check against {args.check_against}: {count} mismatching "
            f"prospects of {len(loop.prospects):,}",
            file=sys.stderr,
        )
        for d in diffs:
            print("  " + d, file=sys.stderr)
        return 1 if count else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
