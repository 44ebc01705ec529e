"""Object store fixtures: one moto S3 server for the session, and a store on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.objects import LocalObjects, ObjectStore, S3Objects
from tests.s3 import MotoS3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """A moto S3 server on loopback for the whole run."""
    server = MotoS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_s3_server() -> Iterator[MotoS3]:
    """A moto S3 server of this test only (the test stops and restarts it)."""
    server = MotoS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """An empty object store: the local folder, then S3 (moto) through the production boto3 code."""
    if request.param == "local":
        return LocalObjects(tmp_path / "objects")
    server: MotoS3 = request.getfixturevalue("s3_server")
    return S3Objects(server.client(), server.new_bucket(), "plant/images")
