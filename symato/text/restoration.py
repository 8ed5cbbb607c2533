"""Helpers for diacritic restoration with a symato model.

Why this works: in the symato scheme a syllable is ``[case] sym marktone``, so text typed
without diacritics already gives the case and sym tokens; restoring the diacritics is
choosing one marktone per sym, restricted to the marktones that make a legal syllable.
``prepare`` lays out the ids with a placeholder marktone (0: no mark, no tone) and lists
each slot with its legal choices; the model-driven choice lives in ``symato.run.generate``.
"""

from __future__ import annotations

from collections.abc import Sequence

from symato.errors import SymatoError
from symato.text import syllable as S
from symato.text.codecs.base import TITLE_ID, UPPER_ID
from symato.text.tokenizer import Tokenizer

Slot = tuple[int, tuple[int, ...]]


def _require_symato(tokenizer: Tokenizer) -> None:
    if not tokenizer.marktone_ids:
        raise SymatoError(
            f"diacritic restoration needs a symato vocabulary, not {tokenizer.kind!r}")


def _run_tokens(run: str, tokenizer: Tokenizer) -> tuple[list[int], bool, tuple[int, ...]]:
    """(tokens, is it a syllable unit, allowed marktone ids if it is a restoration slot)."""
    lower = run.lower()
    sym_id = tokenizer.sym_id(lower)
    case = S.case_of(run, lower) if sym_id is not None else None
    if sym_id is not None and case is not None:
        prefix = [] if case == "lower" else [TITLE_ID if case == "title" else UPPER_ID]
        mts = tokenizer.marktone_ids
        allowed = tuple(mts[mt] for mt in S.legal_marktones(lower))
        return [*prefix, sym_id, mts[0]], True, allowed
    toks = tokenizer.encode(run)
    return toks, bool(toks) and tokenizer.is_syllable_start(toks[0]), ()


def prepare(text: str, tokenizer: Tokenizer) -> tuple[list[int], list[Slot]]:
    """Ids of ``text`` (typed without diacritics) with one placeholder marktone per sym.

    Returns ``(ids, slots)``: each slot is (position of the placeholder in ids, the
    marktone ids that make a legal syllable with that sym). Replacing each placeholder
    by one of its choices and decoding gives the restored text; with every placeholder
    kept, ``tokenizer.decode(ids) == text``.
    """
    _require_symato(tokenizer)
    ids: list[int] = []
    slots: list[Slot] = []
    pos, prev_syl = 0, False
    for m in S.LETTER_RUN.finditer(text):
        sep = text[pos : m.start()]
        toks, is_syl, allowed = _run_tokens(m.group(), tokenizer)
        if not (sep == " " and prev_syl and is_syl):
            ids += tokenizer.encode(sep)
        if allowed:
            slots.append((len(ids) + len(toks) - 1, allowed))
        ids += toks
        prev_syl, pos = is_syl, m.end()
    ids += tokenizer.encode(text[pos:])
    return ids, slots


def whole_choices(ids: Sequence[int], slots: Sequence[Slot], tokenizer: Tokenizer
                  ) -> list[dict[int, int]]:
    """Per slot, ``{marktone id: whole-syllable id}`` for the candidates the vocabulary
    writes as one id (symato+N); empty dicts for plain symato.

    Why: a symato+N model only ever saw those syllables as their whole id, never as
    ``sym marktone``, so scoring them by the marktone after a bare sym asks the model
    about text it never saw. ``symato.run.restore.restore_ids`` scores them as the whole
    id instead.
    """
    _require_symato(tokenizer)
    out: list[dict[int, int]] = []
    for pos, allowed in slots:
        choices: dict[int, int] = {}
        for mt_id in allowed:
            mt = tokenizer.marktone_index(mt_id)
            whole = tokenizer.whole_id(ids[pos - 1], mt) if pos > 0 and mt is not None else None
            if whole is not None:
                choices[mt_id] = whole
        out.append(choices)
    return out


def apply_choices(ids: Sequence[int], slots: Sequence[Slot], choices: Sequence[int]) -> list[int]:
    """``ids`` with each slot's placeholder replaced by the chosen marktone id."""
    if len(choices) != len(slots):
        raise SymatoError(f"{len(choices)} choices for {len(slots)} restoration slots")
    out = list(ids)
    for (pos, allowed), choice in zip(slots, choices, strict=True):
        if choice not in allowed:
            raise SymatoError(f"marktone id {choice} is not allowed at position {pos}")
        out[pos] = choice
    return out


def marktone_positions(ids: Sequence[int], tokenizer: Tokenizer) -> list[int]:
    """Positions in ``ids`` that hold a marktone token (where a model predicts diacritics)."""
    _require_symato(tokenizer)
    lo = tokenizer.marktone_ids[0]
    hi = lo + len(tokenizer.marktone_ids)
    return [i for i, t in enumerate(ids) if lo <= t < hi]
