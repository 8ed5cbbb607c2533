"""Tokenizer: the lossless invariant, token costs, golden examples, vocabulary files."""

from __future__ import annotations

import base64
import json
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symato import SymatoError, Tokenizer
from symato.text.decoding import decode_all
from symato.text.syllable import all_syllables, all_syms
from symato.text.tokenizer import symato_dict
from symato.text.vocab import build_vocab


def _ref(t: Tokenizer, ids) -> bytes:
    """The reference decoder's bytes (``symato.text.decoding``) over ``t``'s tables."""
    return decode_all(t.decode_tables, [int(x) for x in ids])

GOLDEN = "Nước Việt Nam hình chữ S. ĐIỀU 7, ok"
GOLDEN_PIECES = [
    "<Title>", "nuoc", "<ắ>", "<Title>", "viet", "<ậ>", "<Title>", "nam", "<a>", "hinh", "<à>",
    "chu", "<ẵ>", "<0x20>", "<0x53>", "<0x2E>", "<0x20>", "<UPPER>", "đieu", "<ầ>", "<0x20>",
    "<0x37>", "<0x2C>", "<0x20>", "<0x6F>", "<0x6B>",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.default()


@pytest.fixture(scope="module")
def tok_plus() -> Tokenizer:
    return build_vocab("symato+3000")  # no corpus: the first 3000 syllables of the inventory


@pytest.fixture(scope="module")
def tok_old() -> Tokenizer:
    return build_vocab("symato", tone_style="old")


@pytest.fixture(scope="module")
def tok_sp(tmp_path_factory) -> Tokenizer:
    import pandas as pd

    clean = tmp_path_factory.mktemp("clean")
    (clean / "shards").mkdir()
    text = "\n".join([GOLDEN, "Quyền được thông tin là một quyền cơ bản của con người."] * 50)
    pd.DataFrame({"doc_id": ["0"], "source": ["t"], "text": [text]}).to_parquet(
        clean / "shards" / "0.parquet")
    return build_vocab("sentencepiece", texts=[clean / "shards" / "0.parquet"], size=400)


@pytest.fixture(scope="module")
def tok_bpe(tmp_path_factory) -> Tokenizer:
    """symato-bpe learned from text full of numbers, Latin words, punctuation and markup."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("bpe")
    docs = [f"{GOLDEN} Năm {1990 + i}, giá {i * 1000} đồng (USD {i}.5). <b>Xem</b> "
            f"https://example.com/a{i}.html ok\n\n  Krông Pắc — “hòa” ..." for i in range(40)]
    pd.DataFrame({"text": docs}).to_parquet(folder / "t.parquet")
    return build_vocab("symato-bpe2700", texts=[folder / "t.parquet"])


# Text strategies: Vietnamese syllables in every form next to everything that breaks them.
_syllable = st.sampled_from(all_syllables()[::7])
_word = st.one_of(
    _syllable,
    _syllable.map(str.upper),
    _syllable.map(str.title),
    _syllable.map(lambda s: unicodedata.normalize("NFD", s)),
    _syllable.map(lambda s: s.swapcase() if len(s) > 1 else s),
    st.sampled_from(["hòa", "thủy", "khỏe", "Krông", "MóNg", "\u0301", "\u0323\u0302", "😀",
                     "\x00", "\t", "\r\n", "  ", " ", "▁", "<|endoftext|>", "7", ",", "đ", "Ð"]),
    st.text(max_size=3),
)
vi_text = st.lists(st.tuples(_word, st.sampled_from(["", " ", " ", "  ", ".", "\n", "1"])),
                   max_size=20).map(lambda parts: "".join(a + b for a, b in parts))


def test_golden_example_token_by_token(tok):
    ids = tok.encode(GOLDEN)
    assert [tok.id_to_piece(i) for i in ids] == GOLDEN_PIECES
    assert tok.decode(ids) == GOLDEN
    assert ids[:3] == [274, tok.piece_to_id("nuoc"), 256 + 2 * 6 + 1]


def test_layout_and_properties(tok):
    assert tok.kind == "symato" and tok.vocab_size == 2816 and tok.tone_style == "new"
    assert tok.eot_id == 276 and tok.special_tokens == {"<|endoftext|>": 276}
    assert tok.marktone_ids == tuple(range(256, 274))
    assert tok.marktone_index(260) == 4 and tok.marktone_index(255) is None
    assert tok.sym_of(tok.piece_to_id("nguoi")) == "nguoi" and tok.sym_of(65) is None
    assert tok.id_to_piece(0x41) == "<0x41>" and tok.id_to_piece(2815).startswith("<|reserved_")
    assert sorted(tok.sym_of(i) for i in range(tok.vocab_size) if tok.sym_of(i)) == all_syms()
    with pytest.raises(SymatoError, match="unknown piece"):
        tok.piece_to_id("nope")


def test_implicit_space_and_its_limits(tok):
    assert len(tok.encode("ba mẹ")) == 4
    assert tok.encode("ba  mẹ")[2:4] == [0x20, 0x20]
    assert tok.encode("ba\nmẹ")[2] == 0x0A
    for text in (" ba", "ba ", "ba  mẹ ", "ok ba", "ba ok", "", " ", "ba.mẹ", "ba mẹ."):
        assert tok.decode(tok.encode(text)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(vi_text, st.text()))
def test_round_trip_text(tok, tok_plus, tok_old, tok_bpe, text):
    for t in (tok, tok_plus, tok_old, tok_bpe):
        ids = t.encode(text)
        assert t.decode(ids) == text
        assert t.decode_bytes(ids) == text.encode("utf-8", "surrogatepass")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_round_trip_bytes(tok, tok_plus, tok_bpe, data):
    for t in (tok, tok_plus, tok_bpe):
        assert t.decode_bytes(t.encode_bytes(data)) == data


def test_round_trip_lone_surrogates_and_invalid_utf8(tok):
    text = "a\ud800b \udfff Việt"
    assert tok.decode(tok.encode(text)) == text
    data = b"\xff Vi\xe1\xbb\x87t \xed\xa0\x80 \xe1\xbb"
    assert tok.decode_bytes(tok.encode_bytes(data)) == data
    assert tok.decode(list(b"\xff")) == "\ufffd"


def test_every_syllable_costs_two_or_three_tokens(tok):
    for form in all_syllables():
        for written, cost in ((form, 2), (form[0].upper() + form[1:], 3), (form.upper(), 3)):
            ids = tok.encode(written)
            assert len(ids) == cost, written
            assert tok.decode(ids) == written


def test_symato_plus_whole_syllables(tok_plus):
    inventory = all_syllables()
    whole, rest = inventory[:3000], inventory[3000:]
    assert tok_plus.kind == "symato+3000" and tok_plus.vocab_size == 2816 + 3000
    for form in whole[::5]:
        assert len(tok_plus.encode(form)) == 1
        assert len(tok_plus.encode(form.upper())) == 2
        text = form.title() + " " + form
        assert tok_plus.decode(tok_plus.encode(text)) == text
    for form in rest[::50]:
        assert len(tok_plus.encode(form)) == 2


def test_tone_styles(tok, tok_old):
    assert len(tok.encode("hoà")) == 2 and len(tok.encode("hòa")) > 2
    assert len(tok_old.encode("hòa")) == 2 and len(tok_old.encode("hoà")) > 2
    assert tok_old.decode(tok_old.encode("Thủy")) == "Thủy"
    nfd = unicodedata.normalize("NFD", "Việt")
    assert tok.encode(nfd) == list(nfd.encode())


def test_ill_formed_sequences_still_decode(tok):
    nuoc, title = tok.piece_to_id("nuoc"), 274
    assert tok.decode([nuoc]) == "nuoc"  # sym without marktone: written bare
    assert tok.decode([nuoc, nuoc, 256]) == "nuoc nuoc"
    assert tok.decode([260, 65]) == "A"  # stray marktone dropped
    assert tok.decode([title, 65]) == "A"  # stray case dropped
    ac = tok.piece_to_id("ac")
    assert tok.decode([ac, 256 + 2]) == "ac"  # illegal marktone for a stop coda: bare sym
    assert tok.decode([tok.eot_id]) == "<|endoftext|>"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2815), min_size=64, max_size=200))
def test_compiled_and_reference_decoders_agree(tok, ids):
    plain = _ref(tok, ids)
    assert tok.decode_bytes(ids) == plain
    assert tok.decode_bytes(np.array(ids, dtype=np.uint16)) == plain


def test_decoders_on_long_text(tok, tok_plus):
    text = (GOLDEN + " Quyền được thông tin là một quyền cơ bản.\n") * 40
    for t in (tok, tok_plus):
        ids = t.encode(text)
        assert t.decode(ids, decoder="python") == text
        assert t.decode(ids) == text and t.decode(np.array(ids)) == text


def _unit_ids(t: Tokenizer, units: list[tuple[int, int, int]]) -> list[int]:
    """Token ids from abstract units (kind, number, marktone): mostly well-formed pieces
    ([case] sym marktone, [case] whole syllable, bytes, specials, reserved ids); kind 5 is a
    stray case / marktone / sym token that makes the stream ill-formed."""
    c = t.codec
    n_syms, n_whole = len(c.syms), t.vocab_size - c.syl_base
    ids: list[int] = []
    for kind, r, mt in units:
        sym, case, whole = c.sym_base + r % n_syms, 274 + r % 2, c.syl_base + r % max(n_whole, 1)
        if kind in (3, 4) and not n_whole:
            kind = 2
        ids += ([r % 256], [sym, 256 + mt], [case, sym, 256 + mt], [whole], [case, whole],
                [(274, 275, 256 + mt, sym)[r % 4]], [(276, c.sym_base + n_syms)[r % 2]],
                [32])[kind]
    return ids


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 0, 1, 1, 1, 2, 3, 4, 6, 7, 7, 5]),
                          st.integers(0, 10**6), st.integers(0, 17)), max_size=120))
def test_decoders_on_unit_streams(tok, tok_plus, units):
    for t in (tok, tok_plus):
        ids = _unit_ids(t, units)
        plain = _ref(t, ids)
        assert t.decode_bytes(ids) == plain
        assert t.decode_bytes(np.array(ids, dtype=np.int64), decoder="python") == plain


def test_decode_iterators_and_long_specials(tok):
    ids = tok.encode(GOLDEN * 5)
    assert tok.decode(iter(ids)) == tok.decode(tuple(ids)) == GOLDEN * 5
    with pytest.raises(SymatoError, match="position 70 is out of range"):
        tok.decode(iter([65] * 70 + [-1, 65]))  # read once, yet the error names the bad id
    d = symato_dict(all_syms())
    long = "<|" + "x" * 300 + "|>"  # 304 bytes: more than 8 bits of slice length
    d["specials"].append(long)
    t = Tokenizer.from_dict(d)
    ids = [*t.encode(GOLDEN), t.piece_to_id(long)] * 4
    want = ((GOLDEN + long) * 4).encode()
    assert t.decode_bytes(np.array(ids)) == _ref(t, ids) == want


def test_ids_out_of_range(tok):
    with pytest.raises(SymatoError, match="position 1 is out of range"):
        tok.decode([1, 2816])
    with pytest.raises(SymatoError, match="not an integer"):
        tok.decode([1, 2.5])
    with pytest.raises(SymatoError, match="out of range"):
        tok.id_to_piece(-1)


def test_encode_batch(tok):
    assert tok.encode_batch(["Việt", "", "ok"]) == [tok.encode("Việt"), [], [0x6F, 0x6B]]


def test_save_load_and_dict(tok_plus, tmp_path):
    path = tmp_path / "v.json"
    tok_plus.save(path)
    loaded = Tokenizer.from_file(path)
    again = Tokenizer.from_dict(tok_plus.to_dict())
    assert loaded.to_dict() == tok_plus.to_dict() == again.to_dict()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["format"], data["version"], data["kind"]) == ("symato-vocab", 2, "symato+3000")
    assert loaded.encode(GOLDEN) == tok_plus.encode(GOLDEN)


def test_bytes_kind():
    t = build_vocab("bytes")
    assert t.vocab_size == 257 and t.eot_id == 256 and t.marktone_ids == ()
    assert t.encode("Việt") == list("Việt".encode())
    assert t.decode(t.encode(GOLDEN)) == GOLDEN
    assert t.decode_bytes(t.encode_bytes(b"\xff\x00")) == b"\xff\x00"


@settings(max_examples=150, deadline=None)
@given(st.one_of(vi_text, st.text()))
def test_sentencepiece_round_trip(tok_sp, text):
    assert tok_sp.decode(tok_sp.encode(text)) == text


def test_sentencepiece_kind(tok_sp, tmp_path):
    assert tok_sp.kind == "sentencepiece" and tok_sp.marktone_ids == ()
    assert tok_sp.id_to_piece(tok_sp.eot_id) == "<|endoftext|>"
    assert len(tok_sp.encode(GOLDEN)) < len(GOLDEN.encode())
    assert tok_sp.decode_bytes(tok_sp.encode_bytes(b"\xff a\xe1")) == b"\xff a\xe1"
    tok_sp.save(tmp_path / "sp.json")
    assert Tokenizer.from_file(tmp_path / "sp.json").encode(GOLDEN) == tok_sp.encode(GOLDEN)


def _write(tmp_path, obj) -> str:
    path = tmp_path / "vocab.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "key 'format'"),
        (lambda d: d.update(version=3), "key 'version'"),
        (lambda d: d.update(kind="wordpiece"), "key 'kind'"),
        (lambda d: d.update(tone_style="modern"), "key 'tone_style'"),
        (lambda d: d.update(specials=[]), "key 'specials'"),
        (lambda d: d.update(specials=["<|endoftext|>", ""]), "key 'specials'"),
        (lambda d: d["syms"].__setitem__(0, ["a"]), "'syms'\\[0\\] = \\['a'\\]"),
        (lambda d: d["syms"].append("xyz"), "'syms'\\[2275\\] = 'xyz'"),
        (lambda d: d["syms"].pop(), "lacks 1 legal syms"),
        (lambda d: d.update(size=300), "key 'size'"),
        (lambda d: d.update(syllables=["hoà"]), "must not list 'syllables'"),
    ],
)
def test_corrupt_vocabulary_content(tmp_path, mutate, message):
    d = symato_dict(all_syms())
    mutate(d)
    path = _write(tmp_path, d)
    with pytest.raises(SymatoError, match=message) as err:
        Tokenizer.from_file(path)
    assert path in str(err.value)


def test_corrupt_vocabulary_files(tmp_path):
    with pytest.raises(SymatoError, match="not found"):
        Tokenizer.from_file(tmp_path / "missing.json")
    full = json.dumps(symato_dict(all_syms()))
    with pytest.raises(SymatoError, match="not valid JSON"):
        Tokenizer.from_file(_write(tmp_path, full[: len(full) // 2]))
    with pytest.raises(SymatoError, match="top level"):
        Tokenizer.from_file(_write(tmp_path, "[1, 2]"))
    sp = {"format": "symato-vocab", "version": 1, "kind": "sentencepiece",
          "specials": ["<|endoftext|>"], "sentencepiece_model": base64.b64encode(b"junk").decode()}
    with pytest.raises(SymatoError, match="does not load"):
        Tokenizer.from_file(_write(tmp_path, sp))
    sp["sentencepiece_model"] = "not base64!"
    with pytest.raises(SymatoError, match="does not load"):
        Tokenizer.from_file(_write(tmp_path, sp))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(_word, st.sampled_from(["", " ", "  ", ", "])), min_size=40, max_size=80))
def test_fast_decoder_matches_plain_on_encoded_text(tok, tok_plus, parts):
    text = "".join(a + b for a, b in parts)
    for t in (tok, tok_plus):
        ids = t.encode(text)
        assert _ref(t, ids) == t.decode_bytes(ids) == text.encode("utf-8", "surrogatepass")


def test_restoration_prepare(tok, tok_plus):
    from symato.text.restoration import apply_choices, marktone_positions, prepare

    text = "Nuoc Viet Nam hinh chu S. DIEU 7, ok  Việt ac"
    for t in (tok, tok_plus):
        ids, slots = prepare(text, t)
        assert t.decode(ids) == text  # placeholders kept: the input comes back
        assert len(slots) == 7  # Nuoc Viet Nam hinh chu DIEU ac ("S", "ok" are no syms)
        positions = marktone_positions(ids, t)
        assert {p for p, _ in slots} <= set(positions)
        assert len(positions) - len(slots) == len(t.encode("việt")) - 1  # 1 unless a whole token
        assert all(ids[p] == t.marktone_ids[0] for p, _ in slots)
        choices = {"nuoc": "<ắ>", "viet": "<ậ>", "nam": "<a>", "hinh": "<à>", "chu": "<ẵ>",
                   "dieu": "<ầ>", "ac": "<á>"}
        picked = [t.piece_to_id(choices[t.sym_of(ids[p - 1])]) for p, _ in slots]
        restored = t.decode(apply_choices(ids, slots, picked))
        assert restored == "Nước Việt Nam hình chữ S. DIỀU 7, ok  Việt ác"
        ac_slot = slots[-1][1]
        assert set(ac_slot) == {t.marktone_ids[m] for m in (1, 5, 7, 11, 13, 17)}
    with pytest.raises(SymatoError, match="not allowed"):
        apply_choices(ids, slots, [slots[0][1][0]] * (len(slots) - 1) + [t.marktone_ids[0]])
    with pytest.raises(SymatoError, match="symato vocabulary"):
        prepare("abc", build_vocab("bytes"))


def test_restoration_whole_choices(tok, tok_plus):
    """Every candidate with a whole id is exactly the id the tokenizer encodes that
    syllable as; plain symato has none."""
    from symato.text.restoration import prepare, whole_choices

    text = "Nuoc Viet Nam hinh chu S. DIEU 7, ok  Việt ac"
    ids, slots = prepare(text, tok)
    assert whole_choices(ids, slots, tok) == [{} for _ in slots]
    ids, slots = prepare(text, tok_plus)
    wholes = whole_choices(ids, slots, tok_plus)
    assert any(wholes)
    for (pos, allowed), whole in zip(slots, wholes, strict=True):
        for mt_id in allowed:
            piece = tok_plus.decode([ids[pos - 1], mt_id])  # lower case: no case token there
            encoded = tok_plus.encode(piece)
            assert (encoded == [whole[mt_id]]) if mt_id in whole else (len(encoded) == 2), piece


# ----------------------------------------------------------------------------- symato-bpe


def test_symato_bpe_keeps_syllables_and_merges_the_rest(tok, tok_bpe):
    text = "Năm 1995, giá 5000 đồng (USD 5.5). https://example.com/a5.html ok"
    ids = tok_bpe.encode(text)
    assert tok_bpe.decode(ids) == text
    assert len(ids) < len(tok.encode(text)) - 15
    pieces = [tok_bpe.id_to_piece(i) for i in ids]
    assert pieces[:3] == ["<Title>", "nam", "<ă>"] and "gia" in pieces and "<á>" in pieces
    assert any(p.startswith("+") and len(p) > 2 for p in pieces)
    # the same syllables cost the same as in plain symato: [case] sym marktone
    for word in ("Việt", "người", "QUỐC", "buýt"):
        assert tok_bpe.encode(word) == [tok_bpe.sym_id(tok.sym_of(i)) if tok.sym_of(i) else i
                                         for i in tok.encode(word)]
    assert tok_bpe.is_merge(ids[3]) is (not tok_bpe.is_syllable_start(ids[3]))
    assert not tok_bpe.is_merge(tok_bpe.sym_id("nam")) and not tok.is_merge(300)


def test_symato_bpe_runs_span_chunks_and_spaces(tok_bpe):
    for text in ("ok  ok", " ok", "ok ", "Việt 1995 Nam", "Việt  Nam", "a, b", "1,5 ok Việt",
                 "Việt, Nam", "\n\n  Việt", "ok\tok", "Việt\u2581Nam", "", " ", "   "):
        assert tok_bpe.decode(tok_bpe.encode(text)) == text
    runs = tok_bpe.non_syllable_runs("Việt, Nam 1995 ok. Hà Nội")
    assert sorted(runs) == sorted([b", ", b" 1995 ok. "])


def test_symato_bpe_restoration(tok_bpe):
    from symato.text.restoration import prepare

    text = "Nuoc Viet Nam hinh chu S. DIEU 7, ok  Việt ac https://x.vn ok"
    ids, slots = prepare(text, tok_bpe)
    assert tok_bpe.decode(ids) == text and len(slots) == 7


def test_symato_bpe_corrupt_merges(tok_bpe, tmp_path):
    d = tok_bpe.to_dict()
    for bad, message in ((["zz", "20"], "not a pair of hex"), (["6162", "63"], "not a pair"),
                         (d["merges"][0], "repeats")):
        broken = {**d, "merges": [*d["merges"], bad]}
        with pytest.raises(SymatoError, match=message):
            Tokenizer.from_file(_write(tmp_path, broken))
    with pytest.raises(SymatoError, match="key 'size'"):
        Tokenizer.from_dict({**d, "size": 2701})


# ----------------------------------------------------------------------------- old files


def test_version_1_symato_files_are_refused_with_how_to_rebuild(tmp_path):
    old = symato_dict(all_syms()[:2256])  # a version-1 file listed 2,256 syms
    old["version"] = 1
    path = _write(tmp_path, old)
    with pytest.raises(SymatoError, match=r"format version 1.*symato vocab --name symato "
                                          r".*snakemake --forcerun vocab") as err:
        Tokenizer.from_file(path)
    assert path in str(err.value)
    old["kind"], old["syllables"] = "symato+2", ["việt", "nam"]
    with pytest.raises(SymatoError, match="symato vocab --name symato\\+2"):
        Tokenizer.from_dict(old)


def test_version_1_bytes_and_sentencepiece_files_still_load(tok_sp, tmp_path):
    for d in (build_vocab("bytes").to_dict(), tok_sp.to_dict()):
        d["version"] = 1
        t = Tokenizer.from_file(_write(tmp_path, d))
        assert t.decode(t.encode(GOLDEN)) == GOLDEN


# ----------------------------------------------------------------------------- streaming


def _all_kinds(*toks):
    return [t for t in toks if t is not None]


def _stream(t: Tokenizer, ids: list[int], cuts: list[int]) -> str:
    dec = t.stream_decoder()
    out, prev = [], 0
    for c in sorted(set(cuts)):
        out.append(dec.feed(ids[prev:c]))
        prev = c
    out.append(dec.feed(ids[prev:]))
    return "".join(out) + dec.finish()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_streaming_equals_one_shot_decoding(tok, tok_plus, tok_bpe, tok_sp, data):
    """Random ids (well formed or not) cut at random points decode as in one call."""
    for t in (tok, tok_plus, tok_bpe, tok_sp, build_vocab("bytes")):
        ids = data.draw(st.lists(st.one_of(st.integers(0, t.vocab_size - 1),
                                           st.sampled_from([0xE1, 0xBB, 0x87, 0xED, 0xA0, 0x80,
                                                            0xF0, 0x9F, 0x98, 0x80, 32, 274]
                                                           ).map(lambda i, n=t.vocab_size: i % n)),
                                 max_size=60))
        cuts = data.draw(st.lists(st.integers(0, len(ids)), max_size=6))
        assert _stream(t, ids, cuts) == t.decode(ids)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(vi_text, st.text(max_size=30)))
def test_streaming_at_every_split_of_encoded_text(tok, tok_plus, tok_bpe, text):
    for t in (tok, tok_plus, tok_bpe):
        ids = t.encode(text)
        for k in range(len(ids) + 1):
            assert _stream(t, ids, [k]) == text
        dec = t.stream_decoder()
        assert "".join(dec.feed([i]) for i in ids) + dec.finish() == text


def test_streaming_holds_back_only_what_can_change(tok):
    dec = tok.stream_decoder()
    nuoc = tok.piece_to_id("nuoc")
    assert dec.feed([274, nuoc]) == ""  # the marktone decides the letters
    assert dec.feed([256 + 13]) == "Nước"
    assert dec.feed([nuoc]) == ""
    assert dec.feed([0xE1, 0xBB]) == " nuoc"  # a sym without marktone is bare
    assert dec.feed([0x87]) == "ệ" and dec.finish() == ""
    assert dec.feed([0xE1]) == "" and dec.finish() == "\ufffd"  # a cut sequence at the end
    with pytest.raises(SymatoError, match="out of range"):
        dec.feed([5, 99999])


def test_python_decoder_matches_the_reference(tok, tok_plus, tok_bpe):
    text = (GOLDEN + " Quyền được thông tin (1992), xe buýt.\n") * 3
    for t in (tok, tok_plus, tok_bpe):
        ids = t.encode(text)
        assert t.decode_bytes(ids, decoder="python") == _ref(t, ids) == text.encode()
    nuoc = tok.piece_to_id("nuoc")
    for bad in ([nuoc], [nuoc, 65], [274, 65], [274], [nuoc, 256 + 2 * 6 + 2 + 100]):
        assert tok.decode(bad) == _ref(tok, bad).decode("utf-8", "replace")
    with pytest.raises(SymatoError, match="position 1 is out of range"):
        tok.decode([65, -1])
    with pytest.raises(SymatoError, match="not an integer"):
        tok.decode([65, "a"])
