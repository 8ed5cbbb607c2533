"""Decode backends of the ``Tokenizer``: the compiled loop (``c``) and the Python decoders.

Why a compiled loop: a line (~100 symato ids) or one sampled token decodes in a fixed
~3 us plus ~55-90 ns per id in Python; sentencepiece does it in C++ with about half the
ids. ``symato.text._fastdecode`` (``_fastdecode.c``, built by every install) walks flat
tables this module builds once per tokenizer (``tables``) and writes only byte slices
the tables hold; its loop is the reference decoder's (``Tokenizer._decode_symato``) state
machine, so it decodes every in-range id sequence, well formed or not, to the same bytes
(hypothesis-tested against the reference for every table kind).

Backends, by name (``Tokenizer.decode(ids, backend=...)``, ``stream_decoder(backend=...)``,
or for every call without one the environment variable ``SYMATO_DECODER``):

- ``c`` (default): the compiled loop. Ids it does not take (out of range, not plain
  ints, not a list / tuple / 1-D integer array) go to the checking Python path, which
  reports them (``SymatoError`` naming the position) or decodes them as the reference.
- ``python``: the Python decoders only (short-list loop, numpy passes, the reference
  loop): same output, slower; for tests, debugging and installs without the extension.

If the extension is missing, asking for ``c`` raises ``SymatoError`` with the cause and
the fix (a project rule: a fast path never degrades silently).
"""

from __future__ import annotations

import os
from array import array
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from symato.errors import SymatoError
from symato.text import syllable as S

if TYPE_CHECKING:
    from symato.text.tokenizer import Tokenizer

ABI = 1  # _fastdecode.c's ABI constant: the table layout and constructor this code builds


def _load() -> tuple[Any, ImportError | None]:
    """The extension, or None and why not: not built (a checkout on PYTHONPATH, a broken
    install) or built from an older source (an editable install is not rebuilt when the
    C file changes)."""
    try:
        from symato.text import _fastdecode as mod
    except ImportError as exc:
        return None, exc
    if getattr(mod, "ABI", None) != ABI:
        return None, ImportError(f"{mod.__file__} was built from another version of "
                                 f"_fastdecode.c (ABI {getattr(mod, 'ABI', None)}, need {ABI})")
    return mod, None


_fastdecode, _IMPORT_ERROR = _load()

BACKENDS = ("c", "python")
ENV = "SYMATO_DECODER"
OWN, MT, CASE, SYM, WHOLE = range(5)  # id classes of _fastdecode.c
FORMS = S.MARKTONES + 1  # per sym: the 18 marktones, then the bare sym


def check_backend(name: str) -> str:
    """``name`` if it is a decode backend, else a SymatoError listing them."""
    if name not in BACKENDS:
        raise SymatoError(f"decode backend must be one of {BACKENDS}, got {name!r}")
    return name


def default_backend() -> str:
    """The backend of calls that name none: ``$SYMATO_DECODER`` or ``c``."""
    name = os.environ.get(ENV) or "c"
    if name not in BACKENDS:
        raise SymatoError(f"environment variable {ENV}={name!r}: must be one of {BACKENDS}")
    return name


def available() -> bool:
    """Whether the compiled decoder is importable in this process."""
    return _fastdecode is not None


def missing_message() -> str:
    """Why the compiled decoder cannot be used, and what to do (cause + fix)."""
    return (
        "symato's compiled tokenizer decoder (symato.text._fastdecode) is not built or "
        f"is stale ({_IMPORT_ERROR}).\n"
        "  cause: symato runs from a source tree whose C extension was not built, or built "
        "from an older _fastdecode.c (e.g. a checkout on PYTHONPATH, an editable install "
        "made before the C file changed).\n"
        "  fix: with a C compiler and the Python headers (Debian: apt-get install gcc "
        "python3-dev), rebuild it from your checkout: `pip install -e .` there (or `make "
        "setup`, or `python setup.py build_ext --inplace`); an install from a checkout "
        "elsewhere: `pip install --force-reinstall --no-deps -e PATH/TO/CHECKOUT`; or ask "
        f"for the pure-Python decoder by name: decode(ids, backend='python') or {ENV}=python "
        "(same output, slower)")


def require() -> Any:
    """The extension module, or SymatoError with cause and fix."""
    if _fastdecode is None:
        raise SymatoError(missing_message())
    return _fastdecode


def tables(tok: Tokenizer) -> dict[str, Any]:
    """The flat tables ``_fastdecode.Decoder`` walks (layout: the top of _fastdecode.c).

    Every byte comes from the tokenizer's own decode tables: ``_id_bytes`` (bytes,
    specials, merges, reserved ids, sentencepiece pieces), ``_compose`` (sym + marktone
    in three cases), ``_whole`` and ``_bare_sym`` (what the reference writes for a sym
    without a legal marktone). Syllable slices carry the implicit space in front.
    """
    v = tok.vocab_size
    cls = bytearray(v)  # OWN everywhere unless set below
    arg = array("i", bytes(4 * v))
    slices: list[bytes] = list(tok._id_bytes)
    if tok._syms:
        def mark(t: int, k: int, a: int) -> None:
            cls[t], arg[t], slices[t] = k, a, b""

        from symato.text.tokenizer import MT_BASE, TITLE_ID, UPPER_ID

        for m in range(S.MARKTONES):
            mark(MT_BASE + m, MT, m)
        mark(TITLE_ID, CASE, 1)
        mark(UPPER_ID, CASE, 2)
        for i in range(len(tok._syms)):
            mark(tok._sym_base + i, SYM, i)
        for w in range(len(tok._whole)):
            mark(tok._syl_base + w, WHOLE, w)
        get = tok._compose.get
        for i in range(len(tok._syms)):
            sym_id = tok._sym_base + i
            bare = [b" " + tok._bare_sym(sym_id, c) for c in range(3)]
            for m in range(S.MARKTONES):
                forms = get(sym_id * S.MARKTONES + m)
                slices += [b" " + f for f in forms] if forms else bare
            slices += bare
        for forms in tok._whole:
            slices += [b" " + f for f in forms]
    lengths = array("I", map(len, slices))
    offsets = array("I", accumulate(lengths[:-1], initial=0)) if slices else array("I")
    return {"cls": bytes(cls), "arg": arg.tobytes(), "off": offsets.tobytes(),
            "len": lengths.tobytes(), "blob": b"".join(slices), "n_syms": len(tok._syms),
            "n_whole": len(tok._whole) if tok._syms else 0}


def build_decoder(tok: Tokenizer) -> Any:
    """A ``_fastdecode.Decoder`` for ``tok`` (SymatoError if the extension is missing)."""
    return require().Decoder(**tables(tok))
