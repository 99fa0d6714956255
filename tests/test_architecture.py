"""The package's roles depend one way: no module imports from a role above its own.

Roles from the bottom up (docs/architecture.md): the shared ground (errors, config, storage),
stats, losses, spaces, screening, evaluation, search, experiments, report, cli. Imports inside
functions count too, as do ``importlib.import_module("nlfs....")`` calls; ``nlfs`` never
imports ``strategies`` (built-in strategies are found through their entry point).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nlfs"
ORDER = (
    "shared",
    "stats",
    "losses",
    "spaces",
    "screening",
    "evaluation",
    "search",
    "experiments",
    "report",
    "cli",
)
SHARED = {"errors", "config", "storage", "optuna_compat", "journal"}


def role(module: str) -> str:
    """The role of a dotted module name under ``nlfs``."""
    parts = module.split(".")
    assert parts[0] == "nlfs", module
    if len(parts) == 1 or parts[1] in SHARED:
        return "shared"
    assert parts[1] in ORDER, f"{module}: a module outside every role; add it to ORDER or SHARED"
    return parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    """Every ``nlfs``/``strategies`` module that ``path`` imports, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "nlfs":  # from nlfs import x: x is a module (or a name) of nlfs
                found += [(node.lineno, f"nlfs.{a.name}") for a in node.names]
            elif node.module.split(".")[0] in ("nlfs", "strategies"):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name)
                for a in node.names
                if a.name.split(".")[0] in ("nlfs", "strategies")
            ]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith(("nlfs.", "strategies"))
        ):
            found.append((node.lineno, node.args[0].value))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_role():
    assert len(MODULES) > 50
    for path in MODULES:
        dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        assert role(dotted.removesuffix(".__init__")) in ORDER


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_imports_from_a_role_above_its_own(path):
    dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    own = ORDER.index(role(dotted.removesuffix(".__init__")))
    upward = []
    for line, target in imports(path):
        if target.split(".")[0] == "strategies":
            upward.append(f"line {line}: {target} (nlfs never imports strategies/)")
        elif ORDER.index(role(target)) > own:
            upward.append(f"line {line}: {target} ({role(target)} is above {ORDER[own]})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself: a lazy import of the CLI from a loss module is caught."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from nlfs.cli.common import console\n")
    assert [(t, role(t)) for _, t in imports(module)] == [("nlfs.cli.common", "cli")]
