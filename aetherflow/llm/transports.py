"""Which transport serves a catalogue entry, and creating one: the only place that names the transport classes.

Each is imported when first needed: LiteLLM takes seconds to import, llama-cpp loads native code, and neither may
be on the start-up path of `aether --help`.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from aetherflow.config.models import ModelConfig
from aetherflow.llm.transport import Transport

TransportKind = Literal["local", "litellm", "openai_compat"]


def transport_kind(model: ModelConfig, light: bool) -> TransportKind:
    """In-process for embedded models; plain OpenAI-compatible HTTP when `light` (the hook) and the model allows;
    else LiteLLM."""
    if model.embedded:
        return "local"
    if light:
        from aetherflow.llm import openai_compat

        if openai_compat.supports(model):
            return "openai_compat"
    return "litellm"


async def create_transport(kind: TransportKind) -> Transport:
    """A new transport of `kind` (ModelUnavailableError when the local one cannot exist)."""
    if kind == "local":
        from aetherflow.llm.local import LocalTransport

        return LocalTransport()
    if kind == "openai_compat":
        from aetherflow.llm.openai_compat import OpenAICompatTransport

        return OpenAICompatTransport()
    from aetherflow.llm.litellm_transport import LiteLLMTransport

    # Importing LiteLLM takes seconds: in a thread, so the event loop (and a TUI on it) stays responsive.
    return await asyncio.to_thread(LiteLLMTransport)
