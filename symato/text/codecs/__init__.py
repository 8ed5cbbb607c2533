"""Codecs: one per encoding, each owning its encoder, its vocabulary-file section and its
decode tables (``DecodeTables``, a public value); the ``Tokenizer`` is a thin facade over
one of them, and ``symato.text.kinds`` names each kind's codec.

- ``table``: the syllable table (``symato``, ``symato+N``);
- ``merges``: the syllable table with byte-pair merges (``symato-bpeV``);
- ``words``: the syllable table with whole multi-syllable words (``symato-wordsV``);
- ``sentencepiece``: a sentencepiece model (``sentencepiece``, ``sp-bpeV``, ``sp-unigramV``);
- ``bytes``: UTF-8 bytes (``bytes``).

Adding an encoding: a module here with a ``Codec`` subclass, and one registry entry.
"""

from symato.text.codecs.base import Codec, DecodeTables

__all__ = ["Codec", "DecodeTables"]
