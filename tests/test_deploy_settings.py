"""The deployment surface: production settings pass `check --deploy`, refuse to start without a
secret, the models have no unwritten migrations, and docker-compose.yml parses.

Each check runs `manage.py` in a fresh interpreter, because settings are read once per process
and the suite itself runs on config.settings.test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # var/ is redirected so that a check never creates or touches the developer's database.
    env = {**env, "LRB_VAR_DIR": str(tmp_path / "var"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Inherited from the test process (config.settings.test sets DJANGO_ALLOW_ASYNC_UNSAFE for the
# live server) or from a developer's shell; production must be judged on its own defaults.
NOT_INHERITED = {
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "DATABASE_URL",
    "CACHE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
}


def production_env(**overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    env.update(overrides)
    return env


def test_production_settings_pass_the_deploy_check_without_warnings(tmp_path: Path) -> None:
    env = production_env(SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="example.org")

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output
    assert "?: (security" not in output


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = production_env(ALLOWED_HOSTS="example.org")

    result = run_manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


PRINT_CACHE = (
    "from django.conf import settings; "
    "c = settings.CACHES['default']; print(c['BACKEND'], c['LOCATION'])"
)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"CELERY_BROKER_URL": "redis://redis:6379/0"}, "RedisCache redis://redis:6379/0"),
        (
            {"CELERY_BROKER_URL": "redis://redis:6379/0", "CACHE_URL": "redis://cache:6379/1"},
            "RedisCache redis://cache:6379/1",
        ),
        ({"REDIS_URL": "redis://redis:6379/2"}, "RedisCache redis://redis:6379/2"),
        ({}, "FileBasedCache"),
    ],
)
def test_production_shares_its_cache_between_processes_in_redis(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    # Sign-up limits count in the cache: a per-process cache would count per process.
    env = production_env(SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="example.org", **extra)

    result = run_manage("shell", "--no-imports", "-c", PRINT_CACHE, env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    backend, location = result.stdout.split()
    assert f"{backend.rsplit('.', 1)[-1]} {location}".startswith(expected)
    if not extra:  # the embedded default: files under var/, which every local process shares
        assert location == str(tmp_path / "var" / "cache")


def test_every_model_change_has_a_migration(tmp_path: Path) -> None:
    # A throwaway SQLite file: the migration-history consistency check opens the database, and it
    # must not be the developer's or the PostgreSQL run's.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'makemigrations.sqlite3'}",
    }

    result = run_manage("makemigrations", "--check", "--dry-run", env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_file_parses() -> None:
    try:
        import yaml
    except ImportError:
        yaml = None  # type: ignore[assignment]

    if yaml is not None:
        compose = yaml.safe_load(COMPOSE_FILE.read_text())
        assert {"web", "migrate", "worker", "beat", "postgres", "redis"} <= set(compose["services"])
        return

    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs PyYAML or docker-compose to check docker-compose.yml")
        pytest.skip("neither PyYAML nor docker-compose is installed")

    env = {
        **os.environ,
        "SECRET_KEY": "compose-config-check-only-not-a-real-secret",
        "POSTGRES_PASSWORD": "compose-config-check-only",
        "APP_DB_PASSWORD": "compose-config-check-only",
        "AUDIT_SIGNING_KEY": "compose-config-check-only",
    }
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
