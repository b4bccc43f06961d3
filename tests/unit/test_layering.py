"""Import layering: the ACME package stands on its own."""

from __future__ import annotations

import ast
from pathlib import Path

ACME_STORE = Path(__file__).resolve().parents[2] / "acme_store"


def test_acme_store_never_imports_daemon() -> None:
    """No module of ``acme_store`` imports ``daemon`` (the daemon depends on it, not back)."""
    offenders = []
    for module in sorted(ACME_STORE.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            offenders += [f"{module.name}: {n}" for n in names if n.split(".")[0] == "daemon"]
    assert list(ACME_STORE.glob("*.py")), "the package must be found for this test to mean much"
    assert offenders == []
