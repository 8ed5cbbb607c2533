"""The readable decoder: the reference every other decode path must equal.

One state machine over ``DecodeTables`` (``symato.text.codecs.base``) for every kind:

- an ``OWN`` id writes its own bytes; it ends a syllable run and drops a pending case;
- ``CASE`` sets the pending case (1 Title, 2 UPPER); ``SYM`` becomes the pending sym;
- ``MT`` after a pending sym writes the syllable (sym, marktone, case) -- an illegal
  pair writes the bare sym -- else it only drops a pending case;
- ``WHOLE`` writes a whole syllable or word in the pending case;
- a pending sym followed by anything but a marktone is written bare first;
- a syllable right after a syllable gets the implicit space before it.

So ill-formed sequences (a model's samples) decode too. ``_fastdecode.c`` is the same
loop in C (``symato.text.fastdecode``); tests/test_fastdecode.py compares the two with
hypothesis. The state is ``(case, pending sym id or -1, last output a syllable)``: the
compiled stream's state, so either can resume the other's.
"""

from __future__ import annotations

from collections.abc import Iterable

from symato.text.codecs.base import BARE, CASE, MT, OWN, SYM, DecodeTables

State = tuple[int, int, bool]
START: State = (0, -1, False)


def decode(tables: DecodeTables, ids: Iterable[int], state: State = START
           ) -> tuple[bytes, State]:
    """The bytes of in-range ``ids`` from ``state``, and the state after them (a pending
    sym is not written: ``flush`` does that at the end)."""
    out: list[bytes] = []
    app = out.append
    cls, arg, own = tables.cls, tables.arg, tables.own
    case, sym, prev = state

    def syllable(form: bytes) -> None:
        if prev:
            app(b" ")
        app(form)

    for t in ids:
        k = cls[t]
        if k == MT:
            if sym >= 0:
                syllable(tables.sym_forms[arg[sym]][arg[t] * 3 + case])
                prev, sym = True, -1
            case = 0
            continue
        if sym >= 0:  # a sym not followed by a marktone: written bare
            syllable(tables.sym_forms[arg[sym]][BARE * 3 + case])
            prev, case, sym = True, 0, -1
        if k == OWN:
            app(own[t])
            prev, case = False, 0
        elif k == SYM:
            sym = t
        elif k == CASE:
            case = arg[t]
        else:  # WHOLE
            syllable(tables.whole_forms[arg[t]][case])
            prev, case = True, 0
    return b"".join(out), (case, sym, prev)


def flush(tables: DecodeTables, state: State) -> bytes:
    """The bytes a decode still owes at the end: a pending sym, written bare."""
    case, sym, prev = state
    if sym < 0:
        return b""
    return (b" " if prev else b"") + tables.sym_forms[tables.arg[sym]][BARE * 3 + case]


def decode_all(tables: DecodeTables, ids: Iterable[int]) -> bytes:
    """The reference decode of a whole id sequence."""
    data, state = decode(tables, ids)
    return data + flush(tables, state)


def utf8_cut(data: bytes) -> int:
    """Length of the longest prefix of ``data`` whose decoding cannot change with more
    bytes: everything before a trailing lead byte whose sequence is still incomplete.

    Why this is enough for exactness: the decoders resolve every invalid byte where it
    stands (U+FFFD, resume at the next byte) except a 3-byte encoded surrogate, which
    starts with a lead byte; so text decoded up to a lead byte never depends on what
    follows it."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b & 0xC0 != 0x80:  # not a continuation byte
            need = 2 if b < 0xE0 and b >= 0xC0 else 3 if 0xE0 <= b < 0xF0 else 4 if b >= 0xF0 else 1
            return n - back if need > back else n
    return n
