"""The one-way import rule of the README's Layout section, checked on the source's own imports.

labeling_app/ and reward_models/ are leaves: they import nothing of the project. Inside align/
the stages are layered; a module may import from its own layer or a lower one, never a higher
one, and the module graph has no cycles (imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("align", "labeling_app", "reward_models")
LEAVES = ("labeling_app", "reward_models")

# Bottom to top. Top-level align modules not named here (errors, config, rundir, models) are
# what every stage shares, the lowest layer.
LAYERS = (
    ("shared", ("align",)),
    ("shapes", ("align.shapes",)),
    ("generation", ("align.generation",)),
    ("evaluation", ("align.evaluation",)),
    ("finetune", ("align.finetune",)),
    ("reports", ("align.reports",)),
    ("interface", ("align.cli", "align.commands", "align.demo")),
)


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the three packages, by dotted name (a package by its __init__)."""
    names = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """The project modules that `source` (module `name`) imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parts = name.split(".")
                anchor = parts[: len(parts) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                found.add(target)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    names = module_names(root)
    known = set(names)
    return {
        name: imports_of(name, path.read_text(), known, path.name == "__init__.py") - {name}
        for name, path in names.items()
    }


def layer(module: str) -> int:
    """The index of the layer a module of align belongs to: its longest matching prefix."""
    best, best_length = 0, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the rule, as one readable line each."""
    found = []
    for importer, targets in sorted(graph.items()):
        for target in sorted(targets):
            if importer.split(".")[0] in LEAVES and target.split(".")[0] != importer.split(".")[0]:
                found.append(f"leaf {importer} imports {target}")
            elif importer.startswith("align") and target.startswith("align") and layer(target) > layer(importer):
                found.append(
                    f"{importer} ({LAYERS[layer(importer)][0]}) imports {target} ({LAYERS[layer(target)][0]}), a higher layer"
                )
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles (one path per cycle found), by depth-first search."""
    state, stack, found = {}, [], []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_project_keeps_the_one_way_rule():
    graph = import_graph()
    assert len(graph) > 60  # the walk found the project, not an empty tree
    assert violations(graph) == []
    assert cycles(graph) == []


def test_every_align_subpackage_has_a_layer():
    subpackages = {path.parent.name for path in (ROOT / "align").glob("*/__init__.py")}
    named = {prefix.split(".")[1] for _, prefixes in LAYERS for prefix in prefixes if "." in prefix}
    assert subpackages <= named, f"add {sorted(subpackages - named)} to LAYERS and the README's Layout section"


@pytest.mark.parametrize(
    "importer, statement, expected",
    [
        ("reward_models.training", "from align.errors import BadInput", "leaf reward_models.training imports align.errors"),
        ("labeling_app.store", "import reward_models.metrics", "leaf labeling_app.store imports reward_models.metrics"),
        ("align.shapes.oracle", "def f():\n    from align.finetune import ddpo", "align.shapes.oracle (shapes) imports align.finetune.ddpo"),
        ("align.evaluation.evaluate", "from ..demo import summary", "align.evaluation.evaluate (evaluation) imports align.demo.summary"),
    ],
)
def test_the_checker_catches_a_wrong_import(importer, statement, expected):
    graph = import_graph()
    graph[importer] = graph[importer] | imports_of(importer, statement, set(graph))
    assert any(line.startswith(expected) for line in violations(graph))


def test_the_checker_catches_a_cycle():
    graph = import_graph()
    graph["align.generation.prompts"] = graph["align.generation.prompts"] | {"align.generation.generate"}
    assert ["align.generation.generate", "align.generation.prompts", "align.generation.generate"] in cycles(graph)
