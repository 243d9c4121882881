"""The package's layout rules (docs/architecture.md), checked on the source with ``ast``.

* the top level holds only subpackages plus ``__init__``/``__main__``;
* subpackages import only the layers below them (io <- geometry <- segmentation/planning/postop <- cli);
* no module of the product imports ``training`` or ``simulation``;
* no import cycle between modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "DBSSegmentationLogic"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

#: What each subpackage may import of the package besides itself (the package root gives __version__ only).
ALLOWED = {
    "io": set(),
    "geometry": {"io"},
    "segmentation": {"io", "geometry"},
    "planning": {"io", "geometry", "segmentation"},
    "postop": {"io", "geometry"},
    "frame_registration": {"io", "geometry"},
    "cli": {"io", "geometry", "segmentation", "planning", "postop", "frame_registration"},
    "training": {"io", "geometry", "segmentation"},
    "simulation": {"io", "geometry", "postop", "frame_registration"},
}
PRODUCT = {"io", "geometry", "segmentation", "planning", "postop", "frame_registration", "cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, all_modules: set[str], name: str | None = None) -> set[str]:
    """Modules of the package that ``path`` (module ``name``) imports, lazy imports inside functions included."""
    name = name or module_name(path)
    package_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package_parts[: len(package_parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in all_modules)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {module_name(path): path for path in paths}
    return {name: imported_modules(path, set(modules)) for name, path in modules.items()}


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_top_level_holds_only_subpackages():
    loose = sorted(path.name for path in PACKAGE_DIR.glob("*.py") if path.name not in ("__init__.py", "__main__.py"))
    assert loose == []
    for folder in PACKAGE_DIR.iterdir():
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder.name} lacks __init__.py"
            assert folder.name in ALLOWED, f"subpackage {folder.name} has no layer rule in this test"


def test_every_subpackage_says_what_lives_there():
    for name in ALLOWED:
        init = PACKAGE_DIR / name / "__init__.py"
        if init.exists():
            assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{name}/__init__.py has no docstring"


def test_dependencies_point_one_way():
    violations = []
    for module, imports in import_graph().items():
        own = subpackage(module)
        if own is None:
            continue
        for target in imports:
            other = subpackage(target)
            if other is not None and other != own and other not in ALLOWED[own]:
                violations.append(f"{module} imports {target}")
    assert violations == []


def test_product_never_imports_training_or_simulation():
    offenders = [f"{module} imports {target}" for module, imports in import_graph().items()
                 if subpackage(module) in PRODUCT for target in imports
                 if subpackage(target) in ("training", "simulation")]
    assert offenders == []


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for start in graph:
        if start not in state:
            visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("layer", ["io", "geometry", "postop"])
def test_the_walker_sees_a_lazy_import_from_a_higher_layer(tmp_path, layer):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..planning import plan\n", encoding="utf-8")
    modules = {module_name(path) for path in PACKAGE_DIR.rglob("*.py")}
    found = imported_modules(probe, modules, name=f"{PACKAGE}.{layer}.probe")
    assert f"{PACKAGE}.planning.plan" in found
    assert "planning" not in ALLOWED[layer]
