"""The pure core stays pure: `monitor/domain` imports only the standard library and does no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[1] / "monitor" / "domain"
# Standard-library modules that would let the core do I/O or concurrency behind the caller's back.
IO_MODULES = {
    "asyncio",
    "socket",
    "subprocess",
    "threading",
    "io",
    "os",
    "pathlib",
    "shutil",
    "sqlite3",
    "urllib",
    "http",
    "logging",
    "time",
}


def _imports(path: Path) -> set[str]:
    """Full names of the modules `path` imports (relative imports stay inside the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(module: str) -> bool:
    # The domain may import itself (monitor.domain.*), nothing else of the project.
    if module == "monitor.domain" or module.startswith("monitor.domain."):
        return True
    top = module.split(".")[0]
    return top == "__future__" or (top in sys.stdlib_module_names and top not in IO_MODULES)


def test_domain_imports_only_stdlib_without_io() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "monitor/domain has no modules"
    offenders: dict[str, set[str]] = {}
    for path in files:
        bad = {module for module in _imports(path) if not _allowed(module)}
        if bad:
            offenders[str(path.relative_to(DOMAIN))] = bad
    assert offenders == {}
