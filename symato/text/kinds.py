"""The tokenizer kinds: one entry each, the only list of them.

Why a registry: the config schema (which tokenizer names are valid), the vocab rule
(what a vocabulary is learned from, which settings it reads), ``symato vocab`` (how it
is built) and the ``Tokenizer`` (which codec reads, encodes and decodes a file of the
kind) all need "which kinds exist". Each reads it from here, so a new kind is its build
function and codec plus one entry below (docs/architecture.md walks through an example).

A tokenizer *name* in ``config.yaml`` (``symato+8192``) belongs to the kind whose
``pattern`` matches it; the pattern's groups carry its parameters.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from symato.errors import SymatoError

# What a vocabulary can be learned from; the workflow maps each to its files.
SOURCES = ("syms", "syllables", "text")


def _no_options(config: dict[str, Any]) -> list[tuple[str, Any]]:
    return []


def _symato_options(config: dict[str, Any]) -> list[tuple[str, Any]]:
    # symato vocabularies use the tone placement the cleaned text was written in
    return [("size", config["vocab"]["symato_size"]), ("tone-style", config["clean"]["tone_style"])]


def _symato_bpe_options(config: dict[str, Any]) -> list[tuple[str, Any]]:
    # symato-bpeV and symato-wordsV: the size is in the name (symato-bpe2816), V ids in
    # all; bpe_min_count is the occurrences a merge (of bytes, or of syllables) needs
    return [("tone-style", config["clean"]["tone_style"]),
            ("bpe-min-count", config["vocab"]["bpe_min_count"])]


def _sentencepiece_options(config: dict[str, Any]) -> list[tuple[str, Any]]:
    sp = config["vocab"]["sentencepiece"]
    return [("size", config["vocab"]["sentencepiece_size"]),
            *((f"sp-{key.replace('_', '-')}", sp[key]) for key in sorted(sp))]


def _sentencepiece_sized_options(config: dict[str, Any]) -> list[tuple[str, Any]]:
    # size and algorithm are in the name (sp-bpe2816, sp-unigram11008)
    sp = config["vocab"]["sentencepiece"]
    return [(f"sp-{key.replace('_', '-')}", sp[key]) for key in sorted(sp) if key != "model_type"]


@dataclass(frozen=True)
class TokenizerKind:
    """One kind of tokenizer.

    ``learns_from`` lists the ``SOURCES`` its vocabulary is built from (empty: built
    from nothing); ``options`` turns the complete config into the ``symato vocab``
    options of this kind (only the settings it reads, so changing another kind's
    setting never rebuilds it); ``build`` is ``module:function`` with the signature
    ``build(name, match, inputs, options) -> Tokenizer``. ``codec`` is
    ``module:Class``, the ``symato.text.codecs.base.Codec`` that reads, encodes and
    decodes a vocabulary file of the kind (``symato.text.codecs``).
    """

    name: str
    pattern: str
    summary: str
    learns_from: tuple[str, ...]
    options: Callable[[dict[str, Any]], list[tuple[str, Any]]]
    build: str
    codec: str = "symato.text.codecs.table:TableCodec"

    def builder(self) -> Callable[..., Any]:
        """The build function (imported on first use)."""
        return _resolve(self.build)

    def codec_class(self) -> type:
        """The codec class (imported on first use)."""
        return _resolve(self.codec)


def _resolve(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


_SP = "symato.text.codecs.sentencepiece:SentencepieceCodec"
KINDS: dict[str, TokenizerKind] = {
    kind.name: kind
    for kind in (
        TokenizerKind("symato", r"symato", "bytes + 18 marktones + case + every sym",
                      ("syms",), _symato_options, "symato.text.vocab:build_symato"),
        TokenizerKind("symato+N", r"symato\+([1-9][0-9]*)",
                      "symato plus the N most frequent whole syllables of the train split",
                      ("syms", "syllables"), _symato_options, "symato.text.vocab:build_symato"),
        TokenizerKind("symato-bpeV", r"symato-bpe([1-9][0-9]*)",
                      "symato with V ids in all: byte-pair merges for the text between "
                      "syllables, learned from the train split",
                      ("syms", "text"), _symato_bpe_options,
                      "symato.text.vocab:build_symato_bpe",
                      codec="symato.text.codecs.merges:MergesCodec"),
        TokenizerKind("symato-wordsV", r"symato-words([1-9][0-9]*)",
                      "symato with V ids in all: whole syllables and whole words of 2-4 "
                      "syllables, learned from the train split",
                      ("syms", "text"), _symato_bpe_options, "symato.text.codecs.words:build",
                      codec="symato.text.codecs.words:WordsCodec"),
        TokenizerKind("bytes", r"bytes", "the 256 UTF-8 byte values (the floor)",
                      (), _no_options, "symato.text.vocab:build_bytes",
                      codec="symato.text.codecs.bytes:BytesCodec"),
        TokenizerKind("sentencepiece", r"sentencepiece",
                      "sentencepiece (BPE by default) trained on the train split's text",
                      ("text",), _sentencepiece_options,
                      "symato.text.vocab:build_sentencepiece", codec=_SP),
        TokenizerKind("sp-bpeV", r"sp-bpe([1-9][0-9]*)",
                      "sentencepiece BPE with V ids, trained on the train split's text",
                      ("text",), _sentencepiece_sized_options,
                      "symato.text.vocab:build_sentencepiece_sized", codec=_SP),
        TokenizerKind("sp-unigramV", r"sp-unigram([1-9][0-9]*)",
                      "sentencepiece Unigram with V ids, trained on the train split's text",
                      ("text",), _sentencepiece_sized_options,
                      "symato.text.vocab:build_sentencepiece_sized", codec=_SP),
    )
}


def name_pattern() -> str:
    """A regular expression matching every valid tokenizer name (any kind)."""
    return "^(" + "|".join(f"(?:{k.pattern})" for k in KINDS.values()) + ")$"


def kind_of(name: str, where: str = "") -> tuple[TokenizerKind, re.Match[str]]:
    """The kind a tokenizer name belongs to, and the match holding its parameters."""
    for kind in KINDS.values():
        match = re.fullmatch(kind.pattern, name)
        if match:
            return kind, match
    prefix = f"{where}: " if where else ""
    raise SymatoError(f"{prefix}unknown tokenizer {name!r}; kinds: {list(KINDS)}")
