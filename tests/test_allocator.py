"""`mrules run` pins glibc's mmap threshold, so big freed blocks go back to the system."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.allocator import pin_mmap_threshold
from mrules.cli import main as cli_main

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc 2.33 or later (mallinfo2) needed to watch the allocator",
)

# In a fresh process: free a 4 MiB block (mapped, as all blocks of 128 KiB and more
# are at start), then take 512 KiB and count the mapped blocks. Unpinned, glibc has
# raised its threshold to 4 MiB on the free and serves the 512 KiB from the heap.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from mrules.allocator import pin_mmap_threshold
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "pin":
        assert pin_mmap_threshold()
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(512 << 10)
    print(libc.mallinfo2().hblks - before)
    libc.free(block)
    """
)


def _mapped_blocks_after_a_big_free(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    return int(out.stdout)


@glibc
def test_pinned_threshold_keeps_big_blocks_mapped_after_a_big_free() -> None:
    assert _mapped_blocks_after_a_big_free("free") == 0  # glibc raised its threshold
    assert _mapped_blocks_after_a_big_free("pin") == 1  # pinned: the block is its own mapping


@glibc
def test_the_users_own_setting_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert pin_mmap_threshold() is False


def test_run_pins_the_threshold(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr("mrules.cli.run_cmd.pin_mmap_threshold", lambda *a: calls.append(a))
    root = Path(__file__).resolve().parents[1] / "examples" / "getcloudy"
    args = ["run", str(root / "rules"), str(root / "events.jsonl"), "-q"]
    result = CliRunner().invoke(cli_main, [*args, "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert calls == [()]
