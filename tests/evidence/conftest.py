from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def evidence_root(settings, tmp_path):
    """Each test's evidence files in a folder of its own."""
    root = tmp_path / "evidence"
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            "BACKEND": "evidence.storage.AtomicFileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root
