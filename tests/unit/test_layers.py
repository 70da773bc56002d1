"""The floors (docs/architecture.md): each package imports only those below it, and only the app
reads the environment (app/settings.py), passing plain values down."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# Highest first; `domain` imports nothing of ours, `infra` only `domain`.
FLOORS = ["app", "consumers", "service", "projections", "infra", "domain"]
ENVIRONMENT = {"environ", "environb", "getenv", "getenvb"}


def modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every import, also those inside functions and `if TYPE_CHECKING:`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", FLOORS)
def test_no_import_runs_from_a_lower_floor_to_a_higher_one(package: str) -> None:
    above = set(FLOORS[:FLOORS.index(package)])
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path, tree in modules(package)
             for line, name in imported(tree) if name.split(".")[0] in above]
    assert not wrong, "imports against the floors (docs/architecture.md):\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", FLOORS[1:])
def test_no_module_below_the_app_reads_the_environment(package: str) -> None:
    wrong = []
    for path, tree in modules(package):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT and (
                    isinstance(node.value, ast.Name) and node.value.id == "os"):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} os.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and (
                    ENVIRONMENT & {alias.name for alias in node.names}):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} from os import ...")
    assert not wrong, ("settings are read once, in app/settings.py, and passed down; these read the "
                       "environment:\n" + "\n".join(wrong))
