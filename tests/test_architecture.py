"""The package's layers (../shared/ARCHITECTURE.md): imports go one way, never in a circle, and only the models,
their builders and the tools' runners and front ends name a model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "easyvolcap"

# From the bottom up; a module may import from its own layer and the layers below. Top-level modules not listed
# are the library (layout, image IO, inference, batching, checkpoint handling, calibration, multi-view geometry,
# previews, ...).
LAYERS = [
    {"errors"},
    {"models"},
    {"*library*"},
    {"pretrained", "detectors"},  # the builders: the one place outside models/ that loads a model family
    {"runners"},
    {"synthetic"},  # test, bench and demo data: above the library, beside nothing that runs a tool
    {"cli", "demo"},
]
MODEL_NAMES = re.compile(r"rvm|bgmv2|schp|matting(network|refine)|resnet|mobilenet", re.IGNORECASE)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    return next(i for i, names in enumerate(LAYERS) if "*library*" in names)


def imports_of(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("easyvolcap"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import x` of a module
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("easyvolcap"))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {target for target in found if target in modules and target != name}


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_no_module_imports_from_a_layer_above_it():
    wrong = [f"{module} -> {target}" for module, targets in graph().items() for target in targets
             if layer_of(target) > layer_of(module) and not target.startswith(module + ".")]
    assert wrong == []


def test_no_import_circle():
    edges = {module: {t for t in targets if not t.startswith(module + ".") and not module.startswith(t + ".")}
             for module, targets in graph().items()}  # a package and its own modules are one unit
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []


def _code_names(tree: ast.AST) -> list[str]:
    """Identifiers and string constants of a module, docstrings and comments left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names.append(node.value)
        elif isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
            names.append(getattr(node, "name", None) or node.arg)
        elif isinstance(node, ast.alias):
            names.append(node.name)
    return names


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.glob("*.py") if layer_of(module_name(p)) == 2),
                         ids=lambda p: p.stem)
def test_library_names_no_model(path):
    named = sorted({name for name in _code_names(ast.parse(path.read_text())) if MODEL_NAMES.search(name)})
    assert named == []


def test_the_checks_see_a_wrong_import_and_a_named_model(tmp_path):
    """The checks above can fail: a library module importing a runner, and one naming a model."""
    tree = ast.parse('"""About RVM."""\nfrom .runners import rvm\nKEY = "rvm:resnet50"\n')
    assert {"rvm", "rvm:resnet50"} <= set(_code_names(tree)) and "About RVM." not in _code_names(tree)
    assert layer_of("easyvolcap.runners.rvm") > layer_of("easyvolcap.batching") > layer_of("easyvolcap.models.rvm")
