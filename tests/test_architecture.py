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
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_only_stdlib_without_io() -> None:
    offenders: dict[str, set[str]] = {}
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "monitor/domain has no modules"
    for path in files:
        imported = _imports(path)
        bad = {
            name
            for name in imported
            if name == "monitor"
            or (name not in sys.stdlib_module_names and name != "__future__")
            or name in IO_MODULES
        }
        # The domain may import itself (monitor.domain.*), nothing else of the project.
        if "monitor" in bad:
            source = path.read_text()
            if "from monitor." in source or "import monitor." in source:
                outside = [
                    line
                    for line in source.splitlines()
                    if line.lstrip().startswith(("from monitor.", "import monitor."))
                    and not line.lstrip().startswith(
                        ("from monitor.domain", "import monitor.domain")
                    )
                ]
                if not outside:
                    bad.discard("monitor")
        if bad:
            offenders[str(path.relative_to(DOMAIN))] = bad
    assert offenders == {}
