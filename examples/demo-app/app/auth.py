"""Authentication: password hashing, user registration, login and session tokens."""

import hashlib
import hmac
import secrets

from app.models import Session, User

_ITERATIONS = 200_000
_users: dict[str, User] = {}
_sessions: dict[str, Session] = {}


class AuthError(Exception):
    """Raised when credentials or a session token are not valid."""


def hash_password(password: str, salt: bytes) -> bytes:
    """Derive a password hash with PBKDF2-HMAC-SHA256."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)


def register(username: str, password: str, is_admin: bool = False) -> User:
    """Create a user; refuses an existing username or a password shorter than 8 characters."""
    if username in _users:
        raise AuthError(f"user {username!r} already exists")
    if len(password) < 8:
        raise AuthError("password must have at least 8 characters")
    salt = secrets.token_bytes(16)
    user = User(username, hash_password(password, salt), salt, is_admin)
    _users[username] = user
    return user


def verify_password(user: User, password: str) -> bool:
    """Check a password against the stored hash in constant time."""
    return hmac.compare_digest(user.password_hash, hash_password(password, user.salt))


def login(username: str, password: str) -> str:
    """Check credentials and return a new session token."""
    user = _users.get(username)
    if user is None or not verify_password(user, password):
        raise AuthError("invalid username or password")
    token = secrets.token_hex(32)
    _sessions[token] = Session(token, username)
    return token


def current_user(token: str) -> User:
    """Return the user owning a valid, unexpired session token."""
    session = _sessions.get(token)
    if session is None or session.expired():
        _sessions.pop(token, None)
        raise AuthError("session expired or unknown")
    return _users[session.username]


def logout(token: str) -> None:
    """End a session; unknown tokens are ignored."""
    _sessions.pop(token, None)


def reset() -> None:
    """Forget every user and session (used by tests)."""
    _users.clear()
    _sessions.clear()
