"""Transformer++ (``llama``): names and shapes, init, counting formulas, RoPE, causality,
the KV cache against full recompute, and generation past the training window."""

from __future__ import annotations

import math

import pytest
import torch

from symato.errors import SymatoError
from symato.models import architecture_of, build_model
from symato.models.llama import Llama, apply_rope, rope_angles
from symato.run.checkpoint import load_model, save_model
from symato.run.generate import Feeder, generate_ids
from symato.run.provenance import weights_digest

V, L, C, H, CTX = 37, 2, 24, 2, 12  # head_dim 12


def llama(**extra) -> Llama:
    torch.manual_seed(0)
    return build_model("llama", vocab_size=V, n_layer=L, n_embd=C, n_head=H, ctx_len=CTX, **extra)


@torch.no_grad()
def randomize(model: torch.nn.Module, scale: float = 0.2) -> torch.nn.Module:
    """Random weights everywhere (norm weights too), so every path matters."""
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.copy_(p + scale * torch.randn(p.shape, generator=g))
    return model


def test_state_dict_names_shapes_and_no_bias():
    hidden = 8 * math.ceil(C / 3)  # 8C/3 = 64 -> 64
    expected = {"tok_embeddings.weight": (V, C), "norm.weight": (C,), "output.weight": (V, C)}
    for i in range(L):
        b = f"layers.{i}."
        expected.update({b + "attention_norm.weight": (C,), b + "ffn_norm.weight": (C,)})
        for m in ("wq", "wk", "wv", "wo"):
            expected[b + f"attention.{m}.weight"] = (C, C)
        expected[b + "feed_forward.w1.weight"] = (hidden, C)
        expected[b + "feed_forward.w3.weight"] = (hidden, C)
        expected[b + "feed_forward.w2.weight"] = (C, hidden)
    sd = llama().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert not any("bias" in k for k in sd)


@pytest.mark.parametrize(("width", "hidden"), [(24, 64), (32, 88), (48, 128), (512, 1368)])
def test_swiglu_width_is_8c_over_3_rounded_up_to_8(width, hidden):
    model = build_model("llama", vocab_size=5, n_layer=1, n_embd=width, n_head=2, ctx_len=4)
    assert model.config.dim_ffn == hidden
    assert hidden % 8 == 0 and hidden >= 8 * width / 3 > hidden - 8


def test_init_normal_with_scaled_residual_projections():
    model = build_model("llama", vocab_size=500, n_layer=4, n_embd=96, n_head=4, ctx_len=8)
    sd = model.state_dict()
    plain = torch.cat([sd[f"layers.{i}.attention.wq.weight"].flatten() for i in range(4)])
    assert plain.std().item() == pytest.approx(0.02, rel=0.05)
    assert sd["tok_embeddings.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert sd["output.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    for name in ("attention.wo.weight", "feed_forward.w2.weight"):
        resid = torch.cat([sd[f"layers.{i}.{name}"].flatten() for i in range(4)])
        assert resid.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05), name
    assert torch.equal(sd["norm.weight"], torch.ones(96))
    assert torch.equal(sd["layers.3.ffn_norm.weight"], torch.ones(96))
    assert model.output.weight is not model.tok_embeddings.weight  # untied


def test_param_counts_and_flops_by_hand():
    hidden = 8 * math.ceil(C / 3)
    per_layer = 4 * C * C + 3 * C * hidden + 2 * C  # attention, SwiGLU, two RMSNorms
    total = V * C + L * per_layer + C + V * C  # embedding, blocks, final norm, output
    model = llama()
    assert model.param_counts() == {"total": total, "non_embedding": total - V * C}
    assert sum(p.numel() for p in model.parameters()) == total
    assert model.flops_per_token() == 6 * (total - V * C) + 6 * L * CTX * C


def test_rope_rotates_pairs_and_scores_depend_on_offset_only():
    D = 8
    cos, sin = rope_angles(torch.arange(0, 40), D, 10000.0)
    # position 1, pair i turns by base^(-2i/D)
    torch.testing.assert_close(
        torch.atan2(sin[1], cos[1]), 10000.0 ** (-torch.arange(0, D, 2).float() / D)
    )
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, D, generator=g), torch.randn(1, 1, 1, D, generator=g)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q, cos[m : m + 1], sin[m : m + 1])
        kn = apply_rope(k, cos[n : n + 1], sin[n : n + 1])
        return float((qm * kn).sum())

    assert score(7, 3) == pytest.approx(score(30, 26), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)
    rotated = apply_rope(q, cos[13:14], sin[13:14])
    torch.testing.assert_close(rotated.norm(), q.norm())  # a rotation keeps the norm


def test_kv_cache_equals_full_recompute_and_leaves_the_cache_alone():
    model = randomize(llama()).eval()
    T = 2 * CTX + 3  # longer than the training window: positions have no limit
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(idx)
        out, state = [], model.init_state(2)
        for lo, hi in ((0, 5), (5, 6), (6, 13), (13, 14), (14, T)):
            before = [(k.clone(), v.clone()) for k, v in state]
            logits, new_state = model.forward_step(idx[:, lo:hi], state)
            for (k0, v0), (k1, v1) in zip(before, state, strict=True):
                assert torch.equal(k0, k1) and torch.equal(v0, v1)
            assert new_state[0][0].shape == (2, H, hi, C // H)
            out.append(logits)
            state = new_state
        steps, s = [], None
        for t in range(T):  # one token at a time, from no state at all
            logit, s = model.forward_step(idx[:, t : t + 1], s)
            steps.append(logit)
    torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert full.abs().max() > 1  # non-trivial logits


def test_causal_future_tokens_do_not_change_past_logits():
    model = randomize(llama()).eval()
    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, V, (1, 10), generator=g)
    b = a.clone()
    b[0, 6:] = (a[0, 6:] + 1 + torch.randint(0, V - 1, (4,), generator=g)) % V
    with torch.no_grad():
        la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :6], lb[:, :6], atol=1e-6, rtol=0)
    assert (la[:, 6:] - lb[:, 6:]).abs().max() > 1e-3  # the changed tokens do matter


def test_position_matters():
    """RoPE makes the model see order: the same token pair in swapped order differs."""
    model = randomize(llama()).eval()
    with torch.no_grad():
        x = model(torch.tensor([[3, 9, 3, 3]]))[0, -1]
        y = model(torch.tensor([[3, 3, 9, 3]]))[0, -1]
    assert (x - y).abs().max() > 1e-3


def test_generation_past_ctx_len_never_reprimes():
    model = randomize(llama()).eval()
    assert model.max_context is None
    prompt = [1, 2, 3]
    n = 2 * CTX
    got = generate_ids(model, prompt, max_new_tokens=n, temperature=0.0)
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert got == ids[len(prompt) :] and len(got) == n
    assert len(set(got)) > 1
    feeder = Feeder(model)
    feeder.feed(list(range(3 * CTX)))
    assert feeder.state[0][0].shape[2] == 3 * CTX  # the whole history stays in the cache


def test_trains_all_parameters():
    model = randomize(llama(), scale=0.05)
    idx = torch.randint(0, V, (2, 8))
    loss = torch.nn.functional.cross_entropy(model(idx).reshape(-1, V), idx.roll(-1, 1).flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_bad_configs_name_the_problem():
    with pytest.raises(SymatoError, match="even"):
        build_model("llama", vocab_size=V, n_layer=1, n_embd=12, n_head=4, ctx_len=8)
    with pytest.raises(SymatoError, match="even"):
        build_model("llama", vocab_size=V, n_layer=1, n_embd=10, n_head=3, ctx_len=8)
    with pytest.raises(SymatoError, match=r"missing .* argument: 'n_head'"):
        build_model("llama", vocab_size=V, n_layer=1, n_embd=8, ctx_len=8)
    with pytest.raises(SymatoError, match="tie_weights"):
        build_model("llama", vocab_size=V, n_layer=1, n_embd=8, n_head=2, ctx_len=8,
                    tie_weights=True)  # fmt: skip
    with pytest.raises(SymatoError, match="n_layer"):
        build_model("llama", vocab_size=V, n_layer=0, n_embd=8, n_head=2, ctx_len=8)


def test_checkpoint_round_trip(tmp_path):
    model = randomize(llama(), scale=0.1).eval()
    save_model(tmp_path / "model.pt", model, {"run": "x"})
    loaded, meta = load_model(tmp_path)
    assert architecture_of(loaded) == "llama" and loaded.config == model.config
    assert meta.pop("weights_sha256") == weights_digest(model.state_dict())
    assert meta == {"run": "x"}
    idx = torch.randint(0, V, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx), model(idx), rtol=0, atol=0)


def test_torch_compile_traces_one_graph():
    model = randomize(llama())
    idx = torch.randint(0, V, (2, CTX), generator=torch.Generator().manual_seed(6))
    out = torch.compile(model, fullgraph=True, backend="aot_eager")(idx)
    out.square().mean().backward()
    torch.testing.assert_close(out, model(idx), atol=1e-5, rtol=1e-5)
    assert model.layers[0].attention.wq.weight.grad is not None
