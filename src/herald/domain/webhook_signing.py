"""Standard Webhooks signatures (https://www.standardwebhooks.com), no I/O.

A secret is ``whsec_`` + base64 of the key bytes. Each request carries ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: one ``v1,<base64 of
HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`` per secret, space-separated, so receivers
keep verifying while a secret is rotated.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

PREFIX = "whsec_"
#: 24 random bytes, as the spec's reference libraries generate (it asks for 24 to 64).
_KEY_BYTES = 24


def generate_secret() -> str:
    """A new ``whsec_`` secret."""
    return PREFIX + base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()


def parse_secrets(value: str) -> tuple[bytes, ...]:
    """Signing keys from ``whsec_…`` secrets separated by commas or spaces (several during
    a rotation); raises ValueError naming a secret that is not one."""
    keys: list[bytes] = []
    for part in value.replace(",", " ").split():
        if not part.startswith(PREFIX):
            raise ValueError(
                "a webhook secret starts with whsec_ (in a provider URL, write + as %2B)"
            )
        encoded = part[len(PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
        if not key:
            raise ValueError("a webhook secret may not be empty")
        keys.append(key)
    if not keys:
        raise ValueError("no webhook secret given")
    return tuple(keys)


def signature_header(keys: tuple[bytes, ...], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,`` signature per key, space-separated."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode() for key in keys
    )
