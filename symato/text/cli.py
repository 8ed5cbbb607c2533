"""``symato encode``, ``symato decode`` and ``symato vocab-info``.

Plain stdin/stdout filters so a vocabulary can be inspected and used from the shell.
Encoding reads stdin as bytes and uses ``encode_bytes``, so any input (even invalid UTF-8)
round-trips through ``encode | decode``. Ids are whitespace-separated integers.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from symato.errors import SymatoError
from symato.text.codecs.base import WHOLE
from symato.text.tokenizer import Tokenizer


def _load(spec: str) -> Tokenizer:
    return Tokenizer.default() if spec == "default" else Tokenizer.from_file(spec)


def encode_main(argv: list[str]) -> int:
    """stdin -> token ids (or piece names with --pieces) on one line of stdout."""
    p = argparse.ArgumentParser(prog="symato encode", description=encode_main.__doc__)
    p.add_argument("--vocab", required=True, help="vocabulary JSON file, or 'default'")
    p.add_argument("--pieces", action="store_true", help="print piece names, not ids")
    args = p.parse_args(argv)
    tok = _load(args.vocab)
    ids = tok.encode_bytes(sys.stdin.buffer.read())
    if args.pieces:
        sys.stdout.write(" ".join(tok.id_to_piece(i) for i in ids) + "\n")
    else:
        sys.stdout.write(" ".join(map(str, ids)) + "\n")
    return 0


def _read_ids(data: str) -> list[int]:
    ids = []
    for line_no, line in enumerate(data.splitlines(), 1):
        for field in line.split():
            try:
                ids.append(int(field))
            except ValueError:
                raise SymatoError(f"stdin line {line_no}: {field!r} is not a token id") from None
    return ids


def decode_main(argv: list[str]) -> int:
    """Whitespace-separated ids on stdin -> the exact bytes they stand for on stdout."""
    p = argparse.ArgumentParser(prog="symato decode", description=decode_main.__doc__)
    p.add_argument("--vocab", required=True, help="vocabulary JSON file, or 'default'")
    args = p.parse_args(argv)
    tok = _load(args.vocab)
    data = tok.decode_bytes(_read_ids(sys.stdin.read()))
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def describe(tok: Tokenizer) -> str:
    """A short human-readable description of a vocabulary."""
    d = tok.to_dict()
    kinds: Counter[str] = Counter()
    for i in range(tok.vocab_size):
        piece = tok.id_to_piece(i)
        if tok.marktone_index(i) is not None:
            kinds["marktone"] += 1
        elif tok.sym_of(i) is not None:
            kinds["sym"] += 1
        elif piece.startswith("<0x") and len(piece) == 6:
            kinds["byte"] += 1
        elif piece.startswith("<|reserved_"):
            kinds["reserved"] += 1
        elif piece in tok.special_tokens:
            kinds["special"] += 1
        elif tok.decode_tables.cls[i] == WHOLE:  # a whole syllable, or a word of several
            kinds["word" if " " in piece else "syllable"] += 1
        elif tok.is_merge(i):
            kinds["merge"] += 1
        else:
            kinds["other"] += 1
    lines = [
        f"kind: {tok.kind}",
        f"vocab_size: {tok.vocab_size}",
        f"tone_style: {tok.tone_style}" if tok.marktone_ids else None,
        "ids: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
        "special_tokens: " + ", ".join(f"{k}={v}" for k, v in tok.special_tokens.items()),
    ]
    meta = d.get("meta") or {}
    lines += [f"meta.{k}: {v}" for k, v in sorted(meta.items())]
    return "\n".join(x for x in lines if x is not None)


def vocab_info_main(argv: list[str]) -> int:
    """Describe a vocabulary file: kind, size, ids per category, special tokens, metadata."""
    p = argparse.ArgumentParser(prog="symato vocab-info", description=vocab_info_main.__doc__)
    p.add_argument("vocab", help="vocabulary JSON file, or 'default'")
    args = p.parse_args(argv)
    print(describe(_load(args.vocab)))
    return 0
