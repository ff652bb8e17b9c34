"""Chunks from a tree-sitter syntax tree: functions, classes with their methods, and module code between them.

The walker reads the node rules of `languages.LanguageSpec`; nothing here names a language. It works on the
top-level members of a file (and of namespaces and large classes): consecutive plain members (imports,
assignments, fields) are grouped into one chunk, every definition gets its own, and comments directly above a
definition belong to it (and are its docstring when the language has no docstrings of its own).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Literal

from tree_sitter import Node

from aetherflow.index.chunk_windows import DEFAULT_LIMITS, ChunkLimits, line_windows, spans_to_chunks
from aetherflow.index.languages import LanguageSpec
from aetherflow.index.models import Chunk, ChunkKind

_MAX_SIGNATURE = 300
_MAX_DOCSTRING = 2_000
# Declarator node types that carry the name in C and C++.
_C_NAMES = frozenset({"identifier", "field_identifier", "qualified_identifier", "operator_name",
                      "destructor_name", "type_identifier", "primitive_type", "template_function"})
_C_BODY_REQUIRED = frozenset({"class_specifier", "struct_specifier", "union_specifier", "enum_specifier"})
# Members of a class body that say nothing on their own.
_NOISE = frozenset({"access_specifier", "pass_statement", ";", "{", "}"})


@dataclass(frozen=True)
class _Def:
    """A definition found among the members: the node itself and the member node that holds it."""

    role: Literal["function", "class", "namespace", "transparent"]
    node: Node  # the function/class node (inside wrappers)
    outer: Node  # the member: the wrapper, the declaration, or the node itself
    body: Node | None
    decl: Node | None = None  # the declaration naming a function value (`const f = ...`)


@dataclass(frozen=True)
class _Scope:
    """Where members live: the enclosing symbol and whether it is a class (its functions are methods)."""

    parent: str | None
    in_class: bool
    owner: Chunk | None = None  # the class whose header and fields the plain members extend


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text is not None else ""


def _first_line(node: Node) -> int:
    return node.start_point[0] + 1


def _last_line(node: Node) -> int:
    """1-based last line; a node ending at column 0 (a line comment with its newline) ends on the line before."""
    row, column = node.end_point
    if column == 0 and row > node.start_point[0]:
        row -= 1
    return row + 1


class SyntaxChunker:
    """Turns one parsed file into chunks following one LanguageSpec."""

    def __init__(self, path: str, language: str, spec: LanguageSpec, lines: list[str],
                 limits: ChunkLimits = DEFAULT_LIMITS) -> None:
        self.path, self.language, self.spec, self.lines, self.limits = path, language, spec, lines, limits

    def chunk(self, root: Node) -> list[Chunk]:
        """All chunks of the file whose syntax tree is `root`, in file order."""
        return self._members(list(root.named_children), _Scope(parent=None, in_class=False))

    # -- members -------------------------------------------------------------------------------------------

    def _members(self, members: list[Node], scope: _Scope, head: int | None = None) -> list[Chunk]:
        """Chunks of consecutive members; `head` starts the first group at a class's first line."""
        chunks: list[Chunk] = []
        run: list[Node] = []
        pending: list[Node] = []
        last_end = 0
        for node in members:
            if node.type in self.spec.trivia or node.type in self.spec.prefixes:
                if _first_line(node) != last_end or node.type in self.spec.prefixes:
                    pending.append(node)
                continue  # a trailing comment on the previous member's line is already in its lines
            found = self._classify(node)
            if found is None:
                run.extend(pending)
                run.append(node)
            else:
                keep = found.role in ("function", "class")
                leading = self._attached(pending, _first_line(found.outer)) if keep else []
                run.extend(pending[: len(pending) - len(leading)])
                before = _first_line(leading[0]) if leading else _first_line(found.outer)
                chunks.extend(self._run(run, scope, head, before))
                head, run = None, []
                chunks.extend(self._definition(found, leading, scope))
            pending = []
            last_end = _last_line(node)
        chunks.extend(self._run(run + pending, scope, head, None))
        return chunks

    def _attached(self, pending: list[Node], start: int) -> list[Node]:
        """The tail of `pending` that touches `start` with no blank line in between."""
        attached: list[Node] = []
        for node in reversed(pending):
            if _last_line(node) < start - 1:
                break
            attached.insert(0, node)
            start = _first_line(node)
        return attached

    def _run(self, run: list[Node], scope: _Scope, head: int | None, before: int | None) -> list[Chunk]:
        """Plain members grouped: module code at top level; a class's header and fields inside a class.

        With `head`, the group starts there (the class line) and reaches at least the line before `before`
        (the first definition), so the header exists even when the class has no plain members.
        """
        nodes = [node for node in run if node.type not in _NOISE]
        if head is None and not nodes:
            return []
        start = head if head is not None else _first_line(nodes[0])
        end = max((_last_line(node) for node in nodes), default=start)
        if head is not None and before is not None:
            end = max(end, before - 1)
        if end < start:
            return []
        if scope.owner is not None:
            template = scope.owner.model_copy(update={"start_line": start, "end_line": end, "text": ""})
        else:
            template = Chunk(path=self.path, language=self.language, kind="module", parent=scope.parent,
                             docstring=self._module_docstring(nodes[0]) if nodes else None,
                             start_line=start, end_line=end, text="")
        return spans_to_chunks(line_windows(self.lines, start, end, self.limits), template)

    # -- definitions ---------------------------------------------------------------------------------------

    def _definition(self, found: _Def, leading: list[Node], scope: _Scope) -> list[Chunk]:
        if found.role == "transparent":
            return self._members(self._inner_members(found.node), scope)
        symbol, parent, is_method = self._name(found, scope)
        if found.role == "namespace":
            qualified = f"{parent}.{symbol}" if parent and symbol else symbol or parent
            inner = self._inner_members(found.body) if found.body is not None else []
            return self._members(inner, _Scope(parent=qualified, in_class=False))
        start = _first_line(leading[0]) if leading else _first_line(found.outer)
        end = _last_line(found.outer)
        kind: ChunkKind = "class" if found.role == "class" else ("method" if is_method else "function")
        chunk = Chunk(path=self.path, language=self.language, kind=kind, symbol=symbol, parent=parent,
                      signature=self._signature(found), docstring=self._docstring(found, leading),
                      start_line=start, end_line=end, text=self._lines(start, end))
        if found.role == "class":
            return self._class(found, chunk)
        return self._sized(chunk, self.limits.max_definition_lines)

    def _class(self, found: _Def, chunk: Chunk) -> list[Chunk]:
        """A small class stays whole; a large one becomes its header and fields plus its members' chunks."""
        members = self._inner_members(found.body) if found.body is not None else []
        size = chunk.end_line - chunk.start_line + 1
        if size <= self.limits.small_class_lines or not any(self._classify(m) for m in members):
            return self._sized(chunk, self.limits.max_definition_lines)
        qualified = f"{chunk.parent}.{chunk.symbol}" if chunk.parent and chunk.symbol else chunk.symbol
        owner = chunk.model_copy(update={"text": ""})
        scope = _Scope(parent=qualified, in_class=True, owner=owner)
        return self._members(members, scope, head=chunk.start_line)

    def _sized(self, chunk: Chunk, max_lines: int) -> list[Chunk]:
        """The chunk itself, or windows of it keeping its symbol when it is too long."""
        lines = chunk.end_line - chunk.start_line + 1
        if lines <= max_lines and len(chunk.text) <= self.limits.max_chunk_chars:
            return [chunk]
        return spans_to_chunks(line_windows(self.lines, chunk.start_line, chunk.end_line, self.limits), chunk)

    def _lines(self, start: int, end: int) -> str:
        return "\n".join(self.lines[start - 1 : end])

    def _inner_members(self, body: Node) -> list[Node]:
        """The members of a body or transparent node; directive parts on its first line are left out."""
        inner = body.child_by_field_name("body")
        if body.type in self.spec.transparent and inner is not None:
            body = inner
        first = _first_line(body)
        members: list[Node] = []
        for child in body.named_children:
            if body.type in self.spec.transparent and _first_line(child) == first and self._classify(child) is None:
                continue
            members.append(child)
        return members

    # -- classification ------------------------------------------------------------------------------------

    def _classify(self, node: Node) -> _Def | None:
        spec, kind = self.spec, node.type
        if kind in spec.wrappers:
            for child in node.named_children:
                inner = self._classify(child)
                if inner is not None and inner.role in ("function", "class", "namespace"):
                    return _Def(inner.role, inner.node, node, inner.body, inner.decl)
        if kind in spec.functions:
            body = node.child_by_field_name("body")
            if body is None and spec.functions_need_body:
                return None
            return _Def("function", node, node, body)
        if kind in spec.classes:
            return self._classify_class(node)
        if kind in spec.namespaces:
            body = node.child_by_field_name("body")
            return _Def("namespace", node, node, body) if body is not None else None
        if kind in spec.transparent:
            return _Def("transparent", node, node, None)
        if kind in spec.variables:
            value = self._function_value(node)
            if value is not None:
                return _Def("function", value, node, value.child_by_field_name("body"), node)
        return None

    def _classify_class(self, node: Node) -> _Def | None:
        body = node.child_by_field_name("body")
        if node.type == "type_definition":
            inner = node.child_by_field_name("type")
            if inner is None or inner.child_by_field_name("body") is None:
                return None
            return _Def("class", node, node, inner.child_by_field_name("body"))
        if node.type in _C_BODY_REQUIRED and body is None:
            return None
        return _Def("class", node, node, body)

    def _function_value(self, node: Node) -> Node | None:
        """The function a declaration or assignment defines (`const f = () => ...`), if any."""
        holders = [node, *node.named_children]
        for holder in holders:
            value = holder.child_by_field_name("value") or holder.child_by_field_name("right")
            if value is not None and value.type in self.spec.function_values:
                return value
        return None

    # -- names, signatures, docstrings ---------------------------------------------------------------------

    def _name(self, found: _Def, scope: _Scope) -> tuple[str | None, str | None, bool]:
        """(symbol, parent, is_method) for a definition."""
        node = found.node
        if found.decl is not None:
            name = _declared_name(found.decl)
        else:
            name = _text(node.child_by_field_name("name")) or _declarator_name(node)
        parent, is_method = scope.parent, scope.in_class
        receiver = node.child_by_field_name("receiver")
        if receiver is not None:  # Go: func (p *Point) Add()
            parent, is_method = _first_descendant(receiver, "type_identifier") or parent, True
        elif name and "::" in name:  # C++: double Shape::area()
            scope_name, _, name = name.rpartition("::")
            parent = ".".join(p for p in (scope.parent, scope_name.replace("::", ".")) if p)
            is_method = True
        if not name and node.type == "impl_item":  # Rust: the implemented type names the impl
            name = _text(node.child_by_field_name("type"))
        if not name and node.type == "type_declaration":  # Go: type Point struct
            spec = _first_descendant_node(node, "type_spec")
            name = _text(spec.child_by_field_name("name")) if spec is not None else ""
        return (re.sub(r"<.*", "", name).strip() or None), parent, is_method

    def _signature(self, found: _Def) -> str | None:
        """The definition's text up to its body, on one line."""
        start = found.decl or found.node
        if found.body is not None and found.body.start_byte > start.start_byte:
            base, raw = found.outer.start_byte, found.outer.text or b""
            pieces, cursor = [], start.start_byte
            for comment in _descendants_between(found.node, self.spec.trivia, cursor, found.body.start_byte):
                pieces.append(raw[cursor - base : comment.start_byte - base])
                cursor = comment.end_byte
            pieces.append(raw[cursor - base : found.body.start_byte - base])
            text = b" ".join(pieces).decode("utf-8", errors="replace")
        else:
            text = _text(start).split("\n", 1)[0]
        text = " ".join(text.split()).rstrip("{:; ")
        text = re.sub(r"\(\s+", "(", re.sub(r",?\s+\)", ")", text))
        return text[:_MAX_SIGNATURE] or None

    def _docstring(self, found: _Def, leading: list[Node]) -> str | None:
        if self.spec.python_docstrings and found.body is not None:
            first = next(iter(found.body.named_children), None)
            doc = _python_string(first)
            if doc:
                return doc[:_MAX_DOCSTRING]
        comments = [n for n in leading if n.type in self.spec.trivia]
        text = "\n".join(_clean_comment(_text(n)) for n in comments).strip()
        return text[:_MAX_DOCSTRING] or None

    def _module_docstring(self, first: Node) -> str | None:
        if not self.spec.python_docstrings or first.parent is None or first.parent.parent is not None:
            return None
        doc = _python_string(first)
        return doc[:_MAX_DOCSTRING] if doc else None


def _declared_name(decl: Node) -> str:
    """The name a variable declaration, field or assignment gives to its function value."""
    for holder in (decl, *decl.named_children):
        for field in ("name", "property", "left"):
            target = holder.child_by_field_name(field)
            if target is not None:
                prop = target.child_by_field_name("property")
                return _text(prop if prop is not None else target)
    return ""


def _declarator_name(node: Node) -> str:
    """C and C++: follow the declarator chain (pointer, function, reference) down to the name."""
    current = node.child_by_field_name("declarator")
    while current is not None and current.type not in _C_NAMES:
        following = current.child_by_field_name("declarator")
        if following is None:
            following = next((c for c in current.named_children if c.type in _C_NAMES), None)
        current = following
    return _text(current)


def _descendants_between(node: Node, kinds: frozenset[str], start: int, end: int) -> list[Node]:
    """Nodes of `kinds` under `node` lying within bytes start..end, in order (comments inside a signature)."""
    found: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.end_byte <= start or current.start_byte >= end:
            continue
        if current.type in kinds and current.start_byte >= start and current.end_byte <= end:
            found.append(current)
            continue
        stack.extend(current.children)
    return sorted(found, key=lambda n: n.start_byte)


def _first_descendant_node(node: Node, kind: str) -> Node | None:
    stack = list(reversed(node.named_children))
    while stack:
        current = stack.pop()
        if current.type == kind:
            return current
        stack.extend(reversed(current.named_children))
    return None


def _first_descendant(node: Node, kind: str) -> str | None:
    found = _first_descendant_node(node, kind)
    return _text(found) if found is not None else None


def _python_string(node: Node | None) -> str | None:
    """The value of a string statement (a docstring), cleaned like `inspect.cleandoc`."""
    if node is not None and node.type == "expression_statement" and node.named_children:
        node = node.named_children[0]
    if node is None or node.type != "string":
        return None
    content = "".join(_text(c) for c in node.named_children if c.type == "string_content")
    return inspect.cleandoc(content) or None


_COMMENT_START = re.compile(r"^\s*(?:/\*+!?|\*+(?!/)|///?!?|#+|--)\s?")
_COMMENT_END = re.compile(r"\s*\*+/\s*$")


def _clean_comment(text: str) -> str:
    """A comment without its markers (//, /* */, #, leading *), one line per source line."""
    cleaned = (_COMMENT_START.sub("", _COMMENT_END.sub("", line)) for line in text.split("\n"))
    return "\n".join(line.rstrip() for line in cleaned).strip()
