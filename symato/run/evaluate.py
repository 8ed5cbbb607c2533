"""Held-out evaluation of one trained run: ``symato evaluate --run DIR``.

Why these numbers: runs with different tokenizers cannot be compared by loss per
token (their tokens differ), so the headline is **bits per UTF-8 byte** of the
validation text: the summed next-token NLL over the *whole* val split divided by
``ln 2 x`` the split's UTF-8 bytes (from the shard manifest). Every token of the split
but the very first is predicted once, including the end-of-text token that starts each
following document. Bits per syllable uses the manifest's syllable count the same way.

Every token is scored with context: the split is read in overlapping windows of
``ctx_len`` tokens that advance by ``window_stride x ctx_len`` (default half a window,
``TokenDataset.strided_batches``), each window scoring only the tokens the previous one
did not, so after the first window every prediction sees at least half a window of
context. With disjoint windows the first tokens of each window would be predicted almost
blind, and a window spans very different amounts of text per tokenizer (128 tokens are
128 bytes of text for ``bytes`` but about 590 for sentencepiece), which biases the
comparison. For models without a context limit (RWKV: ``max_context`` is None) the split
is also read as a stream with the recurrent state carried from token to token (their
natural use): ``bits_per_byte_stream``.

Diacritic restoration (symato tokenizers only): validation documents are decoded, their
Vietnamese syllables stripped of vowel marks and tones (``syllable.strip_marks``),
re-encoded with restoration slots (``restoration.prepare``) and filled greedily by the
model (``symato.run.restore.restore_ids``). A syllable counts as restored when its sym, marktone
and case equal the original's. The baseline picks, for every sym, the marktone that is
most frequent in the training statistics (``results/stats/syllables.parquet``).

Output: ``DIR/metrics.json`` (keys in ``METRIC_KEYS`` and a few more), with
``model_sha256``, the digest of the weights evaluated (``symato.run.provenance``). A model
whose weights are damaged or non-finite, whose shards changed since it was trained, or
whose metrics come out non-finite is an error naming the file, never a NaN in the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from symato.errors import SymatoError
from symato.io import non_finite_key, read_json, write_json_atomic
from symato.run import eager
from symato.run.evalgroup import group_document

METRIC_KEYS = (
    "bits_per_byte", "bits_per_syllable", "loss_nats_per_token", "params_total",
    "params_non_embedding", "train_tokens", "train_flops", "tokens_per_second", "samples",
    "restoration_accuracy", "restoration_baseline_accuracy", "restoration_syllables",
    "backend", "precision", "device_name",
)  # fmt: skip
# Copied from model.pt's meta: the operator backend training ran (cpu, cuda, torch, or
# none for an architecture without one), its arithmetic (fp32/bf16) and the device's name.
TRAINING_RECORD = ("backend", "precision", "device_name", "unique_tokens", "unique_bytes",
                   "epochs")


# ----------------------------------------------------------------------------- bits per byte
@torch.no_grad()
def split_nll(model: torch.nn.Module, dataset: Any, batch_size: int,
              stride: int | None = None) -> tuple[float, int]:
    """(summed NLL in nats, number of predicted tokens) over one whole split, read in
    windows advancing by ``stride`` tokens (None: disjoint windows)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for tokens, mask in dataset.strided_batches(batch_size, stride or dataset.ctx_len):
        t = torch.from_numpy(tokens).to(device)
        m = torch.from_numpy(mask).to(device)
        # Only the scored positions go through the head: with overlapping windows half
        # the positions are context only, and for the small models of a scaling grid the
        # (V x C) head is most of the forward pass (model.features / model.project).
        logits = model.project(model.features(t[:, :-1])[m])
        nll = F.cross_entropy(logits.float(), t[:, 1:][m], reduction="none")
        total += float(nll.double().sum())
        count += int(m.sum())
    return total, count


def window_stride(ctx_len: int, share: float) -> int:
    """Tokens a window advances: ``share`` of ``ctx_len``, at least 1."""
    if not 0.0 < share <= 1.0:
        raise SymatoError(f"evaluate: window stride must be in (0, 1], got {share}")
    return max(1, round(ctx_len * share))


@torch.no_grad()
def stream_nll(model: torch.nn.Module, dataset: Any, segments: int,
               chunk: int = 1024) -> tuple[float, int]:
    """(summed NLL, predicted tokens) reading the split as a stream with the state carried.

    The stream is cut into at most ``segments`` contiguous pieces, each starting at a
    document boundary (an end-of-text token), each read from an empty state in chunks
    of ``chunk`` tokens: within a piece every token sees everything before it.
    ``segments=1`` is the literal stream. Each piece's first token is context only
    (``count`` says how many were predicted), so the stream predicts ``segments - 1``
    end-of-text tokens fewer than the windows do.
    """
    device = next(model.parameters()).device
    bounds = _segment_bounds(dataset, segments)
    total, count = 0.0, 0
    for start, end in bounds:  # one piece at a time: pieces differ in length
        state, prev = None, None
        for lo in range(start, end, chunk):
            ids = torch.from_numpy(dataset.window(lo, min(chunk, end - lo))).to(device)[None]
            logits, state = model.forward_step(ids, state)
            logits = logits[0].float()
            if prev is not None:  # the previous chunk's last prediction
                total += float(F.cross_entropy(prev[None], ids[0, :1]))
                count += 1
            if ids.shape[1] > 1:
                nll = F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
                total += float(nll.double().sum())
                count += ids.shape[1] - 1
            prev = logits[-1]
    return total, count


def _segment_bounds(dataset: Any, segments: int) -> list[tuple[int, int]]:
    """[start, end) of up to ``segments`` stream pieces, cut at end-of-text positions."""
    n = dataset.num_tokens
    if segments <= 1:
        return [(0, n)]
    stream = dataset.window(0, n)
    eot = int(stream[0])  # every document row starts with the end-of-text id
    cuts = np.flatnonzero(stream == eot)
    wanted = [n * k // segments for k in range(1, segments)]
    chosen = sorted({int(cuts[np.searchsorted(cuts, w).clip(0, len(cuts) - 1)]) for w in wanted})
    edges = [0, *[c for c in chosen if 0 < c < n], n]
    return [(a, b) for a, b in itertools.pairwise(edges) if b - a > 1]


def compression_metrics(nll: float, count: int, manifest: dict[str, Any]) -> dict[str, Any]:
    """Loss per token, bits per byte and per syllable from a split's summed NLL."""
    n_bytes, n_syl = int(manifest.get("bytes", 0)), int(manifest.get("syllables", 0))
    if count < 1:
        raise SymatoError("evaluation: the validation split has no tokens to predict")
    if n_bytes < 1:
        raise SymatoError("evaluation: the shard manifest's val split has no 'bytes' count")
    return {
        "loss_nats_per_token": nll / count,
        "bits_per_byte": nll / (math.log(2) * n_bytes),
        "bits_per_syllable": nll / (math.log(2) * n_syl) if n_syl else None,
        "val_tokens_predicted": count,
        "val_bytes": n_bytes,
        "val_syllables": n_syl,
    }


# ----------------------------------------------------------------------------- restoration
# Byte tokens "\n" and " " (ids 10 and 32 in symato vocabularies): a stream cut right
# after one of them still decodes.
SAFE_CUT_IDS = np.array([10, 32])
def val_documents(dataset: Any, eot_id: int, max_syllables: int, tokenizer: Any) -> list[str]:
    """Decoded texts of the first validation documents, about ``max_syllables`` syllables.

    A document cut by the token budget is decoded only up to its last newline or space
    byte token (a cut inside a syllable's tokens would not decode); the text is then cut
    at the word where the syllable budget is reached.
    """
    from symato.text.syllable import LETTER_RUN, parse

    budget = min(dataset.num_tokens, 8 * max_syllables + 4096)
    stream = dataset.window(0, budget)
    bounds = [int(i) for i in np.flatnonzero(stream == eot_id)] + [budget]
    docs, seen = [], 0
    for start, end in itertools.pairwise(bounds):
        if end == budget and end < dataset.num_tokens:  # cut off: end at a safe byte
            safe = np.flatnonzero(np.isin(stream[start + 1 : end], SAFE_CUT_IDS))
            if not len(safe):
                break
            end = start + 1 + int(safe[-1]) + 1
        text = tokenizer.decode(stream[start + 1 : end].tolist())
        for m in LETTER_RUN.finditer(text):
            if parse(m.group()) is not None:
                seen += 1
                if seen >= max_syllables:
                    docs.append(text[: m.end()])
                    return docs
        docs.append(text)
    return docs


def _syllables(text: str) -> list[Any]:
    """The parsed Vietnamese syllables of ``text`` in order; other words as None."""
    from symato.text.syllable import LETTER_RUN, parse

    return [parse(m.group()) for m in LETTER_RUN.finditer(text)]


def baseline_table(stats_path: Path) -> dict[str, int]:
    """sym -> its most frequent marktone in the training statistics."""
    import pandas as pd

    try:
        df = pd.read_parquet(stats_path, columns=["sym", "marktone", "count"])
    except (OSError, ValueError, KeyError) as exc:
        raise SymatoError(f"cannot read syllable statistics {stats_path}: {exc}") from None
    if df.empty:
        return {}
    grouped = df.groupby(["sym", "marktone"], as_index=False)["count"].sum()
    grouped = grouped.sort_values(["sym", "count", "marktone"], ascending=[True, False, True])
    best = grouped.drop_duplicates("sym")
    return {str(s): int(mt) for s, mt in zip(best["sym"], best["marktone"], strict=True)}


@dataclass(frozen=True)
class RestorationDoc:
    """One validation document laid out for restoration; the same for every model."""

    original: list[Any]  # its words parsed as syllables (None: not a syllable)
    ids: list[int]  # the stripped text's ids, a placeholder marktone per slot
    slots: list[Any]  # (position, allowed marktone ids) per slot
    wholes: list[dict[int, int]]  # per slot the candidates written as one id (symato+N)


def prepare_restoration(tokenizer: Any, docs: list[str]) -> list[RestorationDoc]:
    """Strip and lay out ``docs`` once, so a group of runs scores the same prepared input."""
    from symato.text.restoration import prepare, whole_choices
    from symato.text.syllable import strip_marks

    out = []
    for text in docs:
        ids, slots = prepare(strip_marks(text), tokenizer)
        out.append(RestorationDoc(_syllables(text), ids, slots,
                                  whole_choices(ids, slots, tokenizer)))
    return out


def restoration(model: Any, tokenizer: Any, docs: list[RestorationDoc],
                baseline: dict[str, int] | None) -> dict[str, Any]:
    """Restoration accuracy of ``model`` and of the baseline on ``docs``.

    With whole-syllable ids (symato+N) the model is scored two ways:
    ``restoration_accuracy`` lets a candidate be its whole id (P(whole | context)), and
    ``restoration_accuracy_split`` only asks for the marktone after a bare sym, which a
    model trained with ``split_syllables > 0`` has seen; without whole ids they are one.
    """
    out = _restoration_run(model, tokenizer, docs, baseline, wholes=True)
    has_wholes = bool(tokenizer.to_dict().get("syllables"))
    split = (_restoration_run(model, tokenizer, docs, None, wholes=False)
             if has_wholes else out)
    out["restoration_accuracy_split"] = split["restoration_accuracy"]
    return out


def _restoration_run(model: Any, tokenizer: Any, docs: list[RestorationDoc],
                     baseline: dict[str, int] | None, wholes: bool) -> dict[str, Any]:
    from symato.run.restore import restore_ids

    total = model_ok = base_ok = 0
    for doc in docs:
        restored_text = tokenizer.decode(restore_ids(
            model, doc.ids, doc.slots, tokenizer.eot_id, doc.wholes if wholes else None))
        restored = _syllables(restored_text)
        if len(restored) != len(doc.original):
            raise SymatoError(
                f"restoration changed the word count of a validation document "
                f"({len(doc.original)} -> {len(restored)}): {restored_text[:60]!r}"
            )
        for orig, new in zip(doc.original, restored, strict=True):
            if orig is None:
                continue
            total += 1
            model_ok += new is not None and (new.sym, new.marktone, new.case) == (
                orig.sym, orig.marktone, orig.case)  # fmt: skip
            if baseline is not None:
                base_ok += baseline.get(orig.sym, 0) == orig.marktone
    return {
        "restoration_syllables": total,
        "restoration_accuracy": model_ok / total if total else None,
        "restoration_baseline_accuracy": (base_ok / total if total else None)
        if baseline is not None else None,
    }  # fmt: skip


class SharedInputs:
    """What every run of an evaluation group reads the same: validation splits, the
    tokenizer, the restoration baseline and the prepared restoration documents.

    Why: a grid's runs of one tokenizer evaluate on the same text, and for the small
    models of a scaling grid, starting a process and preparing these inputs cost more
    than scoring one model (docs/benchmarks.md). Each is built on first use and kept
    for the life of the process; the numbers are those of evaluating each run alone.
    """

    def __init__(self, stats: str | None, restoration_syllables: int) -> None:
        self.stats, self.syllables = stats, restoration_syllables
        self._val: dict[tuple[str, int], Any] = {}
        self._tokenizers: dict[str, Any] = {}
        self._docs: dict[tuple[str, str, int], list[RestorationDoc]] = {}
        self._baseline: dict[str, int] | None = None
        self._shards: dict[str, str] = {}

    def shards_digest(self, shards_dir: str) -> str:
        """The content digest of a shard set (``symato.run.provenance.shards_digest``)."""
        from symato.run.provenance import shards_digest

        if str(shards_dir) not in self._shards:
            self._shards[str(shards_dir)] = shards_digest(shards_dir)
        return self._shards[str(shards_dir)]

    def val(self, shards_dir: str, ctx_len: int) -> Any:
        """The validation split of ``shards_dir`` in windows of ``ctx_len`` tokens."""
        from symato.data.loader import TokenDataset

        key = (str(shards_dir), int(ctx_len))
        if key not in self._val:
            self._val[key] = TokenDataset(shards_dir, "val", int(ctx_len))
        return self._val[key]

    def tokenizer(self, vocab: dict[str, Any]) -> Any:
        """The tokenizer of a model's saved vocabulary (one per distinct vocabulary)."""
        from symato.run.provenance import json_digest
        from symato.text.tokenizer import Tokenizer

        key = json_digest(vocab)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer.from_dict(vocab)
        return self._tokenizers[key]

    def baseline(self) -> dict[str, int] | None:
        """The most-frequent-marktone table (None without a statistics file)."""
        if self.stats and self._baseline is None:
            self._baseline = baseline_table(Path(self.stats))
        return self._baseline

    def restoration_docs(self, val: Any, tokenizer: Any) -> list[RestorationDoc]:
        """The prepared restoration documents of ``val`` for ``tokenizer``."""
        from symato.run.provenance import json_digest

        key = (str(val.shards_dir), json_digest(tokenizer.to_dict()), self.syllables)
        if key not in self._docs:
            texts = val_documents(val, tokenizer.eot_id, self.syllables, tokenizer)
            self._docs[key] = prepare_restoration(tokenizer, texts)
        return self._docs[key]


# ----------------------------------------------------------------------------- run
def evaluate_run(run_dir: Path, args: argparse.Namespace,
                 shared: SharedInputs | None = None) -> dict[str, Any]:
    """Every metric of one run folder (model.pt, settings.json); ``shared`` carries the
    inputs already read for other runs of the same evaluation."""
    from symato.run.checkpoint import load_model
    from symato.run.generate import resolve_device

    shared = shared or SharedInputs(args.stats, args.restoration_syllables)
    torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta = load_model(run_dir, device=resolve_device(device))
    eager.skip_custom_op_dynamo_guard()  # nothing here compiles (symato.run.eager)
    settings = meta.get("settings") or read_json(run_dir / "settings.json", "settings file")
    check_trained_on(run_dir, meta, settings["shards_dir"], shared)
    val = shared.val(settings["shards_dir"], int(settings["ctx_len"]))
    if val.vocab_size != model.config.vocab_size:
        raise SymatoError(f"{run_dir}/model.pt has vocab size {model.config.vocab_size} but "
                          f"{settings['shards_dir']} has {val.vocab_size}")
    stride = window_stride(val.ctx_len, args.window_stride)
    nll, count = split_nll(model, val, args.batch_size, stride)
    params = model.param_counts()
    metrics: dict[str, Any] = {
        "tokenizer": settings["tokenizer"],
        "run": settings["run"],
        "arch": settings["arch"],
        "n_layer": settings["n_layer"],
        "n_embd": settings["n_embd"],
        **compression_metrics(nll, count, val.manifest),
        "window_stride": stride,
        **stream_metrics(model, val, args.batch_size),
        "params_total": params["total"],
        "params_non_embedding": params["non_embedding"],
        "train_tokens": meta.get("train_tokens"),
        "train_flops": meta.get("train_flops"),
        "tokens_per_second": meta.get("tokens_per_second"),
        "train_steps": meta.get("step"),
        "model_sha256": meta.get("weights_sha256"),
        # what the training ran, so the results say it (None: a model from before the record)
        **{key: meta.get(key) for key in TRAINING_RECORD},
    }
    refuse_non_finite(metrics, run_dir)  # before the slower text metrics
    metrics.update(text_metrics(model, meta, val, args, shared))
    refuse_non_finite(metrics, run_dir)
    return metrics


def refuse_non_finite(metrics: dict[str, Any], run_dir: Path) -> None:
    """A NaN or infinite metric is an error naming the model, never a NaN in the JSON."""
    from symato.run.checkpoint import resolve_path

    bad = non_finite_key(metrics)
    if bad is not None:
        raise SymatoError(f"{resolve_path(run_dir)}: evaluation gave a non-finite number at "
                          f"{bad}; the model is numerically broken: retrain it")


def check_trained_on(run_dir: Path, meta: dict[str, Any], shards_dir: str,
                     shared: SharedInputs | None = None) -> None:
    """The shards to evaluate on are the ones the model was trained from (by digest).

    Why: a model evaluated on shards rebuilt since (another split, another vocabulary
    with reassigned ids) gives a number that describes neither. Models from before the
    digests were recorded are not checked.
    """
    shared = shared or SharedInputs(None, 0)
    recorded = (meta.get("inputs") or {}).get("shards")
    if recorded is not None and shared.shards_digest(shards_dir) != recorded:
        raise SymatoError(
            f"{run_dir}/model.pt was trained on other shards than {shards_dir} holds now "
            f"(content digest differs): it is stale; retrain it (snakemake reruns it)"
        )


def stream_metrics(model: Any, val: Any, segments: int) -> dict[str, Any]:
    """Bits per byte of the split read as a stream, for models without a context limit."""
    if model.max_context is not None:
        return {"bits_per_byte_stream": None, "stream_note": f"{type(model).__name__} has a "
                f"context limit of {model.max_context} tokens: no stream reading"}
    nll, count = stream_nll(model, val, segments)
    n_bytes = int(val.manifest.get("bytes", 0))
    return {"bits_per_byte_stream": nll / (math.log(2) * n_bytes) if n_bytes else None,
            "stream_tokens_predicted": count}


def text_metrics(model: Any, meta: dict[str, Any], val: Any,
                 args: argparse.Namespace, shared: SharedInputs) -> dict[str, Any]:
    """Samples and restoration: the parts that need the tokenizer."""
    from symato.run.generate import generate

    if not isinstance(meta.get("tokenizer"), dict):
        raise SymatoError("model.pt meta has no 'tokenizer' vocabulary dict")
    tokenizer = shared.tokenizer(meta["tokenizer"])
    samples = [
        {"prompt": p, "text": generate(model, tokenizer, p, max_new_tokens=args.sample_tokens,
                                       temperature=args.temperature, top_p=args.top_p,
                                       seed=args.seed + i)}
        for i, p in enumerate(args.prompt or [])
    ]
    out: dict[str, Any] = {"samples": samples}
    if not tokenizer.marktone_ids:
        return out | {
            "restoration_accuracy": None, "restoration_baseline_accuracy": None,
            "restoration_accuracy_split": None, "restoration_syllables": 0,
            "restoration_note": f"tokenizer {meta['settings']['tokenizer']!r} has no marktone "
                                "tokens: restoration needs a symato vocabulary",
        }  # fmt: skip
    if args.restoration_syllables == 0:
        return out | {"restoration_accuracy": None, "restoration_baseline_accuracy": None,
                      "restoration_accuracy_split": None, "restoration_syllables": 0,
                      "restoration_note": "disabled by config"}
    baseline = shared.baseline()
    out.update(restoration(model, tokenizer, shared.restoration_docs(val, tokenizer), baseline))
    if baseline is None:
        out["restoration_note"] = "no --stats file given: no baseline"
    return out


def evaluate_group(run_dirs: list[Path], args: argparse.Namespace
                   ) -> dict[str, dict[str, Any]]:
    """Each run's metrics, or the error that stopped its evaluation, by run folder.

    One run's failure (a stale or broken model) does not stop the others: it is recorded
    with its message, and the run's own metrics.json fails with it (``unpack_group``).
    Progress in runs goes to stderr (``symato.progress``) unless ``args.quiet``.
    """
    from symato.progress import Progress

    shared = SharedInputs(args.stats, args.restoration_syllables)
    out: dict[str, dict[str, Any]] = {}
    with Progress("symato evaluate", len(run_dirs), "runs",
                  quiet=getattr(args, "quiet", False)) as progress:
        for run_dir in run_dirs:
            progress.update(0, note=f"now {run_dir}")
            try:
                out[str(run_dir)] = {"metrics": evaluate_run(run_dir, args, shared)}
            except SymatoError as exc:
                out[str(run_dir)] = {"error": str(exc)}
                print(f"symato evaluate: {run_dir}: {exc}", file=sys.stderr)
            progress.update(1, note="")
    return out


def _parser() -> argparse.ArgumentParser:
    from symato.run.generate import finite_float

    p = argparse.ArgumentParser(prog="symato evaluate",
                                description="Evaluate trained runs into DIR/metrics.json.")
    p.add_argument("--run", required=True, action="append",
                   help="run folder with model.pt (repeatable: the runs share the inputs "
                        "they have in common, read once)")
    p.add_argument("--stats", help="syllables.parquet for the restoration baseline")
    p.add_argument("--batch-size", type=int, default=16,
                   help="validation windows per batch (and stream pieces read side by side)")
    p.add_argument("--window-stride", type=float, default=0.5,
                   help="share of ctx_len a validation window advances (1 = disjoint)")
    p.add_argument("--restoration-syllables", type=int, default=1500,
                   help="validation syllables to restore (0 = skip)")
    p.add_argument("--prompt", action="append", help="sample prompt (repeatable)")
    p.add_argument("--sample-tokens", type=int, default=48)
    p.add_argument("--temperature", type=finite_float(0.0), default=1.0)
    p.add_argument("--top-p", type=finite_float(0.0, 1.0), default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.add_argument("--out", help="output file of a single --run (default DIR/metrics.json)")
    p.add_argument("--group-out", help="write every run's metrics (or its error) into this "
                                       "one file instead of each DIR/metrics.json")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str]) -> int:
    """``symato evaluate --run DIR [--run DIR ...]``: write each DIR/metrics.json (or one
    ``--group-out`` file); exit 1 when any run failed, after trying every run."""
    args = _parser().parse_args(argv)
    runs = [Path(r) for r in args.run]
    if args.out and (len(runs) > 1 or args.group_out):
        raise SymatoError("evaluate: --out names the file of a single --run; with several "
                          "runs give none (each DIR/metrics.json) or --group-out")
    results = evaluate_group(runs, args)
    if args.group_out:
        write_json_atomic(Path(args.group_out), group_document(results))
        return 0
    for run_dir in runs:
        entry = results[str(run_dir)]
        if "metrics" in entry:
            write_json_atomic(Path(args.out) if args.out else run_dir / "metrics.json",
                              entry["metrics"])
    if len(runs) == 1 and "error" in results[str(runs[0])]:
        raise SymatoError(results[str(runs[0])]["error"])
    return 0 if all("metrics" in e for e in results.values()) else 1
