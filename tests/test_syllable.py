"""The Vietnamese syllable grammar: inventory, parse/compose, tone placement, letter runs."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symato.text import syllable as S
from symato.text.syllable import (
    all_syllables,
    all_syms,
    compose,
    is_canonical_syllable,
    legal_marktones,
    letter_runs,
    normalize_tone_placement,
    parse,
    strip_marks,
)

ALL = all_syllables()
ALL_OLD = all_syllables("old")


def test_inventory_counts_are_the_documented_ones():
    # docs/tokenizer.md states these numbers; change both together.
    assert len(ALL) == 16138
    assert len(ALL_OLD) == 16138
    assert len(all_syms()) == 2275
    assert len(set(ALL)) == len(ALL)
    assert all(s == unicodedata.normalize("NFC", s) and s == s.lower() for s in ALL)


@pytest.mark.parametrize(
    ("word", "case", "sym", "mark", "tone", "onset", "rime"),
    [
        ("Nước", "title", "nuoc", 2, 1, "n", "ước"),
        ("Việt", "title", "viet", 1, 5, "v", "iệt"),
        ("hình", "lower", "hinh", 0, 2, "h", "ình"),
        ("chữ", "lower", "chu", 2, 4, "ch", "ữ"),
        ("ĐIỀU", "upper", "đieu", 1, 2, "đ", "iều"),
        ("người", "lower", "nguoi", 2, 2, "ng", "ười"),
        ("gì", "lower", "gi", 0, 2, "gi", "ì"),
        ("giữa", "lower", "giua", 2, 4, "gi", "ữa"),
        ("quốc", "lower", "quoc", 1, 1, "qu", "ốc"),
        ("của", "lower", "cua", 0, 3, "c", "ủa"),
        ("nghiêng", "lower", "nghieng", 1, 0, "ngh", "iêng"),
        ("khuỷu", "lower", "khuyu", 0, 3, "kh", "uỷu"),
        ("yêu", "lower", "yeu", 1, 0, "", "yêu"),
        ("A", "title", "a", 0, 0, "", "a"),
        ("ă", None, None, None, None, None, None),  # ă needs a coda
    ],
)
def test_parse_examples(word, case, sym, mark, tone, onset, rime):
    syl = parse(word)
    if case is None:
        assert syl is None
        return
    assert (syl.case, syl.sym, syl.mark, syl.tone, syl.onset, syl.rime) == (
        case, sym, mark, tone, onset, rime)
    assert syl.marktone == mark * 6 + tone
    assert syl.onset + syl.rime == word.lower() or syl.onset == "gi"


@pytest.mark.parametrize(
    "word",
    ["Krông", "MóNg", "mÓng", "ok", "S", "xyz", "ka", "ge", "ngi", "ghe" + "a", "ci", "qa",
     "àc", "ảt", "ãp", "ìch", "", "1", "việt1", "vi ệt", "Ð"],
)
def test_parse_rejects_non_syllables(word):
    assert parse(word) is None


def test_spelling_rules():
    assert parse("ke") and parse("ghe") and parse("nghe") and parse("ki") and parse("ky")
    assert parse("ca") and parse("ga") and parse("nga")
    for illegal in ("ce", "ge", "nge", "gha", "ka", "ngha", "cuy", "boan", "moa", "voa"):
        assert parse(illegal) is None, illegal
    assert parse("gie") is not None  # gi + e


def test_parse_accepts_nfd_and_both_tone_styles():
    for word in ("Việt", "người", "QUỐC", "hoà", "hòa"):
        nfd = unicodedata.normalize("NFD", word)
        assert nfd != word
        assert parse(nfd).marktone == parse(word).marktone
        assert parse(nfd).text == nfd
    assert parse("hòa").sym == parse("hoà").sym == "hoa"
    assert parse("thủy").tone == parse("thuỷ").tone == 3


def test_stop_codas_take_only_sac_or_nang():
    stops = [s for s in ALL if s.endswith(("c", "ch", "p", "t"))]
    assert len(stops) > 1000
    assert {parse(s).tone for s in stops} == {1, 5}
    assert legal_marktones("ac") == (1, 5, 7, 11, 13, 17)
    with pytest.raises(ValueError):
        compose("ac", 0, 2)


def test_compose_inverts_parse_for_every_syllable_and_style():
    for style, forms in (("new", ALL), ("old", ALL_OLD)):
        for form in forms:
            syl = parse(form)
            assert compose(syl.sym, syl.mark, syl.tone, "lower", style) == form
            assert syl.marktone in legal_marktones(syl.sym)
            for case, written in (("title", form[0].upper() + form[1:]), ("upper", form.upper())):
                assert compose(syl.sym, syl.mark, syl.tone, case, style) == written
                assert parse(written).case == case or len(form) == 1


def test_compose_errors():
    with pytest.raises(ValueError):
        compose("xyz", 0, 0)
    with pytest.raises(ValueError):
        compose("a", 3, 0)
    with pytest.raises(ValueError):
        compose("a", 0, 0, style="older")
    with pytest.raises(ValueError):
        compose("a", 0, 0, case="mixed")


def test_old_and_new_styles_differ_only_for_open_oa_oe_uy():
    pairs = {(s, compose(parse(s).sym, parse(s).mark, parse(s).tone, style="old")) for s in ALL}
    differ = {(n, o) for n, o in pairs if n != o}
    assert {o for _, o in pairs} == set(ALL_OLD)
    assert ("hoà", "hòa") in differ and ("thuỷ", "thủy") in differ and ("khoẻ", "khỏe") in differ
    for new, _old in differ:
        assert parse(new).rime[:2] in ("oà", "oá", "oả", "oã", "oạ", "oè", "oé", "oẻ", "oẽ", "oẹ",
                                       "uỳ", "uý", "uỷ", "uỹ", "uỵ")
    assert compose("hoan", 0, 2, style="old") == compose("hoan", 0, 2, style="new") == "hoàn"
    assert compose("quy", 0, 1, style="old") == "quý"


def test_normalize_tone_placement():
    text = "Hòa bình, THỦY lợi, khoẻ mạnh; Krông Pắc, e\u0301, x2 hòa"
    assert normalize_tone_placement(text, "new") == (
        "Hoà bình, THUỶ lợi, khoẻ mạnh; Krông Pắc, é, x2 hoà")
    assert normalize_tone_placement(text, "old") == (
        "Hòa bình, THỦY lợi, khỏe mạnh; Krông Pắc, é, x2 hòa")
    with pytest.raises(ValueError):
        normalize_tone_placement(text, "modern")


def test_is_canonical_syllable():
    assert is_canonical_syllable("hoà") and not is_canonical_syllable("hòa")
    assert is_canonical_syllable("hòa", "old")
    assert not is_canonical_syllable(unicodedata.normalize("NFD", "Việt"))
    assert is_canonical_syllable("VIỆT") and not is_canonical_syllable("ViỆT")


def test_letter_runs():
    text = "Việt_Nam 2024: e\u0301 x\u0301y 😀 αβγ, a1b"
    runs = [text[a:b] for a, b in letter_runs(text)]
    assert runs == ["Việt", "Nam", "e\u0301", "x\u0301y", "αβγ", "a", "b"]
    assert list(letter_runs("")) == [] and list(letter_runs("12 ,.")) == []


def test_strip_marks():
    assert strip_marks("Nước Việt Nam hình chữ S. ĐIỀU 7, ok") == (
        "Nuoc Viet Nam hinh chu S. ĐIEU 7, ok")
    assert strip_marks("Krông Pắc") == "Krông Pac"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aăâbcdđeêghiklmnoôơpqrstuưvxyAĐ ,.\u0300\u0301"
                                            "\u0303\u0309\u0323òóảõọ")), max_size=40))
def test_normalization_is_idempotent_and_keeps_runs(text):
    for style in ("new", "old"):
        once = normalize_tone_placement(text, style)
        assert normalize_tone_placement(once, style) == once
        assert len(list(letter_runs(once))) == len(list(letter_runs(text)))
    stripped = strip_marks(text)
    assert len(list(letter_runs(stripped))) == len(list(letter_runs(text)))


def test_every_syllable_has_its_sym_in_the_inventory():
    syms = set(all_syms())
    assert {parse(s).sym for s in ALL} == syms
    assert "đi" in syms and "di" in syms
    assert S.MARKTONES == 18


# Words of standard dictionaries the first grammar rejected (scripts/dictionary_check.py).
DICTIONARY_WORDS = ["quắp", "quặp", "buýt", "tuýp", "gioăng", "quạu", "quều", "voan", "phuy",
                    "giũ", "giú", "yểng", "yêng", "boa", "moay", "tuyn", "quọ", "quới",
                    "quoàng", "quoắt", "xoẻng", "khuýp", "quỵp", "quấc", "quờn"]


@pytest.mark.parametrize("word", DICTIONARY_WORDS)
def test_dictionary_words_are_syllables(word):
    syl = parse(word)
    assert syl is not None, word
    assert is_canonical_syllable(word) and is_canonical_syllable(word, "old")
    assert compose(syl.sym, syl.mark, syl.tone) == word
    upper = parse(word.upper())
    assert upper is not None and upper.case == "upper"


@pytest.mark.parametrize(
    "word",
    ["câù", "qúy", "quuyết", "khyển", "gíu", "gĩu", "têt", "môt", "hoc", "ngía", "gịa", "iý",
     "Krông", "gen", "ka", "kạn", "gram", "crông", "đắk", "lơng", "yen", "quình"],
)
def test_typos_and_loan_spellings_stay_rejected(word):
    assert parse(word) is None


def test_gi_plus_u_puts_the_tone_on_u():
    # gi + iu and gi + u are both written giu; dictionaries write giũ, giú
    assert compose("giu", 0, 4) == "giũ" and compose("giu", 0, 1, style="old") == "giú"
    assert parse("giũ").onset == "gi" and parse("giũ").rime == "ũ"


def test_attested_syllables_follow_the_tone_rules():
    assert compose("boa", 0, 2, style="new") == "boà" and compose("boa", 0, 2, style="old") == "bòa"
    assert compose("moay", 0, 1) == "moáy" and legal_marktones("buyt") == (1, 5)
    assert legal_marktones("quap") == (1, 5, 13, 17)  # quáp quạp (oap), quắp quặp (oăp)
