"""Hashing of the operator's password and PIN (stdlib scrypt).

Why hashlib.scrypt and not a library (bcrypt, argon2-cffi, passlib): scrypt is a
memory-hard KDF, maintained in the standard library on top of OpenSSL, so the
console needs no extra C dependency in its Cloud Function image. The encoded
form carries its own parameters, so they can be raised later and old hashes
still verify:

    scrypt$n=16384,r=8,p=1$<salt, base64>$<key, base64>

Parameters read from a hash are capped (power-of-two n up to 2**17, r <= 16,
p <= 4, 128 MiB): a tampered secret cannot make verification eat a function's
memory or CPU, nor downgrade it below n = 2**14.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

SCHEME = "scrypt"
N, R, P = 16384, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
FORMAT = "scrypt$n=<N>,r=<R>,p=<P>$<salt base64>$<hash base64>"

MIN_N, MAX_N = 2**14, 2**17
MAX_R, MAX_P = 16, 4
MAX_MEMORY = 128 * 1024 * 1024
_ENCODED = re.compile(
    r"scrypt\$n=(?P<n>[0-9]{1,7}),r=(?P<r>[0-9]{1,3}),p=(?P<p>[0-9]{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<key>[A-Za-z0-9+/=]+)"
)


class BadHash(ValueError):
    """A stored hash is not in the expected format; the message says how to make one."""


@dataclass(frozen=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _derive(plain: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL needs 128 * r * (n + p + 2) bytes; allow that plus slack.
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(
        plain.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length
    )


def hash_secret(plain: str) -> str:
    """The encoded scrypt hash of `plain` with a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    key = _derive(plain, salt, N, R, P, KEY_BYTES)
    return (
        f"{SCHEME}$n={N},r={R},p={P}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    )


def _bad(why: str) -> BadHash:
    return BadHash(
        f"{why}: expected {FORMAT}; make one with `spreadpilot security hash-pin` "
        "(PIN) or `spreadpilot security hash-password` (password) and store it as the secret"
    )


def _parse(encoded: str) -> _Parsed:
    text = encoded.strip() if isinstance(encoded, str) else ""
    match = _ENCODED.fullmatch(text)
    if match is None:
        raise _bad("not a scrypt hash")
    n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
    if n & (n - 1) or not MIN_N <= n <= MAX_N:
        raise _bad(f"n={n} must be a power of two from {MIN_N} to {MAX_N}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise _bad(f"r={r}, p={p} out of range (r 1-{MAX_R}, p 1-{MAX_P})")
    if 128 * r * n > MAX_MEMORY:
        raise _bad(f"n={n}, r={r} would need more than {MAX_MEMORY // 2**20} MiB")
    try:
        salt = base64.b64decode(match["salt"], validate=True)
        key = base64.b64decode(match["key"], validate=True)
    except (binascii.Error, ValueError):
        raise _bad("salt or hash is not valid base64") from None
    if len(salt) < 8 or not 16 <= len(key) <= 64:
        raise _bad(f"salt of {len(salt)} bytes or hash of {len(key)} bytes is too short or long")
    return _Parsed(n, r, p, salt, key)


def check_hash(encoded: str) -> None:
    """Raise BadHash unless `encoded` is a well-formed hash (no derivation: cheap)."""
    _parse(encoded)


def verify_secret(plain: str, encoded: str) -> bool:
    """True if `plain` matches; compared in constant time. BadHash if `encoded` is malformed."""
    parsed = _parse(encoded)
    candidate = _derive(
        plain if isinstance(plain, str) else "",
        parsed.salt,
        parsed.n,
        parsed.r,
        parsed.p,
        len(parsed.key),
    )
    return hmac.compare_digest(candidate, parsed.key)
