"""The object store interface on the local folder and on S3 (a real moto server, the production boto3 code)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.objects import (
    LocalObjects,
    ObjectIntegrityError,
    ObjectMissingError,
    ObjectStore,
    ObjectStoreUnavailableError,
    S3Objects,
    SpooledObjects,
    digest,
    key_for,
)
from storage.objects.s3 import make_client
from tests.s3 import MotoS3, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _tamper(store: ObjectStore, key: str, data: bytes) -> None:
    """Replace an object's bytes behind the interface's back (disk rot, a hand edit in the bucket)."""
    if isinstance(store, LocalObjects):
        store.path(key).write_bytes(data)
    else:
        assert isinstance(store, S3Objects)
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=data)


def test_put_get_exists_delete_and_keys(objects: ObjectStore) -> None:
    key = objects.put(b"a crop", "png")
    assert key == key_for(digest(b"a crop"), "png")
    assert objects.put(b"a crop", "png") == key  # content-addressed: stored once
    other = objects.put(b"a map", "png")
    assert objects.get(key) == b"a crop" and objects.exists(key)
    assert sorted(objects.keys()) == sorted([key, other])
    assert objects.modified_at(key) is not None
    objects.delete(key)
    assert not objects.exists(key) and list(objects.keys()) == [other]
    with pytest.raises(ObjectMissingError):
        objects.get(key)
    assert objects.modified_at(key) is None


def test_a_damaged_object_is_refused_on_read(objects: ObjectStore) -> None:
    key = objects.put(b"the real bytes", "png")
    _tamper(objects, key, b"other bytes")
    with pytest.raises(ObjectIntegrityError, match="damaged"):
        objects.get(key)


def test_keys_must_be_content_addressed(objects: ObjectStore) -> None:
    with pytest.raises(ValueError):
        objects.put_key("../../etc/passwd", b"x")
    with pytest.raises(ValueError):
        objects.put_key(key_for(digest(b"x"), "png").replace("/", "/x", 1), b"x")


def test_no_half_written_object_is_visible(objects: ObjectStore) -> None:
    data = b"x" * 200_000
    key = key_for(digest(data), "bin")

    class BrokenBody:
        """A body whose reader fails half-way, like a writer killed mid-upload."""

        def __init__(self) -> None:
            self.sent = 0

        def read(self, size: int = -1) -> bytes:
            if self.sent >= len(data) // 2:
                raise OSError("writer died")
            chunk = data[self.sent:self.sent + min(size if size > 0 else 65536, 65536)]
            self.sent += len(chunk)
            return chunk

    if isinstance(objects, LocalObjects):  # a writer killed between temp file and rename
        target = objects.path(key)
        target.parent.mkdir(parents=True)
        (target.parent / ".tmp-999999-x.part").write_bytes(data[:1000])
    else:
        assert isinstance(objects, S3Objects)
        with pytest.raises(Exception):  # noqa: B017 (whatever botocore raises for a body that fails)
            objects.client.put_object(Bucket=objects.bucket, Key=objects.prefix + key, Body=BrokenBody(),
                                      ContentLength=len(data))
    assert not objects.exists(key) and list(objects.keys()) == []
    with pytest.raises(ObjectMissingError):
        objects.get(key)


def test_an_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    from storage.objects.s3 import make_client
    from tests.s3 import free_port

    store = S3Objects(make_client(f"http://127.0.0.1:{free_port()}"), "nowhere")
    with pytest.raises(ObjectStoreUnavailableError) as raised:
        store.put(b"x")
    assert "unreachable" in str(raised.value) and "secret" not in str(raised.value).lower()


def _spooled(server: MotoS3, bucket: str, spool: Path) -> SpooledObjects:
    return SpooledObjects(S3Objects(server.client(), bucket, "p"), LocalObjects(spool))


class _CountedListings(LocalObjects):
    """A spool folder that counts how often it is listed."""

    listings = 0

    def keys(self) -> Iterator[str]:
        self.listings += 1
        return super().keys()


def test_the_uploader_lists_the_spool_folder_once_not_per_upload(own_s3_server: MotoS3, tmp_path: Path) -> None:
    """A station writes behind all day: the content-addressed ``ab/cd`` folders its spool ever had stay, so the
    uploader works from the objects it knows are waiting; it lists the folder once, for an earlier run's leftovers."""
    bucket = own_s3_server.new_bucket()
    LocalObjects(tmp_path / "spool").put(b"left by a process that was killed")
    spool = _CountedListings(tmp_path / "spool")
    store = SpooledObjects(S3Objects(own_s3_server.client(), bucket, "p"), spool, write_behind=True)
    keys = [store.put(f"part {i}".encode(), "png") for i in range(30)]
    assert wait_until(lambda: store.pending() == 0 and store.upload_spooled() == 0)
    assert len(set(S3Objects(own_s3_server.client(), bucket, "p").keys())) == 31 and set(keys) <= set(store.keys())
    assert spool.listings == 2  # the replay, and store.keys() just now
    store.stop()


@pytest.mark.slow
def test_store_down_writes_spool_reads_work_and_the_spool_drains(own_s3_server: MotoS3, tmp_path: Path) -> None:
    bucket = own_s3_server.new_bucket()
    store = _spooled(own_s3_server, bucket, tmp_path / "spool")
    direct = store.put(b"before the outage")
    assert store.pending() == 0 and store.remote.exists(direct)
    own_s3_server.stop()
    keys = [store.put(f"during the outage {i}".encode(), "png") for i in range(20)]
    assert store.pending() == 20 and store.last_error is not None
    assert [store.get(k) for k in keys] == [f"during the outage {i}".encode() for i in range(20)]
    assert all(store.exists(k) for k in keys)
    own_s3_server.start()
    assert wait_until(lambda: store.pending() == 0)  # the background uploader, with its backoff
    fresh = S3Objects(own_s3_server.client(), bucket, "p")
    assert sorted(fresh.keys()) == sorted([direct, *keys])
    assert [fresh.get(k) for k in keys] == [f"during the outage {i}".encode() for i in range(20)]
    assert list(store.spool.keys()) == []
    after = store.put(b"after the outage")  # the store answers again: written straight to it
    assert store.pending() == 0 and fresh.exists(after)
    store.stop()


def test_written_behind_objects_never_wait_on_a_hung_store_and_upload_when_it_answers(
        own_s3_server: MotoS3, tmp_path: Path) -> None:
    """A station's images are written behind: a store that accepts connections but never answers (the
    slow case, not the refused one) does not hold up ``put``; a store that answers gets every object."""
    with socket.socket() as hung:  # listens, never accepts: a PUT waits for the client's read timeout
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        store = SpooledObjects(S3Objects(make_client(f"http://127.0.0.1:{hung.getsockname()[1]}"), "b", "p"),
                               LocalObjects(tmp_path / "hung-spool"), write_behind=True)
        started = time.monotonic()
        keys = [store.put(f"part {i}".encode(), "png") for i in range(5)]
        assert time.monotonic() - started < 5.0  # the direct path waits 10 s (read timeout) on the first PUT
        assert store.pending() == 5 and [store.get(k) for k in keys] == [f"part {i}".encode() for i in range(5)]
        store.stop(timeout=0)
    bucket = own_s3_server.new_bucket()
    store = SpooledObjects(S3Objects(own_s3_server.client(), bucket, "p"), LocalObjects(tmp_path / "spool"),
                           write_behind=True)
    keys = [store.put(f"part {i}".encode(), "png") for i in range(50)]
    assert wait_until(lambda: store.pending() == 0)
    assert sorted(S3Objects(own_s3_server.client(), bucket, "p").keys()) == sorted(keys)
    assert list(store.spool.keys()) == [] and store.last_error is None
    store.stop()


@pytest.mark.slow
def test_a_process_killed_mid_upload_loses_nothing(own_s3_server: MotoS3, tmp_path: Path) -> None:
    """A writer spools while the store is down and is killed -9; the next start uploads everything."""
    bucket = own_s3_server.new_bucket()
    own_s3_server.stop()
    spool = tmp_path / "spool"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from storage.objects import LocalObjects, S3Objects, SpooledObjects
        from storage.objects.s3 import make_client
        store = SpooledObjects(S3Objects(make_client({own_s3_server.endpoint!r}), {bucket!r}, "p"),
                               LocalObjects(Path({str(spool)!r})))
        for i in range(1000000):
            store.put(f"object {{i}}".encode() * 100)
            if i == 50:
                print("spooling", flush=True)
        """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "spooling"
    finally:
        writer.kill()  # SIGKILL, mid-write of some object
        writer.wait(30)
    spooled = list(LocalObjects(spool).keys())  # before a store opens on it: its uploader starts at once
    assert len(spooled) >= 51
    own_s3_server.start()
    store = _spooled(own_s3_server, bucket, spool)
    assert store.drain(120)
    remote = S3Objects(own_s3_server.client(), bucket, "p")
    assert set(spooled) <= set(remote.keys())
    for key in spooled:
        assert digest(remote.get(key)) in key  # complete and intact
    store.stop()
