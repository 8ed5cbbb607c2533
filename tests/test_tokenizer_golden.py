"""The ids and decode bytes of vocabulary files written before the codec refactor (issue 23).

Why: encoders and decoders moved into one codec per encoding; behaviour must not move
with them. tests/data/golden/ holds small vocabularies of every kind built by the code
before the refactor (``make_golden.py``), the ids it gave for a varied text, and the
bytes it decoded for those ids and for random (ill-formed) id sequences.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symato import Tokenizer

GOLDEN = Path(__file__).parent / "data" / "golden"
CASES = json.loads((GOLDEN / "golden.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(CASES["cases"]))
@pytest.mark.parametrize("decoder", ["c", "python"])
def test_golden_ids_and_bytes(name, decoder):
    case = CASES["cases"][name]
    tok = Tokenizer.from_file(GOLDEN / case["file"])
    assert tok.vocab_size == case["vocab_size"]
    assert tok.encode(CASES["probe"]) == case["ids"]
    assert tok.encode_bytes(bytes.fromhex(CASES["probe_bytes"])) == case["bytes_ids"]
    assert tok.decode(case["ids"], decoder=decoder) == case["text"] == CASES["probe"]
    assert tok.decode_bytes(case["bytes_ids"], decoder=decoder).hex() == case["bytes"]
    assert tok.decode_bytes(case["random_ids"], decoder=decoder).hex() == case["random_bytes"]
    stream = tok.stream_decoder(decoder=decoder)
    ids = case["random_ids"]
    got = "".join(stream.feed(ids[i : i + 7]) for i in range(0, len(ids), 7)) + stream.finish()
    assert got == tok.decode(ids)
