"""Sessions and role checks. A login gives a random bearer token held in memory."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status

SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    expires: float


class Sessions:
    def __init__(self) -> None:
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._by_token[token] = Session(user, role, time.monotonic() + SESSION_SECONDS)
        return token

    def close(self, token: str) -> Session | None:
        """End a session (logout); the token is refused from then on."""
        with self._lock:
            return self._by_token.pop(token, None)

    def get(self, token: str) -> Session | None:
        with self._lock:
            s = self._by_token.get(token)
            if s is not None and s.expires < time.monotonic():
                del self._by_token[token]
                return None
            return s


def request_token(request: Request) -> str:
    """The bearer token of a request (``?token=`` for the GETs an <img> or a download
    link makes, which cannot send a header)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = request.query_params.get("token", "") if request.method == "GET" else ""
    return token


def current_session(request: Request) -> Session:
    token = request_token(request)
    sessions: Sessions = request.app.state.sessions
    session = sessions.get(token) if token else None
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required",
                            headers={"WWW-Authenticate": "Bearer"})
    return session


def require(*roles: str) -> Callable[..., Session]:
    """A dependency that admits only the given roles (all roles when none are given)."""

    def check(session: Session = Depends(current_session)) -> Session:  # noqa: B008
        if roles and session.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {session.role!r} may not do this; needs "
                                f"{' or '.join(roles)}")
        return session

    return check
