"""The GPT baseline, nanoGPT-style, readable in one file.

Why this model: the pipeline compares RWKV with the standard Transformer at equal
size. It is the plain recipe: pre-LayerNorm blocks, causal multi-head attention
(``scaled_dot_product_attention``), a GELU MLP of width 4C, learned absolute positions,
N(0, 0.02) init with the residual output projections scaled by 1/sqrt(2 n_layer), no
biases in the linear layers, and an optional tied head (off by default so the head is
its own matrix, as in RWKV).

``forward_step(idx, state)`` continues a sequence from a KV cache: ``state`` is a
``KVCache`` (symato/models/kvcache.py), preallocated for ``ctx_len`` positions and written
in place; ``state[i]`` is layer i's ``(k, v)``, each (B, n_head, P, head_dim) for the P
tokens seen so far. Learned positions stop at ``ctx_len``: ``max_context`` tells callers
to re-prime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from symato.errors import SymatoError
from symato.models.common import count_parameters, training_flops_per_token
from symato.models.kvcache import KVCache, cached_attention


@dataclass
class GPTConfig:
    """Shape of a GPT model. ``n_embd`` must be divisible by ``n_head``."""

    vocab_size: int
    n_layer: int
    n_embd: int
    n_head: int
    ctx_len: int
    tie_weights: bool = False

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_layer", "n_embd", "n_head", "ctx_len"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SymatoError(f"GPTConfig.{key} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise SymatoError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional KV cache."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        """Attend over the cached keys/values plus ``x`` (B,T,C). With a cache (already
        advanced by T), this layer's new keys/values are written into it in place."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            past = cache.length - T
            k, v = cache.write(layer, past, k, v)
        y = cached_attention(q, k, v, past)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    """The position-wise feed-forward: Linear(C, 4C) → GELU → Linear(4C, C)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    """Pre-LN residual block: x += attn(ln_1(x)); x += mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT language model: ``model(idx)`` gives logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.ctx_len, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.wte.weight
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """N(0, 0.02) for matrices and embeddings, residual projections / sqrt(2 n_layer)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = residual_std if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx: Tensor) -> Tensor:
        """Logits (B, T, V) for token ids ``idx`` (B, T), T <= ctx_len."""
        return self.project(self.features(idx))

    def features(self, idx: Tensor) -> Tensor:
        """The normalized last hidden states (B, T, C) that ``project`` turns into logits
        (evaluation projects only the positions it scores)."""
        return self._trunk(idx, None)

    def project(self, h: Tensor) -> Tensor:
        """Logits for hidden states from ``features`` (any leading shape)."""
        return self.head(h)

    def init_state(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences, preallocated for ``max_len``
        positions (default and most: ``ctx_len``, where the learned positions end)."""
        c = self.config
        max_len = c.ctx_len if max_len is None else max_len
        if max_len > c.ctx_len:
            raise SymatoError(f"GPT KV cache max_len {max_len} > ctx_len {c.ctx_len} "
                              f"(learned positions end there)")
        return KVCache.empty(c.n_layer, batch_size, c.n_head, c.n_embd // c.n_head, max_len,
                             like=self.wte.weight)

    def forward_step(self, idx: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache]:
        """Continue a sequence from a KV cache: logits for ``idx`` (B, T) and the new cache.

        The new tokens sit at positions ``P .. P+T-1`` where P is the cache length. The
        cache passed in is not modified (the new one writes past its end, see kvcache.py).
        """
        past = 0 if state is None else state.length
        T = idx.shape[1]
        if past + T > self.config.ctx_len:
            raise SymatoError(
                f"GPT context overflow: {past} cached + {T} new tokens > ctx_len "
                f"{self.config.ctx_len} (learned positions end there)"
            )
        state = self.init_state(idx.shape[0]) if state is None else state
        new_state = state.advance(T, limit_note=" (init_state's max_len)")
        return self.project(self._trunk(idx, new_state)), new_state

    def _trunk(self, idx: Tensor, cache: KVCache | None) -> Tensor:
        """The normalized last hidden states after ``idx`` (B, T); with ``cache`` (advanced
        by T already), the tokens' keys and values are written into it."""
        T = idx.shape[1]
        past = 0 if cache is None else cache.length - T
        if past + T > self.config.ctx_len:
            raise SymatoError(
                f"GPT context overflow: {T} tokens > ctx_len {self.config.ctx_len} "
                f"(learned positions end there)"
            )
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        return self.ln_f(x)

    def param_counts(self) -> dict[str, int]:
        """Total and non-embedding (without wte, wpe) parameter counts."""
        return count_parameters(self, ("wte.weight", "wpe.weight"))

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x matmul parameters + 6 n_layer ctx_len n_embd."""
        c = self.config
        n = self.param_counts()["non_embedding"]
        if c.tie_weights:  # the shared matrix was counted as embedding, its matmul is real
            n += c.vocab_size * c.n_embd
        return training_flops_per_token(n, c.n_layer, c.ctx_len, c.n_embd, attention=True)

    @property
    def max_context(self) -> int | None:
        """Longest sequence the learned positions cover."""
        return self.config.ctx_len
