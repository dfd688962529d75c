"""The store's Ed25519 signing key, and signing / checking the packet manifest.

The key pair is created on first use under ``<store>/keys/`` (private key mode 0600, never
leaves the store); the public key travels in every packet. A packet is self-consistent when its
signature checks with the public key inside it; it is *trusted* when that key's fingerprint is the
one the issuing office published (``jianfu verify --pubkey``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_DIR = "keys"
PRIVATE_NAME = "evidence-ed25519.pem"
PUBLIC_NAME = "evidence-ed25519.pub.pem"


class SigningError(RuntimeError):
    pass


def load_or_create_key(store_dir: str | Path) -> tuple[Ed25519PrivateKey, bool]:
    """The store's private key; creates it (0600) on first use. Returns (key, created)."""
    keys = Path(store_dir) / KEY_DIR
    private = keys / PRIVATE_NAME
    if private.exists():
        mode = private.stat().st_mode & 0o777
        if mode & 0o077:
            raise SigningError(f"signing key {private} is readable by others (mode {mode:o}); "
                               f"run chmod 600 {private}")
        try:
            key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        except (ValueError, TypeError) as e:
            raise SigningError(f"cannot read signing key {private}: {e}") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"signing key {private} is not an Ed25519 key")
        return key, False
    keys.mkdir(parents=True, exist_ok=True)
    os.chmod(keys, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (keys / PUBLIC_NAME).write_bytes(public_pem(key.public_key()))
    return key, True


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: Ed25519PublicKey) -> str:
    """The full SHA-256 of the raw 32-byte public key, hex, in 16 groups of 4 for reading aloud."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    h = hashlib.sha256(raw).hexdigest()
    return ":".join(h[i:i + 4] for i in range(0, len(h), 4))


def legacy_fingerprint(fp: str) -> str:
    """The form packets made before the full fingerprint named their key in: its first 128 bits."""
    return fp[:39]


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise SigningError(f"public key is not a valid PEM key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError("public key is not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """Detached signature file content: base64 of the 64-byte Ed25519 signature, one line."""
    return base64.b64encode(key.sign(data)) + b"\n"


def check(public: Ed25519PublicKey, data: bytes, signature_file: bytes) -> bool:
    try:
        sig = base64.b64decode(signature_file.strip(), validate=True)
    except ValueError:
        return False
    if len(sig) != 64:
        return False
    try:
        public.verify(sig, data)
    except InvalidSignature:
        return False
    return True
