"""``SymatoTokenizerBase``: symato's ``Tokenizer`` behind ``transformers``' slow-tokenizer API.

Why a wrapper and not a ``tokenizer.json``: the syllable kinds (symato, symato+N,
symato-bpeV, symato-wordsV) cannot be written in the ``tokenizers`` library (docs/export.md,
"The tokenizer in transformers"). So the exported folder ships a remote-code class
(``tokenization_symato.py``, a subclass of this one) and the vocabulary file, and every
encode and decode is symato's own: ids equal ``Tokenizer.encode`` on any ``str`` and text
equals ``Tokenizer.decode`` on any ids (no added tokens, no whitespace clean-up, special
tokens in the text are text: ``split_special_tokens``).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from transformers import PreTrainedTokenizer

from symato.interop.hf_remote import VOCAB_FILE
from symato.text.tokenizer import Tokenizer


class SymatoTokenizerBase(PreTrainedTokenizer):
    """A symato vocabulary file as a ``transformers`` tokenizer (any kind of the registry)."""

    vocab_files_names: ClassVar[dict[str, str]] = {"vocab_file": VOCAB_FILE}
    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, **kwargs: Any) -> None:
        self.symato = Tokenizer.from_file(vocab_file)
        self.vocab_file = vocab_file
        self._pieces = self.symato.codec.pieces
        # symato never adds ids and never rewrites text: these make transformers agree;
        # add_bos_token / add_eos_token (false by default) put the eot id around the ids
        kwargs.setdefault("split_special_tokens", True)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        bos = bool(kwargs.pop("add_bos_token", False))
        eos = bool(kwargs.pop("add_eos_token", False))
        kwargs["special_tokens_pattern"] = {(True, True): "bos_eos", (True, False): "bos",
                                            (False, True): "eos"}.get((bos, eos), "none")
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        """Ids of the vocabulary (embedding rows)."""
        return self.symato.vocab_size

    def get_vocab(self) -> dict[str, int]:
        """Piece name -> id (pieces as ``symato vocab-info`` and ``encode --pieces`` name them)."""
        return {p: i for i, p in enumerate(self._pieces)}

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return [self._pieces[i] for i in self.symato.encode(text)]

    def _convert_token_to_id(self, token: str) -> int:
        return self.symato.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        return self.symato.id_to_piece(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.symato.decode([self.symato.piece_to_id(t) for t in tokens])

    def _decode(self, token_ids: int | list[int], skip_special_tokens: bool = False,
                clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> str:
        """symato's decode of the ids (lone surrogates kept, other invalid UTF-8 as U+FFFD);
        the implicit space and the letters of a syllable depend on the ids around each,
        so the ids are decoded together, never token by token."""
        ids = [token_ids] if isinstance(token_ids, int) else [int(i) for i in token_ids]
        if skip_special_tokens:
            special = set(self.all_special_ids)
            ids = [i for i in ids if i not in special]
        return self.symato.decode(ids)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None
                        ) -> tuple[str]:
        """Write the vocabulary file (atomically) into ``save_directory``."""
        name = (f"{filename_prefix}-" if filename_prefix else "") + VOCAB_FILE
        path = os.path.join(save_directory, name)
        self.symato.save(path)
        return (path,)
