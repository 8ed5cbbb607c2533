"""``symato export --format hf``: a trained run as a folder ``transformers`` loads.

Why: the field shares and evaluates models through the Hugging Face format
(``AutoModelForCausalLM.from_pretrained``, the Hub, lm-evaluation-harness). The folder:

* ``model.safetensors``: the weights renamed and reshaped by ``symato.interop.weights``
  (the one mapping both ways; safetensors because loading it cannot run code);
* ``config.json``: the ``transformers`` class and its shape; ``bos``/``eos``/``pad`` are
  the tokenizer's ``<|endoftext|>`` (every training document starts after one and ends
  before the next);
* ``generation_config.json``: the same ids, so ``generate`` stops at a document's end;
* the tokenizer files (``symato.interop.hf_tokenizer.save_hf_tokenizer``), with
  ``model_max_length`` = the training window;
* ``README.md``: the model card (``model_card``): what the model is, how it was trained
  and evaluated, the data's licences, provenance.

The folder is written beside ``out_dir`` under a temporary name and renamed into place,
so a failed export leaves nothing half-written (an earlier export there is replaced).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from symato.errors import SymatoError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CARD = "README.md"


def export_hf(ckpt: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
              dtype: str = "fp32", tokenizer: bool = True,
              vocab: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write checkpoint ``ckpt`` (file or run folder) as a ``transformers`` folder.

    ``tokenizer`` False leaves the tokenizer files out (model-only tests; the ids in the
    configs still come from the checkpoint's vocabulary). ``vocab``: the vocabulary file
    to use instead of the copy in the checkpoint (it must be the same vocabulary).
    Returns what was written (architecture, class, tensors, parameters, tokenizer).
    """
    from symato.interop.deps import require
    from symato.interop.support import hf_blocker
    from symato.interop.weights import mapping_for, to_hf
    from symato.models import architecture_of, config_dict
    from symato.run.checkpoint import load_model, resolve_path

    if dtype not in DTYPES:
        raise SymatoError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    require("transformers")  # before any work: a missing extra is the first thing said
    require("safetensors.torch")
    model, meta = load_model(ckpt)
    arch = architecture_of(model)
    mapping = mapping_for(arch)  # an architecture without a class fails before any work
    config = config_dict(model)
    blocker = hf_blocker(arch, int(config["n_layer"]))
    if blocker:
        raise SymatoError(f"{resolve_path(ckpt)}: cannot be exported to transformers: {blocker}")
    hf_state, hf_config = to_hf(arch, config, model.state_dict(), DTYPES[dtype])
    out = Path(out_dir)
    with _vocab_file(ckpt, meta, vocab) as vocab_path, _staging(out) as tmp:
        eot = _eot_id(vocab_path, config["vocab_size"], str(resolve_path(ckpt)))
        tok_info = None
        if tokenizer:
            from symato.interop.hf_tokenizer import save_hf_tokenizer

            tok_info = save_hf_tokenizer(vocab_path, tmp, model_max_length=config["ctx_len"])
            if int(tok_info["eot_id"]) != eot:
                raise SymatoError(f"the transformers tokenizer's <|endoftext|> id "
                                  f"{tok_info['eot_id']} is not symato's {eot}")
        _write_model(tmp, hf_state, hf_config, eot, DTYPES[dtype])
        info = {
            "arch": arch, "hf_class": mapping.hf_class, "dtype": dtype,
            "tensors": len(hf_state), "params": model.param_counts(), "eot_id": eot,
            "tokenizer": tok_info, "out": str(out),
        }
        card = model_card(resolve_path(ckpt), meta, config, info,
                          require("transformers").__version__)
        (tmp / CARD).write_text(card, encoding="utf-8")
    return info


def _write_model(folder: Path, hf_state: dict[str, torch.Tensor], hf_config: dict[str, Any],
                 eot: int, dtype: torch.dtype) -> None:
    """``config.json``, ``generation_config.json`` and ``model.safetensors`` into ``folder``;
    ``<|endoftext|>`` is bos, eos and pad (documents start after one, end before the next)."""
    from symato.interop.deps import require

    transformers = require("transformers")
    ids = {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot}
    transformers.AutoConfig.for_model(**hf_config, **ids, dtype=dtype).save_pretrained(str(folder))
    transformers.GenerationConfig(**ids).save_pretrained(str(folder))
    require("safetensors.torch").save_file(hf_state, str(folder / "model.safetensors"),
                                           metadata={"format": "pt"})


@contextmanager
def _vocab_file(ckpt: str | os.PathLike[str], meta: dict[str, Any],
                vocab: str | os.PathLike[str] | None) -> Iterator[Path]:
    """The vocabulary file of the export: ``vocab`` (checked to be the model's own), else
    the checkpoint's copy (meta ``tokenizer``) written to a temporary file."""
    from symato.run.checkpoint import resolve_path
    from symato.run.generate import check_vocab_is_models

    where = str(resolve_path(ckpt))
    if vocab is not None:
        check_vocab_is_models(str(vocab), meta, where)
        yield Path(vocab)
        return
    if not isinstance(meta.get("tokenizer"), dict):
        raise SymatoError(f"{where}: no 'tokenizer' in meta; pass --vocab FILE")
    with tempfile.TemporaryDirectory(prefix="symato-export-") as d:
        path = Path(d) / "vocab.json"
        path.write_text(json.dumps(meta["tokenizer"], ensure_ascii=False), encoding="utf-8")
        yield path


def _eot_id(vocab_path: Path, vocab_size: int, where: str) -> int:
    """The ``<|endoftext|>`` id of a symato vocabulary file, checked to be a model id."""
    from symato.text.tokenizer import Tokenizer

    eot = Tokenizer.from_file(str(vocab_path)).eot_id
    if not 0 <= eot < vocab_size:
        raise SymatoError(f"{where}: <|endoftext|> id {eot} is outside the model's "
                          f"{vocab_size} ids")
    return eot


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed onto it when the block succeeds.

    ``out`` may be missing, empty, or an earlier export (it has a ``config.json``): that
    is replaced; any other existing path is refused rather than deleted.
    """
    if out.exists() and not (out.is_dir() and (not any(out.iterdir())
                                               or (out / "config.json").exists())):
        raise SymatoError(f"--out {out} exists and is not an earlier export (no config.json); "
                          f"remove it or choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; an export is meant to be shared
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- model card


def model_card(ckpt_file: Path, meta: dict[str, Any], config: dict[str, Any],
               info: dict[str, Any], transformers_version: str) -> str:
    """The folder's ``README.md``: front matter the Hub reads, then one section each for
    the model, tokenizer, training, evaluation, settings, data licence and provenance."""
    from symato.models.registry import get_architecture

    run_dir = ckpt_file.parent
    settings = meta.get("settings") or {}
    name = meta.get("run") or run_dir.name
    entry = get_architecture(info["arch"])
    params = info["params"]
    tags = ["symato", info["arch"], "vietnamese"]
    lines = [
        "---", "language:", "- vi", "library_name: transformers",
        "pipeline_tag: text-generation", "tags:", *[f"- {t}" for t in tags], "---", "",
        f"# {name}", "",
        f"A Vietnamese language model trained with symato, exported for `transformers` as "
        f"`{info['hf_class']}`.", "",
        "## Model", "",
        f"- architecture: `{info['arch']}` ({entry.summary})",
        f"- transformers class: `{info['hf_class']}` (docs/export.md says why it is exact)",
        f"- layers {config['n_layer']}, width {config['n_embd']}"
        + (f", heads {config['n_head']}" if "n_head" in config else "")
        + f", vocabulary {config['vocab_size']}, training context {config['ctx_len']} tokens",
        f"- parameters: {params['total']:,} in all, {params['non_embedding']:,} without "
        f"the embedding",
        f"- weights: `{info['dtype']}`, {info['tensors']} tensors", "",
        *_tokenizer_section(meta, info),
        *_training_section(meta, settings),
        *_evaluation_section(run_dir),
        "## Settings", "", "The run's settings as the trainer read them:", "",
        "```json", json.dumps(settings, indent=1, sort_keys=True, ensure_ascii=False), "```", "",
        *_licence_section(settings),
        *_provenance_section(meta, info, transformers_version),
        *_use_section(info),
    ]
    return "\n".join(lines)


def _use_section(info: dict[str, Any]) -> list[str]:
    tok = info["tokenizer"]
    lines = ["## Use", "", "```python", "from transformers import AutoModelForCausalLM",
             "model = AutoModelForCausalLM.from_pretrained(PATH)"]
    if tok is not None:
        remote = ", trust_remote_code=True" if tok.get("remote_code") else ""
        lines += ["from transformers import AutoTokenizer",
                  f"tokenizer = AutoTokenizer.from_pretrained(PATH{remote})"]
    return [*lines, "```", ""]


def _tokenizer_section(meta: dict[str, Any], info: dict[str, Any]) -> list[str]:
    vocab = meta.get("tokenizer") or {}
    tok = info["tokenizer"]
    lines = ["## Tokenizer", "", f"- kind: `{vocab.get('kind', 'unknown')}`",
             f"- `<|endoftext|>` id {info['eot_id']} (document separator; bos, eos and pad)"]
    if tok is None:
        lines.append("- not included in this folder (exported without the tokenizer)")
    else:
        lines.append(f"- `{tok['tokenizer_class']}`"
                     + (" (remote code: load with `trust_remote_code=True`)"
                        if tok.get("remote_code") else " (no remote code)"))
    return [*lines, ""]


def _training_section(meta: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    rows = [("tokenizer", settings.get("tokenizer")),
            ("training text (token shards)", settings.get("shards_dir")),
            ("tokens", meta.get("train_tokens")), ("unique tokens", meta.get("unique_tokens")),
            ("epochs", meta.get("epochs")), ("steps", meta.get("step")),
            ("training FLOPs", meta.get("train_flops")),
            ("training seconds", meta.get("train_seconds"))]
    lines = ["## Training", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in rows if v is not None]
    return [*lines, ""]


def _evaluation_section(run_dir: Path) -> list[str]:
    """Held-out results: ``metrics.json`` (``symato evaluate``, via ``evaluate unpack``),
    else the last validation record of the training log ``metrics.jsonl``."""
    lines = ["## Evaluation", ""]
    final = run_dir / "metrics.json"
    if final.is_file():
        doc = json.loads(final.read_text(encoding="utf-8"))
        keys = ("bits_per_byte", "bits_per_syllable", "restoration_accuracy",
                "restoration_baseline_accuracy", "restoration_syllables", "val_bytes")
        lines.append("On the held-out split (`symato evaluate`):")
        lines += [f"- {k}: {_fmt(doc[k])}" for k in keys if doc.get(k) is not None]
        return [*lines, ""]
    log = run_dir / "metrics.jsonl"
    records = []
    if log.is_file():
        records = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()
                   if x.strip()]
    val = [r for r in records if r.get("val_bpb") is not None]
    if val:
        lines.append(f"- validation bits per byte during training (step {val[-1].get('step')}):"
                     f" {_fmt(val[-1]['val_bpb'])}; not evaluated by `symato evaluate`")
    else:
        lines.append("- not evaluated (no metrics.json or metrics.jsonl beside the checkpoint)")
    return [*lines, ""]


def _licence_section(settings: dict[str, Any]) -> list[str]:
    """The training data's sources and licences, from the workflow folder holding the
    run's shards (``results/shards/TOKENIZER``): the cleaning report names the sources,
    the demo corpus's manifest gives each of its inputs' licence (docs/data.md)."""
    lines = ["## Data licence", ""]
    root = _workflow_root(settings.get("shards_dir"))
    report = None if root is None else root / "results" / "clean" / "report.json"
    manifest = None if root is None else root / "resources" / "demo" / "manifest.json"
    if report is not None and report.is_file():
        sources = json.loads(report.read_text(encoding="utf-8")).get("sources") or {}
        lines.append("Corpus sources of the training text (`results/clean/report.json`): "
                     + ", ".join(f"`{name}`" for name in sorted(sources)) + ".")
    if manifest is not None and manifest.is_file():
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        lines += ["", "The demo corpus's inputs and their licences "
                  "(`resources/demo/manifest.json`):"]
        lines += [f"- {src.get('name')} {src.get('version')}: {src.get('license')}"
                  for src in doc.get("sources", []) if src.get("status") == "used"]
    lines += ["", "A source other than the demo corpus carries its own licence, which the "
              "run does not record: state it here before sharing this model."]
    return [*lines, ""]


def _workflow_root(shards_dir: Any) -> Path | None:
    """The workflow folder of shards in ``ROOT/results/shards/TOKENIZER``, else None."""
    if not isinstance(shards_dir, str):
        return None
    path = Path(shards_dir).resolve()
    if len(path.parents) > 2 and path.parent.name == "shards" and path.parents[1].name == "results":
        return path.parents[2]
    return None


def _provenance_section(meta: dict[str, Any], info: dict[str, Any],
                        transformers_version: str) -> list[str]:
    from symato import __version__

    rows = [("symato", f"{__version__} (commit {_commit()})"),
            ("weights sha256 (symato checkpoint)", meta.get("weights_sha256")),
            ("operator backend in training", meta.get("backend")),
            ("training precision", meta.get("precision")),
            ("device", meta.get("device_name") or meta.get("device")),
            ("torch", meta.get("torch_version")), ("transformers", transformers_version),
            ("export dtype", info["dtype"])]
    lines = ["## Provenance", ""]
    lines += [f"- {k}: {v}" for k, v in rows if v is not None]
    return [*lines, ""]


def _commit() -> str:
    """The git commit of the symato source in use, or ``unknown`` (an installed wheel:
    a checkout that merely contains the environment does not count)."""
    here = Path(__file__).resolve()

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(here.parent), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel"))
        if (top / "symato" / "interop" / here.name).resolve() != here:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + (" with local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
