"""Imports point down only: notifications may read reviews, lifecycle and accounts, but none of
them imports notifications (they publish domain events that notifications subscribes to)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BELOW_NOTIFICATIONS = ["accounts", "lifecycle", "evidence", "reviews"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_layer_below_notifications_imports_it():
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for app in BELOW_NOTIFICATIONS
        for path in sorted((ROOT / app).rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module == "notifications" or module.startswith("notifications.")
    ]
    assert offenders == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from notifications.services import notify\n")
    assert "notifications.services" in imported_modules(module)
