"""Which structured-output mode each model's server accepts, learned once per process.

A model's configured mode (`ModelConfig.structured_mode`) is where a structured call starts. Some servers refuse
it: llama-cpp-python's server refuses `json_schema` with a validation error (wrapped in HTTP 500), though it takes
`json_object` with a schema. When a server refuses a mode's request shape, the caller asks the same model again at
once in the next mode (`structured.next_mode`), and the mode reached is recorded here, so later calls in this
process start there instead of paying for the refusal again. Learning only ever moves forward along the fallback
order: two calls refused together cannot undo each other.
"""

from __future__ import annotations

import logging
import threading

from aetherflow.config.models import ModelConfig, StructuredOutput
from aetherflow.llm import structured
from aetherflow.llm.transport import TransportError

_log = logging.getLogger(__name__)
# The fallback order, earliest first (a learned mode is replaced only by a later one).
_ORDER: tuple[StructuredOutput, ...] = ("json_schema", "json_object_schema", "prompt")
# A model is one alias at one endpoint: the same alias pointed elsewhere (another gateway, another test's server)
# is another server, which may accept what this one refused.
_Key = tuple[str, str, str | None]


class StructuredModes:
    """A registry of the structured mode that works for each model, shared by every call. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._learned: dict[_Key, StructuredOutput] = {}

    def mode_for(self, alias: str, model: ModelConfig) -> StructuredOutput:
        """The mode to ask `alias` in: the one learned in this process, else its configured mode."""
        with self._lock:
            return self._learned.get(_key(alias, model), model.structured_mode)

    def after_refusal(
        self, alias: str, model: ModelConfig, mode: StructuredOutput | None, cause: BaseException | None
    ) -> StructuredOutput | None:
        """The mode to ask in next when `cause` is the server refusing `mode`'s response_format, else None.

        The new mode is recorded (and logged, the first time for this model) before it has been tried: the mode
        refused is known not to work, and the next one is the best guess left.
        """
        if mode is None or not isinstance(cause, TransportError) or cause.refused != "response_format":
            return None
        fallback = structured.next_mode(mode)
        if fallback is not None:
            self._learn(alias, model, mode, fallback)
        return fallback

    def learned(self) -> dict[str, StructuredOutput]:
        """The modes learned so far, by alias (for diagnostics and tests)."""
        with self._lock:
            return {key[0]: mode for key, mode in self._learned.items()}

    def forget(self) -> None:
        """Drop everything learned (a test isolating itself, or a user who changed the server)."""
        with self._lock:
            self._learned.clear()

    def _learn(self, alias: str, model: ModelConfig, refused: StructuredOutput, mode: StructuredOutput) -> None:
        key = _key(alias, model)
        with self._lock:
            known = self._learned.get(key)
            if known is not None and _ORDER.index(known) >= _ORDER.index(mode):
                return
            self._learned[key] = mode
        _log.warning(
            "%s (%s) refused structured output mode %s; asking it in mode %s for the rest of this process "
            "(set structured_output = \"%s\" in its [models] entry to skip the refusal)",
            alias, model.api_base or model.model, refused, mode, mode,
            extra={"alias": alias, "refused_mode": refused, "structured_mode": mode},
        )


def _key(alias: str, model: ModelConfig) -> _Key:
    return (alias, model.model, model.api_base)


# The process-wide registry every ModelCaller uses unless given its own.
PROCESS_MODES = StructuredModes()
