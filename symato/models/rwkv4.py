"""RWKV-4 ("v4neo"), readable in one file, with the RWKV-4 checkpoint names and init.

Why this shape: the exported state dict must load unchanged in the ``rwkv`` package
(ChatRWKV's runtime), so every parameter carries the RWKV-4 name and layout:
``emb.weight``, ``blocks.0.ln0.*``, ``blocks.{i}.ln1/ln2.*``, ``blocks.{i}.att.*``,
``blocks.{i}.ffn.*``, ``ln_out.*``, ``head.weight``. ``att.time_decay`` is stored raw
(shape ``(C,)``); the decay actually used is ``w = -exp(time_decay)``, exactly what the
``rwkv`` runtime computes when it loads a version-4 file.

The network::

    x = ln0(emb(idx))
    for each block:  x = x + TimeMix(ln1(x));  x = x + ChannelMix(ln2(x))
    logits = head(ln_out(x))

Two modes compute the same function. ``forward(idx)`` runs whole sequences in parallel
("GPT mode", for training). ``forward_step(idx, state)`` continues from a state, any
number of tokens at a time ("RNN mode" with one token): the state holds, per layer, the
last input of the time-mix and channel-mix token shifts and the WKV numerator,
denominator and max exponent, so memory per generated token is constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symato.errors import SymatoError
from symato.models.common import count_parameters, training_flops_per_token
from symato.models.ops.wkv4 import BACKENDS, INIT_PP

# Index of each per-layer slot in the RNN state tensor (B, n_layer, 5, C).
ATT_X, AA, BB, PP, FFN_X = range(5)


@dataclass
class RWKV4Config:
    """Shape of an RWKV-4 model. ``wkv_backend`` picks the WKV operator implementation."""

    vocab_size: int
    n_layer: int
    n_embd: int
    ctx_len: int
    wkv_backend: str = "auto"
    emb_init: float = 1e-4  # embedding ~ U(-emb_init, emb_init), the RWKV-4 choice

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_layer", "n_embd", "ctx_len"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SymatoError(f"RWKV4Config.{key} must be a positive integer, got {value!r}")
        if self.wkv_backend not in BACKENDS:
            raise SymatoError(
                f"RWKV4Config.wkv_backend must be one of {BACKENDS}, got {self.wkv_backend!r}"
            )

    @property
    def dim_ffn(self) -> int:
        """Hidden width of the channel mix (4x, as in RWKV-4)."""
        return 4 * self.n_embd


def _shift(x: Tensor, last: Tensor | None) -> Tensor:
    """Token shift: each position sees the previous one; position 0 sees ``last`` (or 0)."""
    first = torch.zeros_like(x[:, :1]) if last is None else last[:, None].to(x.dtype)
    return torch.cat([first, x[:, :-1]], dim=1)


def _layer_ramps(layer_id: int, n_layer: int, n_embd: int) -> tuple[float, float, Tensor]:
    """The RWKV-4 per-layer ramps: 0→1 and 1→~0 over depth, and 0→1 over channels."""
    ratio_0_to_1 = layer_id / (n_layer - 1) if n_layer > 1 else 0.0
    ratio_1_to_almost0 = 1.0 - layer_id / n_layer
    ddd = (torch.arange(n_embd, dtype=torch.float32) / n_embd).reshape(1, 1, n_embd)
    return ratio_0_to_1, ratio_1_to_almost0, ddd


class RWKV4TimeMix(nn.Module):
    """The "attention" of RWKV-4: a per-channel exponentially decaying weighted average."""

    def __init__(self, config: RWKV4Config, layer_id: int) -> None:
        super().__init__()
        C = config.n_embd
        self.backend = config.wkv_backend
        r01, r10, ddd = _layer_ramps(layer_id, config.n_layer, C)
        h = torch.arange(C, dtype=torch.float32)
        # log decay speeds from -5 (w = -0.007: long memory) to 3 (w = -20: next token only).
        self.time_decay = nn.Parameter(-5 + 8 * (h / max(C - 1, 1)) ** (0.7 + 1.3 * r01))
        zigzag = torch.tensor([(i + 1) % 3 - 1 for i in range(C)], dtype=torch.float32) * 0.5
        self.time_first = nn.Parameter(torch.full((C,), math.log(0.3)) + zigzag)
        self.time_mix_k = nn.Parameter(torch.pow(ddd, r10))
        self.time_mix_v = nn.Parameter(torch.pow(ddd, r10) + 0.3 * r01)
        self.time_mix_r = nn.Parameter(torch.pow(ddd, 0.5 * r10))
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)

    def forward(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Mix ``x`` (B,T,C); ``state`` is this layer's (B,5,C) slice or None (fresh start).

        Returns the output and the new (B,4,C) time-mix part of the state
        (shift x, aa, bb, pp), or None when no state was given and none is wanted.
        """
        from symato.models.ops.wkv4 import wkv4  # the operator module builds kernels; import on use

        xx = _shift(x, None if state is None else state[:, ATT_X])
        xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
        xv = x * self.time_mix_v + xx * (1 - self.time_mix_v)
        xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)
        k, v, r = self.key(xk), self.value(xv), self.receptance(xr)
        w = -torch.exp(self.time_decay.float())
        wkv_state = None if state is None else state[:, AA : PP + 1].float().contiguous()
        y, new_wkv = wkv4(w, self.time_first.float(), k, v, state=wkv_state, backend=self.backend)
        out = self.output(torch.sigmoid(r) * y.to(r.dtype))
        if state is None:
            return out, None
        return out, torch.cat([x[:, -1:].float(), new_wkv.float()], dim=1)


class RWKV4ChannelMix(nn.Module):
    """The feed-forward of RWKV-4: a gated squared-ReLU MLP on token-shifted inputs."""

    def __init__(self, config: RWKV4Config, layer_id: int) -> None:
        super().__init__()
        C = config.n_embd
        _, r10, ddd = _layer_ramps(layer_id, config.n_layer, C)
        self.time_mix_k = nn.Parameter(torch.pow(ddd, r10))
        self.time_mix_r = nn.Parameter(torch.pow(ddd, r10))
        self.key = nn.Linear(C, config.dim_ffn, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(config.dim_ffn, C, bias=False)

    def forward(self, x: Tensor, last: Tensor | None) -> Tensor:
        """Mix ``x`` (B,T,C); ``last`` (B,C) is the previous token's input or None."""
        xx = _shift(x, last)
        xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
        xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)
        k = torch.square(torch.relu(self.key(xk)))
        return torch.sigmoid(self.receptance(xr)) * self.value(k)


class RWKV4Block(nn.Module):
    """One residual block; block 0 also owns ``ln0`` (applied once, after the embedding)."""

    def __init__(self, config: RWKV4Config, layer_id: int) -> None:
        super().__init__()
        C = config.n_embd
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = RWKV4TimeMix(config, layer_id)
        self.ffn = RWKV4ChannelMix(config, layer_id)

    def forward(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Apply the block; ``state`` (B,5,C) or None. Returns x and the new state slice."""
        h = self.ln1(x)
        att_out, att_state = self.att(h, state)
        x = x + att_out
        h = self.ln2(x)
        x = x + self.ffn(h, None if state is None else state[:, FFN_X])
        if state is None:
            return x, None
        assert att_state is not None
        return x, torch.cat([att_state, h[:, -1:].float()], dim=1)


class RWKV4(nn.Module):
    """An RWKV-4 language model: ``model(idx)`` gives logits (B, T, vocab_size)."""

    def __init__(self, config: RWKV4Config) -> None:
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(RWKV4Block(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The RWKV-4 initialization of the matrices (ramps were set by the modules).

        Small uniform embedding; zero att.key/receptance/output and ffn.value/receptance
        (each block starts as the identity, and the zeroed receptances make the gates
        0.5); orthogonal elsewhere with gain sqrt(out/in) for tall matrices; head 0.5x.
        """
        zero = (".att.key.", ".att.receptance.", ".att.output.", ".ffn.value.", ".ffn.receptance.")
        for name, p in self.named_parameters():
            if name == "emb.weight":
                nn.init.uniform_(p, -self.config.emb_init, self.config.emb_init)
            elif p.ndim != 2:
                continue  # LayerNorms and time_* keep their module-level init
            elif any(z in name for z in zero):
                nn.init.zeros_(p)
            else:
                gain = math.sqrt(p.shape[0] / p.shape[1]) if p.shape[0] > p.shape[1] else 1.0
                nn.init.orthogonal_(p, gain=gain * (0.5 if name == "head.weight" else 1.0))

    def forward(self, idx: Tensor) -> Tensor:
        """Logits (B, T, V) for token ids ``idx`` (B, T), starting from an empty state."""
        return self.project(self.features(idx))

    def features(self, idx: Tensor) -> Tensor:
        """The normalized last hidden states (B, T, C) that ``project`` turns into logits.

        Why apart from ``forward``: evaluation scores only some positions of each window,
        and the head is most of a small model's cost (symato.run.evaluate).
        """
        return self._run(idx, None)[0]

    def project(self, h: Tensor) -> Tensor:
        """Logits for hidden states from ``features`` (any leading shape)."""
        return self.head(h)

    def init_state(self, batch_size: int) -> Tensor:
        """The empty RNN state: (B, n_layer, 5, C) float32 = shift x's zero, pp = INIT_PP."""
        C, L = self.config.n_embd, self.config.n_layer
        device = self.emb.weight.device
        state = torch.zeros(batch_size, L, 5, C, dtype=torch.float32, device=device)
        state[:, :, PP] = INIT_PP
        return state

    def forward_step(self, idx: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """Continue a sequence: logits for ``idx`` (B, T) and the state after it.

        ``state`` comes from ``init_state`` or an earlier call (None = empty). Feeding a
        sequence in one call or in any split gives the same logits.
        """
        if state is None:
            state = self.init_state(idx.shape[0])
        expected = (idx.shape[0], self.config.n_layer, 5, self.config.n_embd)
        if tuple(state.shape) != expected:
            raise SymatoError(f"RWKV-4 state has shape {tuple(state.shape)}, expected {expected}")
        h, new_state = self._run(idx, state)
        assert new_state is not None
        return self.project(h), new_state

    def _run(self, idx: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(normalized last hidden states, the new state or None when ``state`` is None)."""
        x = self.blocks[0].ln0(self.emb(idx))
        layer_states = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, None if state is None else state[:, i])
            layer_states.append(s)
        h = self.ln_out(x)
        if state is None:
            return h, None
        return h, torch.stack(layer_states, dim=1)

    def param_counts(self) -> dict[str, int]:
        """Total and non-embedding parameter counts (see symato.models.common)."""
        return count_parameters(self, ("emb.weight",))

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x non-embedding parameters (no attention term)."""
        c = self.config
        n = self.param_counts()["non_embedding"]
        return training_flops_per_token(n, c.n_layer, c.ctx_len, c.n_embd, attention=False)

    @property
    def max_context(self) -> int | None:
        """RWKV-4 has no context limit at inference (ctx_len is the training window)."""
        return None
