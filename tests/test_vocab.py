"""Vocabulary building from statistics tables and cleaned shards (real Parquet files)."""

from __future__ import annotations

import pandas as pd
import pytest

from symato import SymatoError, Tokenizer
from symato.text.syllable import all_syllables, all_syms, parse
from symato.text.vocab import build_vocab, main


@pytest.fixture
def stats(tmp_path):
    """A small statistics folder as the statistics stage writes it."""
    d = tmp_path / "stats"
    d.mkdir()
    pd.DataFrame({"sym": ["nguoi", "viet", "nam", "hoa"], "count": [50, 90, 70, 5]}).to_parquet(
        d / "syms.parquet")
    rows = [("người", 40), ("việt", 90), ("nam", 70), ("ngươi", 10), ("hòa", 3), ("hoà", 2)]
    pd.DataFrame({
        "syllable": [s for s, _ in rows],
        "sym": [parse(s).sym for s, _ in rows],
        "marktone": [parse(s).marktone for s, _ in rows],
        "count": [c for _, c in rows],
    }).to_parquet(d / "syllables.parquet")
    return d


@pytest.fixture
def clean(tmp_path):
    d = tmp_path / "clean" / "shards"
    d.mkdir(parents=True)
    text = "Quyền được thông tin là một quyền cơ bản của con người.\nViệt Nam, năm 1992."
    for k in range(2):
        pd.DataFrame({"doc_id": [f"{k}-{i}" for i in range(20)], "source": ["t"] * 20,
                      "text": [text] * 20}).to_parquet(d / f"{k}.parquet")
    return d.parent


def test_symato_orders_syms_by_corpus_frequency(stats):
    tok = build_vocab("symato", syms=stats / "syms.parquet")
    assert [tok.sym_id(s) for s in ("viet", "nam", "nguoi", "hoa")] == [277, 278, 279, 280]
    assert tok.vocab_size == 2816 and sorted(tok.to_dict()["syms"]) == all_syms()
    assert tok.to_dict()["meta"]["syms_from_corpus"] == 4
    assert Tokenizer.default().to_dict()["syms"] == all_syms()


def _tables(stats):
    return {"syms": stats / "syms.parquet", "syllables": stats / "syllables.parquet"}


def test_symato_plus_n_takes_most_frequent_syllables(stats):
    tok = build_vocab("symato+10", **_tables(stats))
    sylls = tok.to_dict()["syllables"]
    # hòa (old style, 3) and hoà (2) merge into the new-style hoà (5)
    assert sylls[:5] == ["việt", "nam", "người", "ngươi", "hoà"]
    assert len(sylls) == 10 and sylls[5:] == [s for s in all_syllables() if s not in sylls[:5]][:5]
    assert tok.to_dict()["meta"]["syllables_from_corpus"] == 5
    assert tok.encode("Việt") == [274, tok.piece_to_id("=việt")]
    old = build_vocab("symato+3", **_tables(stats), tone_style="old")
    assert old.to_dict()["syllables"] == ["việt", "nam", "người"]
    assert build_vocab("symato+10", **_tables(stats), tone_style="old").to_dict()[
        "syllables"][4] == "hòa"


def test_bad_statistics_are_named(tmp_path, stats):
    with pytest.raises(SymatoError, match=r"not found: .*syms\.parquet"):
        build_vocab("symato", syms=tmp_path / "syms.parquet")
    pd.DataFrame({"sym": ["nam", "xyz"], "count": [1, 2]}).to_parquet(stats / "syms.parquet")
    with pytest.raises(SymatoError, match=r"syms.parquet row 1: 'xyz'"):
        build_vocab("symato", syms=stats / "syms.parquet")
    pd.DataFrame({"sym": ["nam"], "count": [1]}).to_parquet(stats / "syms.parquet")
    pd.DataFrame({"syllable": ["nam"], "n": [1]}).to_parquet(stats / "syllables.parquet")
    with pytest.raises(SymatoError, match=r"lacks column\(s\) \['count'\]"):
        build_vocab("symato+5", **_tables(stats))
    (stats / "syms.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(SymatoError, match="cannot read Parquet"):
        build_vocab("symato", syms=stats / "syms.parquet")


def test_bad_names_and_sizes():
    with pytest.raises(SymatoError, match=r"unknown tokenizer 'wordpiece'; kinds"):
        build_vocab("wordpiece")
    with pytest.raises(SymatoError, match="below the 2552 ids"):
        build_vocab("symato", size=2000)
    with pytest.raises(SymatoError, match="tone style"):
        build_vocab("symato", tone_style="modern")
    assert build_vocab("symato", size=2552).vocab_size == 2552


def test_sentencepiece_from_cleaned_shards(clean):
    shards = sorted((clean / "shards").glob("*.parquet"))
    tok = build_vocab("sentencepiece", texts=shards, size=300)
    meta = tok.to_dict()["meta"]
    assert meta["lines"] == 80 and meta["requested_size"] == 300
    assert tok.vocab_size <= 300
    text = "Quyền được thông tin của con người"
    assert tok.decode(tok.encode(text)) == text and len(tok.encode(text)) < len(text)
    with pytest.raises(SymatoError, match="no text files given"):
        build_vocab("sentencepiece")
    with pytest.raises(SymatoError, match=r"cannot read column 'text' of .*missing\.parquet"):
        build_vocab("sentencepiece", texts=[clean / "missing.parquet"])
    with pytest.raises(SymatoError, match=r"unknown option\(s\) \['vocab_sizes'\]"):
        build_vocab("sentencepiece", texts=shards, vocab_sizes=3)
    with pytest.raises(SymatoError, match=r"unknown option\(s\) \['clean_dir'\]"):
        build_vocab("symato", clean_dir=clean)


def test_cli_writes_loadable_files(tmp_path, stats, clean):
    tables = {"symato": ["--syms", str(stats / "syms.parquet")],
              "symato+20": ["--syms", str(stats / "syms.parquet"),
                            "--syllables", str(stats / "syllables.parquet")],
              "bytes": []}
    for name, inputs in tables.items():
        out = tmp_path / f"{name}.json"
        assert main(["--name", name, *inputs, "--out", str(out)]) == 0
        assert Tokenizer.from_file(out).kind == name
    with pytest.raises(SymatoError, match="unknown option"):  # bytes reads no size
        main(["--name", "bytes", "--size", "300", "--out", str(tmp_path / "b.json")])
    out = tmp_path / "sp.json"
    shards = [str(f) for f in sorted((clean / "shards").glob("*.parquet"))]
    assert main(["--name", "sentencepiece", "--texts", *shards, "--out", str(out),
                 "--size", "300", "--sp-character-coverage", "1.0"]) == 0
    tok = Tokenizer.from_file(out)
    assert tok.kind == "sentencepiece" and tok.to_dict()["meta"]["character_coverage"] == 1.0


def test_sentencepiece_from_a_list_of_text_files(clean):
    files = sorted((clean / "shards").glob("*.parquet"))
    tok = build_vocab("sentencepiece", texts=files[:1], size=300)
    assert tok.to_dict()["meta"]["lines"] == 40  # one of the two shards
    with pytest.raises(SymatoError, match=r"cannot read column 'text' of .*nope\.parquet"):
        build_vocab("sentencepiece", texts=[clean / "nope.parquet"], size=300)


@pytest.fixture
def bpe_texts(tmp_path):
    """Training text with numbers, Latin words, punctuation and markup between syllables."""
    docs = [f"Năm {1990 + i}, giá là {i * 1000} đồng (khoảng {i} USD). Xem https://example.com/"
            f"page{i}.html hoặc <b>email</b> ok.\n" for i in range(60)]
    path = tmp_path / "train.parquet"
    pd.DataFrame({"text": docs}).to_parquet(path)
    return path


def test_symato_bpe_learns_merges_only_between_syllables(stats, bpe_texts):
    tok = build_vocab("symato-bpe2800", syms=stats / "syms.parquet", texts=[bpe_texts])
    d = tok.to_dict()
    assert tok.kind == "symato-bpe2800" and tok.vocab_size == 2800 and d["size"] == 2800
    assert d["syms"][:4] == ["viet", "nam", "nguoi", "hoa"]  # corpus order, as symato
    base = 277 + len(all_syms())
    assert d["meta"]["merges_requested"] == 2800 - base
    assert 0 < d["meta"]["merges_learned"] == len(d["merges"]) <= 2800 - base
    merges = {bytes.fromhex(a) + bytes.fromhex(b) for a, b in d["merges"]}
    assert b" https" in merges and b", " in merges and b" 199" in merges
    text = "Năm 1995, giá là 5000 đồng (khoảng 5 USD). Xem https://example.com/page5.html"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    plain = Tokenizer.default()
    assert len(ids) < len(plain.encode(text)) - 20
    # every syllable is still [case] sym marktone
    assert [tok.id_to_piece(i) for i in ids[:3]] == ["<Title>", "nam", "<ă>"]
    assert "+ https" in {tok.id_to_piece(i) for i in ids}
    assert all(tok.sym_of(i) or tok.is_merge(i) or i < 276 for i in ids)


def test_symato_bpe_sizes_and_errors(stats, bpe_texts, tmp_path):
    with pytest.raises(SymatoError, match="needs more than the 2552 ids"):
        build_vocab("symato-bpe2552", texts=[bpe_texts])
    with pytest.raises(SymatoError, match="no text files given"):
        build_vocab("symato-bpe3000")
    tok = build_vocab("symato-bpe3000", texts=[bpe_texts])  # more room than merges found
    meta = tok.to_dict()["meta"]
    assert tok.vocab_size == 3000 and meta["merges_learned"] < meta["merges_requested"]
    assert tok.id_to_piece(2999).startswith("<|reserved_")
    out = tmp_path / "b.json"
    assert main(["--name", "symato-bpe2700", "--texts", str(bpe_texts), "--syms",
                 str(stats / "syms.parquet"), "--out", str(out)]) == 0
    again = Tokenizer.from_file(out)
    assert again.kind == "symato-bpe2700" and again.encode("ok 1995,") == Tokenizer.from_dict(
        again.to_dict()).encode("ok 1995,")


def test_sentencepiece_kinds_with_the_size_and_algorithm_in_the_name(clean, tmp_path):
    shards = sorted((clean / "shards").glob("*.parquet"))
    bpe = build_vocab("sp-bpe300", texts=shards, sp_character_coverage=1.0)
    uni = build_vocab("sp-unigram300", texts=shards)
    assert bpe.kind == "sp-bpe300" and uni.kind == "sp-unigram300"
    assert bpe.to_dict()["meta"]["model_type"] == "bpe"
    assert uni.to_dict()["meta"]["model_type"] == "unigram"
    assert bpe.to_dict()["meta"]["requested_size"] == 300
    text = "Quyền được thông tin của con người, năm 1992."
    for tok in (bpe, uni):
        again = Tokenizer.from_dict(tok.to_dict())  # the kind loads as sentencepiece
        assert again.decode(again.encode(text)) == text
    with pytest.raises(SymatoError, match=r"unknown option\(s\) \['size'\]"):
        build_vocab("sp-bpe300", texts=shards, size=400)  # the size is the name's
    with pytest.raises(SymatoError, match=r"unknown option\(s\) \['sp_model_type'\]"):
        build_vocab("sp-unigram300", texts=shards, sp_model_type="bpe")
    out = tmp_path / "u.json"
    assert main(["--name", "sp-unigram300", "--texts", *map(str, shards), "--out", str(out)]) == 0
    assert Tokenizer.from_file(out).kind == "sp-unigram300"


def test_symato_words_from_the_cli(stats, clean, tmp_path):
    """``symato vocab`` builds symato-wordsV from the syms table and the cleaned shards
    (the vocab rule's inputs), and ``symato tokenize`` reads the file like any kind."""
    shards = [str(f) for f in sorted((clean / "shards").glob("*.parquet"))]
    out = tmp_path / "w.json"
    assert main(["--name", "symato-words2700", "--syms", str(stats / "syms.parquet"),
                 "--texts", *shards, "--bpe-min-count", "3", "--out", str(out)]) == 0
    tok = Tokenizer.from_file(out)
    d = tok.to_dict()
    assert tok.kind == "symato-words2700" and d["syms"][:4] == ["viet", "nam", "nguoi", "hoa"]
    assert ["con", "người"] in d["words"] and d["meta"]["min_count"] == 3
    text = "Quyền được thông tin là một quyền cơ bản của con người.\nViệt Nam, năm 1992."
    assert tok.decode(tok.encode(text)) == text
    ids = tok.encode(text)
    assert any(" " in tok.id_to_piece(i) for i in ids)  # a word token: "=con người", ...
    assert len(ids) < len(Tokenizer.default().encode(text)) - 10
    from symato.data.tokenize import main as tokenize_main

    shard = sorted((clean / "shards").glob("*.parquet"))[0]
    assert tokenize_main(["--vocab", str(out), "--clean-train", str(shard), "--clean-val",
                          str(shard), "--train", str(tmp_path / "t.arrow"), "--val",
                          str(tmp_path / "v.arrow")]) == 0
    from symato.data.tokenize import shard_info

    assert shard_info(tmp_path / "t.arrow")["tokens"] == 20 * (len(tok.encode(
        "Quyền được thông tin là một quyền cơ bản của con người.\nViệt Nam, năm 1992.")) + 1)
    with pytest.raises(SymatoError, match="needs more than the 2552 ids"):
        build_vocab("symato-words2552", texts=shards)
    with pytest.raises(SymatoError, match=r"unknown option\(s\) \['size'\]"):
        build_vocab("symato-words2700", texts=shards, size=3000)
