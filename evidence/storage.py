"""Where evidence bytes live: Django's storage API under the ``evidence`` alias.

Embedded default: files under ``var/evidence/``; production: S3-compatible object storage
(MinIO in docker-compose) through django-storages, configured from the environment (see
config/settings/base.py). Objects are named by the SHA-256 of their bytes, written whole or not
at all, and never changed or deleted by the application.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage, storages


class StorageUnavailable(Exception):
    """The storage backend did not take the file (a MinIO outage, a full disk)."""


class AtomicFileSystemStorage(FileSystemStorage):
    """A file system storage that never leaves half a file under a final name: the bytes go
    to a temporary file in the same folder, then one rename publishes them. Names are content
    hashes, so writing an existing name again writes the same bytes."""

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return name

    def _save(self, name: str, content: File) -> str:
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in content.chunks():
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if self.file_permissions_mode is not None:
                os.chmod(temporary, self.file_permissions_mode)
            os.replace(temporary, full_path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return name


def evidence_storage() -> Storage:
    return storages["evidence"]


def blob_name(sha256: str, suffix: str = "") -> str:
    return f"sha256/{sha256[:2]}/{sha256}{suffix}"


def _storage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - botocore comes with django-storages[s3]
        pass
    return tuple(errors)


def write_object(name: str, data: bytes) -> None:
    try:
        evidence_storage().save(name, ContentFile(data))
    except _storage_errors() as error:
        raise StorageUnavailable(str(error)) from error


def open_object(name: str) -> Any:
    try:
        return evidence_storage().open(name, "rb")
    except _storage_errors() as error:
        raise StorageUnavailable(str(error)) from error
