"""Transformer++ (the Llama recipe), nanoGPT-style, readable in one file.

Why this model: plain GPT is a weak Transformer baseline; recurrent-model papers
(RWKV-7, Mamba) compare against "Transformer++", the recipe of Llama: pre-norm RMSNorm,
rotary position embeddings (RoPE), a SwiGLU MLP and no biases. Against it a result
means something. The choices, each checkable below:

* ``x = tok_embeddings(idx)``; blocks ``x += attention(attention_norm(x))``,
  ``x += feed_forward(ffn_norm(x))``; ``logits = output(norm(x))``. The output matrix is
  its own parameter (untied), as in Llama and in our RWKV models.
* RMSNorm (``x / sqrt(mean(x^2) + eps) * weight``, eps 1e-5, no bias, no mean removal).
* Causal multi-head attention (``F.scaled_dot_product_attention``) with RoPE applied to
  q and k of every head, base 10000, in the "rotate half" layout: dimension ``i`` of
  the first half pairs with ``i + head_dim/2``, rotated by ``pos * base^(-2i/head_dim)``.
* SwiGLU: ``w2(silu(w1 x) * w3 x)`` with hidden width ``8C/3`` rounded up to a multiple
  of 8 (``dim_ffn``), so the MLP has ``3 C dim_ffn ~ 8C^2`` parameters like GPT's 4C one.
* No bias anywhere (linear layers and norms).
* Init: N(0, 0.02) for every matrix and the embedding; the two residual projections of
  each block (``attention.wo``, ``feed_forward.w2``) N(0, 0.02/sqrt(2 n_layer)), the
  GPT-2 scaling, so the residual stream's variance does not grow with depth; RMSNorm
  weights 1.

Positions come from RoPE alone, so the model has no learned-position limit:
``max_context`` is None and ``forward_step`` continues from a KV cache of any length
(the new tokens' positions start at the cache length): a ``KVCache``
(symato/models/kvcache.py) written in place, preallocated by ``init_state(B, max_len)``
or, without ``max_len``, doubled when full. ``ctx_len`` is the training
window only. The parameter names follow Meta's Llama code (``tok_embeddings``,
``layers.{i}.attention.wq``, ``feed_forward.w1`` ...), so a reader can lay the two
side by side.
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
class LlamaConfig:
    """Shape of a Transformer++ model. ``n_embd / n_head`` must be an even integer (RoPE
    rotates pairs of dimensions)."""

    vocab_size: int
    n_layer: int
    n_embd: int
    n_head: int
    ctx_len: int
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_layer", "n_embd", "n_head", "ctx_len"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SymatoError(f"LlamaConfig.{key} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise SymatoError(
                f"LlamaConfig: n_embd ({self.n_embd}) / n_head ({self.n_head}) must be an even "
                f"integer (RoPE rotates pairs of dimensions)"
            )
        if not self.rope_base > 1:
            raise SymatoError(f"LlamaConfig.rope_base must be > 1, got {self.rope_base!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def dim_ffn(self) -> int:
        """SwiGLU hidden width: 8C/3 rounded up to a multiple of 8 (8 * ceil(C/3))."""
        return 8 * math.ceil(self.n_embd / 3)


def rope_angles(positions: Tensor, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles, each (T, head_dim/2), in float32.

    Computed per call from the positions, so there is no table to outgrow.
    """
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, D) by the angles: pair (i, i + D/2) turns by angle i."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)


class Attention(nn.Module):
    """Causal multi-head attention with RoPE and an optional KV cache."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.n_head, self.head_dim, self.base = config.n_head, config.head_dim, config.rope_base
        self.wq = nn.Linear(C, C, bias=False)
        self.wk = nn.Linear(C, C, bias=False)
        self.wv = nn.Linear(C, C, bias=False)
        self.wo = nn.Linear(C, C, bias=False)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None, layer: int
    ) -> Tensor:
        """Attend over the cache plus ``x`` (B,T,C); keys in the cache are already rotated.
        With a cache (already advanced by T), the new keys/values are written in place."""
        B, T, C = x.shape
        shape = (B, T, self.n_head, self.head_dim)
        q, k, v = (w(x).view(shape).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length - T
            k, v = cache.write(layer, past, k, v)
        y = cached_attention(q, k, v, past)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.wo(y)


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        C, hidden = config.n_embd, config.dim_ffn
        self.w1 = nn.Linear(C, hidden, bias=False)  # gate
        self.w3 = nn.Linear(C, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, C, bias=False)  # down (a residual projection)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: x += attention(norm(x)); x += feed_forward(norm(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None, layer: int
    ) -> Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, cache, layer)
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Module):
    """A Transformer++ language model: ``model(idx)`` gives logits (B, T, vocab_size)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.n_embd)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.norm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.output = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """N(0, 0.02) everywhere; ``attention.wo`` and ``feed_forward.w2`` / sqrt(2L)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if p.ndim == 2:
                residual = name.endswith(("attention.wo.weight", "feed_forward.w2.weight"))
                nn.init.normal_(p, mean=0.0, std=residual_std if residual else 0.02)
            else:
                nn.init.ones_(p)  # RMSNorm weights

    def forward(self, idx: Tensor) -> Tensor:
        """Logits (B, T, V) for token ids ``idx`` (B, T); any T (RoPE has no limit)."""
        return self.project(self.features(idx))

    def features(self, idx: Tensor) -> Tensor:
        """The normalized last hidden states (B, T, C) that ``project`` turns into logits
        (evaluation projects only the positions it scores)."""
        return self._trunk(idx, None)

    def project(self, h: Tensor) -> Tensor:
        """Logits for hidden states from ``features`` (any leading shape)."""
        return self.output(h)

    def init_state(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences: preallocated for ``max_len``
        positions (more is an error), or, with None, ``ctx_len`` positions doubled when full."""
        c = self.config
        return KVCache.empty(c.n_layer, batch_size, c.n_head, c.head_dim, max_len,
                             like=self.tok_embeddings.weight, initial=c.ctx_len)

    def forward_step(self, idx: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache]:
        """Continue a sequence from a KV cache: logits for ``idx`` (B, T) and the new cache.

        The new tokens sit at positions ``P .. P+T-1`` where P is the cache length. The
        cache passed in is not modified (the new one writes past its end, see kvcache.py).
        """
        c = self.config
        if state is not None and len(state) != c.n_layer:
            raise SymatoError(f"Llama state has {len(state)} layers, expected {c.n_layer}")
        state = self.init_state(idx.shape[0]) if state is None else state
        new_state = state.advance(idx.shape[1], limit_note=" (init_state's max_len)")
        return self.project(self._trunk(idx, new_state)), new_state

    def _trunk(self, idx: Tensor, cache: KVCache | None) -> Tensor:
        """The normalized last hidden states after ``idx`` (B, T); with ``cache`` (advanced
        by T already), the tokens' keys and values are written into it."""
        c, T = self.config, idx.shape[1]
        past = 0 if cache is None else cache.length - T
        pos = torch.arange(past, past + T, device=idx.device)
        cos, sin = rope_angles(pos, c.head_dim, c.rope_base)
        x = self.tok_embeddings(idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache, i)
        return self.norm(x)

    def param_counts(self) -> dict[str, int]:
        """Total and non-embedding (without ``tok_embeddings``) parameter counts."""
        return count_parameters(self, ("tok_embeddings.weight",))

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x matmul parameters + 6 n_layer ctx_len n_embd."""
        c = self.config
        n = self.param_counts()["non_embedding"]
        return training_flops_per_token(n, c.n_layer, c.ctx_len, c.n_embd, attention=True)

    @property
    def max_context(self) -> int | None:
        """None: RoPE positions have no learned limit, the KV cache just grows."""
        return None
