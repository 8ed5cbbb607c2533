"""The decoder implementations of the ``Tokenizer``: the compiled loop (``c``) and Python.

Why a compiled loop: a line (~100 symato ids) or one sampled token decodes in a fixed
~3 us plus ~55-90 ns per id in Python; sentencepiece does it in C++ with about half the
ids. ``symato.text._fastdecode`` (``_fastdecode.c``, built by every install) walks flat
tables this module builds once per tokenizer from its codec's ``DecodeTables``
(``tables``) and writes only byte slices the tables hold; its loop is the reference
decoder's (``symato.text.decoding``) state machine, so it decodes every in-range id
sequence, well formed or not, to the same bytes (hypothesis-tested against the
reference for every kind).

Decoders, by name (``Tokenizer.decode(ids, decoder=...)``, ``stream_decoder(decoder=...)``,
or for every call without one the environment variable ``SYMATO_DECODER``):

- ``c`` (default): the compiled loop. Ids it does not take (out of range, not plain
  ints, not a list / tuple / 1-D integer array) go to the checking Python path, which
  reports them (``SymatoError`` naming the position) or decodes them as the reference.
- ``python``: the reference decoder only: same output, slower; for tests, debugging and
  installs without the extension.

If the extension is missing, asking for ``c`` raises ``SymatoError`` with the cause and
the fix (a project rule: a fast path never degrades silently).
"""

from __future__ import annotations

import os
from array import array
from itertools import accumulate
from typing import Any

from symato.errors import SymatoError
from symato.text.codecs.base import FORMS, DecodeTables

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

DECODERS = ("c", "python")
ENV = "SYMATO_DECODER"


def check_decoder(name: str) -> str:
    """``name`` if it is a decoder implementation, else a SymatoError listing them."""
    if name not in DECODERS:
        raise SymatoError(f"decoder must be one of {DECODERS}, got {name!r}")
    return name


def default_decoder() -> str:
    """The decoder of calls that name none: ``$SYMATO_DECODER`` or ``c``."""
    name = os.environ.get(ENV) or "c"
    if name not in DECODERS:
        raise SymatoError(f"environment variable {ENV}={name!r}: must be one of {DECODERS}")
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
        f"for the pure-Python decoder by name: decode(ids, decoder='python') or {ENV}=python "
        "(same output, slower)")


def require() -> Any:
    """The extension module, or SymatoError with cause and fix."""
    if _fastdecode is None:
        raise SymatoError(missing_message())
    return _fastdecode


def tables(dt: DecodeTables) -> dict[str, Any]:
    """The flat tables ``_fastdecode.Decoder`` walks (layout: the top of _fastdecode.c):
    ``dt``'s values laid out as one blob of slices. Syllable slices carry the implicit
    space in front (the loop starts one byte later when no space is due)."""
    slices: list[bytes] = list(dt.own)
    for forms in dt.sym_forms:
        slices += [b" " + f for f in forms]
    for forms in dt.whole_forms:
        slices += [b" " + f for f in forms]
    lengths = array("I", map(len, slices))
    offsets = array("I", accumulate(lengths[:-1], initial=0)) if slices else array("I")
    return {"cls": dt.cls, "arg": array("i", dt.arg).tobytes(), "off": offsets.tobytes(),
            "len": lengths.tobytes(), "blob": b"".join(slices), "n_syms": len(dt.sym_forms),
            "n_whole": len(dt.whole_forms)}


def build_decoder(dt: DecodeTables) -> Any:
    """A ``_fastdecode.Decoder`` over ``dt`` (SymatoError if the extension is missing)."""
    if any(len(forms) != FORMS * 3 for forms in dt.sym_forms):
        raise SymatoError(f"decode tables: every sym needs {FORMS * 3} forms")
    return require().Decoder(**tables(dt))
