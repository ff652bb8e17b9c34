"""`aether search`: hybrid search over the repository index, printed as path:line, symbol, score and snippet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aetherflow.cli import app
from aetherflow.cli._output import console, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from aetherflow.index.search import SearchHit

SNIPPET_LINES = 6


@app.command("search")
def search_command(
    query: str = typer.Argument(..., help="What to look for: words, a description, or an identifier."),
    k: int = typer.Option(10, "-k", min=1, max=200, help="How many results."),
    lang: str | None = typer.Option(None, "--lang", help="Only this language (py, ts, go, rust, ...)."),
    path: str | None = typer.Option(None, "--path", help="Only paths matching this glob (gitignore syntax)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Search the repository index (build it first with `aether index`)."""
    from aetherflow.index.gitrepo import check_work_tree
    from aetherflow.index.search import Retriever
    from aetherflow.services import build_services

    root = check_work_tree(Path.cwd())
    services = build_services(cwd=root)
    with Retriever(root, services.settings.index, environ=services.environ) as retriever:
        hits = retriever.search(query, k=k, language=lang, path_glob=path)
    if as_json:
        print_json([hit.model_dump() | {"location": hit.location} for hit in hits])
        return
    out = console()
    if not hits:
        out.print("No results. Try other words, drop --lang/--path, or run `aether index` if files changed.")
        return
    for rank, hit in enumerate(hits, start=1):
        _print_hit(out, rank, hit, query)


def _print_hit(out: Console, rank: int, hit: SearchHit, query: str) -> None:
    from rich.text import Text

    from aetherflow.index.search import matching_words, snippet

    title = Text(f"{rank:>2}. ")
    title.append(hit.location, style="bold cyan")
    if hit.qualified_symbol:
        title.append(f"  {hit.qualified_symbol}", style="bold")
    title.append(f"  ({hit.kind} · {hit.language})  {hit.score:.4f}", style="dim")
    out.print(title)
    first, lines = snippet(hit, query, SNIPPET_LINES)
    width = len(str(first + len(lines)))
    for offset, line in enumerate(lines):
        text = Text(f"    {first + offset:>{width}} │ ", style="dim")
        body = Text(line.rstrip())
        body.highlight_words(matching_words(line, query), style="bold yellow")
        text.append_text(body)
        out.print(text, soft_wrap=True)
