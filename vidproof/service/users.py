"""Users and roles. Passwords are hashed with scrypt (memory-hard), never stored."""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import UsageError

ROLES = ("installer", "operator", "police", "auditor")
_N, _R, _P = 2**15, 8, 1  # 32 MiB of memory per hash
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def _kdf(salt: bytes, n: int = _N, r: int = _R, p: int = _P) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = _kdf(salt).derive(password.encode("utf-8"))
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        _kdf(base64.b64decode(salt), int(n), int(r), int(p)).verify(
            password.encode("utf-8"), base64.b64decode(digest))
    except (ValueError, InvalidKey):
        return False
    return True


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


def check_name(name: str) -> str:
    if not (1 <= len(name) <= 64) or not set(name) <= _NAME_CHARS:
        raise UsageError(f"user name {name!r} is invalid: expected 1-64 characters from "
                         "letters, digits and . _ - @")
    return name


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, User]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {u["name"]: User(u["name"], u["role"], u["password"]) for u in raw["users"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"users file {self.path} is unreadable or malformed ({exc})") \
                from None

    def add(self, name: str, role: str, password: str) -> User:
        check_name(name)
        if role not in ROLES:
            raise UsageError(f"role {role!r} is unknown; expected one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise UsageError("the password must have at least 8 characters")
        users = self.load()
        users[name] = User(name, role, hash_password(password))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"users": [{"name": u.name, "role": u.role, "password": u.password_hash}
                                 for u in users.values()]}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return users[name]

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.load().get(name)
        if user is None:
            check_password(password, _DUMMY)  # same cost whether or not the user exists
            return None
        return user if check_password(password, user.password_hash) else None


_DUMMY = hash_password(secrets.token_hex(8))


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
