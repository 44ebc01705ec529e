"""Opening a bundle and refusing it whole before anything is written: unsafe member names, symbolic
links, oversized members, a malformed or unknown manifest, a bad or missing signature (when required),
missing or extra files and any byte that does not match the manifest's SHA-256.

The zip is opened with ``core.samples.open_zip`` and its members checked with ``core.samples.check_zip``,
the same checks as every other zip the studio reads.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.bundle.manifest import MANIFEST_NAME, MAX_JSON_BYTES, SIGNATURE_NAME, BundleError, Manifest
from core.bundle.signing import SignatureCheck, trusted_keys, verify
from core.samples import check_zip, open_zip, printable

MAX_MEMBER_BYTES = 2 * 1024**3  # one file of a bundle (a dataset.zip may be large)
MAX_BUNDLE_BYTES = 4 * 1024**3  # every file of a bundle, expanded
CHUNK = 1024**2
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError)


@dataclass
class VerifiedBundle:
    """An open bundle whose every file matched the manifest; reads check each byte again."""

    archive: zipfile.ZipFile
    manifest: Manifest
    manifest_sha256: str
    signature: SignatureCheck | None

    def names(self) -> list[str]:
        return [f.path for f in self.manifest.files]

    def read(self, path: str, limit: int = MAX_JSON_BYTES) -> bytes:
        """A (small) file's bytes, checked against the manifest."""
        if self.manifest.entry(path).size > limit:
            raise BundleError(f"{path} is larger than {limit // 2**20} MB; refused")
        return b"".join(self._chunks(path))

    def extract(self, path: str, target: Path) -> None:
        """Copy a file to ``target`` (which must not exist), checked against the manifest; nothing is left
        at ``target`` when the check fails."""
        with open(target, "xb") as out:
            try:
                for chunk in self._chunks(path):
                    out.write(chunk)
            except BaseException:
                target.unlink(missing_ok=True)
                raise

    def _chunks(self, path: str) -> Iterator[bytes]:
        """The file's bytes; raises after the last chunk when they do not match the manifest."""
        entry = self.manifest.entry(path)
        digest, size = hashlib.sha256(), 0
        for chunk in _member_chunks(self.archive, path, entry.size):
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        if size != entry.size or digest.hexdigest() != entry.sha256:
            raise BundleError(f"{path} changed since the bundle was checked; refused")

    def close(self) -> None:
        self.archive.close()


def _member_chunks(archive: zipfile.ZipFile, name: str, size: int) -> Iterator[bytes]:
    """The member's bytes in chunks, at most one byte past ``size`` (a header may lie)."""
    left = size + 1
    try:
        with archive.open(name) as handle:
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
    except _ZIP_ERRORS as error:
        raise BundleError(f"{printable(name)} cannot be read from the bundle ({error}); refused") from None


def _hash_member(archive: zipfile.ZipFile, name: str, size: int) -> tuple[str, int]:
    digest, read = hashlib.sha256(), 0
    for chunk in _member_chunks(archive, name, size):
        digest.update(chunk)
        read += len(chunk)
    return digest.hexdigest(), read


def open_bundle(source: Path | bytes, name: str, trusted_keys_dir: Path | None = None,
                require_signature: bool = False) -> VerifiedBundle:
    """The bundle at ``source`` (a path or an upload's bytes), every rule checked; BundleError (or
    InvalidInputError from the shared zip checks) with the reason otherwise."""
    archive = open_zip(source, name)
    try:
        return _verified(archive, trusted_keys_dir, require_signature)
    except BaseException:
        archive.close()
        raise


def _verified(archive: zipfile.ZipFile, keys_dir: Path | None, require_signature: bool) -> VerifiedBundle:
    members = check_zip(archive)  # traversal, absolute names, drive letters, symlinks, member count, zip bombs
    every = [info.filename for info in archive.infolist()]
    if len(set(every)) != len(every):
        raise BundleError("the bundle holds a file name twice; refused")
    folders = [info.filename for info in archive.infolist() if info.is_dir()]
    if folders:
        raise BundleError(f"the bundle holds {printable(folders[0])!r}, which is not in its manifest; refused")
    total = sum(m.file_size for m in members)
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"the bundle expands to {total / 2**30:.1f} GB, more than the {MAX_BUNDLE_BYTES / 2**30:g} "
                          "GB accepted; refused")
    sizes = {m.filename: m.file_size for m in members}
    if MANIFEST_NAME not in sizes:
        raise BundleError(f"not a tool bundle: it has no {MANIFEST_NAME}; refused")
    manifest_bytes = _small(archive, MANIFEST_NAME, sizes[MANIFEST_NAME])
    manifest = Manifest.parse(manifest_bytes)
    signature = None
    if SIGNATURE_NAME in sizes:
        signature = verify(manifest_bytes, _small(archive, SIGNATURE_NAME, sizes[SIGNATURE_NAME]),
                           trusted_keys(keys_dir))
    if require_signature and signature is None:
        raise BundleError("the bundle is not signed and this import requires a signature; refused")
    if require_signature and signature is not None and not signature.trusted:
        raise BundleError(f"the bundle is signed by key {signature.fingerprint}, which is not among the trusted "
                          f"keys{'' if keys_dir is None else f' in {keys_dir}'}; refused")
    listed = {f.path for f in manifest.files}
    present = set(sizes) - {MANIFEST_NAME, SIGNATURE_NAME}
    if listed - present:
        raise BundleError(f"{sorted(listed - present)[0]} is listed in the manifest but missing; refused")
    if present - listed:
        raise BundleError(f"{printable(sorted(present - listed)[0])} is not in the manifest; refused")
    for entry in manifest.files:
        if entry.size > MAX_MEMBER_BYTES or sizes[entry.path] > MAX_MEMBER_BYTES:
            raise BundleError(f"{entry.path} is larger than the {MAX_MEMBER_BYTES / 2**20:g} MB accepted for one "
                              "file; refused")
        if sizes[entry.path] != entry.size:
            raise BundleError(f"{entry.path} does not have the size the manifest says; refused")
        digest, size = _hash_member(archive, entry.path, entry.size)
        if size != entry.size or digest != entry.sha256:
            raise BundleError(f"{entry.path} does not match its SHA-256 in the manifest: the bundle was changed or "
                              "damaged; refused")
    return VerifiedBundle(archive, manifest, hashlib.sha256(manifest_bytes).hexdigest(), signature)


def _small(archive: zipfile.ZipFile, name: str, size: int) -> bytes:
    if size > MAX_JSON_BYTES:
        raise BundleError(f"{name} is larger than {MAX_JSON_BYTES // 2**20} MB; refused")
    data = b"".join(_member_chunks(archive, name, MAX_JSON_BYTES))
    if len(data) > MAX_JSON_BYTES:
        raise BundleError(f"{name} is larger than {MAX_JSON_BYTES // 2**20} MB; refused")
    return data

