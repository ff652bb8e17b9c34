"""The run's isolated workspace: a git worktree per run, safe edits, change sets, atomic apply and undo, checks.

Safety rules (ARCHITECTURE.md, "What safe means here"): the user's working tree, index and untracked files are
never modified until they accept; accepted changes are applied atomically with a journal; `aether undo` restores
the previous bytes exactly; no path outside the repository root is read or written after resolving symlinks.

Modules: `safety` (path checks), `edits` (search/replace), `worktree` (the Workspace), `snapshot` (reading the
user's tree without touching it), `changeset` (diffs and hunks), `apply` (apply, undo, recovery, commit),
`journal` (the atomic transaction), `validate` (syntax checks and configured check commands).
"""
