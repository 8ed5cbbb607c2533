"""The tokenizer in ``transformers`` (symato.interop.hf_tokenizer): for every kind of the
registry, ``AutoTokenizer.from_pretrained`` on the exported folder gives symato's ids and
text, on held-out Vietnamese lines and on generated text."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symato import Tokenizer
from symato.text.codecs.base import EOT
from symato.text.syllable import all_syllables
from symato.text.vocab import build_vocab

pytest.importorskip("transformers")
from symato.interop.hf_tokenizer import (
    byte_chars,
    disagreement,
    fast_backend,
    save_hf_tokenizer,
    sentencepiece_model_type,
    sentencepiece_text_rules,
)

DATA = Path(__file__).parent / "data" / "pipeline_vi.txt"
LINES = [line for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
TRAIN, HELD_OUT = LINES[:30], LINES[30:]  # vocabularies never see the held-out lines
# every kind of the registry (symato.text.kinds), small
KINDS = ["symato", "symato+300", "symato-bpe2700", "symato-words2700", "bytes",
         "sentencepiece", "sp-bpe600", "sp-unigram600"]
FAST = {"bytes", "sentencepiece", "sp-bpe600"}  # no remote code (sentencepiece: BPE)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Tokenizer, object, dict, Path]]:
    """Each kind: symato's tokenizer, the transformers tokenizer loaded from its exported
    folder, what ``save_hf_tokenizer`` returned, the folder."""
    import pandas as pd
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("hf")
    pd.DataFrame({"text": TRAIN}).to_parquet(root / "train.parquet")
    texts = [root / "train.parquet"]
    out = {}
    for k, name in enumerate(KINDS):
        options = {"size": 500} if name == "sentencepiece" else {}
        learns = name.startswith(("sp-", "sentencepiece", "symato-"))
        tok = build_vocab(name, texts=texts if learns else (), **options)
        vocab = root / f"vocab{k}.json"
        tok.save(vocab)
        folder = root / f"tok{k}"  # a module name transformers accepts (no '+')
        info = save_hf_tokenizer(vocab, folder, model_max_length=512)
        hf = AutoTokenizer.from_pretrained(folder, trust_remote_code=info["remote_code"])
        out[name] = (Tokenizer.from_file(vocab), hf, info, folder)
    return out


def _same(tok: Tokenizer, hf, text: str) -> None:
    ids = tok.encode(text)
    assert hf(text)["input_ids"] == ids, text
    assert hf.decode(ids) == tok.decode(ids), text


def test_which_kinds_need_remote_code(exported):
    from transformers import PreTrainedTokenizerFast

    for name, (tok, hf, info, folder) in exported.items():
        files = sorted(p.name for p in folder.iterdir())
        assert info["kind"] == tok.kind and info["eot_id"] == tok.eot_id
        if name in FAST:
            assert info["remote_code"] is False and isinstance(hf, PreTrainedTokenizerFast)
            assert files == ["tokenizer.json", "tokenizer_config.json"]
        else:
            assert info["remote_code"] is True and not hf.is_fast
            assert type(hf).__name__ == info["tokenizer_class"] == "SymatoTokenizer"
            assert files == ["symato_vocab.json", "tokenization_symato.py",
                             "tokenizer_config.json"]
            why = "Unigram" if name.startswith("sp-unigram") else "syllable"
            assert why in info["why_remote_code"]


@pytest.mark.parametrize("name", KINDS)
def test_held_out_lines(exported, name):
    tok, hf, _, _ = exported[name]
    for line in HELD_OUT:
        _same(tok, hf, line)
    document = "\n\n".join(HELD_OUT)
    _same(tok, hf, document)
    batch = hf(HELD_OUT)["input_ids"]
    assert batch == tok.encode_batch(HELD_OUT)
    assert hf.batch_decode(batch) == HELD_OUT


def test_special_tokens_and_settings(exported):
    for tok, hf, _, _ in exported.values():
        eot = tok.eot_id
        assert (hf.eos_token, hf.bos_token, hf.pad_token) == (EOT, EOT, EOT)
        assert hf.eos_token_id == hf.bos_token_id == hf.pad_token_id == eot
        assert hf.model_max_length == 512
        assert hf("Việt Nam")["input_ids"] == tok.encode("Việt Nam")  # nothing added
        # the special written in text is text, as in symato: never the eot id
        assert eot not in hf(f"a{EOT}b")["input_ids"] == tok.encode(f"a{EOT}b")
        asked = hf(f"a{EOT}b", split_special_tokens=False)["input_ids"]  # read as the id
        assert asked == [*tok.encode("a"), eot, *tok.encode("b")]
        ids = [*tok.encode("Hà Nội"), eot, *tok.encode("Huế")]
        assert hf.decode(ids) == tok.decode(ids) == f"Hà Nội{EOT}Huế"
        assert hf.decode(ids, skip_special_tokens=True) == tok.decode(
            [i for i in ids if i != eot])


def test_asking_for_the_eot_id_around_the_ids(exported):
    """``add_bos_token=True`` (what lm-evaluation-harness passes) puts the eot id first,
    as the pipeline's documents start; ``add_eos_token=True`` last."""
    from transformers import AutoTokenizer

    for tok, _, info, folder in exported.values():
        hf = AutoTokenizer.from_pretrained(folder, trust_remote_code=info["remote_code"],
                                           add_bos_token=True)
        assert hf("Việt Nam")["input_ids"] == [tok.eot_id, *tok.encode("Việt Nam")]
        assert hf("Việt Nam", add_special_tokens=False)["input_ids"] == tok.encode("Việt Nam")
        hf = AutoTokenizer.from_pretrained(folder, trust_remote_code=info["remote_code"],
                                           add_eos_token=True)
        assert hf("Huế")["input_ids"] == [*tok.encode("Huế"), tok.eot_id]


def test_vocabulary_views(exported):
    for name, (tok, hf, _, _) in exported.items():
        vocab = hf.get_vocab()
        assert len(vocab) == len(hf) == hf.vocab_size == tok.vocab_size, name
        assert sorted(vocab.values()) == list(range(tok.vocab_size))
        ids = tok.encode("Nước Việt Nam hình chữ S. ok▁")
        pieces = [tok.id_to_piece(i) for i in ids]
        if name == "bytes":  # byte-level characters (GPT-2's alphabet)
            pieces = [byte_chars()[i] for i in ids]
        elif name in FAST:  # sentencepiece pieces with their real spaces
            pieces = [p.replace("\u2581", " ") for p in pieces]
        assert hf.convert_ids_to_tokens(ids) == pieces
        assert hf.convert_tokens_to_ids(pieces) == ids


def test_save_pretrained_then_reload(exported, tmp_path):
    from transformers import AutoTokenizer

    for k, (name, (tok, hf, info, _)) in enumerate(exported.items()):
        again = tmp_path / f"again{k}"
        hf.save_pretrained(again)
        loaded = AutoTokenizer.from_pretrained(again, trust_remote_code=info["remote_code"])
        assert type(loaded).__name__ == type(hf).__name__, name
        assert loaded.eos_token_id == tok.eot_id and loaded.model_max_length == 512
        for line in HELD_OUT[:3]:
            _same(tok, loaded, line)


_syllable = st.sampled_from(all_syllables()[::5])
_word = st.one_of(
    _syllable,
    _syllable.map(str.upper),
    _syllable.map(str.title),
    _syllable.map(lambda s: unicodedata.normalize("NFD", s)),
    _syllable.map(lambda s: s.swapcase() if len(s) > 1 else s),
    st.sampled_from(["hòa", "thủy", "Krông", "MóNg", "\u0301", "\u0323\u0302", "😀", "\x00",
                     "\x7f", "\t", "\r\n", "  ", "   ", "\u2581", "\u2581\u2581", EOT, "<unk>",
                     "<0x41>", "<0xE1>", "<s>", "7", ",", "đ", "Ð", "\u00a0", "\u3000",
                     "ﬁ", "Ａ", "\ufeff", "\ue000", "-" * 17, " " * 13, "hahaha", "ừ ừ ừ"]),
    st.text(max_size=4),  # any characters but lone surrogates (no Rust string holds one)
)
_text = st.lists(st.tuples(_word, st.sampled_from(["", " ", " ", "  ", ".", "\n", "1"])),
                 max_size=16).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=_text)
def test_generated_text_every_kind(exported, text):
    for tok, hf, _, _ in exported.values():
        _same(tok, hf, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_decoding_any_ids(exported, data):
    """Remote-code kinds decode every id sequence as symato does (ill-formed too); fast
    kinds every sequence whose byte tokens spell whole characters (docs/export.md says
    what differs otherwise)."""
    for name, (tok, hf, _, _) in exported.items():
        n = tok.vocab_size
        if name not in FAST:
            ids = data.draw(st.lists(st.integers(0, n - 1), max_size=30))
        else:
            byte_id = tok.codec.byte_ids
            whole = st.text(min_size=1, max_size=2).map(
                lambda s, b=byte_id: [b[x] for x in s.encode()])
            single = st.sampled_from(sorted(set(range(n)) - set(byte_id))).map(lambda i: [i])
            parts = data.draw(st.lists(st.one_of(whole, single), max_size=15))
            ids = [i for part in parts for i in part]
        assert hf.decode(ids) == tok.decode(ids), (name, ids)


def test_invalid_utf8_in_fast_kinds_is_documented(exported):
    """What docs/export.md says: byte tokens that are not valid UTF-8 become U+FFFD in
    both, but symato writes one per invalid byte and keeps valid characters around them."""
    tok, hf, _, _ = exported["bytes"]
    cut = list("é".encode())[:1] + list(b"ab")
    assert tok.decode(cut) == hf.decode(cut) == "\ufffdab"
    truncated = list("ệ".encode())[:2]
    assert (tok.decode(truncated), hf.decode(truncated)) == ("\ufffd\ufffd", "\ufffd")
    tok, hf, _, _ = exported["sp-bpe600"]
    ids = [tok.codec.byte_ids[b] for b in b"a\xff"]
    assert (tok.decode(ids), hf.decode(ids)) == ("a\ufffd", "\ufffd\ufffd")


def test_building_blocks(exported):
    from tokenizers import pre_tokenizers

    assert set(byte_chars()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert len(set(byte_chars())) == 256
    assert sentencepiece_model_type(exported["sp-bpe600"][0]) == "bpe"
    assert sentencepiece_model_type(exported["sp-unigram600"][0]) == "unigram"
    assert sentencepiece_model_type(exported["sentencepiece"][0]) == "bpe"


def test_missing_packages_name_the_install(exported, tmp_path):
    """Without symato the remote class says what to install; without transformers the
    export says which extra."""
    folder = exported["symato"][3]
    script = (
        "import sys\n"
        "from transformers import AutoTokenizer\n"
        "for m in [m for m in sys.modules if m.startswith('symato')]: del sys.modules[m]\n"
        "sys.modules['symato'] = None\n"
        f"AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)\n")
    got = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert got.returncode != 0
    assert "pip install 'symato[hf]'" in got.stderr, got.stderr[-2000:]
    script = ("import sys\nsys.modules['transformers'] = None\n"
              "from symato.interop.hf_tokenizer import save_hf_tokenizer\n"
              f"save_hf_tokenizer('default', {str(tmp_path / 'x')!r}, model_max_length=8)\n")
    got = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert got.returncode != 0
    assert "pip install 'symato[hf]'" in got.stderr, got.stderr[-2000:]


def test_bad_model_max_length(tmp_path):
    from symato import SymatoError

    with pytest.raises(SymatoError, match="model_max_length"):
        save_hf_tokenizer(Path("default"), tmp_path, model_max_length=0)


def test_default_vocabulary_and_a_folder_exported_twice(exported, tmp_path):
    """``vocab_path`` may be ``default`` (as ``Tokenizer.from_file``); exporting another
    route into the same folder leaves no file of the first behind."""
    from transformers import AutoTokenizer

    folder = tmp_path / "tok"
    fast_vocab = exported["bytes"][3]
    save_hf_tokenizer(Path("default"), folder, model_max_length=64)
    assert (folder / "symato_vocab.json").exists()
    tok = Tokenizer.from_file(folder / "symato_vocab.json")
    assert tok.to_dict() == Tokenizer.default().to_dict()
    vocab = tmp_path / "bytes.json"
    build_vocab("bytes").save(vocab)
    info = save_hf_tokenizer(vocab, folder, model_max_length=64)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in fast_vocab.iterdir())
    hf = AutoTokenizer.from_pretrained(folder)
    assert info["remote_code"] is False and hf("Việt")["input_ids"] == list("Việt".encode())


def test_lone_surrogates(exported):
    """Not Unicode: the fast tokenizers refuse them; the remote class encodes them as
    symato does."""
    for name, (tok, hf, _, _) in exported.items():
        if name in FAST:
            with pytest.raises(TypeError):
                hf("a\ud800b")
        else:
            _same(tok, hf, "a\ud800b Việt\udfff")


def test_the_probe_finds_a_pipeline_that_disagrees(exported):
    """What sends a kind to the remote class if its pipeline is not symato's: the probe
    passes each kind's own pipeline and fails another's."""
    sp, bytes_ = exported["sp-bpe600"][0], exported["bytes"][0]
    own, why = fast_backend(sp)
    assert why is None and disagreement(sp, own) is None
    assert disagreement(sp, fast_backend(bytes_)[0]) is not None
    assert disagreement(bytes_, own) is not None


def test_sentencepiece_models_that_rewrite_text_get_the_remote_class(exported, tmp_path):
    """A sentencepiece model with its trainer's defaults (nmt_nfkc, dummy prefix, folded
    whitespace), e.g. a vocabulary file made outside ``symato vocab``: no tokenizer.json
    could know its normalization tables, so it goes through the remote class, exactly."""
    import io

    import sentencepiece as spm
    from transformers import AutoTokenizer

    from symato.text.tokenizer import sentencepiece_dict

    assert sentencepiece_text_rules(exported["sp-bpe600"][0]) == ""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TRAIN), model_writer=model,
                                   vocab_size=500, model_type="bpe", byte_fallback=True,
                                   control_symbols=[EOT], minloglevel=2)
    vocab = tmp_path / "nfkc.json"
    tok = Tokenizer.from_dict(sentencepiece_dict(model.getvalue()))
    tok.save(vocab)
    rules = sentencepiece_text_rules(tok)
    assert {"nmt_nfkc", "add_dummy_prefix", "remove_extra_whitespaces"} <= set(
        rules.replace(",", " ").split())
    info = save_hf_tokenizer(vocab, tmp_path / "out", model_max_length=64)
    assert info["remote_code"] and "rewrites the text" in info["why_remote_code"]
    hf = AutoTokenizer.from_pretrained(tmp_path / "out", trust_remote_code=True)
    for text in [*HELD_OUT[:2], "ﬁ  Ａ  x", "  Việt   Nam "]:
        _same(tok, hf, text)
