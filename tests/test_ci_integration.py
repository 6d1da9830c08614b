"""CI integration for real: pre-commit runs this repository's hooks on a broken rule set,
and the composite Action's shell steps run as a runner would run them.

Both install mrules from this checkout into a fresh virtual environment (pip may fetch
the build backend and the dependencies from the package index), so each takes a while.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BROKEN = 'list "MQL"\nform "Demo"\non submit of form "Demo" { add to list "MQl" }\n'
MESSY = 'list   "Other"\n'

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_hook_manifest_names_the_hooks_the_docs_show() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"mrules-lint", "mrules-fmt", "mrules-fmt-check"}
    assert all(h["language"] == "python" and h["files"] == r"\.mr$" for h in hooks.values())
    docs = (ROOT / "docs" / "ci.md").read_text("utf-8")
    for hook in hooks:
        assert f"id: {hook}" in docs


def _this_checkout_as_a_rev(tmp_path: Path) -> tuple[str, str]:
    """A repo and rev holding this checkout as it is, local changes to tracked files
    included: HEAD itself when there are none (a fresh clone), else a commit of them in a
    clone, as `pre-commit try-repo` makes one."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, check=False)
    if changed.returncode == 0:
        return str(ROOT), head
    shadow = tmp_path / "shadow"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(shadow)], check=True, capture_output=True)
    patch = subprocess.run(
        ["git", "diff", "--binary", "HEAD"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(
        ["git", "apply", "--index"], cwd=shadow, input=patch, check=True, capture_output=True
    )
    git(shadow, "commit", "-q", "-m", "local changes")
    rev = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=shadow, capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(shadow), rev


@needs_git
def test_pre_commit_hooks_annotate_a_broken_file(tmp_path: Path) -> None:
    # The configuration docs/ci.md shows, pointing at this checkout: pre-commit builds
    # the hooks' environment once and runs each hook from it.
    repo, rev = _this_checkout_as_a_rev(tmp_path)
    work = tmp_path / "project"
    (work / "rules").mkdir(parents=True)
    (work / "rules" / "main.mr").write_text(BROKEN, "utf-8")
    (work / "rules" / "messy.mr").write_text(MESSY, "utf-8")
    (work / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {repo}\n    rev: {rev}\n    hooks:\n"
        "      - id: mrules-lint\n"  # its default args: the whole project
        "      - id: mrules-fmt-check\n      - id: mrules-fmt\n",
        "utf-8",
    )
    git(work, "init", "-q")
    git(work, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    env["MRULES_PURE_PYTHON"] = "1"  # the hooks lint and format: no need to compile the engine

    def run(hook: str) -> tuple[int, str]:
        out = subprocess.run(
            [sys.executable, "-m", "pre_commit", "run", hook, "--all-files", "--color", "never"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        return out.returncode, out.stdout + out.stderr

    code, text = run("mrules-lint")
    assert code == 1, text
    assert re.search(r"mrules lint\.+Failed", text), text
    assert "rules/main.mr:3:40: error[MR103]: unknown list 'MQl'" in text, text
    code, text = run("mrules-fmt-check")
    assert code == 1 and re.search(r"mrules fmt --check\.+Failed", text), text
    assert "would reformat rules/messy.mr" in text, text
    code, text = run("mrules-fmt")
    assert code == 1 and re.search(r"mrules fmt\.+Failed", text), text  # it rewrote files
    assert (work / "rules" / "messy.mr").read_text("utf-8") == 'list "Other"\n'
    envs = [p for p in (tmp_path / "cache").rglob("pyvenv.cfg")]
    assert len(envs) == 1, envs  # one environment for the three hooks


EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _evaluate(text: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr.startswith("inputs."):
            return inputs[expr.removeprefix("inputs.")]
        step = re.fullmatch(r"steps\.lint\.outputs\.([\w-]+)", expr)
        if step:
            return outputs.get(step.group(1), "")
        raise AssertionError(f"the test cannot evaluate ${{{{ {expr} }}}}")

    return EXPR.sub(sub, text)


def test_the_actions_shell_steps_lint_annotate_and_fail(tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert uses == ["actions/setup-python@v5", "github/codeql-action/upload-sarif@v3"]
    inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    inputs["paths"] = "rules"
    workspace = tmp_path / "workspace"
    (workspace / "rules").mkdir(parents=True)
    (workspace / "rules" / "main.mr").write_text(BROKEN, "utf-8")
    output_file = tmp_path / "github_output"
    output_file.write_text("")
    bin_dir = tmp_path / "bin"  # what setup-python puts first on PATH: a `python`
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    base_env = {
        **os.environ,
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output_file),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    base_env.pop("VIRTUAL_ENV", None)
    # The steps lint: no need to compile the engine (tests/test_compiled.py builds it).
    base_env["MRULES_PURE_PYTHON"] = "1"
    outputs: dict[str, str] = {}
    ran = []
    for step in steps:
        if "run" not in step:
            continue
        cond = step.get("if")
        if (
            cond
            and "steps.lint.outputs.exit-code != '0'" in cond
            and outputs.get("exit-code") == "0"
        ):
            continue
        env = {
            **base_env,
            **{k: _evaluate(str(v), inputs, outputs) for k, v in step.get("env", {}).items()},
        }
        script = _evaluate(step["run"], inputs, outputs)
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        ran.append((step["name"], done))
        for line in output_file.read_text().splitlines():
            key, _, value = line.partition("=")
            outputs[key] = value
    by_name = dict(ran)
    install = by_name["Install mrules"]
    assert install.returncode == 0, install.stderr
    assert install.stdout.startswith("mrules, version")
    lint = by_name["Lint"]
    assert lint.returncode == 0, lint.stderr  # the step records the status, then goes on
    assert outputs["exit-code"] == "1"
    assert lint.stdout.startswith("::error file=rules/main.mr,line=3,col=40,"), lint.stdout
    sarif = json.loads((workspace / "mrules.sarif").read_text("utf-8"))
    assert sarif["runs"][0]["results"][0]["ruleId"] == "MR103"
    fail = by_name["Fail on problems"]
    assert fail.returncode == 1


def _run_lint_step(tmp_path: Path, **given: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The action's Lint step, its script alone, with the inputs `given` over their
    defaults and mrules from this environment: what it did, and its GITHUB_OUTPUT file."""
    action = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    [lint] = [s for s in action["runs"]["steps"] if s.get("id") == "lint"]
    venv_bin = tmp_path / "mrules-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "mrules").symlink_to(Path(sys.executable).with_name("mrules"))
    output_file = tmp_path / "out"
    output_file.write_text("")
    inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    inputs.update(**given)
    env = {
        **os.environ,
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output_file),
        **{k: _evaluate(str(v), inputs, {}) for k, v in lint["env"].items()},
    }
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", lint["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done, output_file


def test_the_action_passes_a_clean_rule_set_through(tmp_path: Path) -> None:
    """The Lint step's script alone, with mrules from this environment: exit-code 0."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "ok.mr").write_text('list "MQL"\n', "utf-8")
    done, output_file = _run_lint_step(
        tmp_path, paths="rules", strict="true", args="--ignore MR030"
    )
    assert done.returncode == 0, done.stderr
    assert output_file.read_text() == "exit-code=0\n"
    assert "ok: 1 file, no problems" in done.stderr


def test_the_action_lints_every_path_of_a_multi_line_input(tmp_path: Path) -> None:
    """`paths` (and `args`) written as a YAML block, one a line, as a workflow may: every
    line is linted (`read -a` took the first line alone, and passed the broken folder
    below it silently)."""
    warned = 'form "F"\non submit of form "F" { add tag "t" }\n'  # MR109: no tag "t"
    for folder, text in (("warned", warned), ("broken", BROKEN)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "main.mr").write_text(text, "utf-8")
    done, output_file = _run_lint_step(
        tmp_path, paths="warned\nbroken\n", args="--ignore MR030\n--ignore MR109\n"
    )
    assert done.returncode == 0, done.stderr
    assert output_file.read_text() == "exit-code=1\n", done.stderr
    assert done.stdout.startswith("::error file=broken/main.mr,line=3,col=40,"), done.stdout
    assert "title=MR109" not in done.stdout  # the second line of args was read
    assert "in 2 files" in done.stderr
