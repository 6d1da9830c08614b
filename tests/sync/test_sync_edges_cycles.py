"""`mrules sync` at its edges: a retried write beyond a cycle's first batch, a plan at the
last cycle's very time, `sync status --crm`, the lines of an interrupted `sync run`, and
a plan file whose name is not UTF-8 (docs/sync.md)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.sync.org import Refusal
from tests.sync.world import BOB, T0, World, ev
from tests.terminal import on_a_terminal

import mrules.sync.apply
import mrules.sync.cycle
from mrules.crm.errors import CrmCallError, CrmError
from mrules.sync.plan import plan_id


def _world(tmp_path: Path, batch: int = 800) -> World:
    w = World(tmp_path, batch)
    w.seed({"Contact": [BOB]})
    return w


def _plan(w: World, *args: str) -> dict[str, Any]:
    r = w.sync("plan", "--format", "json", *args, code=None)
    assert r.exit_code in (0, 2), r.output
    return json.loads(r.output)  # type: ignore[no-any-return]


def _ann_held(w: World) -> None:
    """ann@x.com's company size goes to the CRM, which refuses it: held in the error queue."""
    w.run(
        ev(T0, "ann@x.com", "prospect_update", fields={"company_size": "huge"}),
        ev(T0, "ann@x.com", asset="Demo"),
    )
    w.sync("apply")
    (err,) = w.status()["error_queue"]
    assert (err["prospect"], err["attempts"], err["retry"]) == ("ann@x.com", 1, 0)


# -- 1. a retried write beyond the cycle's first batch --------------------------------------------
def test_a_retried_write_beyond_the_first_batch_stays_marked_until_tried(tmp_path: Path) -> None:
    w = _world(tmp_path, batch=1)
    _ann_held(w)
    assert w.ok("sync", "retry", "--store", str(w.store)).output.startswith("1 held error")
    # A new assignment's create comes first: ann's retried write falls in the second batch.
    w.run(ev("2026-11-02T09:05:00Z", "zed@x.com", asset="Demo"))
    plan = _plan(w)
    assert [(o["op"], o["prospect"], o["batch"]) for o in plan["ops"]] == [
        ("create", "zed@x.com", 0),
        ("update", "ann@x.com", 1),
    ]
    w.sync("apply")  # the cycle writes zed's lead only
    (err,) = w.status()["error_queue"]
    assert err["attempts"] == 1  # not tried
    assert err["retry"] > 0  # was: 0, the mark cleared untried (the next plan held the write)
    assert _ann_ops(w) == ["update"]
    w.sync("apply")  # tried now, refused again: held again
    (err,) = w.status()["error_queue"]
    assert (err["attempts"], err["retry"]) == (2, 0)
    assert _ann_ops(w) == ["hold"]


def _ann_ops(w: World) -> list[str]:
    return [o["op"] for o in _plan(w)["ops"] if o["prospect"] == "ann@x.com"]


def test_sync_run_tries_a_retried_write_of_a_later_batch_in_a_later_cycle(
    tmp_path: Path,
) -> None:
    w = _world(tmp_path, batch=1)
    _ann_held(w)
    w.ok("sync", "retry", "--store", str(w.store))
    w.run(ev("2026-11-02T09:05:00Z", "zed@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    (err,) = w.status()["error_queue"]
    assert (err["attempts"], err["retry"]) == (2, 0)  # was: attempts 1, never tried


def test_a_retried_write_a_transient_failure_stopped_stays_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _world(tmp_path)
    _ann_held(w)
    w.ok("sync", "retry", "--store", str(w.store))
    real = mrules.sync.apply._write_keeping

    def limit(crm: Any, how: str, *args: Any) -> Any:
        if how == "update":
            raise CrmCallError("REQUEST_LIMIT_EXCEEDED", "the day's API calls", transient=True)
        return real(crm, how, *args)

    monkeypatch.setattr(mrules.sync.apply, "_write_keeping", limit)
    r = w.sync("apply")
    assert "the CRM failed for now" in r.output
    monkeypatch.undo()
    (err,) = w.status()["error_queue"]
    assert (err["attempts"], err["retry"] > 0) == (1, True)  # was: the mark cleared untried
    assert _ann_ops(w) == ["update"]


def test_a_retried_write_its_record_refused_for_now_stays_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retried update is refused for now for its record alone (UNABLE_TO_LOCK_ROW, the
    call itself answered): not tried, as when the whole call fails; the mark stays."""
    w = _world(tmp_path)
    _ann_held(w)
    w.ok("sync", "retry", "--store", str(w.store))
    locked = CrmError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
    refusal = Refusal(monkeypatch, "update", "Lead", locked)
    w.sync("apply")
    assert refusal.calls == [1]
    refusal.lift()
    (err,) = w.status()["error_queue"]
    assert (err["attempts"], err["retry"] > 0) == (1, True)
    assert _ann_ops(w) == ["update"]


# -- 2. a plan at the last cycle's time -----------------------------------------------------------
def test_a_plan_at_the_last_cycles_time_is_refused(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    w.sync("apply")
    cycles = w.syncdb("SELECT * FROM cycle")
    assert len(cycles) == 1
    out = tmp_path / "p.json"
    for at in (T0, "2026-11-02T09:00:00.500Z"):  # a plan's time is in whole seconds
        r = w.sync("plan", "--at", at, "--out", str(out), code=2)
        assert "mrules: error: --at" in r.output, r.output  # was: the plan, saved
        assert "is the time of the last cycle, 2026-11-02T09:00:00Z" in r.output
        assert not out.exists()
    # A saved plan at that time (made by hand, or by an older mrules) is refused too.
    w.sync("plan", "--at", "2026-11-02T09:10:00Z", "--out", str(out), code=None)
    plan = json.loads(out.read_text("utf-8"))
    plan["at"] = T0
    plan["id"] = plan_id({k: v for k, v in plan.items() if k != "id"})
    out.write_text(json.dumps(plan), "utf-8")
    r = w.sync("apply", str(out), code=2)  # was: applied, the cycle's row replaced
    assert "is the time of the last cycle" in r.output
    assert w.syncdb("SELECT * FROM cycle") == cycles
    # The plan that was that cycle is still "already applied"; a later time is fine.
    assert w.syncdb("SELECT count(*) FROM applied_plan") == [(1,)]
    r = w.sync("plan", "--at", "2026-11-02T09:00:01Z", code=None)
    assert r.exit_code in (0, 2) and "error" not in r.output


def test_a_plan_of_the_cycle_that_ran_since_is_stale_as_before(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    out = tmp_path / "p.json"
    w.sync("plan", "--out", str(out), code=2)
    w.sync("apply")  # the cycle due, at the plan's time, runs without the plan
    cycles = w.syncdb("SELECT * FROM cycle")
    r = w.sync("apply", str(out), code=1)
    assert "the plan is stale: another sync was applied since" in r.output
    assert w.syncdb("SELECT * FROM cycle") == cycles
    assert len([r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]) == 1


def test_a_saved_plan_of_a_cycle_the_crm_failed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    out = tmp_path / "p.json"
    w.sync("plan", "--out", str(out), code=2)

    def limit(*args: Any, **kw: Any) -> Any:
        raise CrmCallError("REQUEST_LIMIT_EXCEEDED", "the day's API calls", transient=True)

    monkeypatch.setattr(mrules.sync.cycle, "make_plan", limit)
    r = w.sync("apply")  # the cycle due (the plan's time): its plan fails for now
    assert "the CRM failed for now" in r.output
    monkeypatch.undo()
    cycles = w.syncdb("SELECT at, plan FROM cycle")
    assert [c[1] for c in cycles] == [None]  # a cycle that ran, and did nothing
    # The saved plan is not stale (nothing changed), but its cycle ran.
    r = w.sync("apply", str(out), code=2)  # was: applied, the cycle's row replaced
    assert "is the time of the last cycle, 2026-11-02T09:00:00Z" in r.output
    assert w.syncdb("SELECT at, plan FROM cycle") == cycles
    assert not [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    w.sync("apply")  # the next cycle does the work
    assert len([r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]) == 1
    assert len(w.syncdb("SELECT at FROM cycle")) == 2


# -- 3. sync status --crm -------------------------------------------------------------------------
@pytest.mark.parametrize("crm", ["local", "salesforce", "other.crm.db"])
def test_status_refuses_crm(tmp_path: Path, crm: str) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    w.sync("apply")
    r = w.cli("sync", "status", "--store", str(w.store), "--crm", crm)
    assert r.exit_code == 2, r.output  # was: 0, --crm ignored
    assert "mrules: error: --crm" in r.output
    assert "reads the sync file" in r.output
    assert "last cycle" not in r.output
    assert "--crm" not in w.cli("sync", "status", "--help").output  # not offered
    assert w.cli("sync", "status", "--store", str(w.store)).exit_code == 0


# -- 4. an interrupted sync run -------------------------------------------------------------------
STOPPER = r"""
import os, signal, sys
sig, after, args = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
import mrules.sync.cycle as cy

real, calls = cy.run_cycle, []

def run_cycle(*a, **k):  # the cycle after `after` cycles is interrupted as it starts
    calls.append(1)
    if len(calls) > after:
        os.kill(os.getpid(), sig)
    return real(*a, **k)

cy.run_cycle = run_cycle
from mrules.cli import main
main(args)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_prints_the_idle_cycles_it_completed(
    tmp_path: Path, sig: signal.Signals
) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    args = ["sync", "run", "--rules", str(w.rules), "--store", str(w.store)]
    args += ["--until", "2026-11-02T10:00:00Z"]
    r = subprocess.run(
        [sys.executable, "-c", STOPPER, str(int(sig)), "4", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 130, r.stderr
    assert r.stdout.splitlines()[1:] == [
        # was: missing, the 3 idle cycles that ran were not printed
        "2026-11-02T09:10:00Z to 2026-11-02T09:30:00Z  3 idle cycles: nothing to do"
    ]
    assert r.stdout.startswith("2026-11-02T09:00:00Z  created     1")
    assert r.stderr.startswith("mrules: error: interrupted")
    assert "Traceback" not in r.stderr
    # Run again, it resumes at the cycle interrupted: every cycle is accounted for once.
    again = w.sync("run", "--until", "2026-11-02T10:00:00Z")
    assert again.output.splitlines() == [
        "2026-11-02T09:40:00Z to 2026-11-02T10:00:00Z  3 idle cycles: nothing to do"
    ]


# -- 5. a plan file whose name is not UTF-8 -------------------------------------------------------
def test_cannot_write_the_plan_shows_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    # A name the folder takes, but too long for the temporary file written beside it.
    name = b"plan-\xff-" + b"x" * 230 + b".json"
    out = os.fsencode(tmp_path) + b"/" + name
    args = [b"sync", b"plan", b"--rules", os.fsencode(w.rules), b"--store"]
    args += [os.fsencode(w.store), b"--out", out]
    r = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"mrules", *args],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 4, r.stderr
    err = r.stderr.decode("utf-8")  # UTF-8 throughout
    assert err.startswith("mrules: error: "), err
    assert f"{tmp_path}/plan-\\xff-xxx" in err  # was: plan-\udcff-..., unlike every path
    assert "cannot write the plan: File name too long" in err
    assert "\\udcff" not in err and "internal error" not in err
    assert not list(tmp_path.glob("plan-*"))


def test_cannot_write_the_plan_through_the_cli_runner(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    out = str(tmp_path / ("plan-\udcff-" + "x" * 230 + ".json"))
    r = w.sync("plan", "--out", out, code=4)  # was: UnicodeEncodeError
    assert "plan-\\xff-xxx" in r.output and "cannot write the plan" in r.output


def test_sync_messages_show_a_name_that_is_not_utf8_escaped(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    plan = str(tmp_path / "plan-\udcff.json")
    r = w.sync("apply", plan, code=2)
    assert "plan-\\xff.json: cannot read the plan" in r.output, r.output
    store = str(tmp_path / "s-\udcff.db")
    shutil.copyfile(w.store, store)  # a store there (none at all is `no such store`)
    for command in ("status", "retry"):  # no sync file beside this store
        r = w.cli("sync", command, "--store", store)
        assert r.exit_code == 2, r.output
        assert "s-\\xff.sync.db: no sync yet" in r.output, (command, r.output)
    for r in (w.sync("apply", plan, code=2), w.cli("sync", "status", "--store", store)):
        assert "\udcff" not in r.output and "\\udcff" not in r.output


# -- 6. a far --until: how many cycles, and a bar on a terminal -----------------------------------


@settings(max_examples=300, deadline=None)
@given(
    every_min=st.integers(1, 120),
    last=st.one_of(st.none(), st.integers(0, 10_000)),
    clock=st.one_of(st.none(), st.integers(0, 20_000)),
    span=st.integers(-5_000, 30_000),
)
def test_the_count_of_cycles_due_is_the_cycles_due_times_gives(
    every_min: int, last: int | None, clock: int | None, span: int
) -> None:
    """`count_due` (the bar's total) against the iterator that runs the cycles."""
    every = 60.0 * every_min
    db = SimpleNamespace(last_cycle=None if last is None else 1_790_000_000.0 + 60 * last)
    store = SimpleNamespace(clock=lambda: None if clock is None else 1_790_000_000.0 + 60 * clock)
    config = SimpleNamespace(every_seconds=every)
    until = 1_790_000_000.0 + 60 * span
    due = list(mrules.sync.cycle.due_times(db, store, config, until))  # type: ignore[arg-type]
    assert mrules.sync.cycle.count_due(db, store, config, until) == len(due)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("later", "until", "cycles"),
    [
        # The run's clock past several cycles, between two times of the cadence: the next
        # cycle is the first time of the cadence after it, never one before the event.
        ("2026-11-02T14:03:00Z", "2026-11-02T14:30:00Z", ["14:10", "14:20", "14:30"]),
        # The clock on a time of the cadence: a cycle at that very time.
        ("2026-11-02T14:00:00Z", "2026-11-02T14:20:00Z", ["14:00", "14:10", "14:20"]),
        # The clock before the next cycle: the cadence goes on from the last one.
        ("2026-11-02T09:04:00Z", "2026-11-02T09:20:00Z", ["09:10", "09:20"]),
    ],
    ids=["past-several-cycles", "on-the-cadence", "before-the-next"],
)
def test_the_cycles_after_the_clock_moved_on_keep_their_cadence(
    tmp_path: Path, later: str, until: str, cycles: list[str]
) -> None:
    """A cycle at 09:00 every 10 minutes, then events of later that day: `sync run` runs
    the cycles of the cadence from the first at or after the run's clock (docs/sync.md,
    A cycle). The count of cycles due was checked against the times given, not the
    times themselves."""
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    w.run(ev(later, "cleo@x.com", asset="Demo"))
    r = w.sync("run", "--until", until)
    assert r.output.startswith(f"2026-11-02T{cycles[0]}:00Z  created     1 "), r.output
    ran = w.syncdb("SELECT at FROM cycle ORDER BY at")
    times = [dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M") for (at,) in ran]
    assert times == ["09:00", *cycles]


def test_a_far_until_shows_the_cycles_done_of_those_dueon_a_terminal(tmp_path: Path) -> None:
    # The idle cycles of a far --until print nothing until their span ends: 2 years of
    # them at 10 minutes ran for minutes with nothing on the screen (to 9999: 15 days).
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    args = ["sync", "run", "--rules", str(w.rules), "--store", str(w.store)]
    args += ["--until", "2028-11-02T09:00:00Z"]
    code, out, shown = on_a_terminal([sys.executable, "-c", STOPPER, "2", "300", *args])
    assert code == 130, shown
    days = (dt.date(2028, 11, 2) - dt.date(2026, 11, 2)).days  # 731: 2028 is a leap year
    total = days * 144 + 1  # every 10 minutes from T0 to the same time two years on
    assert f"/{total}" in shown and "cycle 2026-11-0" in shown, shown[-500:]
    # The cycles' lines still go to standard output, not through the bar to the terminal.
    assert out.startswith("2026-11-02T09:00:00Z  created     1"), out
    assert out.splitlines()[1].endswith("299 idle cycles: nothing to do"), out
    assert "idle cycle" not in shown and "Traceback" not in shown


@pytest.mark.parametrize("quiet", [False, True])
def test_q_leaves_the_bar_out_on_a_terminal(tmp_path: Path, quiet: bool) -> None:
    """`sync run -q` as every command with a bar takes it: the cycles' lines on standard
    output as ever, no bar on the terminal (docs/outputs.md). `sync run` had no -q."""
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    args = ["sync", "run", "--rules", str(w.rules), "--store", str(w.store)]
    args += ["--until", "2028-11-02T09:00:00Z", *(["-q"] if quiet else [])]
    code, out, shown = on_a_terminal([sys.executable, "-c", STOPPER, "2", "300", *args])
    assert code == 130, shown
    assert out.startswith("2026-11-02T09:00:00Z  created     1"), out
    assert ("cycle 2026-11-0" in shown) is not quiet, shown[-500:]


def test_no_bar_where_standard_error_is_not_a_terminal(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    args = ["sync", "run", "--rules", str(w.rules), "--store", str(w.store)]
    r = subprocess.run([sys.executable, "-m", "mrules", *args, "--until", "2026-11-03T09:00:00Z"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines()[1] == (
        "2026-11-02T09:10:00Z to 2026-11-03T09:00:00Z  144 idle cycles: nothing to do"
    )
