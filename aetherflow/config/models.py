"""The Settings model: every key a user can set, with its type, default and cross-checks.

Built-in defaults live in `defaults.toml` beside this file (data, not code); `loader.py` layers the user's files
and environment on top and validates the result against these models.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from aetherflow.config.trust import RepoTrust

Capability = Literal["tools", "json_schema", "vision", "streaming", "prompt_cache"]
ToolName = Literal[
    "read_file", "list_dir", "search_code", "grep", "edit_file", "create_file", "delete_file", "run_check"
]
MissingKeyPolicy = Literal["local", "error"]
# How a model is asked for JSON: OpenAI's json_schema, llama.cpp's json_object with a schema, or the schema in the
# prompt with a repair round. None (the default) picks json_schema for models with that capability, else prompt.
StructuredOutput = Literal["json_schema", "json_object_schema", "prompt"]
# How an agent's model edits files: native tool calls, SEARCH/REPLACE blocks in text, or whole files in text.
# None (the default) picks tools for models with tool calling, whole files for local models, else diff.
EditFormat = Literal["tools", "diff", "whole"]
# The least time one call to an in-process model is given: a 1.5B model on 2 cores writes about 10 tokens/s.
IN_PROCESS_TIMEOUT_S = 900.0
# Severities of review findings, lowest first; "never" as a blocking threshold means findings only inform.
ReviewSeverity = Literal["low", "medium", "high"]
BlockOn = Literal["never", "low", "medium", "high"]


def is_loopback_url(url: str) -> bool:
    """True when `url`'s host is this machine: localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per one million tokens. Cached reads and cache writes default to the input price when absent."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class ModelConfig(_Strict):
    """One entry of the model catalogue, addressed by its alias."""

    model: str = Field(description="LiteLLM model id, e.g. 'deepseek/deepseek-chat' or 'openai/my-model'.")
    api_base: str | None = None
    key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    price: Price | None = None
    context_window: int = Field(default=8192, gt=0)
    capabilities: list[Capability] = Field(default_factory=lambda: ["streaming"])
    local: bool = Field(
        default=False,
        description="Runs on this machine: the embedded model (no api_base) or a server on a loopback address.",
    )
    max_concurrency: int = Field(default=4, ge=1)
    gguf: str | None = Field(
        default=None,
        description="In-process model file: a path to a .gguf file, or hf:OWNER/REPO/FILE.gguf (downloaded once).",
    )
    gguf_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    n_ctx: int | None = Field(default=None, gt=0, description="In-process context length; default: context_window.")
    n_threads: int | None = Field(default=None, ge=1, description="In-process generation threads.")
    structured_output: StructuredOutput | None = None
    edit_format: EditFormat | None = None
    timeout_s: float | None = Field(
        default=None, gt=0,
        description="Time limit of one call to this model; default gateway.timeout_s, and for an in-process model "
        "at least IN_PROCESS_TIMEOUT_S (a CPU writes a long file in minutes, and a retry would only repeat it).",
    )

    @model_validator(mode="after")
    def _gguf_is_in_process(self) -> ModelConfig:
        if self.gguf is not None and (not self.local or self.api_base is not None):
            raise ValueError(
                "`gguf`: a GGUF file runs in-process, so the entry needs local = true and no api_base"
            )
        return self

    @model_validator(mode="after")
    def _local_stays_on_this_machine(self) -> ModelConfig:
        # `local` is what privacy.local_only trusts, so a local model's server must be on this machine.
        if self.local and self.api_base is not None and not is_loopback_url(self.api_base):
            raise ValueError(
                f"`api_base`: a local model must be served on this machine (localhost, 127.0.0.1 or ::1), "
                f"not {self.api_base}; set local = false for a server elsewhere"
            )
        return self

    @property
    def embedded(self) -> bool:
        """The in-process model (llama-cpp), as opposed to a local server reached over HTTP."""
        return self.local and self.api_base is None

    @property
    def provider(self) -> str:
        """The provider part of the LiteLLM id ('anthropic', 'openai', 'local', ...)."""
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def call_timeout_s(self, gateway_timeout_s: float) -> float:
        """The time limit of one attempt at this model."""
        if self.timeout_s is not None:
            return self.timeout_s
        return max(gateway_timeout_s, IN_PROCESS_TIMEOUT_S) if self.embedded else gateway_timeout_s

    @property
    def structured_mode(self) -> StructuredOutput:
        """How this model is asked for JSON, as configured or derived from its capabilities."""
        if self.structured_output is not None:
            return self.structured_output
        return "json_schema" if self.supports("json_schema") else "prompt"

    @property
    def edit_mode(self) -> EditFormat:
        """How this model edits files, as configured or derived: tools when it calls tools; whole files for a
        local model (small models copy a whole short file far more reliably than they write exact SEARCH blocks);
        else SEARCH/REPLACE blocks."""
        if self.edit_format is not None:
            return self.edit_format
        if self.supports("tools"):
            return "tools"
        return "whole" if self.local else "diff"


class AgentConfig(_Strict):
    """An agent prototype: which model plays which role, with which prompt and tools."""

    description: str = ""
    role: str
    model: str
    fallbacks: list[str] = Field(default_factory=list)
    prompt: str = Field(description="Prompt file: a path inside the repository, else a shipped prompt name.")
    tools: list[ToolName] = Field(default_factory=list)
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_output_tokens: int = Field(default=4096, gt=0)
    output: Literal["text", "json"] = "text"
    output_schema: str | None = Field(default=None, description="JSON schema file when output = 'json'.")
    enabled: bool = True


class SwitchWhen(_Strict):
    """Conditions under which the router prefers the secondary agent. Any one that holds is enough."""

    tokens_over: int | None = Field(default=None, ge=0)
    complexity_over: float | None = Field(default=None, ge=0, le=1)
    speed_priority_over: float | None = Field(default=None, ge=0, le=1)
    cost_sensitivity_over: float | None = Field(default=None, ge=0, le=1)
    needs_vision: bool | None = None


class RoutingRule(_Strict):
    """One row of the decision matrix: a task type, its primary and secondary agents, when to switch."""

    task_type: str
    description: str = ""
    primary: str
    secondary: str | None = None
    switch_when: SwitchWhen = Field(default_factory=SwitchWhen)


class RoutingConfig(_Strict):
    """The decision matrix plus the feedback loop's settings."""

    default_task_type: str = "module_generation"
    learn_from_outcomes: bool = True
    min_samples: int = Field(default=5, ge=1)
    rules: list[RoutingRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_task_types(self) -> RoutingConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.task_type in seen:
                raise ValueError(f"task type '{rule.task_type}' appears in two routing rules")
            seen.add(rule.task_type)
        if self.rules and self.default_task_type not in seen:
            raise ValueError(f"default_task_type '{self.default_task_type}' has no routing rule")
        return self


class BudgetConfig(_Strict):
    """Spending limits in USD; absent means no limit."""

    per_run_usd: float | None = Field(default=None, gt=0)
    per_day_usd: float | None = Field(default=None, gt=0)


class PrivacyConfig(_Strict):
    """What may leave the machine."""

    redact_secrets: bool = True
    local_only: bool = False


class CacheConfig(_Strict):
    """The on-disk response cache."""

    enabled: bool = True
    dir: str | None = Field(default=None, description="Default: the user cache folder.")
    ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    size_limit_mb: int = Field(default=512, gt=0)


class GatewayConfig(_Strict):
    """Reliability settings for every model call."""

    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=60.0, ge=0)
    missing_key: MissingKeyPolicy = "local"
    local_alias: str | list[str] = Field(
        default="local",
        description="The local model that replaces a model whose key is missing; a list is a cascade, cheapest first.",
    )
    delta_interval_ms: int = Field(default=50, ge=0)

    @property
    def local_aliases(self) -> list[str]:
        """`local_alias` as a list: the cascade of local models, cheapest first."""
        return [self.local_alias] if isinstance(self.local_alias, str) else list(self.local_alias)


class IndexConfig(_Strict):
    """The repository index."""

    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    model_path: str | None = Field(default=None, description="Folder holding the ONNX model (offline loading).")
    url: str | None = Field(default=None, description="Qdrant server URL; empty means the embedded store.")
    api_key_env: str | None = None
    max_file_bytes: int = Field(default=1_000_000, gt=0)
    ignore: list[str] = Field(default_factory=list, description="Extra gitignore-style patterns.")


class ChecksConfig(_Strict):
    """Check commands agents may run (tests, lint) and their time limit."""

    commands: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=300.0, gt=0)
    fix_rounds: int = Field(
        default=1, ge=0, le=5, description="Answers per candidate that see the failing checks' output and fix it.",
    )
    samples: int = Field(
        default=3, ge=1, le=8,
        description="Candidates sampled (at rising temperatures) before escalating; with fix_rounds, the answer "
        "budget is samples * (1 + fix_rounds), and a model whose fixes change nothing gets more candidates instead.",
    )


PlanningMode = Literal["auto", "model", "single"]


class PlanningConfig(_Strict):
    """How a request becomes a plan."""

    mode: PlanningMode = Field(
        default="auto",
        description="model: the orchestrator agent plans; single: one subtask, no planning call; auto: single when "
        "the orchestrator would run on a local model (small local models plan worse than they edit).",
    )


class HooksConfig(_Strict):
    """The pre-commit review hook (`aether hook install`) and `aether review`."""

    timeout_s: float = Field(default=15.0, gt=0, description="Time budget; past it the commit goes ahead, unreviewed.")
    block_on: BlockOn = Field(
        default="never", description="Lowest model-finding severity that blocks the commit; secrets always block."
    )
    model_review: bool = Field(default=True, description="false: only the local secret scan runs (no model call).")
    use_local_model: bool = Field(default=True, description="Review with the local model when no key is set.")
    max_diff_chars: int = Field(default=60_000, ge=1000, description="Longer diffs are cut, with a note to the model.")


class Settings(_Strict):
    """The whole configuration after layering."""

    models: dict[str, ModelConfig]
    agents: dict[str, AgentConfig]
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    planning: PlanningConfig = Field(default_factory=PlanningConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    # The layer names that produced these settings, lowest first (for `aether doctor`).
    _sources: list[str] = PrivateAttr(default_factory=list)
    # The repository file's trust state and the keys ignored because it is not trusted (config/trust.py).
    _repo_trust: RepoTrust | None = PrivateAttr(default=None)

    @property
    def sources(self) -> list[str]:
        return list(self._sources)

    @property
    def repo_trust(self) -> RepoTrust | None:
        """The `RepoTrust` of the repository's aetherflow.toml, or None when there is no such file."""
        return self._repo_trust

    @model_validator(mode="after")
    def _references_exist(self) -> Settings:
        # Messages start with the offending key in backticks: the loader uses it to name the file that set it.
        for name, agent in self.agents.items():
            for key, alias in [("model", agent.model), *(("fallbacks", a) for a in agent.fallbacks)]:
                if alias not in self.models:
                    raise ValueError(
                        f"`agents.{name}.{key}`: agent '{name}' uses model '{alias}', which is not in [models] "
                        f"(known: {', '.join(sorted(self.models))})"
                    )
        for index, rule in enumerate(self.routing.rules):
            for key, agent_name in (("primary", rule.primary), ("secondary", rule.secondary)):
                if agent_name is not None and agent_name not in self.agents:
                    raise ValueError(
                        f"`routing.rules.{index}.{key}`: routing rule '{rule.task_type}' names agent "
                        f"'{agent_name}', which is not in [agents]"
                    )
        if self.privacy.local_only and self.index.url and not is_loopback_url(self.index.url):
            raise ValueError(
                f"`index.url`: privacy.local_only is on, but the index server {self.index.url} is on another machine "
                "and would receive your code; unset index.url (the embedded index) or use a server on this machine"
            )
        if not self.gateway.local_aliases:
            raise ValueError("`gateway.local_alias`: the list is empty; name at least one local model")
        for alias in self.gateway.local_aliases if self.gateway.missing_key == "local" else []:
            if alias not in self.models:
                raise ValueError(
                    f"`gateway.local_alias`: '{alias}' is not in [models] (known: {', '.join(sorted(self.models))})"
                )
        return self

    def agents_using(self, alias: str) -> list[str]:
        """Names of the agents whose model or fallbacks include `alias`."""
        return [n for n, a in self.agents.items() if alias == a.model or alias in a.fallbacks]
