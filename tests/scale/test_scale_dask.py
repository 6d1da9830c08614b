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
