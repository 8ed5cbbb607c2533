"""A preallocated key/value cache for Transformer decoding (GPT and Llama).

Why: a cache grown by ``torch.cat`` copies every cached key and value at every generated
token, so decoding token ``P`` costs O(P) in copies on top of the O(P) attention it
needs anyway, and the allocator churns. Benchmarking Transformers that way against RWKV
would charge them for our bookkeeping (issue #28 asks for a fair peer). Here the keys
and values of every layer live in two tensors of shape (n_layer, B, H, capacity, hd),
allocated once; a step writes its T new positions in place.

The models promise that ``forward_step`` never changes the state passed in (restoration
keeps a snapshot of a state and goes back to it). A ``KVCache`` is therefore a *view*:
the shared ``_Buffers`` plus a length. Advancing the view that ends where the buffers
were last written (the usual, linear case) writes past every existing view's length,
so no view sees a change. Advancing an older view (a branch) first copies its prefix
into fresh buffers: branches cost a copy, straight decoding never does.

Capacity: a fixed ``max_len`` makes an overflow a ``SymatoError``; ``max_len=None``
(Llama, whose RoPE positions have no limit) doubles the buffers when full, an amortized
O(1) per token instead of a copy per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from symato.errors import SymatoError


@dataclass
class _Buffers:
    """The storage shared by the views of one decoding history."""

    k: Tensor  # (n_layer, B, H, capacity, hd)
    v: Tensor
    written: int  # positions 0..written-1 hold the latest history's keys/values
    growable: bool

    @property
    def capacity(self) -> int:
        return self.k.shape[3]


class KVCache:
    """Keys and values of the ``length`` tokens seen so far, per layer.

    ``cache[i]`` is layer ``i``'s ``(k, v)``, each (B, H, length, hd) (views, not
    copies), and ``len(cache)`` the number of layers, so code written for the old
    list-of-pairs cache reads this one unchanged.
    """

    def __init__(self, buffers: _Buffers, length: int) -> None:
        self._buf = buffers
        self.length = length

    @classmethod
    def empty(cls, n_layer: int, batch: int, n_head: int, head_dim: int,
              max_len: int | None, like: Tensor, initial: int = 256) -> KVCache:
        """An empty cache in ``like``'s dtype and device; ``max_len`` None grows."""
        if max_len is not None and max_len < 1:
            raise SymatoError(f"KV cache max_len must be a positive integer, got {max_len!r}")
        capacity = max_len if max_len is not None else max(1, initial)
        shape = (n_layer, batch, n_head, capacity, head_dim)
        k, v = like.new_zeros(shape), like.new_zeros(shape)
        return cls(_Buffers(k, v, 0, growable=max_len is None), 0)

    def __len__(self) -> int:
        return self._buf.k.shape[0]

    def __getitem__(self, layer: int) -> tuple[Tensor, Tensor]:
        n = self.length
        return self._buf.k[layer, :, :, :n], self._buf.v[layer, :, :, :n]

    @property
    def capacity(self) -> int:
        """Positions the buffers hold before an overflow (or, if growable, a doubling)."""
        return self._buf.capacity

    @property
    def nbytes(self) -> int:
        """Bytes allocated for keys and values (the whole capacity, used or not)."""
        return self._buf.k.nbytes + self._buf.v.nbytes

    def advance(self, n_new: int, limit_note: str = "") -> KVCache:
        """The view that will hold ``n_new`` more positions; the caller fills them with
        ``write``. Never changes what this view (or any other live view) reads."""
        buf, end = self._buf, self.length + n_new
        if self.length != buf.written:  # a branch from an older view: copy-on-branch
            buf = self._copied(max(end, buf.capacity) if buf.growable else buf.capacity)
        if end > buf.capacity:
            if not buf.growable:
                raise SymatoError(
                    f"KV cache overflow: {self.length} cached + {n_new} new tokens > capacity "
                    f"{buf.capacity}{limit_note}"
                )
            buf = self._copied(max(end, 2 * buf.capacity), buf)
        buf.written = end
        return KVCache(buf, end)

    def write(self, layer: int, start: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store (B, H, T, hd) ``k``, ``v`` at ``start..start+T-1`` of ``layer``; return the
        layer's keys and values up to the end of this view, in ``k``'s dtype."""
        end = start + k.shape[2]
        self._buf.k[layer, :, :, start:end] = k
        self._buf.v[layer, :, :, start:end] = v
        keys, values = self[layer]
        return keys.to(k.dtype), values.to(v.dtype)

    def _copied(self, capacity: int, src: _Buffers | None = None) -> _Buffers:
        """New buffers of ``capacity`` holding this view's prefix."""
        src = src or self._buf
        n = self.length
        shape = (*src.k.shape[:3], capacity, src.k.shape[4])
        k, v = src.k.new_zeros(shape), src.v.new_zeros(shape)
        k[:, :, :, :n] = src.k[:, :, :, :n]
        v[:, :, :, :n] = src.v[:, :, :, :n]
        return _Buffers(k, v, n, src.growable)


def cached_attention(q: Tensor, k: Tensor, v: Tensor, past: int) -> Tensor:
    """Causal attention of the T queries ``q`` (B, H, T, hd), at positions past..past+T-1,
    over the keys/values ``k``, ``v`` (B, H, past+T, hd) of positions 0..past+T-1."""
    T = q.shape[2]
    if past == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if T == 1:  # one new token sees every key: no mask to build
        return F.scaled_dot_product_attention(q, k, v)
    # query i sits at position past + i and may see keys 0..past + i
    rows = torch.arange(T, device=q.device)[:, None] + past
    mask = torch.arange(past + T, device=q.device)[None, :] <= rows
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
