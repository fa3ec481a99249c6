"""An upload cut off halfway leaves nothing under its name: the disk storage writes a temporary
file and publishes it with one rename; a write that fails midway removes the temporary file."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile, File

from evidence.storage import AtomicFileSystemStorage, blob_name


class CutOff(File):
    """A file whose stream breaks after its first chunk (a client that went away)."""

    def __init__(self):
        super().__init__(None, name="upload")

    def chunks(self, chunk_size=None):
        yield b"first half of the bytes"
        raise ConnectionResetError("the client went away")


def test_a_write_cut_off_midway_leaves_no_file(tmp_path):
    storage = AtomicFileSystemStorage(location=str(tmp_path))
    name = blob_name("ab" * 32)
    with pytest.raises(ConnectionResetError):
        storage.save(name, CutOff())
    assert not storage.exists(name)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_complete_write_is_published_under_its_name(tmp_path):
    storage = AtomicFileSystemStorage(location=str(tmp_path))
    name = blob_name("cd" * 32)
    assert storage.save(name, ContentFile(b"all of it")) == name
    assert storage.open(name).read() == b"all of it"
    # The same name again (the same bytes, content-addressed) keeps the name.
    assert storage.save(name, ContentFile(b"all of it")) == name
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["cd" * 32]
