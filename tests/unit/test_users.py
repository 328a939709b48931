"""Service users: scrypt hashes (never the password) in a 0600 file, roles, the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from tests.conftest import vidproof
from vidproof.errors import UsageError
from vidproof.service.users import ROLES, UserStore, check_password, hash_password

PASSWORD = "correct horse battery"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stored(path: Path) -> dict[str, dict[str, str]]:
    return {u["name"]: u for u in json.loads(path.read_text())["users"]}


def test_roles() -> None:
    assert set(ROLES) == {"installer", "operator", "police", "auditor"}


def test_hash_is_scrypt_checked_by_an_independent_implementation() -> None:
    h = hash_password(PASSWORD)
    scheme, n, r, p, salt, digest = h.split("$")
    assert scheme == "scrypt"
    n_, r_, p_ = int(n), int(r), int(p)
    assert 128 * n_ * r_ >= 16 << 20  # memory-hard: at least 16 MiB per guess
    # OpenSSL's scrypt, through hashlib, derives the same key from the stored salt.
    again = hashlib.scrypt(PASSWORD.encode(), salt=base64.b64decode(salt), n=n_, r=r_, p=p_,
                           maxmem=256 << 20, dklen=len(base64.b64decode(digest)))
    assert again == base64.b64decode(digest)
    assert len(base64.b64decode(salt)) >= 16
    assert PASSWORD not in h


def test_same_password_gets_a_fresh_salt() -> None:
    a, b = hash_password(PASSWORD), hash_password(PASSWORD)
    assert a != b
    assert check_password(PASSWORD, a) and check_password(PASSWORD, b)


@pytest.mark.parametrize("stored_hash", ["", "plain", "md5$x$y$z$a$b", "scrypt$1$2$3$!!$!!",
                                         "scrypt$x$8$1$AAAA$AAAA"])
def test_malformed_hash_never_matches(stored_hash: str) -> None:
    assert check_password(PASSWORD, stored_hash) is False


def test_add_and_authenticate(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "etc" / "users.json")  # the directory is created
    user = users.add("alice", "police", PASSWORD)
    assert (user.name, user.role) == ("alice", "police")
    path = users.path
    assert mode(path) == 0o600
    text = path.read_text()
    assert PASSWORD not in text and "correct" not in text
    record = stored(path)["alice"]
    assert record["role"] == "police" and record["password"].startswith("scrypt$")
    assert users.authenticate("alice", PASSWORD) == user
    assert users.authenticate("alice", PASSWORD + "x") is None
    assert users.authenticate("alice", PASSWORD.upper()) is None
    assert users.authenticate("alice", "") is None
    assert users.authenticate("mallory", PASSWORD) is None  # unknown user
    assert not list(path.parent.glob("*.tmp"))  # written atomically, no leftovers


def test_re_adding_a_user_replaces_role_and_password(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.json")
    users.add("bob", "operator", PASSWORD)
    users.add("carol", "auditor", "another password")
    users.add("bob", "installer", "new password 2")
    assert users.authenticate("bob", PASSWORD) is None
    bob = users.authenticate("bob", "new password 2")
    assert bob is not None and bob.role == "installer"
    assert set(stored(users.path)) == {"bob", "carol"}
    assert mode(users.path) == 0o600


def test_mode_is_0600_even_when_the_file_was_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text('{"users": []}')
    path.chmod(0o644)
    UserStore(path).add("dave", "police", PASSWORD)
    assert mode(path) == 0o600


@pytest.mark.parametrize("role", ["admin", "Police", "", "root", "police "])
def test_unknown_role_is_refused(tmp_path: Path, role: str) -> None:
    users = UserStore(tmp_path / "users.json")
    with pytest.raises(UsageError, match="role .* is unknown"):
        users.add("eve", role, PASSWORD)
    assert not users.path.exists()


@pytest.mark.parametrize("name", ["", "a b", "../x", "x" * 65, "é", "a/b"])
def test_bad_user_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="user name"):
        UserStore(tmp_path / "users.json").add(name, "police", PASSWORD)


def test_short_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least 8"):
        UserStore(tmp_path / "users.json").add("frank", "police", "1234567")


@pytest.mark.parametrize("content", ["not json", '{"users": [{"name": "x"}]}', "[]", '{"x": 1}'])
def test_malformed_users_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(UsageError, match="malformed"):
        UserStore(path).authenticate("x", PASSWORD)


# --- the command line ------------------------------------------------------------------

def test_cli_user_add(tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\r\n")  # the line ending is not part of the password
    users = tmp_path / "users.json"
    r = vidproof("user", "add", "gina", "--role", "auditor", "--password-file", pw,
                 "--users", users)
    assert r.code == 0, r.err
    assert "gina (auditor)" in r.out
    assert mode(users) == 0o600
    assert PASSWORD not in users.read_text()
    assert PASSWORD not in r.out + r.err
    user = UserStore(users).authenticate("gina", PASSWORD)
    assert user is not None and user.role == "auditor"


@pytest.mark.parametrize(("args", "expect"), [
    (["--role", "superuser"], "role 'superuser' is unknown"),
    (["--role", "police", "--password-file", "/nonexistent/pw"], "cannot read password file"),
    (["--role", "police", "--name-too-long"], "unrecognized arguments"),
])
def test_cli_user_add_errors_are_one_line(tmp_path: Path, args: list[str], expect: str) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD)
    if "--password-file" not in args:
        args = [*args, "--password-file", str(pw)]
    users = tmp_path / "users.json"
    r = vidproof("user", "add", "henry", *args, "--users", users)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in r.err, r.err
    assert not users.exists()
