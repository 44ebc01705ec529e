"""Which object store a studio uses: ``STUDIO_OBJECT_STORE`` (unset: the local data folder)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlparse

from storage.objects.base import ObjectStore
from storage.objects.local import LocalObjects

_OPEN: dict[tuple[str, str, str], ObjectStore] = {}
_OPEN_LOCK = threading.Lock()


def parse_store_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``; ValueError for another form."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"STUDIO_OBJECT_STORE must look like s3://bucket/prefix, not {url!r}")
    return parsed.netloc, parsed.path.strip("/")


def open_objects(store_url: str | None, data_dir: Path, namespace: str) -> ObjectStore:
    """The store of ``namespace`` ("images", "thumbnails", "artifacts"): the folder
    ``<data_dir>/<namespace>`` without ``store_url``; otherwise S3 behind the spool
    ``<data_dir>/spool/<namespace>`` (one per process and namespace, so one uploader each). Images and
    thumbnails are written behind (an inspection never waits on the store); artifacts are uploaded
    before ``put`` returns while the store answers (a promotion is announced after its artifact)."""
    if not store_url:
        return LocalObjects(Path(data_dir) / namespace)
    ident = (store_url, str(Path(data_dir).resolve()), namespace)
    with _OPEN_LOCK:
        if ident not in _OPEN:
            from storage.objects.s3 import S3Objects, make_client
            from storage.objects.spool import SpooledObjects

            bucket, prefix = parse_store_url(store_url)
            endpoint = os.environ.get("STUDIO_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
            remote = S3Objects(make_client(endpoint), bucket, f"{prefix}/{namespace}" if prefix else namespace)
            _OPEN[ident] = SpooledObjects(remote, LocalObjects(Path(data_dir) / "spool" / namespace),
                                          write_behind=namespace != "artifacts")
        return _OPEN[ident]
