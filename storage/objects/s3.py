"""Objects in S3-compatible storage (AWS S3, MinIO) through ``boto3``; a PUT is atomic on S3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.objects.base import (
    ObjectMissingError,
    ObjectStore,
    ObjectStoreUnavailableError,
    sha256_of_key,
    verified,
)

MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def make_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client: endpoint from the argument (or ``AWS_ENDPOINT_URL``), credentials and region
    from the usual AWS variables; short timeouts and one attempt (the spool does the retrying)."""
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1, "mode": "standard"},
                    s3={"addressing_style": "path"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


def _unavailable(error: Exception) -> ObjectStoreUnavailableError:
    return ObjectStoreUnavailableError(f"the object store is unreachable: {type(error).__name__}")


class S3Objects(ObjectStore):
    """Content-addressed objects under ``s3://bucket/prefix/<namespace>/``."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _name(self, key: str) -> str:
        sha256_of_key(key)
        return self.prefix + key

    def put_key(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error

    def get(self, key: str) -> bytes:
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in MISSING_CODES:
                raise ObjectMissingError(f"object {key} is missing in the object store") from error
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        return verified(key, data)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in MISSING_CODES:
                return None
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error

    def keys(self) -> Iterator[str]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix):]
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error

    def modified_at(self, key: str) -> datetime | None:
        head = self._head(key)
        return None if head is None else head["LastModified"]

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"
