"""`aether models`: the model catalogue with keys, prices, capabilities and the agents that use each model;
`aether models pull`: download the `hf:` GGUF files of in-process models now rather than on first use.

Key values are never printed, only whether the variable is set. LiteLLM (about 2 s to import) is only loaded
when some model has no configured price and its price must be looked up in LiteLLM's bundled table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from aetherflow.cli import app
from aetherflow.cli._output import console, err_console, print_json

if TYPE_CHECKING:
    from aetherflow.config.models import ModelConfig, Settings
    from aetherflow.services import Services

PriceSource = Literal["config", "local", "litellm table", "unknown"]

models_app = typer.Typer(
    name="models",
    help="List the model catalogue; `aether models pull` downloads in-process model files.",
    invoke_without_command=True,
)
app.add_typer(models_app)


@dataclass(frozen=True)
class InProcess:
    """What `aether models` and `aether doctor` say about one in-process entry, read without loading it."""

    installed: bool
    status: str
    file: str | None = None
    size_mb: float | None = None
    quantisation: str | None = None
    trained_context: int | None = None
    n_ctx: int | None = None
    # The bundled SmolLM2: a demo that rarely completes real tasks.
    tiny: bool = False


def in_process(alias: str, model: ModelConfig) -> InProcess:
    """The status of the in-process entry `alias`, with its file's header details when the file is here."""
    from aetherflow.errors import ConfigError
    from aetherflow.llm.local_model import checked_info, context_for, model_status

    installed, status = model_status(model)
    tiny = model.gguf is None
    path = _present_file(model) if installed else None
    if path is None:
        return InProcess(installed, status, tiny=tiny)
    try:
        info = checked_info(path, alias)
    except ConfigError as exc:
        return InProcess(False, f"{exc.message} {exc.hint or ''}".strip(), file=str(path), tiny=tiny)
    return InProcess(
        installed, status, file=str(path), size_mb=round(info.size_bytes / 1_000_000, 1),
        quantisation=info.quantisation, trained_context=info.context_length, n_ctx=context_for(model, info),
        tiny=tiny,
    )


def _present_file(model: ModelConfig) -> Path | None:
    """The entry's file when it is on this machine (an `hf:` file only once downloaded), else None."""
    from aetherflow.llm.gguf_fetch import is_hf_ref, parse_hf_ref
    from aetherflow.llm.local_model import find_gguf, gguf_path

    if model.gguf is None:
        return find_gguf()
    path = parse_hf_ref(model.gguf).local_path() if is_hf_ref(model.gguf) else gguf_path(model.gguf)
    return path if path.is_file() else None


def describe_in_process(state: InProcess) -> str:
    """File name, size, quantisation, context and folder; or why the model cannot run."""
    if not state.installed or state.file is None:
        return state.status
    path = Path(state.file)
    trained = f" of {state.trained_context} trained" if state.trained_context else ""
    return (f"{path.name}, {state.size_mb:g} MB, {state.quantisation}, context {state.n_ctx}{trained}; "
            f"in {path.parent}")


def _price(model: ModelConfig) -> tuple[float | None, float | None, PriceSource]:
    if model.price is not None:
        return model.price.input, model.price.output, "config"
    if model.local:
        return 0.0, 0.0, "local"
    from aetherflow.llm.pricing import resolve_price

    price = resolve_price(model)
    if price is None:
        return None, None, "unknown"
    return price.input, price.output, "litellm table"


def _key_state(model: ModelConfig, environ: Any) -> bool | None:
    """True/False for whether the key variable is set; None when the model needs no key."""
    if model.local or not model.key_env:
        return None
    return bool(environ.get(model.key_env))


def model_rows(services: Services) -> list[dict[str, Any]]:
    """One plain dict per catalogue entry, in catalogue order (also the `--json` output)."""
    settings = services.settings
    rows = []
    for alias, model in settings.models.items():
        price_in, price_out, source = _price(model)
        row: dict[str, Any] = {
            "alias": alias,
            "provider": model.provider,
            "model": model.model,
            "api_base": model.api_base,
            "key_env": model.key_env,
            "key_set": _key_state(model, services.environ),
            "location": "local" if model.local else "remote",
            "in_process": model.embedded,
            "price_in_per_1m": price_in,
            "price_out_per_1m": price_out,
            "price_source": source,
            "context_window": model.context_window,
            "capabilities": list(model.capabilities),
            "agents": settings.agents_using(alias),
        }
        if model.embedded:
            state = in_process(alias, model)
            row["installed"], row["status"], row["gguf"] = state.installed, state.status, asdict(state)
        elif model.local:
            row["installed"], row["status"] = True, f"served on this machine at {model.api_base}"
        rows.append(row)
    return rows


WIDTH = 80


def _key_cell(row: dict[str, Any]) -> str:
    if row["key_set"] is None:
        return "[dim]-[/]"
    mark = "[green]✓[/]" if row["key_set"] else "[red]✗[/]"
    return f"{mark} {escape(row['key_env'])}"


def _price_cell(row: dict[str, Any]) -> str:
    if row["price_source"] == "unknown":
        return "[yellow]?[/]"
    return f"{row['price_in_per_1m']:g}/{row['price_out_per_1m']:g}"


def _model_cell(row: dict[str, Any]) -> str:
    where = ""
    if row["in_process"]:
        where = " [dim](in-process)[/]"
    elif row["location"] == "local":
        where = " [dim](local server)[/]"
    used = ", ".join(row["agents"]) or "no agent"
    return f"{escape(row['model'])}{where}\n[dim]used by {escape(used)}[/]"


def _print_table(rows: list[dict[str, Any]]) -> None:
    """The catalogue in at most 80 columns; each in-process model gets a paragraph below it."""
    from rich import box

    out = console()
    out.width = min(out.width, WIDTH)
    table = Table(title="Models (USD per 1M tokens, in/out)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("alias", overflow="fold")
    table.add_column("model", overflow="fold", ratio=1)
    table.add_column("key", no_wrap=True)
    table.add_column("price", no_wrap=True)
    for row in rows:
        table.add_row(escape(row["alias"]), _model_cell(row), _key_cell(row), _price_cell(row))
    out.print(table)
    for row in rows:
        if row["in_process"]:
            _print_in_process(row["alias"], InProcess(**row["gguf"]))


def _print_in_process(alias: str, state: InProcess) -> None:
    out = console()
    out.width = min(out.width, WIDTH)
    ready = "[green]ready[/]" if state.installed else "[red]cannot run[/]"
    out.print(f"[bold]{escape(alias)}[/] (in-process, {ready}): {escape(describe_in_process(state))}")
    if state.tiny:
        out.print(f"  [yellow]![/] {escape(_tiny_note())}")


def _tiny_note() -> str:
    from aetherflow.llm.local_model import TINY_MODEL_NOTE

    return TINY_MODEL_NOTE


@models_app.callback()
def models_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the model catalogue: provider, LiteLLM id, key present or missing, price, capabilities, users."""
    if ctx.invoked_subcommand is not None:
        return
    from aetherflow.services import build_services

    rows = model_rows(build_services())
    if as_json:
        print_json(rows)
    else:
        _print_table(rows)


@models_app.command("pull")
def pull_command(
    alias: Annotated[str | None, typer.Argument(help="The model to download (default: every hf: model).")] = None,
) -> None:
    """Download the GGUF file of ALIAS (or of every model with gguf = "hf:...") now, instead of on first use."""
    from aetherflow.services import build_services

    settings = build_services().settings
    targets = _pull_targets(settings, alias)
    if not targets:
        console().print('No model has gguf = "hf:OWNER/REPO/FILE.gguf": nothing to download.')
        return
    for name in targets:
        path = _pull(name, settings.models[name])
        console().print(f"[green]✓[/] {escape(name)}: {escape(path)}")


def _pull_targets(settings: Settings, alias: str | None) -> list[str]:
    """ALIAS (checked to be an in-process entry), or every entry with an `hf:` file."""
    from aetherflow.errors import UsageError
    from aetherflow.llm.chain import model_config
    from aetherflow.llm.gguf_fetch import is_hf_ref

    if alias is None:
        return [name for name, m in settings.models.items() if m.gguf is not None and is_hf_ref(m.gguf)]
    if not model_config(settings, alias).embedded:
        raise UsageError(f"'{alias}' is not an in-process model: there is no file to download.",
                         "Name an entry with local = true and a gguf setting (see `aether models`).")
    return [alias]


def _pull(alias: str, model: ModelConfig) -> str:
    """Download (if needed) and check ALIAS's file; a line describing it."""
    from aetherflow.errors import ModelUnavailableError
    from aetherflow.llm.gguf_fetch import fetch, is_hf_ref, parse_hf_ref
    from aetherflow.llm.local_model import INSTALL_FIX, checked_info, find_gguf, gguf_path

    if model.gguf is None:
        path = find_gguf()
        if path is None:
            raise ModelUnavailableError(f"'{alias}' is the bundled demo model, which is not installed.", INSTALL_FIX)
    elif is_hf_ref(model.gguf):
        err_console().print(f"{escape(alias)}: {escape(model.gguf)}")
        path = fetch(parse_hf_ref(model.gguf), model.gguf_sha256)
    else:
        path = gguf_path(model.gguf)
    return f"{path} ({checked_info(path, alias).summary()})"
