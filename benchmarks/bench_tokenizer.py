"""Tokenizer speed and compression on one core: symato vs sentencepiece vs byte-level BPE.

Usage:
    .venv/bin/python benchmarks/bench_tokenizer.py [--text FILE] [--repeat 10] [--markdown]

Without --text it uses real running Vietnamese text: the VLSP-2013 POS test sentences
shipped inside the ``underthesea==9.5.0`` wheel (fetched once with ``pip download`` into
~/.cache/symato/bench; words are detokenized back into sentences). Every tokenizer is
built from that same text: symato from its syllable statistics, symato+N likewise,
sentencepiece BPE (same vocabulary size as symato) trained on it, and, if installed, a
byte-level BPE from ``tokenizers``. Timings are the best of --repeat interleaved runs over
documents of --doc-lines lines, pinned to one CPU core; "cold" encodes with a fresh
tokenizer (empty cache), "warm" encodes the same documents again.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers: one core
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WHEEL = "underthesea==9.5.0"
MEMBER = "underthesea/pipeline/pos_tag/models/pos_crf_vlsp2013_20230303/test_output.txt"
_CLOSE = re.compile(r"[.,;:!?)\]}%…]+")


def _detokenize(conll: str) -> str:
    """CoNLL-style `word<TAB>tag` lines (blank line between sentences) -> sentences."""
    sentences = []
    for block in conll.split("\n\n"):
        rows = [line for line in block.split("\n") if line.strip()]
        words = [line.split("\t")[0].replace("_", " ") for line in rows]
        out = ""
        for w in words:
            if out and not _CLOSE.fullmatch(w) and not out.endswith(("(", "[", "{", "“")):
                out += " "
            out += w
        if out:
            sentences.append(out)
    return "\n".join(sentences) + "\n"


def default_text() -> str:
    """The VLSP-2013 POS test sentences from the underthesea wheel (cached)."""
    cache = Path.home() / ".cache" / "symato" / "bench"
    wheels = sorted(cache.glob("underthesea-9.5.0-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q",
                        "-d", str(cache)], check=True)
        wheels = sorted(cache.glob("underthesea-9.5.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        return _detokenize(zf.read(MEMBER).decode("utf-8"))


def syllable_stats(text: str, folder: Path) -> tuple[int, int]:
    """Write syms.parquet / syllables.parquet for ``text``; return (syllables, the tokens
    symato spends on them: 2 each plus a case token for Title/UPPER, 1 per byte otherwise)."""
    import pandas as pd

    from symato.text.syllable import LETTER_RUN, is_canonical_syllable, parse

    counts: Counter[str] = Counter()
    syllables = spent = 0
    for m in LETTER_RUN.finditer(text):
        word = m.group()
        syl = parse(word)
        if syl is not None:
            syllables += 1
            if is_canonical_syllable(word):
                counts[word.lower()] += 1
                spent += 2 + (syl.case != "lower")
            else:
                spent += len(word.encode("utf-8"))
    rows = [(s, parse(s), c) for s, c in counts.items()]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"syllable": [s for s, _, _ in rows], "sym": [p.sym for _, p, _ in rows],
                  "marktone": [p.marktone for _, p, _ in rows],
                  "count": [c for _, _, c in rows]}).to_parquet(folder / "syllables.parquet")
    syms: Counter[str] = Counter()
    for _, p, c in rows:
        syms[p.sym] += c
    pd.DataFrame({"sym": list(syms), "count": list(syms.values())}).to_parquet(
        folder / "syms.parquet")
    return syllables, spent


def build_all(text: str, work: Path, size: int, n: int) -> dict[str, tuple]:
    """name -> (fresh-instance factory, encode(inst, doc), decode(inst, ids))."""
    import pandas as pd

    from symato.text.tokenizer import Tokenizer
    from symato.text.vocab import build_vocab

    (work / "clean" / "shards").mkdir(parents=True)
    pd.DataFrame({"doc_id": ["0"], "source": ["bench"], "text": [text]}).to_parquet(
        work / "clean" / "shards" / "0.parquet")
    made: dict[str, tuple] = {}
    def fresh(d: dict) -> Tokenizer:
        # Like loading sentencepiece's model, building the decode lookup tables (once per
        # instance, ~0.05-0.1 s) is set-up, not decoding; the encode cache stays empty.
        tok = Tokenizer.from_dict(d)
        tok._fast_tables()
        return tok

    for name in ("symato", f"symato+{n}"):
        d = build_vocab(name, stats_dir=work / "stats", size=size).to_dict()
        made[name] = (lambda d=d: fresh(d), Tokenizer.encode, Tokenizer.decode)
    sp = build_vocab("sentencepiece", clean_dir=work / "clean", size=size)
    made["sentencepiece BPE"] = (lambda: sp._sp, lambda t, s: t.encode(s), lambda t, i: t.decode(i))
    made["sentencepiece (symato wrapper)"] = (lambda: sp, Tokenizer.encode, Tokenizer.decode)
    try:
        from tokenizers import ByteLevelBPETokenizer
    except ImportError:
        return made
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text.split("\n"), vocab_size=size, show_progress=False)
    made["tokenizers byte-level BPE"] = (
        lambda: bpe, lambda t, s: t.encode(s).ids, lambda t, i: t.decode(i))
    return made


def measure(made: dict[str, tuple], docs: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Best-of-``repeat`` seconds for cold encode, warm encode and decode, plus token counts."""
    best: dict[str, dict[str, float]] = {k: {"cold": 1e9, "warm": 1e9, "decode": 1e9} for k in made}
    tokens: dict[str, int] = {}
    for _ in range(repeat):
        for name, (factory, enc, dec) in made.items():
            tok = factory()
            t0 = time.perf_counter()
            ids = [enc(tok, d) for d in docs]
            t1 = time.perf_counter()
            [enc(tok, d) for d in docs]
            t2 = time.perf_counter()
            out = [dec(tok, i) for i in ids]
            t3 = time.perf_counter()
            if out != docs:
                raise SystemExit(f"{name}: decode(encode(text)) != text")
            b = best[name]
            b["cold"], b["warm"] = min(b["cold"], t1 - t0), min(b["warm"], t2 - t1)
            b["decode"] = min(b["decode"], t3 - t2)
            tokens[name] = sum(len(i) for i in ids)
    for name in made:
        best[name]["tokens"] = tokens[name]
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", help="UTF-8 text file (default: VLSP-2013 POS test sentences)")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--size", type=int, default=2816, help="symato / sentencepiece / BPE size")
    p.add_argument("--syllables", type=int, default=8192, help="N of symato+N")
    p.add_argument("--doc-lines", type=int, default=50, help="lines per document")
    p.add_argument("--markdown", action="store_true", help="print the docs/benchmarks.md table")
    args = p.parse_args()

    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    text = Path(args.text).read_text(encoding="utf-8") if args.text else default_text()
    lines = text.split("\n")
    docs = ["\n".join(lines[i : i + args.doc_lines]) for i in range(0, len(lines), args.doc_lines)]
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    with tempfile.TemporaryDirectory() as tmp:
        syllables, spent = syllable_stats(text, Path(tmp) / "stats")
        made = build_all(text, Path(tmp), args.size, args.syllables)
        res = measure(made, docs, args.repeat)

    cpuinfo = Path("/proc/cpuinfo").read_text().split("\n")
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
                 platform.processor())
    print(f"text: {args.text or 'VLSP-2013 POS test (underthesea 9.5.0)'}, {nbytes / 1e6:.3f} MB, "
          f"{len(docs)} documents, {syllables} syllables; one core of {model}; "
          f"Python {platform.python_version()}; best of {args.repeat}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    head = ("| tokenizer | encode MB/s (cold) | encode MB/s (warm) | decode MB/s | "
            "tokens/syllable | tokens/byte |")
    print(head)
    print("|" + " --- |" * 6)
    for name, r in res.items():
        mb = nbytes / 1e6
        print(f"| {name} | {mb / r['cold']:.2f} | {mb / r['warm']:.2f} | {mb / r['decode']:.2f} "
              f"| {r['tokens'] / syllables:.3f} | {r['tokens'] / nbytes:.3f} |")
    print(f"\nsymato tokens on the syllables alone: {spent / syllables:.3f} per syllable "
          "(the rest is punctuation, digits and spaces next to them, as bytes)")
    sp = res["sentencepiece BPE"]
    for name in ("symato", f"symato+{args.syllables}"):
        r = res[name]
        print(f"{name} / sentencepiece BPE: encode {sp['cold'] / r['cold']:.2f}x (cold), "
              f"{sp['warm'] / r['warm']:.2f}x (warm), decode {sp['decode'] / r['decode']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
