"""A run that starts from an existing model (settings ``init_from`` and its companions).

Why apart from the trainer: what a run starts from is decided once, before the first
step, and is the same whether the run trains on one process or many; the trainer only
calls :func:`start_from` where it builds its model and :func:`apply_train_layers`
before its optimizer (docs/transfer.md, "Starting a run from an existing model").

The source (``symato.interop.imports``) must be the run's architecture with the run's
shape; keys of the model's function that the run's settings do not fix (Llama's
``rope_base`` and ``norm_eps``, RWKV-7's LoRA rule, GPT's tied head) are taken from the
source, so its function is kept. Only the vocabulary may differ: when the source's
tokenizer is not the run's, the embedding and head rows go through the transplant
(``symato.interop.transplant``, method ``init_transplant``), and its report is written
to the run folder as ``transplant.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from symato.errors import SymatoError
from symato.run.settings import check_train_layers, setting

TRANSPLANT_FILE = "transplant.json"
# Model-config keys a run's settings fix: the source must equal the run's (shape) or
# they stay the run's (vocabulary, context, operator backend, init scale).
SHAPE_KEYS = ("n_layer", "n_embd", "n_head", "head_size")
RUN_KEYS = ("vocab_size", "ctx_len", "wkv_backend", "emb_init")
_BLOCK = re.compile(r"^(?:blocks|layers)\.(\d+)\.")


def adopt_config(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> dict[str, Any]:
    """The run's model config with the source's function keys: a shape key that differs
    is an error naming it; the run keeps its vocabulary, context and backend."""
    out = dict(ours)
    for key, value in theirs.items():
        if key in RUN_KEYS or ours.get(key, value) == value:
            continue
        if key in SHAPE_KEYS or key not in ours:
            raise SymatoError(f"{where}: model {key} is {value!r}, the run's is "
                              f"{ours.get(key)!r} (only the vocabulary may differ)")
        out[key] = value
    return out


def _same_vocab(vocab: dict[str, Any], source: Any) -> bool:
    """Whether the source tokenizer (a vocabulary dict, or a file holding one) is the
    run's own vocabulary."""
    if isinstance(source, dict):
        return source == vocab
    path = Path(source)
    if path.is_file() and path.suffix == ".json" and path.name != "tokenizer.json":
        from symato.io import read_json

        return read_json(path, "init_tokenizer") == vocab
    return False


def _source_vocab(spec: Any) -> Any:
    """A ``symato.interop.transplant.SourceVocab`` for the source tokenizer ``spec``."""
    from symato.interop.transplant import load_source, symato_source
    from symato.text.tokenizer import Tokenizer

    if isinstance(spec, dict):
        return symato_source(Tokenizer.from_dict(spec), "the source run's vocabulary")
    return load_source(spec)


def start_from(model: nn.Module, settings: dict[str, Any], vocab: dict[str, Any], out: Path,
               write: bool, log: Callable[[str], None]
               ) -> tuple[nn.Module, dict[str, Any], dict[str, Any] | None]:
    """``(model, record, optimizer state)``: the run's model holding the source's weights.

    ``vocab``: the run's vocabulary dict; ``write``: this process writes the transplant
    report into ``out``. The optimizer state comes back only with ``init_optimizer``
    (from a training state of this pipeline with the same vocabulary).
    """
    from symato.interop.imports import load, vocab_tensors
    from symato.interop.rwkv_pth import fit_state
    from symato.models import model_from_config
    from symato.models.registry import get_architecture

    spec = settings["init_from"]
    src = load(spec, ctx_len=settings["ctx_len"])
    where = f"init_from {src.path}"
    arch = get_architecture(settings["arch"]).name
    if src.arch != arch:
        raise SymatoError(f"{where}: the source is {src.arch}, the run is {arch}")
    ours = asdict(model.config)
    config = adopt_config(ours, src.config, where)
    if config != ours:
        model = model_from_config(arch, config)
    rows = vocab_tensors(arch, config)
    state = fit_state(src.state, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                      where, skip=tuple(rows))
    record = src.record()
    tokenizer = setting(settings, "init_tokenizer") or src.tokenizer
    size = config["vocab_size"]
    if tokenizer is None:
        raise SymatoError(f"{where}: the source carries no tokenizer; set init_tokenizer "
                          "(rwkv-world, a symato vocabulary file, a tokenizer.json)")
    if _same_vocab(vocab, tokenizer):
        for name in rows:
            if state[name].shape[0] != size:
                raise SymatoError(f"{where}: tensor {name!r} has {state[name].shape[0]} rows, "
                                  f"the run's vocabulary {size} ids")
        record["transplant"] = None
    else:
        record["transplant"] = _transplant(model, state, rows, tokenizer, vocab, settings,
                                           out if write else None, where)
        log(f"transplant from {record['transplant']['source']}: {record['transplant']['counts']}")
    optimizer = None
    if setting(settings, "init_optimizer"):
        if src.optimizer is None or record["transplant"] is not None:
            raise SymatoError(f"{where}: init_optimizer needs a training state of this pipeline "
                              "(checkpoint.pt or WSD branches/*.pt) with the run's vocabulary; "
                              "model.pt and other models hold no optimizer state")
        optimizer = src.optimizer
    model.load_state_dict(state, strict=True)
    log(f"started from {spec} ({src.kind}, sha256 {src.sha256[:12]})")
    return model, record, optimizer


def _transplant(model: nn.Module, state: dict[str, Any], rows: list[str], tokenizer: Any,
                vocab: dict[str, Any], settings: dict[str, Any], out: Path | None,
                where: str) -> dict[str, Any]:
    """Replace the vocabulary rows of ``state`` for the run's tokenizer; write the report.
    A tied head (one parameter for embedding and head) is transplanted once."""
    from symato.interop.transplant import transplant, write_report
    from symato.text.tokenizer import Tokenizer

    target = Tokenizer(vocab, source=settings["vocab_file"])
    if target.vocab_size != model.config.vocab_size:
        raise SymatoError(f"{where}: the run's vocabulary has {target.vocab_size} ids, its "
                          f"shards {model.config.vocab_size}")
    params = model.state_dict()
    first: dict[int, str] = {}
    for name in rows:
        first.setdefault(params[name].data_ptr(), name)
    matrices = {name: state[name] for name in first.values()}
    new, report = transplant(_source_vocab(tokenizer), target, matrices,
                             method=setting(settings, "init_transplant"),
                             seed=int(settings["seed"]))
    for name in rows:
        state[name] = new[first[params[name].data_ptr()]]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_report(report, out / TRANSPLANT_FILE)
    keys = ("copied", "composed", "random")
    return {"source": report["source"], "method": report["method"],
            "counts": {k: report[k] for k in keys}, "report": TRANSPLANT_FILE}


def layer_roles(model: nn.Module) -> dict[str, set[str]]:
    """Each parameter name's roles: ``embeddings`` (an ``nn.Embedding``), ``block:N``
    (inside block N) or ``head`` (everything after the blocks: final norm, output).
    A tied parameter has the roles of all its names."""
    embedding = {f"{m}.{p}" if m else p for m, mod in model.named_modules()
                 if isinstance(mod, nn.Embedding) for p, _ in mod.named_parameters()}
    roles: dict[str, set[str]] = {}
    for name, _ in model.named_parameters(remove_duplicate=False):
        block = _BLOCK.match(name)
        role = "embeddings" if name in embedding else (f"block:{block.group(1)}" if block
                                                        else "head")
        roles.setdefault(name, set()).add(role)
    return roles


def apply_train_layers(model: nn.Module, value: str, n_layer: int) -> int:
    """Freeze what ``train_layers`` leaves out (``requires_grad`` False: AdamW and its
    weight decay skip parameters without gradients); returns the trained parameters."""
    if value == "all":
        return sum(p.numel() for p in model.parameters())
    check_train_layers(value, n_layer, "train_layers")
    keep = {"head"}
    if value == "embeddings+head":
        keep.add("embeddings")
    elif value.startswith("last-"):
        keep |= {f"block:{i}" for i in range(n_layer - int(value[5:]), n_layer)}
    trained: dict[int, bool] = {}
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, roles in layer_roles(model).items():
        key = id(params[name])
        trained[key] = trained.get(key, False) or bool(roles & keep)
    for p in model.parameters():
        p.requires_grad_(trained[id(p)])
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
