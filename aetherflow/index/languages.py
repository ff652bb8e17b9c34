"""Which language a file is written in, and which tree-sitter nodes are its definitions.

The rules are data: one `LanguageSpec` per grammar lists the node types that are functions, classes (things
whose members become their own chunks), wrappers (decorators, `export`, `template<>` around a definition) and
transparent containers (namespaces, `#ifdef` blocks, `extern "C"`) whose members are walked as if they were
at the enclosing level. The walker in `chunk_syntax` reads these rules and knows no language by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from aetherflow.index.models import ChunkKind

# Extension (lowercase, with the dot) → language name stored on chunks.
_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "typescript",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".ipp": "cpp", ".inl": "cpp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby",
    ".php": "php", ".phtml": "php",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown", ".rst": "rst",
    ".txt": "text", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".ini": "ini",
    ".cfg": "ini", ".xml": "xml", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss",
    ".sql": "sql", ".sh": "shell", ".bash": "shell", ".zsh": "shell",
    ".kt": "kotlin", ".kts": "kotlin", ".swift": "swift", ".scala": "scala", ".cs": "csharp",
    ".lua": "lua", ".pl": "perl", ".r": "r", ".dart": "dart", ".ex": "elixir", ".exs": "elixir",
}
# Files known by their whole name.
_FILENAMES: dict[str, str] = {
    "Rakefile": "ruby", "Gemfile": "ruby", "Makefile": "make", "Dockerfile": "dockerfile",
    "CMakeLists.txt": "cmake",
}


def detect_language(path: str) -> str | None:
    """The language of `path` from its name, or None when the name says nothing."""
    name = PurePosixPath(path).name
    if name in _FILENAMES:
        return _FILENAMES[name]
    return _EXTENSIONS.get(PurePosixPath(name).suffix.lower())


def grammar_for(path: str, language: str) -> str | None:
    """The tree-sitter grammar that parses `path`, or None when the language is chunked as plain text."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".tsx":
        return "tsx"
    if suffix == ".h":
        # Headers are shared by C and C++; the C++ grammar reads C declarations too, not the other way round.
        return "cpp"
    return language if language in SPECS else None


@dataclass(frozen=True)
class LanguageSpec:
    """Node types that mean something to the chunker in one grammar."""

    functions: frozenset[str]
    """Function and method definitions (those without a body are treated as plain members)."""
    classes: dict[str, ChunkKind]
    """Class-like definitions; their functions become methods."""
    wrappers: frozenset[str] = frozenset()
    """Nodes that wrap one definition and belong to its span (decorators, export, template)."""
    transparent: frozenset[str] = frozenset()
    """Containers walked through: their members are chunked as if at the enclosing level."""
    namespaces: frozenset[str] = frozenset()
    """Transparent containers whose name becomes the members' parent."""
    variables: frozenset[str] = frozenset()
    """Declarations that define a function when their value is one (`const f = () => ...`)."""
    function_values: frozenset[str] = frozenset()
    """Value node types that make a variable declaration a function."""
    trivia: frozenset[str] = field(default_factory=lambda: frozenset({"comment", "line_comment", "block_comment"}))
    """Comments: attached to the following definition when adjacent, and read as its docstring."""
    prefixes: frozenset[str] = frozenset()
    """Non-comment nodes that belong to the following definition (Rust attributes)."""
    python_docstrings: bool = False
    """Read the docstring from the first string statement of the body."""
    functions_need_body: bool = True
    """Treat a function node without a body (an abstract or interface method) as a plain member."""


_JS_FUNCTIONS = frozenset({
    "function_declaration", "generator_function_declaration", "method_definition", "function",
    "function_expression", "arrow_function", "generator_function",
})
_JS_VARIABLES = frozenset({"lexical_declaration", "variable_declaration", "field_definition",
                           "public_field_definition", "expression_statement"})
_JS_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})

_C_FAMILY = LanguageSpec(
    functions=frozenset({"function_definition"}),
    classes={"class_specifier": "class", "struct_specifier": "class", "union_specifier": "class",
             "enum_specifier": "class", "type_definition": "class"},
    wrappers=frozenset({"template_declaration"}),
    transparent=frozenset({"preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef",
                           "linkage_specification", "declaration_list"}),
    namespaces=frozenset({"namespace_definition"}),
)

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        functions=frozenset({"function_definition"}),
        classes={"class_definition": "class"},
        wrappers=frozenset({"decorated_definition"}),
        python_docstrings=True,
    ),
    "javascript": LanguageSpec(
        functions=_JS_FUNCTIONS,
        classes={"class_declaration": "class", "class": "class"},
        wrappers=frozenset({"export_statement"}),
        variables=_JS_VARIABLES,
        function_values=_JS_VALUES,
    ),
    "typescript": LanguageSpec(
        functions=_JS_FUNCTIONS,
        classes={"class_declaration": "class", "abstract_class_declaration": "class", "class": "class",
                 "interface_declaration": "class", "enum_declaration": "class"},
        wrappers=frozenset({"export_statement", "expression_statement", "ambient_declaration"}),
        namespaces=frozenset({"internal_module", "module"}),
        variables=_JS_VARIABLES,
        function_values=_JS_VALUES,
    ),
    "go": LanguageSpec(
        functions=frozenset({"function_declaration", "method_declaration"}),
        classes={"type_declaration": "class"},
    ),
    "rust": LanguageSpec(
        functions=frozenset({"function_item"}),
        classes={"impl_item": "class", "trait_item": "class", "struct_item": "class", "enum_item": "class",
                 "union_item": "class"},
        namespaces=frozenset({"mod_item"}),
        prefixes=frozenset({"attribute_item"}),
    ),
    "java": LanguageSpec(
        functions=frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
        classes={"class_declaration": "class", "interface_declaration": "class", "enum_declaration": "class",
                 "record_declaration": "class", "annotation_type_declaration": "class"},
        transparent=frozenset({"enum_body_declarations"}),
    ),
    "c": _C_FAMILY,
    "cpp": _C_FAMILY,
    "ruby": LanguageSpec(
        functions=frozenset({"method", "singleton_method"}),
        classes={"class": "class", "module": "class", "singleton_class": "class"},
        functions_need_body=False,
    ),
    "php": LanguageSpec(
        functions=frozenset({"function_definition", "method_declaration"}),
        classes={"class_declaration": "class", "interface_declaration": "class", "trait_declaration": "class",
                 "enum_declaration": "class"},
        namespaces=frozenset({"namespace_definition"}),
    ),
}
SPECS["tsx"] = SPECS["typescript"]
