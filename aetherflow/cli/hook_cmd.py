"""`aether hook install|uninstall|status`: AetherFlow's git hooks; `aether hook run` is what they call."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aetherflow.cli import app
from aetherflow.cli._output import console, print_json
from aetherflow.errors import UsageError

hook_app = typer.Typer(help="Install, remove or inspect AetherFlow's git hooks.", no_args_is_help=True)
app.add_typer(hook_app, name="hook")

# Hook name → what it does. A new hook adds its entry here and a branch in `run`.
HOOKS: dict[str, str] = {
    "post-commit": "updates the index in the background after every commit",
    "pre-commit": "reviews the staged changes before every commit (a staged secret blocks it)",
}


def _check_name(name: str) -> str:
    if name not in HOOKS:
        raise UsageError(f"AetherFlow has no '{name}' hook.", f"Known hooks: {', '.join(sorted(HOOKS))}.")
    return name


def _root() -> Path:
    from aetherflow.index.gitrepo import check_work_tree

    return check_work_tree(Path.cwd())


HookName = Annotated[str | None, typer.Argument(help="Which hook (default: all, or those flagged).")]
PreCommitFlag = Annotated[bool, typer.Option("--pre-commit", help="The pre-commit review.")]
PostCommitFlag = Annotated[bool, typer.Option("--post-commit", help="The post-commit index update.")]


def _selected(name: str | None, pre_commit: bool, post_commit: bool) -> list[str]:
    """The hooks a command applies to: those named or flagged, else all of them.

    All by default because both are safe to have on: the review blocks a commit only for a staged secret (or at
    a severity the user configured), never for a slow or missing model, and the index update runs detached.
    """
    names = [_check_name(name)] if name is not None else []
    names += [n for n, flagged in (("pre-commit", pre_commit), ("post-commit", post_commit)) if flagged]
    return list(dict.fromkeys(names)) or sorted(HOOKS)


@hook_app.command("install")
def install_command(
    name: HookName = None,
    pre_commit: PreCommitFlag = False,
    post_commit: PostCommitFlag = False,
) -> None:
    """Install hooks; an existing hook is kept and run first (chained), never overwritten."""
    from aetherflow.hooks import installer

    root = _root()
    for hook in _selected(name, pre_commit, post_commit):
        status = installer.install(root, hook)
        console().print(f"[green]✓[/] {status.describe()} — it {HOOKS[hook]}.")


@hook_app.command("uninstall")
def uninstall_command(
    name: HookName = None,
    pre_commit: PreCommitFlag = False,
    post_commit: PostCommitFlag = False,
) -> None:
    """Remove AetherFlow's hooks and restore the hooks they chained, if any."""
    from aetherflow.hooks import installer

    root = _root()
    for hook in _selected(name, pre_commit, post_commit):
        before = installer.status(root, hook)
        after = installer.uninstall(root, hook)
        if before.state == "ours":
            restored = " (your previous hook is back)" if after.state == "foreign" else ""
            console().print(f"[green]✓[/] removed AetherFlow's {hook} hook{restored}.")
        else:
            console().print(after.describe())


@hook_app.command("status")
def status_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show which AetherFlow hooks are installed, and what else is there."""
    from aetherflow.hooks import installer

    root = _root()
    statuses = [installer.status(root, name) for name in sorted(HOOKS)]
    if as_json:
        print_json([s.model_dump(mode="json") for s in statuses])
        return
    for status in statuses:
        console().print(status.describe())


@hook_app.command("run", hidden=True)
def run_command(
    name: str = typer.Argument(..., help="The hook git is running."),
    args: list[str] = typer.Argument(None, help="Arguments git passed to the hook."),
) -> None:
    """Entry point of the installed hook scripts (not for people)."""
    del args  # neither hook takes any; kept so git's arguments to other hooks never break the call
    if _check_name(name) == "pre-commit":
        from aetherflow.hooks.pre_commit import exit_now, run_hook

        exit_now(run_hook())
    if name == "post-commit":
        from aetherflow.errors import AetherError
        from aetherflow.hooks.post_commit import spawn_background_update

        try:
            spawn_background_update(_root())
        except (AetherError, OSError) as exc:
            # The commit is already made: say why the index was not updated, but never fail git's command.
            typer.echo(f"aether: index not updated after this commit: {exc}", err=True)

