"""The one signature check of the key directory: Ed25519 over the identity key.

A device signs its signed prekey (and its post-quantum last-resort key) with its identity key;
the server checks the signature before storing the key, so a directory that hands out a key
also vouches that the key's owner made it (a forged or corrupted one would otherwise make
every session with the device fail, or worse, be someone else's).

The scheme, fixed for every client: the identity key is a 32-byte **Ed25519** public key
(RFC 8032), the signature a 64-byte Ed25519 signature, and what is signed is
:func:`signed_prekey_message` of the prekey: the byte ``0x05`` (Signal's type byte for a
Curve25519 key) followed by the 32-byte X25519 public key; a KEM key is signed as given.
Signal's own clients sign with XEdDSA on a Curve25519 identity key; an XEdDSA signature is an
Ed25519 signature under the identity key's Edwards form, which is what a client publishes
here (the ``x3dh`` package's ``IdentityKeyFormat.ED_25519``). The check itself is the
``cryptography`` package's: no curve arithmetic is written here.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["CURVE25519_TYPE", "signed_prekey_message", "verify"]

#: The type byte before an X25519 public key in what is signed (as Signal serializes keys).
CURVE25519_TYPE: Final = b"\x05"


def signed_prekey_message(public_key: bytes) -> bytes:
    """What a signed prekey's signature covers: ``0x05 || public_key``."""
    return CURVE25519_TYPE + public_key


def verify(identity_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``identity_key``'s Ed25519 signature of ``message``.

    A key that is not a valid Ed25519 point counts as a failed check, not an error.
    """
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
