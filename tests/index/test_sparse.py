"""Code-aware sparse tokens and the sparse encoder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aetherflow.index.sparse import STOP_WORDS, SparseEncoder, code_tokens, token_index


@pytest.mark.parametrize(("text", "expected"), [
    ("user_id", ["user", "id", "user_id"]),
    ("getUserName", ["get", "user", "name", "getusernam"]),
    ("HTTPServerError", ["http", "server", "error", "httpservererror"]),
    ("parse_XMLDocument2", ["pars", "xml", "document", "parse_xmldocument2"]),
    ("base64", ["base", "64", "base64"]),
    ("django/db/models/query.py", ["django", "db", "model", "queri", "py"]),
    ("os.path.join", ["os", "path", "join"]),
    ("__init__", ["init"]),
])
def test_identifiers_split_and_whole(text: str, expected: list[str]) -> None:
    assert code_tokens(text) == expected


def test_stop_words_and_keywords_are_dropped_and_words_stemmed() -> None:
    tokens = code_tokens("def sorted_fields(self): return the fields that are sorted")
    assert tokens == ["sort", "field", "sorted_fields", "field", "sort"]
    assert "self" in STOP_WORDS and "the" in STOP_WORDS and "return" in STOP_WORDS


def test_query_and_code_meet_on_the_same_terms() -> None:
    query = set(code_tokens("Return the serialized fields of the user"))
    code = set(code_tokens("def serialize_user_field(user): ..."))
    assert {"serial", "field", "user"} <= query & code


def test_token_index_is_stable_across_processes_and_31_bit() -> None:
    here = token_index("queryset")
    script = "from aetherflow.index.sparse import token_index; print(token_index('queryset'))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(other.stdout) == here
    assert 0 <= here < 2**31


def test_documents_get_saturated_weights_and_queries_unit_weights() -> None:
    encoder = SparseEncoder()
    [(indices, values)] = encoder.encode_documents(["cache cache cache cache invalidate"])
    weights = dict(zip(indices, values))
    assert indices == sorted(indices) and len(indices) == 2
    cache_weight, invalidate_weight = weights[token_index("cach")], weights[token_index("invalid")]
    assert cache_weight > invalidate_weight > 0
    assert cache_weight < 4 * invalidate_weight  # saturation: four times the count is far from four times the weight
    q_indices, q_values = encoder.encode_query("invalidate the cache")
    assert q_indices == sorted([token_index("invalid"), token_index("cach")]) and q_values == [1.0, 1.0]


def test_longer_documents_weigh_each_term_less() -> None:
    encoder = SparseEncoder()
    short, long = encoder.encode_documents(["token", "token " + "filler " * 200])
    index = token_index("token")
    assert dict(zip(*short))[index] > dict(zip(*long))[index] > 0


def test_empty_text_encodes_to_empty_vectors() -> None:
    encoder = SparseEncoder()
    assert encoder.encode_documents([""]) == [([], [])]
    assert encoder.encode_query("the of and") == ([], [])
