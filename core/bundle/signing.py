"""Ed25519 keys and signatures over a bundle's ``manifest.json`` (the ``cryptography`` package).

A key pair is two PEM files: ``NAME.key`` (private, PKCS #8, file mode 0600, never printed) and
``NAME.pub`` (public). A station trusts the ``*.pub`` files in its trusted-keys folder
(``--trusted-keys DIR``, else ``STUDIO_TRUSTED_KEYS``, else ``<data folder>/trusted-keys``).
``manifest.sig`` is JSON: the algorithm, the signer's public key and the signature, both base64. The
signature must match the manifest whatever the key (else the bundle was changed); whether the key is
trusted decides when a signature is required (``--require-signature`` or ``STUDIO_REQUIRE_SIGNED_BUNDLES=1``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.bundle.manifest import SIGNATURE_NAME, BundleError
from core.studio import Studio
from core.tools import NAME_PATTERN

ALGORITHM = "ed25519"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(key.public_bytes(*_RAW)).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path
    fingerprint: str

    def as_dict(self) -> dict[str, str]:
        return {"private_key": str(self.private_key), "public_key": str(self.public_key),
                "fingerprint": self.fingerprint}


def generate_key_pair(folder: Path, name: str) -> KeyPair:
    """Write ``NAME.key`` (mode 0600) and ``NAME.pub`` in ``folder``; an existing file is never replaced."""
    if not NAME_PATTERN.match(name):
        raise BundleError(f"key name {name!r}: use a-z, 0-9, '-' and '_'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise BundleError(f"{path} exists already; choose another name (a key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(private_path, public_path, fingerprint(key.public_key()))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path`` (BundleError without the key's content otherwise)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as error:
        raise BundleError(f"cannot read the signing key {path}: {error.strerror or error}") from None
    except (ValueError, TypeError):
        raise BundleError(f"{path} is not an unencrypted PEM private key (make one with 'python -m core keys "
                          "generate')") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 key")
    return key


def sign(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    """The ``manifest.sig`` of ``manifest``."""
    return json.dumps({"algorithm": ALGORITHM,
                       "public_key": base64.b64encode(key.public_key().public_bytes(*_RAW)).decode(),
                       "signature": base64.b64encode(key.sign(manifest)).decode()}, indent=1).encode()


def trusted_keys(folder: Path | None) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 public keys (``*.pub``, PEM) in ``folder`` by fingerprint; a file that is not one is an error."""
    if folder is None or not Path(folder).is_dir():
        return {}
    keys = {}
    for path in sorted(Path(folder).glob("*.pub")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as error:
            raise BundleError(f"trusted key {path} cannot be read ({error})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BundleError(f"trusted key {path} is not an Ed25519 public key")
        keys[fingerprint(key)] = key
    return keys


def default_trusted_keys_dir(studio: Studio) -> Path:
    """``STUDIO_TRUSTED_KEYS``, else ``<data folder>/trusted-keys``."""
    return Path(os.environ.get("STUDIO_TRUSTED_KEYS") or studio.settings.data_dir / "trusted-keys")


def signature_required_by_default() -> bool:
    """Whether this studio refuses unsigned bundles (``STUDIO_REQUIRE_SIGNED_BUNDLES=1``)."""
    return os.environ.get("STUDIO_REQUIRE_SIGNED_BUNDLES", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SignatureCheck:
    """A signature that matches the manifest: by which key, and whether this station trusts it."""

    fingerprint: str
    trusted: bool

    def describe(self) -> str:
        return f"signed by key {self.fingerprint} ({'trusted' if self.trusted else 'not a trusted key'})"


def verify(manifest: bytes, signature_file: bytes, trusted: dict[str, Ed25519PublicKey]) -> SignatureCheck:
    """Check ``manifest.sig`` against the manifest's bytes; BundleError when it is malformed or does not match."""
    try:
        raw = json.loads(signature_file.decode("utf-8"))
        if not isinstance(raw, dict) or raw.get("algorithm") != ALGORITHM:
            raise ValueError(f"not an {ALGORITHM} signature")
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(raw["public_key"], validate=True))
        signature = base64.b64decode(raw["signature"], validate=True)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as error:
        raise BundleError(f"{SIGNATURE_NAME} is malformed ({error}); refused") from None
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        raise BundleError(f"the signature in {SIGNATURE_NAME} does not match the manifest: the bundle was changed "
                          "after it was signed; refused") from None
    found = fingerprint(key)
    return SignatureCheck(found, found in trusted)
