"""What the machine offers the tests, and the rule for what is missing: skip locally, fail in
CI (CI must run every suite)."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def require_or_skip(available: bool, what: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but not available.", pytrace=False)
    pytest.skip(f"{what} not available")
