"""The package's layout: dependencies point one way, Flower stays in federation/."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fedmodel"

# Top to bottom: a package may import only packages listed after it (or itself).
LAYERS = [
    "cli",
    "research",
    "deploy",
    "federation",
    "client",
    "distill",
    "serve",
    "run",
    "privacy",
    "training",
    "model",
    "data",
    "config",
    "errors",
]
FLOWER_PACKAGES = ("flwr",)
# flwr_datasets (partitioners) is imported lazily by data/partition.py.
FLOWER_ALLOWED_IN = {"federation"}
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _sized() -> list[Path]:
    """The files the size rules cover: the package's modules and the benchmarks."""
    return _modules() + sorted((PACKAGE.parent / "benchmarks").glob("*.py"))


def _unit(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_every_module_belongs_to_a_known_layer() -> None:
    units = {_unit(p) for p in _modules()} - {"__init__", "__main__"}
    assert units <= set(LAYERS), f"unplaced: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    unit = _unit(path)
    if unit in ("__init__", "__main__"):  # the package's top: may import any layer
        return
    rank = LAYERS.index(unit)
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "fedmodel" and len(parts) > 1:
            target = parts[1]
            assert LAYERS.index(target) >= rank, (
                f"{path.relative_to(PACKAGE)} ({unit}) imports {name}, "
                f"which sits above it ({target})"
            )
        if parts[0] in FLOWER_PACKAGES:
            assert unit in FLOWER_ALLOWED_IN, (
                f"{path.relative_to(PACKAGE)} imports {name}: only "
                f"{sorted(FLOWER_ALLOWED_IN)} may import Flower"
            )


@pytest.mark.parametrize(
    "path", _sized(), ids=lambda p: str(p.relative_to(PACKAGE.parent))
)
def test_files_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_FILE_LINES, f"{path.name} has {lines} lines"


def _functions() -> list[tuple[str, int]]:
    found = []
    for path in _sized():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{path.relative_to(PACKAGE.parent).as_posix()}:{node.name}"
                assert node.end_lineno is not None
                found.append((name, node.end_lineno - node.lineno + 1))
    return found


def test_functions_stay_short() -> None:
    """Every function, docstring included, is at most 60 lines from def to end."""
    long = {name: lines for name, lines in _functions() if lines > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _package_data(key: str) -> set[Path]:
    """The package's files that pyproject's `[tool.setuptools.<key>]` names."""
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    patterns = tomllib.loads(text)["tool"]["setuptools"][key]["fedmodel"]
    return {path for pattern in patterns for path in PACKAGE.glob(pattern)}


def test_the_package_data_ships_in_the_wheel() -> None:
    """Every file of the package besides its modules is in pyproject's package-data.

    setuptools puts into the wheel the modules and the files package-data
    names, nothing else: a file left out works in a checkout and is missing
    wherever the wheel is installed (tests/integration/test_wheel.py, slow,
    checks an installed wheel for the .py and .yaml files only).
    """
    shipped = _package_data("package-data")
    assert PACKAGE / "conf" / "config.yaml" in shipped
    data = {
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts
    }
    left_out = data - shipped - _package_data("exclude-package-data")
    assert not left_out, f"add these to pyproject's package-data: {sorted(left_out)}"


def _distribution(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    """`name[extra]==version` lines (comments skipped) as name -> version."""
    pins: dict[str, str] = {}
    for line in lines:
        spec = line.split("#", 1)[0].split(";", 1)[0].strip()
        if spec:
            name, _, pinned = spec.partition("==")
            pins[_distribution(name.split("[", 1)[0])] = pinned.strip()
    return pins


def _wheel_pins() -> dict[str, str]:
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    return _pins(tomllib.loads(text)["project"]["dependencies"])


def test_every_imported_package_is_a_declared_dependency() -> None:
    """A package fedmodel imports is pinned in pyproject.toml itself.

    One that comes only as another's dependency is whatever version that one
    allows when a site installs the wheel, and goes when that one drops it.
    """
    declared = set(_wheel_pins())
    installed = packages_distributions()
    undeclared: dict[str, str] = {}
    for path in _modules():
        for name in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("fedmodel", "__future__"):
                continue
            if not {_distribution(d) for d in installed.get(top, [top])} & declared:
                undeclared[top] = str(path.relative_to(PACKAGE.parent))
    assert not undeclared, f"imported, not in pyproject's dependencies: {undeclared}"


def test_the_wheel_pins_what_the_lock_file_pins() -> None:
    """`pip install -c requirements.lock` of the wheel needs the two to agree."""
    locked = _pins((PACKAGE.parent / "requirements.lock").read_text().splitlines())
    differ = {
        name: (pinned, locked.get(name))
        for name, pinned in _wheel_pins().items()
        if pinned != locked.get(name)
    }
    assert not differ, f"pyproject's pin, the lock file's (None: not there): {differ}"


def _tree_table() -> dict[str, str]:
    """docs/architecture.md's module table: module path -> its one-liner."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    block = text.split("## The tree", 1)[1].split("\nfedmodel/\n", 1)[1]
    rows: dict[str, str] = {}
    package = ""
    for line in block.split("\nsimulations/", 1)[0].splitlines():
        if not line.startswith("  ") or line.startswith("  conf/"):
            continue
        name, _, line_text = line.strip().partition(" ")
        if name.endswith("/"):
            package = name
            rows[f"{package}__init__.py"] = line_text.strip()
        elif name.endswith(".py"):
            nested = line.startswith("    ")
            rows[f"{package if nested else ''}{name}"] = line_text.strip()
    return rows


def test_the_architecture_table_names_every_module_by_its_docstring() -> None:
    """docs/architecture.md lists each module with its docstring's first line."""
    table = _tree_table()
    modules = {p.relative_to(PACKAGE).as_posix(): p for p in _modules()}
    assert sorted(table) == sorted(modules)
    wrong = {
        name: line
        for name, line in table.items()
        if line
        != (ast.get_docstring(ast.parse(modules[name].read_text())) or "").splitlines()[
            0
        ]
    }
    assert not wrong, f"update these rows to the module's first docstring line: {wrong}"
