"""Production renders templates through Django's cached loader: each template is parsed once per
process, not once per request (a board page includes hundreds of nodes)."""

from __future__ import annotations

import secrets
from pathlib import Path

from test_deploy_settings import production_env, run_manage

SHOW_LOADERS = (
    "from django.template import engines; "
    "print([loader.__class__.__module__ + '.' + loader.__class__.__name__ "
    "for loader in engines['django'].engine.template_loaders])"
)


def test_production_parses_each_template_once_through_the_cached_loader(tmp_path: Path) -> None:
    env = production_env(SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="example.org")

    result = run_manage("shell", "-c", SHOW_LOADERS, env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['django.template.loaders.cached.Loader']"
