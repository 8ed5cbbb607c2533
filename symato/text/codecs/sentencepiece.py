"""sentencepiece models: kinds ``sentencepiece``, ``sp-bpeV``, ``sp-unigramV``.

The file section: ``sentencepiece_model``, the model proto in base64 (the file is
self-contained). The model must have byte-fallback pieces (``<0xNN>``) and every
special as a piece. Encoding is sentencepiece's own; what it cannot keep (its space
symbol U+2581 and lone surrogates) is spliced in as byte tokens, so the round trip is
exact. Decoding goes through the same tables as every kind: each id writes its piece
with U+2581 as a space (byte pieces their byte, control and unknown pieces nothing,
specials their name), which gives exactly the bytes of the encoded text.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from symato.text.codecs.base import BYTE_PIECES, SURROGATES, Codec, DecodeTables, bad, utf8

SP_SPACE = "\u2581"  # sentencepiece's whitespace symbol
_KEEP_OUT = re.compile(f"[{SP_SPACE}\ud800-\udfff]+")


class SentencepieceCodec(Codec):
    """A sentencepiece model behind the common tables."""

    def __init__(self, data: dict[str, Any], match: re.Match[str], where: str) -> None:
        import sentencepiece as spm

        blob = data.get("sentencepiece_model")
        if not isinstance(blob, str):
            raise bad(where, "key 'sentencepiece_model' (base64) is missing")
        try:
            proto = base64.b64decode(blob, validate=True)
            self.sp = spm.SentencePieceProcessor(model_proto=proto)
        except Exception as exc:  # binascii.Error, RuntimeError from the C++ loader
            raise bad(where, f"key 'sentencepiece_model' does not load: {exc}") from None
        n = self.sp.get_piece_size()
        self.pieces = tuple(self.sp.id_to_piece(i) for i in range(n))
        ids = {p: i for i, p in enumerate(self.pieces)}
        byte_ids = [ids.get(p, -1) for p in BYTE_PIECES]
        if min(byte_ids) < 0:
            raise bad(where, "sentencepiece model lacks byte-fallback pieces")
        self.byte_ids = tuple(byte_ids)
        specials = data["specials"]
        for special in specials:
            if special not in ids:
                raise bad(where, f"sentencepiece model lacks special {special!r}")
        own = [utf8(p.replace(SP_SPACE, " ")) for p in self.pieces]
        for b, i in enumerate(byte_ids):
            own[i] = bytes([b])
        for i in range(n):
            if self.sp.is_control(i) or self.sp.is_unknown(i):
                own[i] = utf8(self.pieces[i]) if self.pieces[i] in specials else b""
        self.tables = DecodeTables.own_only(own)

    def encode(self, text: str) -> list[int]:
        """sentencepiece ids, with U+2581 and lone surrogates spliced in as byte tokens."""
        if SP_SPACE not in text and not SURROGATES.search(text):
            return self.sp.encode(text)
        out: list[int] = []
        pos = 0
        for m in _KEEP_OUT.finditer(text):
            if m.start() > pos:
                out += self.sp.encode(text[pos : m.start()])
            out += [self.byte_ids[b] for b in utf8(m.group())]
            pos = m.end()
        if pos < len(text):
            out += self.sp.encode(text[pos:])
        return out
