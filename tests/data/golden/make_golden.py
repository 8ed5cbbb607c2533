"""Write the golden tokenizer files (run once, with the code BEFORE the codec refactor).

Why: issue 23 moved every encoding into its own codec; the refactored code must give
the same ids and decode bytes for vocabulary files written before it. This script built
small vocabularies of every kind from tests/data/pipeline_vi.txt, and for each the ids
and decode bytes of a varied text (Vietnamese, ASCII, emoji, odd whitespace, invalid
UTF-8),
and of 600 random ids (ill-formed sequences, as a model may sample).
tests/test_tokenizer_golden.py checks the current code against them.

    PYTHONPATH=. python tests/data/golden/make_golden.py
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pandas as pd

from symato.text import syllable as S
from symato.text.vocab import build_vocab

HERE = Path(__file__).parent
NAMES = ("symato", "symato+64", "symato-bpe3000", "bytes", "sp-bpe400", "sp-unigram400")
TEXT = (HERE.parent / "pipeline_vi.txt").read_text(encoding="utf-8")
PROBE = (
    "Hà Nội là THỦ ĐÔ của Việt Nam.  Tiếng Việt có  dấu: hoà/hòa, QUỐC ngữ, Nguyễn Thị Minh "
    "Khai\tngày 2/9/1945 🇻🇳😀 — \"ngôn ngữ\"!\n\n  x=1; print('hello world')\r\n"
    "\u00a0khoẻ\u2581khỏe\u3000ĐẠI  học   Bách Khoa… gì đó\ufeffcafé NGUYỄN nGuyễn  \n"
)
PROBE_BYTES = PROBE.encode() + b"\xff\xfe abc \xed\xa0\x80 vi\xe1\xbb"


def _stats(tmp: Path) -> dict[str, Path]:
    syms: Counter[str] = Counter()
    sylls: Counter[str] = Counter()
    for m in S.LETTER_RUN.finditer(TEXT):
        syl = S.parse(m.group())
        if syl is not None:
            syms[syl.sym] += 1
            sylls[syl.text.lower()] += 1
    pd.DataFrame({"sym": list(syms), "count": list(syms.values())}).to_parquet(tmp / "syms.parquet")
    rows = [(s, c) for s, c in sylls.items() if S.parse(s) is not None]
    pd.DataFrame({"syllable": [s for s, _ in rows], "sym": [S.parse(s).sym for s, _ in rows],
                  "marktone": [S.parse(s).marktone for s, _ in rows],
                  "count": [c for _, c in rows]}).to_parquet(tmp / "syllables.parquet")
    docs = [d for d in TEXT.split("\n\n") if d.strip()]
    pd.DataFrame({"doc_id": [str(i) for i in range(len(docs))], "source": ["t"] * len(docs),
                  "text": docs}).to_parquet(tmp / "text.parquet")
    return {"syms": tmp / "syms.parquet", "syllables": tmp / "syllables.parquet",
            "texts": [tmp / "text.parquet"]}


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        inputs = _stats(Path(d))
        cases = {}
        for name in NAMES:
            extra = ({"sp_input_sentence_size": 0} if name.startswith("sp-")
                     else {"bpe_min_count": 1} if name.startswith("symato-bpe") else {})
            tok = build_vocab(name, **inputs, **extra)
            file = HERE / f"{name.replace('+', 'plus')}.json"
            tok.save(file)
            ids = tok.encode(PROBE)
            bids = tok.encode_bytes(PROBE_BYTES)
            rng = random.Random(23)  # ill-formed sequences too: what a model may sample
            rand = [rng.randrange(tok.vocab_size) for _ in range(600)]
            cases[name] = {"file": file.name, "vocab_size": tok.vocab_size, "ids": ids,
                           "text": tok.decode(ids), "bytes_ids": bids,
                           "bytes": tok.decode_bytes(bids).hex(),
                           "random_ids": rand, "random_bytes": tok.decode_bytes(rand).hex()}
    out = {"probe": PROBE, "probe_bytes": PROBE_BYTES.hex(), "cases": cases}
    (HERE / "golden.json").write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
