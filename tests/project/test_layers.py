"""The layers point one way: the portal reads through selectors and writes through services, and
imports nothing of the REST layer (`api`, `coupons.api`, any app's `api` module).

Read from the source with `ast`, so a lazy import inside a function counts too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTAL_MODULES = sorted(path for path in (ROOT / "portal").rglob("*.py") if "migrations" not in path.parts)


def rest_layer(module: str) -> bool:
    """`api`, `api.x`, `coupons.api`, `coupons.api.x`, `accounts.api`: the REST layer."""
    return "api" in module.split(".")


def imported_modules(path: Path) -> list[str]:
    """Every module the file imports, `from a import b` counted as both `a` and `a.b` (b may be a module)."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.append(node.module)
            modules.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_the_walk_finds_the_portal() -> None:
    assert len(PORTAL_MODULES) > 10
    assert rest_layer("coupons.api.scopes") and rest_layer("api") and rest_layer("accounts.api")
    assert not rest_layer("accounts.credentials") and not rest_layer("coupons.selectors")


@pytest.mark.parametrize("path", PORTAL_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_portal_imports_nothing_of_the_rest_layer(path: Path) -> None:
    offending = [module for module in imported_modules(path) if rest_layer(module)]
    assert offending == [], f"{path.relative_to(ROOT)} imports the REST layer: {offending}"
