"""bench/compare.py and bench/bench_scale.py run end to end on tiny inputs, as a user runs them.

They start `python -m mrules run` and the hand-written loops as processes; here
on a few hundred events, with this checkout standing in for the baseline one
(so variants c and e run the same code and must end in the same state).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import bench_scale  # noqa: E402


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _compare(workdir: Path, *args: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """compare.py run to success on 400 events: what it printed, its result, its rows."""
    proc = _run(
        "compare.py", "--events", "400", "--prospects", "40", "--repeat", "1",
        "--workdir", str(workdir), *args,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((workdir / "compare_result.json").read_text())
    return proc.stdout, result, {r["variant"]: r for r in result["rows"]}


def test_compare_runs_every_variant_and_checks_states(tmp_path: Path) -> None:
    proc = _run(
        "compare.py",
        "--events", "600", "--prospects", "60", "--repeat", "1",
        "--workdir", str(tmp_path), "--baseline-worktree", str(ROOT),
        "--before-worktree", str(ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "compare_result.json").read_text())
    rows = {r["variant"]: r for r in result["rows"]}
    # d runs, or is skipped with the CLI's reason (today the CLI refuses :memory:).
    assert set(rows) | set(result["skipped"]) == set("abcdefg")
    assert set(result["skipped"]) <= {"d", "g"}
    if "d" in result["skipped"]:
        assert "refuses" in result["skipped"]["d"] and "d: skipped" in proc.stdout
        assert not list(tmp_path.rglob(":memory:*"))  # no stray lock file left behind
    for key, r in rows.items():
        assert r["cpu_s"] > 0 and r["wall_s"] > 0 and r["peak_rss_bytes"] > 10 * 2**20, key
        assert r["events_per_s_cpu"] == pytest.approx(600 / r["cpu_s"])
    assert rows["a"]["x_a_cpu"] == pytest.approx(1.0) and rows["e"]["x_e_cpu"] == pytest.approx(1.0)
    assert rows["c"]["x_a_cpu"] == pytest.approx(
        rows["c"]["events_per_s_cpu"] / rows["a"]["events_per_s_cpu"]
    )
    assert rows["c"]["store_bytes"] > 0 and "store_bytes" not in rows["a"]
    # f and g are c and d from the second checkout; "x before" divides d by g, the rest by f.
    assert rows["f"]["store_bytes"] > 0 and "store_bytes" not in rows["g"]
    assert rows["c"]["x_f_cpu"] == pytest.approx(
        rows["c"]["events_per_s_cpu"] / rows["f"]["events_per_s_cpu"]
    )
    assert rows["d"]["x_f_cpu"] == pytest.approx(
        rows["d"]["events_per_s_cpu"] / rows["g"]["events_per_s_cpu"]
    )
    checks = result["checks"]
    assert checks["prospects"] > 20
    assert checks["a vs c"]["mismatching_prospects"] == 0
    assert checks["e vs c"]["mismatching_prospects"] == 0
    assert checks["f vs c"]["mismatching_prospects"] == 0
    assert "state check a vs c: 0 mismatching" in proc.stdout


def test_compare_runs_the_baseline_in_memory_in_one_transaction_as_h(tmp_path: Path) -> None:
    """(h): the baseline checkout with its store in --tmpfs and one transaction; (c) and (e)
    are given against it, and its store does not stay in the memory file system."""
    shm = tmp_path / "shm"
    shm.mkdir()
    stdout, _result, rows = _compare(
        tmp_path / "w", "--only", "c,e,h", "--baseline-worktree", str(ROOT), "--tmpfs", str(shm)
    )
    assert set(rows) == {"c", "e", "h"}
    assert rows["h"]["name"] == "baseline, tmpfs, one transaction"
    assert rows["h"]["store_bytes"] > 0  # it wrote a store where it was told
    for key in "ce":
        assert rows[key]["x_h_cpu"] == pytest.approx(
            rows[key]["events_per_s_cpu"] / rows["h"]["events_per_s_cpu"]
        )
        assert f"{key} against h: CPU x" in stdout
    assert list(shm.iterdir()) == []


def test_compare_runs_the_engine_alone_as_n_the_ceiling_of_any_store(tmp_path: Path) -> None:
    """(n): the engine into a store that keeps nothing, as its own process; given against
    (e) as the most a store design could give, and checked to end in (c)'s state."""
    stdout, result, rows = _compare(tmp_path, "--only", "c,e,n", "--baseline-worktree", str(ROOT))
    assert set(rows) == {"c", "e", "n"}
    assert rows["n"]["name"] == "mrules engine, nothing stored"
    assert "store_bytes" not in rows["n"] and rows["n"]["cpu_s"] > 0
    assert rows["n"]["x_ceiling_cpu"] == pytest.approx(
        rows["n"]["events_per_s_cpu"] / rows["e"]["events_per_s_cpu"]
    )
    assert "n against e: CPU x" in stdout
    assert result["checks"]["n vs c"]["mismatching_prospects"] == 0
    assert "state check n vs c: 0 mismatching" in stdout


def test_compare_runs_an_installed_build_as_c_beside_this_checkout(tmp_path: Path) -> None:
    """--python: (c) from an interpreter's installed mrules (the compiled wheel, in CI's
    second pass), beside this checkout's source as (f); the states must agree."""
    proc = _run(
        "compare.py",
        "--events", "400", "--prospects", "40", "--repeat", "1", "--only", "c,f,n",
        "--workdir", str(tmp_path), "--before-worktree", str(ROOT), "--python", sys.executable,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"(c), (d): {sys.executable}: mrules, version" in proc.stderr
    result = json.loads((tmp_path / "compare_result.json").read_text())
    assert {r["variant"] for r in result["rows"]} == {"c", "f", "n"}
    assert result["checks"]["f vs c"]["mismatching_prospects"] == 0
    assert result["checks"]["n vs c"]["mismatching_prospects"] == 0  # (n) runs that build too


def test_compare_refuses_an_interpreter_that_does_not_exist(tmp_path: Path) -> None:
    proc = _run("compare.py", "--workdir", str(tmp_path), "--python", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "--python" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_refuses_a_directory_that_is_not_a_checkout(tmp_path: Path) -> None:
    proc = _run("compare.py", "--workdir", str(tmp_path), "--baseline-worktree", str(tmp_path))
    assert proc.returncode == 2
    assert "not an mrules checkout" in proc.stderr and "Traceback" not in proc.stderr


def test_scale_reports_cost_store_and_memory(tmp_path: Path) -> None:
    proc = _run(
        "bench_scale.py",
        "--sizes", "500:50,1500:150",
        "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "work" / "scale_result.json").read_text())
    small, big = result["rows"]
    assert (small["events"], big["events"]) == (500, 1500)
    assert 20 < small["prospects"] < big["prospects"] <= 150
    for r in (small, big):
        assert r["store_bytes"] > 0 and r["stream"].endswith(".jsonl.gz")
        assert r["cpu_us_per_event"] == pytest.approx(r["cpu_s"] / r["events"] * 1e6)
    s = result["summary"]
    assert s["cost_per_event_ratio"] == pytest.approx(
        big["cpu_us_per_event"] / small["cpu_us_per_event"]
    )
    assert s["marginal_rss_per_prospect"] == pytest.approx(
        (big["peak_rss_bytes"] - small["peak_rss_bytes"]) / (big["prospects"] - small["prospects"])
    )
    assert result["fixed"]["cpu_s"] > 0
    if Path("/proc/self/io").exists():  # the run's own I/O counters, where Linux gives them
        for r in (small, big):
            # it reads its whole event file (gzipped) and writes at least its store
            assert r["io"]["rchar"] >= Path(r["stream"]).stat().st_size
            assert r["io"]["wchar"] >= r["store_bytes"]
            assert r["written_bytes_per_event"] == r["io"]["wchar"] / r["events"]
        assert "I/O" in proc.stdout
    # A second run reuses the cached inputs.
    stamp = tmp_path / "cache" / "e500-p50-s7" / "events.jsonl.gz"
    mtime = stamp.stat().st_mtime_ns
    again = _run(
        "bench_scale.py",
        "--sizes", "500:50",
        "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert stamp.stat().st_mtime_ns == mtime


def test_measure_reads_the_childs_own_io_counters(tmp_path: Path) -> None:
    import compare

    if not Path("/proc/self/io").exists():
        pytest.skip("no /proc/PID/io here: the counters are Linux's")
    code = "import sys; sys.stdout.buffer.write(b'x' * 300000)"
    m = compare.measure([sys.executable, "-c", code], {}, tmp_path)
    assert m.returncode == 0 and len(m.stdout) == 300_000
    assert m.io is not None and m.io["wchar"] >= 300_000  # what it wrote, and more
    quiet = compare.measure([sys.executable, "-c", "pass"], {}, tmp_path)
    assert quiet.io is not None and quiet.io["wchar"] < 300_000


def test_scale_runs_the_loop_without_persistence_on_each_size(tmp_path: Path) -> None:
    proc = _run(
        "bench_scale.py",
        "--sizes", "500:50,1500:150", "--loop",
        "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "work" / "scale_result.json").read_text())
    small, big = result["rows"]
    for r in (small, big):  # the loop read the same gzipped stream and made the same prospects
        assert r["loop"]["prospects"] == r["prospects"]
        assert r["loop"]["cpu_us_per_event"] == pytest.approx(
            r["loop"]["cpu_s"] / r["events"] * 1e6
        )
    assert result["summary"]["loop_cost_per_event_ratio"] == pytest.approx(
        big["loop"]["cpu_us_per_event"] / small["loop"]["cpu_us_per_event"]
    )
    assert "the hand-written loop without persistence, same sizes" in proc.stdout


def test_scale_runs_an_installed_build_with_python(tmp_path: Path) -> None:
    proc = _run(
        "bench_scale.py",
        "--sizes", "400:40", "--python", sys.executable,
        "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{sys.executable}: mrules, version" in proc.stderr
    [row] = json.loads((tmp_path / "work" / "scale_result.json").read_text())["rows"]
    assert row["events"] == 400 and row["prospects"] > 10
    bad = _run("bench_scale.py", "--python", str(tmp_path / "nope"))
    assert bad.returncode == 2 and "--python" in bad.stderr and "Traceback" not in bad.stderr


def test_scale_rounds_keep_each_size_s_median_round(tmp_path: Path) -> None:
    proc = _run(
        "bench_scale.py",
        "--sizes", "300:30,600:60", "--rounds", "3",
        "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "work" / "scale_result.json").read_text())["rows"]
    for r in rows:
        assert len(r["cpu_s_rounds"]) == 3
        assert r["cpu_s"] == sorted(r["cpu_s_rounds"])[1]
    # the sizes alternate: round 1 of both, then round 2 of both, ...
    order = [line.split("]")[1].split(" events")[0].strip() for line in proc.stderr.splitlines()
             if line.strip().startswith("[")]  # fmt: skip
    assert order == ["300", "600"] * 3
    assert proc.stdout.count(" rounds ") == 2
    bad = _run("bench_scale.py", "--rounds", "0")
    assert bad.returncode == 2 and "--rounds" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("text", ["200000", "1:x", "0:10", "10:0", ""])
def test_scale_sizes_are_checked(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        bench_scale.parse_sizes(text)
    proc = _run("bench_scale.py", "--sizes", text)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_scale_sizes_parse() -> None:
    assert bench_scale.parse_sizes("200000:20000, 2000000:200000") == [
        (200000, 20000),
        (2000000, 200000),
    ]


def test_spy_breakdown_charges_each_sample_to_its_innermost_stage(tmp_path: Path) -> None:
    run = "run (mrules/api.py:197);Engine.run (mrules/engine/run.py:272)"
    profile = tmp_path / "run.txt"
    profile.write_text(
        f"{run};Engine.apply (mrules/engine/run.py:318);"
        "Settlement._settle (mrules/engine/settle.py:119);"
        "within (mrules/compiler.py:346) 6\n"  # a criterion called by settlement
        f"{run};Engine.apply (mrules/engine/run.py:318);"
        "Settlement._settle (mrules/engine/settle.py:124) 2\n"
        f"{run};Engine.commit (mrules/engine/run.py:350);Store.commit (mrules/store.py:810) 3\n"
        "<module> (mrules/__main__.py:3);_find_and_load (<frozen importlib>:1176) 1\n"
        "not a profile line\n"
    )
    proc = _run("spy_breakdown.py", str(profile), "--top", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:5] == [
        " 50.0%  criterion evaluation",
        " 25.0%  store write (packing, SQLite)",
        " 16.7%  settlement (candidates, tries, ticks)",
        "  8.3%  start-up, rules, other",
        "12 samples",
    ]
    assert lines[5] == " 50.0%  within (mrules/compiler.py:346)"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    proc = _run("spy_breakdown.py", str(empty))
    assert proc.returncode == 2 and "no py-spy samples" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_live_memory_fits_the_commits_after_the_caches_fill(tmp_path: Path) -> None:
    proc = _run(
        "live_memory.py",
        "--events", "3000", "--prospects", "300", "--from-events", "1000",
        "--cache-prospects", "50", "--commit-every", "200", "--top", "3",
        "--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # --top: the three source lines that grew most, with bytes per prospect
    top = proc.stdout.split("(B per prospect, source line):\n")[1].splitlines()
    assert len(top) == 3 and all(".py:" in line for line in top)
    result = json.loads((tmp_path / "work" / "live_memory.json").read_text())
    points = result["points"]
    assert [p[0] for p in points[:3]] == [200, 400, 600]  # a point per commit
    assert points[-1][0] == 3000 and result["prospects"] == points[-1][1] > 100
    fitted = [(p, live) for lines, p, live in points if lines >= 1000]
    # the least-squares slope, computed here independently of the script
    n = len(fitted)
    mx, my = sum(x for x, _ in fitted) / n, sum(y for _, y in fitted) / n
    expected = sum((x - mx) * (y - my) for x, y in fitted) / sum((x - mx) ** 2 for x, _ in fitted)
    assert result["live_bytes_per_prospect"] == round(expected)
    assert "B per prospect" in proc.stdout


def test_live_memory_slope_needs_growth() -> None:
    import live_memory

    assert live_memory.slope([(0, 0), (10, 500)]) == 50
    with pytest.raises(ValueError):
        live_memory.slope([(5, 1), (5, 2)])
    with pytest.raises(ValueError):
        live_memory.slope([(5, 1)])


def test_bench_parse_times_in_process_and_whole_lint_runs() -> None:
    proc = _run("bench_parse.py", "--sizes", "200,400", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    rows = [
        line.split() for line in proc.stdout.splitlines() if line.split()[:1] in (["200"], ["400"])
    ]
    assert [r[0] for r in rows] == ["200", "400"] and all(float(r[-1]) > 0 for r in rows)
    assert "per-rule cost max/min" in proc.stdout

    whole = _run(
        "bench_parse.py", "--whole", "--sizes", "300", "--repeat", "1", "--before", str(ROOT)
    )  # this checkout stands in for the one before
    assert whole.returncode == 0, whole.stderr
    assert "least CPU of 1 rounds" in whole.stdout
    lines = whole.stdout.splitlines()
    assert lines[1].split() == [
        "rules",
        "before",
        "s",
        "before",
        "us/rule",
        "net",
        "now",
        "s",
        "now",
        "us/rule",
        "net",
        "now/before",
    ]
    one = next(line.split() for line in lines if line.startswith("    100 "))
    row = next(line.split() for line in lines if line.startswith("    300 "))
    assert len(one) == 4 and len(row) == 6
    assert float(row[1]) > 0 and float(row[3]) > 0 and float(row[5]) > 0  # CPU s, ratio
    # the net figures are numbers; noise may make a tiny size's negative, so no sign
    assert [type(float(x)) for x in (row[2], row[4])] == [float, float]


def test_bench_parse_reads_callgrinds_total_from_the_last_collected_line() -> None:
    import bench_parse

    stderr = "==41== Callgrind, a call-graph profiler\n==41== Collected : 1851671686\n"
    assert bench_parse.callgrind_total(stderr) == 1851671686
    with pytest.raises(SystemExit, match="no instruction count"):
        bench_parse.callgrind_total("Collected : 5 (not valgrind's line)\n")


def test_bench_parse_instructions_needs_whole_lint_runs() -> None:
    proc = _run("bench_parse.py", "--instructions", "--sizes", "150")
    assert proc.returncode == 2 and "add --whole" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_bench_parse_counts_whole_lint_instructions_under_callgrind() -> None:
    whole = _run("bench_parse.py", "--whole", "--instructions", "--sizes", "150")
    assert whole.returncode == 0, whole.stderr
    lines = whole.stdout.splitlines()
    assert "instructions (G), callgrind" in lines[0]
    assert lines[1].split() == ["rules", "now", "G", "now", "k/rule", "net"]
    one = next(line.split() for line in lines if line.startswith("    100 "))
    row = next(line.split() for line in lines if line.startswith("    150 "))
    # a lint runs a billion instructions and more; each rule adds tens of thousands
    assert float(one[1]) > 0.5 and float(row[1]) > float(one[1])
    assert 10 < float(row[2]) < 10_000


def test_history_index_bench_times_both_index_shapes(tmp_path: Path) -> None:
    proc = _run(
        "bench_history_indexes.py",
        "--events", "40000", "--prospects", "3000", "--workdir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[-2:]}
    assert set(table) == {"plain", "generation"}
    assert all(float(x) > 0 for row in table.values() for x in row)
    assert not list(tmp_path.glob("*.db*"))  # the stores are removed after


def test_applied_ids_bench_times_asking_and_filling(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    example = ROOT / "examples" / "getcloudy"
    made = subprocess.run(
        [sys.executable, "-m", "mrules", "run", str(example / "rules"),
         str(example / "events.jsonl"), "--store", str(store), "-q"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = _run("bench_applied_ids.py", str(store), "--ids", "300")
    assert proc.returncode == 0, proc.stderr
    header, row, note = proc.stdout.splitlines()
    assert header.split() == ["store", "check", "s", "us/id", "fill", "s", "fill/id", "asked", "s"]
    cells = row.split()
    assert cells[0].endswith("s.db") and len(cells) == 6
    assert float(cells[2]) > 0 and float(cells[3]) >= 0  # µs an id asked, fill seconds
    assert "32,768 ids asked" in note
    empty = tmp_path / "empty.db"
    code = f"from mrules.store import Store; Store.open({str(empty)!r}).close()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    refused = _run("bench_applied_ids.py", str(empty))
    assert refused.returncode == 1 and "applied no event id" in refused.stderr


def test_report_html_bench_measures_the_page_of_many_campaigns() -> None:
    """bench_report_html.py renders the page of N synthetic campaigns and prints its sizes:
    here on 150 campaigns, more than the 100 the page lists."""
    proc = _run("bench_report_html.py", "--campaigns", "150")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["campaigns"] == 150
    assert 0 < result["chart_library_bytes"] < result["page_bytes"]
    assert 0 < result["campaign_section_bytes"] < result["page_bytes"]
    specs = result["spec_bytes"]
    assert {"chart-campaign-roi", "chart-campaign-influence", "chart-funnel"} <= set(specs)
    assert all(n > 0 for n in specs.values())
