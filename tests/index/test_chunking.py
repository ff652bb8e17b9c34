"""Chunk boundaries by syntax for each supported language, and the line-window fallbacks."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aetherflow.index.chunking import ChunkLimits, chunk_source, detect_language
from aetherflow.index.models import CHUNKER_VERSION, Chunk

Row = tuple[str, str | None, str | None, int, int]


def rows(chunks: list[Chunk]) -> list[Row]:
    """(kind, symbol, parent, start_line, end_line) of each chunk."""
    return [(c.kind, c.symbol, c.parent, c.start_line, c.end_line) for c in chunks]


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def by_symbol(chunks: list[Chunk], symbol: str) -> Chunk:
    return next(c for c in chunks if c.symbol == symbol)


# -- Python ------------------------------------------------------------------------------------------------

PYTHON = src('''
    """Accounts: users and their sessions."""
    import os

    # Tokens expire after a day.
    @cache
    def make_token(user_id: int) -> str:
        """Create a signed token for the user.

        It is valid for one day.
        """
        return sign(user_id)

    class Session(Base):
        """A logged-in session."""
        ttl = 60

        # Keep the session alive.
        async def touch(self):
            self.seen = now()

    MAX = 3
''')


def test_python_functions_classes_and_module_code() -> None:
    chunks = chunk_source("app/accounts.py", PYTHON)
    assert rows(chunks) == [
        ("module", None, None, 1, 2),
        ("function", "make_token", None, 4, 11),
        ("class", "Session", None, 13, 19),
        ("module", None, None, 21, 21),
    ]
    token = chunks[1]
    assert token.signature == "def make_token(user_id: int) -> str"
    assert token.docstring == "Create a signed token for the user.\n\nIt is valid for one day."
    assert token.text.startswith("# Tokens expire after a day.\n@cache\ndef make_token")
    assert token.language == "python" and token.path == "app/accounts.py"
    assert chunks[0].docstring == "Accounts: users and their sessions."
    assert chunks[2].signature == "class Session(Base)" and chunks[2].docstring == "A logged-in session."


def test_python_large_class_is_split_into_header_and_methods() -> None:
    methods = "\n".join(f"    def step_{i}(self):\n        return {i}\n" for i in range(3))
    text = f'class Pipeline:\n    """Runs steps."""\n    name = "p"\n\n{methods}'
    chunks = chunk_source("p.py", text, limits=ChunkLimits(small_class_lines=5))
    assert rows(chunks) == [
        ("class", "Pipeline", None, 1, 3),
        ("method", "step_0", "Pipeline", 5, 6),
        ("method", "step_1", "Pipeline", 8, 9),
        ("method", "step_2", "Pipeline", 11, 12),
    ]
    assert chunks[0].docstring == "Runs steps." and chunks[0].text.startswith("class Pipeline:")
    assert chunks[1].signature == "def step_0(self)"


def test_python_nested_class_methods_have_qualified_parent() -> None:
    text = src('''
        class Outer:
            x = 1

            class Inner:
                y = 2

                def deep(self):
                    return 3
    ''')
    chunks = chunk_source("n.py", text, limits=ChunkLimits(small_class_lines=3))
    assert rows(chunks) == [
        ("class", "Outer", None, 1, 2),
        ("class", "Inner", "Outer", 4, 5),
        ("method", "deep", "Outer.Inner", 7, 8),
    ]


def test_huge_function_is_split_into_windows_that_keep_its_symbol() -> None:
    body = "\n".join(f"    total += {i}" for i in range(30))
    text = f"def accumulate(total):\n{body}\n    return total\n"
    limits = ChunkLimits(max_definition_lines=20, window_lines=12, window_overlap=2)
    chunks = chunk_source("big.py", text, limits=limits)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 12), (11, 22), (21, 32)]
    assert {c.symbol for c in chunks} == {"accumulate"}
    assert {c.kind for c in chunks} == {"function"}
    assert all(c.signature == "def accumulate(total)" for c in chunks)


def test_multiline_signature_is_one_line_without_comments() -> None:
    text = src('''
        def resolve(
            self,
            query=None,
        ):  # promote joins
            return query
    ''')
    (chunk,) = chunk_source("r.py", text)
    assert chunk.signature == "def resolve(self, query=None)"


# -- other languages ---------------------------------------------------------------------------------------

def test_javascript() -> None:
    text = src('''
        import { sign } from "./crypto";
        /** Adds two numbers. */
        export function add(a, b) { return a + b; }
        const double = (x) => x * 2;
        export default class Calculator extends Base {
          constructor() { super(); }
        }
        module.exports.helper = function (y) { return y; };
    ''')
    chunks = chunk_source("src/calc.js", text)
    assert rows(chunks) == [
        ("module", None, None, 1, 1),
        ("function", "add", None, 2, 3),
        ("function", "double", None, 4, 4),
        ("class", "Calculator", None, 5, 7),
        ("function", "helper", None, 8, 8),
    ]
    assert chunks[1].docstring == "Adds two numbers." and chunks[1].signature == "function add(a, b)"
    assert chunks[2].signature == "const double = (x) =>"


def test_typescript_and_tsx() -> None:
    text = src('''
        interface Shape { area(): number; }
        export abstract class Square implements Shape {
          private side = 1;
          abstract label(): string;
          area(): number { return this.side ** 2; }
        }
        export const render = (s: Shape): string => `${s.area()}`;
    ''')
    limits = ChunkLimits(small_class_lines=2)
    chunks = chunk_source("shapes.ts", text, limits=limits)
    assert rows(chunks) == [
        ("class", "Shape", None, 1, 1),
        ("class", "Square", None, 2, 4),
        ("method", "area", "Square", 5, 5),
        ("function", "render", None, 7, 7),
    ]
    assert chunks[0].language == "typescript"
    tsx = chunk_source("view.tsx", "export function View() {\n  return <div>hi</div>;\n}\n")
    assert rows(tsx) == [("function", "View", None, 1, 3)] and tsx[0].language == "typescript"


def test_go() -> None:
    text = src('''
        package geo

        import "math"

        // Point is a place on the plane.
        type Point struct {
        \tX, Y float64
        }

        // Dist returns the distance to q.
        func (p *Point) Dist(q Point) float64 {
        \treturn math.Hypot(p.X-q.X, p.Y-q.Y)
        }
    ''')
    chunks = chunk_source("geo/point.go", text)
    assert rows(chunks) == [
        ("module", None, None, 1, 3),
        ("class", "Point", None, 5, 8),
        ("method", "Dist", "Point", 10, 13),
    ]
    assert chunks[2].docstring == "Dist returns the distance to q."
    assert chunks[2].signature == "func (p *Point) Dist(q Point) float64"


def test_rust() -> None:
    text = src('''
        use std::fmt;

        /// A 2D point.
        #[derive(Debug)]
        pub struct Point { x: i32 }

        impl Point {
            /// Builds a point.
            pub fn new(x: i32) -> Self { Point { x } }

            pub fn x(&self) -> i32 { self.x }
        }

        mod tests {
            fn check() {}
        }
    ''')
    chunks = chunk_source("src/point.rs", text, limits=ChunkLimits(small_class_lines=3))
    assert rows(chunks) == [
        ("module", None, None, 1, 1),
        ("class", "Point", None, 3, 5),
        ("class", "Point", None, 7, 7),
        ("method", "new", "Point", 8, 9),
        ("method", "x", "Point", 11, 11),
        ("function", "check", "tests", 15, 15),
    ]
    assert chunks[1].docstring == "A 2D point." and chunks[1].signature == "pub struct Point"
    assert chunks[3].docstring == "Builds a point." and chunks[3].signature == "pub fn new(x: i32) -> Self"


def test_java() -> None:
    text = src('''
        package shop;

        import java.util.List;

        /** A shopping cart. */
        public class Cart {
            private List<Item> items;

            /** Adds an item. */
            public void add(Item item) { items.add(item); }

            @Override
            public String toString() { return "cart"; }
        }
    ''')
    chunks = chunk_source("src/Cart.java", text, limits=ChunkLimits(small_class_lines=5))
    assert rows(chunks) == [
        ("module", None, None, 1, 3),
        ("class", "Cart", None, 5, 7),
        ("method", "add", "Cart", 9, 10),
        ("method", "toString", "Cart", 12, 13),
    ]
    assert chunks[1].docstring == "A shopping cart." and chunks[1].signature == "public class Cart"
    assert chunks[2].docstring == "Adds an item."
    assert chunks[3].signature == "@Override public String toString()"


def test_c() -> None:
    text = src('''
        #include <stdlib.h>

        /* A list node. */
        typedef struct node { struct node *next; } node_t;

        /* Allocates a node. */
        static node_t *node_new(void) {
            return calloc(1, sizeof(node_t));
        }
        #ifdef DEBUG
        void dump(node_t *n) { }
        #endif
    ''')
    chunks = chunk_source("list.c", text)
    assert rows(chunks) == [
        ("module", None, None, 1, 1),
        ("class", "node_t", None, 3, 4),
        ("function", "node_new", None, 6, 9),
        ("function", "dump", None, 11, 11),
    ]
    assert chunks[2].signature == "static node_t *node_new(void)" and chunks[2].docstring == "Allocates a node."


def test_cpp() -> None:
    text = src('''
        namespace geo {
        /// A shape.
        class Shape {
         public:
          virtual double area() const { return 0; }
        };

        double Shape::perimeter() const { return 1; }

        template <typename T>
        T biggest(T a, T b) { return a > b ? a : b; }
        }
    ''')
    chunks = chunk_source("geo.cpp", text)
    assert rows(chunks) == [
        ("class", "Shape", "geo", 2, 6),
        ("method", "perimeter", "geo.Shape", 8, 8),
        ("function", "biggest", "geo", 10, 11),
    ]
    assert chunks[0].docstring == "A shape."
    assert detect_language("geo.hpp") == "cpp" and detect_language("geo.h") == "c"


def test_ruby() -> None:
    text = src('''
        require "json"

        # Greets people.
        class Greeter < Base
          attr_reader :name

          # Says hello.
          def hello(name)
            "hi #{name}"
          end

          def self.build; new; end
        end
    ''')
    chunks = chunk_source("lib/greeter.rb", text, limits=ChunkLimits(small_class_lines=3))
    assert rows(chunks) == [
        ("module", None, None, 1, 1),
        ("class", "Greeter", None, 3, 5),
        ("method", "hello", "Greeter", 7, 10),
        ("method", "build", "Greeter", 12, 12),
    ]
    assert chunks[1].docstring == "Greets people." and chunks[1].signature == "class Greeter < Base"
    assert chunks[2].docstring == "Says hello." and chunks[2].signature == "def hello(name)"


def test_php() -> None:
    text = src('''
        <?php
        namespace App;

        /** Adds. */
        function add(int $a, int $b): int { return $a + $b; }

        final class User extends Model {
            private $name;

            /** The display name. */
            public function name(): string { return $this->name; }
        }
    ''')
    chunks = chunk_source("src/User.php", text, limits=ChunkLimits(small_class_lines=3))
    assert rows(chunks) == [
        ("module", None, None, 1, 2),
        ("function", "add", None, 4, 5),
        ("class", "User", None, 7, 8),
        ("method", "name", "User", 10, 11),
    ]
    assert chunks[3].docstring == "The display name." and chunks[3].signature == "public function name(): string"


# -- fallbacks ---------------------------------------------------------------------------------------------

def test_markdown_sections_follow_headings_outside_code_fences() -> None:
    text = src('''
        Intro line.

        # Guide

        ## Install
        Run pip.

        ```sh
        # not a heading
        ```

        ## Use
        Call it.
    ''')
    chunks = chunk_source("docs/guide.md", text)
    assert rows(chunks) == [
        ("section", None, None, 1, 1),
        ("section", "Install", "Guide", 3, 10),
        ("section", "Use", "Guide", 12, 13),
    ]
    assert chunks[1].text.startswith("# Guide\n\n## Install")


def test_unknown_extension_gets_overlapping_windows() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 26))
    chunks = chunk_source("data/notes.xyz", text, limits=ChunkLimits(window_lines=10, window_overlap=3))
    assert [(c.kind, c.start_line, c.end_line) for c in chunks] == [
        ("window", 1, 10), ("window", 8, 17), ("window", 15, 24), ("window", 22, 25)]
    assert chunks[0].language == "text" and chunks[0].symbol is None
    assert chunks[1].text.split("\n")[0] == "line 8"


def test_config_file_is_windowed_with_its_language() -> None:
    chunks = chunk_source("pyproject.toml", '[project]\nname = "x"\n')
    assert rows(chunks) == [("window", None, None, 1, 2)] and chunks[0].language == "toml"


def test_syntax_error_falls_back_to_windows() -> None:
    text = "def broken(:\n    return 1\n\ndef fine():\n    return 2\n"
    chunks = chunk_source("broken.py", text)
    assert [(c.kind, c.start_line, c.end_line) for c in chunks] == [("window", 1, 5)]
    assert chunks[0].language == "python"


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n"])
def test_empty_and_blank_files_give_no_chunks(text: str) -> None:
    assert chunk_source("empty.py", text) == []


def test_crlf_line_ends_give_the_same_lines() -> None:
    lf = "import os\n\ndef f():\n    return 1\n"
    crlf = lf.replace("\n", "\r\n")
    assert rows(chunk_source("a.py", crlf)) == rows(chunk_source("a.py", lf)) == [
        ("module", None, None, 1, 1), ("function", "f", None, 3, 4)]
    assert "\r" not in chunk_source("a.py", crlf)[1].text


def test_very_long_line_is_cut_into_bounded_pieces() -> None:
    text = "var data = [" + "1, " * 20_000 + "];\n"  # one 60 kB line of minified JavaScript
    limits = ChunkLimits(max_chunk_chars=10_000)
    chunks = chunk_source("dist/app.min.js", text, limits=limits)
    assert len(chunks) >= 6
    assert all(len(c.text) <= 10_000 and c.start_line == c.end_line == 1 for c in chunks)
    assert "".join(c.text for c in chunks) == text.rstrip("\n")


def test_chunk_ids_are_deterministic_and_distinct() -> None:
    first = chunk_source("app/accounts.py", PYTHON)
    again = chunk_source("app/accounts.py", PYTHON)
    assert [c.chunk_id() for c in first] == [c.chunk_id() for c in again]
    assert len({c.chunk_id() for c in first}) == len(first)
    moved = first[1].model_copy(update={"blob_sha": "abc"})
    assert moved.chunk_id() != first[1].chunk_id()
    assert CHUNKER_VERSION


def test_dense_and_sparse_text_carry_path_parent_and_signature() -> None:
    chunks = chunk_source("app/session.py", "class Session:\n    def touch(self):\n        pass\n",
                          limits=ChunkLimits(small_class_lines=1))
    method = by_symbol(chunks, "touch")
    assert method.parent == "Session"
    dense = method.dense_text()
    assert "app/session.py" in dense.replace(" / ", "/") and "Session" in dense and "def touch(self)" in dense
    sparse = method.sparse_text()
    assert "app/session.py" in sparse and "Session" in sparse and "touch" in sparse
    huge = method.model_copy(update={"text": "x = 1\n" * 5000})
    assert len(huge.dense_text()) <= 2000


@pytest.mark.parametrize(("path", "language"), [
    ("a/b.py", "python"), ("x.mjs", "javascript"), ("x.tsx", "typescript"), ("main.go", "go"),
    ("lib.rs", "rust"), ("A.java", "java"), ("x.c", "c"), ("x.cc", "cpp"), ("x.rb", "ruby"),
    ("Rakefile", "ruby"), ("x.php", "php"), ("README.md", "markdown"), ("x.unknownext", None),
])
def test_detect_language(path: str, language: str | None) -> None:
    assert detect_language(path) == language


# -- invariants on arbitrary input -------------------------------------------------------------------------

_FRAGMENTS = ["def f(x):\n", "    return x\n", "class A:\n", "  pass\n", "{", "}", "fn g() {}\n", "/* c */\n",
              "# h\n", "\r\n", "\n", "\t", "'''", '"', "function h() { return 1; }\n", "é", "\x00", "end\n"]


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=20)), max_size=40),
    suffix=st.sampled_from([".py", ".js", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".cpp", ".rb", ".php",
                            ".md", ".txt", ".bin"]),
)
def test_any_text_gives_chunks_whose_lines_match_the_source(pieces: list[str], suffix: str) -> None:
    text = "".join(pieces)
    lines = text.replace("\r\n", "\n").split("\n")
    limits = ChunkLimits(max_definition_lines=6, small_class_lines=3, window_lines=4, window_overlap=1,
                         max_chunk_chars=50)
    for chunk in chunk_source(f"f{suffix}", text, limits=limits):
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.text.strip()
        source = "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert chunk.text in source
