"""Tokenizer speed and compression on one core, every kind against its peers at equal sizes.

Usage:
    .venv/bin/python benchmarks/bench_tokenizer.py [--jsonl FILE | --text FILE]
        [--sizes 2816 11008] [--syllables 8192] [--repeat 5] [--markdown]

Text: without --text / --jsonl, the VLSP-2013 POS test sentences shipped inside the
``underthesea==9.5.0`` wheel (fetched once with ``pip download`` into
~/.cache/symato/bench; words detokenized back into sentences), cut into documents of
--doc-lines lines. ``--jsonl`` reads documents (key ``text``) such as the demo corpus of
``symato demo`` and keeps those whose letter runs are at least half Vietnamese
syllables (``symato.data.clean.vietnamese_share``; the demo's untranslated pages go). Every
fifth document is held out; **every tokenizer is built from the other four fifths and
measured on the held-out fifth**, text none of them was built from.

Tokenizers, at each size of --sizes (ids in all): symato (2,816; its size is fixed by
the syms), symato+N (2,816 + N), symato-bpeV, symato-wordsV, sentencepiece BPE and Unigram (native
calls), and a byte-level BPE of ``tokenizers``; sentencepiece may stop below the size
asked on a small text (the table gives the real size).

Timings are the best of --repeat interleaved runs on one pinned core:
- encode doc "cold": each held-out document once with a fresh tokenizer (empty caches);
  "warm": re-encoding the same documents (symato's chunk cache is hot; this is not
  speed on new text);
- encode / decode line: each held-out line in its own call (a fresh tokenizer per run);
- decode doc: each document's ids in one call;
- decode token: one id per call over the held-out lines' ids, in microseconds per call:
  ``decode([id])`` for sentencepiece and ``tokenizers``, the stream decoder's
  ``feed([id])`` for the symato kinds (what ``symato generate`` calls per sampled token).
Words are whitespace-separated strings; bytes are UTF-8 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
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


def documents(args: argparse.Namespace) -> tuple[list[str], str]:
    """(documents, a description of where they come from)."""
    if args.jsonl:
        from symato.data.clean import vietnamese_share

        docs = []
        with open(args.jsonl, encoding="utf-8") as fh:
            for line in fh:
                text = json.loads(line).get("text") or ""
                if text.strip() and vietnamese_share(text) >= 0.5:
                    docs.append(text)
        return docs, f"{args.jsonl} (documents >= 50% Vietnamese syllables)"
    text = Path(args.text).read_text(encoding="utf-8") if args.text else default_text()
    lines = text.split("\n")
    n = args.doc_lines
    docs = ["\n".join(lines[i : i + n]) for i in range(0, len(lines), n)]
    return docs, args.text or "VLSP-2013 POS test (underthesea 9.5.0)"


def syllable_stats(text: str, folder: Path) -> None:
    """Write syms.parquet / syllables.parquet (what the statistics stage writes) for text."""
    import pandas as pd

    from symato.text.syllable import LETTER_RUN, is_canonical_syllable, parse

    counts: Counter[str] = Counter()
    for m in LETTER_RUN.finditer(text):
        if is_canonical_syllable(m.group()):
            counts[m.group().lower()] += 1
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


class Entry:
    """One tokenizer under test: a factory for fresh instances and its calls."""

    def __init__(self, name: str, size: int, fresh: Callable[[], object],
                 enc: Callable, dec: Callable, token_decoder: Callable) -> None:
        self.name, self.size, self.fresh = name, size, fresh
        self.enc, self.dec, self.token_decoder = enc, dec, token_decoder


def _symato(name: str, d: dict) -> Entry:
    from symato.text.tokenizer import Tokenizer

    def fresh() -> Tokenizer:
        # Like loading sentencepiece's model, building the compiled decoder's tables
        # (once per instance) is set-up, not decoding; the encode caches stay empty.
        tok = Tokenizer.from_dict(d)
        tok.decode([])  # builds the compiled decoder
        return tok

    def per_token(tok: Tokenizer) -> Callable[[int], str]:
        stream = tok.stream_decoder()
        return lambda t: stream.feed([t])

    size = Tokenizer.from_dict(d).vocab_size
    return Entry(name, size, fresh, Tokenizer.encode, Tokenizer.decode, per_token)


def build_all(train: list[str], work: Path, sizes: list[int], n: int) -> list[Entry]:
    """Every tokenizer, built from the training documents only."""
    import pandas as pd

    from symato.text.vocab import build_vocab

    text = "\n".join(train)
    syllable_stats(text, work / "stats")
    files = [work / "train.parquet"]
    pd.DataFrame({"text": train}).to_parquet(files[0])
    tables = {"syms": work / "stats" / "syms.parquet",
              "syllables": work / "stats" / "syllables.parquet"}
    made = [_symato("symato", build_vocab("symato", syms=tables["syms"]).to_dict()),
            _symato(f"symato+{n}", build_vocab(f"symato+{n}", **tables).to_dict())]
    for size in sizes:
        for kind in ("bpe", "words"):
            made.append(_symato(f"symato-{kind}{size}", build_vocab(
                f"symato-{kind}{size}", syms=tables["syms"], texts=files).to_dict()))
        for model_type in ("bpe", "unigram"):
            sp = build_vocab("sentencepiece", texts=files, size=size,
                             sp_model_type=model_type).codec.sp
            label = f"sentencepiece {'BPE' if model_type == 'bpe' else 'Unigram'} {size}"
            made.append(Entry(label, sp.get_piece_size(), lambda sp=sp: sp,
                              lambda t, s: t.encode(s), lambda t, i: t.decode(i),
                              lambda t: lambda i: t.decode([i])))
        try:
            from tokenizers import ByteLevelBPETokenizer
        except ImportError:
            continue
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(text.split("\n"), vocab_size=size, show_progress=False)
        made.append(Entry(f"tokenizers byte-level BPE {size}", bpe.get_vocab_size(),
                          lambda bpe=bpe: bpe, lambda t, s: t.encode(s).ids,
                          lambda t, i: t.decode(i), lambda t: lambda i: t.decode([i])))
    return made


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _run_once(e: Entry, docs: list[str], lines: list[str]) -> dict[str, float]:
    """Seconds of each measurement for one fresh instance of one tokenizer."""
    tok, enc, dec = e.fresh(), e.enc, e.dec
    ids: list[list[int]] = []
    got = {"cold": _time(lambda: ids.extend(enc(tok, d) for d in docs)),
           "warm": _time(lambda: [enc(tok, d) for d in docs])}
    out: list[str] = []
    got["dec_doc"] = _time(lambda: out.extend(dec(tok, i) for i in ids))
    if e.name.startswith(("symato", "sentencepiece")) and out != docs:
        raise SystemExit(f"{e.name}: decode(encode(text)) != text")
    tok = e.fresh()
    line_ids: list[list[int]] = []
    got["enc_line"] = _time(lambda: line_ids.extend(enc(tok, ln) for ln in lines))
    got["dec_line"] = _time(lambda: [dec(tok, i) for i in line_ids])
    flat = [t for i in line_ids for t in i]
    step = e.token_decoder(tok)
    got["dec_token"] = _time(lambda: [step(t) for t in flat]) / len(flat)
    got.update(tokens=sum(map(len, ids)), line_tokens=len(flat), size=e.size)
    return got


def measure(made: list[Entry], docs: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Best-of-``repeat`` seconds per measurement (runs interleaved), plus token counts."""
    lines = [ln for d in docs for ln in d.split("\n") if ln]
    res: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for e in made:
            got = _run_once(e, docs, lines)
            best = res.setdefault(e.name, got)
            for key in ("cold", "warm", "enc_line", "dec_doc", "dec_line", "dec_token"):
                best[key] = min(best[key], got[key])
    return res


def micro(docs: list[str]) -> dict[str, float]:
    """Steadier numbers for a before/after comparison of two checkouts (run this in each,
    alternately): symato on the first 3,000 lines, encoding every line with a fresh
    tokenizer (cold, best of 4) and again (warm, best of 15), and the stream decoder's
    ``feed([id])`` over 30,000 ids (best of 15, microseconds per id)."""
    from symato.text.tokenizer import Tokenizer

    lines = [ln for d in docs for ln in d.split("\n") if ln][:3000]
    d = Tokenizer.default().to_dict()
    tok = Tokenizer.from_dict(d)
    flat = [i for ln in lines for i in tok.encode(ln)][:30000]
    tok.decode([])

    def best(fn: Callable[[], object], n: int = 15) -> float:
        return min(_time(fn) for _ in range(n))

    def cold() -> float:
        fresh = Tokenizer.from_dict(d)
        return _time(lambda: [fresh.encode(ln) for ln in lines])

    def feed() -> None:
        f = tok.stream_decoder().feed
        for i in flat:
            f([i])

    return {"encode_cold_s": min(cold() for _ in range(4)),
            "encode_warm_s": best(lambda: [tok.encode(ln) for ln in lines]),
            "feed_us": best(feed) / len(flat) * 1e6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", help="UTF-8 text file (default: VLSP-2013 POS test sentences)")
    p.add_argument("--jsonl", help="JSON lines with a 'text' key (e.g. the demo corpus)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[2816, 11008],
                   help="vocabulary sizes of symato-bpe, sentencepiece and tokenizers")
    p.add_argument("--syllables", type=int, default=8192, help="N of symato+N")
    p.add_argument("--doc-lines", type=int, default=50, help="lines per document (--text)")
    p.add_argument("--markdown", action="store_true", help="print the docs/benchmarks.md table")
    p.add_argument("--micro", action="store_true",
                   help="only the before/after numbers of symato (JSON; see micro())")
    args = p.parse_args()

    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    docs, where = documents(args)
    if args.micro:
        print(json.dumps(micro(docs)))
        return 0
    held = docs[4::5]
    train = [d for i, d in enumerate(docs) if i % 5 != 4]
    nbytes = sum(len(d.encode("utf-8")) for d in held)
    nwords = sum(len(d.split()) for d in held)
    with tempfile.TemporaryDirectory() as tmp:
        made = build_all(train, Path(tmp), args.sizes, args.syllables)
        load = os.getloadavg()[0]
        res = measure(made, held, args.repeat)
        load = max(load, os.getloadavg()[0])

    cpuinfo = Path("/proc/cpuinfo").read_text().split("\n")
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
                 platform.processor())
    train_mb = sum(len(d.encode("utf-8")) for d in train) / 1e6
    from symato.text.tokenizer import Tokenizer

    decoder = Tokenizer.default().decoder  # $SYMATO_DECODER=python measures Python
    print(f"text: {where}; built from {len(train)} documents ({train_mb:.3f} MB), measured on "
          f"{len(held)} held-out documents ({nbytes / 1e6:.3f} MB, {nwords} words); one core of "
          f"{model}; Python {platform.python_version()}; symato decoder {decoder!r}; "
          f"best of {args.repeat}; load average up to {load:.1f} on {os.cpu_count()} CPUs")
    print("\n| tokenizer | ids | tokens/word | tokens/byte | encode doc MB/s (cold) | "
          "encode doc MB/s (warm: same text again) | encode line MB/s | decode doc MB/s | "
          "decode line MB/s | decode token µs/call |")
    print("|" + " --- |" * 10)
    mb = nbytes / 1e6
    for name, r in res.items():
        print(f"| {name} | {int(r['size'])} | {r['tokens'] / nwords:.3f} | "
              f"{r['tokens'] / nbytes:.3f} | {mb / r['cold']:.2f} | {mb / r['warm']:.2f} | "
              f"{mb / r['enc_line']:.2f} | {mb / r['dec_doc']:.2f} | {mb / r['dec_line']:.2f} | "
              f"{r['dec_token'] * 1e6:.2f} |")
    print()
    for size in args.sizes:
        sp = res[f"sentencepiece BPE {size}"]
        peers = [n for n in res if n.startswith("symato")
                 and (n in (f"symato-bpe{size}", f"symato-words{size}") or res[n]["size"] == size
                      or (n == "symato" and size == args.sizes[0]))]
        for name in peers:
            r = res[name]
            print(f"{name} / sentencepiece BPE {size}: tokens/word "
                  f"{r['tokens'] / sp['tokens']:.2f}x; speed: encode doc "
                  f"{sp['cold'] / r['cold']:.2f}x (cold), line "
                  f"{sp['enc_line'] / r['enc_line']:.2f}x; "
                  f"decode doc {sp['dec_doc'] / r['dec_doc']:.2f}x, line "
                  f"{sp['dec_line'] / r['dec_line']:.2f}x, "
                  f"token {sp['dec_token'] / r['dec_token']:.2f}x (per-token text: "
                  f"{r['line_tokens'] / sp['line_tokens']:.2f}x the calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
