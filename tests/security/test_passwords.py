"""scrypt hashing of the password and the PIN: round trip, constant-time verify,
malformed hashes refused with the fix."""

import base64
from collections.abc import Callable

import pytest

from spreadpilot.platform.passwords import BadHash, check_hash, hash_secret, verify_secret


def test_round_trip_and_format() -> None:
    encoded = hash_secret("482916")
    scheme, params, salt, key = encoded.split("$")
    assert (scheme, params) == ("scrypt", "n=16384,r=8,p=1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert verify_secret("482916", encoded)


def test_wrong_secret_is_false() -> None:
    encoded = hash_secret("correct horse battery")
    assert not verify_secret("correct horse batterY", encoded)
    assert not verify_secret("", encoded)


def test_same_secret_gets_a_fresh_salt() -> None:
    first, second = hash_secret("482916"), hash_secret("482916")
    assert first != second
    assert verify_secret("482916", first) and verify_secret("482916", second)


def test_surrounding_whitespace_of_a_stored_hash_is_ignored() -> None:
    # `gcloud secrets versions add --data-file=-` keeps the trailing newline
    assert verify_secret("pässwörd-ünïcode", hash_secret("pässwörd-ünïcode") + "\n")


def _variant(encoded: str, params: str) -> str:
    _, _, salt, key = encoded.split("$")
    return f"scrypt${params}${salt}${key}"


@pytest.mark.parametrize(
    "make",
    [
        lambda h: "",
        lambda h: "482916",
        lambda h: "bcrypt$2b$12$abc",
        lambda h: h.replace("scrypt$", "scrypt$$"),
        lambda h: h.rsplit("$", 1)[0],  # no key
        lambda h: h[:-5] + "!!!!=",  # not base64
        lambda h: _variant(h, "n=1000,r=8,p=1"),  # not a power of two
        lambda h: _variant(h, "n=1024,r=8,p=1"),  # too weak
        lambda h: _variant(h, "n=1048576,r=8,p=1"),  # 1 GiB of memory
        lambda h: _variant(h, "n=16384,r=64,p=1"),
        lambda h: _variant(h, "n=16384,r=8,p=99"),
    ],
)
def test_malformed_hash_is_bad_hash_naming_the_fix(make: Callable[[str], str]) -> None:
    encoded = make(hash_secret("482916"))
    with pytest.raises(BadHash, match="spreadpilot security hash-pin") as caught:
        verify_secret("482916", encoded)
    assert "scrypt$n=<N>,r=<R>,p=<P>$" in str(caught.value)
    assert "hash-password" in str(caught.value)
    with pytest.raises(BadHash):
        check_hash(encoded)


def test_bad_hash_is_a_value_error() -> None:
    assert issubclass(BadHash, ValueError)
