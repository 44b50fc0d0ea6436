"""Login for the dashboard's actions: a salted scrypt hash in the configuration, sessions that
expire, and a CSRF token per session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

# scrypt cost: ~50 ms and 16 MiB per check, slow enough to make guessing a stolen hash costly.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The `[web] password_hash` value for `password`: scrypt with a random 16-byte salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` (a `hash_password` result) was made from."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = bytes.fromhex(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=2**26,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: its cookie value, the token its forms must carry, and its end."""

    token: str
    csrf: str
    expires: datetime


class Sessions:
    """Sessions in memory: a daemon restart logs everyone out, which is the safe direction."""

    def __init__(self, lifetime: timedelta) -> None:
        self._lifetime = lifetime
        self._by_token: dict[str, Session] = {}

    def open(self, now: datetime) -> Session:
        """A new session valid for the configured lifetime."""
        self._by_token = {t: s for t, s in self._by_token.items() if s.expires > now}
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self._lifetime
        )
        self._by_token[session.token] = session
        return session

    def find(self, token: str | None, now: datetime) -> Session | None:
        """The live session of this cookie value; None if unknown or expired."""
        session = self._by_token.get(token or "")
        if session is None or session.expires <= now:
            return None
        return session

    def close(self, token: str | None) -> None:
        """Log out."""
        self._by_token.pop(token or "", None)
