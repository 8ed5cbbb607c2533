"""The compiled decoder (symato.text._fastdecode) against the Python reference decoder.

Exactness is the whole contract: for every table kind and every id sequence in range
(well formed or not: stray marktones and case tokens, syms without a marktone, illegal
marktones, invalid UTF-8 from byte tokens and merges, encoded surrogates), the compiled
loop writes the reference's bytes, in one call and streamed at any split. Ids it does
not take (out of range, not plain ints, other containers) must behave exactly as the
Python path does. The tests call the compiled decoder directly where it matters, so a
silent fallback to Python could not make them pass.
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symato import SymatoError, Tokenizer
from symato.text import fastdecode
from symato.text.codecs.base import to_text as _to_text
from symato.text.decoding import decode_all
from symato.text.syllable import all_syms
from symato.text.tokenizer import symato_dict
from symato.text.vocab import build_vocab

TEXT = ("Nước Việt Nam hình chữ S. ĐIỀU 7, ok Quyền được thông tin (1992), xe buýt. "
        "Krông Pắc — “hòa” https://example.com/a1.html 😀\n")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Tokenizer]:
    """One tokenizer per table-encoded kind (and the sentencepiece wrapper, whose decode
    is a table too), with long specials and merges that are not valid UTF-8 on their own."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("fastdecode")
    docs = [f"{TEXT} Năm {1990 + i}, giá {i * 1000} đồng (USD {i}.5). <b>Xem</b> "
            f"https://example.com/a{i}.html ok\n\n  Krông Pắc — “hòa” ... Ðồng Ǆ ﬁ"
            for i in range(40)]
    pd.DataFrame({"text": docs}).to_parquet(folder / "t.parquet")
    d = symato_dict(all_syms())
    d["specials"].append("<|" + "x" * 300 + "|>")  # a slice longer than 255 bytes
    out = {"symato": Tokenizer.from_dict(d),
           "symato+3000": build_vocab("symato+3000"),
           "symato-old": build_vocab("symato", tone_style="old"),
           "symato-bpe2700": build_vocab("symato-bpe2700", texts=[folder / "t.parquet"]),
           "symato-words2800": build_vocab("symato-words2800", texts=[folder / "t.parquet"],
                                           bpe_min_count=1),
           "bytes": build_vocab("bytes"),
           "sentencepiece": build_vocab("sentencepiece", texts=[folder / "t.parquet"],
                                        size=400)}
    bpe = out["symato-bpe2700"]
    merges = [t for t in range(bpe.vocab_size) if bpe.is_merge(t)]
    own = bpe.decode_tables.own
    assert any(_bad_utf8(own[t]) for t in merges), "want a merge that is not UTF-8"
    words = out["symato-words2800"].decode_tables.whole_forms
    assert any(b" " in forms[0] for forms in words), "want a word of several syllables"
    return out


def _bad_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _reference(t: Tokenizer, ids: list[int]) -> bytes:
    """The reference bytes: the Python loop every decode path must agree with."""
    return decode_all(t.decode_tables, ids)


def _interesting(t: Tokenizer) -> list[int]:
    """Ids where decoding branches: marktones, case, syms, wholes, merges, specials, the
    last id, space, and the bytes of cut / invalid / surrogate UTF-8 sequences."""
    v = t.vocab_size
    ids = [0x20, 0x41, 0xE1, 0xBB, 0x87, 0xED, 0xA0, 0x80, 0xF0, 0x9F, 0x98, 0xC3, 0xFF,
           t.eot_id, v - 1]
    c = t.codec
    if t.marktone_ids:
        ids += [*t.marktone_ids, 274, 275, c.sym_base, c.sym_base + len(c.syms) - 1,
                t.sym_id("nuoc"), t.sym_id("ac"), t.sym_id("gi"), t.sym_id("đieu")]
        ids += [c.syl_base, v - 1] if v > c.syl_base else []
        ids += [i for i in range(v) if t.is_merge(i)][:40]
    return ids


def _ids(t: Tokenizer, max_size: int = 80) -> st.SearchStrategy[list[int]]:
    """Random ids in units: single ids (uniform, or where decoding branches) and, for the
    symato kinds, ``[case] sym marktone`` with any marktone (most are illegal for the
    sym) and ``[case] whole``."""
    pick = st.sampled_from(_interesting(t))
    units = [st.one_of(st.integers(0, t.vocab_size - 1), pick, pick).map(lambda i: [i])]
    c = t.codec
    if t.marktone_ids:
        case = st.sampled_from([[], [], [274], [275]])
        sym = st.integers(c.sym_base, c.sym_base + len(c.syms) - 1)
        units.append(st.tuples(case, sym, st.sampled_from(t.marktone_ids))
                     .map(lambda u: [*u[0], u[1], u[2]]))
        if t.vocab_size > c.syl_base:
            units.append(st.tuples(case, st.integers(c.syl_base, t.vocab_size - 1))
                         .map(lambda u: [*u[0], u[1]]))
    return st.lists(st.one_of(*units), max_size=max_size // 2).map(
        lambda us: [i for u in us for i in u])


KINDS = ["symato", "symato+3000", "symato-old", "symato-bpe2700", "symato-words2800", "bytes",
         "sentencepiece"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_matches_the_reference_on_random_ids(kinds, data):
    for name in KINDS:
        t = kinds[name]
        ids = data.draw(_ids(t), label=name)
        want = _reference(t, ids)
        dec = t._c_decoder()
        assert dec.decode_bytes(ids) == want, name  # the compiled loop itself, no fallback
        assert dec.decode(ids) == _to_text(want), name
        assert dec.decode_bytes(tuple(ids)) == want
        for dtype in (np.uint16, np.int32, np.int64, np.uint64):
            assert dec.decode_bytes(np.array(ids, dtype=dtype)) == want, dtype
        assert t.decode_bytes(ids) == t.decode_bytes(ids, decoder="python") == want
        assert t.decode(ids) == t.decode(ids, decoder="python") == _to_text(want)


def _feed_all(stream, ids: list[int], cuts: list[int]) -> str:
    out, prev = [], 0
    for c in [*sorted(set(cuts)), len(ids)]:
        got = stream.feed(ids[prev:c])
        assert got is not None  # plain ints in range: always the compiled path
        out.append(got)
        prev = c
    return "".join(out) + stream.finish()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_stream_matches_the_reference_at_any_split(kinds, data):
    for name in KINDS:
        t = kinds[name]
        ids = data.draw(_ids(t, 50), label=name)
        cuts = data.draw(st.lists(st.integers(0, len(ids)), max_size=8), label="cuts")
        want = _to_text(_reference(t, ids))
        stream = t._c_decoder().stream()
        assert _feed_all(stream, ids, cuts) == want, name
        assert _feed_all(stream, ids, list(range(len(ids)))) == want  # reset by finish
        python = t.stream_decoder(decoder="python")
        assert "".join(python.feed(ids[a:b]) for a, b in zip([0, *sorted(set(cuts))],
                                                             [*sorted(set(cuts)), len(ids)],
                                                             strict=True)) \
            + python.finish() == want


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_compiled_round_trip_of_encoded_text(kinds, text):
    for name in KINDS:
        t = kinds[name]
        ids = t.encode(TEXT + text)
        assert t._c_decoder().decode(ids) == TEXT + text, name
        stream = t.stream_decoder()
        assert "".join(stream.feed([i]) for i in ids) + stream.finish() == TEXT + text


def test_long_streams_and_long_slices(kinds):
    """Outputs past the C loop's stack buffers (2 kB of bytes, 512 ids), slices > 255 B."""
    t = kinds["symato"]
    long_special = t.piece_to_id("<|" + "x" * 300 + "|>")
    ids = [*t.encode(TEXT), long_special] * 300
    want = _reference(t, ids)
    assert len(ids) > 10_000 and len(want) > 100_000
    assert t._c_decoder().decode_bytes(ids) == want
    assert t._c_decoder().decode_bytes(np.array(ids)) == want
    assert t.decode(ids) == t.decode(ids, decoder="python") == want.decode()
    assert t.stream_decoder().feed(ids) == want.decode()


def _outcome(fn, ids):
    try:
        return fn(ids)
    except Exception as exc:  # what matters is that both paths agree
        return f"{type(exc).__name__}: {exc}"


BAD = [
    [65, 2816], [65, -1], [65, 2**40], [65, 2**70], [65, 2.5], [65, "a"], [65, None],
    [True, 65], [np.int64(274), np.int64(1000), np.uint16(256)], np.array([65, 99999]),
    np.array([65, -3], dtype=np.int8), np.array([65.0, 66.0]), np.array([True, False]),
    np.array([[65, 66], [67, 68]]), np.array([65, 66, 67, 68])[::2],
    np.array([65, 274, 1000, 260], dtype=">i4"), range(60, 70), iter([65, 66]),
    (x for x in [274, 1000, 260]), bytearray(b"ok"), b"\xe1\xbb\x87",
]


@pytest.mark.parametrize("ids", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_what_the_compiled_path_does_not_take_behaves_as_python(kinds, ids):
    t = kinds["symato"]
    c = functools.partial(t.decode, decoder="c")
    py = functools.partial(t.decode, decoder="python")
    if isinstance(ids, (list, np.ndarray, bytes, bytearray)):
        assert _outcome(c, ids) == _outcome(py, ids)
    else:  # iterators are read once: compare on one copy
        items = list(ids)
        assert _outcome(c, items) == _outcome(py, items)
        assert _outcome(t.decode, iter(items)) == _outcome(py, items)


def test_compiled_path_declines_what_it_does_not_take(kinds):
    dec = kinds["symato"]._c_decoder()
    for ids in ([65, 2816], [65, -1], [65, 2**70], [True], [np.int64(65)], [65.0], "ab",
                iter([65]), np.array([65.0]), np.array([[65]]), np.array([65, 66, 67])[::2],
                np.array([65], dtype=">i8")):
        assert dec.decode_bytes(ids) is None and dec.decode(ids) is None, ids
    stream = dec.stream()
    assert stream.feed([274]) == "" and stream.feed([65, 2816]) is None
    assert stream.state == (1, -1, 0, b"")  # unchanged by the declined call


def test_stream_state_survives_the_python_path(kinds):
    """numpy integers mid-stream: the checking Python loop runs on the compiled state."""
    t = kinds["symato"]
    nuoc = t.piece_to_id("nuoc")
    ids = [274, nuoc, 256 + 13, nuoc, 0xE1, 0xBB, 0x87, 274]
    want = t.decode(ids, decoder="python")
    for k in range(len(ids)):
        stream = t.stream_decoder()
        mixed = [np.int64(i) if j == k else i for j, i in enumerate(ids)]
        got = "".join(stream.feed([i]) for i in mixed) + stream.finish()
        assert got == want, k
    with pytest.raises(SymatoError, match="position 1 is out of range"):
        t.stream_decoder().feed([5, 99999])
    with pytest.raises(SymatoError, match="not an integer"):
        t.stream_decoder().feed([True])


def test_a_broken_table_is_caught(kinds):
    """The comparison with the reference catches a table that is wrong in one slice, and
    the decoder refuses tables that would read outside its own memory."""
    t = kinds["symato"]
    tables = fastdecode.tables(t.decode_tables)
    ids = t.encode("người")
    good = fastdecode.require().Decoder(**tables)
    assert good.decode_bytes(ids) == _reference(t, ids)
    blob = bytearray(tables["blob"])
    start = blob.index(" người".encode())
    blob[start + 1 : start + 4] = "ngừ".encode()[:3]  # same length, one letter changed
    broken = fastdecode.require().Decoder(**{**tables, "blob": bytes(blob)})
    assert broken.decode_bytes(ids) != _reference(t, ids)
    off = np.frombuffer(tables["off"], dtype=np.uint32).copy()
    off[-1] = len(tables["blob"])  # a slice past the end of the blob
    with pytest.raises(ValueError, match="slice"):
        fastdecode.require().Decoder(**{**tables, "off": off.tobytes()})
    cls = bytearray(tables["cls"])
    cls[65] = 9
    with pytest.raises(ValueError, match="class"):
        fastdecode.require().Decoder(**{**tables, "cls": bytes(cls)})
    with pytest.raises(ValueError, match="table off"):
        fastdecode.require().Decoder(**{**tables, "off": tables["off"][:-4]})


def test_missing_extension_fails_with_cause_and_fix(monkeypatch):
    monkeypatch.setattr(fastdecode, "_fastdecode", None)
    monkeypatch.setattr(fastdecode, "_IMPORT_ERROR", ImportError("No module named _fastdecode"))
    t = Tokenizer.from_dict(symato_dict(all_syms()))
    ids = t.encode(TEXT)
    assert t.decoder == "c"
    assert "--no-binary" not in fastdecode.missing_message()  # that installs PyPI's symato
    for call in (t.decode, t.decode_bytes, lambda ids: t.stream_decoder()):
        with pytest.raises(SymatoError, match=r"(?s)not built or is stale.*No module named"
                                              r".*pip install -e \..*--force-reinstall "
                                              r"--no-deps -e PATH/TO/CHECKOUT.*decoder='python'"
                                              r".*SYMATO_DECODER=python"):
            call(ids)
    # the Python decoder by name: same output
    assert t.decode(ids, decoder="python") == TEXT
    stream = t.stream_decoder(decoder="python")
    assert "".join(stream.feed([i]) for i in ids) + stream.finish() == TEXT
    monkeypatch.setenv("SYMATO_DECODER", "python")
    t = Tokenizer.from_dict(symato_dict(all_syms()))
    assert t.decoder == "python" and t.decode(ids) == TEXT
    assert t.stream_decoder().feed(ids) == TEXT


def test_a_stale_build_counts_as_missing(monkeypatch):
    """An editable install keeps its .so when _fastdecode.c changes: a build from another
    version must not be used with tables laid out for this one."""
    module = fastdecode.require()
    assert fastdecode._load() == (module, None)
    monkeypatch.setattr(module, "ABI", 0)
    mod, err = fastdecode._load()
    assert mod is None and "ABI 0, need 1" in str(err)


def test_pickled_tokenizer_rebuilds_its_decoder(kinds):
    for name in ("symato+3000", "symato-bpe2700", "bytes"):
        t = kinds[name]
        ids = t.encode(TEXT)
        assert t.decode(ids) == TEXT and t._hot is not None
        copy = pickle.loads(pickle.dumps(t))
        assert copy._hot is None and copy.decode(ids) == TEXT and copy._hot is not None


def test_decoder_names(monkeypatch):
    t = Tokenizer.default()
    with pytest.raises(SymatoError, match="decoder must be one of"):
        t.decode([65], decoder="rust")
    with pytest.raises(SymatoError, match="decoder must be one of"):
        t.stream_decoder(decoder="cpp")
    monkeypatch.setenv("SYMATO_DECODER", "fast")
    with pytest.raises(SymatoError, match="SYMATO_DECODER='fast'"):
        Tokenizer.from_dict(symato_dict(all_syms()))
    monkeypatch.setenv("SYMATO_DECODER", "c")
    assert Tokenizer.from_dict(symato_dict(all_syms())).decoder == "c"
    assert fastdecode.available()  # the test environment has it built


_FAILED_INIT = """
import sys
from symato import Tokenizer
from symato.text import fastdecode
from symato.text.syllable import all_syms
from symato.text.tokenizer import symato_dict

tables = fastdecode.tables(Tokenizer.from_dict(symato_dict(all_syms())).decode_tables)
Decoder = fastdecode.require().Decoder
off = bytearray(tables["off"])
off[-4:] = (len(tables["blob"]) + 1).to_bytes(4, sys.byteorder)  # fails Decoder_check
for bad in ({"arg": tables["arg"][:-4]}, {"off": bytes(off)}):
    d = Decoder.__new__(Decoder)
    try:
        d.__init__(**{**tables, **bad})
    except ValueError:
        pass
    else:
        raise SystemExit(f"bad tables {list(bad)} accepted")
    for use in (d.decode, d.decode_bytes, lambda ids: d.stream()):
        try:
            use([0])
        except TypeError as exc:
            assert "not initialized" in str(exc), exc
        else:
            raise SystemExit("a decoder whose __init__ failed decoded")
    d.__init__(**tables)  # a retry after a failure is a first init
    assert d.decode_bytes([65]) == b"A"
print("ok")
"""


def test_a_failed_init_leaves_a_decoder_that_refuses_use():
    """A Decoder whose __init__ failed (a wrong-sized table, or tables that fail the
    bounds check) must raise on use, not read the half-built tables; it runs in a child
    process so that a segfault fails this test instead of killing pytest."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _FAILED_INIT], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stderr)
