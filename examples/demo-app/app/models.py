"""Data kept by the demo application."""

from dataclasses import dataclass, field
import time


@dataclass
class User:
    """A registered user. The password is stored only as a salted hash."""

    username: str
    password_hash: bytes
    salt: bytes
    is_admin: bool = False


@dataclass
class Session:
    """A logged-in session, identified by an opaque random token."""

    token: str
    username: str
    created_at: float = field(default_factory=time.time)
    ttl_seconds: int = 3600

    def expired(self, now: float | None = None) -> bool:
        """True once the session is older than its time to live."""
        return (now or time.time()) - self.created_at > self.ttl_seconds
