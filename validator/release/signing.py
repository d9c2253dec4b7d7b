"""Ed25519 keys and the bundle's ``SIGNATURE`` (RFC 8032 via the ``cryptography`` package).

- :func:`keygen` writes ``KEY`` (the private key, PKCS#8 PEM, unencrypted) with mode 0600 from
  its creation on (``os.open`` with ``O_CREAT | O_EXCL``: never briefly readable by others,
  never over an existing file) and ``KEY.pub`` (SubjectPublicKeyInfo PEM, 0644).
- The private key is loaded only to sign; a key file that others may read (any ``o`` bit) is
  refused. Its bytes are never printed, logged or put in an error message.
- ``SIGNATURE`` is a short text file: the format line, the algorithm, the signer's public key
  (raw 32 bytes, base64), its key id (first 16 hex digits of its sha256) and the signature
  (base64) over the **exact bytes of manifest.json**, which lists every other file's sha256.
  The embedded public key lets ``verify`` check integrity without a key; only
  ``--public-key`` (a key obtained from the releaser by another channel) proves who signed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError

SIGNATURE_FORMAT = "dermsynth-release-signature 1"
ALGORITHM = "ed25519"


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _raw(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keygen(path: Path) -> tuple[Path, Path, str]:
    """Make a key pair: ``path`` (private, 0600) and ``path.pub``; returns both and the key id.
    Refuses (UserError) to overwrite either file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    public_path = path.with_name(path.name + ".pub")
    for p in (path, public_path):
        if p.exists() or p.is_symlink():
            raise UserError(f"{p} exists: keygen never overwrites a key; choose another --out")
    if not path.parent.is_dir():
        raise UserError(f"--out {path}: folder {path.parent} does not exist")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UserError(f"--out {path}: cannot create the key file ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)  # whatever the umask
        fh.write(private_pem)
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(public_pem)
    return path, public_path, key_id(_raw(key.public_key()))


def load_private(path: Path):
    """The Ed25519 private key in ``path``; UserError (never quoting the file) when it is
    missing, readable by others, or not an unencrypted Ed25519 PEM key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--key {path}: cannot read the private key ({exc.strerror})") from None
    if mode & 0o007:
        raise UserError(
            f"--key {path}: the private key is accessible to other users (mode "
            f"{mode & 0o777:04o}); run `chmod 600 {path}`"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # never echo what it read
        raise UserError(
            f"--key {path}: not an unencrypted PEM private key (make one with "
            "`python -m validator keygen`)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"--key {path}: not an Ed25519 key (`python -m validator keygen`)")
    return key


def load_public(path: Path):
    """The Ed25519 public key in ``path`` (PEM, as keygen writes ``KEY.pub``); UserError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise UserError(f"--public-key {path}: cannot read it ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise UserError(f"--public-key {path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"--public-key {path}: not an Ed25519 public key")
    return key


def signature_file(private_key, manifest_bytes: bytes) -> bytes:
    """The ``SIGNATURE`` file for ``manifest_bytes``."""
    public_raw = _raw(private_key.public_key())
    signature = private_key.sign(manifest_bytes)
    lines = [
        SIGNATURE_FORMAT,
        f"algorithm: {ALGORITHM}",
        f"public-key: {base64.b64encode(public_raw).decode()}",
        f"key-id: {key_id(public_raw)}",
        f"signature: {base64.b64encode(signature).decode()}",
        "signed: the exact bytes of manifest.json",
    ]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    key_id: str | None
    problem: str | None = None


def check_signature(
    signature_bytes: bytes, manifest_bytes: bytes, public_key=None
) -> SignatureCheck:
    """Does ``SIGNATURE`` sign ``manifest_bytes``, with ``public_key`` when given (else with
    the key it names)?"""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        text = signature_bytes.decode("ascii")
        lines = text.splitlines()
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        if lines[0] != SIGNATURE_FORMAT or fields.get("algorithm") != ALGORITHM:
            raise ValueError
        embedded = base64.b64decode(fields["public-key"], validate=True)
        signature = base64.b64decode(fields["signature"], validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        return SignatureCheck(False, None, "SIGNATURE is not a dermsynth release signature")
    try:
        embedded_key = Ed25519PublicKey.from_public_bytes(embedded)
    except ValueError:
        return SignatureCheck(False, None, "SIGNATURE holds no valid Ed25519 public key")
    signer = key_id(embedded)
    if public_key is not None and _raw(public_key) != embedded:
        return SignatureCheck(
            False,
            signer,
            f"SIGNATURE was made with key {signer}, not with the given public key "
            f"{key_id(_raw(public_key))}",
        )
    try:
        (public_key or embedded_key).verify(signature, manifest_bytes)
    except InvalidSignature:
        return SignatureCheck(
            False, signer, "SIGNATURE does not match manifest.json (manifest or signature edited)"
        )
    return SignatureCheck(True, signer)
