"""The Dask engine: the same bytes as one process (a LocalCluster; skipped without Dask)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scale_helpers import assert_same, gen, partitioned, single

pytest.importorskip("distributed", reason="Dask's distributed is not installed (mrules[dask])")


from mrules.api import compile_rules


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("dask")
    gen.main([str(tmp), "--prospects", "200", "--events", "2500", "--seed", "5"])
    (tmp / "rules" / "zz.mr").write_text('settings {\n  round_robin = "by prospect"\n}\n')
    rules = compile_rules(tmp / "rules")
    events = tmp / "events.jsonl"
    return {"rules": rules, "events": events, "single": single(rules, [events], tmp / "ref")}


@pytest.mark.parametrize("buckets", [2, 7, 64])
def test_dask_threads_cluster(inputs: dict[str, Any], tmp_path: Path, buckets: int) -> None:
    got = partitioned(inputs["rules"], [inputs["events"]], tmp_path, buckets, engine="dask",
                      dask_local=2, dask_cluster_options={"processes": False})  # fmt: skip
    assert_same(inputs["single"], got)


@pytest.mark.slow
def test_dask_two_worker_processes(inputs: dict[str, Any], tmp_path: Path) -> None:
    got = partitioned(inputs["rules"], [inputs["events"]], tmp_path, 7, engine="dask",
                      dask_local=2)  # fmt: skip
    assert_same(inputs["single"], got)


def test_dask_cli(inputs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mrules.cli import main

    monkeypatch.chdir(tmp_path)
    rules = str(inputs["events"].parent / "rules")
    r = CliRunner().invoke(main, ["partition", str(inputs["events"]), "--buckets", "4",
                                  "--out", "part"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["run", rules, "part", "--engine", "dask", "--dask-local", "2",
                                  "--store", "d.db", "--actions", "d.jsonl"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "buckets 4/4" in r.output
    assert Path("d.jsonl").read_bytes() == inputs["single"]["actions"]


def test_a_local_cluster_says_nothing_of_a_port_in_use(
    inputs: dict[str, Any], tmp_path: Path
) -> None:
    """The local cluster's scheduler serves HTTP (health, metrics) on port 8787 even with
    no dashboard: with that port taken (another Dask cluster, another run), Dask printed
    `UserWarning: Port 8787 is already in use. Perhaps you already have a cluster
    running?` and three more lines above the summary, and above the `interrupted` line."""
    import socket
    import subprocess
    import sys

    held = socket.socket()
    try:
        held.bind(("127.0.0.1", 8787))
        held.listen()
    except OSError:  # taken already: the case itself
        pass
    try:
        r = subprocess.run([sys.executable, "-m", "mrules", "partition", str(inputs["events"]),
                            "--buckets", "2", "--out", "part"], cwd=tmp_path,
                           capture_output=True)  # fmt: skip
        assert r.returncode == 0, r.stderr.decode()
        r = subprocess.run([sys.executable, "-m", "mrules", "run",
                            str(inputs["events"].parent / "rules"), "part", "--engine", "dask",
                            "--dask-local", "1", "--store", "d.db", "-q"], cwd=tmp_path,
                           capture_output=True, timeout=300)  # fmt: skip
    finally:
        held.close()
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b""
