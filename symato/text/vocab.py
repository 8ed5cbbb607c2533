"""Building vocabularies: symato, symato+N, symato-bpeV, and the peers bytes and sentencepiece.

Why corpus order for syms: a model's embedding rows for frequent syms then sit together
and ``symato`` vocabularies of different corpora differ only in order, never in coverage:
every legal sym is present whatever corpus built it. ``symato+N`` adds the N most frequent
whole syllables of the corpus (filled up from the grammar inventory when the corpus has
fewer, so N is always exact). ``symato-bpeV`` learns V - (symato's ids) byte-pair merges
from the non-syllable runs of the training text (``symato.text.bpe``). sentencepiece trains
BPE on the same cleaned text, same size.

Inputs, each a declared file (``symato vocab --syms --syllables --text``): the statistics
tables ``syms.parquet`` (sym, count) and ``syllables.parquet`` (syllable, sym, marktone,
count), and cleaned Parquet shards (column ``text``). Which a tokenizer reads is its
kind's ``learns_from`` (``symato.text.kinds``); every build function has one signature,
``build(name, match, inputs, options)``.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.spec import Option, object_schema
from symato.text import syllable as S
from symato.text.bpe import learn_merges, merges_to_json
from symato.text.kinds import kind_of
from symato.text.tokenizer import (
    EOT,
    SYMATO_SIZE,
    Tokenizer,
    bytes_dict,
    sentencepiece_dict,
    symato_bpe_dict,
    symato_dict,
)

# sentencepiece trainer settings (config ``vocab.sentencepiece``; the CLI's --sp-NAME).
# Written once: the config schema gets them from here (symato.config).
SP_OPTIONS: tuple[Option, ...] = (
    Option("model_type", str, "sentencepiece algorithm", "bpe", choices=("bpe", "unigram")),
    Option("character_coverage", float, "share of characters covered by pieces", 0.9995,
           above=0, maximum=1),
    Option("input_sentence_size", int, "lines sampled for training (0 = all)", 1_000_000,
           minimum=0),
    Option("max_sentence_length", int, "longer lines (bytes) are skipped and counted in the "
           "vocabulary's meta", 16384, minimum=1),
    Option("num_threads", int, "trainer threads", 1, minimum=1),
)
SP_DEFAULTS: dict[str, Any] = {o.name: o.default for o in SP_OPTIONS}


def sentencepiece_schema() -> dict[str, Any]:
    """The JSON schema of config ``vocab.sentencepiece`` (filled in by symato.config)."""
    return {**object_schema(SP_OPTIONS), "default": {}}


def _read_table(path: Path, columns: list[str]):
    """Read a Parquet table, requiring ``columns``; errors name the file and column."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise SymatoError(f"statistics file not found: {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SymatoError(f"cannot read Parquet file {path}: {exc}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SymatoError(f"{path} lacks column(s) {missing} (has {table.column_names})")
    return table.select(columns).to_pandas()


def _sym_order(path: Path | None) -> tuple[list[str], dict[str, Any]]:
    """Syms by corpus frequency (ties by name), then every remaining legal sym sorted."""
    legal = S.all_syms()
    if path is None:
        return legal, {"syms_from_corpus": 0}
    df = _read_table(path, ["sym", "count"])
    known = set(legal)
    counts: Counter[str] = Counter()
    for row, (sym, count) in enumerate(zip(df["sym"], df["count"], strict=True)):
        if sym not in known:
            raise SymatoError(f"{path} row {row}: {sym!r} is not a sym of the grammar")
        counts[sym] += int(count)
    ranked = sorted((s for s in counts if counts[s] > 0), key=lambda s: (-counts[s], s))
    seen = set(ranked)
    return ranked + [s for s in legal if s not in seen], {"syms_from_corpus": len(ranked)}


def _top_syllables(path: Path | None, n: int, style: str) -> tuple[list[str], dict[str, Any]]:
    """The n most frequent lower-case syllables (in ``style``), filled from the inventory."""
    counts: Counter[str] = Counter()
    if path is not None:
        df = _read_table(path, ["syllable", "count"])
        for row, (word, count) in enumerate(zip(df["syllable"], df["count"], strict=True)):
            syl = S.parse(word) if isinstance(word, str) else None
            if syl is None or syl.case != "lower":
                raise SymatoError(f"{path} row {row}: {word!r} is not a lower-case syllable")
            counts[S.compose(syl.sym, syl.mark, syl.tone, "lower", style)] += int(count)
    ranked = sorted((s for s in counts if counts[s] > 0), key=lambda s: (-counts[s], s))[:n]
    from_corpus = len(ranked)
    if from_corpus < n:
        seen = set(ranked)
        ranked += [s for s in S.all_syllables(style) if s not in seen][: n - from_corpus]
    if len(ranked) < n:
        raise SymatoError(f"symato+{n}: the grammar has only {len(ranked)} syllables")
    return ranked, {"syllables_from_corpus": from_corpus}


def _documents(files: list[Path]) -> Iterator[str]:
    """The ``text`` column of each cleaned Parquet file, document by document."""
    import pyarrow.parquet as pq

    if not files:
        raise SymatoError("no text files given (--texts: cleaned Parquet files, column 'text')")
    for path in files:
        try:
            column = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        except Exception as exc:
            raise SymatoError(f"cannot read column 'text' of {path}: {exc}") from None
        for text in column:
            yield text or ""


def _clean_texts(files: list[Path], max_len: int, stats: Counter[str]) -> Iterator[str]:
    """Non-empty lines of the given cleaned Parquet files (sentencepiece trains on lines)."""
    for text in _documents(files):
        for line in text.split("\n"):
            if not line:
                continue
            if len(line.encode("utf-8", "surrogatepass")) > max_len:
                stats["lines_too_long"] += 1  # sentencepiece skips these; we count them
                continue
            stats["lines"] += 1
            yield line


def build_sentencepiece(name: str, match: re.Match[str], inputs: dict[str, list[Path]],
                        options: dict[str, Any]) -> Tokenizer:
    """Train sentencepiece on ``inputs["text"]``; ``options``: ``size`` and ``sp_*``."""
    import sentencepiece as spm

    _allow(name, options, {"size", *(f"sp_{key}" for key in SP_DEFAULTS)})
    sp = {k[3:]: v for k, v in options.items() if k.startswith("sp_")}
    opts = {**SP_DEFAULTS, **sp}
    for option in SP_OPTIONS:
        option.check(opts[option.name], "sentencepiece options")
    size = int(options.get("size", SYMATO_SIZE))
    files = inputs.get("text", [])
    stats: Counter[str] = Counter()
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_clean_texts(files, opts["max_sentence_length"], stats),
            model_writer=model, vocab_size=size, byte_fallback=True,
            normalization_rule_name="identity", add_dummy_prefix=False,
            remove_extra_whitespaces=False, split_digits=False, control_symbols=[EOT],
            bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1, hard_vocab_limit=False,
            allow_whitespace_only_pieces=True, minloglevel=2, **opts,
        )
    except SymatoError:
        raise
    except RuntimeError as exc:
        raise SymatoError(f"sentencepiece training on {len(files)} files failed: {exc}") from None
    meta = {"requested_size": size, **opts, **stats}
    return Tokenizer.from_dict(sentencepiece_dict(model.getvalue(), meta))


def build_sentencepiece_sized(name: str, match: re.Match[str], inputs: dict[str, list[Path]],
                              options: dict[str, Any]) -> Tokenizer:
    """sp-bpeV / sp-unigramV: sentencepiece with the algorithm and size its name gives;
    ``options``: the other ``sp_*`` trainer settings."""
    _allow(name, options, {f"sp_{key}" for key in SP_DEFAULTS if key != "model_type"})
    model_type = "unigram" if name.startswith("sp-unigram") else "bpe"
    tok = build_sentencepiece("sentencepiece", match, inputs,
                              {**options, "size": int(match.group(1)), "sp_model_type": model_type})
    return Tokenizer.from_dict({**tok.to_dict(), "kind": name})


def build_bytes(name: str, match: re.Match[str], inputs: dict[str, list[Path]],
                options: dict[str, Any]) -> Tokenizer:
    """The bytes vocabulary: built from nothing."""
    _allow(name, options, set())
    return Tokenizer.from_dict(bytes_dict())


def build_symato(name: str, match: re.Match[str], inputs: dict[str, list[Path]],
                 options: dict[str, Any]) -> Tokenizer:
    """symato (``inputs["syms"]`` orders the syms) or symato+N (``inputs["syllables"]``
    chooses the N whole syllables); ``options``: ``size``, ``tone_style``."""
    _allow(name, options, {"size", "tone_style"})
    size = int(options.get("size", SYMATO_SIZE))
    tone_style = options.get("tone_style", "new")
    if tone_style not in S.STYLES:
        raise SymatoError(f"tone style {tone_style!r} is not 'new' or 'old'")
    syms, meta = _sym_order(_one(inputs, "syms"))
    syllables: list[str] = []
    if match.groups() and match.group(1):
        syllables, more = _top_syllables(_one(inputs, "syllables"), int(match.group(1)),
                                         tone_style)
        meta.update(more)
    needed = 256 + S.MARKTONES + 2 + 1 + len(syms)
    if size < needed:
        raise SymatoError(f"symato size {size} is below the {needed} ids every sym needs")
    return Tokenizer.from_dict(symato_dict(syms, syllables, size=size, tone_style=tone_style,
                                           meta=meta))


def build_symato_bpe(name: str, match: re.Match[str], inputs: dict[str, list[Path]],
                     options: dict[str, Any]) -> Tokenizer:
    """symato-bpeV: V ids in all; the byte-pair merges (``symato.text.bpe``) fill what the
    syms leave, learned from the non-syllable runs of ``inputs["text"]``; ``options``:
    ``tone_style``, ``bpe_min_count`` (occurrences a merge needs)."""
    _allow(name, options, {"tone_style", "bpe_min_count"})
    size, tone_style = int(match.group(1)), options.get("tone_style", "new")
    min_count = int(options.get("bpe_min_count", 2))
    if tone_style not in S.STYLES:
        raise SymatoError(f"tone style {tone_style!r} is not 'new' or 'old'")
    syms, meta = _sym_order(_one(inputs, "syms"))
    base = 256 + S.MARKTONES + 2 + 1 + len(syms)
    if size <= base:
        raise SymatoError(f"{name}: needs more than the {base} ids of symato's bytes, "
                          "marktones, case tokens, specials and syms")
    files = inputs.get("text", [])
    plain = Tokenizer.from_dict(symato_dict(syms, tone_style=tone_style))
    runs: Counter[bytes] = Counter()
    documents = 0
    for text in _documents(files):
        runs.update(plain.non_syllable_runs(text))
        documents += 1
    merges = learn_merges(runs, size - base, min_count)
    meta = {**meta, "merges_requested": size - base, "merges_learned": len(merges),
            "min_count": min_count, "documents": documents, "text_files": len(files)}
    return Tokenizer.from_dict(symato_bpe_dict(syms, merges_to_json(merges), size=size,
                                               tone_style=tone_style, meta=meta))


def _allow(name: str, options: dict[str, Any], allowed: set[str]) -> None:
    """Refuse options the kind does not read (a typo must not be ignored)."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SymatoError(f"vocabulary {name!r}: unknown option(s) {unknown}; "
                          f"it reads {sorted(allowed)}")


def _one(inputs: dict[str, list[Path]], source: str) -> Path | None:
    files = inputs.get(source) or []
    if len(files) > 1:
        raise SymatoError(f"--{source}: give one file, got {len(files)}")
    return Path(files[0]) if files else None


def build_vocab(name: str, *, syms: str | Path | None = None,
                syllables: str | Path | None = None, texts: Sequence[str | Path] = (),
                **options: Any) -> Tokenizer:
    """Build the vocabulary ``name`` (any registered kind, ``symato.text.kinds``).

    ``syms``/``syllables`` are the statistics tables, ``texts`` cleaned Parquet files;
    each kind reads only what it learns from (none given: the grammar's own order).
    ``options`` are the kind's settings (``size``, ``tone_style``, ``sp_model_type``, ...).
    """
    kind, match = kind_of(name, "vocabulary")
    given = {"syms": [syms] if syms else [], "syllables": [syllables] if syllables else [],
             "text": list(texts)}
    inputs = {src: [Path(f) for f in given[src]] for src in kind.learns_from}
    return kind.builder()(name, match, inputs, options)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symato vocab", description="Build one vocabulary file.")
    p.add_argument("--name", required=True, help="tokenizer name, e.g. symato, symato+8192, "
                   "bytes, sentencepiece (kinds: symato.text.kinds)")
    p.add_argument("--syms", help="syms.parquet (sym, count) of the train split")
    p.add_argument("--syllables", help="syllables.parquet (syllable, count) of the train split")
    p.add_argument("--texts", nargs="+", default=[], metavar="FILE",
                   help="training text: cleaned Parquet files (column text) of the train split")
    p.add_argument("--bpe-min-count", type=int, default=argparse.SUPPRESS,
                   help="symato-bpeV, symato-wordsV: occurrences a merge (of bytes, of "
                   "syllables) needs (default 2)")
    p.add_argument("--out", required=True, help="vocabulary JSON file to write")
    # Options the kind does not read are refused, so none has a default here: each build
    # function holds its own.
    p.add_argument("--size", type=int, default=argparse.SUPPRESS,
                   help=f"symato base size and sentencepiece size (default {SYMATO_SIZE})")
    p.add_argument("--tone-style", choices=S.STYLES, default=argparse.SUPPRESS,
                   help="symato kinds: tone placement of the syllables (default new)")
    for o in SP_OPTIONS:
        p.add_argument(f"--sp-{o.name.replace('_', '-')}", dest=f"sp_{o.name}", type=o.parse,
                       default=argparse.SUPPRESS,
                       help=f"sentencepiece {o.help} (default {o.default})")
    return p


def main(argv: list[str]) -> int:
    """``symato vocab``: build a vocabulary and write it atomically."""
    args = vars(_parser().parse_args(argv))
    name, out = args.pop("name"), args.pop("out")
    files = {key: args.pop(key) for key in ("syms", "syllables", "texts")}
    tok = build_vocab(name, **files, **args)
    tok.save(out)
    meta = tok.to_dict().get("meta", {})
    print(f"wrote {out}: kind {tok.kind}, {tok.vocab_size} ids, {meta}", file=sys.stderr)
    return 0
