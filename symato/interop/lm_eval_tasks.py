"""lm-evaluation-harness task files over the project's held-out text:
``symato lm-eval tasks --val results/clean/val --out TASKDIR``.

Why these tasks: an exported model (``symato export --format hf``) is evaluated by the
field's harness on the same text the pipeline evaluates on, the cleaned validation split
(``results/clean/val/*.parquet``: the documents ``symato tokenize`` turned into the val
token shards that ``symato evaluate`` reads), so the harness's numbers can be set beside
``runs.csv``:

- ``symato_vi_ppl``: Vietnamese perplexity. ``output_type: loglikelihood_rolling`` over
  whole documents; ``bits_per_byte`` divides the summed NLL by the documents' UTF-8 bytes,
  exactly the bytes the shard manifest counts (``len(text.encode("utf-8"))``), so it is the
  pipeline's ``bits_per_byte`` up to how each reads context (docs/export.md).
- ``symato_vi_restore``: diacritic restoration as a choice. Each item is one held-out
  sentence and ``choices - 1`` mark variants of it: the same sentence with other legal
  vowel marks / tones on one to three of its syllables (``symato.text.syllable``'s
  inventory: every variant is written in legal syllables, and has the original's letters
  once stripped of marks). The model must give the correctly marked sentence the highest
  likelihood (``acc``; ``acc_norm`` per byte).

The folder holds one YAML per task (for ``--include_path``), one JSONL of documents per
task, and ``manifest.json`` (source files with their SHA-256, counts, seed), each written
atomically, the manifest last. The YAML names its JSONL by absolute path: lm-eval opens
``data_files`` relative to its working directory, not to the YAML.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.io import file_digest, write_json_atomic, write_text_atomic

PPL_TASK = "symato_vi_ppl"
RESTORE_TASK = "symato_vi_restore"
TASKS = (PPL_TASK, RESTORE_TASK)
TAG = "symato_vi"  # `--tasks symato_vi` runs both
FORMAT_VERSION = 1
# A sentence: a line, cut after . ! ? or … followed by white space.
_SENTENCE_CUT = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")


@dataclass(frozen=True)
class TaskOptions:
    """What decides the written tasks besides the source text (all recorded in the manifest)."""

    choices: int = 4  # answers per restoration item: the correct sentence + choices - 1 variants
    restore_items: int = 500  # restoration items (held-out sentences), at most
    max_docs: int | None = None  # perplexity documents, at most (None: every document)
    min_syllables: int = 4  # a restoration sentence has this many syllables ...
    max_syllables: int = 40  # ... up to this many
    # ... and at most this many UTF-8 bytes: each choice must fit the model's window (the
    # harness refuses a longer one), and the smallest windows of a grid are 128 tokens,
    # at most 128 bytes for the bytes tokenizer and about 80 for symato's.
    max_bytes: int = 120
    max_changed: int = 3  # syllables a variant re-marks, at most
    seed: int = 0


# ----------------------------------------------------------------------------- sources
def val_files(paths: Iterable[str | Path]) -> list[Path]:
    """The cleaned validation parquet files named by ``paths`` (files or folders of
    ``*.parquet``), sorted by name: the order ``symato tokenize manifest`` lists shards."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.parquet"))
            if not found:
                raise SymatoError(f"lm-eval tasks: {p} holds no *.parquet validation files")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise SymatoError(f"lm-eval tasks: validation file or folder {p} not found")
    return sorted(set(out), key=lambda f: (f.name, str(f)))


def read_documents(files: list[Path]) -> Iterator[tuple[str, str]]:
    """(doc_id, text) of every document of ``files``, in order (empty texts skipped: the
    harness cannot score them and they hold no bytes)."""
    from symato.data.tokenize import read_clean_docs

    for f in files:
        for doc_id, text in read_clean_docs(f):
            if text:
                yield doc_id, text


# ----------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class _Word:
    """One markable syllable of a sentence: where it is and how to rewrite it."""

    start: int
    end: int
    sym: str
    marktone: int
    case: str
    style: str
    legal: tuple[int, ...]


def markable_words(sentence: str) -> tuple[list[_Word], int]:
    """(syllables whose marks can change, number of Vietnamese syllables) of ``sentence``.

    A syllable is markable when it is written exactly as its canonical form in one tone
    style (so rewriting it changes nothing but its mark/tone) and its sym has more than
    one legal marktone.
    """
    from symato.text.syllable import LETTER_RUN, canonical, legal_marktones, parse

    words, n_syl = [], 0
    for m in LETTER_RUN.finditer(sentence):
        syl = parse(m.group())
        if syl is None:
            continue
        n_syl += 1
        style = next((s for s in ("new", "old") if canonical(m.group(), s)), None)
        legal = legal_marktones(syl.sym)
        if style is not None and len(legal) > 1:
            words.append(_Word(m.start(), m.end(), syl.sym, syl.marktone, syl.case, style, legal))
    return words, n_syl


def _rewrite(sentence: str, changes: dict[int, tuple[_Word, int]]) -> str:
    """``sentence`` with the words at the given starts re-marked (start -> (word, marktone))."""
    from symato.text.syllable import compose

    parts, pos = [], 0
    for start in sorted(changes):
        word, mt = changes[start]
        parts += [sentence[pos:start], compose(word.sym, mt // 6, mt % 6, word.case, word.style)]
        pos = word.end
    return "".join(parts) + sentence[pos:]


def mark_variants(sentence: str, n: int, rng: random.Random, max_changed: int = 3
                  ) -> list[str] | None:
    """``n`` distinct variants of ``sentence``, each with other legal marks on 1 to
    ``max_changed`` of its markable syllables; None when it has too few to make ``n``."""
    words, _ = markable_words(sentence)
    if not words:
        return None
    out: list[str] = []
    for _ in range(50 * n):  # random draws; a sentence with few options may give up
        k = rng.randint(1, min(max_changed, len(words)))
        picked = rng.sample(words, k)
        changes = {w.start: (w, rng.choice([m for m in w.legal if m != w.marktone]))
                   for w in picked}
        text = _rewrite(sentence, changes)
        if text != sentence and text not in out:
            out.append(text)
            if len(out) == n:
                return out
    return None


def sentences(text: str) -> list[str]:
    """The sentences of a document: lines, cut after sentence-final punctuation."""
    return [s.strip() for s in _SENTENCE_CUT.split(text) if s and s.strip()]


def restore_items(docs: Iterable[tuple[str, str]], opts: TaskOptions) -> list[dict[str, Any]]:
    """Restoration items from held-out documents, deterministic for ``opts.seed``.

    Each item: ``id`` (doc id and sentence number), ``choices`` (the correct sentence at
    a seeded position among its variants), ``gold`` (that position). Each sentence draws
    from its own generator seeded by (seed, doc id, sentence number), so an item does not
    change when other documents are added or removed.
    """
    if opts.choices < 2:
        raise SymatoError(f"lm-eval tasks: --choices must be at least 2, got {opts.choices}")
    items: list[dict[str, Any]] = []
    for doc_id, text in docs:
        for k, sent in enumerate(sentences(text)):
            if len(items) >= opts.restore_items:
                return items
            _, n_syl = markable_words(sent)
            if not (opts.min_syllables <= n_syl <= opts.max_syllables
                    and len(sent.encode("utf-8")) <= opts.max_bytes):
                continue
            rng = random.Random(f"{opts.seed}:{doc_id}:{k}")
            variants = mark_variants(sent, opts.choices - 1, rng, opts.max_changed)
            if variants is None:
                continue
            gold = rng.randrange(opts.choices)
            choices = [*variants[:gold], sent, *variants[gold:]]
            items.append({"id": f"{doc_id}#{k}", "choices": choices, "gold": gold})
    return items


# ----------------------------------------------------------------------------- task files
def ppl_config(data: Path) -> dict[str, Any]:
    """The ``symato_vi_ppl`` task: rolling log-likelihood of whole documents."""
    return {
        "task": PPL_TASK,
        "tag": [TAG],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "text",  # a column name: the text exactly, no template rendering
        "metric_list": [{"metric": m, "aggregation": agg, "higher_is_better": False}
                        for m, agg in (("word_perplexity", "weighted_perplexity"),
                                       ("byte_perplexity", "weighted_perplexity"),
                                       ("bits_per_byte", "bits_per_byte"))],
        "metadata": {"version": FORMAT_VERSION},
    }


def restore_config(data: Path) -> dict[str, Any]:
    """The ``symato_vi_restore`` task: pick the correctly marked sentence.

    The context is empty (the harness then scores each choice after the model's prefix
    token, ``<|endoftext|>``: a sentence from a document start) and ``target_delimiter``
    is empty so nothing is put before a choice.
    """
    return {
        "task": RESTORE_TASK,
        "tag": [TAG],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": "",
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                        for m in ("acc", "acc_norm")],
        "metadata": {"version": FORMAT_VERSION},
    }


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _yaml(config: dict[str, Any]) -> str:
    import yaml

    head = "# Written by `symato lm-eval tasks`: regenerate it rather than editing it.\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def write_tasks(val: Iterable[str | Path], out: Path, opts: TaskOptions | None = None
                ) -> dict[str, Any]:
    """Write both tasks into ``out`` from the validation files ``val``; return the manifest."""
    opts = opts or TaskOptions()
    files = val_files(val)
    docs = list(read_documents(files))
    if not docs:
        raise SymatoError(f"lm-eval tasks: no non-empty documents in {[str(f) for f in files]}")
    ppl_docs = docs if opts.max_docs is None else docs[: opts.max_docs]
    items = restore_items(docs, opts)
    if not items:
        raise SymatoError("lm-eval tasks: no validation sentence gave a restoration item "
                          f"({opts.min_syllables}-{opts.max_syllables} syllables, "
                          f"at most {opts.max_bytes} bytes, "
                          f"{opts.choices - 1} distinct variants)")
    out = Path(out)
    ppl_data, restore_data = out / f"{PPL_TASK}.jsonl", out / f"{RESTORE_TASK}.jsonl"
    write_text_atomic(ppl_data, _jsonl({"doc_id": d, "text": t} for d, t in ppl_docs))
    write_text_atomic(restore_data, _jsonl(items))
    write_text_atomic(out / f"{PPL_TASK}.yaml", _yaml(ppl_config(ppl_data)))
    write_text_atomic(out / f"{RESTORE_TASK}.yaml", _yaml(restore_config(restore_data)))
    manifest = {
        "format_version": FORMAT_VERSION,
        "tasks": list(TASKS),
        "sources": [{"path": str(f.resolve()), "sha256": file_digest(f)} for f in files],
        "options": asdict(opts),
        PPL_TASK: {"data": ppl_data.name, "sha256": file_digest(ppl_data),
                   "documents": len(ppl_docs),
                   "bytes": sum(len(t.encode("utf-8")) for _, t in ppl_docs)},
        RESTORE_TASK: {"data": restore_data.name, "sha256": file_digest(restore_data),
                       "items": len(items), "choices": opts.choices},
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _data_file(config: Path) -> str | None:
    """The data file a task YAML names (None when it names none or cannot be read)."""
    import yaml

    try:
        doc = yaml.safe_load(config.read_text(encoding="utf-8"))
        return str(doc["dataset_kwargs"]["data_files"]["test"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def check_tasks(task_dir: Path) -> dict[str, Any]:
    """The manifest of a task folder whose data files are still the ones it lists.

    Why: the YAMLs name their data by absolute path, and a folder whose data changed or
    moved would make the harness score other text than the manifest describes.
    """
    from symato.io import read_json

    manifest = read_json(Path(task_dir) / "manifest.json", "lm-eval task manifest")
    for task in TASKS:
        entry = manifest.get(task)
        if not isinstance(entry, dict):
            raise SymatoError(f"{task_dir}/manifest.json has no {task!r} entry: rewrite the "
                              "folder with `symato lm-eval tasks`")
        data = Path(task_dir) / entry["data"]
        if not data.is_file() or file_digest(data) != entry["sha256"]:
            raise SymatoError(f"{data} is missing or differs from {task_dir}/manifest.json: "
                              "rewrite the folder with `symato lm-eval tasks`")
        config = Path(task_dir) / f"{task}.yaml"
        if _data_file(config) != str(data.resolve()):
            raise SymatoError(f"{config} names another data file than {data.resolve()} (the "
                              "folder was moved?): rewrite it with `symato lm-eval tasks`")
    return manifest


def main(argv: list[str]) -> int:
    """``symato lm-eval tasks``: write the task folder."""
    p = argparse.ArgumentParser(prog="symato lm-eval tasks", description=(
        "Write lm-evaluation-harness tasks (symato_vi_ppl, symato_vi_restore) over the "
        "cleaned validation text, for `lm_eval --include_path TASKDIR`."))
    p.add_argument("--val", required=True, action="append",
                   help="cleaned validation parquet file or folder (results/clean/val); "
                        "repeatable")
    p.add_argument("--out", required=True, type=Path, help="task folder to write")
    d = TaskOptions()
    p.add_argument("--choices", type=int, default=d.choices,
                   help="answers per restoration item (the correct one included)")
    p.add_argument("--restore-items", type=int, default=d.restore_items,
                   help="restoration items, at most")
    p.add_argument("--max-bytes", type=int, default=d.max_bytes,
                   help="longest restoration sentence in UTF-8 bytes (it must fit the "
                        "model's window in tokens)")
    p.add_argument("--max-docs", type=int, default=None,
                   help="perplexity documents, at most (default: all, as `symato evaluate`)")
    p.add_argument("--seed", type=int, default=d.seed)
    args = p.parse_args(argv)
    manifest = write_tasks(args.val, args.out, TaskOptions(
        choices=args.choices, restore_items=args.restore_items, max_docs=args.max_docs,
        max_bytes=args.max_bytes, seed=args.seed))
    print(f"symato lm-eval tasks: {args.out}: {manifest[PPL_TASK]['documents']} documents, "
          f"{manifest[RESTORE_TASK]['items']} restoration items")
    return 0
