"""docs/design.md names every module: a reader finds the one that owns a behaviour."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mrules"


def _table_names() -> set[str]:
    """The backquoted names in the first cell of each row of design.md's module table."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "design.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([^`]+)`", first_cell))
    return names


def _modules() -> list[str]:
    """Every module of the package, as `engine/run.py`; a package's own files as `crm/`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name in {"__init__.py", "__main__.py"} and len(rel.parts) == 1:
            continue  # the package's entry points, described in the prose
        found.append(rel.as_posix())
    return found


def test_every_module_is_in_the_design_table() -> None:
    names = _table_names()
    missing = []
    for module in _modules():
        top = module.split("/")[0] + "/"
        if module in names or top in names:
            continue
        if module.startswith("engine/") and module.endswith("__init__.py"):
            continue  # `Engine` assembled from its parts: the prose after the table
        missing.append(module)
    assert missing == [], f"modules docs/design.md does not name: {missing}"


def test_every_name_in_the_table_exists() -> None:
    stale = []
    for name in _table_names():
        if not name.endswith((".py", "/")):
            continue
        if not (PACKAGE / name).exists() and not (ROOT / name).exists():
            stale.append(name)
    assert stale == [], f"docs/design.md names modules that do not exist: {stale}"


def _package_rows() -> dict[str, str]:
    """Each package named in the table's first cell (`crm/`) -> the text of its row."""
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "design.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            for name in re.findall(r"`([^`]+/)`", line.split("|")[1]):
                rows[name] = line
    return rows


def test_a_package_row_names_each_of_its_modules() -> None:
    """A row such as `sync/` names every module in it, so the row leads to the file."""
    missing = []
    for package, row in _package_rows().items():
        for path in sorted((PACKAGE / package).glob("*.py")):
            stem = path.stem
            if stem == "__init__" or (package == "cli/" and stem.endswith("_cmd")):
                continue  # the package itself; cli's commands by their `<name>_cmd.py` rule
            if f"`{stem}`" not in row and f"`{stem}.py`" not in row:
                missing.append(f"{package}{path.name}")
    assert missing == [], f"package rows of docs/design.md that do not name: {missing}"
