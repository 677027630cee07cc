"""The layering rules of docs/ARCHITECTURE.md, checked over the real import graph.

Every import counts, at module level or inside a function, except those under
`if TYPE_CHECKING:`. Relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("utils", "agents", "bootstrap", "api", "tools")

# What each layer may import from the project (besides itself).
ALLOWED = {
    "utils": set(),
    "agents": {"utils"},
    "bootstrap": {"utils", "agents"},
    "api": {"utils", "agents", "bootstrap"},
    "tools": {"utils", "agents", "bootstrap", "api"},
}
MAX_LOOSE_UTILS_MODULES = 8
MAX_MODULE_LINES = 400
# Longer modules, each for a reason (see docs/ARCHITECTURE.md, "Module size").
LONG_MODULES: dict[str, str] = {
    "utils.privacy.recognizers": "one Presidio recognizer per PII family the stock set lacks, "
                                 "each with its validation; read top to bottom as a catalogue",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that `module` imports (a `from pkg import name` of a submodule counts
    as importing that submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if f"{base}.{alias.name}" in known)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name.split(".")[0] in PACKAGES and name in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_layers_import_only_what_they_may(graph: dict[str, set[str]]) -> None:
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items() for target in targets
        if target.split(".")[0] != module.split(".")[0]
        and target.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )
    assert not broken, "layering broken:\n" + "\n".join(broken)


def test_bootstrap_and_api_never_import_the_command_line_folder(graph) -> None:
    # Stated on its own because it is the rule most easily broken by a convenient import.
    assert not [m for m, ts in graph.items() if m.split(".")[0] in ("api", "bootstrap")
                and any(t.split(".")[0] == "tools" for t in ts)]


def test_there_are_no_import_circles(graph: dict[str, set[str]]) -> None:
    # A package's __init__ is executed by importing any of its submodules, so an edge to a
    # submodule is also an edge to its parents' __init__ files.
    edges = {m: set() for m in graph}
    for module, targets in graph.items():
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                parent = ".".join(parts[:i])
                if parent in graph and parent != module and not module.startswith(parent + "."):
                    edges[module].add(parent)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            dfs(node)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_utils_is_grouped_by_stage() -> None:
    loose = sorted(p.name for p in (ROOT / "utils").glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_UTILS_MODULES, loose


def test_modules_stay_small() -> None:
    long = {name: len(path.read_text(encoding="utf-8").splitlines())
            for name, path in _modules().items()}
    too_long = {n: lines for n, lines in long.items()
                if lines > MAX_MODULE_LINES and n not in LONG_MODULES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_the_repository_stands_alone() -> None:
    """Nothing shipped refers to the team's notes outside the repository."""
    offenders = []
    for path in ROOT.rglob("*"):
        if (not path.is_file() or path.suffix not in {".py", ".md", ".yaml", ".toml", ".js",
                                                      ".html", ".json", ".txt"}
                or any(part in {".venv", ".git", "data", "node_modules"} or part.endswith(
                    ".egg-info") for part in path.relative_to(ROOT).parts)):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in ("../shared", "DESIGN §", "STATS §", "DESIGN.md", "STATS.md"):
            if needle in text and path != Path(__file__).resolve():
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, "\n".join(offenders)
