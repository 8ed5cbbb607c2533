"""The trainer: ``symato train --settings FILE --out DIR [--resume auto]``.

Why it looks like this:

* A run is fully described by its settings.json (``symato.run.settings``), so
  the workflow can rerun exactly the runs whose settings changed.
* The batch of every step is drawn from one numpy ``Generator`` seeded by the run
  seed; the generator state *is* the data position. A checkpoint (``DIR/checkpoint.pt``)
  holds model, optimizer, schedule, torch and numpy RNG states and the metrics so far,
  so a resumed run continues bit for bit (on CPU) where an uninterrupted one would.
* Under ``torchrun`` every process draws the same global batch and trains on its slice;
  DDP averages the gradients, so N processes compute what one process computes with
  the same global batch (up to float summation order).
* A checkpoint is never reused across inputs: it records the digests of everything the
  run reads (``symato.run.provenance.run_inputs``: settings, vocabulary, shard manifest
  and shards), and ``--resume auto`` continues from it only when they all match;
  otherwise the run starts from scratch and its log says why. A finished run removes
  its checkpoint once ``model.pt`` is written, so rerunning a finished run
  (``snakemake --forcerun``, a deleted ``model.pt``) trains it anew.
* Failures are loud and recoverable: a corrupt checkpoint is a clear error, SIGTERM
  (Slurm preemption) saves a checkpoint and exits with ``EXIT_PREEMPTED`` (143) so the
  workflow retries and resumes, and a NaN/inf loss stops the run naming the step while
  the last good checkpoint stays untouched.
* The GPU stays busy: a step reads nothing back to the host. Losses and gradient norms
  add up on the device (``symato.run.stepstats``) and are read, with the NaN guard, only
  when a metrics line, a validation or a checkpoint is due; batches go through pinned
  memory asynchronously; AdamW is fused; validation is split across processes.
* A precision the device cannot honour is an error before training
  (``symato.run.precision``), and so is a compiled operator kernel that cannot be built
  (setting ``wkv_backend``; the slow PyTorch loop runs only by name); the model file
  records what ran: ``precision``, ``backend`` (``none`` without an operator) and the
  device's name.

WSD branches (``symato.run.wsd``): a stable run (settings ``branches``) also saves its
resumable state as ``DIR/branches/{run}.pt`` at each branch point and ends with
``DIR/stable.json`` instead of ``model.pt``; a branch (``branch_from``) without a
checkpoint of its own starts from that state, so it continues exactly where its
straight-through run would be.

Outputs in DIR: ``metrics.jsonl`` (one JSON object per logged step), ``checkpoint.pt``
(resumable state) and, at the end, ``model.pt`` (``symato.run.checkpoint.save_model``, with
the vocabulary and settings in its meta so it is self-contained).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from symato.errors import SymatoError
from symato.io import (
    atomic_path,
    non_finite_key,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from symato.models.registry import get_architecture, recipe_of
from symato.progress import Progress
from symato.run import eager
from symato.run.precision import arithmetic_meta, enable_tf32, resolve_precision
from symato.run.provenance import changed_inputs, check_finite, file_digest, run_inputs
from symato.run.recipes import l2wrap, parameter_groups
from symato.run.settings import (
    check_passes,
    decay_start,
    load_settings,
    setting,
    warmup_steps_of,
)
from symato.run.splitform import SplitForms
from symato.run.stepstats import IntervalStats, Reading, Stopwatch
from symato.run.tblog import EventLog, require_tensorboard
from symato.run.wsd import BRANCHES_DIR, STABLE_MARKER

CHECKPOINT_FILE = "checkpoint.pt"
# Settings in which a WSD branch differs from its stable run (the rest must be equal).
BRANCH_OWN = ("run", "tokens", "steps", "text_bytes", "decay", "branches", "branch_from")
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FORMAT = "symato-train-state"
CHECKPOINT_VERSION = 1
EXIT_PREEMPTED = 143  # 128 + SIGTERM: the conventional "terminated" status

# Dense bf16 tensor-core peak FLOP/s by device-name fragment, for MFU (first match wins).
PEAK_BF16_FLOPS = (
    ("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("A10G", 125e12),
    ("L40S", 362e12), ("L4", 121e12), ("4090", 165e12), ("3090", 71e12), ("V100", 125e12),
)  # fmt: skip


# ----------------------------------------------------------------------------- settings
def warmup_steps(s: dict[str, Any]) -> int:
    """Warmup steps (``symato.run.settings.warmup_steps_of``): the share ``warmup`` of the
    run's steps, rounded, or a WSD branch's ``warmup_steps``, shared with its ladder."""
    return warmup_steps_of(s)


def learning_rate(step: int, s: dict[str, Any]) -> float:
    """LR for optimizer step ``step`` (0-based): linear warmup, then decay to lr_min.

    Cosine: ``lr_min + (lr - lr_min) * (1 + cos(pi p)) / 2``; exponential:
    ``lr * (lr_min / lr) ** p``; ``p`` runs from 0 after warmup to 1 at the last step.
    WSD: ``lr`` until the decay starts (``decay_start``), then the 1-sqrt cooldown
    ``lr_min + (lr - lr_min) * (1 - sqrt(p))`` with ``p = (step - start + 1) / decay
    steps``, reaching lr_min at the last step; every decay step is below ``lr``, so a
    branch taken from the stable run's state after ``start`` steps decays from its first
    step (Hägele et al. 2024 found 1-sqrt the best cooldown shape).
    """
    lr, lr_min, warmup, steps = s["lr"], s["lr_min"], warmup_steps(s), s["steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if s["schedule"] == "wsd":
        start = decay_start(s)
        if step < start:
            return lr
        p = min(1.0, (step - start + 1) / (steps - start))
        return lr_min + (lr - lr_min) * (1.0 - math.sqrt(p))
    p = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
    if s["schedule"] == "cosine":
        return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * p))
    return lr * (lr_min / lr) ** p


def decays(name: str, param: torch.Tensor, arch: str = "rwkv7") -> bool:
    """Whether AdamW's weight decay applies to parameter ``name`` of architecture ``arch``:
    its training recipe's rule (``symato.models.registry.Recipe.decays``).

    Why per architecture: each follows its authors. RWKV-7 decays the 2-D ``*.weight``
    matrices (not its low-rank paths, mixes or per-head vectors: decaying those pulls the
    token shift and the decay towards zero), RWKV-4 its 2-D matrices (with weight decay 0
    by default), GPT every 2-D parameter (nanoGPT) and Transformer++ the linear layers'
    weights, not the embedding.
    """
    return recipe_of(arch).decays(name, tuple(param.shape))


def strict_json_line(record: dict[str, Any], where: str) -> str:
    """One metrics.jsonl line; a NaN or infinite value is an error naming ``where`` and
    the key (strict JSON has no NaN, and such a value means the run has gone wrong)."""
    bad = non_finite_key(record)
    if bad is not None:
        key = bad.removeprefix("key ").strip("'")
        raise SymatoError(f"{where}: {key}={record.get(key)} is not finite; stopped (last "
                          f"good checkpoint kept)")
    return json.dumps(record, allow_nan=False) + "\n"


# ----------------------------------------------------------------------------- processes
class Dist:
    """This process's place in a ``torchrun`` job (or a single process)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.control: Any = None  # group for host-side flags (None: the default group)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
            if backend == "nccl":
                # Host flags (SIGTERM, checkpoint due) are agreed on every step: through
                # NCCL that needs a CUDA tensor and .item(), a device sync per step; a gloo
                # group on the CPU leaves the GPU's queue alone.
                self.control = torch.distributed.new_group(backend="gloo")

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Average a scalar tensor over processes (identity for one process)."""
        if self.enabled:
            value = value.clone()
            torch.distributed.all_reduce(value)
            value /= self.world
        return value

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every process if it is true on any (so all act together).

        Host-side only: a CPU tensor through the gloo ``control`` group, no device sync.
        """
        if not self.enabled:
            return flags
        t = torch.tensor([1.0 if f else 0.0 for f in flags])
        torch.distributed.all_reduce(t, group=self.control)
        return tuple(bool(v > 0) for v in t.tolist())

    def sum_(self, value: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over processes in place (identity for one process)."""
        if self.enabled:
            torch.distributed.all_reduce(value)
        return value

    def close(self) -> None:
        """Leave the group together: a rank tearing down while its peer still works (rank 0
        writing model.pt) can leave the peer blocked in gloo forever."""
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def pick_device(s: dict[str, Any], dist: Dist) -> torch.device:
    """The device of this process; ``auto`` means CUDA when present."""
    want = s["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise SymatoError(f"run {s['run']}: device 'cuda' requested but CUDA is not available")
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def make_deterministic(s: dict[str, Any], device: torch.device) -> None:
    """Fixed thread count and deterministic kernels: same seed, same bits on CPU."""
    torch.set_num_threads(int(s["threads"]))
    if device.type == "cpu":
        deterministic_kernels(compiled=bool(s.get("compile")))
    torch.manual_seed(int(s["seed"]))


def deterministic_kernels(compiled: bool) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without its import of
    torch._inductor when nothing is compiled.

    Why: that function also sets the inductor's own flag, and importing the inductor
    (with torch._dynamo) took 1.5-3.7 s of every training job on the 2-core demo machine,
    most of a small run's time. The kernels' flag is the same call either way; with
    ``compile`` on, the public function sets both.
    """
    if compiled or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def window_share(n: int, rank: int, world: int) -> tuple[int, int]:
    """Windows ``[start, stop)`` of the first ``n`` that process ``rank`` of ``world``
    evaluates: contiguous, disjoint, together exactly ``range(n)``, sizes differing by
    at most one."""
    return n * rank // world, n * (rank + 1) // world


# ----------------------------------------------------------------------------- state
class Preemption:
    """Remembers a SIGTERM so the loop can save a checkpoint at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Preemption:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the resumable state atomically (a kill mid-write leaves the old file)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only``); corrupt or foreign files are errors."""
    from symato.run.checkpoint import load_failure

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, ...: torch raises many types
        raise SymatoError(
            f"checkpoint {path} is corrupt or unreadable: {load_failure(exc)}; delete it to "
            f"start the run from scratch"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SymatoError(f"checkpoint {path} is not a symato training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise SymatoError(f"checkpoint {path}: unsupported version {state.get('version')!r}")
    return state


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """One training run; ``run()`` returns the process exit code."""

    def __init__(self, settings: dict[str, Any], out: Path, resume: bool,
                 quiet: bool = False) -> None:
        from symato.data.loader import TokenDataset

        self.s = settings
        self.out = out
        self.resume = resume
        self.quiet = quiet  # no progress lines (symato.progress); the log lines stay
        self.dist = Dist()
        self.device = pick_device(settings, self.dist)
        # Before anything else: a precision the device cannot honour stops the run here.
        self.precision = resolve_precision(settings["precision"], self.device, settings["run"])
        self.bf16 = self.precision == "bf16"
        self.tf32 = enable_tf32(self.device)
        if setting(settings, "tensorboard"):  # a missing extra stops the run here, too
            require_tensorboard(f"run {settings['run']}")
        self.events: EventLog | None = None
        # Likewise a compiled operator that cannot be built (never a silent 100x slower
        # loop): the backend is chosen, and its kernel loaded, before training.
        self.arch = get_architecture(settings["arch"])
        self.backend = self.arch.resolve_backend(
            settings["wkv_backend"], self.device, torch.bfloat16 if self.bf16 else torch.float32)
        make_deterministic(settings, self.device)
        self.dist.init(self.device)
        self.train_ds = TokenDataset(settings["shards_dir"], "train", settings["ctx_len"])
        self.val_ds = TokenDataset(settings["shards_dir"], "val", settings["ctx_len"])
        # The last guard against a budget repeating the text more than max_epochs times:
        # token runs whose shards did not exist yet when the workflow was planned.
        check_passes(settings, {"tokens": self.train_ds.num_tokens,
                                "bytes": int(self.train_ds.manifest.get("bytes", 0))},
                     str(Path(settings["shards_dir"]) / "manifest.json"), "symato train")
        self.vocab = read_json(settings["vocab_file"], "vocabulary file")
        self.unique = self._unique_subset()
        self.inputs = run_inputs(settings)  # what a checkpoint must match to be resumed
        self.micro = self._micro_batch_size()
        self.model = self._build_model()
        if not settings["compile"]:  # the operator's kernels run without dynamo's import
            eager.skip_custom_op_dynamo_guard()
        self.net: nn.Module = self._wrap(self.model)
        self.optimizer = self._optimizer()
        self.rng = np.random.default_rng(int(settings["seed"]))
        self.splits = self._split_forms()
        self.step = 0
        # A WSD stable run: the branch runs whose state it saves after each step.
        self.branch_at: dict[int, list[str]] = {}
        for name, at in sorted(settings.get("branches", {}).items()):
            self.branch_at.setdefault(int(at), []).append(name)
        self.records: list[dict[str, Any]] = []
        self.train_seconds = 0.0
        self.stats = IntervalStats(self.device)
        self.clock = Stopwatch(self.device)
        self.peak = self._peak_flops()

    def _unique_subset(self) -> dict[str, Any] | None:
        """A repeated-data run (``unique_bytes``): restrict the train stream to its unique
        subset (``symato.data.loader.unique_subset``) and return its record; else None.

        The documents' bytes are counted on their text, decoded with the run's tokenizer,
        so the subset is the same documents whatever the tokenizer.
        """
        if "unique_bytes" not in self.s:
            return None
        from symato.data.loader import unique_subset
        from symato.text.tokenizer import Tokenizer

        tokenizer = Tokenizer(self.vocab, source=self.s["vocab_file"])
        subset = unique_subset(self.s["shards_dir"], int(self.s["unique_bytes"]),
                               lambda row: len(tokenizer.decode_bytes(row[1:].tolist())))
        self.train_ds.restrict(subset)
        record = {**subset.record(), "epoch_order": "numpy default_rng([seed, epoch])"
                  ".permutation(windows)", "epoch_windows": self.train_ds.epoch_windows()}
        self.log(f"unique text: {subset.documents} documents, {subset.text_bytes} bytes, "
                 f"{subset.tokens} tokens, {record['epoch_windows']} windows per epoch")
        return record

    def _split_forms(self) -> SplitForms:
        """Whole syllables written split at random (``split_syllables``; symato+N only)."""
        if self.s["split_syllables"] == 0:
            return SplitForms(None, 0.0)
        from symato.text.tokenizer import Tokenizer

        tokenizer = Tokenizer(self.vocab, source=self.s["vocab_file"])
        if tokenizer.vocab_size != self.train_ds.vocab_size:
            raise SymatoError(f"{self.s['vocab_file']} has {tokenizer.vocab_size} ids but the "
                              f"shards {self.train_ds.vocab_size}")
        return SplitForms(tokenizer, self.s["split_syllables"])

    def _micro_batch_size(self) -> int:
        per_step = self.dist.world * self.s["grad_accum"]
        if self.s["batch_size"] % per_step:
            raise SymatoError(
                f"run {self.s['run']}: batch_size {self.s['batch_size']} is not divisible by "
                f"processes x grad_accum = {per_step}"
            )
        return self.s["batch_size"] // per_step

    def _build_model(self) -> nn.Module:
        from symato.models import model_for_run

        s = self.s
        if self.train_ds.vocab_size != self.val_ds.vocab_size:
            raise SymatoError(f"{s['shards_dir']}: train and val vocab sizes differ")
        model = model_for_run(s, self.train_ds.vocab_size)
        # init_from (symato.run.init): the source's weights, before any step; a source
        # that does not fit the run stops the job here, naming the file and tensor.
        self.init_record: dict[str, Any] | None = None
        self.init_optimizer: dict[str, Any] | None = None
        if s.get("init_from"):
            from symato.run.init import start_from

            model, self.init_record, self.init_optimizer = start_from(
                model, s, self.vocab, self.out, self.dist.main, self.log)
        if s.get("train_layers", "all") != "all":
            from symato.run.init import apply_train_layers

            trained = apply_train_layers(model, s["train_layers"], s["n_layer"])
            self.log(f"train_layers {s['train_layers']}: {trained} parameters trained")
        return model.to(self.device)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """Compile the inner module, then wrap it in DDP: the order PyTorch documents
        ("Where to apply torch.compile?": compile the module passed to the wrapper).
        Dynamo still sees the DDP module active around the compiled forward and splits
        the graph at DDP's bucket boundaries (DDPOptimizer), so gradients are reduced
        while the backward runs."""
        net = model
        if self.s["compile"]:
            net = torch.compile(net)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        return net

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the recipe's groups (``parameter_groups``): each group keeps its
        ``lr_scale`` (applied at every step in ``train_step``) and its weight decay.

        Fused on every device: one kernel per parameter instead of a dozen on CUDA, and on
        CPU 2-5x faster than the per-tensor path (and faster than foreach) at the demo
        sizes (benchmarks/bench_adamw.py); elementwise, so as deterministic as they are.
        """
        params = dict(self.model.named_parameters())
        groups = [{"params": [params[n] for n in g["names"]], "lr_scale": g["lr_scale"],
                   "weight_decay": g["weight_decay"]}
                  for g in parameter_groups(self.model, self.s)]
        # eager runs: the same AdamW without torch._dynamo's import (symato.run.eager)
        adamw = torch.optim.AdamW if self.s["compile"] else eager.AdamW
        optimizer = adamw(groups, lr=self.s["lr"], betas=(self.s["beta1"], self.s["beta2"]),
                          eps=self.s["eps"], fused=True)
        if self.init_optimizer is not None:  # init_optimizer: the source run's AdamW state
            try:
                optimizer.load_state_dict(self.init_optimizer)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise SymatoError(f"run {self.s['run']}: the optimizer state of init_from "
                                  f"{self.s['init_from']} does not fit this run: {exc}") from None
        return optimizer

    def _peak_flops(self) -> float | None:
        if self.device.type != "cuda":
            return None
        name = torch.cuda.get_device_name(self.device)
        return next((peak for key, peak in PEAK_BF16_FLOPS if key in name), None)

    # -- checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: weights, optimizer, schedule, RNGs, log, and the
        open metrics interval (its sums and seconds so far), so the next line is the same."""
        reading = self.stats.read()
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "settings_json": json.dumps(self.s, sort_keys=True),
            "inputs_json": json.dumps(self.inputs, sort_keys=True),
            "step": self.step,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"step": self.step, "lr": learning_rate(max(0, self.step - 1), self.s)},
            "torch_rng": torch.get_rng_state(),
            "numpy_rng_json": json.dumps(self.rng.bit_generator.state),
            "records_json": json.dumps(self.records),
            "train_seconds": self.train_seconds,
            "interval_json": json.dumps({**reading.state(), "seconds": self.clock.seconds}),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
            self.rng.bit_generator.state = json.loads(state["numpy_rng_json"])
            self.records = json.loads(state["records_json"])
            self.step = int(state["step"])
            self.train_seconds = float(state["train_seconds"])
            # Checkpoints from before the interval existed lack it: their run logged
            # every step's own values, so an empty interval continues them correctly.
            interval = json.loads(state.get("interval_json", "null"))
            if interval is not None:
                self.stats.load(interval)
                self.clock.seconds = float(interval["seconds"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SymatoError(f"checkpoint {path} does not fit this run: {first}") from None

    def try_resume(self) -> None:
        """Continue from DIR/checkpoint.pt when asked and it belongs to this run as it is
        now (``stale_reason``); otherwise start from scratch, saying why."""
        path = self.out / CHECKPOINT_FILE
        if not self.resume or not path.exists():
            return
        state = load_checkpoint(path)
        reason = self.stale_reason(state)
        if reason is not None:
            self.log(f"not resuming from {path}: {reason}; starting from scratch")
            return
        self.load_state_dict(state, path)
        if self.dist.main:  # the log on disk may be ahead of the checkpoint: rewrite it
            write_text_atomic(self.out / METRICS_FILE,
                              "".join(json.dumps(r) + "\n" for r in self.records))
        self.log(f"resumed from {path} at step {self.step}")

    def stale_reason(self, state: dict[str, Any]) -> str | None:
        """Why a checkpoint must not be continued, or None when it may.

        It may when it was written with these settings from inputs with the same
        digests. A finished run has removed its checkpoint (``finish``), so one found
        here is of an interrupted run (a kill, a preemption); checkpoints from before the
        digests were recorded are never continued.
        """
        if json.loads(state.get("settings_json", "null")) != self.s:
            return "it was written with other settings"
        recorded = json.loads(state.get("inputs_json", "null"))
        if recorded is None:
            return "it records no digests of its inputs (written by an older symato)"
        changed = changed_inputs(recorded, self.inputs)
        if changed:
            return f"its inputs changed since ({', '.join(changed)}: other content digest)"
        return None

    def checkpoint(self) -> None:
        """Save the resumable state, unless any step so far had a NaN/inf loss: the guard
        runs first, so a checkpoint never holds weights a bad step touched. Every process
        checks (the guard's values are the same everywhere), so all stop together."""
        self.guard()
        if self.dist.main:
            save_checkpoint(self.out / CHECKPOINT_FILE, self.state_dict())

    def guard(self) -> Reading:
        """Stop the run if any loss so far was NaN/inf, naming the first such step; else
        return the open interval's reading (one host sync). The bad step's update (and any
        after it) already ran in memory, but nothing is written after it: no checkpoint,
        no model.pt."""
        reading = self.stats.read()
        if reading.bad_step is not None:
            self.optimizer.zero_grad(set_to_none=True)
            raise SymatoError(
                f"run {self.s['run']}: training loss became {reading.bad_loss} at step "
                f"{reading.bad_step}; stopped (last good checkpoint kept: "
                f"{self.out / CHECKPOINT_FILE})"
            )
        return reading

    # -- WSD branches ----------------------------------------------------------------
    def save_branch_states(self) -> None:
        """A stable run at a branch point: save the full resumable state (the checkpoint's
        contents) as ``DIR/branches/{run}.pt`` for each branch leaving here, atomically.
        The NaN guard runs first, as for a checkpoint."""
        self.guard()
        if not self.dist.main:
            return
        state = self.state_dict()
        for name in self.branch_at[self.step]:
            save_checkpoint(self.out / BRANCHES_DIR / f"{name}.pt", state)
            self.log(f"saved the state of branch {name} at step {self.step}")

    def finish_stable(self) -> None:
        """A stable run is done: DIR/stable.json lists its branch states with their digests
        (the workflow's signal that every state is there); the checkpoint goes."""
        if not self.dist.main:
            return
        states = {name: {"step": at, "sha256": file_digest(self.out / BRANCHES_DIR /
                                                           f"{name}.pt")}
                  for at, names in sorted(self.branch_at.items()) for name in names}
        write_json_atomic(self.out / STABLE_MARKER, {"run": self.s["run"], "steps": self.step,
                                                     "branches": states})
        (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
        self.log(f"done: stable run of {self.step} steps, {len(states)} branch states")

    def start_from_stable(self, path: Path) -> None:
        """A WSD branch without a checkpoint of its own starts from its stable run's state
        at its branch point: weights, optimizer, RNGs, data position, the metrics so far
        and the open metrics interval, so it goes on as its straight-through run would."""
        if not path.is_file():
            raise SymatoError(f"run {self.s['run']}: branch_from {path} does not exist; "
                              "train its stable run first (results/stable/...)")
        state = load_checkpoint(path)
        self._check_stable_state(state, path)
        self.load_state_dict(state, path)
        if self.dist.main:
            write_text_atomic(self.out / METRICS_FILE,
                              "".join(json.dumps(r) + "\n" for r in self.records))
        self.log(f"branched from {path} at step {self.step}")

    def _check_stable_state(self, state: dict[str, Any], path: Path) -> None:
        """Refuse a stable state this branch cannot continue: another branch point, other
        shared settings or other data (its recorded vocabulary and shards digests)."""
        stable = json.loads(state.get("settings_json", "null")) or {}
        where = f"run {self.s['run']}: stable state {path}"
        at = decay_start(self.s)
        if int(state.get("step", -1)) != at:
            raise SymatoError(f"{where} is at step {state.get('step')}, but the branch "
                              f"leaves at step {at}")
        # The data's paths may differ (a moved results folder); its digests may not.
        skip = (*BRANCH_OWN, "shards_dir", "vocab_file")
        own = {k: v for k, v in self.s.items() if k not in skip}
        theirs = {k: v for k, v in stable.items() if k not in skip}
        differ = sorted(k for k in set(own) | set(theirs) if own.get(k) != theirs.get(k))
        if differ:
            raise SymatoError(f"{where} was written with other settings: {differ}")
        recorded = json.loads(state.get("inputs_json", "null")) or {}
        changed = [k for k in ("vocab", "shards") if recorded.get(k) != self.inputs[k]]
        if changed:
            raise SymatoError(f"{where} was trained on other inputs: {changed}")

    # -- one step --------------------------------------------------------------------
    def to_device(self, array: np.ndarray) -> torch.Tensor:
        """A host batch on this process's device. On CUDA through pinned memory and a
        non-blocking copy: a pageable copy would wait for the GPU to drain first."""
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def micro_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's micro-batches of the next global batch (same RNG everywhere)."""
        if self.unique is not None:  # repeated epochs: windows in each epoch's order
            drawn = self.train_ds.epoch_batch(self.step, self.s["batch_size"], self.s["seed"])
        else:
            drawn = self.train_ds.random_batch(self.s["batch_size"], self.rng)
        batch = self.splits.apply(drawn, self.rng)
        per_rank = self.micro * self.s["grad_accum"]
        mine = self.to_device(batch[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank])
        for i in range(self.s["grad_accum"]):
            chunk = mine[i * self.micro : (i + 1) * self.micro]
            yield chunk[:, :-1], chunk[:, 1:]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns (train loss, grad norm) as device tensors.

        Nothing is read back (no host sync): the values are added to ``self.stats``, whose
        NaN guard the loop checks at the next metrics line or checkpoint.
        """
        lr = learning_rate(self.step, self.s)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        self.net.train()
        total = torch.zeros((), device=self.device)
        n = self.s["grad_accum"]
        for i, (x, y) in enumerate(self.micro_batches()):
            sync = not self.dist.enabled or i == n - 1
            ctx = contextlib.nullcontext() if sync else self.net.no_sync()
            with ctx:
                with self.autocast():
                    logits = self.net(x)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
                loss = l2wrap(loss, logits, self.s["l2wrap"])  # the recipe's; value unchanged
                (loss / n).backward()
            total += loss.detach()
        train_loss = self.dist.mean(total / n)
        clip = self.s["grad_clip"] if self.s["grad_clip"] > 0 else float("inf")
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.stats.add(self.step, train_loss, grad_norm)
        return train_loss, grad_norm

    @torch.no_grad()
    def validate(self) -> tuple[float, float | None]:
        """(mean loss, bits per byte) on the first ``eval_windows`` validation windows.

        Each process evaluates its own contiguous share of the windows
        (:func:`window_share`) and the NLL sums and target counts are added over
        processes, so N processes give what one gives (up to float rounding) in 1/N of
        the time. One host sync. Bytes are estimated from the split's bytes-per-token
        ratio (None when the manifest has no byte count); ``symato evaluate`` computes
        the exact figure on the whole split.
        """
        self.net.eval()
        n = min(self.s["eval_windows"], len(self.val_ds))
        start, stop = window_share(n, self.dist.rank, self.dist.world)
        nll = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for tokens, mask in self.val_ds.sequential_batches(self.micro, start, stop):
            t, m = self.to_device(tokens), self.to_device(mask)
            with self.autocast():
                logits = self.model(t[:, :-1])
            losses = F.cross_entropy(logits.float().transpose(1, 2), t[:, 1:], reduction="none")
            nll += torch.where(m, losses, 0.0).sum(dtype=torch.float64)
            count += int(mask.sum())  # from the host copy: no device read
        counted = torch.full((), float(count), dtype=torch.float64, device=self.device)
        totals = self.dist.sum_(torch.stack([nll, counted]))
        nll_sum, count_sum = totals.tolist()
        mean = nll_sum / max(count_sum, 1.0)
        manifest = self.val_ds.manifest
        bytes_per_token = manifest.get("bytes", 0) / max(manifest.get("tokens", 1) - 1, 1)
        bpb = mean / math.log(2) / bytes_per_token if bytes_per_token > 0 else None
        return mean, bpb

    def confirm_backend(self) -> None:
        """After the first step: the operator ran the backend chosen before training.

        Why check: the record in model.pt, metrics.json and runs.csv must say what ran,
        not what was planned; a mismatch (a code path that bypassed the choice) stops
        the run rather than letting a slow or wrong kernel train unnoticed.
        """
        used = self.arch.backend_used()
        if used != self.backend:
            raise SymatoError(
                f"run {self.s['run']}: the {self.s['arch']} operator ran backend {used!r}, "
                f"but {self.backend!r} was chosen for wkv_backend={self.s['wkv_backend']!r} "
                f"on {self.device}"
            )

    # -- the loop --------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.dist.main:
            print(f"[train {self.s['tokenizer']}/{self.s['run']}] {message}", file=sys.stderr)

    def record(self, rec: dict[str, Any]) -> None:
        line = strict_json_line(rec, f"run {self.s['run']}, step {rec.get('step')}")
        self.records.append(rec)
        if self.dist.main:
            with open(self.out / METRICS_FILE, "a", encoding="utf-8") as fh:
                fh.write(line)
        if self.events is not None:
            self.events.add(rec)

    def run(self) -> int:
        s = self.s
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.try_resume()
        if self.step == 0 and "branch_from" in s:
            self.start_from_stable(Path(s["branch_from"]))
        if self.dist.main and self.step == 0:
            write_text_atomic(self.out / METRICS_FILE, "")
        if self.dist.main and setting(s, "tensorboard"):  # from the lines so far, as above
            self.events = EventLog(self.out, self.records)
        try:
            return self._loop()
        finally:
            if self.events is not None:
                self.events.close()

    def _loop(self) -> int:
        """Train from ``self.step`` to the end (or a SIGTERM checkpoint)."""
        s = self.s
        tokens_per_step = s["batch_size"] * s["ctx_len"]
        flops_per_token = float(self.model.flops_per_token())
        last_ckpt_time = time.monotonic()
        meta = arithmetic_meta(self.device, self.precision, self.tf32)
        self.log(f"device {self.device} ({meta['device_name']}), precision {self.precision}, "
                 f"TF32 matmuls {'on' if self.tf32 else 'off'}, operator backend "
                 f"{self.backend}, torch {meta['torch_version']}")
        bar = self._progress()
        first = True
        with Preemption() as preempt:
            self.clock.start()
            while self.step < s["steps"]:
                self.train_step()  # queues the step's work; reads nothing back
                if first:
                    self.confirm_backend()
                    first = False
                note = None
                if self._record_due():
                    self.clock.pause()  # syncs: the interval's time ends when its work does
                    rec = self._step_record(tokens_per_step, flops_per_token)
                    self.record(rec)
                    note = f"loss {rec['train_loss']:.3f}"
                    self.clock.start()
                bar.update(1, note)
                if self.step in self.branch_at:
                    self.clock.pause()
                    self.save_branch_states()
                    self.clock.start()
                due, stop = self.dist.any(self._checkpoint_due(last_ckpt_time), preempt.requested)
                if due or stop:
                    self.clock.pause()
                    self.checkpoint()
                    last_ckpt_time = time.monotonic()
                    self.clock.start()
                if stop:
                    bar.close()
                    self.log(f"SIGTERM: saved checkpoint at step {self.step}; exiting "
                             f"{EXIT_PREEMPTED} so the workflow retries and resumes")
                    return EXIT_PREEMPTED
        bar.close()
        if self.branch_at:
            self.finish_stable()
        else:
            self.finish(tokens_per_step, flops_per_token)
        return 0

    def _progress(self) -> Progress:
        """Steps done, rate and ETA on stderr (``symato.progress``: a live line on a
        terminal, a line every 30 s in a log), from rank 0 only."""
        return Progress(f"[train {self.s['tokenizer']}/{self.s['run']}]", self.s["steps"],
                        "steps", initial=self.step, quiet=self.quiet or not self.dist.main)

    def _checkpoint_due(self, last_time: float) -> bool:
        every, minutes = self.s["checkpoint_steps"], self.s["checkpoint_minutes"]
        if self.step >= self.s["steps"]:
            return False  # model.pt follows at once; a finished checkpoint is never resumed
        if every and self.step % every == 0:
            return True
        return bool(minutes) and time.monotonic() - last_time >= 60.0 * minutes

    def _eval_due(self) -> bool:
        """At eval_interval and at the end; a stable run's end is no end (its branches go
        on), so an eval there would give the longest branch a line its straight run lacks."""
        s, step = self.s, self.step
        last = step == s["steps"] and "branches" not in s
        return last or bool(s["eval_interval"] and step % s["eval_interval"] == 0)

    def _record_due(self) -> bool:
        """A metrics line after step 1, every ``log_interval`` steps and at evaluations."""
        return self.step == 1 or self.step % self.s["log_interval"] == 0 or self._eval_due()

    def _step_record(self, tokens_per_step: int, flops_per_token: float) -> dict[str, Any]:
        """The metrics line closing the interval since the previous one (clock paused).

        ``train_loss`` and ``grad_norm`` are the means over the interval's steps;
        ``tokens_per_second`` is the interval's tokens over its training wall time
        (validation, logging and checkpoints excluded). With ``log_interval: 1`` every
        line covers one step, as before.
        """
        s, step = self.s, self.step
        reading = self.guard()
        self.stats.reset()
        seconds = self.clock.take()
        self.train_seconds += seconds
        tok_s = reading.steps * tokens_per_step / max(seconds, 1e-9)
        rec: dict[str, Any] = {
            "step": step,
            "tokens": step * tokens_per_step,
            "train_loss": reading.loss,
            "lr": learning_rate(step - 1, s),
            "grad_norm": reading.grad_norm,
            "tokens_per_second": tok_s,
        }
        if self.unique is not None:
            rec["epoch"] = rec["tokens"] / self.unique["unique_tokens"]
        if self.peak:
            rec["mfu"] = flops_per_token * tok_s / (self.peak * self.dist.world)
        if self._eval_due():
            rec["val_loss"], rec["val_bpb"] = self.validate()
        return rec

    def finish(self, tokens_per_step: int, flops_per_token: float) -> None:
        """Write DIR/model.pt with everything evaluation and generation need."""
        if not self.dist.main:
            return
        from symato.run.checkpoint import save_model

        tokens = self.step * tokens_per_step
        check_finite(self.model.state_dict(), f"run {self.s['run']} after step {self.step}")
        meta = {
            "tokenizer": self.vocab,
            "run": self.s["run"],
            "settings": self.s,
            "step": self.step,
            "train_tokens": tokens,
            "train_flops": flops_per_token * tokens,
            "train_seconds": self.train_seconds,
            "tokens_per_second": tokens / self.train_seconds if self.train_seconds else None,
            "params": self.model.param_counts(),
            "world_size": self.dist.world,
            "device": str(self.device),
            "backend": self.backend,
            "inputs": self.inputs,
            # init_from: the source (path, sha256) and the transplant's counts
            **({"init": self.init_record} if self.init_record else {}),
            # repeated epochs: the unique text (fresh runs: their tokens are all unique)
            **(self.unique or {"unique_tokens": tokens}),
            "epochs": tokens / (self.unique or {"unique_tokens": tokens})["unique_tokens"],
            **arithmetic_meta(self.device, self.precision, self.tf32),
        }
        save_model(self.out / "model.pt", self.model, meta)
        # The run is complete in model.pt: its checkpoint could only ever be resumed into
        # a copy of these weights, so it goes (and its disk space with it).
        (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
        self.log(f"done: {self.step} steps, {tokens} tokens -> {self.out / 'model.pt'}")


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symato train",
        description="Train one run from its settings.json into DIR (metrics.jsonl, "
        "checkpoint.pt, model.pt). Run under torchrun for multi-GPU data parallel.",
    )
    parser.add_argument("--settings", required=True, help="the run's settings.json")
    parser.add_argument("--out", required=True, help="run folder to write into")
    parser.add_argument("--resume", choices=["auto", "never"], default="never",
                        help="auto: continue from DIR/checkpoint.pt when it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str]) -> int:
    """``symato train``: 0 on success, 143 after a SIGTERM checkpoint, 1 on errors."""
    args = _parser().parse_args(argv)
    settings = load_settings(args.settings)
    trainer = Trainer(settings, Path(args.out), resume=args.resume == "auto", quiet=args.quiet)
    dist = trainer.dist
    try:
        return trainer.run()
    finally:
        # Drop the DDP wrapper (its reducer holds the process group) before leaving the
        # group: destroying it later, at interpreter exit, can block a rank in gloo forever.
        trainer.net = trainer.model = trainer.optimizer = None  # type: ignore[assignment]
        del trainer
        gc.collect()
        dist.close()
