"""RWKV-7 (``rwkv7``): released names and shapes, the authors' init, low-rank widths,
counting formulas, GPT mode == RNN mode, and the checkpoint format."""

from __future__ import annotations

import math

import pytest
import torch

from symato.errors import SymatoError
from symato.models import architecture_of, build_model
from symato.models.rwkv7 import LN_X_EPS, RWKV7, RWKV7State, capped_lora_rank, lora_rank
from symato.run.checkpoint import load_model, save_model
from symato.run.generate import Feeder

V, L, C, N, CTX = 37, 3, 32, 16, 24  # two heads of 16
H = C // N
R = 32  # every low-rank width at C = 32 (the authors' floor, 32)


def rwkv7(**extra) -> RWKV7:
    torch.manual_seed(0)
    extra = {"wkv_backend": "torch", **extra}  # the reference loop unless asked otherwise
    return build_model("rwkv7", vocab_size=V, n_layer=L, n_embd=C, n_head=H, ctx_len=CTX,
                       **extra)  # fmt: skip


@torch.no_grad()
def randomize(model: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Random weights everywhere, incl. the zero-inited matrices and LoRAs. (At scale 0.3
    the random model is so ill-conditioned that float32 itself drifts by 1e-4.)"""
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.copy_(p + scale * torch.randn(p.shape, generator=g))
    return model


def expected_shapes(n_layer: int, c: int, n: int, vocab: int, r: dict[str, int]) -> dict:
    vec = (1, 1, c)
    out = {"emb.weight": (vocab, c), "blocks.0.ln0.weight": (c,), "blocks.0.ln0.bias": (c,)}
    for i in range(n_layer):
        b = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            out.update({b + f"{ln}.weight": (c,), b + f"{ln}.bias": (c,)})
        a = b + "att."
        out.update({a + f"x_{m}": vec for m in "rwkvag"})
        lora = {"w": "w", "a": "a", "g": "g"} | ({"v": "v"} if i else {})
        for p in lora:
            out.update({a + f"{p}1": (c, r[p]), a + f"{p}2": (r[p], c)})
            if p != "g":
                out[a + f"{p}0"] = vec
        out.update({a + "k_k": vec, a + "k_a": vec, a + "r_k": (c // n, n)})
        for m in ("receptance", "key", "value", "output"):
            out[a + f"{m}.weight"] = (c, c)
        out.update({a + "ln_x.weight": (c,), a + "ln_x.bias": (c,)})
        out.update({b + "ffn.x_k": vec, b + "ffn.key.weight": (4 * c, c),
                    b + "ffn.value.weight": (c, 4 * c)})  # fmt: skip
    out.update({"ln_out.weight": (c,), "ln_out.bias": (c,), "head.weight": (vocab, c)})
    return out


def test_state_dict_uses_the_released_x070_names_and_shapes():
    sd = rwkv7().state_dict()
    want = expected_shapes(L, C, N, V, {"w": R, "a": R, "v": R, "g": R})
    assert {k: tuple(v.shape) for k, v in sd.items()} == want
    assert "blocks.0.att.v0" not in sd and "blocks.1.att.v0" in sd  # layer 0: no v path


def test_lora_ranks_follow_the_authors_formula():
    # the authors' max(32, round(k C^e / 32) * 32), k = 1.8 (w, a), 1.3 (v), 0.6 with
    # e = 0.8 (g): the released L12-D768 (64 64 32 128) and L24-D2048 (96 96 64 256) shapes
    assert [lora_rank(1.8, c) for c in (256, 512, 768, 1024, 2048)] == [32, 32, 64, 64, 96]
    assert [lora_rank(1.3, c) for c in (256, 512, 768, 1024, 2048)] == [32, 32, 32, 32, 64]
    assert [lora_rank(0.6, c, 0.8) for c in (256, 512, 768, 1024, 2048)] == [64, 96, 128, 160, 256]
    # no cap: at the demo widths every rank is the floor 32
    assert [lora_rank(0.6, c, 0.8) for c in (16, 32, 48, 64, 96, 128)] == [32] * 6
    assert build_model("rwkv7", vocab_size=5, n_layer=1, n_embd=32, n_head=2,
                       ctx_len=4).config.ranks == {"w": 32, "a": 32, "v": 32, "g": 32}
    # the pre-#22 rule, kept for its checkpoints: k sqrt(C), k = 2.5 2.5 1.7 5, capped at C/4
    assert [capped_lora_rank(5.0, c) for c in (16, 32, 48, 64, 96, 128)] == [4, 8, 12, 16, 24, 32]
    assert [capped_lora_rank(2.5, c) for c in (256, 512, 768)] == [32, 64, 64]
    assert build_model("rwkv7", vocab_size=5, n_layer=1, n_embd=32, n_head=2, ctx_len=4,
                       lora="capped").config.ranks == {"w": 8, "a": 8, "v": 8, "g": 8}
    model = build_model("rwkv7", vocab_size=5, n_layer=2, n_embd=768, n_head=12, ctx_len=4)
    assert model.blocks[1].att.w1.shape == (768, 64) and model.blocks[1].att.g2.shape == (128, 768)
    assert model.blocks[1].att.v1.shape == (768, 32) and model.config.head_size == 64


def test_init_follows_the_authors_code():
    model = rwkv7()
    c = torch.arange(C, dtype=torch.float32)
    ddd, lin = c / C, c / (C - 1) - 0.5
    z = ((c % N) - (N - 1) / 2) / ((N - 1) / 2)
    zig = z * z.abs()
    for i, block in enumerate(model.blocks):
        att, r01, r10 = block.att, i / (L - 1), 1 - i / L
        for name, power in {"r": 0.2, "w": 0.9, "k": 0.7, "v": 0.7, "a": 0.9, "g": 0.2}.items():
            want = 1 - ddd ** (power * r10)
            torch.testing.assert_close(getattr(att, f"x_{name}").flatten(), want)
        www = -6 + 6 * (c / (C - 1)) ** (1 + r01**0.3)
        torch.testing.assert_close(att.w0.flatten(), www + 0.5 + 2.5 * zig)
        torch.testing.assert_close(att.a0.flatten(), -0.19 + 0.3 * zig + 0.4 * lin)
        if i:
            torch.testing.assert_close(att.v0.flatten(), 0.73 - 0.4 * lin)
        torch.testing.assert_close(att.k_k.flatten(), 0.71 - 0.1 * lin)
        assert torch.all(att.k_a == 1.02) and torch.all(att.r_k == -0.04)
        assert torch.allclose(att.ln_x.weight, torch.full((C,), ((i + 1) / L) ** 0.7))
        assert att.ln_x.eps == LN_X_EPS == 64e-5
        torch.testing.assert_close(block.ffn.x_k.flatten(), 1 - ddd ** (r10**4))
        loras = [att.w1, att.a1, att.g1] + ([att.v1] if i else [])
        assert all(torch.count_nonzero(p) == 0 for p in loras)
        for m in [att.w2, att.a2, att.g2] + ([att.v2] if i else []):  # (R, C): rows 0.1-orthonormal
            torch.testing.assert_close(m @ m.T, 0.01 * torch.eye(R), atol=1e-6, rtol=0)
        assert torch.count_nonzero(att.output.weight) == 0
        assert torch.count_nonzero(block.ffn.value.weight) == 0
        for lin_w, gain in ((att.receptance.weight, 1.0), (att.value.weight, 1.0),
                            (att.key.weight, 0.1)):  # fmt: skip
            torch.testing.assert_close(lin_w @ lin_w.T, gain**2 * torch.eye(C), atol=1e-5, rtol=0)
        wk = block.ffn.key.weight  # (4C, C): orthonormal columns, gain 1
        torch.testing.assert_close(wk.T @ wk, torch.eye(C), atol=1e-5, rtol=0)
    head = model.head.weight  # (V, C), V > C: gain 0.5 sqrt(V/C), orthogonal columns
    torch.testing.assert_close(head.T @ head, 0.25 * V / C * torch.eye(C), atol=1e-4, rtol=0)
    assert model.emb.weight.abs().max() <= 1e-4
    # the decay starts in the authors' range: w = -softplus(-w0) - 0.5 < -0.5
    w = -torch.nn.functional.softplus(-model.blocks[0].att.w0) - 0.5
    assert w.max() < -0.5 and w.min() > -9  # w0 in [-8, 3]: -6..0 ramp + 0.5 +- 2.5


def test_gpt_mode_equals_rnn_mode_and_leaves_the_state_alone():
    model = randomize(rwkv7()).eval()
    idx = torch.randint(0, V, (3, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(idx)
        state, steps = model.init_state(3), []
        for t in range(idx.shape[1]):
            before = RWKV7State(*(s.clone() for s in state))
            logits, new = model.forward_step(idx[:, t : t + 1], state)
            assert all(torch.equal(a, b) for a, b in zip(before, state, strict=True))
            steps.append(logits)
            state = new
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
        a, s1 = model.forward_step(idx[:, :4], None)
        b, s2 = model.forward_step(idx[:, 4:], s1)
        torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-5, rtol=1e-5)
        for x, y in zip(s2, state, strict=True):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    assert state.shift.shape == (3, L, 2, C) and state.wkv.shape == (3, L, H, N, N)
    assert state.wkv.abs().max() > 0.1 and full.abs().max() > 1  # non-trivial


def test_value_residual_and_token_shift_matter():
    """Layer 0's value reaches later layers, and the previous token reaches the mixes."""
    model = randomize(rwkv7()).eval()
    idx = torch.tensor([[4, 8, 15, 16, 23]])
    with torch.no_grad():
        base = model(idx)
        model.blocks[2].att.v0.fill_(-30.0)  # gate ~0: no value residual in layer 2
        assert (model(idx) - base).abs().max() > 1e-3
        for block in model.blocks:  # no shift anywhere: tokens only meet through the state
            for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
                getattr(block.att, name).zero_()
            block.ffn.x_k.zero_()
        with pytest.raises(AssertionError):
            torch.testing.assert_close(model(idx), base)


def test_trains_all_parameters():
    model = randomize(rwkv7(), scale=0.05)
    idx = torch.randint(0, V, (2, 8))
    loss = torch.nn.functional.cross_entropy(model(idx).reshape(-1, V), idx.roll(-1, 1).flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_param_counts_and_flops_by_hand():
    # per layer: r,k,v,o 4C^2, ffn 8C^2, LoRAs 2C(Rw + Ra + Rg [+ Rv]), vectors:
    # x_rwkvag 6C, w0 a0 [v0], k_k k_a 2C, r_k C, ln_x 2C, ffn.x_k C, ln1 ln2 4C
    def per_layer(i: int) -> int:
        loras = 2 * C * (3 * R + (R if i else 0))
        vectors = (6 + 2 + (1 if i else 0) + 2 + 1 + 2 + 1 + 4) * C
        return 12 * C * C + loras + vectors

    total = V * C + 2 * C + sum(per_layer(i) for i in range(L)) + 2 * C + V * C
    model = rwkv7()
    assert model.param_counts() == {"total": total, "non_embedding": total - V * C}
    assert sum(p.numel() for p in model.parameters()) == total
    assert model.flops_per_token() == 6 * (total - V * C) + 27 * L * N * C


def test_config_and_build_errors_name_the_problem():
    with pytest.raises(SymatoError, match="divisible by n_head"):
        build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=30, n_head=4, ctx_len=8)
    with pytest.raises(SymatoError, match="head_size"):
        build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=32, ctx_len=8, head_size=12)
    with pytest.raises(SymatoError, match="wkv_backend"):
        build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=32, n_head=2, ctx_len=8,
                    wkv_backend="gpu")  # fmt: skip
    model = build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=128, ctx_len=8)
    assert model.config.head_size == 64 and model.config.n_head == 2  # the default head size
    with pytest.raises(SymatoError, match="head_size"):  # 64 does not divide 32
        build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=32, ctx_len=8)
    with pytest.raises(SymatoError, match="RWKV-7 state"):
        rwkv7().forward_step(torch.zeros(2, 1, dtype=torch.long), rwkv7().init_state(3))


def test_no_context_limit_in_generation():
    model = randomize(rwkv7()).eval()
    assert model.max_context is None
    feeder = Feeder(model)
    feeder.feed(list(range(V)) * 2)  # 74 tokens, ctx_len 24: never re-primed
    assert feeder.history == [] and feeder.limit is None


def test_checkpoint_round_trip(tmp_path):
    model = randomize(rwkv7()).eval()
    save_model(tmp_path / "model.pt", model, {"run": "x"})
    loaded, _ = load_model(tmp_path / "model.pt", wkv_backend="torch")  # as rwkv7() runs
    assert architecture_of(loaded) == "rwkv7" and loaded.config == model.config
    idx = torch.randint(0, V, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx), model(idx), rtol=0, atol=0)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_any_head_size_that_divides_the_width(n):
    model = build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=32, n_head=32 // n, ctx_len=8,
                        wkv_backend="torch")  # fmt: skip
    assert model.blocks[0].att.r_k.shape == (32 // n, n)
    with torch.no_grad():
        assert math.isfinite(float(model(torch.tensor([[1, 2, 3]])).sum()))


def test_compiled_backend_matches_the_reference_in_both_modes():
    """wkv_backend "auto" (the compiled kernel of the device) computes what "torch" does:
    logits, parameter gradients, and the RNN-mode state."""
    from symato.models.ops.wkv7 import last_backend_used

    ref, fast = randomize(rwkv7()), randomize(rwkv7(wkv_backend="auto"))
    idx = torch.randint(0, V, (2, 40), generator=torch.Generator().manual_seed(5))
    outs = []
    for model in (ref, fast):
        logits = model(idx)
        logits.square().mean().backward()
        outs.append((logits.detach(), [p.grad for p in model.parameters()]))
    assert last_backend_used() != "torch"
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-5)
    for g_fast, g_ref in zip(outs[1][1], outs[0][1], strict=True):
        torch.testing.assert_close(g_fast, g_ref, atol=1e-6, rtol=1e-4)
    with torch.no_grad():
        a, s_ref = ref.forward_step(idx[:, :7], None)
        b, s_fast = fast.forward_step(idx[:, :7], None)
        c, _ = fast.forward_step(idx[:, 7:9], s_fast)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_fast.wkv, s_ref.wkv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, outs[0][0][:, 7:9], atol=1e-5, rtol=1e-5)


def test_torch_compile_traces_one_graph():
    """``compile: true`` in training: fullgraph=True fails on any graph break (the WKV-7
    custom op and the backend choice must trace); compiled equals eager."""
    model = randomize(rwkv7(wkv_backend="auto"))
    idx = torch.randint(0, V, (2, 16), generator=torch.Generator().manual_seed(6))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(idx)
    out.square().mean().backward()
    torch.testing.assert_close(out, model(idx), atol=1e-5, rtol=1e-5)
    assert model.blocks[1].att.w1.grad is not None


def test_cpu_generation_fast_path_is_exact_and_follows_weight_changes():
    """One token without autograd multiplies tall weights (ffn.key, head) by a cached
    transposed copy; it must equal the plain product and be rebuilt when weights change."""
    model = randomize(rwkv7()).eval()
    idx = torch.randint(0, V, (1, 6), generator=torch.Generator().manual_seed(8))

    def steps() -> torch.Tensor:
        state, out = None, []
        with torch.inference_mode():
            for t in range(idx.shape[1]):
                logits, state = model.forward_step(idx[:, t : t + 1], state)
                out.append(logits)
        return torch.cat(out, 1)

    with torch.no_grad():
        torch.testing.assert_close(steps(), model(idx), atol=1e-5, rtol=1e-5)
    assert "_rows_weight" in model.head.__dict__
    assert "_rows_weight" in model.blocks[0].ffn.key.__dict__
    assert "_rows_weight" not in model.blocks[0].att.key.__dict__  # square: plain product
    assert not any("rows_weight" in k for k in model.state_dict())
    with torch.no_grad():  # an in-place change (as an optimizer step makes) bumps the version
        model.head.weight.mul_(-1.5)
        model.blocks[1].ffn.key.weight.add_(0.3)
        torch.testing.assert_close(steps(), model(idx), atol=1e-5, rtol=1e-5)
    fresh = randomize(rwkv7())
    fresh.forward_step(idx[:, :1], None)[0].sum().backward()  # with autograd: no copy made
    assert "_rows_weight" not in fresh.head.__dict__ and fresh.head.weight.grad is not None
