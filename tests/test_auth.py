"""API keys, derived secrets, logon verification, the admin token."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from exchange.auth import AdminAuth, AuthError, KeyStore, canonical_payload, key_hash, sign
from exchange.core.errors import Code

NOW = 1_700_000_000_000


def logon_params(key: str, secret: str, ts: int = NOW, **extra: object) -> dict[str, object]:
    p: dict[str, object] = {"apiKey": key, "timestamp": ts, **extra}
    p["signature"] = sign(secret, p)
    return p


def test_canonical_payload_is_sorted_and_excludes_signature() -> None:
    p = {"timestamp": 5, "apiKey": "k", "signature": "x", "recvWindow": 100, "flag": True}
    assert canonical_payload(p) == "apiKey=k&flag=true&recvWindow=100&timestamp=5"
    expected = hmac.new(b"s", b"apiKey=k&flag=true&recvWindow=100&timestamp=5", hashlib.sha256)
    assert sign("s", p) == expected.hexdigest()


def test_issue_and_verify() -> None:
    ks = KeyStore(b"m" * 32)
    key, secret = ks.issue(7)
    assert ks.verify(logon_params(key, secret), now_ms=NOW) == 7
    assert ks.verify(logon_params(key, secret, recvWindow=100), now_ms=NOW + 50) == 7


def test_only_the_key_hash_is_stored() -> None:
    ks = KeyStore(b"m" * 32)
    key, secret = ks.issue(7)
    [rec] = ks.records()
    assert rec.key_hash == key_hash(key) and rec.account == 7
    assert key not in repr(rec) and secret not in repr(rec)


def test_secret_is_derived_from_the_master_key() -> None:
    a, b = KeyStore(b"a" * 32), KeyStore(b"b" * 32)
    key, secret = a.issue(1)
    b.load(a.records())
    with pytest.raises(AuthError) as e:  # same record, other master key: secret differs
        b.verify(logon_params(key, secret), now_ms=NOW)
    assert e.value.code == Code.BAD_SIGNATURE
    c = KeyStore(b"a" * 32)
    c.load(a.records())  # a restart with the same master key and records keeps secrets valid
    assert c.verify(logon_params(key, secret), now_ms=NOW) == 1


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: p.update(timestamp=NOW - 6000), Code.TIMESTAMP_OUTSIDE_WINDOW),
        (lambda p: p.update(timestamp=NOW + 2000), Code.TIMESTAMP_OUTSIDE_WINDOW),
        (lambda p: p.update(apiKey="0" * 64), Code.INVALID_KEY_OR_PERMISSION),
        (lambda p: p.update(signature="0" * 64), Code.BAD_SIGNATURE),
        (lambda p: p.pop("signature"), Code.MANDATORY_PARAM_MISSING),
        (lambda p: p.pop("timestamp"), Code.MANDATORY_PARAM_MISSING),
        (lambda p: p.update(timestamp="1"), Code.INVALID_PARAMETER),
        (lambda p: p.update(recvWindow=10**9), Code.INVALID_PARAMETER),
        (lambda p: p.update(signature="é" * 64), Code.BAD_SIGNATURE),
    ],
)
def test_logon_failures(mutate: object, code: Code) -> None:
    ks = KeyStore(b"m" * 32)
    key, secret = ks.issue(3)
    p = logon_params(key, secret)
    mutate(p)  # type: ignore[operator]
    with pytest.raises(AuthError) as e:
        ks.verify(p, now_ms=NOW)
    assert e.value.code == code


def test_revoke_and_hooks() -> None:
    ks = KeyStore()
    seen = []
    ks.on_issue.append(seen.append)
    key, secret = ks.issue(1)
    assert seen[0].account == 1
    assert ks.revoke(key)
    with pytest.raises(AuthError):
        ks.verify(logon_params(key, secret), now_ms=NOW)


def test_admin_token() -> None:
    a = AdminAuth("tok")
    assert a.check("tok")
    assert not a.check("tok2") and not a.check(None) and not a.check(5) and not a.check("x" * 300)
    assert len(AdminAuth().token) >= 24
