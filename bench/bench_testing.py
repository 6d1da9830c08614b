"""`mrules test` speed: 100 cases (the target is under 2 s), in process and through the CLI.

    python bench/bench_testing.py [--cases 100] [--workdir DIR]

Writes DIR/tests/bench.test.yaml: `--cases` cases against the bundled
example's rules (examples/getcloudy/rules), each with a starting state, three
events and a clock tick, and expectations on state, actions and the outbox
(the cases of examples/getcloudy/tests, varied by prospect). Then times
`mrules.testing.run_paths` in this process (best of 3) and one `mrules test`
command end to end (Python start-up and imports included), and prints both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CASE = """\
  - name: case {i}
    given:
      at: 2026-11-01T00:00:00Z
      prospects:
        p{i}@example.com: {{score: {score}, fields: {{company_size: "{size}"}}}}
    events:
      - {{ts: 2026-11-02T09:00:00Z, type: page_view, prospect: p{i}@example.com,
         url: "https://getcloudy.com/pricing"}}
      - {{ts: 2026-11-02T09:05:00Z, type: form_submit, prospect: p{i}@example.com,
         asset: Demande Get Cloudy}}
      - {{ts: 2026-11-02T09:10:00Z, type: email_click, prospect: p{i}@example.com,
         asset: Newsletter, url: "https://getcloudy.com/blog"}}
      - {{now: 2026-11-20T00:00:00Z}}
    expect:
      prospects:
        p{i}@example.com:
          score: {final}
          assigned: alan@getcloudy.com
          tags: {{include: [consult-request, newsletter-reader]}}
      actions:
        - {{action: assign, name: alan@getcloudy.com}}
      outbox:
        - {{kind: notify, to: leung@getcloudy.com}}
        - {{kind: notify, to: alan@getcloudy.com}}
        - {{kind: autoresponder}}
"""


def write_cases(folder: Path, n: int) -> Path:
    tests = folder / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    (folder / "rules").unlink(missing_ok=True)
    (folder / "rules").symlink_to(ROOT / "examples" / "getcloudy" / "rules")
    parts = ["rules: ../rules\ntests:\n"]
    for i in range(n):
        score = (i * 7) % 80  # below the MQL threshold after the events
        size = ("1-10", "11-50", "51-200")[i % 3]
        # page view +1 and page action +10, form +50, the Newsletter click +5
        parts.append(CASE.format(i=i, score=score, size=size, final=score + 1 + 10 + 50 + 5))
    path = tests / "bench.test.yaml"
    path.write_text("".join(parts), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="mrules-bench-test-"))
    path = write_cases(folder, args.cases)

    from mrules.testing import run_paths

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        report = run_paths([str(path)])
        best = min(best, time.perf_counter() - started)
        counts = report.counts()
        if counts["pass"] != args.cases:
            print(f"not every case passed: {dict(counts)}", file=sys.stderr)
            return 1
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mrules", "test", str(path)], capture_output=True, check=False
    )
    cli = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout.decode(), done.stderr.decode(), file=sys.stderr)
        return 1
    print(f"{args.cases} cases: in process {best:.2f} s (best of 3, rules compiled once)")
    print(f"{args.cases} cases: `mrules test` end to end {cli:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
