"""Sampling text with a trained model (``symato generate``), and loading a model for it.

Sampling walks a sequence left to right with ``model.forward_step``: RWKV carries its
RNN state (constant memory per token), GPT a KV cache. GPT's learned positions end at
``ctx_len``; when a cache would overflow, ``Feeder`` re-primes it with the most recent
half window (documented approximation; RWKV never needs it). ``Feeder`` is also what
diacritic restoration (``symato.run.restore``) feeds its text through.

A checkpoint carries its vocabulary in ``meta["tokenizer"]`` (``Tokenizer.to_dict()``).
``--vocab FILE`` (a vocabulary JSON file) is for checkpoints without one; given for a
checkpoint that has one, it must be that same vocabulary: another tokenizer's ids would
decode to garbage without any error.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from symato.errors import SymatoError

FEED_CHUNK = 1024  # longest piece fed to the model at once: bounds activation memory


class Feeder:
    """Feeds token ids to a model incrementally and returns the next-token logits.

    Why a class: generation and restoration both need "continue the sequence by these
    tokens", including the GPT window bookkeeping; keeping it here keeps them short.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.state: Any = None
        self.limit: int | None = model.max_context
        self.history: list[int] = []  # only kept when re-priming may be needed
        self.cached = 0  # tokens in the current state (GPT)

    @torch.inference_mode()
    def feed(self, ids: Sequence[int]) -> Tensor:
        """Advance by ``ids`` (non-empty); return float32 logits (V,) for the next token."""
        if not ids:
            raise SymatoError("internal: Feeder.feed needs at least one token")
        ids = list(ids)
        if self.limit is not None:
            self.history.extend(ids)
            if self.cached + len(ids) > self.limit:
                keep = min(len(self.history), self.limit, max(self.limit // 2, len(ids)))
                self.state, self.cached, ids = None, 0, self.history[-keep:]
                self.history = list(ids)
        logits = None
        for start in range(0, len(ids), FEED_CHUNK):
            chunk = torch.tensor([ids[start : start + FEED_CHUNK]], device=self.device)
            logits, self.state = self.model.forward_step(chunk, self.state)
            self.cached += chunk.shape[1]
        assert logits is not None
        return logits[0, -1].float()


# ----------------------------------------------------------------------------- sampling


def nucleus_probs(logits: Tensor, temperature: float = 1.0, top_p: float = 1.0) -> Tensor:
    """The distribution nucleus sampling draws from, as float64 probabilities (V,).

    Softmax of ``logits / temperature``; then keep the most likely tokens, in order,
    until their total first reaches ``top_p`` (the token that crosses the threshold is
    kept), zero the rest and renormalize. ``temperature == 0`` means greedy (one-hot).
    """
    if not math.isfinite(temperature) or temperature < 0:
        raise SymatoError(f"temperature must be a finite number >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise SymatoError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.detach().double().flatten()
    if temperature == 0:
        probs = torch.zeros_like(logits)
        probs[int(torch.argmax(logits))] = 1.0
        return probs
    probs = torch.softmax(logits / temperature, dim=0)
    if top_p < 1:
        sorted_p, order = torch.sort(probs, descending=True)
        mass_before = torch.cumsum(sorted_p, dim=0) - sorted_p
        keep = mass_before < top_p  # the first token always has mass_before 0
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[order[keep]] = True
        probs = torch.where(mask, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    return probs


def sample_token(
    logits: Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """Draw one token id from ``nucleus_probs(logits, temperature, top_p)``."""
    if not bool(torch.isfinite(logits).all()):
        raise SymatoError("the model produced non-finite logits (NaN or infinity); its "
                          "weights or arithmetic are broken, so nothing it samples means anything")
    probs = nucleus_probs(logits, temperature, top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def generate_ids(
    model: nn.Module,
    prompt_ids: Sequence[int],
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_p: float = 0.9,
    seed: int | None = None,
    stop_id: int | None = None,
    on_token: Callable[[int], None] | None = None,
) -> list[int]:
    """Sample up to ``max_new_tokens`` ids after ``prompt_ids`` (non-empty).

    Stops early when ``stop_id`` is drawn (it is not returned). Returns only the new ids;
    ``on_token`` is called with each as soon as it is drawn.
    """
    if not prompt_ids:
        raise SymatoError("generation needs at least one prompt token")
    if max_new_tokens < 0:
        raise SymatoError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    feeder = Feeder(model)
    out: list[int] = []
    if max_new_tokens == 0:
        return out
    logits = feeder.feed(prompt_ids)
    while len(out) < max_new_tokens:
        token = sample_token(logits.cpu(), temperature, top_p, generator)
        if token == stop_id:
            break
        out.append(token)
        if on_token is not None:
            on_token(token)
        if len(out) < max_new_tokens:
            logits = feeder.feed([token])
    return out


def generate(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_p: float = 0.9,
    seed: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """Continue ``prompt``; return the decoded prompt + continuation.

    The model first sees the end-of-text token (the document boundary it saw in
    training), so an empty prompt starts a fresh document. Sampling stops at the next
    end-of-text token. ``on_text`` (e.g. a printer) receives the text as it becomes final,
    prompt first, through the tokenizer's stream decoder; the pieces it receives join to
    the returned string.
    """
    prompt_ids = list(tokenizer.encode(prompt))
    stream = tokenizer.stream_decoder() if on_text is not None else None
    if stream is not None:
        on_text(stream.feed(prompt_ids))
    new = generate_ids(
        model,
        [tokenizer.eot_id, *prompt_ids],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stop_id=tokenizer.eot_id,
        on_token=(lambda t: on_text(stream.feed([t]))) if stream is not None else None,
    )
    if stream is not None:
        on_text(stream.finish())
    return tokenizer.decode(prompt_ids + new)


# ----------------------------------------------------------------------------- CLI


def load_for_inference(ckpt: str, vocab: str | None, device: str) -> tuple[nn.Module, Any]:
    """Load a checkpoint and its tokenizer (from ``--vocab`` or the checkpoint meta)."""
    from symato.run.checkpoint import load_model, resolve_path
    from symato.text.tokenizer import Tokenizer

    model, meta = load_model(ckpt, device=resolve_device(device))
    if vocab is not None:
        check_vocab_is_models(vocab, meta, str(resolve_path(ckpt)))
        tokenizer, where = Tokenizer.from_file(vocab), vocab
    else:
        where = f"{resolve_path(ckpt)} meta key 'tokenizer'"
        if not isinstance(meta.get("tokenizer"), dict):
            raise SymatoError(f"{resolve_path(ckpt)}: no 'tokenizer' in meta; pass --vocab FILE")
        try:
            tokenizer = Tokenizer.from_dict(meta["tokenizer"])
        except SymatoError as exc:
            raise SymatoError(f"{where}: {exc}") from None
    n_ids = getattr(tokenizer, "vocab_size", None)
    if n_ids is not None and n_ids > model.config.vocab_size:
        raise SymatoError(
            f"{where}: vocabulary has {n_ids} ids but the model only {model.config.vocab_size}"
        )
    return model, tokenizer


def check_vocab_is_models(vocab: str, meta: dict[str, Any], where: str) -> None:
    """A ``--vocab`` file given for a checkpoint that records its own vocabulary must be
    that vocabulary (the same JSON content)."""
    from symato.io import read_json
    from symato.run.provenance import json_digest

    own = meta.get("tokenizer")
    if not isinstance(own, dict):
        return
    given = read_json(vocab, "vocabulary file")
    if json_digest(given) != json_digest(own):
        raise SymatoError(
            f"{vocab} is not the vocabulary {where} was trained with (kind "
            f"{given.get('kind') if isinstance(given, dict) else '?'!r} vs the model's "
            f"{own.get('kind')!r}, other content); omit --vocab to use the model's own"
        )


def resolve_device(name: str) -> str:
    """A device name torch knows and this machine has, or an error saying which and why."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SymatoError(f"--device {name!r} is not a torch device name "
                          f"(use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
        raise SymatoError(f"--device {name}: CUDA is not available (torch {torch.__version__}, "
                          f"{build}); use --device cpu, or install a CUDA build of torch")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise SymatoError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    if device.type not in ("cpu", "cuda"):
        raise SymatoError(f"--device {name}: only cpu and cuda devices are supported")
    return name


def finite_float(low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float in ``[low, high]`` (NaN and inf rejected by name)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number {span}")
        return value
    return parse


def common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run directory")
    parser.add_argument("--vocab", help="vocabulary JSON (default: the one in the checkpoint)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def generate_main(argv: list[str]) -> int:
    """``symato generate --ckpt PATH --prompt TEXT [...]``: print a sampled continuation."""
    parser = argparse.ArgumentParser(
        prog="symato generate", description="Sample a continuation of a prompt from a checkpoint."
    )
    common_args(parser)
    parser.add_argument("--prompt", default="", help="text to continue (default: empty)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=finite_float(0.0), default=1.0, help="0 = greedy")
    parser.add_argument("--top-p", type=finite_float(0.0, 1.0), default=0.9,
                        help="nucleus mass in (0, 1] (1 = off)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    model, tokenizer = load_for_inference(args.ckpt, args.vocab, args.device)

    def emit(text: str) -> None:  # print each piece as it becomes final
        sys.stdout.write(text)
        sys.stdout.flush()

    generate(
        model,
        tokenizer,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        on_text=emit,
    )
    emit("\n")
    return 0
