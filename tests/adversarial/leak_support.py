"""What the leak tests look for and listen to: every encoded form of a secret in the recorded requests, and every
network connection or name look-up the process makes (the adversarial suite's items 9, 16 and 17)."""

from __future__ import annotations

import base64
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

from aetherflow.testing.script import RecordedRequest


def encoded_forms(secret: str) -> dict[str, bytes]:
    """Every form of `secret` a leak could take: raw, URL-encoded, hex, and base64 (standard and urlsafe) of the
    secret at each 3-byte alignment, i.e. the part of the encoding that does not depend on neighbouring bytes."""
    raw = secret.encode()
    forms = {
        "raw": raw, "url": quote(secret, safe="").encode(), "url-plus": quote_plus(secret).encode(),
        "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode(),
    }
    for lead in range(3):
        padded = b"\0" * lead + raw
        whole_groups = len(padded) // 3 * 4
        for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            core = encode(padded)[4 if lead else 0 : whole_groups]
            if len(core) >= 8:
                forms[f"{name}@{lead}"] = core
    return forms


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def found_in(haystacks: list[bytes], secrets: dict[str, str]) -> list[str]:
    """`secret-name:form` for every form of every secret present in one of `haystacks`."""
    return [f"{name}:{form}" for name, secret in secrets.items() for form, needle in encoded_forms(secret).items()
            if any(needle in hay for hay in haystacks)]


def leaks(requests: list[RecordedRequest], secrets: dict[str, str]) -> list[str]:
    """`secret-name:form in request N` for every form of every secret found in a request's raw bytes or in any
    string of its parsed JSON (so JSON escaping cannot hide one)."""
    found: list[str] = []
    for number, request in enumerate(requests):
        haystacks = [request.raw_body, "\n".join(_strings(request.body)).encode()]
        found.extend(f"{leak} in request {number}" for leak in found_in(haystacks, secrets))
    return found


class NetworkWatch:
    """Records every socket connection and name look-up the process makes while active (an audit hook: Python
    allows no removal, so one hook is installed per process and switched on and off)."""

    _installed = False
    _active: NetworkWatch | None = None

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        watch = cls._active
        if watch is None or event not in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
                                          "socket.sendto", "socket.sendmsg"}:
            return
        target = args[1] if event == "socket.connect" else args[0]
        with watch._lock:
            watch.events.append((event, repr(target)))

    def __enter__(self) -> NetworkWatch:
        if not NetworkWatch._installed:
            sys.addaudithook(NetworkWatch._hook)
            NetworkWatch._installed = True
        NetworkWatch._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        NetworkWatch._active = None

    def connected_to(self, port: int) -> bool:
        """Whether a connection to 127.0.0.1:`port` was seen (the watch is not blind)."""
        return ("socket.connect", repr(("127.0.0.1", port))) in self.events

    def elsewhere(self, port: int) -> list[tuple[str, str]]:
        """Connections and look-ups aimed anywhere but 127.0.0.1:`port`."""
        allowed = {repr(("127.0.0.1", port)), repr("127.0.0.1")}
        return [(event, target) for event, target in self.events if target not in allowed]
