"""The agent tools as data: one pydantic model per tool's arguments, and the JSON schemas offered to models.

The argument models are the single source of truth: they validate what a model sends (lax, so "10" is accepted
for 10) and their JSON schemas, simplified for picky providers (no titles, no `anyOf` with null), are what the
model sees. Every string and number a model controls is bounded so a hostile or rambling call stays cheap.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aetherflow.config.models import ToolName
from aetherflow.llm.types import ToolSpec

MAX_PATH_CHARS = 1000
MAX_CONTENT_CHARS = 2_000_000


class _Args(BaseModel):
    # Extra keys are ignored rather than refused: models often add harmless ones ("reason", "explanation").
    model_config = ConfigDict(extra="ignore")


class ReadFileArgs(_Args):
    path: str = Field(max_length=MAX_PATH_CHARS, description="File path relative to the repository root.")
    start_line: int | None = Field(default=None, ge=1, description="First line to read (1-based). Default: 1.")
    end_line: int | None = Field(default=None, ge=1, description="Last line to read, inclusive. Default: the end.")


class ListDirArgs(_Args):
    path: str = Field(default=".", max_length=MAX_PATH_CHARS, description="Folder relative to the repository root.")


class SearchCodeArgs(_Args):
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in words or code.")
    k: int = Field(default=8, ge=1, le=30, description="How many results to return.")


class GrepArgs(_Args):
    pattern: str = Field(min_length=1, max_length=500, description="Python regular expression, matched per line.")
    path_glob: str | None = Field(
        default=None, max_length=MAX_PATH_CHARS, description="Only files matching this glob, e.g. '*.py' or 'app/*'."
    )
    max_results: int = Field(default=50, ge=1, le=500, description="At most this many matching lines.")


class EditFileArgs(_Args):
    path: str = Field(max_length=MAX_PATH_CHARS, description="File to change, relative to the repository root.")
    search: str = Field(
        max_length=MAX_CONTENT_CHARS, description="Exact lines to replace, copied from the file (unique in it)."
    )
    replace: str = Field(max_length=MAX_CONTENT_CHARS, description="The new lines that replace them.")


class CreateFileArgs(_Args):
    path: str = Field(max_length=MAX_PATH_CHARS, description="New file path relative to the repository root.")
    content: str = Field(max_length=MAX_CONTENT_CHARS, description="The whole content of the new file.")


class DeleteFileArgs(_Args):
    path: str = Field(max_length=MAX_PATH_CHARS, description="File to delete, relative to the repository root.")


class RunCheckArgs(_Args):
    name: str = Field(min_length=1, max_length=100, description="Name of a configured check, such as 'tests'.")


ARGUMENT_MODELS: dict[ToolName, type[_Args]] = {
    "read_file": ReadFileArgs,
    "list_dir": ListDirArgs,
    "search_code": SearchCodeArgs,
    "grep": GrepArgs,
    "edit_file": EditFileArgs,
    "create_file": CreateFileArgs,
    "delete_file": DeleteFileArgs,
    "run_check": RunCheckArgs,
}

DESCRIPTIONS: dict[ToolName, str] = {
    "read_file": "Read a file of the repository, optionally only a range of lines.",
    "list_dir": "List the files and folders in a folder of the repository (folders end with '/').",
    "search_code": "Search the repository index for code related to a query; returns file, lines and snippet.",
    "grep": "Find lines matching a regular expression in the repository's text files.",
    "edit_file": (
        "Replace one unique occurrence of `search` in a file with `replace`. Copy the search lines exactly "
        "from the file, with a few lines of context so they match once."
    ),
    "create_file": "Create a new file with the given content. Fails if the file exists: use edit_file then.",
    "delete_file": "Delete a file of the repository.",
    "run_check": "Run a check configured for this repository (such as tests or lint) and get its output.",
}

# Tools that change files: a success changes what later reads would return.
WRITING_TOOLS: frozenset[str] = frozenset({"edit_file", "create_file", "delete_file"})


def _simplify(schema: Any) -> Any:
    """The schema without titles, with `anyOf: [X, null]` collapsed to X (some providers reject null types)."""
    if isinstance(schema, list):
        return [_simplify(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        non_null = [s for s in any_of if not (isinstance(s, dict) and s.get("type") == "null")]
        if len(non_null) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(non_null[0])
            schema = merged
    out: dict[str, Any] = {}
    for key, value in schema.items():
        # A string "title" is schema metadata; a dict under "title" would be a property named title, kept.
        if (key == "title" and isinstance(value, str)) or (key == "default" and value is None):
            continue
        out[key] = _simplify(value)
    return out


def _spec(name: ToolName) -> ToolSpec:
    schema = _simplify(ARGUMENT_MODELS[name].model_json_schema())
    schema.setdefault("properties", {})
    return ToolSpec(name=name, description=DESCRIPTIONS[name], parameters=schema)


TOOL_SPECS: dict[ToolName, ToolSpec] = {name: _spec(name) for name in ARGUMENT_MODELS}
