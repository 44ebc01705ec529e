"""One storage interface for images, thumbnails, maps and model artifacts (see :mod:`storage.objects.base`).

Backends: the local data folder (:class:`LocalObjects`, the default) and S3-compatible storage
(:class:`S3Objects`, ``STUDIO_OBJECT_STORE=s3://bucket/prefix``) behind a local spool
(:class:`SpooledObjects`). :func:`open_objects` picks one from the settings.
"""

from storage.objects.base import (
    ObjectIntegrityError,
    ObjectMissingError,
    ObjectStore,
    ObjectStoreUnavailableError,
    digest,
    key_for,
    sha256_of_key,
)
from storage.objects.local import LocalObjects
from storage.objects.open import open_objects, parse_store_url
from storage.objects.s3 import S3Objects
from storage.objects.spool import SpooledObjects

__all__ = ["LocalObjects", "ObjectIntegrityError", "ObjectMissingError", "ObjectStore",
           "ObjectStoreUnavailableError", "S3Objects", "SpooledObjects", "digest", "key_for",
           "open_objects", "parse_store_url", "sha256_of_key"]
