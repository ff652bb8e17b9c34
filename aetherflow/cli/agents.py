"""`aether agents list|show|add|edit|remove`: agent prototypes, edited in the repository's aetherflow.toml.

Every change is validated as part of the whole layered configuration before the file is written, and the file
keeps its comments and layout (see aetherflow.config.editor).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from aetherflow.cli import app
from aetherflow.cli._output import console, err_console, print_json, short_source
from aetherflow.errors import UsageError

if TYPE_CHECKING:
    from aetherflow.config.models import Settings
    from aetherflow.services import Services

agents_app = typer.Typer(
    name="agents",
    help="List, show, add, edit and remove agent prototypes (stored in the repository's aetherflow.toml).",
    no_args_is_help=True,
)
app.add_typer(agents_app)

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="The agent's name, e.g. 'coder'.")]
Fallbacks = Annotated[
    list[str] | None, typer.Option("--fallback", help="A fallback model alias; repeat in order of preference.")
]
Prompt = Annotated[
    str | None, typer.Option("--prompt", help="Prompt file in prompts/ (default for add: ROLE.md).")
]
Tools = Annotated[
    list[str] | None,
    typer.Option("--tool", help="An allowed tool (read_file, list_dir, search_code, grep, edit_file, ...); repeat."),
]
Temperature = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature, 0 to 2.")]
MaxOutput = Annotated[int | None, typer.Option("--max-output-tokens", help="Upper bound on the reply length.")]
Output = Annotated[Literal["text", "json"] | None, typer.Option("--output", help="Reply format.")]
OutputSchema = Annotated[
    str | None, typer.Option("--output-schema", help="JSON schema file for --output json.")
]
Description = Annotated[str | None, typer.Option("--description", help="One line saying what the agent is for.")]


def _services() -> Services:
    from aetherflow.services import build_services

    return build_services()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UsageError(
            f"'{name}' is not a valid agent name.",
            "Use letters, digits, '-' and '_' only, e.g. `aether agents add doc-writer ...`.",
        )


def agent_sources(services: Services) -> dict[str, list[str]]:
    """For each agent, the configuration layers that define or change it, lowest first."""
    from aetherflow.config.loader import collect_layers

    sources: dict[str, list[str]] = {}
    for layer in collect_layers(services.repo_root, environ=services.environ):
        agents = layer.data.get("agents")
        if isinstance(agents, dict):
            for name in agents:
                sources.setdefault(name, []).append(short_source(layer.name, services.repo_root))
    return sources


def _rules_naming(settings: Settings, name: str) -> list[str]:
    """'task_type (primary)' for each routing rule that names the agent."""
    found = []
    for rule in settings.routing.rules:
        if rule.primary == name:
            found.append(f"{rule.task_type} (primary)")
        if rule.secondary == name:
            found.append(f"{rule.task_type} (secondary)")
    return found


def _require_agent(settings: Settings, name: str) -> None:
    if name not in settings.agents:
        raise UsageError(
            f"There is no agent named '{name}' (known: {', '.join(sorted(settings.agents))}).",
            "Run `aether agents list` to see them, or `aether agents add NAME --role ... --model ...`.",
        )


def _agent_json(settings: Settings, name: str, sources: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        **settings.agents[name].model_dump(),
        "sources": sources,
        "routing_rules": _rules_naming(settings, name),
    }


@agents_app.command("list")
def list_agents(as_json: JsonFlag = False) -> None:
    """List every agent: role, model, fallbacks, tools and the files that define it."""
    from rich.table import Table

    services = _services()
    settings, sources = services.settings, agent_sources(services)
    if as_json:
        print_json([_agent_json(settings, name, sources.get(name, [])) for name in settings.agents])
        return
    table = Table(title="Agents")
    for column in ("name", "role", "model", "fallbacks", "tools", "source"):
        table.add_column(column, overflow="fold")
    for name, agent in settings.agents.items():
        label = name if agent.enabled else f"[dim]{name} (disabled)[/]"
        cells = (agent.role, agent.model, ", ".join(agent.fallbacks) or "-", ", ".join(agent.tools) or "-",
                 ", ".join(sources.get(name, [])))
        table.add_row(label, *map(escape, cells))
    console().print(table)


@agents_app.command("show")
def show_agent(name: NameArg, as_json: JsonFlag = False) -> None:
    """Show one agent's full definition and the routing rules that use it."""
    from rich.table import Table

    services = _services()
    settings = services.settings
    _require_agent(settings, name)
    data = _agent_json(settings, name, agent_sources(services).get(name, []))
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Agent {name}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        table.add_row(key, escape("-" if shown in (None, "") else str(shown)))
    console().print(table)


def _prompt_note(repo_root: Path, prompt: str) -> None:
    """Warn (without failing) when the prompt file is neither in the repo's prompts/ nor shipped."""
    from aetherflow import paths

    if not ((repo_root / "prompts" / prompt).is_file() or (paths.prompts_dir() / prompt).is_file()):
        err_console().print(
            "[yellow]note:[/] "
            + escape(f"prompt file '{prompt}' was not found in {repo_root / 'prompts'} nor among the shipped "
                     f"prompts; create prompts/{prompt} before running this agent.")
        )


def _save(services: Services, name: str, fields: dict[str, Any]) -> Path:
    from aetherflow.config.editor import RepoConfigEditor

    editor = RepoConfigEditor(services.require_repo(), environ=services.environ)
    editor.set_agent_fields(name, fields)
    editor.save()
    return editor.path


@agents_app.command("add")
def add_agent(
    name: NameArg,
    role: Annotated[str, typer.Option("--role", help="The agent's role, e.g. 'coder' or 'reviewer'.")],
    model: Annotated[str, typer.Option("--model", help="Model alias from `aether models`.")],
    fallback: Fallbacks = None,
    prompt: Prompt = None,
    tool: Tools = None,
    temperature: Temperature = None,
    max_output_tokens: MaxOutput = None,
    output: Output = None,
    output_schema: OutputSchema = None,
    description: Description = None,
) -> None:
    """Add an agent to aetherflow.toml (validated before writing)."""
    _check_name(name)
    services = _services()
    repo_root = services.require_repo()
    if name in services.settings.agents:
        raise UsageError(
            f"An agent named '{name}' already exists.",
            f"Change it with `aether agents edit {name} ...`, or pick another name.",
        )
    fields = _given(
        description=description, role=role, model=model, fallbacks=fallback or None,
        prompt=prompt or f"{role}.md", tools=tool or None, temperature=temperature,
        max_output_tokens=max_output_tokens, output=output, output_schema=output_schema,
    )
    path = _save(services, name, fields)
    console().print("[green]✓[/] " + escape(f"Added agent '{name}' to {path}."))
    _prompt_note(repo_root, fields["prompt"])


def _given(**options: Any) -> dict[str, Any]:
    """The options the user actually gave (None means 'not given'), keyed by AgentConfig field names."""
    return {key: value for key, value in options.items() if value is not None}


@agents_app.command("edit")
def edit_agent(
    name: NameArg,
    role: Annotated[str | None, typer.Option("--role", help="New role.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="New model alias.")] = None,
    fallback: Fallbacks = None,
    no_fallbacks: Annotated[bool, typer.Option("--no-fallbacks", help="Remove every fallback.")] = False,
    prompt: Prompt = None,
    tool: Tools = None,
    temperature: Temperature = None,
    max_output_tokens: MaxOutput = None,
    output: Output = None,
    output_schema: OutputSchema = None,
    description: Description = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Turn the agent on or off.")] = None,
) -> None:
    """Change an agent; for a built-in one, only the changed keys are written to aetherflow.toml."""
    services = _services()
    repo_root = services.require_repo()
    _require_agent(services.settings, name)
    fields = _given(
        description=description, role=role, model=model, fallbacks=[] if no_fallbacks else (fallback or None),
        prompt=prompt, tools=tool or None, temperature=temperature, max_output_tokens=max_output_tokens,
        output=output, output_schema=output_schema, enabled=enabled,
    )
    if not fields:
        raise UsageError(
            "Nothing to change: no option was given.",
            f"Pass at least one option, e.g. `aether agents edit {name} --model deepseek`.",
        )
    path = _save(services, name, fields)
    console().print("[green]✓[/] " + escape(f"Updated agent '{name}' in {path}: {', '.join(fields)}."))
    if prompt is not None:
        _prompt_note(repo_root, prompt)


@agents_app.command("remove")
def remove_agent(name: NameArg) -> None:
    """Remove an agent; a built-in (or user-wide) one is disabled in aetherflow.toml instead."""
    from aetherflow.config.editor import RepoConfigEditor

    services = _services()
    settings = services.settings
    _require_agent(settings, name)
    rules = _rules_naming(settings, name)
    if rules:
        raise UsageError(
            f"Agent '{name}' is still named by routing rule(s): {', '.join(rules)}.",
            "Point those rules at another agent under [[routing.rules]] in aetherflow.toml first "
            "(aetherflow.toml.example shows the format), then remove it.",
        )
    editor = RepoConfigEditor(services.require_repo(), environ=services.environ)
    editor.remove_agent(name)
    lower = [s for s in agent_sources(services).get(name, []) if s != "aetherflow.toml"]
    if lower:
        editor.set_agent_fields(name, {"enabled": False})
    editor.save()
    if lower:
        message = (f"Agent '{name}' is defined in {', '.join(lower)}, so it was disabled: "
                   f"wrote `enabled = false` for it in {editor.path}.")
    else:
        message = f"Removed agent '{name}' from {editor.path}."
    console().print("[green]✓[/] " + escape(message))
