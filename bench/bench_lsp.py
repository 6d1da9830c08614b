"""Language-server latency: how long after a keystroke the diagnostics of a big rule folder arrive.

Not a timed test: run it by hand (`.venv/bin/python bench/bench_lsp.py`) and read the
table. The target from the issue: diagnostics for a 2,000-rule folder within 200 ms of
a change. The script writes a generated rule set (bench_parse.generate, split into
files of about 100 items), starts `mrules lsp` as an editor does (a subprocess on
stdio, driven by pygls's client), opens one file, then sends `--changes` edits that
alternately break and repair a list name, and measures wall-clock time from sending
each didChange to receiving the publishDiagnostics of that version; the edits
alternate a misspelt list name, a repair, a syntax error mid-file, a repair. The server's
debounce (mrules.lsp.server.DEBOUNCE) is part of every figure. It also times the
in-process pieces (`analyze` with a warm parse cache, and cold) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_parse import generate
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from mrules.parser import ITEM_KEYWORDS

_ITEM = re.compile(r"^(?:" + "|".join(ITEM_KEYWORDS) + r")\b", re.M)


def write_rules(folder: Path, rules: int, per_file: int) -> list[Path]:
    """The generated rule set, split at item starts into files of `per_file` items."""
    text = generate(rules)
    starts = [m.start() for m in _ITEM.finditer(text)] + [len(text)]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n, i in enumerate(range(0, len(starts) - 1, per_file)):
        path = folder / f"part-{n:03d}.mr"
        path.write_text(text[starts[i] : starts[min(i + per_file, len(starts) - 1)]], "utf-8")
        files.append(path)
    return files


async def measure(
    folder: Path, target: Path, changes: int
) -> tuple[float, dict[str, list[float]], int]:
    client = LanguageClient("bench", "1")
    arrived: dict[int, float] = {}
    counts: dict[int, int] = {}
    uri = target.resolve().as_uri()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri and params.version is not None:
            arrived.setdefault(params.version, time.perf_counter())
            counts[params.version] = len(params.diagnostics)

    await client.start_io(sys.executable, "-m", "mrules", "lsp", cwd=str(folder.parent))
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=folder.parent.as_uri()
        )
    )
    client.initialized(types.InitializedParams())
    original = target.read_text("utf-8")
    name = re.search(r'add to list "([^"]+)"', original)
    assert name is not None, "the generated file adds to no list"
    misspelt = original.replace(
        f'add to list "{name.group(1)}"', f'add to list "{name.group(1)}x"', 1
    )
    middle = original.index("\n", len(original) // 2)
    unparsable = original[:middle] + " @" + original[middle:]  # a syntax error mid-file

    async def wait(version: int) -> float:
        while version not in arrived:
            await asyncio.sleep(0.001)
        return arrived[version]

    t0 = time.perf_counter()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="mrules", version=1, text=original)
        )
    )
    first = await wait(1) - t0
    times: dict[str, list[float]] = {"misspelt name": [], "syntax error": [], "repaired": []}
    for v in range(2, changes + 2):
        kind = "repaired" if v % 2 else "misspelt name" if v % 4 == 2 else "syntax error"
        text = {"repaired": original, "misspelt name": misspelt, "syntax error": unparsable}[kind]
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=v),
                [types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        times[kind].append(await wait(v) - sent)
        await asyncio.sleep(0.05)  # a pause between keystrokes: no coalescing
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    wrong = sum(1 for v in range(2, changes + 2) if (counts[v] > 0) != (v % 2 == 0))
    return first, times, wrong


def in_process(folder: Path, target: Path) -> tuple[float, float]:
    from mrules.lsp.analysis import analyze

    cache: dict = {}
    t0 = time.perf_counter()
    analyze([folder], None, None, cache)
    cold = time.perf_counter() - t0
    text = target.read_text("utf-8") + "\n# a change\n"
    t0 = time.perf_counter()
    analyze([folder], {str(target.resolve()): text}, None, cache)
    return cold, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=2000, help="top-level items in the folder")
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = (args.workdir or Path(tmp)) / "rules"
        files = write_rules(folder, args.rules, args.per_file)
        target = files[len(files) // 2]
        cold, warm = in_process(folder, target)
        first, times, wrong = asyncio.run(measure(folder, target, args.changes))
    every = sorted(t * 1000 for ts in times.values() for t in ts)
    print(f"rule folder: {args.rules} items in {len(files)} files; {args.changes} changes")
    print(
        f"in-process analyze: cold {cold * 1000:.0f} ms, after one file changed "
        f"{warm * 1000:.0f} ms"
    )
    print(f"server, open to first diagnostics: {first * 1000:.0f} ms")
    print(
        f"server, change to diagnostics: median {statistics.median(every):.0f} ms, "
        f"p90 {every[min(len(every) - 1, int(len(every) * 0.9))]:.0f} ms, "
        f"max {max(every):.0f} ms"
    )
    for kind, ts in times.items():
        if ts:
            ms = sorted(t * 1000 for t in ts)
            print(
                f"  {kind}: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms "
                f"({len(ms)} changes)"
            )
    if wrong:
        print(f"error: {wrong} answers had the wrong diagnostics", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
