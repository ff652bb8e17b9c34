"""The httpx transport for OpenAI-compatible providers (against the scripted server), the gateway's light path,
and a hook process that never imports LiteLLM."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hook_support import stage, write_config

from aetherflow.config.models import ModelConfig
from aetherflow.events import EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.openai_compat import OpenAICompatTransport, endpoint, request_body, supports
from aetherflow.llm.transport import TransportError, TransportRequest
from aetherflow.llm.types import CallRequest, Message
from aetherflow.testing.server import Fault, Reply
from aetherflow.testing.settings import scripted_environ, scripted_settings


def _request(base_url: str, **fields) -> TransportRequest:
    model = ModelConfig(model="openai/fast", api_base=base_url)
    return TransportRequest(alias="fast", model=model, messages=[{"role": "user", "content": "hi"}],
                            api_key="test-key", **fields)


async def _collect(transport: OpenAICompatTransport, request: TransportRequest) -> list:
    try:
        return [chunk async for chunk in transport.stream(request)]
    finally:
        await transport.aclose()


def test_streams_text_and_usage(scripted_server) -> None:
    scripted_server.enqueue(Reply(text="hello there", prompt_tokens=11, completion_tokens=3))
    chunks = asyncio.run(_collect(OpenAICompatTransport(), _request(scripted_server.base_url, max_tokens=50)))
    assert "".join(c.text for c in chunks) == "hello there"
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 3)
    sent = scripted_server.requests[0]
    assert sent.body["model"] == "fast" and sent.body["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == "Bearer test-key" and sent.body["max_tokens"] == 50


def test_429_is_retryable_with_retry_after(scripted_server) -> None:
    scripted_server.enqueue(Fault(status=429, retry_after=1.5, message="slow down"))
    with pytest.raises(TransportError) as raised:
        asyncio.run(_collect(OpenAICompatTransport(), _request(scripted_server.base_url)))
    error = raised.value
    assert error.status == 429 and error.retryable and error.retry_after_s == 1.5 and "slow down" in str(error)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)])
def test_status_classification(scripted_server, status, retryable) -> None:
    scripted_server.enqueue(Fault(status=status))
    with pytest.raises(TransportError) as raised:
        asyncio.run(_collect(OpenAICompatTransport(), _request(scripted_server.base_url)))
    assert raised.value.status == status and raised.value.retryable is retryable


def test_hang_times_out_retryably(scripted_server) -> None:
    scripted_server.enqueue(Fault(hang=True))
    started = time.monotonic()
    with pytest.raises(TransportError) as raised:
        asyncio.run(_collect(OpenAICompatTransport(), _request(scripted_server.base_url, timeout_s=0.5)))
    assert raised.value.status == 408 and raised.value.retryable
    assert time.monotonic() - started < 5


def test_closed_port_is_a_retryable_connection_error(scripted_server) -> None:
    url = scripted_server.base_url
    scripted_server.stop()
    with pytest.raises(TransportError) as raised:
        asyncio.run(_collect(OpenAICompatTransport(), _request(url)))
    assert raised.value.retryable and raised.value.status is None


def test_provider_profiles() -> None:
    assert supports(ModelConfig(model="deepseek/deepseek-chat"))
    assert supports(ModelConfig(model="mistral/mistral-small-latest"))
    assert not supports(ModelConfig(model="anthropic/claude-sonnet-4-5"))
    assert not supports(ModelConfig(model="gemini/gemini-2.5-flash"))
    assert not supports(ModelConfig(model="local/smollm2", local=True))
    assert endpoint(ModelConfig(model="groq/llama")) == "https://api.groq.com/openai/v1/chat/completions"
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    mistral = TransportRequest(alias="m", model=ModelConfig(model="mistral/mistral-small-latest"), messages=[],
                               response_format=schema)
    body, streamed = request_body(mistral)
    assert streamed and "stream_options" not in body and body["response_format"] == schema
    groq = mistral.model_copy(update={"model": ModelConfig(model="groq/llama-3.3-70b-versatile")})
    body, streamed = request_body(groq)
    assert not streamed and body["response_format"] == {"type": "json_object"}


def test_gateway_light_path_retries_a_429(scripted_server) -> None:
    scripted_server.enqueue(Fault(status=429, retry_after=0.05), Reply(text="ok"))
    settings = scripted_settings(scripted_server, cache={"enabled": False})

    async def call() -> str:
        gateway = Gateway(settings, EventBus(), environ=scripted_environ(), light_transport=True)
        try:
            result = await gateway.complete(CallRequest(messages=[Message(role="user", content="hi")], alias="fast"))
        finally:
            await gateway.aclose()
        assert result.retries == 1
        return result.text

    assert asyncio.run(call()) == "ok"
    gap = scripted_server.requests[1].ts - scripted_server.requests[0].ts
    assert gap >= 0.05  # Retry-After honoured


HOOK_PROBE = """
import json, sys
from aetherflow.hooks.pre_commit import run_hook
code = run_hook()
print(json.dumps({"code": code, "litellm": "litellm" in sys.modules, "openai": "openai" in sys.modules}))
"""


def test_hook_review_never_imports_litellm(make_repo, hook_env, scripted_server) -> None:
    scripted_server.enqueue(Reply(json={"findings": []}))
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    stage(repo, hook_env, {"b.py": "y = 2\n"})
    done = subprocess.run([sys.executable, "-c", HOOK_PROBE], cwd=repo, env=hook_env, capture_output=True,
                          text=True, timeout=120)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {"code": 0, "litellm": False, "openai": False}, done.stderr
    assert scripted_server.request_count == 1 and "no findings" in done.stderr


def test_review_by_hand_on_a_range(make_repo, hook_env, scripted_server) -> None:
    scripted_server.enqueue(Reply(json={"findings": [
        {"file": "b.py", "line": 1, "severity": "low", "category": "debug", "message": "leftover print."},
    ]}))
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    stage(repo, hook_env, {"b.py": "print('x')\n"})
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", "b"], cwd=repo, env=hook_env, check=True)
    done = subprocess.run([sys.executable, "-m", "aetherflow", "review", "--range", "HEAD~1..HEAD", "--json"],
                          cwd=repo, env=hook_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["source"] == "HEAD~1..HEAD" and report["outcome"] == "findings"
    assert report["findings"][0]["file"] == "b.py" and report["findings"][0]["source"] == "model"
    both = subprocess.run([sys.executable, "-m", "aetherflow", "review", "--staged", "--range", "a..b"],
                          cwd=repo, env=hook_env, capture_output=True, text=True, timeout=120)
    assert both.returncode != 0 and "two different diffs" in both.stderr


def test_hook_install_defaults_to_both(make_repo, hook_env) -> None:
    repo = make_repo()
    run = lambda *args: subprocess.run([sys.executable, "-m", "aetherflow", "hook", *args], cwd=repo,  # noqa: E731
                                       env=hook_env, capture_output=True, text=True, timeout=120)
    assert run("install", "--pre-commit").returncode == 0
    status = {s["name"]: s["state"] for s in json.loads(run("status", "--json").stdout)}
    assert status == {"post-commit": "absent", "pre-commit": "ours"}
    assert run("install").returncode == 0
    status = {s["name"]: s["state"] for s in json.loads(run("status", "--json").stdout)}
    assert status == {"post-commit": "ours", "pre-commit": "ours"}
    assert run("uninstall").returncode == 0
    assert not any(Path(repo, ".git", "hooks", n).exists() for n in ("pre-commit", "post-commit"))
