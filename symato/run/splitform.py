"""Several tokenizations of one text in training: whole syllables written split.

Why: with a ``symato+N`` vocabulary a frequent syllable is one whole id, but every
syllable can also be written ``sym marktone`` (the case token, if any, comes first either
way). A model that only ever saw the whole ids cannot be asked for a marktone after a bare
sym, which is what diacritic restoration and partial decoding want. With
``split_syllables = p`` each whole-syllable token of a training window is written in its
split form with probability ``p``; the draws come from the run's random generator (the
one that draws the windows), so they are fresh for every window, deterministic from the
seed, and a resumed run draws what an uninterrupted one would. Evaluation keeps the
deterministic encoding (whole ids wherever the vocabulary has them).

A window is read with ``ctx_len + 1`` tokens, expanded, and cut back to ``ctx_len + 1``,
so it covers a little less text when it holds split syllables.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symato.errors import SymatoError


class SplitForms:
    """The split form (sym id, marktone id) of every whole-syllable id of a vocabulary."""

    def __init__(self, tokenizer: Any, probability: float) -> None:
        if not 0.0 <= probability < 1.0:
            raise SymatoError(f"split_syllables must be in [0, 1), got {probability}")
        self.probability = float(probability)
        self.is_whole = np.zeros(0, dtype=bool)
        self.parts = np.zeros((0, 2), dtype=np.int64)
        if self.probability == 0.0:
            return  # nothing to split: any vocabulary (or none) will do
        syllables = tokenizer.to_dict().get("syllables") or []
        if probability > 0 and not syllables:
            raise SymatoError(f"split_syllables = {probability}: tokenizer "
                              f"{tokenizer.kind!r} has no whole-syllable ids (it needs a "
                              f"symato+N vocabulary); set split_syllables to 0")
        from symato.text.syllable import parse  # only here: its import costs ~0.2 s

        self.is_whole = np.zeros(tokenizer.vocab_size, dtype=bool)
        self.parts = np.zeros((tokenizer.vocab_size, 2), dtype=np.int64)
        for syllable in syllables:
            syl = parse(syllable)
            sym_id = tokenizer.sym_id(syl.sym)
            whole = tokenizer.whole_id(sym_id, syl.marktone)
            self.is_whole[whole] = True
            self.parts[whole] = (sym_id, tokenizer.marktone_ids[syl.marktone])

    def apply(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``batch`` (windows x tokens) with whole ids split at random, same shape."""
        if self.probability == 0.0:
            return batch  # no draw: runs without splitting stay exactly as they were
        draws = rng.random(batch.shape)
        out = np.empty_like(batch)
        for r, row in enumerate(batch):
            split = self.is_whole[row] & (draws[r] < self.probability)
            out[r] = self.expand(row, split)[: len(row)]
        return out

    def expand(self, row: np.ndarray, split: np.ndarray) -> np.ndarray:
        """``row`` with the positions in ``split`` written as their two split tokens."""
        if not split.any():
            return row
        counts = 1 + split.astype(np.int64)
        out = np.repeat(row, counts)
        first = np.cumsum(counts) - counts  # where each source token lands
        out[first[split]] = self.parts[row[split], 0]
        out[first[split] + 1] = self.parts[row[split], 1]
        return out
