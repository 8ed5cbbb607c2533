"""Read an existing model as symato weights: the source of a run's ``init_from``.

Why one module: a run may start from a run of this pipeline, a released RWKV ``.pth``
or a Hugging Face folder, and the trainer must not care which. Each kind is read by the
inverse of its export (``rwkv_pth.from_rwkv_state``; ``weights.from_hf``, the one
mapping both ways; ``symato.run.checkpoint`` for our own files) into one
``SourceModel``: architecture, config, float32 state dict, its tokenizer where the
source carries one, its optimizer state where it has one, and a content digest.

The setting's syntax (docs/transfer.md): ``run:PATH`` (a run folder, its ``model.pt``,
or a training state ``checkpoint.pt`` / WSD ``branches/*.pt``), ``rwkv-pth:PATH`` or
``hf:PATH``; a bare ``PATH`` is recognized: a folder with ``model.pt`` is a run, a
folder with ``config.json`` a Hugging Face checkpoint, a ``.pth`` file an RWKV
checkpoint, a ``.pt`` file ours.

Nothing here unpickles code: ``torch.load(weights_only=True)`` and safetensors only.
``check_header`` reads JSON only (a run's ``settings.json``, a Hugging Face
``config.json``) so a source that cannot fit a run is a config error before any job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symato.errors import SymatoError

if TYPE_CHECKING:
    from torch import Tensor

KINDS = ("run", "rwkv-pth", "hf")
TRAIN_STATE_FORMAT = "symato-train-state"  # symato.run.train.CHECKPOINT_FORMAT


@dataclass
class SourceModel:
    """An existing model as symato weights. ``tokenizer``: what its ids mean when the
    source says (a symato vocabulary dict, or the path of a ``tokenizer.json`` or
    vocabulary file), else None; ``optimizer``: AdamW state of a training state file."""

    spec: str
    kind: str
    path: Path
    arch: str
    config: dict[str, Any]
    state: dict[str, Tensor]
    sha256: str
    tokenizer: dict[str, Any] | Path | None = None
    optimizer: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What a run records of its source (checkpoint meta, docs/transfer.md)."""
        return {"from": self.spec, "kind": self.kind, "path": str(self.path),
                "sha256": self.sha256, "arch": self.arch}


# --------------------------------------------------------------------------- the syntax
def parse_spec(spec: str, where: str = "init_from") -> tuple[str, Path]:
    """``(kind, path)`` of an ``init_from`` value (prefix, or recognized from the path).

    A bare path that does not exist yet (a run the workflow has still to train) is a
    run when it ends in ``.pt`` or names a folder without a suffix."""
    head, sep, rest = spec.partition(":")
    if sep and head in KINDS:
        if not rest:
            raise SymatoError(f"{where}: {spec!r} names no path after {head}:")
        return head, Path(rest)
    if sep and len(head) > 1 and "/" not in head:
        raise SymatoError(f"{where}: {spec!r}: unknown prefix {head!r} (one of "
                          f"{[k + ':' for k in KINDS]}, or a bare path)")
    path = Path(spec)
    if path.is_dir():
        if (path / "model.pt").is_file() or (path / "settings.json").is_file():
            return "run", path
        if (path / "config.json").is_file():
            return "hf", path
        raise SymatoError(f"{where}: folder {path} holds neither model.pt (a run) nor "
                          "config.json (a Hugging Face checkpoint)")
    if path.suffix == ".pth":
        return "rwkv-pth", path
    if path.suffix in (".pt", ""):
        return "run", path
    raise SymatoError(f"{where}: cannot tell what {spec!r} is; write run:, rwkv-pth: or hf: "
                      "in front of the path")


def _run_file(path: Path) -> Path:
    """A run's weights: a folder's (or a not yet trained run's) ``model.pt``, or the file."""
    return path / "model.pt" if path.is_dir() or not path.suffix else path


def hf_files(folder: Path) -> list[Path]:
    """The files of a Hugging Face folder that make the model (and its tokenizer)."""
    names = ["config.json", "tokenizer.json", "tokenizer_config.json"]
    files = [folder / n for n in names if (folder / n).is_file()]
    return files + sorted(folder.glob("*.safetensors"))


def input_files(spec: str) -> list[Path]:
    """The files a run starting from ``spec`` reads (what the workflow waits for)."""
    kind, path = parse_spec(spec)
    if kind == "hf":
        return [path / "config.json"]
    return [_run_file(path) if kind == "run" else path]


def source_digest(spec: str) -> str:
    """SHA-256 of the source's content: its file, or a Hugging Face folder's files
    (names and digests), so a run's checkpoint is never resumed onto another source."""
    from symato.io import file_digest

    kind, path = parse_spec(spec)
    if kind != "hf":
        file = _run_file(path) if kind == "run" else path
        if not file.is_file():
            raise SymatoError(f"init_from {spec!r}: {file} does not exist")
        return file_digest(file)
    files = hf_files(path)
    if not (path / "config.json").is_file():
        raise SymatoError(f"init_from {spec!r}: {path / 'config.json'} does not exist")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{file_digest(f)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- headers
def check_header(settings: dict[str, Any], where: str) -> None:
    """Refuse, from JSON headers alone, a source whose architecture or shape cannot be
    the run's (``arch``, ``n_layer``, ``n_embd``, heads): a run's ``settings.json``, a
    Hugging Face ``config.json``. A source that does not exist yet (trained by the same
    workflow) or has no header (an RWKV ``.pth``: its tensors tell, at job start) passes."""
    spec = settings.get("init_from") or ""
    if not spec:
        return
    kind, path = parse_spec(spec, f"{where}: init_from")
    if kind == "run":
        header = (path if path.is_dir() else path.parent) / "settings.json"
        if header.is_file():
            _check_run_header(settings, header, where)
    elif kind == "hf" and (path / "config.json").is_file():
        _check_hf_header(settings, path / "config.json", where)


def _want(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's architecture and shape, as a source must have them."""
    from symato.models.registry import get_architecture

    entry = get_architecture(settings["arch"])
    want = {"arch": entry.name, "n_layer": settings["n_layer"], "n_embd": settings["n_embd"]}
    if entry.heads != "none":
        want["head_size"] = settings["head_size"]
    return want


def _mismatch(settings: dict[str, Any], have: dict[str, Any], file: Path, where: str) -> None:
    for key, value in _want(settings).items():
        if key in have and have[key] != value:
            raise SymatoError(f"{where}: init_from {file}: {key} is {have[key]!r}, the run's "
                              f"is {value!r} (only the vocabulary may differ; docs/transfer.md)")


def _check_run_header(settings: dict[str, Any], header: Path, where: str) -> None:
    from symato.io import read_json
    from symato.models.registry import get_architecture

    theirs = read_json(header, "source run settings")
    have = {k: theirs[k] for k in ("n_layer", "n_embd", "head_size") if k in theirs}
    if "arch" in theirs:
        have["arch"] = get_architecture(theirs["arch"], str(header)).name
    _mismatch(settings, have, header, where)


def _check_hf_header(settings: dict[str, Any], header: Path, where: str) -> None:
    """``config.json`` through the architecture's one mapping (symato.interop.weights)."""
    from symato.interop.weights import _get, mapping_for_hf
    from symato.io import read_json

    hf = read_json(header, "Hugging Face config")
    m = mapping_for_hf(hf if isinstance(hf, dict) else {})
    have: dict[str, Any] = {"arch": m.arch}
    for key in m.config:
        if key.ours in ("n_layer", "n_embd", "n_head"):
            try:
                have[key.ours] = _get(hf, key.theirs)
            except KeyError:
                continue
    if "n_head" in have and "n_embd" in have:
        have["head_size"] = have["n_embd"] // max(1, int(have.pop("n_head")))
    _mismatch(settings, have, header, where)


# --------------------------------------------------------------------------- loading
def load(spec: str, ctx_len: int = 1024) -> SourceModel:
    """Read the source ``spec`` (float32 weights on CPU). ``ctx_len``: the context of a
    source whose file does not say it (an RWKV ``.pth``)."""
    kind, path = parse_spec(spec)
    digest = source_digest(spec)
    if kind == "rwkv-pth":
        from symato.interop.rwkv_pth import from_rwkv_state, read_rwkv_pth

        arch, config, state = from_rwkv_state(read_rwkv_pth(path), str(path), ctx_len)
        return SourceModel(spec, kind, path, arch, config, state, digest)
    if kind == "hf":
        from symato.interop.weights import from_hf, read_hf_folder

        arch, config, state = from_hf(*read_hf_folder(path), where=str(path))
        tok = path / "tokenizer.json"
        return SourceModel(spec, kind, path, arch, config, state, digest,
                           tokenizer=tok if tok.is_file() else None)
    return _load_run(spec, _run_file(path), digest)


def _load_run(spec: str, file: Path, digest: str) -> SourceModel:
    """A ``model.pt`` (weights, config, vocabulary) or a training state (weights,
    optimizer, settings; its vocabulary file if it is still there)."""
    import torch

    from symato.run.checkpoint import check_payload, load_weights_only, verify_weights

    payload = load_weights_only(file, "init_from source")
    if isinstance(payload, dict) and payload.get("format") == TRAIN_STATE_FORMAT:
        return _from_train_state(spec, file, digest, payload)
    payload = check_payload(payload, str(file))
    verify_weights(payload, str(file))
    from symato.models.registry import get_architecture

    arch = get_architecture(payload["arch"], str(file)).name
    config = {**get_architecture(arch).saved_config_defaults, **payload["config"]}
    state = {k: v.to(torch.float32) for k, v in payload["state_dict"].items()}
    meta = payload["meta"]
    return SourceModel(spec, "run", file, arch, config, state, digest,
                       tokenizer=meta.get("tokenizer"), settings=meta.get("settings") or {})


def _from_train_state(spec: str, file: Path, digest: str, state: dict[str, Any]) -> SourceModel:
    """A resumable state (``checkpoint.pt``, WSD ``branches/*.pt``): the only source that
    holds an optimizer state. Its config is rebuilt from its settings."""
    import torch

    from symato.models.registry import get_architecture

    try:
        settings = json.loads(state["settings_json"])
        weights = state["model"]
        entry = get_architecture(settings["arch"], str(file))
        kwargs = entry.model_kwargs(settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise SymatoError(f"init_from: training state {file} lacks {exc}") from None
    rows = vocab_tensors(entry.name, kwargs)
    config = {"vocab_size": int(weights[rows[0]].shape[0]), **kwargs}
    vocab = Path(settings.get("vocab_file", ""))
    from symato.io import read_json

    tokenizer = read_json(vocab, "vocabulary file") if vocab.is_file() else None
    return SourceModel(spec, "run", file, entry.name, config,
                       {k: v.to(torch.float32) for k, v in weights.items()}, digest,
                       tokenizer=tokenizer, optimizer=state.get("optimizer"), settings=settings)


def vocab_tensors(arch: str, config: dict[str, Any]) -> list[str]:
    """The names of ``arch``'s tensors indexed by token id (embedding, head): those
    whose shape follows ``vocab_size`` (found by building two shapeless models)."""
    from symato.interop.rwkv_pth import expected_shapes

    a = expected_shapes(arch, {**config, "vocab_size": 3})
    b = expected_shapes(arch, {**config, "vocab_size": 5})
    return sorted(k for k in a if a[k] != b[k])
