"""The word-level kind ``symato-wordsV``: whole syllables and whole words on top of symato.

Built from the small real Vietnamese text in tests/data (the train split's role); the
properties are the kind's promises: lossless on every string and byte string, entries
laid out after the syms in learned order, case handled per word, and a word's ids
independent of the text around its run of syllables.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symato import SymatoError, Tokenizer
from symato.text.codecs.base import SYMATO_BASE, TITLE_ID, UPPER_ID
from symato.text.codecs.words import learn_words, words_dict
from symato.text.decoding import decode_all
from symato.text.syllable import all_syms
from symato.text.vocab import build_vocab

TEXT = (Path(__file__).parent / "data" / "pipeline_vi.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("words")
    docs = [d for d in TEXT.split("\n\n") if d.strip()]
    pd.DataFrame({"text": docs}).to_parquet(folder / "train.parquet")
    return build_vocab("symato-words3000", texts=[folder / "train.parquet"])


def test_builds_from_the_train_text_with_words_and_whole_syllables(tok):
    d = tok.to_dict()
    entries = [" ".join(e) for e in d["words"]]
    assert "việt nam" in entries and "hà nội" in entries
    assert d["meta"]["words"] > 10 and d["meta"]["whole_syllables"] > 10
    assert tok.vocab_size == 3000 and d["kind"] == "symato-words3000"
    assert Tokenizer.from_dict(d).encode(TEXT) == tok.encode(TEXT)  # the file alone suffices


def test_id_layout(tok):
    d = tok.to_dict()
    entries = [" ".join(e) for e in d["words"]]
    merges = [bytes.fromhex(a) + bytes.fromhex(b) for a, b in d["merges"]]
    assert SYMATO_BASE == 2552 and merges and d["meta"]["merges"] == len(merges)
    for k, data in enumerate(merges):  # symato-bpe's merges first
        assert tok.is_merge(SYMATO_BASE + k) and tok.decode_bytes([SYMATO_BASE + k]) == data
    base = SYMATO_BASE + len(merges)
    for k, text in enumerate(entries):  # then the entries, in learned order
        assert tok.piece_to_id("=" + text) == base + k
    assert base + len(entries) < 3000  # the small text has fewer: reserved ids follow
    assert tok.id_to_piece(base + len(entries)) == "<|reserved_0|>"
    assert tok.sym_id("nam") is not None and tok.sym_id("nam") < SYMATO_BASE
    vn = tok.piece_to_id("=việt nam")
    assert tok.encode("việt nam") == [vn]
    assert tok.encode("Việt Nam") == [TITLE_ID, vn]
    assert tok.encode("VIỆT NAM") == [UPPER_ID, vn]
    mixed = tok.encode("Việt nam")  # the cases differ: no word token
    assert vn not in mixed and tok.decode(mixed) == "Việt nam"
    assert tok.is_syllable_start(vn) and tok.decode([vn, vn]) == "việt nam việt nam"


def test_learning_prefers_the_tokens_it_saves():
    runs = Counter({(("việt", "nam"), 0): 10, (("ngôn", "ngữ"), 1): 3, (("là",), 0): 4})
    entries = learn_words(runs, 10, min_count=2)
    # a merge of two sym+marktone syllables saves 3 tokens per use, a whole syllable 1
    assert entries[0] == ["việt", "nam"] and ["ngôn", "ngữ"] in entries and ["là"] in entries
    assert entries.index(["ngôn", "ngữ"]) < entries.index(["là"])  # 3 * 3 + 3 cased > 4
    assert learn_words(runs, 10, min_count=5) == [["việt", "nam"]]


_syllable = st.sampled_from(["việt", "Việt", "VIỆT", "nam", "Nam", "NAM", "hà", "Hà", "nội",
                             "Nội", "người", "ngôn", "ngữ", "phố", "thành", "và", "là"])
_other = st.sampled_from([" ", "  ", ", ", ".", "\n", "\t", "😀", "abc", "x1", "\ud800",
                          "\u2581", "-", "Ǆ", "e\u0301"])
_texts = st.lists(st.one_of(_syllable, _syllable, _other), max_size=40).map(
    lambda parts: "".join(p if p.strip() == "" or p in ".,-" else p + " " for p in parts))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts | st.text(max_size=60))
def test_lossless_on_every_string(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == tok.decode(ids, decoder="python") == text
    assert decode_all(tok.decode_tables, ids) == text.encode("utf-8", "surrogatepass")
    data = text.encode("utf-8", "surrogatepass") + b"\xff\xed\xa0"
    assert tok.decode_bytes(tok.encode_bytes(data)) == data


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts, _texts, _texts)
def test_same_ids_whatever_the_surrounding_text(tok, before, text, after):
    fresh = Tokenizer.from_dict(tok.to_dict())  # cold caches
    whole = fresh.encode(f"{before}\n{text}\n{after}")
    assert whole == [*tok.encode(before), 10, *tok.encode(text), 10, *tok.encode(after)]


def test_corrupt_entries_name_the_key(tmp_path):
    good = words_dict(all_syms(), [["việt"], ["việt", "nam"]], size=2600)
    assert Tokenizer.from_dict(good).vocab_size == 2600
    from symato.text.cli import describe

    assert "reserved 46, special 1, syllable 1, sym 2275, word 1" in describe(
        Tokenizer.from_dict(good))
    for bad, message in (([["việt", "xyz"]], r"'words'\[0\]"),
                         ([["việt", "nam"], ["việt", "nam"]], r"'words'\[1\]"),
                         ([["việt nam"]], r"'words'\[0\]"),  # not yet learned
                         ([["ba", "bốn"], ["ba bốn", "năm"], ["ba bốn năm", "sáu"],
                           ["ba bốn năm sáu", "bảy"]],
                          r"'words'\[3\].*at most 4")):
        d = {**good, "words": bad}
        with pytest.raises(SymatoError, match=message):
            Tokenizer.from_dict(d)
    with pytest.raises(SymatoError, match="key 'size'"):
        Tokenizer.from_dict({**good, "size": 2601})


def test_merges_and_entries_share_the_ids_by_tokens_saved():
    from symato.text.codecs.words import _split

    assert _split([5, 3, 1], [4, 2], 3) == (2, 1)  # 5, 4, 3
    assert _split([5, 3, 1], [4, 2], 10) == (3, 2)  # both lists used up
    assert _split([], [4, 2], 1) == (0, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["việt", "nam", "hà", "nội", "người", "thành", "phố", "là",
                                 "của", "và", "con", "sông"]), min_size=2, max_size=14))
def test_cutting_runs_where_no_word_spans_changes_nothing(tok, syllables):
    """The encoder cuts a run between two syllables adjacent in no word: the units must be
    those of BPE over the whole run."""
    codec = tok.codec
    whole = codec._merge(tuple(syllables))
    assert sum(len(u.split(" ")) for u in whole) == len(syllables)
    text = " ".join(syllables)
    units = [tok.id_to_piece(i).removeprefix("=") for i in tok.encode(text)
             if tok.id_to_piece(i).startswith("=")]
    assert [u for u in whole if u in codec.whole_ids] == units
