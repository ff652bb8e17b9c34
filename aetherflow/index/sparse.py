"""Sparse lexical vectors for code: identifier-aware tokens, hashed to stable indices, BM25-style weights.

Documents get saturated term frequencies; queries get 1.0 per distinct term. The store declares the sparse
vector with Qdrant's IDF modifier, so the inverse document frequency is applied by the store over the whole
collection at query time (which keeps document vectors independent of each other: incremental updates never
re-weight old chunks).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

# An identifier, possibly dotted or a path: split further below.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+[A-Za-z_][A-Za-z0-9_]*")
# Boundaries inside an identifier: lower→Upper (getUser), UPPER→Upper+lower (HTTPServer), letter↔digit.
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_ENGLISH = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
him his how i if in into is it its itself just me more most my no nor not of off on once only or other our out
over own same she should so some such than that the their them then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you your e g eg
ie etc also given using used use uses may must shall
""".split())
# Keywords of the indexed languages that say nothing about what code does; type names and words that carry
# meaning in a query ("import", "class", "async", "static", "string") are kept.
_KEYWORDS = frozenset("""
def self cls elif else endif fi return returns pass lambda none null nil true false var let const func fn
function end begin then do done elsif unless until break continue goto typeof instanceof void auto
println printf this super nullptr mut impl pub
""".split())
STOP_WORDS = _ENGLISH | _KEYWORDS

_MIN_PART = 2
_MAX_TOKEN = 64


class _Stemmer:
    """Snowball English stemming with a memo: "fields" meets "field", "parsing" meets "parse".

    Identifiers repeat a lot, so the memo turns most calls into a dict lookup.
    """

    def __init__(self) -> None:
        self._memo: dict[str, str] = {}
        self._stem_word = None

    def __call__(self, token: str) -> str:
        stem = self._memo.get(token)
        if stem is None:
            if self._stem_word is None:
                from py_rust_stemmers import SnowballStemmer  # small Rust extension, loaded on first use

                self._stem_word = SnowballStemmer("english").stem_word
            stem = self._stem_word(token) if token.isalpha() else token
            if len(self._memo) < 500_000:
                self._memo[token] = stem
        return stem


_stem = _Stemmer()


def code_tokens(text: str) -> list[str]:
    """Lowercased terms of `text`: whole identifiers and their snake_case / camelCase / digit parts.

    Paths and dotted names fall apart into their identifiers (`django/db/models.py` → django, db, models, py).
    English stop words and syntax keywords are dropped; words are stemmed (Snowball English).
    """
    tokens: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        parts = [p for chunk in word.split("_") for p in _PARTS.findall(chunk)]
        lowered = [p.lower() for p in parts if len(p) >= _MIN_PART]
        whole = word.strip("_").lower()
        if lowered != [whole] and _MIN_PART <= len(whole) <= _MAX_TOKEN:
            lowered.append(whole)
        tokens.extend(_stem(t) for t in lowered if t not in STOP_WORDS)
    return tokens


def token_index(token: str) -> int:
    """A stable 31-bit index for a token (the same across processes and machines, unlike hash())."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


SparseVector = tuple[list[int], list[float]]


class SparseEncoder:
    """Encodes documents and queries into sparse vectors over hashed code tokens.

    Document weights are BM25's saturated term frequency with length normalisation against a fixed average
    length (`avg_len`, in tokens), so a document's vector never depends on the rest of the collection; the
    store supplies the IDF factor.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_len: float = 120.0) -> None:
        self.k1, self.b, self.avg_len = k1, b, avg_len

    def encode_documents(self, texts: list[str]) -> list[SparseVector]:
        """One sparse vector per text, in order."""
        return [self._document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """The query's distinct terms, each with weight 1.0."""
        indices = sorted({token_index(t) for t in code_tokens(text)})
        return indices, [1.0] * len(indices)

    def _document(self, text: str) -> SparseVector:
        tokens = code_tokens(text)
        counts = Counter(token_index(t) for t in tokens)
        norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.avg_len)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return indices, values
