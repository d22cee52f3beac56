"""The one-way import rule of the README's Layout section, checked on the source's own imports.

labeling_app/ and reward_models/ are leaves: they import nothing of the project. Inside align/
the stages are layered; a module may import from its own layer or a lower one, never a higher
one, and the module graph has no cycles (imports inside functions count too).

The scripts of benchmarks/ and experiments/ sit on top of everything: they import the project's
installed packages and the libraries, never each other, and never edit sys.path. What they share
lives in a package (the evaluation protocol in align/evaluation/paired_arms.py). Every benchmark
names, in its docstring, the baseline its ratio is measured against.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("align", "labeling_app", "reward_models")
LEAVES = ("labeling_app", "reward_models")
SCRIPT_FOLDERS = ("benchmarks", "experiments")

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


def scripts(root: Path = ROOT) -> list[Path]:
    return sorted(path for folder in SCRIPT_FOLDERS for path in (root / folder).rglob("*.py"))


def script_import_problems(source: str, root: Path = ROOT) -> list[str]:
    """Imports of a script that are not the project's packages, the standard library or an installed
    library: another script (`import paired_arms`), a relative import, or a script folder itself."""
    siblings = {path.stem for path in scripts(root)} | set(SCRIPT_FOLDERS)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append(f"relative import from {'.' * node.level}{node.module or ''}")
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in siblings:
                found.append(f"imports {name}, a script (move what is shared into a package)")
            elif top not in PACKAGES and top not in sys.stdlib_module_names and importlib.util.find_spec(top) is None:
                found.append(f"imports {name}, which is neither the project's packages nor an installed library")
    return found


def test_the_scripts_have_their_two_homes():
    names = {folder: {path.stem for path in (ROOT / folder).glob("*.py")} for folder in SCRIPT_FOLDERS}
    assert {"generation", "labeling_latency", "cpu_speedups", "ddpo_vs_trl", "embedding_cache", "sd15_speed"} <= names["benchmarks"]
    assert len(names["experiments"]) >= 16 and "paired_arms" not in names["experiments"] | names["benchmarks"]
    assert not (ROOT / "bench").exists(), "bench/ was split into benchmarks/ and experiments/"


def test_no_script_edits_sys_path():
    files = [path for folder in SCRIPT_FOLDERS for path in (ROOT / folder).rglob("*") if path.is_file()]
    assert len(files) >= 22
    assert [str(path.relative_to(ROOT)) for path in files if "sys.path" in path.read_text(errors="replace")] == []


def test_scripts_import_only_the_packages_and_libraries():
    found = {str(path.relative_to(ROOT)): script_import_problems(path.read_text()) for path in scripts()}
    assert {name: problems for name, problems in found.items() if problems} == {}


@pytest.mark.parametrize(
    "statement, expected",
    [
        ("import paired_arms", "imports paired_arms, which is neither"),  # bench/ held it; now a module of align
        ("from gradient_directions import consistency", "imports gradient_directions, a script"),
        ("from experiments.guidance_scale import Splits", "imports experiments.guidance_scale, a script"),
        ("from . import generation", "relative import from ."),
        ("def f():\n    import no_such_module_anywhere", "imports no_such_module_anywhere, which is neither"),
    ],
)
def test_the_script_checker_catches_a_wrong_import(statement, expected):
    assert any(line.startswith(expected) for line in script_import_problems(statement))


def test_the_script_checker_lets_the_packages_and_libraries_through():
    source = "import argparse\nimport torch\nfrom align.evaluation.paired_arms import run_arms\nfrom reward_models.labels import read_labels"
    assert script_import_problems(source) == []


def test_the_shared_evaluation_protocol_is_a_module_of_its_layer():
    graph = import_graph()
    assert layer("align.evaluation.paired_arms") == [name for name, _ in LAYERS].index("evaluation")
    assert "align.generation.prompts" in graph["align.evaluation.paired_arms"]  # the walk read its imports
    assert [line for line in violations(graph) if line.startswith("align.evaluation.paired_arms ")] == []


def test_every_benchmark_names_its_baseline():
    docstrings = {path.name: ast.get_docstring(ast.parse(path.read_text())) or "" for path in (ROOT / "benchmarks").glob("*.py")}
    assert len(docstrings) >= 6
    assert [name for name, doc in docstrings.items() if "baseline" not in doc.lower()] == []
