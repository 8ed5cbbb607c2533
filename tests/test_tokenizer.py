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
from symato.text.syllable import all_syllables, all_syms
from symato.text.tokenizer import symato_dict
from symato.text.vocab import build_vocab

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
    return build_vocab("sentencepiece", text=[clean / "shards" / "0.parquet"], size=400)


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
def test_round_trip_text(tok, tok_plus, tok_old, text):
    for t in (tok, tok_plus, tok_old):
        ids = t.encode(text)
        assert t.decode(ids) == text
        assert t.decode_bytes(ids) == text.encode("utf-8", "surrogatepass")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_round_trip_bytes(tok, tok_plus, data):
    for t in (tok, tok_plus):
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
def test_fast_and_plain_decoders_agree(tok, ids):
    plain = tok._decode_symato(ids)
    assert tok.decode_bytes(ids) == plain
    assert tok.decode_bytes(np.array(ids, dtype=np.uint16)) == plain


def test_fast_decoder_on_long_text(tok, tok_plus):
    text = (GOLDEN + " Quyền được thông tin là một quyền cơ bản.\n") * 40
    for t in (tok, tok_plus):
        ids = t.encode(text)
        assert t._decode_fast(np.array(ids)) is not None
        assert t.decode(ids) == text and t.decode(np.array(ids)) == text


def _unit_ids(t: Tokenizer, units: list[tuple[int, int, int]]) -> list[int]:
    """Token ids from abstract units (kind, number, marktone): mostly well-formed pieces
    ([case] sym marktone, [case] whole syllable, bytes, specials, reserved ids); kind 5 is a
    stray case / marktone / sym token that makes the stream ill-formed."""
    n_syms, n_whole = len(t._syms), t.vocab_size - t._syl_base
    ids: list[int] = []
    for kind, r, mt in units:
        sym, case, whole = t._sym_base + r % n_syms, 274 + r % 2, t._syl_base + r % max(n_whole, 1)
        if kind in (3, 4) and not n_whole:
            kind = 2
        ids += ([r % 256], [sym, 256 + mt], [case, sym, 256 + mt], [whole], [case, whole],
                [(274, 275, 256 + mt, sym)[r % 4]], [(276, t._sym_base + n_syms)[r % 2]],
                [32])[kind]
    return ids


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 0, 1, 1, 1, 2, 3, 4, 6, 7, 7, 5]),
                          st.integers(0, 10**6), st.integers(0, 17)), max_size=120))
def test_fast_decoder_on_unit_streams(tok, tok_plus, units):
    for t in (tok, tok_plus):
        ids = _unit_ids(t, units)
        plain = t._decode_symato(ids)
        assert t.decode_bytes(ids) == plain
        fast = t._decode_fast(np.array(ids, dtype=np.int64))
        assert fast == plain or (fast is None and any(k == 5 for k, _, _ in units))


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
    assert t._decode_fast(np.array(ids)) == t._decode_symato(ids) == want


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
    assert (data["format"], data["version"], data["kind"]) == ("symato-vocab", 1, "symato+3000")
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
        (lambda d: d.update(version=2), "key 'version'"),
        (lambda d: d.update(kind="wordpiece"), "key 'kind'"),
        (lambda d: d.update(tone_style="modern"), "key 'tone_style'"),
        (lambda d: d.update(specials=[]), "key 'specials'"),
        (lambda d: d.update(specials=["<|endoftext|>", ""]), "key 'specials'"),
        (lambda d: d["syms"].__setitem__(0, ["a"]), "'syms'\\[0\\] = \\['a'\\]"),
        (lambda d: d["syms"].append("xyz"), "'syms'\\[2256\\] = 'xyz'"),
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
        assert t._decode_symato(ids) == t.decode_bytes(ids) == text.encode("utf-8", "surrogatepass")


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
