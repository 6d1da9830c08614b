"""The imports between mrules' modules run one way (docs/design.md).

Read statically from the source, every import counted (at module level, inside
functions, under TYPE_CHECKING): a lazy import still ties two modules together.
A package's `__init__.py` is its face (it hands names on), not a module of the
graph; an import of a package counts as an import of nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mrules"


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
FACES = {name for name, p in MODULES.items() if p.name == "__init__.py"}


def _imports(name: str) -> set[str]:
    """The modules of the package that module `name` imports."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if name in FACES else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t not in FACES)
    found.discard(name)
    return found


GRAPH = {name: _imports(name) for name in MODULES if name not in FACES}


def _reaches(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_two_modules_import_each_other_even_lazily() -> None:
    circles = sorted(name for name in GRAPH if name in _reaches(name))
    assert circles == [], f"modules on an import circle: {circles}"


def test_the_engine_sees_the_store_interface_only() -> None:
    """`mrules.engine` hands a `Batch` to a `StateStore`; it imports no store."""
    stores = {"mrules.store", "mrules.memstore", "mrules.store_pg"}
    engine = {n for n in GRAPH if n.startswith("mrules.engine.")}
    assert engine, "no engine modules found"
    for name in sorted(engine | {"mrules.storeapi", "mrules.batch"}):
        assert not (_reaches(name) & stores), f"{name} reaches {sorted(_reaches(name) & stores)}"
    assert "mrules.storeapi" in set().union(*(GRAPH[n] for n in engine))


def test_the_stores_share_the_batch_not_each_other() -> None:
    """The in-memory store does not lean on the SQLite one (both take `mrules.batch`)."""
    assert "mrules.batch" in GRAPH["mrules.memstore"]
    assert "mrules.batch" in GRAPH["mrules.store"]
    assert "mrules.store" not in _reaches("mrules.memstore")


def test_the_command_line_is_the_top() -> None:
    """No module below the CLI imports a command's module: what a command and another
    part share (the explanation `mrules explain` prints and `mrules test` checks) lives
    below both."""
    below = {n for n in GRAPH if not n.startswith("mrules.cli.") and n != "mrules.__main__"}
    up = {n: sorted(m for m in GRAPH[n] if m.startswith("mrules.cli.")) for n in sorted(below)}
    assert {n: m for n, m in up.items() if m} == {}


def _imports_the_face(name: str) -> bool:
    """Whether module `name` imports the package itself (`import mrules`), whose face
    hands on the library's API: the graph above counts that as an import of nothing."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "mrules" for a in node.names):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "mrules"
            and not node.level
            and any(a.name != "ast" for a in node.names)  # `from mrules import ast`: a module
        ):
            return True
    return False


def test_the_sync_sits_below_the_library_api() -> None:
    """`mrules.export` (the library's face) reads the sync file to tell which CRM work is
    done; the sync, feeding the engine its facts, goes through `mrules.streamrun` below
    the face, so the two folders do not lean on each other."""
    sync = sorted(n for n in GRAPH if n.startswith("mrules.sync."))
    assert sync, "no sync modules found"
    assert [n for n in sync if "mrules.api" in _reaches(n) or _imports_the_face(n)] == []
    assert "mrules.streamrun" in _reaches("mrules.sync.apply")
