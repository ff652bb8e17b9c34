"""A scripted OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

Real sockets, real HTTP/1.1 (keep-alive, Content-Length bodies, chunked SSE streams), so a client such as
LiteLLM's `openai/<name>` route with `api_base=server.base_url` runs its whole network path against it:

    with ScriptedServer() as server:
        server.enqueue(Reply(text="hello"), Fault(status=429, retry_after=1.5))
        server.script = lambda request: Reply(text=request.body["model"])   # when the queue is empty
        ... call the model ...
        assert server.request_count == 2

Each POST to /v1/chat/completions takes the next queued Reply or Fault, else asks `script`, else answers 500
"scripted server: no reply queued" so that a test which under-scripts fails loudly.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections import deque
from http.server import HTTPServer
from types import TracebackType

from aetherflow.testing.handler import ScriptedHandler
from aetherflow.testing.script import Action, Fault, RecordedRequest, Reply, Script, ToolCallSpec

__all__ = ["Fault", "RecordedRequest", "Reply", "ScriptedServer", "ToolCallSpec"]

_STOP_JOIN_S = 5.0


class _HTTPServer(HTTPServer):
    """An HTTPServer that serves each connection on its own daemon thread and lets its owner track them."""

    def __init__(self, owner: ScriptedServer, host: str, port: int) -> None:
        self.owner = owner
        super().__init__((host, port), ScriptedHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall on a machine without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(  # type: ignore[override]
        self, request: socket.socket, client_address: tuple[str, int]
    ) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="scripted-server-conn", daemon=True
        )
        # Registered here, on the accept thread, so stop() sees every accepted connection once accepting ends.
        self.owner._register(thread, request)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # The client went away, or stop() shut the socket down under a waiting handler.
        finally:
            self.shutdown_request(request)
            self.owner._unregister(threading.current_thread())


class ScriptedServer:
    """An OpenAI-compatible chat-completions server whose answers the test scripts.

    Thread-safe: the queue, the script and the request list are guarded by one lock, so a test may enqueue
    while concurrent clients are being served. `stop()` returns promptly even while handlers hang: it wakes
    every waiting handler and shuts their sockets down.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, models: list[str] | None = None) -> None:
        self.host = host
        self.models: list[str] = list(models) if models is not None else ["fast", "strong"]
        self._requested_port = port
        self._lock = threading.Lock()
        self._queue: deque[Action] = deque()
        self._script: Script | None = None
        self._requests: list[RecordedRequest] = []
        self._completions = 0
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        """Bind a port (a free one unless given) and serve on a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("ScriptedServer is already running")
        self._stopping = threading.Event()
        self._httpd = _HTTPServer(self, self.host, self._requested_port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake hanging handlers, close every connection and join the threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(_STOP_JOIN_S)
        with self._lock:
            connections = list(self._connections.items())
        for _, sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _STOP_JOIN_S
        for conn_thread, _ in connections:
            conn_thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("ScriptedServer is not running; use it as a context manager or call start()")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL to give clients as api_base: http://127.0.0.1:PORT/v1."""
        return f"{self.url}/v1"

    # ---- scripting --------------------------------------------------------------------------------------

    def enqueue(self, *actions: Action) -> None:
        """Append replies or faults; each chat-completions request consumes the oldest one."""
        for action in actions:
            if not isinstance(action, Reply | Fault):
                raise TypeError(f"enqueue takes Reply or Fault, got {type(action).__name__}")
        with self._lock:
            self._queue.extend(actions)

    @property
    def script(self) -> Script | None:
        """A function of the request that answers when the queue is empty (None: answer 500)."""
        with self._lock:
            return self._script

    @script.setter
    def script(self, function: Script | None) -> None:
        with self._lock:
            self._script = function

    @property
    def pending(self) -> int:
        """How many queued replies or faults have not been consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order (any path and method)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """The number of requests received so far."""
        with self._lock:
            return len(self._requests)

    def forget_requests(self) -> None:
        """Drop the requests recorded so far, so a long session (a chaos run, a benchmark) does not keep every body."""
        with self._lock:
            self._requests.clear()

    def completion_requests(self) -> list[RecordedRequest]:
        """Only the chat-completions requests."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # ---- used by the handler ----------------------------------------------------------------------------

    @property
    def stopping(self) -> threading.Event:
        """Set when stop() begins; handlers wait on it instead of sleeping so they wake at once."""
        return self._stopping

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def next_action(self, request: RecordedRequest) -> tuple[Action | None, int]:
        """The queued action (or the script's answer) for a chat request, and the completion's number."""
        with self._lock:
            self._completions += 1
            number = self._completions
            if self._queue:
                return self._queue.popleft(), number
            script = self._script
        if script is None:
            return None, number
        return script(request), number

    def _register(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._connections[thread] = sock

    def _unregister(self, thread: threading.Thread) -> None:
        with self._lock:
            self._connections.pop(thread, None)
