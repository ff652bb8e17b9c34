"""The HTTP side of the scripted server: read a request, record it, answer it as scripted.

Waits (latency, hangs) happen on the owner's `stopping` event rather than in `time.sleep`, so `stop()` wakes
them at once. Streams use chunked transfer encoding, which lets a truncated stream look like a real cut: the
connection closes without the terminating chunk, and the client sees an incomplete body.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from aetherflow.testing.script import Fault, RecordedRequest
from aetherflow.testing.wire import Completion, error_body, sse_event

if TYPE_CHECKING:
    from aetherflow.testing.server import ScriptedServer

NO_REPLY_MESSAGE = "scripted server: no reply queued (enqueue a Reply or Fault, or set server.script)"
_MALFORMED_JSON = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess'


class _Aborted(Exception):
    """The server is stopping: drop the connection without answering further."""


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (HTTP/1.1 keep-alive) as the owner's script says."""

    protocol_version = "HTTP/1.1"
    server_version = "AetherFlowScripted/1.0"

    @property
    def owner(self) -> ScriptedServer:
        return self.server.owner  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Stay quiet: tests read `server.requests`, not stderr."""

    # ---- requests ---------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        request = self._record(b"")
        if request.path.rstrip("/") in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.owner.models]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, error_body(404, f"scripted server: no route GET {request.path}"))

    def do_POST(self) -> None:
        request = self._record(self._read_body())
        if not request.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, error_body(404, f"scripted server: no route POST {request.path}"))
            return
        if not request.body:
            self._send_json(400, error_body(400, "scripted server: the request body is not a JSON object"))
            return
        try:
            self._answer(request)
        except _Aborted:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _record(self, raw: bytes) -> RecordedRequest:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        request = RecordedRequest(
            method=self.command,
            path=self.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body if isinstance(body, dict) else {},
            raw_body=raw,
            ts=time.monotonic(),
        )
        self.owner.record(request)
        return request

    # ---- answers ----------------------------------------------------------------------------------------

    def _answer(self, request: RecordedRequest) -> None:
        try:
            action, number = self.owner.next_action(request)
        except Exception as exc:  # noqa: BLE001 - a broken test script must reach the test as a loud 500
            message = f"scripted server: the script raised {type(exc).__name__}: {exc}"
            self._send_json(500, error_body(500, message))
            return
        if action is None:
            self._send_json(500, error_body(500, NO_REPLY_MESSAGE))
        elif isinstance(action, Fault):
            self._fault(action, request)
        elif request.stream:
            self._stream(Completion.build(action, request, number))
        else:
            self._whole(Completion.build(action, request, number))

    def _fault(self, fault: Fault, request: RecordedRequest) -> None:
        if fault.hang:
            self.owner.stopping.wait()
            raise _Aborted
        if fault.malformed:
            if request.stream:
                self._start_stream({})
                self._send_chunk(sse_event('{"id": "chatcmpl-broken", "choices": [{"delta": {"content": "he'))
                self._send_chunk(sse_event("[DONE]"))
                self._end_stream()
            else:
                self._send_bytes(200, _MALFORMED_JSON, "application/json")
            return
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if fault.body is not None:
            self._send_json(fault.status, fault.body, headers)
            return
        message = fault.message or f"scripted server: injected HTTP {fault.status}"
        self._send_json(fault.status, error_body(fault.status, message), headers)

    def _whole(self, completion: Completion) -> None:
        reply = completion.reply
        pieces = max(1, len(completion.content_deltas()))
        self._wait(reply.ttft_s + (pieces - 1) * reply.chunk_delay_s())
        body = json.dumps(completion.completion_object()).encode()
        if reply.truncate_after_chunks is not None:
            self._send_head(200, "application/json", len(body), reply.headers)
            self.wfile.write(body[: len(body) // 2])
            raise _Aborted
        self._send_bytes(200, body, "application/json", reply.headers)

    def _stream(self, completion: Completion) -> None:
        reply = completion.reply
        self._start_stream(reply.headers)
        self._wait(reply.ttft_s)
        self._send_chunk(sse_event(completion.role_chunk()))
        for sent, delta in enumerate(completion.content_deltas()):
            if reply.truncate_after_chunks is not None and sent >= reply.truncate_after_chunks:
                raise _Aborted
            if sent:
                self._wait(reply.chunk_delay_s())
            self._send_chunk(sse_event(completion.chunk(delta)))
        if reply.truncate_after_chunks is not None:
            raise _Aborted
        self._send_chunk(sse_event(completion.finish_chunk()))
        if completion.wants_usage():
            self._send_chunk(sse_event(completion.chunk(None)))
        self._send_chunk(sse_event("[DONE]"))
        self._end_stream()

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.owner.stopping.wait(seconds):
            raise _Aborted

    # ---- writing ----------------------------------------------------------------------------------------

    def _send_head(self, status: int, content_type: str, length: int | None, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._send_head(status, content_type, len(body), headers or {})
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _start_stream(self, headers: dict[str, str]) -> None:
        self._send_head(200, "text/event-stream; charset=utf-8", None, headers)

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
