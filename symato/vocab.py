"""Building vocabularies: symato, symato+N, symato-bpeV, and the peers bytes and sentencepiece.

Why corpus order for syms: a model's embedding rows for frequent syms then sit together
and ``symato`` vocabularies of different corpora differ only in order, never in coverage:
every legal sym is present whatever corpus built it. ``symato+N`` adds the N most frequent
whole syllables of the corpus (filled up from the grammar inventory when the corpus has
fewer, so N is always exact). ``symato-bpeV`` learns V - (symato's ids) byte-pair merges
from the non-syllable runs of the training text (``symato.bpe``). sentencepiece trains
BPE on the same cleaned text, same size.

Inputs (from the statistics and cleaning stages): ``{stats}/syms.parquet`` (sym, count),
``{stats}/syllables.parquet`` (syllable, sym, marktone, count), and for the learned kinds
the training text: Parquet files with a column ``text`` (``--texts``; ``--clean DIR``
reads every ``DIR/shards/*.parquet``).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symato import syllable as S
from symato.bpe import learn_merges, merges_to_json
from symato.errors import SymatoError
from symato.tokenizer import (
    EOT,
    KINDS_RE,
    SYMATO_SIZE,
    Tokenizer,
    bytes_dict,
    sentencepiece_dict,
    symato_bpe_dict,
    symato_dict,
)

# sentencepiece settings; the CLI exposes each as --sp-NAME (underscores as dashes).
SP_DEFAULTS: dict[str, Any] = {
    "model_type": "bpe",
    "character_coverage": 0.9995,
    "input_sentence_size": 1_000_000,
    "max_sentence_length": 16384,
    "num_threads": 1,
}


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


def _sym_order(stats_dir: Path | None) -> tuple[list[str], dict[str, Any]]:
    """Syms by corpus frequency (ties by name), then every remaining legal sym sorted."""
    legal = S.all_syms()
    if stats_dir is None:
        return legal, {"syms_from_corpus": 0}
    path = Path(stats_dir) / "syms.parquet"
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


def _top_syllables(stats_dir: Path | None, n: int, style: str) -> tuple[list[str], dict[str, Any]]:
    """The n most frequent lower-case syllables (in ``style``), filled from the inventory."""
    counts: Counter[str] = Counter()
    if stats_dir is not None:
        path = Path(stats_dir) / "syllables.parquet"
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


def _text_files(clean_dir: Path | None, texts: list[Path] | None, kind: str) -> list[Path]:
    """The training text files: ``texts`` if given, else ``clean_dir/shards/*.parquet``."""
    if texts:
        return [Path(t) for t in texts]
    if clean_dir is None:
        raise SymatoError(f"vocabulary {kind!r} needs training text (--texts FILE... or --clean)")
    shards = sorted((Path(clean_dir) / "shards").glob("*.parquet"))
    if not shards:
        raise SymatoError(f"no cleaned shards in {Path(clean_dir) / 'shards'}")
    return shards


def _documents(files: list[Path]) -> Iterator[str]:
    """The ``text`` column of each Parquet file, document by document."""
    import pyarrow.parquet as pq

    for path in files:
        if not path.exists():
            raise SymatoError(f"training text file not found: {path}")
        try:
            column = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        except Exception as exc:
            raise SymatoError(f"cannot read column 'text' of {path}: {exc}") from None
        for text in column:
            yield text or ""


def _clean_texts(files: list[Path], max_len: int, stats: Counter[str]) -> Iterator[str]:
    """Non-empty lines of the training text (sentencepiece trains on lines)."""
    for text in _documents(files):
        for line in text.split("\n"):
            if not line:
                continue
            if len(line.encode("utf-8", "surrogatepass")) > max_len:
                stats["lines_too_long"] += 1  # sentencepiece skips these; we count them
                continue
            stats["lines"] += 1
            yield line


def _train_sentencepiece(files: list[Path], size: int, options: dict[str, Any]) -> Tokenizer:
    import sentencepiece as spm

    unknown = set(options) - set(SP_DEFAULTS)
    if unknown:
        raise SymatoError(f"unknown sentencepiece option(s): {sorted(unknown)}")
    opts = {**SP_DEFAULTS, **options}
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
        raise SymatoError(f"sentencepiece training on {files[0].parent} failed: {exc}") from None
    meta = {"requested_size": size, **opts, **stats}
    return Tokenizer.from_dict(sentencepiece_dict(model.getvalue(), meta))


def _symato_bpe(size: int, syms: list[str], meta: dict[str, Any], files: list[Path],
                tone_style: str, min_count: int) -> Tokenizer:
    """symato with ``size`` ids in all: the merges fill what the syms leave (see symato.bpe)."""
    base = 256 + S.MARKTONES + 2 + 1 + len(syms)
    if size <= base:
        raise SymatoError(f"symato-bpe{size}: needs more than the {base} ids of symato's "
                          "bytes, marktones, case tokens, specials and syms")
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


def build_vocab(name: str, *, stats_dir: str | Path | None = None,
                clean_dir: str | Path | None = None, texts: list[str | Path] | None = None,
                size: int = SYMATO_SIZE, tone_style: str = "new", bpe_min_count: int = 2,
                **sp_options: Any) -> Tokenizer:
    """Build the vocabulary ``name`` ("symato", "symato+N", "symato-bpeV", "bytes",
    "sentencepiece").

    ``size`` is the symato base size (ids before the whole syllables) and the
    sentencepiece vocabulary size; symato-bpeV has V ids whatever ``size`` says.
    ``texts`` (Parquet files, column ``text``; else ``clean_dir/shards/*.parquet``) is the
    training text of sentencepiece and symato-bpe; ``sp_options`` are sentencepiece
    trainer settings; a merge needs ``bpe_min_count`` occurrences.
    """
    match = KINDS_RE.match(name)
    if match is None:
        raise SymatoError(f"unknown vocabulary {name!r} "
                          "(symato, symato+N, symato-bpeV, bytes, sentencepiece)")
    if tone_style not in S.STYLES:
        raise SymatoError(f"tone style {tone_style!r} is not 'new' or 'old'")
    stats = Path(stats_dir) if stats_dir is not None else None
    files = [Path(t) for t in texts] if texts else None
    if name == "bytes":
        return Tokenizer.from_dict(bytes_dict())
    if name == "sentencepiece":
        clean = Path(clean_dir) if clean_dir else None
        return _train_sentencepiece(_text_files(clean, files, name), size, sp_options)
    syms, meta = _sym_order(stats)
    if match.group(3):
        clean = Path(clean_dir) if clean_dir else None
        return _symato_bpe(int(match.group(3)), syms, meta, _text_files(clean, files, name),
                           tone_style, bpe_min_count)
    syllables: list[str] = []
    if match.group(2):
        syllables, more = _top_syllables(stats, int(match.group(2)), tone_style)
        meta.update(more)
    needed = 256 + S.MARKTONES + 2 + 1 + len(syms)
    if size < needed:
        raise SymatoError(f"symato size {size} is below the {needed} ids every sym needs")
    return Tokenizer.from_dict(symato_dict(syms, syllables, size=size, tone_style=tone_style,
                                           meta=meta))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symato vocab", description="Build one vocabulary file.")
    p.add_argument("--name", required=True,
                   help="symato, symato+N, symato-bpeV, bytes or sentencepiece")
    p.add_argument("--stats", help="statistics folder (syms.parquet, syllables.parquet)")
    p.add_argument("--texts", nargs="+", metavar="FILE",
                   help="training text, Parquet files with column 'text' (sentencepiece, "
                        "symato-bpeV)")
    p.add_argument("--clean", help="cleaning folder: its shards/*.parquet are the training "
                                   "text when --texts is not given")
    p.add_argument("--bpe-min-count", type=int, default=2,
                   help="symato-bpeV: occurrences a merge needs (default 2)")
    p.add_argument("--out", required=True, help="vocabulary JSON file to write")
    p.add_argument("--size", type=int, default=SYMATO_SIZE,
                   help=f"symato base size and sentencepiece size (default {SYMATO_SIZE})")
    p.add_argument("--tone-style", choices=S.STYLES, default="new")
    for key, value in SP_DEFAULTS.items():
        p.add_argument(f"--sp-{key.replace('_', '-')}", dest=f"sp_{key}", type=type(value),
                       default=value, help=f"sentencepiece {key} (default {value})")
    return p


def main(argv: list[str]) -> int:
    """``symato vocab``: build a vocabulary and write it atomically."""
    args = _parser().parse_args(argv)
    sp_options = {k: getattr(args, f"sp_{k}") for k in SP_DEFAULTS}
    if not args.name.startswith("sentencepiece"):
        sp_options = {}
    tok = build_vocab(args.name, stats_dir=args.stats, clean_dir=args.clean, texts=args.texts,
                      size=args.size, tone_style=args.tone_style,
                      bpe_min_count=args.bpe_min_count, **sp_options)
    tok.save(args.out)
    meta = tok.to_dict().get("meta", {})
    print(f"wrote {args.out}: kind {tok.kind}, {tok.vocab_size} ids, {meta}", file=sys.stderr)
    return 0
