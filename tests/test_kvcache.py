"""The preallocated KV cache (symato/models/kvcache.py) of GPT and Llama decoding:
token-by-token and prompt-then-steps decoding through the cache give the full forward
pass's logits (in float64, so a wrong position or a stale key shows up far above
rounding), at a prompt of one token and with the cache filled to its capacity; an
overflow names the capacity; a state passed in is never changed, branches included."""

from __future__ import annotations

import pytest
import torch

from symato.errors import SymatoError
from symato.models import build_model
from symato.models.kvcache import KVCache

V, L, C, H, CTX = 29, 2, 16, 2, 10
ARCHS = ("gpt", "llama")


def model_of(arch: str) -> torch.nn.Module:
    """A small model in float64 with random weights everywhere (norms too)."""
    torch.manual_seed(0)
    model = build_model(arch, vocab_size=V, n_layer=L, n_embd=C, n_head=H, ctx_len=CTX)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p + 0.3 * torch.randn(p.shape, generator=g))
    return model.double().eval()


def tokens(n: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, V, (2, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("prompt", [1, 4, CTX - 1])
def test_prompt_then_steps_fill_the_cache_and_equal_the_full_pass(arch: str, prompt: int):
    model, idx = model_of(arch), tokens(CTX)
    with torch.no_grad():
        full = model(idx)
        state = model.init_state(2, max_len=CTX)
        assert isinstance(state, KVCache) and state.length == 0 and state.capacity == CTX
        logits, state = model.forward_step(idx[:, :prompt], state)
        out = [logits]
        for t in range(prompt, CTX):  # to the last slot of the cache
            logits, state = model.forward_step(idx[:, t : t + 1], state)
            out.append(logits)
    assert state.length == CTX == state.capacity
    torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-10, rtol=1e-10)
    assert full.abs().max() > 1  # non-trivial logits
    with pytest.raises(SymatoError, match=r"overflow: 10 cached \+ 1 new tokens"):
        model.forward_step(idx[:, :1], state)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_by_token_from_no_state_equals_the_full_pass(arch: str):
    model, idx = model_of(arch), tokens(CTX, seed=3)
    with torch.no_grad():
        full, state, out = model(idx), None, []
        for t in range(CTX):
            logits, state = model.forward_step(idx[:, t : t + 1], state)
            out.append(logits)
    torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_state_is_never_changed_and_branches_do_not_interfere(arch: str):
    """What restoration relies on: go back to a snapshot and continue differently."""
    model, idx = model_of(arch), tokens(CTX, seed=4)
    other = (idx + 1) % V
    with torch.no_grad():
        _, base = model.forward_step(idx[:, :3], model.init_state(2))
        snapshot = [(k.clone(), v.clone()) for k, v in base]
        a_logits, a = model.forward_step(idx[:, 3:6], base)  # the linear path: in place
        b_logits, b = model.forward_step(other[:, 3:5], base)  # a branch: copied
        a2_logits, _ = model.forward_step(idx[:, 6:7], a)  # the first branch still works
        b2_logits, _ = model.forward_step(other[:, 5:6], b)
        full_a, full_b = model(idx[:, :7]), model(torch.cat([idx[:, :3], other[:, 3:6]], 1))
    for (k0, v0), (k1, v1) in zip(snapshot, base, strict=True):
        assert torch.equal(k0, k1) and torch.equal(v0, v1)
    torch.testing.assert_close(torch.cat([a_logits, a2_logits], 1), full_a[:, 3:7])
    torch.testing.assert_close(torch.cat([b_logits, b2_logits], 1), full_b[:, 3:6])


def test_gpt_refuses_a_cache_past_its_learned_positions():
    with pytest.raises(SymatoError, match="max_len 11 > ctx_len 10"):
        model_of("gpt").init_state(1, max_len=CTX + 1)


def test_llama_cache_grows_without_max_len_and_stops_with_it():
    model, idx = model_of("llama"), tokens(3 * CTX + 2, seed=5)
    with torch.no_grad():
        full, state, out = model(idx), model.init_state(2), []
        assert state.capacity == CTX
        for lo in range(0, idx.shape[1], 3):
            logits, state = model.forward_step(idx[:, lo : lo + 3], state)
            out.append(logits)
        assert state.length == idx.shape[1] <= state.capacity
        torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-10, rtol=1e-10)
        fixed = model.init_state(2, max_len=4)
        _, fixed = model.forward_step(idx[:, :4], fixed)
        with pytest.raises(SymatoError, match=r"capacity 4 \(init_state's max_len"):
            model.forward_step(idx[:, 4:5], fixed)


def test_the_cache_is_allocated_once_for_linear_decoding():
    """No per-step copy: every step of straight decoding shares one buffer."""
    model, idx = model_of("llama"), tokens(CTX, seed=6)
    with torch.no_grad():
        state = model.init_state(2, max_len=CTX)
        _, state = model.forward_step(idx[:, :1], state)
        pointer, nbytes = state[0][0].data_ptr(), state.nbytes
        for t in range(1, CTX):
            _, state = model.forward_step(idx[:, t : t + 1], state)
            assert state[0][0].data_ptr() == pointer
    assert nbytes == 2 * L * 2 * H * CTX * (C // H) * 8  # k and v, float64
