"""RWKV-7 ("Goose", x070), readable in one file, with the released checkpoint names and init.

Why this shape: the exported state dict must load unchanged in the ``rwkv`` package
(``RWKV_V7_ON=1``), so every parameter carries the name and layout of the authors'
released x070 checkpoints: ``emb.weight``, ``blocks.0.ln0.*``, ``blocks.{i}.ln1/ln2.*``,
``blocks.{i}.att.{x_r,x_w,x_k,x_v,x_a,x_g}`` (1,1,C), ``att.{w0,a0,v0}`` (1,1,C) with their
low-rank pairs ``att.{w1,w2,a1,a2,v1,v2,g1,g2}`` ((C,D) and (D,C)), ``att.{k_k,k_a}``
(1,1,C), ``att.r_k`` (H,N), ``att.{receptance,key,value,output}.weight``,
``att.ln_x.{weight,bias}``, ``ffn.x_k``, ``ffn.{key,value}.weight``, ``ln_out.*``,
``head.weight``. Layer 0 has no ``v0/v1/v2``: its value is the one the others mix in.

The network (C = n_embd, H heads of N = head_size channels)::

    x = ln0(emb(idx))
    for each block:  x = x + TimeMix(ln1(x));  x = x + ChannelMix(ln2(x))
    logits = head(ln_out(x))

TimeMix (docs/models.md writes it out): token shift with a learned per-channel mix for
each of r, w, k, v, a, g; ``r, k, v`` are square projections; the decay ``w``, the
in-context learning rate ``a``, the value-residual gate and the output gate ``g`` come
from low-rank paths. The state update is the WKV-7 operator (``symato.models.ops.wkv7``,
docs/wkv.md): ``S_t = S_{t-1} diag(d_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T``,
``y_t = S_t r_t``, here with ``a = -kk`` and ``b = kk * a`` (kk: the L2-normalized key),
then a per-head GroupNorm, a per-head "bonus" ``(r . (k * r_k)) v`` and the gate.

Two modes compute the same function. ``forward(idx)`` runs whole sequences ("GPT
mode", for training); ``forward_step(idx, state)`` continues from an ``RWKV7State``
("RNN mode"): per layer the time-mix and channel-mix token-shift inputs and the
(H, N, N) WKV state. Layer 0's value, which every later layer mixes in, is a function
of the current token only and is recomputed, so it needs no state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from symato.errors import SymatoError
from symato.models.common import count_parameters, training_flops_per_token

# GroupNorm eps of ln_x. Fixed, whatever the head size: the authors' train code and the
# rwkv package both hard-code 64e-5 (it equals 1e-5 * 8^2, the RWKV-5/6 "head size
# divisor" rule, only by coincidence at N = 64).
LN_X_EPS = 64e-5
# Training FLOPs of the WKV-7 state update per token, per layer, per (head_size x C):
# 9 N^2 per head forward (decay, S a, (S a) b^T, v k^T, S r; a multiply and an add
# counted apart), times 3 for forward + backward, the factor of the 6N convention.
WKV7_FLOPS_PER_STATE_ENTRY = 27


# Low-rank widths of the decay (w), in-context learning rate (a), value residual (v) and
# gate (g) paths: the authors' max(32, round(k C^e / 32) * 32), with (k, e) per path
# (RWKV-v7/train_temp/src/model.py: D_DECAY_LORA, D_AAA_LORA, D_MV_LORA, D_GATE_LORA).
# They give the released checkpoints' widths (L12-D768: 64 64 32 128; L24-D2048: 96 96
# 64 256). At widths under 256 every rank is the floor 32 (C = 32: as wide as the model).
LORA_FACTORS = {"w": (1.8, 0.5), "a": (1.8, 0.5), "v": (1.3, 0.5), "g": (0.6, 0.8)}
# "capped": what symato used before issue #22, kept only so its checkpoints load: the
# factors k sqrt(C) with k = 2.5, 2.5, 1.7, 5 (another version of train_temp), capped at
# max(4, C // 4).
CAPPED_FACTORS = {"w": 2.5, "a": 2.5, "v": 1.7, "g": 5.0}
LORA_RULES = ("authors", "capped")


def lora_rank(factor: float, n_embd: int, exponent: float = 0.5) -> int:
    """The authors' low-rank width ``max(32, round(factor C^exponent / 32) * 32)``
    (Python's ``round``, as theirs)."""
    return max(32, round(factor * n_embd**exponent / 32) * 32)


def capped_lora_rank(factor: float, n_embd: int) -> int:
    """The pre-#22 symato width: ``lora_rank(factor, C)`` capped at ``max(4, C // 4)``."""
    return min(lora_rank(factor, n_embd), max(4, n_embd // 4))


@dataclass
class RWKV7Config:
    """Shape of an RWKV-7 model. ``head_size`` must divide ``n_embd``; ``wkv_backend``
    picks the WKV-7 operator implementation (``symato.models.ops.wkv7``); ``lora`` the
    rule of the low-rank widths: ``authors`` (the default) or ``capped`` (symato before
    issue #22, for its old checkpoints; ``LORA_FACTORS`` above says both)."""

    vocab_size: int
    n_layer: int
    n_embd: int
    ctx_len: int
    head_size: int = 64
    wkv_backend: str = "auto"
    lora: str = "authors"

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_layer", "n_embd", "ctx_len", "head_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SymatoError(f"RWKV7Config.{key} must be a positive integer, got {value!r}")
        if self.head_size < 2 or self.n_embd % self.head_size:
            raise SymatoError(
                f"RWKV7Config: head_size ({self.head_size}) must be >= 2 and divide "
                f"n_embd ({self.n_embd})"
            )
        if self.wkv_backend not in ("auto", "cuda", "cpu", "torch"):
            raise SymatoError(
                f"RWKV7Config.wkv_backend must be auto|cuda|cpu|torch, got {self.wkv_backend!r}"
            )
        if self.lora not in LORA_RULES:
            raise SymatoError(f"RWKV7Config.lora must be one of {LORA_RULES}, got {self.lora!r}")

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    @property
    def dim_ffn(self) -> int:
        """Hidden width of the channel mix: 4C, as in the released x070 models."""
        return 4 * self.n_embd

    @property
    def ranks(self) -> dict[str, int]:
        """Low-rank widths of the decay, learning-rate, value-residual and gate paths."""
        C = self.n_embd
        if self.lora == "capped":
            return {p: capped_lora_rank(k, C) for p, k in CAPPED_FACTORS.items()}
        return {p: lora_rank(k, C, e) for p, (k, e) in LORA_FACTORS.items()}


class RWKV7State(NamedTuple):
    """The RNN state: ``shift`` (B, L, 2, C) = per layer the last time-mix and channel-mix
    inputs; ``wkv`` (B, L, H, N, N) = per layer the WKV-7 state S[i=value, j=key]."""

    shift: Tensor
    wkv: Tensor


def _project(x: Tensor, layer: nn.Linear) -> Tensor:
    """``layer(x)`` (no bias), with a fast path for generating on the CPU.

    Why: for one row (one generated token) the product only streams the weight through
    memory, and with the BLAS of torch's CPU builds a tall weight (out > in: ``ffn.key``,
    ``head``) in nn.Linear's (out, in) layout streams at about half the speed of the same
    matrix stored (in, out) (benchmarks/bench_rnn.py, docs/benchmarks.md). So without
    autograd, on the CPU, one row times a tall weight uses a transposed copy, kept on the
    module until the weight changes (its version counter; an optimizer step or a load
    bumps it). The copy costs memory (about a third of the weights) and is never made in
    training, where autograd is on.
    """
    w = layer.weight
    if (w.shape[0] <= w.shape[1] or x.numel() != x.shape[-1] or torch.is_grad_enabled()
            or x.device.type != "cpu"):  # fmt: skip
        return F.linear(x, w)
    key = (w._version, w.data_ptr(), w.dtype)
    cached = layer.__dict__.get("_rows_weight")
    if cached is None or cached[0] != key:
        cached = (key, w.detach().t().contiguous())
        layer.__dict__["_rows_weight"] = cached  # a plain attribute: not in the state dict
    return x @ cached[1]


def _shift(x: Tensor, last: Tensor | None) -> Tensor:
    """Token shift: each position sees the previous one; position 0 sees ``last`` (or 0)."""
    first = torch.zeros_like(x[:, :1]) if last is None else last[:, None].to(x.dtype)
    if x.shape[1] == 1:  # one token (generation): no concatenation needed
        return first
    return torch.cat([first, x[:, :-1]], dim=1)


def _ortho(rows: int, cols: int, gain: float) -> Tensor:
    """An orthogonal (rows, cols) matrix times ``gain`` (the authors' ``ortho_init``:
    tall matrices get an extra sqrt(rows/cols))."""
    w = torch.empty(rows, cols)
    extra = math.sqrt(rows / cols) if rows > cols else 1.0
    return nn.init.orthogonal_(w, gain=gain * extra)


def _ramps(layer_id: int, config: RWKV7Config) -> dict[str, Tensor | float]:
    """The init ramps of the authors' code: over depth (``r01`` 0->1, ``r10`` 1->~0) and
    over channels (``ddd`` = c/C, ``linear`` -0.5->0.5, ``zigzag`` -1->1 within each head)."""
    C, N, L = config.n_embd, config.head_size, config.n_layer
    c = torch.arange(C, dtype=torch.float32)
    z = ((c % N) - (N - 1) / 2) / ((N - 1) / 2)
    return {
        "r01": layer_id / (L - 1) if L > 1 else 0.0,
        "r10": 1.0 - layer_id / L,
        "ddd": (c / C).reshape(1, 1, C),
        "linear": c / (C - 1) - 0.5,
        "zigzag": z * z.abs(),
    }


class RWKV7TimeMix(nn.Module):
    """The "attention" of RWKV-7: a per-head matrix state updated by a generalized delta
    rule with a data-dependent decay and in-context learning rate."""

    def __init__(self, config: RWKV7Config, layer_id: int) -> None:
        super().__init__()
        C, H, N = config.n_embd, config.n_head, config.head_size
        self.layer_id, self.n_head, self.head_size = layer_id, H, N
        self.backend = config.wkv_backend
        ranks, ramp = config.ranks, _ramps(layer_id, config)
        ddd, r10, r01 = ramp["ddd"], ramp["r10"], ramp["r01"]
        lin, zig = ramp["linear"].reshape(1, 1, C), ramp["zigzag"].reshape(1, 1, C)
        for name, power in (("r", 0.2), ("w", 0.9), ("k", 0.7), ("v", 0.7), ("a", 0.9),
                            ("g", 0.2)):  # fmt: skip
            setattr(self, f"x_{name}", nn.Parameter(1.0 - torch.pow(ddd, power * r10)))
        # decay: w0 ramps from -5.5 (slow) to 0.5 (fast) over channels, +-2.5 zigzag per head
        c = torch.arange(C, dtype=torch.float32)
        www = -6 + 6 * (c / (C - 1)) ** (1 + r01**0.3)
        self.w0 = nn.Parameter(www.reshape(1, 1, C) + 0.5 + 2.5 * zig)
        self.w1 = nn.Parameter(torch.zeros(C, ranks["w"]))
        self.w2 = nn.Parameter(_ortho(ranks["w"], C, 0.1))
        self.a0 = nn.Parameter(torch.zeros(1, 1, C) - 0.19 + 0.3 * zig + 0.4 * lin)
        self.a1 = nn.Parameter(torch.zeros(C, ranks["a"]))
        self.a2 = nn.Parameter(_ortho(ranks["a"], C, 0.1))
        if layer_id > 0:
            self.v0 = nn.Parameter(torch.zeros(1, 1, C) + 0.73 - 0.4 * lin)
            self.v1 = nn.Parameter(torch.zeros(C, ranks["v"]))
            self.v2 = nn.Parameter(_ortho(ranks["v"], C, 0.1))
        self.g1 = nn.Parameter(torch.zeros(C, ranks["g"]))
        self.g2 = nn.Parameter(_ortho(ranks["g"], C, 0.1))
        self.k_k = nn.Parameter(torch.zeros(1, 1, C) + 0.71 - 0.1 * lin)
        self.k_a = nn.Parameter(torch.zeros(1, 1, C) + 1.02)
        self.r_k = nn.Parameter(torch.zeros(H, N) - 0.04)
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=LN_X_EPS)
        with torch.no_grad():  # the authors scale ln_x with depth: ((i+1)/L)^0.7
            self.ln_x.weight.fill_(((layer_id + 1) / config.n_layer) ** 0.7)

    def forward(
        self, x: Tensor, v_first: Tensor | None, last: Tensor | None, state: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mix ``x`` (B,T,C). ``v_first``: layer 0's value (None in layer 0); ``last``
        (B,C) the previous token's input and ``state`` (B,H,N,N) the WKV state, or None
        for a fresh start. Returns the output, ``v_first`` and the new WKV state."""
        from symato.models.ops.wkv7 import wkv7  # the operator module builds kernels; import on use

        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        xx = _shift(x, last) - x  # x_m = x + xx * x_m, as one op each (addcmul)
        xr, xw, xk = (torch.addcmul(x, xx, m) for m in (self.x_r, self.x_w, self.x_k))
        xv, xa, xg = (torch.addcmul(x, xx, m) for m in (self.x_v, self.x_a, self.x_g))
        r, k, v = _project(xr, self.receptance), _project(xk, self.key), _project(xv, self.value)
        # log-log decay soft-clamped below -0.5, -softplus(-z) - 0.5 = logsigmoid(z) - 0.5:
        # per-step decay exp(-e^-0.5 sigmoid(z))
        w = F.logsigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2) - 0.5
        if self.layer_id == 0:
            v_first = v
        else:  # value residual: v + (v_first - v) * gate
            v = torch.lerp(v, v_first, torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2))
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)  # in-context learning rate
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = (k * self.k_k).view(B, T, H, N)  # L2-normalized per head (F.normalize's eps)
        kk = (kk / torch.linalg.vector_norm(kk, dim=-1, keepdim=True).clamp_min(1e-12))
        kk = kk.view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)
        heads, dtype = (B, T, H, N), r.dtype  # the operator takes one dtype for all six
        y, new_state = wkv7(
            *(t.view(heads) if t.dtype == dtype else t.to(dtype).view(heads)
              for t in (r, w, k, v, -kk, kk * a)),
            state=state, backend=self.backend,
        )  # fmt: skip
        ln_x = self.ln_x
        y = F.group_norm(y.reshape(B * T, C), H, ln_x.weight, ln_x.bias, ln_x.eps)
        y = y.view(B, T, C).to(dtype)
        bonus = (r.view(heads) * k.view(heads) * self.r_k).sum(dim=-1, keepdim=True)
        y = y + (bonus * v.view(heads)).view(B, T, C)
        return _project(y * g, self.output), v_first, new_state


class RWKV7ChannelMix(nn.Module):
    """The feed-forward of RWKV-7: a squared-ReLU MLP (4C) on a token-shifted input."""

    def __init__(self, config: RWKV7Config, layer_id: int) -> None:
        super().__init__()
        C = config.n_embd
        ramp = _ramps(layer_id, config)
        self.x_k = nn.Parameter(1.0 - torch.pow(ramp["ddd"], ramp["r10"] ** 4))
        self.key = nn.Linear(C, config.dim_ffn, bias=False)
        self.value = nn.Linear(config.dim_ffn, C, bias=False)

    def forward(self, x: Tensor, last: Tensor | None) -> Tensor:
        """Mix ``x`` (B,T,C); ``last`` (B,C) is the previous token's input or None."""
        k = torch.addcmul(x, _shift(x, last) - x, self.x_k)
        return _project(torch.relu(_project(k, self.key)) ** 2, self.value)


class RWKV7Block(nn.Module):
    """One residual block; block 0 also owns ``ln0`` (applied once, after the embedding)."""

    def __init__(self, config: RWKV7Config, layer_id: int) -> None:
        super().__init__()
        C = config.n_embd
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = RWKV7TimeMix(config, layer_id)
        self.ffn = RWKV7ChannelMix(config, layer_id)

    def forward(
        self, x: Tensor, v_first: Tensor | None, shift: Tensor | None, state: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """Apply the block. ``shift`` (B,2,C) and ``state`` (B,H,N,N) are this layer's
        slices of the RNN state, or None (GPT mode). Returns x, v_first, the new shift
        (None in GPT mode) and the new WKV state."""
        h = self.ln1(x)
        att, v_first, new_state = self.att(h, v_first, None if shift is None else shift[:, 0],
                                           state)  # fmt: skip
        x = x + att
        h2 = self.ln2(x)
        x = x + self.ffn(h2, None if shift is None else shift[:, 1])
        if shift is None:
            return x, v_first, None, new_state
        return x, v_first, torch.stack([h[:, -1], h2[:, -1]], dim=1).float(), new_state


class RWKV7(nn.Module):
    """An RWKV-7 language model: ``model(idx)`` gives logits (B, T, vocab_size)."""

    def __init__(self, config: RWKV7Config) -> None:
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(RWKV7Block(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The authors' init of the named matrices (vectors and LoRAs were set by the
        modules): emb U(-1e-4, 1e-4); att.output and ffn.value zero (each block starts as
        the identity); att.key orthogonal x 0.1; att.receptance, att.value, ffn.key
        orthogonal; head orthogonal x 0.5 sqrt(V/C) (x 0.5 when V <= C)."""
        c = self.config
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        head_gain = 0.5 * math.sqrt(c.vocab_size / c.n_embd) if c.vocab_size > c.n_embd else 0.5
        nn.init.orthogonal_(self.head.weight, gain=head_gain)
        for block in self.blocks:
            nn.init.zeros_(block.att.output.weight)
            nn.init.zeros_(block.ffn.value.weight)
            nn.init.orthogonal_(block.att.key.weight, gain=0.1)
            for lin in (block.att.receptance, block.att.value, block.ffn.key):
                nn.init.orthogonal_(lin.weight, gain=1.0)

    def forward(self, idx: Tensor) -> Tensor:
        """Logits (B, T, V) for token ids ``idx`` (B, T), starting from an empty state."""
        return self.project(self.features(idx))

    def features(self, idx: Tensor) -> Tensor:
        """The normalized last hidden states (B, T, C) that ``project`` turns into logits
        (evaluation projects only the positions it scores)."""
        return self._run(idx, None)[0]

    def project(self, h: Tensor) -> Tensor:
        """Logits for hidden states from ``features`` (any leading shape)."""
        return _project(h, self.head)

    def init_state(self, batch_size: int) -> RWKV7State:
        """The empty RNN state: zero shift inputs and zero WKV states, float32."""
        c = self.config
        device = self.emb.weight.device
        shift = torch.zeros(batch_size, c.n_layer, 2, c.n_embd, device=device)
        wkv = torch.zeros(batch_size, c.n_layer, c.n_head, c.head_size, c.head_size,
                          device=device)  # fmt: skip
        return RWKV7State(shift, wkv)

    def forward_step(
        self, idx: Tensor, state: RWKV7State | None
    ) -> tuple[Tensor, RWKV7State]:
        """Continue a sequence: logits for ``idx`` (B, T) and the state after it.

        ``state`` comes from ``init_state`` or an earlier call (None = empty) and is not
        modified. Feeding a sequence in one call or in any split gives the same logits.
        """
        if state is None:
            state = self.init_state(idx.shape[0])
        c, B = self.config, idx.shape[0]
        want = [(B, c.n_layer, 2, c.n_embd), (B, c.n_layer, c.n_head, c.head_size, c.head_size)]
        got = [tuple(part.shape) for part in state]
        if got != want:
            raise SymatoError(f"RWKV-7 state has shapes {got}, expected {want}")
        h, new_state = self._run(idx, state)
        assert new_state is not None
        return self.project(h), new_state

    def _run(self, idx: Tensor, state: RWKV7State | None) -> tuple[Tensor, RWKV7State | None]:
        """(normalized last hidden states, the new state or None when ``state`` is None)."""
        x = self.blocks[0].ln0(self.emb(idx))
        v_first = None
        shifts, wkvs = [], []
        for i, block in enumerate(self.blocks):
            shift = None if state is None else state.shift[:, i]
            wkv = None if state is None else state.wkv[:, i]
            x, v_first, s, w = block(x, v_first, shift, wkv)
            shifts.append(s)
            wkvs.append(w)
        h = self.ln_out(x)
        if state is None:
            return h, None
        return h, RWKV7State(torch.stack(shifts, 1), torch.stack(wkvs, 1).float())

    def param_counts(self) -> dict[str, int]:
        """Total and non-embedding parameter counts (see symato.models.common)."""
        return count_parameters(self, ("emb.weight",))

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 x non-embedding parameters plus the WKV-7 state
        update, 27 x n_layer x head_size x n_embd (docs/models.md has the reasoning)."""
        c = self.config
        n = self.param_counts()["non_embedding"]
        flops = training_flops_per_token(n, c.n_layer, c.ctx_len, c.n_embd, attention=False)
        return flops + WKV7_FLOPS_PER_STATE_ENTRY * c.n_layer * c.head_size * c.n_embd

    @property
    def max_context(self) -> int | None:
        """RWKV-7 has no context limit at inference (ctx_len is the training window)."""
        return None
