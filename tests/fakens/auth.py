"""Authentication: login/logout, session cookies, header authentication (nitro-reference §2).

Sessions expire after their inactivity timeout; any request with a missing, unknown or expired
session gets 401/444. ``X-NITRO-USER``/``X-NITRO-PASS`` authenticate a single request without a
session unless header authentication is disabled (401/1244).
"""

from __future__ import annotations

import hmac
import secrets
import time
import urllib.parse
from typing import Any, Optional

from tests.fakens.core import Headers, NitroFault, Session, State

MIN_TIMEOUT, MAX_TIMEOUT = 300, 86400
SESSION_LOST = NitroFault(401, 444, "Session expired or killed. Please login again")


def session_cookies(cookie_header: Optional[str]) -> list[str]:
    """Candidate session tokens from ``NITRO_AUTH_TOKEN`` and ``sessionid`` cookies."""
    tokens = []
    for part in (cookie_header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key in ("NITRO_AUTH_TOKEN", "sessionid") and value:
            tokens.append(urllib.parse.unquote(value.strip('"')))
    return tokens


def check_password(state: State, username: Any, password: Any) -> str:
    """The user name when the credentials are right, else 401/354."""
    expected = state.users.get(str(username)) if username is not None else None
    given = str(password if password is not None else "")
    if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
        raise NitroFault(401, 354, "Invalid username or password")
    return str(username)


def login(state: State, body: Any) -> Session:
    """Open a session for ``{"username", "password", "timeout"}``."""
    if not isinstance(body, dict):
        raise NitroFault(400, 1233, "Invalid JSON input")
    user = check_password(state, body.get("username"), body.get("password"))
    timeout = state.session_timeout
    if body.get("timeout") not in (None, ""):
        try:
            timeout = int(body["timeout"])
        except (TypeError, ValueError):
            timeout = -1
        if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
            raise NitroFault(599, 1219, f"Invalid Timeout [timeout, {body['timeout']}]")
    token = "##" + secrets.token_hex(32).upper()
    session = Session(token, user, time.monotonic() + timeout, timeout)
    state.sessions[token] = session
    return session


def find_session(state: State, cookie_header: Optional[str]) -> Optional[Session]:
    """The live session named by the cookies (refreshing its inactivity timer), if any."""
    now = time.monotonic()
    for token in session_cookies(cookie_header):
        session = state.sessions.get(token)
        if session is None:
            continue
        if session.expires_at < now:
            del state.sessions[token]
            continue
        session.expires_at = now + session.timeout
        return session
    return None


def authenticate(state: State, headers: Headers) -> str:
    """The user a request runs as; raises 401 faults otherwise."""
    if headers.get("X-NITRO-USER") is not None:
        if not state.header_auth:
            raise NitroFault(401, 1244,
                             "Authentication Failed: Use of Basic Authentication is Disabled.")
        return check_password(state, headers.get("X-NITRO-USER"), headers.get("X-NITRO-PASS"))
    session = find_session(state, headers.get("Cookie"))
    if session is None:
        raise SESSION_LOST
    return session.user


def logout(state: State, headers: Headers) -> str:
    """End the caller's session; header-authenticated callers have none to end."""
    if headers.get("X-NITRO-USER") is not None:
        return authenticate(state, headers)
    session = find_session(state, headers.get("Cookie"))
    if session is None:
        raise SESSION_LOST
    del state.sessions[session.token]
    return session.user


def kill_session(state: State, headers: Headers) -> None:
    """Forget the caller's session (fault kind "expire")."""
    for token in session_cookies(headers.get("Cookie")):
        state.sessions.pop(token, None)
