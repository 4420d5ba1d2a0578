"""Encryption at rest for credentials kept in the database (Cloudflare tokens and
legacy keys of team accounts).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) behind a MultiFernet:
the first key of ``INFERENCE["ENCRYPTION_KEYS"]`` encrypts, every key decrypts,
so a new key can be put in front, values re-encrypted
(``manage.py inference_rotate_credentials`` or the admin action), and the old
key dropped afterwards.

When ``ENCRYPTION_KEYS`` is empty the keys are derived from ``SECRET_KEY`` and
then ``SECRET_KEY_FALLBACKS`` — Django's own rotation list — so a site that
rotates its SECRET_KEY the Django way keeps reading its credentials.  A dedicated
key is still better: rotating SECRET_KEY then never touches stored credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from .conf import inference_settings
from .exceptions import DecryptionError, InferenceConfigurationError

__all__ = ["DecryptionError", "decrypt", "encrypt", "generate_key", "needs_rotation", "rotate"]

# Domain separation: the derived key is not usable as anything else of Django's.
_DERIVATION_SALT = b"cfai.inference.crypto.v1:"


def generate_key() -> str:
    """A fresh key for ``INFERENCE["ENCRYPTION_KEYS"]``."""
    return Fernet.generate_key().decode()


def _as_fernet_key(value: str | bytes) -> bytes:
    """A configured key: a Fernet key as is, any other string derived (SHA-256)."""
    raw = value.encode() if isinstance(value, str) else value
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except (binascii.Error, ValueError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(_DERIVATION_SALT + raw).digest())


def _configured_keys() -> tuple[bytes, ...]:
    keys = inference_settings.ENCRYPTION_KEYS
    if isinstance(keys, str | bytes):
        keys = [keys]
    if not keys:
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = [k for k in keys if k]
    if not keys:
        raise InferenceConfigurationError(
            "No encryption key: set INFERENCE['ENCRYPTION_KEYS'] (or SECRET_KEY)."
        )
    return tuple(_as_fernet_key(k) for k in keys)


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def _fernet() -> MultiFernet:
    # Keys are read at use time, so override_settings and rotation take effect at once.
    return _multifernet(_configured_keys())


def encrypt(plaintext: str) -> str:
    """Encrypt with the first configured key; '' stays '' (no credential)."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "A stored credential cannot be decrypted with any key in "
            "INFERENCE['ENCRYPTION_KEYS'] (or SECRET_KEY / SECRET_KEY_FALLBACKS): "
            "put back the key it was encrypted with, or re-enter the credential."
        ) from exc


def needs_rotation(ciphertext: str) -> bool:
    """True when the value was not encrypted with the current (first) key."""
    if not ciphertext:
        return False
    current = Fernet(_configured_keys()[0])
    try:
        current.decrypt(ciphertext.encode())
    except InvalidToken:
        return True
    return False


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the first key (MultiFernet.rotate: decrypt with any)."""
    if not ciphertext:
        return ""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "Cannot rotate a credential no configured key decrypts: "
            "add the old key to INFERENCE['ENCRYPTION_KEYS'] (after the new one)."
        ) from exc
