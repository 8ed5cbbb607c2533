"""The embedding / head transplant between tokenizers (symato/interop/transplant.py).

A constructed case with known rows (copied rows equal, composed rows equal the mean of
their source rows), the RWKV World vocabulary the rwkv package ships, Hugging Face
tokenizer.json files built here with the `tokenizers` library (byte-level BPE, and
sentencepiece style with <0xNN> byte fallback), symato to symato, and the `random`
control. Targets are built from tests/data/pipeline_vi.txt.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symato.errors import SymatoError
from symato.interop.transplant import (
    COMPOSED,
    COPIED,
    RANDOM,
    apply_plan,
    byte_level_alphabet,
    describe_target,
    hf_source,
    load_source,
    marktone_texts,
    plan,
    read_rwkv_vocab,
    rwkv_world_path,
    rwkv_world_source,
    symato_source,
    token_list_source,
    transplant,
    write_report,
)
from symato.text import syllable as S
from symato.text.codecs.base import EOT, MT_BASE, TITLE_ID
from symato.text.tokenizer import Tokenizer, symato_dict
from symato.text.vocab import build_vocab

DATA = Path(__file__).parent / "data"
TEXT = (DATA / "pipeline_vi.txt").read_text(encoding="utf-8")
DOCS = [d for d in TEXT.split("\n\n") if d.strip()]


def rows(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, dim), generator=torch.Generator().manual_seed(seed))


def classes(report: dict, cls: str) -> dict[str, int]:
    return report["by_class"].get(cls, {COPIED: 0, COMPOSED: 0, RANDOM: 0})


# ---------------------------------------------------------------------- targets
@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> dict[str, Tokenizer]:
    """symato, symato+64, symato-bpe2816 and sp-bpe400 from the tests' Vietnamese text."""
    folder = tmp_path_factory.mktemp("transplant")
    syms, syllables = Counter(), Counter()
    for m in S.LETTER_RUN.finditer(TEXT):
        syl = S.parse(m.group())
        if syl is not None:
            syms[syl.sym] += 1
            syllables[S.compose(syl.sym, syl.mark, syl.tone, "lower", "new")] += 1
    pd.DataFrame({"sym": list(syms), "count": list(syms.values())}).to_parquet(
        folder / "syms.parquet")
    pd.DataFrame({"syllable": list(syllables), "count": list(syllables.values())}).to_parquet(
        folder / "syllables.parquet")
    pd.DataFrame({"text": DOCS}).to_parquet(folder / "train.parquet")
    return {
        "symato": build_vocab("symato", syms=folder / "syms.parquet"),
        "symato+64": build_vocab("symato+64", syms=folder / "syms.parquet",
                                 syllables=folder / "syllables.parquet"),
        "symato-bpe2816": build_vocab("symato-bpe2816", syms=folder / "syms.parquet",
                                      texts=[folder / "train.parquet"]),
        "sp-bpe400": Tokenizer.from_file(DATA / "golden" / "sp-bpe400.json"),
    }


# ---------------------------------------------------------------------- constructed case
HAND = [None, *(bytes([b]) for b in range(256)),
        b" ng", "ười".encode(), " việt".encode(), b", ", b" A"]
HAND_IDS = {t: i for i, t in enumerate(HAND) if t}


def test_constructed_case_copies_and_composes_known_rows():
    """Copied rows are the source rows; a composed row is exactly the mean of the rows
    of the source tokens that encode its text."""
    source = token_list_source(HAND, "hand", eot_id=0, named={EOT: 0})
    target = Tokenizer.from_dict(symato_dict(S.all_syms(), ["người", "việt", "và"]))
    emb = rows(len(HAND) + 3)  # padding rows beyond the source's ids are allowed
    out, report = transplant(source, target, {"emb": emb})
    new = out["emb"]
    assert new.shape == (target.vocab_size, 8) and new.dtype == emb.dtype
    for b in range(256):  # every byte is one source token: copied
        assert torch.equal(new[b], emb[HAND_IDS[bytes([b])]])
    assert torch.equal(new[target.eot_id], emb[0])
    # " việt" is one source token: the whole syllable "việt" (after a space) is copied
    assert torch.equal(new[target.piece_to_id("=việt")], emb[HAND_IDS[" việt".encode()]])
    # " người" is " ng" + "ười": composed, exactly their mean
    ids = [HAND_IDS[b" ng"], HAND_IDS["ười".encode()]]
    assert torch.equal(new[target.piece_to_id("=người")], emb[ids].mean(0))
    # " và" is " " "v" "à"(2 bytes): the lone space in front is dropped
    va = [HAND_IDS[b"v"], HAND_IDS[b"\xc3"], HAND_IDS[b"\xa0"]]
    assert torch.equal(new[target.piece_to_id("=và")], emb[va].mean(0))
    # a marktone: the mean over the vowels it marks, of each vowel's source rows
    texts = marktone_texts(7)  # <ấ>: ấ ế ố
    assert texts == ("ấ", "ế", "ố")
    means = [emb[[HAND_IDS[bytes([b])] for b in t.encode()]].mean(0) for t in texts]
    assert torch.allclose(new[MT_BASE + 7], torch.stack(means).mean(0), rtol=0, atol=1e-7)
    # <Title>: " A" is one source token; the other capitals are " " + letter, space dropped
    capitals = [emb[[HAND_IDS[b" A"]]].mean(0)] + [
        emb[[HAND_IDS[bytes([b])] for b in c.encode()]].mean(0) for c in "BCDĐEGHIKLMNOPQRSTUVXY"]
    assert torch.allclose(new[TITLE_ID], torch.stack(capitals).mean(0), rtol=0, atol=1e-7)
    assert report[COPIED] == 256 + 1 + 1 and report[RANDOM] == 2816 - 2552  # reserved ids
    assert classes(report, "sym") == {COPIED: 0, COMPOSED: 2275, RANDOM: 0}
    assert classes(report, "whole") == {COPIED: 1, COMPOSED: 2, RANDOM: 0}


def test_random_rows_have_the_source_statistics_and_follow_the_seed():
    source = token_list_source(HAND, "hand", eot_id=0)
    target = Tokenizer.default()
    emb = rows(len(HAND), dim=4) * 3 + 5
    p = plan(source, target)
    a, b = apply_plan(p, emb, seed=1), apply_plan(p, emb, seed=2)
    rand = [t for t, r in enumerate(p.rows) if r.how == RANDOM]
    assert len(rand) == 264 and torch.equal(a, apply_plan(p, emb, seed=1))
    assert not torch.equal(a[rand], b[rand])
    assert torch.equal(a[: 2552], b[: 2552])  # copied and composed rows take no randomness
    got = a[rand]
    assert torch.allclose(got.mean(0), emb.mean(0), atol=0.6)
    assert torch.allclose(got.std(0), emb.std(0), rtol=0.25)


def test_matrix_errors_name_the_matrix():
    source = token_list_source(HAND, "hand")
    p = plan(source, Tokenizer.default())
    with pytest.raises(SymatoError, match="head has 10 rows, fewer than the 262 ids"):
        apply_plan(p, rows(10), name="head")
    with pytest.raises(SymatoError, match="not one of"):
        plan(source, Tokenizer.default(), "mean")


# ---------------------------------------------------------------------- RWKV World
@pytest.fixture(scope="module")
def world():
    return rwkv_world_source()


@pytest.fixture(scope="module")
def trie():
    """The rwkv package's own tokenizer of the same file: the reference."""
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER

    return TRIE_TOKENIZER(str(rwkv_world_path()))


def test_rwkv_world_vocabulary_is_read_as_data_and_encodes_as_the_rwkv_package(world, trie):
    assert world.vocab_size == 65530 and world.eot_id == 0
    assert all(world.token_bytes[1 + b] == bytes([b]) for b in range(256))
    reference = trie
    sample = TEXT[:3000] + " Krông Pắc ĐIỀU 7, ok 🙂\n\t"
    assert world.encode(sample) == reference.encode(sample)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_rwkv_world_encodes_any_text_as_the_rwkv_package(world, trie, text):
    assert world.encode(text) == trie.encode(text)


def test_rwkv_vocab_lines_that_are_not_literals_are_refused(tmp_path):
    bad = tmp_path / "vocab.txt"
    bad.write_text("1 'a' 1\n2 __import__('os').getpid() 1\n", encoding="utf-8")
    with pytest.raises(SymatoError, match=r"vocab\.txt:2: expected `id literal length`"):
        read_rwkv_vocab(bad)
    bad.write_text("1 'a' 1\n2 'bc' 3\n", encoding="utf-8")
    with pytest.raises(SymatoError, match=r"vocab\.txt:2: token 'bc' is not 3 bytes"):
        read_rwkv_vocab(bad)


@pytest.mark.parametrize("name", ["symato", "symato-bpe2816", "symato+64"])
def test_rwkv_world_to_symato_kinds(world, targets, name):
    """The 256 bytes copied, every syllable part composed (none random), only reserved
    ids random; merges and whole syllables copied or composed."""
    target = targets[name]
    p = plan(world, target)
    report = p.report()
    assert report[COPIED] + report[COMPOSED] + report[RANDOM] == target.vocab_size
    assert classes(report, "byte") == {COPIED: 256, COMPOSED: 0, RANDOM: 0}
    assert classes(report, "special") == {COPIED: 1, COMPOSED: 0, RANDOM: 0}
    assert classes(report, "sym") == {COPIED: 0, COMPOSED: 2275, RANDOM: 0}
    assert classes(report, "marktone") == {COPIED: 0, COMPOSED: 18, RANDOM: 0}
    assert classes(report, "case") == {COPIED: 0, COMPOSED: 2, RANDOM: 0}
    assert report[RANDOM] == classes(report, "reserved")[RANDOM]
    for cls in ("merge", "whole"):
        assert classes(report, cls)[RANDOM] == 0
    assert p.rows[target.eot_id].groups == ((0,),)
    if name == "symato+64":  # common syllables are single RWKV World tokens (" người")
        assert classes(report, "whole")[COPIED] > 32


def test_rwkv_world_to_sentencepiece(world, targets):
    target = targets["sp-bpe400"]
    report = plan(world, target).report()
    assert classes(report, "byte") == {COPIED: 256, COMPOSED: 0, RANDOM: 0}
    pieces = classes(report, "piece")
    assert pieces[RANDOM] == 0 and pieces[COPIED] > pieces[COMPOSED] > 0
    assert report[RANDOM] == classes(report, "special")[RANDOM] == 1  # <unk>


# ---------------------------------------------------------------------- tokenizer.json
@pytest.fixture(scope="module")
def byte_bpe(tmp_path_factory) -> Path:
    """A small GPT-2-style byte-level BPE trained here on the tests' text."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(DOCS, trainer)
    path = tmp_path_factory.mktemp("bytebpe") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def sp_style(tmp_path_factory) -> Path:
    """A Llama-style sentencepiece BPE in tokenizer.json form: ▁ for spaces, a space put
    in front, <0xNN> byte fallback for what it lacks (here every non-ASCII letter)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece in ["▁", *"abcdefghiklmnopqrstuvxy", *"ABCDEGHIKLMNOPQRSTUVXY", "ng", "▁ng",
                  "nh", "▁nh", "▁t", "▁th", "th"]:
        vocab[piece] = len(vocab)
    merges = [("n", "g"), ("▁", "ng"), ("n", "h"), ("▁", "nh"), ("▁", "t"), ("t", "h"),
              ("▁t", "h")]
    tok = HFTokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    path = tmp_path_factory.mktemp("spstyle") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_byte_level_alphabet_is_the_tokenizers_librarys():
    from tokenizers import pre_tokenizers

    alphabet = byte_level_alphabet()
    assert sorted(alphabet) == sorted(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(alphabet.values()) == list(range(256))
    assert alphabet["Ġ"] == 0x20 and alphabet["!"] == 0x21 and alphabet["Ā"] == 0


@pytest.fixture(scope="module")
def byte_source(byte_bpe):
    return hf_source(byte_bpe)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_byte_level_token_bytes_spell_any_text(byte_source, text):
    source = byte_source
    assert b"".join(source.token_bytes[i] for i in source.encode(text)) == text.encode()


def test_byte_level_tokenizer_json(byte_bpe, targets):
    source = load_source(byte_bpe.parent)
    sample = TEXT[:2000] + "\x00\x7f ĐIỀU 7 🙂"
    assert b"".join(source.token_bytes[i] for i in source.encode(sample)) == sample.encode()
    assert source.eot_id == source.named[EOT]
    target = targets["symato-bpe2816"]
    emb = rows(source.vocab_size, seed=3)
    head = rows(source.vocab_size, seed=4)
    out, report = transplant(source, target, {"emb": emb, "head": head})
    assert report["matrices"] == ["emb", "head"]
    assert classes(report, "byte") == {COPIED: 256, COMPOSED: 0, RANDOM: 0}
    assert classes(report, "sym")[COMPOSED] == 2275
    assert classes(report, "merge")[RANDOM] == 0
    assert torch.equal(out["emb"][target.eot_id], emb[source.eot_id])
    assert torch.equal(out["head"][target.eot_id], head[source.eot_id])
    p = plan(source, target)
    for t, row in enumerate(p.rows):  # every one-text composed row: the exact mean
        if row.how == COMPOSED and len(row.groups) == 1:
            ids = list(row.groups[0])
            assert torch.equal(out["emb"][t], emb[ids].mean(0))
            assert torch.equal(out["head"][t], head[ids].mean(0))


def test_sentencepiece_style_tokenizer_json_with_byte_fallback(sp_style, targets):
    source = hf_source(sp_style)
    pieces = json.loads(sp_style.read_text(encoding="utf-8"))["model"]["vocab"]
    assert source.token_bytes[pieces["<0xE1>"]] == b"\xe1"
    assert source.token_bytes[pieces["▁ng"]] == b" ng"
    assert source.eot_id == pieces["</s>"]  # the first end-of-text candidate it has
    target = targets["symato"]
    p = plan(source, target)
    # ordinary tokens win over their byte-fallback twins; the rest are the fallbacks
    assert p.rows[ord("a")].groups == ((pieces["a"],),)
    assert p.rows[0x20].groups == ((pieces["▁"],),)
    assert p.rows[0xE1].groups == ((pieces["<0xE1>"],),)
    report = p.report()
    assert classes(report, "byte") == {COPIED: 256, COMPOSED: 0, RANDOM: 0}
    assert classes(report, "sym") == {COPIED: 0, COMPOSED: 2275, RANDOM: 0}
    # " người" -> ▁ng + the fallback bytes of ư ờ + i: the ▁ the normalizer adds is not used
    nguoi = target.sym_id("nguoi")
    first = source.encode_word("ngươi")
    assert first[0] == pieces["▁ng"] and pieces["▁"] not in first
    assert first in [list(g) for g in p.rows[nguoi].groups]
    # a marktone's vowel has no dummy-prefix ▁ in its group either
    assert p.rows[MT_BASE].groups[0] == (pieces["a"],)


# ---------------------------------------------------------------------- symato, control
def test_symato_to_symato_keeps_every_syllable_part(targets):
    """symato -> symato+64: bytes, marktones, case, syms and the special copied by name;
    a whole syllable is composed from its sym and marktone."""
    source = symato_source(targets["symato"])
    target = targets["symato+64"]
    p = plan(source, target)
    report = p.report()
    for cls in ("byte", "marktone", "case", "sym", "special"):
        assert classes(report, cls)[COPIED] == report["by_class"][cls][COPIED] > 0
        assert classes(report, cls)[COMPOSED] == classes(report, cls)[RANDOM] == 0
    for syllable in ("người", "việt", "nam"):
        t = target.piece_to_id("=" + syllable)
        sym_mt = targets["symato"].encode(syllable)
        assert p.rows[t].how == COMPOSED and p.rows[t].groups == (tuple(sym_mt),)


def test_random_method_leaves_exactly_the_copied_rows_equal(world, targets):
    target = targets["symato-bpe2816"]
    emb = rows(65536, dim=4, seed=5)  # RWKV World models pad their matrices to 65,536
    compose, r1 = transplant(world, target, {"emb": emb})
    control, r2 = transplant(world, target, {"emb": emb}, method="random")
    same = (compose["emb"] == control["emb"]).all(1)
    copied = torch.tensor([r.how == COPIED for r in plan(world, target).rows])
    assert torch.equal(same, copied)
    assert r2[COPIED] == r1[COPIED] and r2[COMPOSED] == 0
    assert r2[RANDOM] == r1[COMPOSED] + r1[RANDOM]


def test_report_is_written_as_json(tmp_path, targets):
    source = token_list_source(HAND, "hand", eot_id=0)
    _, report = transplant(source, targets["symato"], {"emb": rows(len(HAND))}, seed=7)
    path = tmp_path / "transplant.json"
    write_report(report, path)
    got = json.loads(path.read_text(encoding="utf-8"))
    assert got == report and got["seed"] == 7 and got["method"] == "compose"
    assert sum(got[k] for k in (COPIED, COMPOSED, RANDOM)) == got["target_vocab_size"] == 2816
    with pytest.raises(SymatoError, match="lacks key 'by_class'"):
        write_report({k: v for k, v in report.items() if k != "by_class"}, path)


def test_every_target_id_has_one_class(targets):
    for tok in targets.values():
        items = describe_target(tok)
        assert len(items) == tok.vocab_size
        assert {i.cls for i in items} <= {"byte", "marktone", "case", "special", "sym",
                                          "merge", "whole", "word", "piece", "reserved"}


def test_load_source_tells_the_kinds_apart(tmp_path, targets, byte_bpe):
    path = tmp_path / "symato.json"
    targets["symato"].save(path)
    assert load_source(path).named["<Title>"] == TITLE_ID
    assert load_source(byte_bpe).eot_id is not None
    assert load_source("rwkv-world").eot_id == 0
    other = tmp_path / "other.json"
    other.write_text('{"vocab": {}}', encoding="utf-8")
    with pytest.raises(SymatoError, match=r"other\.json: neither a symato vocabulary"):
        load_source(other)
    with pytest.raises(SymatoError, match=r"no tokenizer\.json in this folder"):
        load_source(tmp_path)
