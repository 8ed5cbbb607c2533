"""Diacritic restoration with a trained model (``symato restore``).

Restoration is zero-shot: with the symato tokenization each syllable is a sym token
followed by a marktone token, so text typed without diacritics is a sequence whose
marktones are unknown. ``restore_ids`` feeds the text up to each unknown marktone,
picks the allowed marktone the model scores highest, feeds that choice and goes on.
Which positions are open and which marktones each may take comes from
``symato.text.restoration``; the model is walked with ``symato.run.generate.Feeder``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from symato.errors import SymatoError
from symato.run.generate import Feeder, common_args, load_for_inference


def _check_slots(
    n_ids: int, slots: Iterable[tuple[int, Iterable[int]]]
) -> list[tuple[int, list[int]]]:
    """Validate slot positions (strictly increasing, in range) and candidate lists."""
    checked: list[tuple[int, list[int]]] = []
    previous = -1
    for i, (pos, allowed) in enumerate(slots):
        cands = sorted(int(a) for a in allowed)
        if not 0 <= pos < n_ids:
            raise SymatoError(f"restoration slot {i}: position {pos} outside 0..{n_ids - 1}")
        if pos <= previous:
            raise SymatoError(f"restoration slot {i}: position {pos} not after {previous}")
        if not cands:
            raise SymatoError(f"restoration slot {i} (position {pos}): no allowed marktones")
        checked.append((int(pos), cands))
        previous = pos
    return checked


def restore_ids(
    model: nn.Module,
    ids: Sequence[int],
    slots: Iterable[tuple[int, Iterable[int]]],
    bos_id: int | None = None,
    wholes: Sequence[dict[int, int]] | None = None,
) -> list[int]:
    """Fill each slot with the allowed id the model scores highest, left to right.

    ``slots`` are ``(position, allowed ids)`` with increasing positions; the placeholder
    at a slot position is ignored. Each choice is fed back, so later slots condition on
    the model's own earlier choices (greedy). ``bos_id`` (e.g. the end-of-text id) is
    fed first as context; without it a slot at position 0 is an error. One
    ``forward_step`` per stretch between slots; nothing after the last slot is fed.

    ``wholes`` (one dict per slot, from ``symato.text.restoration.whole_choices``) serves
    vocabularies with whole-syllable ids: a candidate with a whole id is scored as
    P(whole id | context before the sym), the others as P(sym | context) x P(marktone |
    context, sym), and when a whole id wins it replaces the slot's ``sym marktone``
    pair, so the result can be shorter than ``ids``.
    """
    checked = _check_slots(len(ids), slots)
    if wholes is not None and len(wholes) != len(checked):
        raise SymatoError(f"restoration: {len(wholes)} whole-id maps for {len(checked)} slots")
    vocab = int(model.config.vocab_size)
    for i, (pos, cands) in enumerate(checked):
        extra = list(wholes[i].values()) if wholes else []
        if min(cands + extra) < 0 or max(cands + extra) >= vocab:
            raise SymatoError(f"restoration slot at {pos}: ids {cands} outside vocabulary {vocab}")
    out: list[int] = []
    pending = [] if bos_id is None else [int(bos_id)]  # in ``out`` (or bos), not yet fed
    feeder, fed = Feeder(model), 0
    for i, (pos, cands) in enumerate(checked):
        whole = wholes[i] if wholes else {}
        if whole:
            written, pending = _restore_with_wholes(
                feeder, pending + list(ids[fed : pos - 1]), int(ids[pos - 1]), cands, whole, pos)
            out += list(ids[fed : pos - 1]) + written
        else:
            chunk = pending + list(ids[fed:pos])
            if not chunk:
                raise SymatoError("restoration slot at position 0 needs bos_id as context")
            logits = feeder.feed(chunk)
            pending = [cands[int(torch.argmax(logits[cands]))]]
            out += list(ids[fed:pos]) + pending
        fed = pos + 1
    return out + list(ids[fed:])


def _restore_with_wholes(feeder: Feeder, before: list[int], sym: int, cands: list[int],
                         whole: dict[int, int], pos: int) -> tuple[list[int], list[int]]:
    """The best syllable at one slot: (its tokens, those of them not fed yet), i.e.
    ``([whole], [whole])`` or ``([sym, marktone], [marktone])``. Models return a new
    state from ``forward_step`` and never change the one passed in, so a snapshot of
    the feeder is a shallow copy."""
    if not before:
        raise SymatoError(f"restoration slot at {pos} needs context before its sym (bos_id)")
    lp_before = torch.log_softmax(feeder.feed(before), -1)
    snapshot = (feeder.state, feeder.cached, list(feeder.history))
    lp_after = torch.log_softmax(feeder.feed([sym]), -1)
    scores = [float(lp_before[whole[c]]) if c in whole
              else float(lp_before[sym] + lp_after[c]) for c in cands]
    best = cands[max(range(len(cands)), key=scores.__getitem__)]
    if best not in whole:
        return [sym, best], [best]
    feeder.state, feeder.cached, feeder.history = snapshot  # un-feed the sym
    return [whole[best]], [whole[best]]


def restore_text(model: nn.Module, tokenizer: Any, text: str) -> str:
    """Restore the diacritics of ``text`` (typed without them); return the new text."""
    from symato.text.restoration import prepare, whole_choices

    ids, slots = prepare(text, tokenizer)
    wholes = whole_choices(ids, slots, tokenizer)
    return tokenizer.decode(restore_ids(model, ids, slots, tokenizer.eot_id, wholes))



# ----------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    """``symato restore --ckpt PATH [TEXT ...]``: print TEXT (or stdin) with diacritics."""
    parser = argparse.ArgumentParser(
        prog="symato restore",
        description="Restore Vietnamese diacritics in text typed without them.",
    )
    common_args(parser)
    parser.add_argument("text", nargs="*", help="text to restore (default: read stdin)")
    args = parser.parse_args(argv)
    text = " ".join(args.text) if args.text else sys.stdin.read()
    model, tokenizer = load_for_inference(args.ckpt, args.vocab, args.device)
    print(restore_text(model, tokenizer, text), end="" if not args.text else "\n")
    return 0
