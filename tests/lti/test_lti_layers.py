"""lti is a top layer: nothing imports it except config (settings and root URLs), and it reads
only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ["accounts", "lifecycle", "evidence", "reviews", "notifications", "grading", "api"]
LTI_MAY_IMPORT = {"accounts", "lifecycle", "evidence", "reviews", "grading"}
PROJECT_APPS = set(APPS) | {"lti", "config"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_other_app_imports_lti():
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for app in APPS
        if (ROOT / app).is_dir()
        for path in sorted((ROOT / app).rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module == "lti" or module.startswith("lti.")
    ]
    assert offenders == []


def test_lti_imports_only_the_layers_below_it():
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "lti").rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module.split(".")[0] in PROJECT_APPS - LTI_MAY_IMPORT - {"lti"}
    ]
    assert offenders == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lti.services import queue_score\n")
    assert "lti.services" in imported_modules(module)
